//! The trust policy: one versioned TOML document holding every trust decision a client makes.
//!
//! ```toml
//! version = 1
//! allowed_platforms = ["sev-snp", "tdx"]
//! allow_simulated = false          # default false; true also needs roots.simulated
//!                                  # and/or roots.simulated_tdx
//! allow_debug = false
//! freshness_secs = 300             # window for evidence that carries a signed time
//! max_certificate_age_secs = 300   # optional: oldest RA-TLS certificate accepted, by the
//!                                  # notBefore its evidence binds (default freshness_secs)
//! require_gpu = false              # demand NVIDIA evidence bound into the CPU report
//! gpu_cc_modes = ["spt", "mpt", "ppcie"]   # default: CC on; "unstated" accepts reports
//!                                  # that state no mode (older drivers, or CC off)
//! allow_unattested_model = false   # accept nodes whose release says "model digest not
//!                                  # attested" (an upstream the node cannot measure)
//!
//! [roots]                          # PEM certificates, pinned byte for byte
//! amd_ark = { milan = "-----BEGIN CERTIFICATE-----...", genoa = "...", turin = "..." }
//! amd_ask = { milan = "...", genoa = "...", turin = "..." }   # optional, see below
//! intel = "-----BEGIN CERTIFICATE-----..."      # Intel SGX Root CA (DCAP)
//! nvidia = "-----BEGIN CERTIFICATE-----..."     # NVIDIA Device Identity CA
//! simulated = "-----BEGIN CERTIFICATE-----..."  # only if you mean it (simulated SEV-SNP)
//! simulated_tdx = "-----BEGIN CERTIFICATE-----..."  # simulated Intel root (simulated-tdx)
//! simulated_gpu = "-----BEGIN CERTIFICATE-----..."  # simulated NVIDIA device root (GPU twin)
//!
//! [sev_snp]
//! min_guest_abi = "1.51"           # guest POLICY ABI_MAJOR.ABI_MINOR at least (default "0.0")
//! require_smt_disabled = false     # refuse guests whose POLICY allows host SMT
//!
//! [sev_snp.min_tcb]                # minimum REPORTED_TCB, every generation (default 0)
//! bootloader = 0
//! tee = 0
//! snp = 0
//! microcode = 0
//!
//! [sev_snp.tcb_floor.milan]        # per generation; absent: AMD bulletin floors
//! bootloader = 4                   # (bulletin_tcb_floors); every field required,
//! tee = 0                          # `fmc` for turin only, and turin has no default
//! snp = 24
//! microcode = 219
//!
//! [tdx]
//! accepted_tcb_statuses = ["UpToDate"]   # add "OutOfDate", "ConfigurationNeeded", ...
//!
//! [ledger]                         # parsed by the ledger client, kept as plain strings here
//! log_vkey = "ledger.example+1234abcd+AQ..."
//! witness_vkeys = ["witness1+...", "witness2+..."]
//! witness_quorum = 1              # default: every listed witness; 0 needs
//!                                  # allow_no_witness_quorum = true (development only)
//! max_cosignature_age_secs = 86400 # optional: newest witness cosignature at most this old
//! max_release_age_secs = 7776000   # optional: release not_before at most this long ago
//! ```
//!
//! Unknown fields anywhere are an error (a typo in a security setting must not be ignored).
//!
//! `roots.amd_ask` holds AMD SEV signing keys (ASKs), the intermediates between an ARK and a
//! chip's VCEK. They are *not* trust anchors: the SEV-SNP verifier uses a pinned ASK only
//! when a pinned ARK signs it, so a report presented with its VCEK alone still chains to an
//! ARK. When the key is absent the production ASKs of Milan, Genoa and Turin are used (so
//! policies written before this key existed keep working and gain VCEK-only evidence);
//! `amd_ask = {}` pins none, and then the evidence must carry its ASK. A VLEK is signed by
//! the ASVK, which is not bundled: VLEK evidence must carry its ASVK.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, GpuCcMode, Platform, input::pem_certificates};

/// Minimum SEV-SNP TCB (each component of REPORTED_TCB must be at least this).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpMinTcb {
    /// Boot loader SPL.
    #[serde(default)]
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    #[serde(default)]
    pub tee: u8,
    /// SNP firmware SPL.
    #[serde(default)]
    pub snp: u8,
    /// CPU microcode SPL.
    #[serde(default)]
    pub microcode: u8,
}

/// An AMD EPYC product generation, as far as SEV-SNP TCB floors are concerned. The generation
/// of hardware evidence is the one whose AMD root (ARK) signed its chain: a Milan ARK never
/// signs a Genoa chip's VCEK, so the chain, not anything the host says, decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SnpGeneration {
    /// 3rd generation EPYC (Zen 3), CPUID family 19h models 00h-0Fh.
    Milan,
    /// 4th generation EPYC (Zen 4: Genoa, Bergamo, Siena), family 19h models 10h-1Fh, A0h-AFh.
    Genoa,
    /// 5th generation EPYC (Zen 5), family 1Ah models 00h-1Fh. Its TCB_VERSION carries an FMC SPL.
    Turin,
}

impl SnpGeneration {
    /// Lower-case name, as in the policy document and AMD's KDS paths.
    pub fn name(self) -> &'static str {
        match self {
            SnpGeneration::Milan => "milan",
            SnpGeneration::Genoa => "genoa",
            SnpGeneration::Turin => "turin",
        }
    }
}

