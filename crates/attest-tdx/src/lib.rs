//! Intel TDX DCAP quote verifier.
//!
//! Verifies a TDX quote (Intel TDX DCAP Quoting Library API, "Quote Format" v4; v5 accepted)
//! offline against its collateral (TCB Info, QE Identity, PCK/root CRLs and issuer chains, in
//! the `dcap-qvl` `QuoteCollateralV3` JSON form), with `dcap-qvl` doing the cryptography:
//!
//! 1. header: version 4/5, TEE type 0x81 (TDX), attestation key type 2 (ECDSA-256-with-P-256),
//!    Intel QE vendor id — checked here first so each failure has its own error;
//! 2. PCK chain to the Intel SGX Root CA pinned in the policy, with CRLs, all at `now`;
//! 3. TCB Info and QE Identity signatures and their issue/next-update window at `now`;
//! 4. QE report signature (PCK), QE report binding of the attestation key, quote signature;
//! 5. TCB level matching: the resulting status (`UpToDate`, `OutOfDate`,
//!    `ConfigurationNeeded`, ...) must be in the policy's `tdx.accepted_tcb_statuses`;
//!    `Revoked` is always rejected.
//!
//! The measurement is MRTD || RTMR0 || RTMR1 || RTMR2 || RTMR3 (240 bytes); MRCONFIGID carries
//! the model/config binding; REPORTDATA the key binding; TD_ATTRIBUTES.DEBUG the debug flag.
//! TDX quotes sign no time; "now" only judges the collateral and certificates.
//!
//! # Simulated TDX
//!
//! The same code verifies `simulated-tdx` evidence (produced by `confide-attest-sim`'s TDX
//! twin): a byte-exact quote v4 and collateral whose whole PKI hangs off a locally generated
//! "simulated Intel" root. The root is chosen by the container's platform: `tdx` is checked
//! against `roots.intel` only, `simulated-tdx` against `roots.simulated_tdx` only (and only with
//! `allow_simulated`), so neither kind of evidence can pass under the other's anchor. A
//! simulated quote must also carry [`SIMULATED_TDX_MR_OWNER`] in MROWNER; its creation time,
//! signed by the simulated attestation key, is MROWNERCONFIG[0..8] (little-endian seconds),
//! and is judged for freshness like the simulated SNP report's IMAGE_ID.

use confide_attest::{
    Evidence, Platform, PlatformClaims, PlatformError, PlatformVerifier, Tcb, TrustPolicy, UnixTime,
};
use dcap_qvl::QuoteCollateralV3;
/// The collateral container (dcap-qvl `QuoteCollateralV3`), serialized as JSON in
/// `Evidence::collateral`.
pub use dcap_qvl::QuoteCollateralV3 as Collateral;
use dcap_qvl::quote::Quote;

/// TEE type of TDX in the quote header.
pub const TEE_TYPE_TDX: u32 = 0x81;
/// ECDSA-256-with-P-256 attestation key type.
pub const ATT_KEY_ECDSA_P256: u16 = 2;
/// Intel's QE vendor id.
pub const INTEL_QE_VENDOR_ID: [u8; 16] = dcap_qvl::INTEL_QE_VENDOR_ID;
/// MROWNER of every simulated TD: "CONFIDE-SIMULATED-TDX" then zeros. MROWNER is a
/// host-chosen, software-defined TD field (TDX Module ABI, TDREPORT / TDINFO_STRUCT), so a
/// real TD could carry it too; it is a marker, not a trust decision (the root decides).
pub const SIMULATED_TDX_MR_OWNER: [u8; 48] = {
    let mut m = [0u8; 48];
    let tag = b"CONFIDE-SIMULATED-TDX";
    let mut i = 0;
    while i < tag.len() {
        m[i] = tag[i];
        i += 1;
    }
    m
};

