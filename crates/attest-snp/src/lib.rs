//! AMD SEV-SNP attestation report verifier.
//!
//! Implements the checks of AMD's *SEV Secure Nested Paging Firmware ABI Specification*
//! (pub. 56860), §7.3 "Attestation" / Table 23 (ATTESTATION_REPORT), and the *VCEK/VLEK
//! Certificate and KDS Interface Specification* (pub. 57230) §3 (certificate extensions):
//!
//! 1. the report is exactly 1184 bytes, VERSION is 2..=5, SIGNATURE_ALGO is 1
//!    (ECDSA P-384 with SHA-384), and it re-encodes byte for byte (reserved fields are zero);
//! 2. the ARK is one pinned in the [`TrustPolicy`] (per product, byte for byte), it signs
//!    itself, it signs the ASK (or ASVK), which signs the VCEK (or VLEK) — RSA-PSS/SHA-384,
//!    checked by the `sev` crate because strict generic X.509 validators reject AMD's encodings.
//!    The chain may be presented as `[VEK, ASK, ARK]`, `[VEK, ASK]` (pinned ARK) or `[VCEK]`
//!    alone: then the policy's pinned ASKs (`TrustPolicy::amd_asks`, AMD's Milan/Genoa/Turin
//!    ASKs by default) complete it, those whose subject is the VCEK's issuer tried first, and a
//!    pinned ASK counts only if a pinned ARK signs it. ASVKs are not bundled: a VLEK must come
//!    with its ASVK ([`SnpError::AsvkRequired`]);
//! 3. every certificate's validity period contains `now`;
//! 4. the VEK's ECDSA P-384 signature covers report bytes 0x000..0x2A0;
//! 5. the VCEK's TCB extensions (blSPL, teeSPL, snpSPL, ucodeSPL, fmcSPL on Turin) equal the
//!    report's REPORTED_TCB and its hwID equals CHIP_ID (a VCEK is per chip *and* per TCB);
//! 6. REPORTED_TCB is at least the policy minimum (`sev_snp.min_tcb`) and, for hardware, at least
//!    the floor of the chip's product generation (`sev_snp.tcb_floor`, AMD bulletin values by
//!    default; FMC SPL too on Turin). The generation is the one named by the pinned ARK that
//!    signed the chain; a version 3+ report's CPUID_FAM_ID/MOD_ID must agree with it;
//! 7. VMPL is 0: only a report requested from the guest's most privileged level speaks for the
//!    whole guest (a lower level, e.g. under an SVSM/paravisor, could ask for one about itself);
//! 8. the guest POLICY forbids a migration agent (MIGRATE_MA = 0: a migration agent can read
//!    and move the guest's memory), asks for at least `sev_snp.min_guest_abi`, and forbids host
//!    SMT when `sev_snp.require_smt_disabled` says so.
//!
//! Debug (GUEST_POLICY bit 19), REPORT_DATA and HOST_DATA binding are judged by
//! `confide_attest::verify_with`, which consumes the [`PlatformClaims`] returned here.
//!
//! The same code verifies *simulated* evidence: when the chain ends at the policy's
//! simulated root, the claims say [`Platform::Simulated`] and the signed creation time is
//! read from IMAGE_ID (see [`SIMULATED_FAMILY_ID`]).

use std::collections::HashMap;
use std::sync::Mutex;

use confide_attest::{
    Evidence, Platform, PlatformClaims, PlatformError, PlatformVerifier, SnpGeneration, Tcb,
    TrustPolicy, UnixTime,
};
use der::{Decode, Encode};
use sev::certs::snp::{Certificate, Verifiable};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;
use sha2::{Digest, Sha256};

/// Size of an SNP ATTESTATION_REPORT (ABI spec Table 23).
pub const REPORT_LEN: usize = 0x4A0;
/// Bytes covered by the signature: 0x000..0x2A0.
pub const SIGNED_LEN: usize = 0x2A0;
/// Offset of REPORT_DATA.
pub const REPORT_DATA_OFFSET: usize = 0x50;

/// FAMILY_ID of simulated reports. A simulated report also carries its creation time
/// (seconds since the epoch, little-endian u64) in IMAGE_ID[0..8]; real firmware signs no time.
pub const SIMULATED_FAMILY_ID: [u8; 16] = *b"CONFIDE-SIMULATE";

/// Which certificate of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRole {
    /// VCEK or VLEK (signs reports).
    Vek,
    /// ASK or ASVK (AMD SEV signing key).
    Ask,
    /// ARK (AMD root key).
    Ark,
}

impl std::fmt::Display for CertRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CertRole::Vek => "VCEK/VLEK",
            CertRole::Ask => "ASK",
            CertRole::Ark => "ARK",
        })
    }
}