impl std::fmt::Display for SnpGeneration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The lowest REPORTED_TCB accepted for one product generation. Every field is required in the
/// document, so a floor can only be lowered deliberately and completely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpTcbFloor {
    /// Boot loader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// CPU microcode SPL.
    pub microcode: u8,
    /// FMC SPL: Turin only (required there, refused for Milan and Genoa).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmc: Option<u8>,
}

/// Production TCB floors, from AMD's security bulletins.
///
/// AMD-SB-3019 (published 2025-02-03, CVE-2024-56161: microcode patch signatures verified with
/// a weak hash, so a host administrator could load malicious microcode under SEV-SNP). The fix
/// ships in the Milan and Genoa platform firmware the bulletin names, which raises the SPLs;
/// patched hosts report REPORTED_TCB `DB18000000000004` (Milan: microcode 0xDB, SNP 0x18, TEE 0, boot
/// loader 4) and `541700000000000A` (Genoa: microcode 0x54, SNP 0x17, TEE 0, boot loader 0x0A).
/// Those are the floors below: a report under them runs firmware with a published, exploitable
/// flaw. (The bulletin page itself cannot be reached from the build machine; the values were
/// checked against the TCB strings that patched public deployments report, e.g. Microsoft CCF's
/// SNP documentation and tests, March 2026.)
///
/// Turin has no entry: AMD-SB-3019 covers Zen 1-4, and no Turin floor has been confirmed from a
/// bulletin here. Rather than a floor of zeros, Turin evidence is refused
/// ([`SnpPolicy::tcb_floor`] lookup fails) until the policy names a `[sev_snp.tcb_floor.turin]`.
pub fn bulletin_tcb_floors() -> BTreeMap<SnpGeneration, SnpTcbFloor> {
    BTreeMap::from([
        (
            SnpGeneration::Milan,
            SnpTcbFloor {
                bootloader: 4,
                tee: 0,
                snp: 0x18,
                microcode: 0xDB,
                fmc: None,
            },
        ),
        (
            SnpGeneration::Genoa,
            SnpTcbFloor {
                bootloader: 0x0A,
                tee: 0,
                snp: 0x17,
                microcode: 0x54,
                fmc: None,
            },
        ),
    ])
}

/// SEV-SNP specific policy: checks that hold whatever a release pins (a release pins the guest
/// POLICY exactly; these are floors no release can lower).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpPolicy {
    /// Minimum reported TCB for every generation, simulated evidence included (kept from the
    /// first policy format; the per-generation floors below are the ones that matter).
    pub min_tcb: SnpMinTcb,
    /// Per-generation floors. Generations absent here keep [`bulletin_tcb_floors`]; hardware
    /// evidence of a generation with no floor at all is refused.
    pub tcb_floors: BTreeMap<SnpGeneration, SnpTcbFloor>,
    /// Minimum ABI version the guest POLICY asks of the firmware (ABI_MAJOR.ABI_MINOR).
    pub min_guest_abi: (u8, u8),
    /// Refuse guests whose POLICY lets the host run SMT siblings next to them.
    pub require_smt_disabled: bool,
}

impl Default for SnpPolicy {
    fn default() -> Self {
        SnpPolicy {
            min_tcb: SnpMinTcb::default(),
            tcb_floors: bulletin_tcb_floors(),
            min_guest_abi: (0, 0),
            require_smt_disabled: false,
        }
    }
}

impl SnpPolicy {
    /// The floor for `generation`, if the policy has one.
    pub fn tcb_floor(&self, generation: SnpGeneration) -> Option<&SnpTcbFloor> {
        self.tcb_floors.get(&generation)
    }
}

/// The `[sev_snp]` table as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnpToml {
    #[serde(default)]
    min_tcb: SnpMinTcb,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    tcb_floor: BTreeMap<SnpGeneration, SnpTcbFloor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_guest_abi: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    require_smt_disabled: bool,
}

impl SnpToml {
    fn into_policy(self) -> Result<SnpPolicy, Error> {
        let mut tcb_floors = bulletin_tcb_floors();
        for (generation, floor) in self.tcb_floor {
            // The FMC SPL exists in Turin's TCB_VERSION only: demanding it elsewhere, or
            // forgetting it for Turin, is a mistake the document must not hide.
            if (generation == SnpGeneration::Turin) != floor.fmc.is_some() {
                return Err(Error::SnpTcbFloorInvalid(generation.name()));
            }
            tcb_floors.insert(generation, floor);
        }
        let min_guest_abi = match self.min_guest_abi.as_deref() {
            None => (0, 0),
            Some(s) => parse_abi(s).ok_or(Error::SnpGuestAbiInvalid)?,
        };
        Ok(SnpPolicy {
            min_tcb: self.min_tcb,
            tcb_floors,
            min_guest_abi,
            require_smt_disabled: self.require_smt_disabled,
        })
    }

    fn from_policy(p: &SnpPolicy) -> Self {
        SnpToml {
            min_tcb: p.min_tcb,
            // Written out in full, so the document says exactly which floors apply.
            tcb_floor: p.tcb_floors.clone(),
            min_guest_abi: Some(format!("{}.{}", p.min_guest_abi.0, p.min_guest_abi.1)),
            require_smt_disabled: p.require_smt_disabled,
        }
    }
}

fn parse_abi(s: &str) -> Option<(u8, u8)> {
    let (major, minor) = s.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// TDX specific policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxPolicy {
    /// TCB statuses (Intel TCB Info names) that are accepted. `UpToDate` alone by default.
    #[serde(default = "default_tdx_statuses")]
    pub accepted_tcb_statuses: Vec<String>,
}

impl Default for TdxPolicy {
    fn default() -> Self {
        TdxPolicy {
            accepted_tcb_statuses: default_tdx_statuses(),
        }
    }
}