/// Why a TDX quote was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TdxError {
    /// Quote does not decode.
    #[error("quote does not parse")]
    Parse,
    /// Quote version not 4 or 5.
    #[error("unsupported quote version {0}")]
    UnsupportedVersion(u16),
    /// TEE type is not TDX.
    #[error("quote TEE type {0:#x} is not TDX")]
    NotTdx(u32),
    /// Attestation key type unsupported.
    #[error("unsupported attestation key type {0}")]
    UnsupportedKeyType(u16),
    /// QE vendor id is not Intel's.
    #[error("unknown QE vendor id")]
    UnknownQeVendor,
    /// Collateral JSON malformed.
    #[error("collateral does not parse")]
    CollateralMalformed,
    /// Policy pins no Intel root.
    #[error("trust policy pins no Intel root")]
    NoPinnedRoot,
    /// Simulated TDX evidence, but the policy does not allow simulated evidence.
    #[error("simulated TDX evidence is not allowed by the trust policy")]
    SimulatedNotAllowed,
    /// Simulated TDX evidence, but the policy pins no simulated Intel root.
    #[error("trust policy pins no simulated Intel root (roots.simulated_tdx)")]
    NoSimulatedRoot,
    /// The quote verified under the simulated root but lacks the simulated MROWNER marker.
    #[error("simulated TDX quote lacks the simulated MROWNER marker")]
    SimulatedMarkerMissing,
    /// The signed creation time (MROWNERCONFIG) has non-zero bytes past its 8-byte field.
    #[error("simulated TDX quote has a malformed MROWNERCONFIG time field")]
    SimulatedTimeMalformed,
    /// The evidence platform is not a TDX format.
    #[error("platform {0} is not verified by the TDX verifier")]
    WrongPlatform(Platform),
    /// The pinned root is not usable as a trust anchor.
    #[error("pinned Intel root is not a usable certificate")]
    BadRoot,
    /// A CRL has expired (or is not yet valid) at `now`.
    #[error("a CRL in the collateral is outside its validity at the given time")]
    CrlExpired,
    /// A CRL does not parse or verify.
    #[error("a CRL in the collateral is invalid")]
    CrlInvalid,
    /// A certificate has expired or is not yet valid at `now`.
    #[error("a certificate is outside its validity at the given time")]
    CertificateExpired,
    /// A certificate is revoked by a CRL.
    #[error("a certificate in the chain is revoked")]
    CertificateRevoked,
    /// A chain does not lead to the pinned root.
    #[error("certificate chain does not lead to the pinned Intel root")]
    UntrustedChain,
    /// Any other certificate chain failure.
    #[error("certificate chain invalid")]
    CertificateChain,
    /// TCB Info is outside issueDate..nextUpdate.
    #[error("TCB Info is outside its validity window")]
    TcbInfoExpired,
    /// QE Identity is outside issueDate..nextUpdate.
    #[error("QE Identity is outside its validity window")]
    QeIdentityExpired,
    /// TCB Info signature invalid.
    #[error("TCB Info signature invalid")]
    TcbInfoSignature,
    /// QE Identity signature invalid.
    #[error("QE Identity signature invalid")]
    QeIdentitySignature,
    /// QE report signature invalid.
    #[error("QE report signature invalid (PCK)")]
    QeReportSignature,
    /// The QE report does not match the QE Identity (MRSIGNER, ISVPRODID, MISCSELECT,
    /// ATTRIBUTES, or an ISVSVN below every level): not the quoting enclave Intel vouches for.
    #[error("QE report does not match the QE Identity")]
    QeIdentityMismatch,
    /// QE report does not bind the attestation key.
    #[error("QE report does not bind the attestation key")]
    QeReportBinding,
    /// The quote (TD report) signature is invalid.
    #[error("quote signature invalid")]
    QuoteSignature,
    /// FMSPC of the PCK does not match TCB Info.
    #[error("FMSPC mismatch between PCK certificate and TCB Info")]
    FmspcMismatch,
    /// No TCB level matches the platform.
    #[error("no matching TCB level")]
    NoMatchingTcbLevel,
    /// The platform TCB is revoked.
    #[error("TCB status is Revoked")]
    Revoked,
    /// The TCB status is not accepted by policy.
    #[error("TCB status {0} is not accepted by the trust policy")]
    TcbStatusNotAccepted(String),
    /// Some other verification failure reported by dcap-qvl.
    #[error("DCAP verification failed: {0}")]
    Other(String),
}

