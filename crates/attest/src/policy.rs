//! The trust policy: one versioned TOML document holding every trust decision a client makes.
//!
//! ```toml
//! version = 1
//! allowed_platforms = ["sev-snp", "tdx"]
//! allow_simulated = false          # default false; true also needs roots.simulated
//! allow_debug = false
//! freshness_secs = 300             # window for evidence that carries a signed time
//! require_gpu = false              # demand NVIDIA evidence bound into the CPU report
//!
//! [roots]                          # PEM certificates, pinned byte for byte
//! amd_ark = { milan = "-----BEGIN CERTIFICATE-----...", genoa = "...", turin = "..." }
//! intel = "-----BEGIN CERTIFICATE-----..."      # Intel SGX Root CA (DCAP)
//! nvidia = "-----BEGIN CERTIFICATE-----..."     # NVIDIA Device Identity CA
//! simulated = "-----BEGIN CERTIFICATE-----..."  # only if you mean it
//!
//! [sev_snp.min_tcb]                # minimum REPORTED_TCB components
//! bootloader = 0
//! tee = 0
//! snp = 0
//! microcode = 0
//!
//! [tdx]
//! accepted_tcb_statuses = ["UpToDate"]   # add "OutOfDate", "ConfigurationNeeded", ...
//!
//! [ledger]                         # parsed by the ledger client, kept as plain strings here
//! log_vkey = "ledger.example+1234abcd+AQ..."
//! witness_vkeys = ["witness1+...", "witness2+..."]
//! witness_quorum = 1              # default: every listed witness; 0 needs
//!                                  # allow_no_witness_quorum = true (development only)
//! ```
//!
//! Unknown fields anywhere are an error (a typo in a security setting must not be ignored).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Platform, input::pem_certificates};

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

/// SEV-SNP specific policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpPolicy {
    /// Minimum reported TCB.
    #[serde(default)]
    pub min_tcb: SnpMinTcb,
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
        })
    }

    fn from_policy(p: &LedgerPolicy) -> Self {
        LedgerToml {
            log_vkey: p.log_vkey.clone(),
            witness_vkeys: p.witness_vkeys.clone(),
            witness_quorum: Some(p.witness_quorum),
            allow_no_witness_quorum: p.allow_no_witness_quorum,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootsToml {
    #[serde(default)]
    amd_ark: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nvidia: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    simulated: Option<String>,
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
    #[serde(default)]
    roots: RootsToml,
    #[serde(default)]
    sev_snp: SnpPolicy,
    #[serde(default)]
    tdx: TdxPolicy,
    #[serde(default)]
    ledger: LedgerToml,
}

fn default_freshness() -> u64 {
    300
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
    /// AMD ARK certificates (DER) by product name.
    pub amd_arks: BTreeMap<String, Vec<u8>>,
    /// Intel SGX Root CA (DER).
    pub intel_root: Option<Vec<u8>>,
    /// NVIDIA Device Identity CA (DER).
    pub nvidia_root: Option<Vec<u8>>,
    /// Simulated vendor root (DER). Never set by default.
    pub simulated_root: Option<Vec<u8>>,
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
const INTEL_ROOT: &str = include_str!("../roots/intel_sgx_root_ca.pem");
const NVIDIA_ROOT: &str = include_str!("../roots/nvidia_device_root.pem");

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
        if raw.allow_simulated && simulated_root.is_none() {
            return Err(Error::SimulatedRootMissing);
        }
        Ok(TrustPolicy {
            allowed_platforms,
            allow_simulated: raw.allow_simulated,
            allow_debug: raw.allow_debug,
            freshness_secs: raw.freshness_secs,
            require_gpu: raw.require_gpu,
            amd_arks,
            intel_root,
            nvidia_root,
            simulated_root,
            sev_snp: raw.sev_snp,
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
            roots: RootsToml {
                amd_ark: self
                    .amd_arks
                    .iter()
                    .map(|(k, v)| (k.clone(), to_pem(v)))
                    .collect(),
                intel: self.intel_root.as_deref().map(to_pem),
                nvidia: self.nvidia_root.as_deref().map(to_pem),
                simulated: self.simulated_root.as_deref().map(to_pem),
            },
            sev_snp: self.sev_snp.clone(),
            tdx: self.tdx.clone(),
            ledger: LedgerToml::from_policy(&self.ledger),
        };
        // Serializing plain strings/integers/maps cannot fail.
        toml::to_string(&raw).unwrap_or_default()
    }

    /// The production default: AMD Milan/Genoa/Turin ARKs, Intel SGX Root CA, NVIDIA Device
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
            amd_arks,
            intel_root: one_pem("intel", INTEL_ROOT).ok(),
            nvidia_root: one_pem("nvidia", NVIDIA_ROOT).ok(),
            simulated_root: None,
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
        assert!(p.intel_root.is_some() && p.nvidia_root.is_some());
        let again = TrustPolicy::from_toml(&p.to_toml()).unwrap();
        assert_eq!(again, p);
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
}