fn default_tdx_statuses() -> Vec<String> {
    vec!["UpToDate".to_string()]
}

/// Ledger trust anchors, kept as plain strings (the ledger crates parse them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerPolicy {
    /// C2SP signed-note verifier key of the ledger.
    pub log_vkey: String,
    /// C2SP verifier keys of the witnesses.
    pub witness_vkeys: Vec<String>,
    /// How many witness cosignatures are required. In the document it defaults to the
    /// number of listed witnesses (all of them), never silently to 0.
    pub witness_quorum: u32,
    /// Development only: accept a ledger key with a witness quorum of 0, i.e. trust the
    /// ledger's own word that every device sees the same log.
    pub allow_no_witness_quorum: bool,
    /// Refuse a ledger view whose newest trusted witness cosignature is older than this
    /// (seconds): witnesses re-cosign the latest checkpoint, so an old one means the log
    /// stopped advancing for this device. `None`: not checked.
    pub max_cosignature_age_secs: Option<u64>,
    /// Refuse a release whose `not_before` is more than this long ago (seconds), whatever
    /// its `not_after`. `None`: not checked.
    pub max_release_age_secs: Option<u64>,
}

/// The `[ledger]` table as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerToml {
    #[serde(default)]
    log_vkey: String,
    #[serde(default)]
    witness_vkeys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    witness_quorum: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    allow_no_witness_quorum: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_cosignature_age_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_release_age_secs: Option<u64>,
}

impl LedgerToml {
    /// The quorum defaults to every listed witness. A quorum that can never be met, or
    /// a quorum of 0 with a ledger key set (no split-view protection at all), is refused
    /// unless `allow_no_witness_quorum` says this is a development setup.
    fn into_policy(self) -> Result<LedgerPolicy, Error> {
        let listed = u32::try_from(self.witness_vkeys.len()).unwrap_or(u32::MAX);
        let quorum = self.witness_quorum.unwrap_or(listed);
        if quorum > listed {
            return Err(Error::WitnessQuorumUnreachable { quorum, listed });
        }
        if quorum == 0 && !self.log_vkey.is_empty() && !self.allow_no_witness_quorum {
            return Err(Error::WitnessQuorumZero);
        }
        Ok(LedgerPolicy {
            log_vkey: self.log_vkey,
            witness_vkeys: self.witness_vkeys,
            witness_quorum: quorum,
            allow_no_witness_quorum: self.allow_no_witness_quorum,
            max_cosignature_age_secs: self.max_cosignature_age_secs,
            max_release_age_secs: self.max_release_age_secs,
        })
    }