/// Map dcap-qvl's untyped error chain onto our typed errors.
///
/// dcap-qvl reports failures as `anyhow` chains; the messages are stable literals in its
/// source (0.7.x) and webpki error names. Unknown messages fall to [`TdxError::Other`], which
/// still fails closed.
fn classify(msg: &str) -> TdxError {
    let has = |s: &str| msg.contains(s);
    if has("TCBInfo expired") || has("TCBInfo issue date is in the future") {
        TdxError::TcbInfoExpired
    } else if has("QE Identity expired") || has("QE Identity issue date is in the future") {
        TdxError::QeIdentityExpired
    } else if has("Signature is invalid for tcb_info") {
        TdxError::TcbInfoSignature
    } else if has("Signature is invalid for qe_identity") {
        TdxError::QeIdentitySignature
    } else if has("Signature is invalid for qe_report") {
        TdxError::QeReportSignature
    } else if has("QE MRSIGNER mismatch")
        || has("QE ISVPRODID mismatch")
        || has("QE MISCSELECT mismatch")
        || has("QE ATTRIBUTES mismatch")
        || has("QE report validation failed")
        || has("QE ISVSVN")
    {
        TdxError::QeIdentityMismatch
    } else if has("QE report hash mismatch") {
        TdxError::QeReportBinding
    } else if has("ISV enclave report signature is invalid") {
        TdxError::QuoteSignature
    } else if has("Fmspc mismatch") {
        TdxError::FmspcMismatch
    } else if has("No matching TCB level") {
        TdxError::NoMatchingTcbLevel
    } else if has("Revoked") && has("TCB status") {
        TdxError::Revoked
    } else if has("Failed to load root ca") {
        TdxError::BadRoot
    } else if has("CrlExpired") || has("CrlNotValidYet") {
        TdxError::CrlExpired
    } else if has("CertRevoked") {
        TdxError::CertificateRevoked
    } else if has("CertExpired") || has("CertNotValidYet") {
        TdxError::CertificateExpired
    } else if has("UnknownIssuer") {
        TdxError::UntrustedChain
    } else if has("CRL") || has("crl") {
        TdxError::CrlInvalid
    } else if has("certificate") || has("Certificate") {
        TdxError::CertificateChain
    } else {
        TdxError::Other(msg.chars().take(200).collect())
    }
}

/// Parse a quote and check its header (fuzz entry point). Never panics.
pub fn parse_quote(bytes: &[u8]) -> Result<Quote, TdxError> {
    // Header fields first, from the raw bytes, so each has its own error even when the
    // rest of the quote would not decode under that header.
    let h = bytes.get(..48).ok_or(TdxError::Parse)?;
    let version = u16::from_le_bytes([h[0], h[1]]);
    if !(4..=5).contains(&version) {
        return Err(TdxError::UnsupportedVersion(version));
    }
    let key_type = u16::from_le_bytes([h[2], h[3]]);
    if key_type != ATT_KEY_ECDSA_P256 {
        return Err(TdxError::UnsupportedKeyType(key_type));
    }
    let tee_type = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if tee_type != TEE_TYPE_TDX {
        return Err(TdxError::NotTdx(tee_type));
    }
    if h[12..28] != INTEL_QE_VENDOR_ID {
        return Err(TdxError::UnknownQeVendor);
    }
    let q = Quote::parse(bytes).map_err(|_| TdxError::Parse)?;
    if !(4..=5).contains(&q.header.version) {
        return Err(TdxError::UnsupportedVersion(q.header.version));
    }
    if q.header.tee_type != TEE_TYPE_TDX {
        return Err(TdxError::NotTdx(q.header.tee_type));
    }
    if q.header.attestation_key_type != ATT_KEY_ECDSA_P256 {
        return Err(TdxError::UnsupportedKeyType(q.header.attestation_key_type));
    }
    if q.header.qe_vendor_id != INTEL_QE_VENDOR_ID {
        return Err(TdxError::UnknownQeVendor);
    }
    if q.report.as_td10().is_none() {
        return Err(TdxError::NotTdx(q.header.tee_type));
    }
    Ok(q)
}

