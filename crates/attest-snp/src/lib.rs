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
//!    checked by the `sev` crate because strict generic X.509 validators reject AMD's encodings;
//! 3. every certificate's validity period contains `now`;
//! 4. the VEK's ECDSA P-384 signature covers report bytes 0x000..0x2A0;
//! 5. the VCEK's TCB extensions (blSPL, teeSPL, snpSPL, ucodeSPL, fmcSPL on Turin) equal the
//!    report's REPORTED_TCB and its hwID equals CHIP_ID (a VCEK is per chip *and* per TCB);
//! 6. REPORTED_TCB is at least the policy minimum.
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
    Evidence, Platform, PlatformClaims, PlatformError, PlatformVerifier, Tcb, TrustPolicy, UnixTime,
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
    /// Fewer than two certificates (VEK and ASK) supplied.
    #[error("certificate chain needs at least the VCEK/VLEK and the ASK")]
    MissingCertificates,
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
        let (vek_der, ask_der) = match certs {
            [v, a, ..] => (v, a),
            _ => return Err(SnpError::MissingCertificates),
        };
        let ark_der = certs.get(2);
        if certs.len() > 3 {
            return Err(SnpError::MissingCertificates);
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

fn chain_key(vek: &[u8], ask: &[u8], ark: Option<&Vec<u8>>, policy: &TrustPolicy) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [vek, ask, ark.map(Vec::as_slice).unwrap_or(&[])] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    // The outcome depends on which roots are pinned, so the policy's roots are in the key.
    for root in policy.amd_arks.values().chain(policy.simulated_root.iter()) {
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
    ask_der: &[u8],
    ark_der: Option<&Vec<u8>>,
    policy: &TrustPolicy,
) -> Result<CheckedChain, SnpError> {
    let vek_x = parse_cert(CertRole::Vek, vek_der)?;
    let ask_x = parse_cert(CertRole::Ask, ask_der)?;
    let ask = Certificate::from(ask_x.clone());

    let mut roots: Vec<(&[u8], bool)> = policy
        .amd_arks
        .values()
        .map(|d| (d.as_slice(), false))
        .collect();
    if let Some(sim) = &policy.simulated_root {
        roots.push((sim.as_slice(), true));
    }
    if let Some(given) = ark_der {
        roots.retain(|(r, _)| *r == given.as_slice());
        if roots.is_empty() {
            return Err(SnpError::UntrustedArk);
        }
    }
    let mut chosen = None;
    for (root_der, simulated) in roots {
        let ark_x = parse_cert(CertRole::Ark, root_der)?;
        let ark = Certificate::from(ark_x.clone());
        if (&ark, &ask).verify().is_ok() {
            if (&ark, &ark).verify().is_err() {
                return Err(SnpError::ArkSelfSignature);
            }
            chosen = Some((ark_x, simulated));
            break;
        }
    }
    let (ark_x, simulated) = chosen.ok_or(SnpError::AskNotSignedByPinnedArk)?;
    let vek = Certificate::from(vek_x.clone());
    (&ask, &vek)
        .verify()
        .map_err(|_| SnpError::VekNotSignedByAsk)?;
    Ok(CheckedChain {
        simulated,
        validity: [
            validity(CertRole::Vek, &vek_x),
            validity(CertRole::Ask, &ask_x),
            validity(CertRole::Ark, &ark_x),
        ],
        ext: vek_extensions(&vek_x),
        vek,
    })
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

    // 2025-06-01, inside the VCEK's validity.
    const NOW: UnixTime = UnixTime(1_748_736_000);

    #[test]
    fn milan_fixture_verifies() {
        let (report, certs) = milan();
        let policy = TrustPolicy::production();
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
            .verify_report(&report, &certs[..2], &TrustPolicy::production(), NOW)
            .unwrap();
        assert_eq!(c.platform, Platform::SevSnp);
    }

    #[test]
    fn wrong_product_root_rejected() {
        let (report, certs) = milan();
        let mut policy = TrustPolicy::production();
        policy.amd_arks.remove("milan");
        assert_eq!(
            SnpVerifier::new().verify_report(&report, &certs[..2], &policy, NOW),
            Err(SnpError::AskNotSignedByPinnedArk)
        );
        assert_eq!(
            SnpVerifier::new().verify_report(&report, &certs, &policy, NOW),
            Err(SnpError::UntrustedArk)
        );
    }

    #[test]
    fn turin_vcek_and_genoa_ask_chain_to_pinned_arks() {
        let policy = TrustPolicy::production();
        let turin: Vec<Vec<u8>> =
            confide_attest::input::decode_certificates(&fixture("cert_chain_turin")).unwrap();
        let c = check_chain(
            &fixture("vcek_turin.der"),
            &turin[0],
            Some(&turin[1]),
            &policy,
        )
        .unwrap();
        assert!(!c.simulated);
        assert!(c.ext.fmc.is_some());
        // Genoa: ASK chains to the pinned Genoa ARK (no Genoa VCEK fixture; the VCEK slot
        // takes the ASK itself, which the ASK does not sign).
        let genoa_ask =
            confide_attest::input::decode_certificates(&fixture("genoa_ask.pem")).unwrap();
        assert_eq!(
            check_chain(&genoa_ask[0], &genoa_ask[0], None, &policy).err(),
            Some(SnpError::VekNotSignedByAsk)
        );
        // Turin VCEK under the Milan chain: no pinned ARK signs that pairing.
        let milan =
            confide_attest::input::decode_certificates(&fixture("cert_chain_milan")).unwrap();
        assert_eq!(
            check_chain(&fixture("vcek_turin.der"), &milan[0], None, &policy).err(),
            Some(SnpError::VekNotSignedByAsk)
        );
    }

    #[test]
    fn turin_chain_parses() {
        let vcek = fixture("vcek_turin.der");
        let x = parse_cert(CertRole::Vek, &vcek).unwrap();
        let e = vek_extensions(&x);
        assert!(e.fmc.is_some() && e.hwid.is_some());
    }
}