    fn from_policy(p: &LedgerPolicy) -> Self {
        LedgerToml {
            log_vkey: p.log_vkey.clone(),
            witness_vkeys: p.witness_vkeys.clone(),
            witness_quorum: Some(p.witness_quorum),
            allow_no_witness_quorum: p.allow_no_witness_quorum,
            max_cosignature_age_secs: p.max_cosignature_age_secs,
            max_release_age_secs: p.max_release_age_secs,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootsToml {
    #[serde(default)]
    amd_ark: BTreeMap<String, String>,
    /// `None` (key absent): the bundled production ASKs; `Some(empty)`: none pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    amd_ask: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nvidia: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    simulated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    simulated_tdx: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    simulated_gpu: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyToml {
    version: u32,
    allowed_platforms: Vec<String>,
    #[serde(default)]
    allow_simulated: bool,
    #[serde(default)]
    allow_debug: bool,
    #[serde(default = "default_freshness")]
    freshness_secs: u64,
    #[serde(default)]
    require_gpu: bool,
    #[serde(default = "default_gpu_cc_modes")]
    gpu_cc_modes: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    allow_unattested_model: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_certificate_age_secs: Option<u64>,
    #[serde(default)]
    roots: RootsToml,
    #[serde(default)]
    sev_snp: SnpToml,
    #[serde(default)]
    tdx: TdxPolicy,
    #[serde(default)]
    ledger: LedgerToml,
}

fn default_freshness() -> u64 {
    300
}

fn default_gpu_cc_modes() -> Vec<String> {
    GpuCcMode::ON.iter().map(|m| m.name().to_owned()).collect()
}

/// A validated trust policy. Construct with [`TrustPolicy::from_toml`] or
/// [`TrustPolicy::production`]; the roots are held as DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicy {
    /// Platforms the client accepts.
    pub allowed_platforms: Vec<Platform>,
    /// Whether simulated evidence may be accepted (also needs a pinned simulated root).
    pub allow_simulated: bool,
    /// Whether a guest with debugging enabled may be accepted.
    pub allow_debug: bool,
    /// Freshness window (seconds) for evidence that carries a signed time.
    pub freshness_secs: u64,
    /// Whether GPU evidence must accompany CPU evidence.
    pub require_gpu: bool,
    /// The GPU confidential-computing modes accepted (default [`GpuCcMode::ON`]).
    pub gpu_cc_modes: Vec<GpuCcMode>,
    /// Whether a node whose release states "model digest not attested" (the all-zero
    /// model digest: it serves an upstream model it cannot measure) may be accepted.
    /// Default false: the model must be one the release names.
    pub allow_unattested_model: bool,
    /// Oldest RA-TLS certificate accepted (seconds since its notBefore, which its evidence
    /// binds into REPORT_DATA). `None`: [`TrustPolicy::freshness_secs`], the longest
    /// lifetime a certificate may have anyway.
    pub max_certificate_age_secs: Option<u64>,
    /// AMD ARK certificates (DER) by product name.
    pub amd_arks: BTreeMap<String, Vec<u8>>,
    /// AMD ASK certificates (DER) by product name: intermediates used to complete a chain
    /// presented as a VCEK alone, and only when one of `amd_arks` signs them (module docs).
    pub amd_asks: BTreeMap<String, Vec<u8>>,
    /// Intel SGX Root CA (DER).
    pub intel_root: Option<Vec<u8>>,
    /// NVIDIA Device Identity CA (DER).
    pub nvidia_root: Option<Vec<u8>>,
    /// Simulated vendor root (DER). Never set by default.
    pub simulated_root: Option<Vec<u8>>,
    /// Simulated Intel root (DER, ECDSA P-256) for `simulated-tdx` evidence: a separate
    /// anchor from `simulated_root` (RSA, SNP format) so each twin's verifier sees only the
    /// root of its own format. Never set by default.
    pub simulated_tdx_root: Option<Vec<u8>>,
    /// Simulated NVIDIA device root (DER, ECDSA P-384) for simulated GPU evidence (the GPU
    /// twin of `confide-attest-sim`). Used only with `allow_simulated`, and only for GPU
    /// evidence inside simulated CPU evidence: a simulated GPU next to a hardware CPU report
    /// is refused (`Error::SimulatedGpuWithHardwareCpu`). It does not by itself satisfy
    /// `allow_simulated`, which needs a simulated CPU root. Never set by default.
    pub simulated_gpu_root: Option<Vec<u8>>,
    /// SEV-SNP settings.
    pub sev_snp: SnpPolicy,
    /// TDX settings.
    pub tdx: TdxPolicy,
    /// Ledger trust anchors.
    pub ledger: LedgerPolicy,
}

fn one_pem(name: &str, pem: &str) -> Result<Vec<u8>, Error> {
    let mut certs =
        pem_certificates(pem).map_err(|_| Error::PolicyRootInvalid(name.to_string()))?;
    if certs.len() != 1 {
        return Err(Error::PolicyRootInvalid(name.to_string()));
    }
    Ok(certs.remove(0))
}

fn to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

const MILAN_ARK: &str = include_str!("../roots/milan_ark.pem");
const GENOA_ARK: &str = include_str!("../roots/genoa_ark.pem");
const TURIN_ARK: &str = include_str!("../roots/turin_ark.pem");
const MILAN_ASK: &str = include_str!("../roots/milan_ask.pem");
const GENOA_ASK: &str = include_str!("../roots/genoa_ask.pem");
const TURIN_ASK: &str = include_str!("../roots/turin_ask.pem");
const INTEL_ROOT: &str = include_str!("../roots/intel_sgx_root_ca.pem");
const NVIDIA_ROOT: &str = include_str!("../roots/nvidia_device_root.pem");

/// AMD's published ASKs (KDS `/vcek/v1/{product}/cert_chain`), DER, by product.
fn bundled_amd_asks() -> BTreeMap<String, Vec<u8>> {
    let mut asks = BTreeMap::new();
    for (name, pem) in [
        ("milan", MILAN_ASK),
        ("genoa", GENOA_ASK),
        ("turin", TURIN_ASK),
    ] {
        if let Ok(der) = one_pem(name, pem) {
            asks.insert(name.to_string(), der);
        }
    }
    asks
}

impl TrustPolicy {
    /// Parse and validate a policy document.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let raw: PolicyToml = toml::from_str(text).map_err(|e| {
            // toml's message names the offending key and position, not secret content.
            Error::PolicyParse(e.message().to_string())
        })?;
        if raw.version != 1 {
            return Err(Error::UnsupportedPolicyVersion(raw.version));
        }
        let allowed_platforms = raw
            .allowed_platforms
            .iter()
            .map(|p| p.parse())
            .collect::<Result<Vec<Platform>, _>>()?;
        let mut amd_arks = BTreeMap::new();
        for (product, pem) in &raw.roots.amd_ark {
            amd_arks.insert(
                product.clone(),
                one_pem(&format!("amd_ark.{product}"), pem)?,
            );
        }
        let amd_asks = match &raw.roots.amd_ask {
            None => bundled_amd_asks(),
            Some(asks) => {
                let mut out = BTreeMap::new();
                for (product, pem) in asks {
                    out.insert(
                        product.clone(),
                        one_pem(&format!("amd_ask.{product}"), pem)?,
                    );
                }
                out
            }
        };
        let intel_root = raw
            .roots
            .intel
            .as_deref()
            .map(|p| one_pem("intel", p))
            .transpose()?;
        let nvidia_root = raw
            .roots
            .nvidia
            .as_deref()
            .map(|p| one_pem("nvidia", p))
            .transpose()?;
        let simulated_root = raw
            .roots
            .simulated
            .as_deref()
            .map(|p| one_pem("simulated", p))
            .transpose()?;
        let simulated_tdx_root = raw
            .roots
            .simulated_tdx
            .as_deref()
            .map(|p| one_pem("simulated_tdx", p))
            .transpose()?;
        let simulated_gpu_root = raw
            .roots
            .simulated_gpu
            .as_deref()
            .map(|p| one_pem("simulated_gpu", p))
            .transpose()?;
        if raw.allow_simulated && simulated_root.is_none() && simulated_tdx_root.is_none() {
            return Err(Error::SimulatedRootMissing);
        }
        Ok(TrustPolicy {
            allowed_platforms,
            allow_simulated: raw.allow_simulated,
            allow_debug: raw.allow_debug,
            freshness_secs: raw.freshness_secs,
            require_gpu: raw.require_gpu,
            gpu_cc_modes: raw
                .gpu_cc_modes
                .iter()
                .map(|m| m.parse())
                .collect::<Result<_, _>>()?,
            allow_unattested_model: raw.allow_unattested_model,
            max_certificate_age_secs: raw.max_certificate_age_secs,
            amd_arks,
            amd_asks,
            intel_root,
            nvidia_root,
            simulated_root,
            simulated_tdx_root,
            simulated_gpu_root,
            sev_snp: raw.sev_snp.into_policy()?,
            tdx: raw.tdx,
            ledger: raw.ledger.into_policy()?,
        })
    }

    /// Serialize back to the TOML document form.
    pub fn to_toml(&self) -> String {
        let raw = PolicyToml {
            version: 1,
            allowed_platforms: self
                .allowed_platforms
                .iter()
                .map(|p| p.name().to_string())
                .collect(),
            allow_simulated: self.allow_simulated,
            allow_debug: self.allow_debug,
            freshness_secs: self.freshness_secs,
            require_gpu: self.require_gpu,
            gpu_cc_modes: self
                .gpu_cc_modes
                .iter()
                .map(|m| m.name().to_owned())
                .collect(),
            allow_unattested_model: self.allow_unattested_model,
            max_certificate_age_secs: self.max_certificate_age_secs,
            roots: RootsToml {
                amd_ark: self
                    .amd_arks
                    .iter()
                    .map(|(k, v)| (k.clone(), to_pem(v)))
                    .collect(),
                // Always written out, so the document says exactly which ASKs are pinned.
                amd_ask: Some(
                    self.amd_asks
                        .iter()
                        .map(|(k, v)| (k.clone(), to_pem(v)))
                        .collect(),
                ),
                intel: self.intel_root.as_deref().map(to_pem),
                nvidia: self.nvidia_root.as_deref().map(to_pem),
                simulated: self.simulated_root.as_deref().map(to_pem),
                simulated_tdx: self.simulated_tdx_root.as_deref().map(to_pem),
                simulated_gpu: self.simulated_gpu_root.as_deref().map(to_pem),
            },
            sev_snp: SnpToml::from_policy(&self.sev_snp),
            tdx: self.tdx.clone(),
            ledger: LedgerToml::from_policy(&self.ledger),
        };
        // Serializing plain strings/integers/maps cannot fail.
        toml::to_string(&raw).unwrap_or_default()
    }

    /// The production default: AMD Milan/Genoa/Turin ARKs (and their ASKs), Intel SGX Root CA, NVIDIA Device
    /// Identity CA; SEV-SNP and TDX allowed; no debug; no simulation; UpToDate TDX only.
    pub fn production() -> Self {
        let mut amd_arks = BTreeMap::new();
        for (name, pem) in [
            ("milan", MILAN_ARK),
            ("genoa", GENOA_ARK),
            ("turin", TURIN_ARK),
        ] {
            if let Ok(der) = one_pem(name, pem) {
                amd_arks.insert(name.to_string(), der);
            }
        }
        TrustPolicy {
            allowed_platforms: vec![Platform::SevSnp, Platform::Tdx, Platform::Nvidia],
            allow_simulated: false,
            allow_debug: false,
            freshness_secs: default_freshness(),
            require_gpu: false,
            gpu_cc_modes: GpuCcMode::ON.to_vec(),
            allow_unattested_model: false,
            max_certificate_age_secs: None,
            amd_arks,
            amd_asks: bundled_amd_asks(),
            intel_root: one_pem("intel", INTEL_ROOT).ok(),
            nvidia_root: one_pem("nvidia", NVIDIA_ROOT).ok(),
            simulated_root: None,
            simulated_tdx_root: None,
            simulated_gpu_root: None,
            sev_snp: SnpPolicy::default(),
            tdx: TdxPolicy::default(),
            ledger: LedgerPolicy::default(),
        }
    }

    /// A copy of this policy that also accepts simulated evidence under `root_der`.
    ///
    /// Naming the root is mandatory: there is no "accept any simulated vendor".
    pub fn with_simulated_root(mut self, root_der: Vec<u8>) -> Self {
        self.simulated_root = Some(root_der);
        self.allow_simulated = true;
        if !self.allowed_platforms.contains(&Platform::Simulated) {
            self.allowed_platforms.push(Platform::Simulated);
        }
        self
    }

    /// A copy of this policy that also accepts simulated TDX evidence (`simulated-tdx`)
    /// under `root_der`, the simulated Intel root. As with [`Self::with_simulated_root`],
    /// the root must be named.
    pub fn with_simulated_tdx_root(mut self, root_der: Vec<u8>) -> Self {
        self.simulated_tdx_root = Some(root_der);
        self.allow_simulated = true;
        if !self.allowed_platforms.contains(&Platform::SimulatedTdx) {
            self.allowed_platforms.push(Platform::SimulatedTdx);
        }
        self
    }

    /// A copy of this policy that also accepts simulated NVIDIA GPU evidence under
    /// `root_der`, the simulated NVIDIA device root (`confide-attest-sim`'s GPU twin), inside
    /// simulated CPU evidence. Sets `allow_simulated` and allows [`Platform::Nvidia`]; a
    /// simulated CPU root must be pinned as well (see [`Self::with_simulated_root`]).
    pub fn with_simulated_gpu_root(mut self, root_der: Vec<u8>) -> Self {
        self.simulated_gpu_root = Some(root_der);
        self.allow_simulated = true;
        if !self.allowed_platforms.contains(&Platform::Nvidia) {
            self.allowed_platforms.push(Platform::Nvidia);
        }
        self
    }

    /// The pinned simulated root for a simulated platform (`None` for hardware platforms
    /// and for a simulated platform whose root is not pinned).
    pub fn simulated_root_for(&self, p: Platform) -> Option<&[u8]> {
        match p {
            Platform::Simulated => self.simulated_root.as_deref(),
            Platform::SimulatedTdx => self.simulated_tdx_root.as_deref(),
            _ => None,
        }
    }

    /// Whether `p` is in `allowed_platforms`.
    pub fn allows(&self, p: Platform) -> bool {
        self.allowed_platforms.contains(&p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_roundtrips_through_toml() {
        let p = TrustPolicy::production();
        assert_eq!(p.amd_arks.len(), 3);
        assert_eq!(p.amd_asks.len(), 3);
        assert!(p.intel_root.is_some() && p.nvidia_root.is_some());
        let again = TrustPolicy::from_toml(&p.to_toml()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn freshness_limits_read_and_round_trip() {
        let t = "version = 1\nallowed_platforms = []\n[ledger]\nlog_vkey = \"\"\n\
                 max_cosignature_age_secs = 86400\nmax_release_age_secs = 7776000\n";
        let p = TrustPolicy::from_toml(t).unwrap();
        assert_eq!(p.ledger.max_cosignature_age_secs, Some(86_400));
        assert_eq!(p.ledger.max_release_age_secs, Some(7_776_000));
        assert_eq!(TrustPolicy::from_toml(&p.to_toml()).unwrap(), p);
        // Absent: not checked.
        let p = TrustPolicy::from_toml("version = 1\nallowed_platforms = []\n").unwrap();
        assert_eq!(p.ledger.max_cosignature_age_secs, None);
        // The certificate age limit: absent means the freshness window (the RA-TLS
        // verifier applies that default); given, it round-trips.
        assert_eq!(p.max_certificate_age_secs, None);
        let p = TrustPolicy::from_toml(
            "version = 1\nallowed_platforms = []\nmax_certificate_age_secs = 120\n",
        )
        .unwrap();
        assert_eq!(p.max_certificate_age_secs, Some(120));
        assert_eq!(TrustPolicy::from_toml(&p.to_toml()).unwrap(), p);
    }

    #[test]
    fn unknown_field_rejected() {
        let t = "version = 1\nallowed_platforms = []\nallow_debugg = true\n";
        assert!(matches!(
            TrustPolicy::from_toml(t),
            Err(Error::PolicyParse(_))
        ));
        let t = "version = 1\nallowed_platforms = []\n[tdx]\nstatuses = []\n";
        assert!(matches!(
            TrustPolicy::from_toml(t),
            Err(Error::PolicyParse(_))
        ));
    }

    #[test]
    fn version_and_simulated_root_checked() {
        assert!(matches!(
            TrustPolicy::from_toml("version = 2\nallowed_platforms = []\n"),
            Err(Error::UnsupportedPolicyVersion(2))
        ));
        assert!(matches!(
            TrustPolicy::from_toml("version = 1\nallowed_platforms = []\nallow_simulated = true\n"),
            Err(Error::SimulatedRootMissing)
        ));
        assert!(matches!(
            TrustPolicy::from_toml(
                "version = 1\nallowed_platforms = []\n[roots]\nintel = \"not pem\"\n"
            ),
            Err(Error::PolicyRootInvalid(_))
        ));
        assert!(matches!(
            TrustPolicy::from_toml("version = 1\nallowed_platforms = [\"sgx\"]\n"),
            Err(Error::UnknownPlatformName)
        ));
    }

    /// The simulated TDX root is its own key in `[roots]`: documents without it still parse,
    /// it alone satisfies `allow_simulated`, and it round-trips.
    #[test]
    fn simulated_tdx_root_is_separate_and_optional() {
        let p = TrustPolicy::production();
        assert!(p.simulated_tdx_root.is_none());
        let intel = p.intel_root.clone().unwrap();
        let with = p.with_simulated_tdx_root(intel.clone());
        assert!(with.allow_simulated && with.allows(Platform::SimulatedTdx));
        assert!(!with.allows(Platform::Simulated) && with.simulated_root.is_none());
        assert_eq!(
            with.simulated_root_for(Platform::SimulatedTdx),
            Some(&intel[..])
        );
        assert_eq!(with.simulated_root_for(Platform::Simulated), None);
        let text = with.to_toml();
        assert!(text.contains("simulated_tdx = "));
        assert_eq!(TrustPolicy::from_toml(&text).unwrap(), with);
        assert!(matches!(
            TrustPolicy::from_toml(
                "version = 1\nallowed_platforms = []\n[roots]\nsimulated_tdx = \"x\"\n"
            ),
            Err(Error::PolicyRootInvalid(n)) if n == "simulated_tdx"
        ));
    }

    /// `allow_unattested_model` defaults to false (older documents parse unchanged and
    /// refuse "model digest not attested"), parses when set, and round-trips.
    #[test]
    fn unattested_model_is_refused_by_default_and_round_trips() {
        let p = TrustPolicy::production();
        assert!(!p.allow_unattested_model);
        assert!(!p.to_toml().contains("allow_unattested_model"));
        let old = TrustPolicy::from_toml("version = 1\nallowed_platforms = [\"tdx\"]\n").unwrap();
        assert!(!old.allow_unattested_model);
        let on = TrustPolicy::from_toml(
            "version = 1\nallowed_platforms = [\"tdx\"]\nallow_unattested_model = true\n",
        )
        .unwrap();
        assert!(on.allow_unattested_model);
        assert_eq!(TrustPolicy::from_toml(&on.to_toml()).unwrap(), on);
    }

    /// The simulated GPU root is its own optional key in `[roots]`: documents without it still
    /// parse (and pin none), it round-trips, a bad PEM is named, and it alone does not
    /// satisfy `allow_simulated` (a simulated GPU is only accepted inside a simulated CPU).
    #[test]
    fn simulated_gpu_root_is_separate_and_optional() {
        let p = TrustPolicy::production();
        assert!(p.simulated_gpu_root.is_none());
        let old = TrustPolicy::from_toml(&p.to_toml()).unwrap();
        assert!(old.simulated_gpu_root.is_none());
        let nvidia = p.nvidia_root.clone().unwrap();
        let mut base = p.clone();
        base.allowed_platforms.retain(|x| *x != Platform::Nvidia);
        let with = base.with_simulated_gpu_root(nvidia.clone());
        assert!(with.allow_simulated && with.allows(Platform::Nvidia));
        assert_eq!(with.simulated_gpu_root.as_deref(), Some(&nvidia[..]));
        assert!(with.simulated_root.is_none() && with.simulated_tdx_root.is_none());
        let text = with.to_toml();
        assert!(text.contains("simulated_gpu = "));
        assert!(matches!(
            TrustPolicy::from_toml(&text),
            Err(Error::SimulatedRootMissing)
        ));
        let both = with.with_simulated_root(p.intel_root.clone().unwrap());
        assert_eq!(TrustPolicy::from_toml(&both.to_toml()).unwrap(), both);
        assert!(matches!(
            TrustPolicy::from_toml(
                "version = 1\nallowed_platforms = []\n[roots]\nsimulated_gpu = \"x\"\n"
            ),
            Err(Error::PolicyRootInvalid(n)) if n == "simulated_gpu"
        ));
    }

    #[test]
    fn defaults_are_strict() {
        let p = TrustPolicy::from_toml(
            "version = 1\nallowed_platforms = [\"sev-snp\"]\n[ledger]\nlog_vkey = \"k\"\n\
             witness_vkeys = [\"w1\", \"w2\"]\n",
        )
        .unwrap();
        assert!(!p.allow_simulated && !p.allow_debug && !p.require_gpu);
        assert_eq!(p.tdx.accepted_tcb_statuses, vec!["UpToDate".to_string()]);
        assert_eq!(
            p.ledger.witness_quorum, 2,
            "every listed witness by default"
        );
        assert_eq!(p.freshness_secs, 300);
    }

    /// A quorum is never silently 0: listing witnesses but forgetting the quorum requires
    /// all of them; an explicit 0 with a ledger key needs the development flag; a quorum
    /// that can never be met is refused. The written form round-trips.
    #[test]
    fn witness_quorum_has_no_quiet_default() {
        let doc = |ledger: &str| {
            TrustPolicy::from_toml(&format!(
                "version = 1\nallowed_platforms = [\"sev-snp\"]\n[ledger]\n{ledger}"
            ))
        };
        let three = "log_vkey = \"k\"\nwitness_vkeys = [\"a\", \"b\", \"c\"]\n";
        assert_eq!(doc(three).unwrap().ledger.witness_quorum, 3);
        assert_eq!(
            doc(&format!("{three}witness_quorum = 2\n"))
                .unwrap()
                .ledger
                .witness_quorum,
            2
        );
        assert!(matches!(
            doc(&format!("{three}witness_quorum = 0\n")),
            Err(Error::WitnessQuorumZero)
        ));
        assert!(matches!(
            doc("log_vkey = \"k\"\n"),
            Err(Error::WitnessQuorumZero)
        ));
        assert!(matches!(
            doc(&format!("{three}witness_quorum = 4\n")),
            Err(Error::WitnessQuorumUnreachable {
                quorum: 4,
                listed: 3
            })
        ));
        let dev = doc("log_vkey = \"k\"\nallow_no_witness_quorum = true\n").unwrap();
        assert_eq!(dev.ledger.witness_quorum, 0);
        assert!(dev.ledger.allow_no_witness_quorum);
        assert_eq!(TrustPolicy::from_toml(&dev.to_toml()).unwrap(), dev);
        // No ledger configured at all (a policy for evidence checks only) stays valid.
        assert_eq!(doc("").unwrap().ledger, LedgerPolicy::default());
    }

    /// `amd_ask` is optional and backwards compatible: absent means the bundled production
    /// ASKs, an empty table means none, a named PEM must be one certificate.
    #[test]
    fn amd_ask_defaults_to_bundled_and_can_be_emptied() {
        let old =
            TrustPolicy::from_toml("version = 1\nallowed_platforms = [\"sev-snp\"]\n").unwrap();
        assert_eq!(old.amd_asks, TrustPolicy::production().amd_asks);
        assert!(old.amd_arks.is_empty());
        let none = TrustPolicy::from_toml(
            "version = 1\nallowed_platforms = [\"sev-snp\"]\n[roots]\namd_ask = {}\n",
        )
        .unwrap();
        assert!(none.amd_asks.is_empty());
        assert_eq!(TrustPolicy::from_toml(&none.to_toml()).unwrap(), none);
        let one = TrustPolicy::from_toml(&format!(
            "version = 1\nallowed_platforms = [\"sev-snp\"]\n[roots.amd_ask]\nmilan = \"\"\"\n{MILAN_ASK}\"\"\"\n"
        ))
        .unwrap();
        assert_eq!(one.amd_asks.keys().collect::<Vec<_>>(), vec!["milan"]);
        assert!(matches!(
            TrustPolicy::from_toml(
                "version = 1\nallowed_platforms = []\n[roots.amd_ask]\ngenoa = \"not pem\"\n"
            ),
            Err(Error::PolicyRootInvalid(n)) if n == "amd_ask.genoa"
        ));
    }

    /// `gpu_cc_modes` defaults to CC on, round-trips, and refuses a name it does not know.
    #[test]
    fn gpu_cc_modes_default_round_trip_and_unknown() {
        let p = TrustPolicy::from_toml("version = 1\nallowed_platforms = [\"sev-snp\"]\n").unwrap();
        assert_eq!(p.gpu_cc_modes, GpuCcMode::ON.to_vec());
        let p = TrustPolicy::from_toml(
            "version = 1\nallowed_platforms = [\"sev-snp\"]\ngpu_cc_modes = [\"spt\", \"unstated\"]\n",
        )
        .unwrap();
        assert_eq!(p.gpu_cc_modes, vec![GpuCcMode::Spt, GpuCcMode::Unstated]);
        let again = TrustPolicy::from_toml(&p.to_toml()).unwrap();
        assert_eq!(again.gpu_cc_modes, p.gpu_cc_modes);
        assert!(matches!(
            TrustPolicy::from_toml(
                "version = 1\nallowed_platforms = [\"sev-snp\"]\ngpu_cc_modes = [\"on\"]\n"
            ),
            Err(Error::UnknownGpuCcMode(m)) if m == "on"
        ));
    }

    /// SEV-SNP floors are strict by default: a document without `[sev_snp]` gets AMD's
    /// bulletin floors for Milan and Genoa and none for Turin; a named floor replaces one
    /// generation's default and must be complete; FMC belongs to Turin only; unknown
    /// generations and malformed ABI versions are errors; the written form round-trips.
    #[test]
    fn snp_floors_default_to_bulletins_and_are_checked() {
        let doc = |snp: &str| {
            TrustPolicy::from_toml(&format!(
                "version = 1\nallowed_platforms = [\"sev-snp\"]\n{snp}"
            ))
        };
        let bare = doc("").unwrap();
        assert_eq!(bare.sev_snp, SnpPolicy::default());
        assert_eq!(bare.sev_snp.tcb_floors, bulletin_tcb_floors());
        let milan = bare.sev_snp.tcb_floor(SnpGeneration::Milan).unwrap();
        assert_eq!(
            (milan.bootloader, milan.snp, milan.microcode),
            (4, 0x18, 0xDB)
        );
        assert!(bare.sev_snp.tcb_floor(SnpGeneration::Turin).is_none());
        assert_eq!(TrustPolicy::production().sev_snp, SnpPolicy::default());

        let lowered =
            doc("[sev_snp.tcb_floor.milan]\nbootloader = 3\ntee = 0\nsnp = 8\nmicrocode = 115\n")
                .unwrap();
        assert_eq!(
            lowered.sev_snp.tcb_floor(SnpGeneration::Milan).unwrap().snp,
            8
        );
        // Genoa keeps its bulletin floor.
        assert_eq!(
            lowered.sev_snp.tcb_floor(SnpGeneration::Genoa),
            bulletin_tcb_floors().get(&SnpGeneration::Genoa)
        );
        assert_eq!(TrustPolicy::from_toml(&lowered.to_toml()).unwrap(), lowered);

        // Incomplete floors do not parse (no silent 0 for a forgotten component).
        assert!(matches!(
            doc("[sev_snp.tcb_floor.genoa]\nsnp = 1\n"),
            Err(Error::PolicyParse(_))
        ));
        assert!(matches!(
            doc("[sev_snp.tcb_floor.venice]\nbootloader = 0\ntee = 0\nsnp = 0\nmicrocode = 0\n"),
            Err(Error::PolicyParse(_))
        ));
        assert!(matches!(
            doc("[sev_snp.tcb_floor.turin]\nbootloader = 0\ntee = 0\nsnp = 0\nmicrocode = 0\n"),
            Err(Error::SnpTcbFloorInvalid("turin"))
        ));
        assert!(matches!(
            doc(
                "[sev_snp.tcb_floor.milan]\nbootloader = 0\ntee = 0\nsnp = 0\nmicrocode = 0\nfmc = 1\n"
            ),
            Err(Error::SnpTcbFloorInvalid("milan"))
        ));
        let turin = doc(
            "[sev_snp.tcb_floor.turin]\nbootloader = 1\ntee = 1\nsnp = 1\nmicrocode = 1\nfmc = 1\n",
        )
        .unwrap();
        assert_eq!(
            turin.sev_snp.tcb_floor(SnpGeneration::Turin).unwrap().fmc,
            Some(1)
        );
        assert_eq!(TrustPolicy::from_toml(&turin.to_toml()).unwrap(), turin);

        let guest =
            doc("[sev_snp]\nmin_guest_abi = \"1.51\"\nrequire_smt_disabled = true\n").unwrap();
        assert_eq!(guest.sev_snp.min_guest_abi, (1, 51));
        assert!(guest.sev_snp.require_smt_disabled);
        assert_eq!(TrustPolicy::from_toml(&guest.to_toml()).unwrap(), guest);
        for bad in ["1", "1.x", "256.0", ""] {
            assert!(
                matches!(
                    doc(&format!("[sev_snp]\nmin_guest_abi = \"{bad}\"\n")),
                    Err(Error::SnpGuestAbiInvalid)
                ),
                "{bad}"
            );
        }
    }
}