/// REPORTDATA of a quote, *unverified* (for tools that display it).
pub fn unverified_report_data(bytes: &[u8]) -> Option<[u8; 64]> {
    parse_quote(bytes)
        .ok()
        .and_then(|q| q.report.as_td10().map(|r| r.report_data))
}

/// TDX verifier.
#[derive(Debug, Default)]
pub struct TdxVerifier;

impl TdxVerifier {
    /// New verifier.
    pub fn new() -> Self {
        TdxVerifier
    }

    /// Verify a raw quote with collateral JSON against `policy` at `now` (real Intel TDX,
    /// under `roots.intel`).
    pub fn verify_quote(
        &self,
        quote: &[u8],
        collateral_json: &[u8],
        policy: &TrustPolicy,
        now: UnixTime,
    ) -> Result<PlatformClaims, TdxError> {
        self.verify_quote_for(Platform::Tdx, quote, collateral_json, policy, now)
    }

    /// [`Self::verify_quote`] for `platform`: [`Platform::Tdx`] (Intel root) or
    /// [`Platform::SimulatedTdx`] (the policy's simulated Intel root; see the module docs).
    pub fn verify_quote_for(
        &self,
        platform: Platform,
        quote: &[u8],
        collateral_json: &[u8],
        policy: &TrustPolicy,
        now: UnixTime,
    ) -> Result<PlatformClaims, TdxError> {
        let root = match platform {
            Platform::Tdx => policy.intel_root.clone().ok_or(TdxError::NoPinnedRoot)?,
            Platform::SimulatedTdx => {
                // Also gated in confide-attest; checked here so a direct caller of this
                // function cannot accept simulated evidence by accident either.
                if !policy.allow_simulated {
                    return Err(TdxError::SimulatedNotAllowed);
                }
                policy
                    .simulated_tdx_root
                    .clone()
                    .ok_or(TdxError::NoSimulatedRoot)?
            }
            other => return Err(TdxError::WrongPlatform(other)),
        };
        let q = parse_quote(quote)?;
        let collateral: QuoteCollateralV3 =
            serde_json::from_slice(collateral_json).map_err(|_| TdxError::CollateralMalformed)?;
        // Debug is judged by confide-attest from TD_ATTRIBUTES, like every platform.
        let verified = dcap_qvl::verify::QuoteVerifier::new(root)
            .allow_debug(true)
            .verify(quote, &collateral, now.0)
            .map_err(|e| classify(&format!("{e:#}")))?;
        if !policy
            .tdx
            .accepted_tcb_statuses
            .iter()
            .any(|s| s == &verified.status)
        {
            return Err(TdxError::TcbStatusNotAccepted(verified.status));
        }
        let td = q.report.as_td10().ok_or(TdxError::Parse)?;
        let signed_time = if platform == Platform::SimulatedTdx {
            if td.mr_owner != SIMULATED_TDX_MR_OWNER {
                return Err(TdxError::SimulatedMarkerMissing);
            }
            let (time, rest) = td.mr_owner_config.split_at(8);
            if rest.iter().any(|&b| b != 0) {
                return Err(TdxError::SimulatedTimeMalformed);
            }
            let mut t = [0u8; 8];
            t.copy_from_slice(time);
            Some(u64::from_le_bytes(t))
        } else {
            None
        };
        let mut measurement = Vec::with_capacity(240);
        for m in [&td.mr_td, &td.rt_mr0, &td.rt_mr1, &td.rt_mr2, &td.rt_mr3] {
            measurement.extend_from_slice(m);
        }
        Ok(PlatformClaims {
            platform,
            measurement,
            report_data: td.report_data,
            binding_field: td.mr_config_id.to_vec(),
            tcb: Tcb::Tdx {
                tee_tcb_svn: td.tee_tcb_svn,
                status: verified.status,
                advisories: verified.advisory_ids,
            },
            chip_id: verified.ppid,
            // TD_ATTRIBUTES bit 0: DEBUG (TUD group: the TD is under debug, untrusted).
            debug: td.td_attributes[0] & 1 != 0,
            signed_time,
            version: u32::from(q.header.version),
        })
    }
}