/// Why an SNP report was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnpError {
    /// Not 1184 bytes.
    #[error("report length {0}, expected 1184")]
    ReportLength(usize),
    /// VERSION outside 2..=5.
    #[error("unsupported report version {0}")]
    UnsupportedVersion(u32),
    /// The `sev` parser rejected the report.
    #[error("report does not parse: {0}")]
    Parse(String),
    /// SIGNATURE_ALGO is not 1.
    #[error("unsupported signature algorithm {0}")]
    UnsupportedSignatureAlgorithm(u32),
    /// MASK_CHIP_KEY set: the firmware did not sign.
    #[error("report is unsigned (MASK_CHIP_KEY set)")]
    Unsigned,
    /// SIGNING_KEY is neither VCEK nor VLEK.
    #[error("unknown signing key selector {0}")]
    UnknownSigningKey(u32),
    /// Reserved bytes are not zero (the report does not re-encode to itself).
    #[error("report has non-zero reserved bytes")]
    NonCanonical,
    /// No certificate, or more than three (VEK, ASK, ARK), supplied.
    #[error("certificate chain must be the VCEK/VLEK, optionally followed by the ASK and ARK")]
    MissingCertificates,
    /// Only a VCEK was supplied and no pinned ASK (signed by a pinned ARK) signs it.
    #[error("no pinned ASK signs the VCEK; supply the ASK")]
    NoPinnedAskSignsVek,
    /// Only the VLEK was supplied: VLEKs are signed by the ASVK, which is not pinned.
    #[error("a VLEK-signed report needs its ASVK in the chain (ASVKs are not pinned)")]
    AsvkRequired,
    /// A certificate is not DER X.509.
    #[error("{0} certificate does not parse")]
    BadCertificate(CertRole),
    /// The supplied ARK is not one pinned in the policy.
    #[error("ARK is not pinned by the trust policy")]
    UntrustedArk,
    /// The ARK's self-signature is invalid.
    #[error("ARK self-signature invalid")]
    ArkSelfSignature,
    /// No pinned ARK signs the ASK.
    #[error("ASK is not signed by any pinned ARK")]
    AskNotSignedByPinnedArk,
    /// The ASK does not sign the VEK.
    #[error("VCEK/VLEK is not signed by the ASK")]
    VekNotSignedByAsk,
    /// The VEK does not sign the report.
    #[error("report signature does not verify under the VCEK/VLEK")]
    ReportSignature,
    /// `now` is after notAfter.
    #[error("{0} certificate has expired")]
    CertificateExpired(CertRole),
    /// `now` is before notBefore.
    #[error("{0} certificate is not yet valid")]
    CertificateNotYetValid(CertRole),
    /// A required VCEK extension is missing or malformed.
    #[error("VCEK extension {0} missing or malformed")]
    TcbExtensionMissing(&'static str),
    /// A VCEK TCB extension disagrees with REPORTED_TCB.
    #[error("VCEK {0} does not match the report's REPORTED_TCB")]
    TcbExtensionMismatch(&'static str),
    /// VCEK hwID differs from CHIP_ID.
    #[error("VCEK hwID does not match the report's CHIP_ID")]
    ChipIdMismatch,
    /// REPORTED_TCB component below policy.
    #[error("REPORTED_TCB {0} is below the policy minimum")]
    TcbBelowMinimum(&'static str),
    /// Chain ends at the simulated root but the report lacks the simulated FAMILY_ID.
    #[error("simulated report lacks the simulated FAMILY_ID marker")]
    SimulatedMarkerMissing,
    /// REPORTED_TCB component below the policy floor of the chip's generation.
    #[error("REPORTED_TCB {component} is {have}, below the {generation} floor {floor}")]
    TcbBelowFloor {
        /// Product generation (from the signing ARK).
        generation: SnpGeneration,
        /// Which TCB component.
        component: &'static str,
        /// The report's value.
        have: u8,
        /// The policy floor.
        floor: u8,
    },
    /// The policy has no TCB floor for this generation (Turin has no bulletin default).
    #[error("the trust policy has no sev_snp.tcb_floor.{0}; {0} evidence is refused")]
    NoTcbFloor(SnpGeneration),
    /// The pinned ARK that signed the chain is not one of AMD's Milan/Genoa/Turin roots.
    #[error("the signing ARK names no known product generation; no TCB floor applies")]
    UnknownGeneration,
    /// A version 3+ report's CPUID family/model belongs to another generation than its chain.
    #[error("report CPUID family {family:#04x} model {model:#04x} is not a {chain} part")]
    GenerationMismatch {
        /// Generation named by the chain.
        chain: SnpGeneration,
        /// CPUID_FAM_ID of the report.
        family: u8,
        /// CPUID_MOD_ID of the report.
        model: u8,
    },
    /// The report was requested from VMPL 1..=3, not from the guest's most privileged level.
    #[error("report requested at VMPL {0}; VMPL 0 is required")]
    VmplNotZero(u32),
    /// Guest POLICY MIGRATE_MA is set: a migration agent may be associated with the guest.
    #[error("guest policy allows a migration agent (MIGRATE_MA)")]
    MigrationAgentAllowed,
    /// Guest POLICY allows host SMT and the trust policy requires it disabled.
    #[error("guest policy allows host SMT and the trust policy requires it disabled")]
    SmtAllowed,
    /// Guest POLICY ABI_MAJOR.ABI_MINOR is below the trust policy's minimum.
    #[error("guest policy ABI {major}.{minor} is below the minimum {min_major}.{min_minor}")]
    GuestAbiBelowMinimum {
        /// ABI_MAJOR of the guest policy.
        major: u8,
        /// ABI_MINOR of the guest policy.
        minor: u8,
        /// Policy minimum major.
        min_major: u8,
        /// Policy minimum minor.
        min_minor: u8,
    },
}

const OID_BL: &str = "1.3.6.1.4.1.3704.1.3.1";
const OID_TEE: &str = "1.3.6.1.4.1.3704.1.3.2";
const OID_SNP: &str = "1.3.6.1.4.1.3704.1.3.3";
const OID_UCODE: &str = "1.3.6.1.4.1.3704.1.3.8";
const OID_FMC: &str = "1.3.6.1.4.1.3704.1.3.9";
const OID_HWID: &str = "1.3.6.1.4.1.3704.1.4";

/// Facts about a verified chain, reusable while the same VEK/ASK bytes are presented.
#[derive(Clone)]
struct CheckedChain {
    simulated: bool,
    /// The generation named by the signing ARK's subject (`None`: not an AMD product root).
    generation: Option<SnpGeneration>,
    vek: Certificate,
    validity: [(CertRole, u64, u64); 3],
    ext: VekExtensions,
}

#[derive(Clone, Debug, Default)]
struct VekExtensions {
    bl: Option<u8>,
    tee: Option<u8>,
    snp: Option<u8>,
    ucode: Option<u8>,
    fmc: Option<u8>,
    hwid: Option<Vec<u8>>,
}

/// SEV-SNP verifier. With [`SnpVerifier::with_cache`] it remembers chains it has verified
/// (keyed by the SHA-256 of the presented certificates and the pinned root), so repeated
/// evidence from the same chip skips the three RSA-PSS checks; validity dates, TCB
/// extensions and the report signature are still checked every time.
#[derive(Default)]
pub struct SnpVerifier {
    cache: Option<Mutex<HashMap<[u8; 32], CheckedChain>>>,
}

impl SnpVerifier {
    /// A verifier that checks the whole chain on every call.
    pub fn new() -> Self {
        SnpVerifier { cache: None }
    }

    /// A verifier that caches verified certificate chains.
    pub fn with_cache() -> Self {
        SnpVerifier {
            cache: Some(Mutex::new(HashMap::new())),
        }
    }

    /// Verify a raw report with its chain (VEK, ASK[, ARK], DER) against `policy` at `now`.
    pub fn verify_report(
        &self,
        report_bytes: &[u8],
        certs: &[Vec<u8>],
        policy: &TrustPolicy,
        now: UnixTime,
    ) -> Result<PlatformClaims, SnpError> {
        let report = parse_report(report_bytes)?;
        let (vek_der, ask_der, ark_der) = match certs {
            [v] => (v.as_slice(), None, None),
            [v, a] => (v.as_slice(), Some(a.as_slice()), None),
            [v, a, r] => (v.as_slice(), Some(a.as_slice()), Some(r.as_slice())),
            _ => return Err(SnpError::MissingCertificates),
        };
        // SIGNING_KEY 1 = VLEK, signed by the ASVK; only ASKs are pinned.
        if ask_der.is_none() && report.key_info.signing_key() == 1 {
            return Err(SnpError::AsvkRequired);
        }

        let key = chain_key(vek_der, ask_der, ark_der, policy);
        let cached = self
            .cache
            .as_ref()
            .and_then(|c| c.lock().ok().and_then(|m| m.get(&key).cloned()));
        let chain = match cached {
            Some(c) => c,
            None => {
                let c = check_chain(vek_der, ask_der, ark_der, policy)?;
                if let Some(Ok(mut m)) = self.cache.as_ref().map(|c| c.lock()) {
                    m.insert(key, c.clone());
                }
                c
            }
        };

        for (role, nb, na) in chain.validity {
            if now.0 < nb {
                return Err(SnpError::CertificateNotYetValid(role));
            }
            if now.0 > na {
                return Err(SnpError::CertificateExpired(role));
            }
        }

        (&chain.vek, &report)
            .verify()
            .map_err(|_| SnpError::ReportSignature)?;

        check_extensions(&chain.ext, &report)?;

        let t = report.reported_tcb;
        let min = policy.sev_snp.min_tcb;
        for (name, have, want) in [
            ("bootloader", t.bootloader, min.bootloader),
            ("tee", t.tee, min.tee),
            ("snp", t.snp, min.snp),
            ("microcode", t.microcode, min.microcode),
        ] {
            if have < want {
                return Err(SnpError::TcbBelowMinimum(name));
            }
        }
        // The simulated firmware's TCB is a constant of the simulator: only hardware has a
        // product generation and a bulletin floor.
        if !chain.simulated {
            let generation = chain.generation.ok_or(SnpError::UnknownGeneration)?;
            check_cpuid(generation, &report)?;
            check_tcb_floor(generation, &t, policy)?;
        }
        check_guest(&report, policy)?;

        let (platform, signed_time) = if chain.simulated {
            if report.family_id != SIMULATED_FAMILY_ID {
                return Err(SnpError::SimulatedMarkerMissing);
            }
            let mut t = [0u8; 8];
            t.copy_from_slice(&report.image_id[..8]);
            (Platform::Simulated, Some(u64::from_le_bytes(t)))
        } else {
            (Platform::SevSnp, None)
        };

        Ok(PlatformClaims {
            platform,
            measurement: report.measurement.to_vec(),
            report_data: report.report_data,
            binding_field: report.host_data.to_vec(),
            tcb: Tcb::Snp {
                bootloader: t.bootloader,
                tee: t.tee,
                snp: t.snp,
                microcode: t.microcode,
                fmc: t.fmc,
            },
            chip_id: report.chip_id.to_vec(),
            debug: report.policy.debug_allowed(),
            signed_time,
            version: report.version,
        })
    }
}

impl PlatformVerifier for SnpVerifier {
    fn handles(&self, p: Platform) -> bool {
        matches!(p, Platform::SevSnp | Platform::Simulated)
    }

    fn verify_platform(
        &self,
        evidence: &Evidence,
        policy: &TrustPolicy,
        now: UnixTime,
    ) -> Result<PlatformClaims, PlatformError> {
        Ok(self.verify_report(&evidence.report, &evidence.certs, policy, now)?)
    }
}

/// The generation named by an AMD ARK's subject common name (`ARK-Milan`, `ARK-Genoa`,
/// `ARK-Turin`). AMD's roots are pinned byte for byte, so the name is AMD's, not the host's.
fn ark_generation(ark: &x509_cert::Certificate) -> Option<SnpGeneration> {
    let subject = ark.tbs_certificate.subject.to_string();
    let cn = subject
        .split(',')
        .find_map(|part| part.trim().strip_prefix("CN="))?;
    match cn {
        "ARK-Milan" => Some(SnpGeneration::Milan),
        "ARK-Genoa" => Some(SnpGeneration::Genoa),
        "ARK-Turin" => Some(SnpGeneration::Turin),
        _ => None,
    }
}

/// The generation of a CPUID family/model (AMD revision guides 56683, 57095, 58251).
fn cpuid_generation(family: u8, model: u8) -> Option<SnpGeneration> {
    match (family, model) {
        (0x19, 0x00..=0x0F) => Some(SnpGeneration::Milan),
        (0x19, 0x10..=0x1F | 0xA0..=0xAF) => Some(SnpGeneration::Genoa),
        (0x1A, 0x00..=0x1F) => Some(SnpGeneration::Turin),
        _ => None,
    }
}

/// Version 3+ reports name the CPU; it must be a part of the generation whose ARK signed the
/// chain (version 2 reports carry no CPUID, and the chain alone decides).
fn check_cpuid(generation: SnpGeneration, report: &AttestationReport) -> Result<(), SnpError> {
    if let (Some(family), Some(model)) = (report.cpuid_fam_id, report.cpuid_mod_id)
        && cpuid_generation(family, model) != Some(generation)
    {
        return Err(SnpError::GenerationMismatch {
            chain: generation,
            family,
            model,
        });
    }
    Ok(())
}

/// REPORTED_TCB against the floor of its generation, component by component (SPLs are not
/// ordered as a whole: each component is a separate security version).
pub fn check_tcb_floor(
    generation: SnpGeneration,
    tcb: &sev::firmware::host::TcbVersion,
    policy: &TrustPolicy,
) -> Result<(), SnpError> {
    let floor = policy
        .sev_snp
        .tcb_floor(generation)
        .ok_or(SnpError::NoTcbFloor(generation))?;
    let mut components = vec![
        ("bootloader", tcb.bootloader, floor.bootloader),
        ("tee", tcb.tee, floor.tee),
        ("snp", tcb.snp, floor.snp),
        ("microcode", tcb.microcode, floor.microcode),
    ];
    if let Some(fmc) = floor.fmc {
        components.push(("fmc", tcb.fmc.unwrap_or(0), fmc));
    }
    for (component, have, floor) in components {
        if have < floor {
            return Err(SnpError::TcbBelowFloor {
                generation,
                component,
                have,
                floor,
            });
        }
    }
    Ok(())
}

/// VMPL and the guest POLICY bits the trust policy judges whatever a release pins.
fn check_guest(report: &AttestationReport, policy: &TrustPolicy) -> Result<(), SnpError> {
    if report.vmpl != 0 {
        return Err(SnpError::VmplNotZero(report.vmpl));
    }
    let gp = report.policy;
    if gp.migrate_ma_allowed() {
        return Err(SnpError::MigrationAgentAllowed);
    }
    if policy.sev_snp.require_smt_disabled && gp.smt_allowed() {
        return Err(SnpError::SmtAllowed);
    }
    let (major, minor) = (gp.abi_major() as u8, gp.abi_minor() as u8);
    let (min_major, min_minor) = policy.sev_snp.min_guest_abi;
    if (major, minor) < (min_major, min_minor) {
        return Err(SnpError::GuestAbiBelowMinimum {
            major,
            minor,
            min_major,
            min_minor,
        });
    }
    Ok(())
}

/// REPORT_DATA of a report, *unverified* (for tools that display it before verifying).
pub fn unverified_report_data(report_bytes: &[u8]) -> Option<[u8; 64]> {
    let s = report_bytes.get(REPORT_DATA_OFFSET..REPORT_DATA_OFFSET + 64)?;
    let mut out = [0u8; 64];
    out.copy_from_slice(s);
    Some(out)
}

/// Parse and structurally validate a report (fuzz entry point).
pub fn parse_report(bytes: &[u8]) -> Result<AttestationReport, SnpError> {
    if bytes.len() != REPORT_LEN {
        return Err(SnpError::ReportLength(bytes.len()));
    }
    let version = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if !(2..=5).contains(&version) {
        return Err(SnpError::UnsupportedVersion(version));
    }
    // Reserved-must-be-zero fields common to versions 2..=5 (ABI Table 23); `sev` checks
    // the others while parsing and the re-encoding check below catches anything left.
    if bytes[0x4C..0x50] != [0; 4] || bytes[0x1EB] != 0 || bytes[0x1EF] != 0 {
        return Err(SnpError::NonCanonical);
    }
    let report =
        AttestationReport::from_bytes(bytes).map_err(|e| SnpError::Parse(e.to_string()))?;
    if report.sig_algo != 1 {
        return Err(SnpError::UnsupportedSignatureAlgorithm(report.sig_algo));
    }
    if report.key_info.mask_chip_key() {
        return Err(SnpError::Unsigned);
    }
    let sk = report.key_info.signing_key();
    if sk > 1 {
        return Err(SnpError::UnknownSigningKey(sk));
    }
    // `sev` verifies the signature over its own re-encoding of the parsed fields; requiring
    // the re-encoding to equal the input makes that the bytes we were given (reserved = 0).
    let again = report
        .to_bytes()
        .map_err(|e| SnpError::Parse(e.to_string()))?;
    if again.as_slice() != bytes {
        return Err(SnpError::NonCanonical);
    }
    Ok(report)
}

fn chain_key(vek: &[u8], ask: Option<&[u8]>, ark: Option<&[u8]>, policy: &TrustPolicy) -> [u8; 32] {
    let mut h = Sha256::new();
    // A presence byte per slot, so "no ASK" and "an empty ASK" cannot collide.
    for part in [Some(vek), ask, ark] {
        h.update([u8::from(part.is_some())]);
        let part = part.unwrap_or(&[]);
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    // The outcome depends on which roots and ASKs are pinned, so they are in the key.
    for (tag, root) in policy
        .amd_arks
        .values()
        .map(|r| (0u8, r))
        .chain(policy.simulated_root.iter().map(|r| (1u8, r)))
        .chain(policy.amd_asks.values().map(|r| (2u8, r)))
    {
        h.update([tag]);
        h.update((root.len() as u64).to_be_bytes());
        h.update(root);
    }
    h.finalize().into()
}

fn parse_cert(role: CertRole, der_bytes: &[u8]) -> Result<x509_cert::Certificate, SnpError> {
    let c =
        x509_cert::Certificate::from_der(der_bytes).map_err(|_| SnpError::BadCertificate(role))?;
    // Reject encodings that do not round-trip: the signature covers the DER we re-encode.
    match c.to_der() {
        Ok(d) if d == der_bytes => Ok(c),
        _ => Err(SnpError::BadCertificate(role)),
    }
}

fn validity(role: CertRole, c: &x509_cert::Certificate) -> (CertRole, u64, u64) {
    let v = &c.tbs_certificate.validity;
    (
        role,
        v.not_before.to_unix_duration().as_secs(),
        v.not_after.to_unix_duration().as_secs(),
    )
}

fn check_chain(
    vek_der: &[u8],
    ask_der: Option<&[u8]>,
    ark_der: Option<&[u8]>,
    policy: &TrustPolicy,
) -> Result<CheckedChain, SnpError> {
    let vek_x = parse_cert(CertRole::Vek, vek_der)?;
    let vek = Certificate::from(vek_x.clone());

    let mut roots: Vec<(&[u8], bool)> = policy
        .amd_arks
        .values()
        .map(|d| (d.as_slice(), false))
        .collect();
    if let Some(sim) = &policy.simulated_root {
        roots.push((sim.as_slice(), true));
    }
    if let Some(given) = ark_der {
        roots.retain(|(r, _)| *r == given);
        if roots.is_empty() {
            return Err(SnpError::UntrustedArk);
        }
    }

    let (ask_x, ark_x, simulated) = match ask_der {
        Some(ask_der) => {
            let ask_x = parse_cert(CertRole::Ask, ask_der)?;
            let (ark_x, simulated) =
                signing_root(&ask_x, &roots)?.ok_or(SnpError::AskNotSignedByPinnedArk)?;
            (&Certificate::from(ask_x.clone()), &vek)
                .verify()
                .map_err(|_| SnpError::VekNotSignedByAsk)?;
            (ask_x, ark_x, simulated)
        }
        None => pinned_ask_for(&vek_x, &vek, &roots, policy)?,
    };
    Ok(CheckedChain {
        simulated,
        generation: ark_generation(&ark_x),
        validity: [
            validity(CertRole::Vek, &vek_x),
            validity(CertRole::Ask, &ask_x),
            validity(CertRole::Ark, &ark_x),
        ],
        ext: vek_extensions(&vek_x),
        vek,
    })
}

/// The pinned root that signs `ask_x` (and signs itself), if any.
fn signing_root(
    ask_x: &x509_cert::Certificate,
    roots: &[(&[u8], bool)],
) -> Result<Option<(x509_cert::Certificate, bool)>, SnpError> {
    let ask = Certificate::from(ask_x.clone());
    for &(root_der, simulated) in roots {
        let ark_x = parse_cert(CertRole::Ark, root_der)?;
        let ark = Certificate::from(ark_x.clone());
        if (&ark, &ask).verify().is_ok() {
            if (&ark, &ark).verify().is_err() {
                return Err(SnpError::ArkSelfSignature);
            }
            return Ok(Some((ark_x, simulated)));
        }
    }
    Ok(None)
}

/// Complete a chain presented as the VCEK alone with a pinned ASK that signs the VCEK and
/// is itself signed by a pinned root. AMD names each VCEK's issuer after its ASK's subject
/// ("SEV-Milan", "SEV-Genoa", "SEV-Turin"), so those ASKs are tried first; the others
/// follow in case a product renames its certificates, at the cost of one failed RSA check each.
fn pinned_ask_for(
    vek_x: &x509_cert::Certificate,
    vek: &Certificate,
    roots: &[(&[u8], bool)],
    policy: &TrustPolicy,
) -> Result<(x509_cert::Certificate, x509_cert::Certificate, bool), SnpError> {
    let mut asks = Vec::with_capacity(policy.amd_asks.len());
    for der in policy.amd_asks.values() {
        asks.push(parse_cert(CertRole::Ask, der)?);
    }
    let issuer = &vek_x.tbs_certificate.issuer;
    asks.sort_by_key(|a| a.tbs_certificate.subject != *issuer);
    for ask_x in asks {
        if (&Certificate::from(ask_x.clone()), vek).verify().is_err() {
            continue;
        }
        if let Some((ark_x, simulated)) = signing_root(&ask_x, roots)? {
            return Ok((ask_x, ark_x, simulated));
        }
    }
    Err(SnpError::NoPinnedAskSignsVek)
}

fn vek_extensions(c: &x509_cert::Certificate) -> VekExtensions {
    let mut out = VekExtensions::default();
    for ext in c.tbs_certificate.extensions.iter().flatten() {
        let oid = ext.extn_id.to_string();
        let val = ext.extn_value.as_bytes();
        let int = || u8::from_der(val).ok();
        match oid.as_str() {
            OID_BL => out.bl = int(),
            OID_TEE => out.tee = int(),
            OID_SNP => out.snp = int(),
            OID_UCODE => out.ucode = int(),
            OID_FMC => out.fmc = int(),
            OID_HWID => {
                // AMD encodes hwID as an OCTET STRING; accept the raw 64 bytes too.
                out.hwid = match der::asn1::OctetString::from_der(val) {
                    Ok(o) => Some(o.as_bytes().to_vec()),
                    Err(_) => Some(val.to_vec()),
                }
            }
            _ => {}
        }
    }
    out
}

fn check_extensions(ext: &VekExtensions, report: &AttestationReport) -> Result<(), SnpError> {
    let t = report.reported_tcb;
    for (name, have, want) in [
        ("blSPL", ext.bl, t.bootloader),
        ("teeSPL", ext.tee, t.tee),
        ("snpSPL", ext.snp, t.snp),
        ("ucodeSPL", ext.ucode, t.microcode),
    ] {
        match have {
            None => return Err(SnpError::TcbExtensionMissing(name)),
            Some(v) if v != want => return Err(SnpError::TcbExtensionMismatch(name)),
            Some(_) => {}
        }
    }
    if let Some(fmc) = t.fmc {
        match ext.fmc {
            None => return Err(SnpError::TcbExtensionMissing("fmcSPL")),
            Some(v) if v != fmc => return Err(SnpError::TcbExtensionMismatch("fmcSPL")),
            Some(_) => {}
        }
    }
    // A VCEK (SIGNING_KEY = 0) is specific to one chip; a VLEK is not and has no hwID.
    if report.key_info.signing_key() == 0 {
        match &ext.hwid {
            None => return Err(SnpError::TcbExtensionMissing("hwID")),
            Some(h) if h.as_slice() != report.chip_id.as_slice() => {
                return Err(SnpError::ChipIdMismatch);
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use confide_attest::SnpTcbFloor;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../testdata/sev-snp/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn milan() -> (Vec<u8>, Vec<Vec<u8>>) {
        let report =
            confide_attest::input::decode_hex_or_binary(&fixture("report_milan.hex")).unwrap();
        let mut certs = vec![fixture("vcek_milan.der")];
        certs.extend(
            confide_attest::input::decode_certificates(&fixture("cert_chain_milan")).unwrap(),
        );
        (report, certs)
    }

    fn pem_one(name: &str) -> Vec<u8> {
        let mut v = confide_attest::input::decode_certificates(&fixture(name)).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    // 2025-06-01, inside the VCEK's validity.
    const NOW: UnixTime = UnixTime(1_748_736_000);

    /// REPORTED_TCB of the real Milan fixture (virtee/sev, signed 2023): boot loader 3, TEE 0,
    /// SNP 8, microcode 115.
    const FIXTURE_TCB: SnpTcbFloor = SnpTcbFloor {
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 115,
        fmc: None,
    };

    /// The production policy with the Milan floor lowered to the fixture's TCB. The fixture
    /// predates AMD-SB-3019 and is *below* the production floor (see
    /// `production_floor_refuses_the_pre_bulletin_milan_fixture`); tests of everything else
    /// that the verifier checks need it accepted, and say so by using this policy.
    fn fixture_policy() -> TrustPolicy {
        let mut p = TrustPolicy::production();
        p.sev_snp
            .tcb_floors
            .insert(SnpGeneration::Milan, FIXTURE_TCB);
        p
    }

    #[test]
    fn milan_fixture_verifies() {
        let (report, certs) = milan();
        let policy = fixture_policy();
        for v in [SnpVerifier::new(), SnpVerifier::with_cache()] {
            let c = v.verify_report(&report, &certs, &policy, NOW).unwrap();
            assert_eq!(c.platform, Platform::SevSnp);
            assert_eq!(c.version, 2);
            assert_eq!(c.measurement.len(), 48);
            assert_eq!(c.chip_id.len(), 64);
            // Second call exercises the cache path.
            assert_eq!(v.verify_report(&report, &certs, &policy, NOW).unwrap(), c);
        }
    }

    #[test]
    fn milan_without_ark_uses_pinned_root() {
        let (report, certs) = milan();
        let c = SnpVerifier::new()
            .verify_report(&report, &certs[..2], &fixture_policy(), NOW)
            .unwrap();
        assert_eq!(c.platform, Platform::SevSnp);
    }

    #[test]
    fn wrong_product_root_rejected() {
        let (report, certs) = milan();
        let mut policy = fixture_policy();
        policy.amd_arks.remove("milan");
        // A supplied ASK that no pinned ARK signs keeps its own error.
        assert_eq!(
            SnpVerifier::new().verify_report(&report, &certs[..2], &policy, NOW),
            Err(SnpError::AskNotSignedByPinnedArk)
        );
        assert_eq!(
            SnpVerifier::new().verify_report(&report, &certs, &policy, NOW),
            Err(SnpError::UntrustedArk)
        );
        // The pinned Milan ASK signs the VCEK but no pinned ARK signs that ASK any more.
        assert_eq!(
            SnpVerifier::new().verify_report(&report, &certs[..1], &policy, NOW),
            Err(SnpError::NoPinnedAskSignsVek)
        );
    }

    /// The real Milan report with nothing but its VCEK: the pinned Milan ASK and ARK complete
    /// the chain, through the cache as well; the claims equal those of the full chain.
    #[test]
    fn milan_vcek_alone_chains_through_pinned_ask_and_ark() {
        let (report, certs) = milan();
        let policy = fixture_policy();
        let full = SnpVerifier::new()
            .verify_report(&report, &certs, &policy, NOW)
            .unwrap();
        for v in [SnpVerifier::new(), SnpVerifier::with_cache()] {
            for _ in 0..2 {
                assert_eq!(
                    v.verify_report(&report, &certs[..1], &policy, NOW).unwrap(),
                    full
                );
            }
        }
        let c = check_chain(&certs[0], None, None, &policy).unwrap();
        let ask = parse_cert(CertRole::Ask, &pem_one("milan_ask.pem")).unwrap();
        assert_eq!(c.validity[1], validity(CertRole::Ask, &ask));

        // No ASK pinned: the chain cannot be completed, and the error says so.
        let mut none = policy.clone();
        none.amd_asks.clear();
        assert_eq!(
            SnpVerifier::new().verify_report(&report, &certs[..1], &none, NOW),
            Err(SnpError::NoPinnedAskSignsVek)
        );
        // Only other products' ASKs pinned: none of them signs a Milan VCEK.
        let mut others = policy.clone();
        others.amd_asks.remove("milan");
        assert_eq!(
            SnpVerifier::new().verify_report(&report, &certs[..1], &others, NOW),
            Err(SnpError::NoPinnedAskSignsVek)
        );
        // A cached chain is not reused under a policy that pins different ASKs.
        let cached = SnpVerifier::with_cache();
        cached
            .verify_report(&report, &certs[..1], &policy, NOW)
            .unwrap();
        assert_eq!(
            cached.verify_report(&report, &certs[..1], &none, NOW),
            Err(SnpError::NoPinnedAskSignsVek)
        );
        // Validity of the pinned ASK and ARK is still checked.
        assert!(matches!(
            SnpVerifier::new().verify_report(
                &report,
                &certs[..1],
                &policy,
                UnixTime(1_420_070_400)
            ),
            Err(SnpError::CertificateNotYetValid(_))
        ));
    }

    #[test]
    fn turin_vcek_alone_and_genoa_ask_chain_to_pinned_arks() {
        let policy = fixture_policy();
        let vcek = fixture("vcek_turin.der");
        let turin_ask = pem_one("turin_ask.pem");
        let turin_ark = pem_one("turin_ark.pem");
        // VCEK alone: the pinned Turin ASK, under the pinned Turin ARK.
        let c = check_chain(&vcek, None, None, &policy).unwrap();
        assert!(!c.simulated);
        assert!(c.ext.fmc.is_some());
        let ask_x = parse_cert(CertRole::Ask, &turin_ask).unwrap();
        let ark_x = parse_cert(CertRole::Ark, &turin_ark).unwrap();
        assert_eq!(c.validity[1], validity(CertRole::Ask, &ask_x));
        assert_eq!(c.validity[2], validity(CertRole::Ark, &ark_x));
        // The same chain as published by AMD (cert_chain_turin = ASK, ARK).
        let turin: Vec<Vec<u8>> =
            confide_attest::input::decode_certificates(&fixture("cert_chain_turin")).unwrap();
        assert_eq!(turin, vec![turin_ask.clone(), turin_ark.clone()]);
        let full = check_chain(&vcek, Some(&turin[0]), Some(&turin[1]), &policy).unwrap();
        assert_eq!(full.validity, c.validity);
        // Turin ARK unpinned: the pinned Turin ASK no longer counts.
        let mut p = policy.clone();
        p.amd_arks.remove("turin");
        assert_eq!(
            check_chain(&vcek, None, None, &p).err(),
            Some(SnpError::NoPinnedAskSignsVek)
        );

        // Genoa: its ASK chains to the pinned Genoa ARK (no Genoa VCEK fixture exists) ...
        let genoa_ask = pem_one("genoa_ask.pem");
        let roots: Vec<(&[u8], bool)> = policy
            .amd_arks
            .values()
            .map(|d| (d.as_slice(), false))
            .collect();
        let (ark, simulated) =
            signing_root(&parse_cert(CertRole::Ask, &genoa_ask).unwrap(), &roots)
                .unwrap()
                .unwrap();
        assert!(!simulated);
        assert_eq!(ark.to_der().unwrap(), pem_one("genoa_ark.pem"));
        // ... but signs neither itself as a VCEK nor the Turin VCEK.
        assert_eq!(
            check_chain(&genoa_ask, Some(&genoa_ask), None, &policy).err(),
            Some(SnpError::VekNotSignedByAsk)
        );
        assert_eq!(
            check_chain(&vcek, Some(&genoa_ask), None, &policy).err(),
            Some(SnpError::VekNotSignedByAsk)
        );
        // Turin VCEK under the Milan ASK: no pinned ARK signs that pairing.
        let milan =
            confide_attest::input::decode_certificates(&fixture("cert_chain_milan")).unwrap();
        assert_eq!(
            check_chain(&vcek, Some(&milan[0]), None, &policy).err(),
            Some(SnpError::VekNotSignedByAsk)
        );
    }

    #[test]
    fn chain_shapes() {
        let (report, certs) = milan();
        let policy = fixture_policy();
        let v = SnpVerifier::new();
        assert_eq!(
            v.verify_report(&report, &[], &policy, NOW),
            Err(SnpError::MissingCertificates)
        );
        let mut four = certs.clone();
        four.push(certs[2].clone());
        assert_eq!(
            v.verify_report(&report, &four, &policy, NOW),
            Err(SnpError::MissingCertificates)
        );
    }

    #[test]
    fn turin_chain_parses() {
        let vcek = fixture("vcek_turin.der");
        let x = parse_cert(CertRole::Vek, &vcek).unwrap();
        let e = vek_extensions(&x);
        assert!(e.fmc.is_some() && e.hwid.is_some());
    }

    fn tcb(
        bootloader: u8,
        tee: u8,
        snp: u8,
        microcode: u8,
        fmc: Option<u8>,
    ) -> sev::firmware::host::TcbVersion {
        sev::firmware::host::TcbVersion {
            fmc,
            bootloader,
            tee,
            snp,
            microcode,
        }
    }

    /// The real Milan report runs firmware older than AMD-SB-3019's fix: the production
    /// defaults refuse it, naming the first component below the floor; at the fixture's own
    /// TCB it passes, and one SPL more in any component refuses it again.
    #[test]
    fn production_floor_refuses_the_pre_bulletin_milan_fixture() {
        let (report, certs) = milan();
        assert_eq!(
            SnpVerifier::new().verify_report(&report, &certs, &TrustPolicy::production(), NOW),
            Err(SnpError::TcbBelowFloor {
                generation: SnpGeneration::Milan,
                component: "bootloader",
                have: 3,
                floor: 4
            })
        );
        let ok = fixture_policy();
        SnpVerifier::new()
            .verify_report(&report, &certs, &ok, NOW)
            .unwrap();
        for (component, bump) in [
            ("bootloader", [1, 0, 0, 0]),
            ("tee", [0, 1, 0, 0]),
            ("snp", [0, 0, 1, 0]),
            ("microcode", [0, 0, 0, 1]),
        ] {
            let mut p = ok.clone();
            let f = p.sev_snp.tcb_floors.get_mut(&SnpGeneration::Milan).unwrap();
            f.bootloader += bump[0];
            f.tee += bump[1];
            f.snp += bump[2];
            f.microcode += bump[3];
            assert!(
                matches!(
                    SnpVerifier::with_cache().verify_report(&report, &certs, &p, NOW),
                    Err(SnpError::TcbBelowFloor { generation: SnpGeneration::Milan, component: c, .. }) if c == component
                ),
                "{component}"
            );
        }
        // The Genoa floor does not apply to a chip whose chain ends at the Milan ARK ...
        let mut p = ok.clone();
        p.sev_snp
            .tcb_floors
            .get_mut(&SnpGeneration::Genoa)
            .unwrap()
            .snp = 255;
        SnpVerifier::new()
            .verify_report(&report, &certs, &p, NOW)
            .unwrap();
        // ... and with no Milan floor at all, Milan evidence is refused rather than unchecked.
        let mut p = ok;
        p.sev_snp.tcb_floors.remove(&SnpGeneration::Milan);
        assert_eq!(
            SnpVerifier::new().verify_report(&report, &certs, &p, NOW),
            Err(SnpError::NoTcbFloor(SnpGeneration::Milan))
        );
    }

    /// The real AMD roots name their generations; anything else names none.
    #[test]
    fn generation_comes_from_the_pinned_ark() {
        for (file, g) in [
            ("milan_ark.pem", SnpGeneration::Milan),
            ("genoa_ark.pem", SnpGeneration::Genoa),
            ("turin_ark.pem", SnpGeneration::Turin),
        ] {
            let ark = parse_cert(CertRole::Ark, &pem_one(file)).unwrap();
            assert_eq!(ark_generation(&ark), Some(g), "{file}");
        }
        let ask = parse_cert(CertRole::Ask, &pem_one("milan_ask.pem")).unwrap();
        assert_eq!(
            ark_generation(&ask),
            None,
            "SEV-Milan is an ASK, not an ARK"
        );
        // The Milan fixture's chain is checked to the Milan ARK.
        let (_, certs) = milan();
        let c = check_chain(&certs[0], None, None, &fixture_policy()).unwrap();
        assert_eq!(c.generation, Some(SnpGeneration::Milan));
        let t = check_chain(&fixture("vcek_turin.der"), None, None, &fixture_policy()).unwrap();
        assert_eq!(t.generation, Some(SnpGeneration::Turin));
    }

    /// Turin: the real Turin VCEK certifies an early TCB (FMC 0, boot loader 0, TEE 0, SNP 0,
    /// microcode 9). There is no Turin bulletin default, so production refuses Turin until a
    /// floor is named; a floor's FMC SPL is checked like the others.
    #[test]
    fn turin_floor_needs_naming_and_checks_fmc() {
        let c = check_chain(&fixture("vcek_turin.der"), None, None, &fixture_policy()).unwrap();
        let e = &c.ext;
        let certified = tcb(
            e.bl.unwrap(),
            e.tee.unwrap(),
            e.snp.unwrap(),
            e.ucode.unwrap(),
            e.fmc,
        );
        assert_eq!(certified, tcb(0, 0, 0, 9, Some(0)));
        let prod = TrustPolicy::production();
        assert_eq!(
            check_tcb_floor(SnpGeneration::Turin, &certified, &prod),
            Err(SnpError::NoTcbFloor(SnpGeneration::Turin))
        );
        let mut p = prod.clone();
        let floor = SnpTcbFloor {
            bootloader: 0,
            tee: 0,
            snp: 0,
            microcode: 9,
            fmc: Some(0),
        };
        p.sev_snp.tcb_floors.insert(SnpGeneration::Turin, floor);
        check_tcb_floor(SnpGeneration::Turin, &certified, &p).unwrap();
        p.sev_snp.tcb_floors.insert(
            SnpGeneration::Turin,
            SnpTcbFloor {
                fmc: Some(1),
                ..floor
            },
        );
        assert_eq!(
            check_tcb_floor(SnpGeneration::Turin, &certified, &p),
            Err(SnpError::TcbBelowFloor {
                generation: SnpGeneration::Turin,
                component: "fmc",
                have: 0,
                floor: 1
            })
        );
    }

    /// Genoa (no real Genoa report exists in testdata): the TCB that AMD-SB-3019-patched
    /// Genoa hosts report meets the production floor; one microcode SPL less does not.
    #[test]
    fn genoa_bulletin_floor() {
        let prod = TrustPolicy::production();
        check_tcb_floor(SnpGeneration::Genoa, &tcb(0x0A, 0, 0x17, 0x54, None), &prod).unwrap();
        assert_eq!(
            check_tcb_floor(SnpGeneration::Genoa, &tcb(0x0A, 0, 0x17, 0x53, None), &prod),
            Err(SnpError::TcbBelowFloor {
                generation: SnpGeneration::Genoa,
                component: "microcode",
                have: 0x53,
                floor: 0x54
            })
        );
        // The Milan floor is not the Genoa floor: Genoa's microcode numbering is its own.
        assert!(
            check_tcb_floor(SnpGeneration::Milan, &tcb(0x0A, 0, 0x17, 0x54, None), &prod).is_err()
        );
    }

    #[test]
    fn cpuid_names_the_generation() {
        assert_eq!(cpuid_generation(0x19, 0x01), Some(SnpGeneration::Milan));
        assert_eq!(cpuid_generation(0x19, 0x11), Some(SnpGeneration::Genoa));
        assert_eq!(cpuid_generation(0x19, 0xA0), Some(SnpGeneration::Genoa));
        assert_eq!(cpuid_generation(0x1A, 0x02), Some(SnpGeneration::Turin));
        assert_eq!(cpuid_generation(0x1A, 0x11), Some(SnpGeneration::Turin));
        assert_eq!(cpuid_generation(0x17, 0x31), None);
    }
}