impl PlatformVerifier for TdxVerifier {
    fn handles(&self, p: Platform) -> bool {
        matches!(p, Platform::Tdx | Platform::SimulatedTdx)
    }

    fn verify_platform(
        &self,
        evidence: &Evidence,
        policy: &TrustPolicy,
        now: UnixTime,
    ) -> Result<PlatformClaims, PlatformError> {
        Ok(self.verify_quote_for(
            evidence.platform,
            &evidence.report,
            &evidence.collateral,
            policy,
            now,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (Vec<u8>, Vec<u8>) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/tdx/");
        (
            std::fs::read(format!("{dir}tdx_quote")).unwrap(),
            std::fs::read(format!("{dir}tdx_quote_collateral.json")).unwrap(),
        )
    }

    /// 2025-06-20T00:00:00Z, inside the collateral window.
    pub const IN_WINDOW: UnixTime = UnixTime(1_750_377_600);

    #[test]
    fn fixture_verifies_up_to_date_in_window() {
        let (q, c) = fixture();
        let claims = TdxVerifier::new()
            .verify_quote(&q, &c, &TrustPolicy::production(), IN_WINDOW)
            .unwrap();
        assert_eq!(claims.measurement.len(), 240);
        assert_eq!(claims.version, 4);
        match &claims.tcb {
            Tcb::Tdx { status, .. } => assert_eq!(status, "UpToDate"),
            other => panic!("unexpected tcb {other:?}"),
        }
    }

    /// The root is chosen by the platform, never by trying roots: simulated-tdx needs
    /// `allow_simulated` and its own pinned root, and other platforms are refused.
    #[test]
    fn root_follows_the_platform() {
        let (q, c) = fixture();
        let v = TdxVerifier::new();
        let prod = TrustPolicy::production();
        assert!(v.handles(Platform::Tdx) && v.handles(Platform::SimulatedTdx));
        assert!(!v.handles(Platform::Simulated) && !v.handles(Platform::SevSnp));
        assert_eq!(
            v.verify_quote_for(Platform::SevSnp, &q, &c, &prod, IN_WINDOW),
            Err(TdxError::WrongPlatform(Platform::SevSnp))
        );
        assert_eq!(
            v.verify_quote_for(Platform::SimulatedTdx, &q, &c, &prod, IN_WINDOW),
            Err(TdxError::SimulatedNotAllowed)
        );
        let mut no_root = TrustPolicy::production();
        no_root.allow_simulated = true;
        assert_eq!(
            v.verify_quote_for(Platform::SimulatedTdx, &q, &c, &no_root, IN_WINDOW),
            Err(TdxError::NoSimulatedRoot)
        );
        // Pinning Intel's own root as the "simulated" one still demands the simulated marker:
        // a real quote cannot be passed off as simulated (or get a signed time).
        let intel = prod.intel_root.clone().unwrap();
        let as_sim = TrustPolicy::production().with_simulated_tdx_root(intel);
        assert_eq!(
            v.verify_quote_for(Platform::SimulatedTdx, &q, &c, &as_sim, IN_WINDOW),
            Err(TdxError::SimulatedMarkerMissing)
        );
        let claims = v.verify_quote(&q, &c, &as_sim, IN_WINDOW).unwrap();
        assert_eq!(claims.platform, Platform::Tdx);
        assert_eq!(claims.signed_time, None);
    }

    #[test]
    fn fixture_today_reports_expired_collateral() {
        let (q, c) = fixture();
        let err = TdxVerifier::new()
            .verify_quote(&q, &c, &TrustPolicy::production(), UnixTime(1_790_000_000))
            .unwrap_err();
        assert!(
            matches!(
                err,
                TdxError::CrlExpired | TdxError::TcbInfoExpired | TdxError::QeIdentityExpired
            ),
            "{err:?}"
        );
    }
}
