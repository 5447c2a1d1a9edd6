//! The device's verifiers behind `confide-ratls`' traits: hardware evidence judged by
//! `confide_attest_verify::verify_evidence` (every platform's leaf verifier, then
//! `confide_attest::verify_with`) under the trust policy, and the node's stapled ledger
//! bundle judged by `confide_release::verify_bundle` and required to lie on the same log
//! as the device's verified [`LedgerView`].
//!
//! Each verifier also records the typed cause of a failure and the facts of a success
//! ([`Findings`]), so the client can say *which* check failed and report every check
//! made: `confide-ratls` itself only sees opaque [`ExternalError`]s.

use std::sync::{Arc, Mutex};

use confide_attest::{Evidence, Platform, TrustPolicy};
use confide_ratls::rustls::pki_types::UnixTime as TlsTime;
use confide_ratls::{
    CheckpointRef, EvidenceClaims, EvidenceVerifier, ExternalError, InclusionVerifier,
    LedgerEntryClaims, RatlsError,
};
use confide_release::{Bundle, LedgerEntry, LedgerTrust, verify_bundle};

use crate::error::Check;
use crate::ledger::{LedgerView, classify_release_error};

/// Media type of the `CFEV` evidence container (`confide_attest::Evidence::encode`) that
/// nodes put in their certificate's CMW `cpu` record.
pub const EVIDENCE_MEDIA_TYPE: &str = "application/vnd.confide.evidence";

/// REPORT_DATA in an SEV-SNP ATTESTATION_REPORT (AMD SEV-SNP ABI spec 56860, Table 23);
/// the simulated platform uses the same report layout.
const SNP_REPORT_DATA: std::ops::Range<usize> = 0x50..0x90;
/// REPORTDATA in a TDX quote v4 (48-byte header + offset 520 in the TD report body).
const TDX_REPORT_DATA: std::ops::Range<usize> = 568..632;

/// What the verifiers learnt during one handshake.
#[derive(Debug, Default, Clone)]
pub struct Findings {
    /// The typed cause of an evidence rejection, with the check it belongs to.
    pub evidence_failure: Option<(Check, String)>,
    /// The typed cause of a ledger rejection.
    pub ledger_failure: Option<(Check, String)>,
    /// Whether the evidence came from the simulated platform.
    pub simulated: bool,
    /// When the evidence says it was made (Unix seconds), if it signs a time.
    pub evidence_time: Option<u64>,
    /// Witnesses whose cosignatures on the node's checkpoint verified.
    pub cosigners: Vec<String>,
    /// The release manifest's source revision.
    pub source_revision: Option<String>,
}

/// Shared between the verifiers (inside rustls) and the client.
pub type SharedFindings = Arc<Mutex<Findings>>;

fn record(f: &SharedFindings, update: impl FnOnce(&mut Findings)) {
    if let Ok(mut g) = f.lock() {
        update(&mut g);
    }
}

/// Simple error carrying a static reason, for failures that are not a library's error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Reason(&'static str);

/// Evidence judged under the trust policy.
#[derive(Debug)]
pub struct PolicyEvidence {
    policy: TrustPolicy,
    findings: SharedFindings,
}

impl PolicyEvidence {
    /// A verifier applying `policy`, recording into `findings`.
    pub fn new(policy: TrustPolicy, findings: SharedFindings) -> Self {
        PolicyEvidence { policy, findings }
    }
}

fn attest_check(e: &confide_attest::Error) -> Check {
    use confide_attest::Error as E;
    match e {
        E::Stale { .. } | E::FromFuture(_) => Check::Freshness,
        E::ReportDataMismatch | E::BindingMismatch | E::GpuBindingMismatch => Check::KeyBinding,
        _ => Check::HardwareRoot,
    }
}

impl EvidenceVerifier for PolicyEvidence {
    fn verify_evidence(
        &self,
        media_type: &str,
        evidence: &[u8],
        now: TlsTime,
    ) -> Result<EvidenceClaims, ExternalError> {
        let fail = |check: Check, e: &dyn std::fmt::Display| {
            let detail = e.to_string();
            record(&self.findings, |f| {
                f.evidence_failure = Some((check, detail));
            });
        };
        if media_type != EVIDENCE_MEDIA_TYPE {
            fail(Check::HardwareRoot, &"unsupported evidence media type");
            return Err(ExternalError::new(Reason(
                "unsupported evidence media type",
            )));
        }
        let ev = Evidence::decode(evidence).map_err(|e| {
            fail(Check::HardwareRoot, &e);
            ExternalError::new(e)
        })?;
        record(&self.findings, |f| {
            f.simulated = ev.platform == Platform::Simulated;
        });
        let range = match ev.platform {
            Platform::SevSnp | Platform::Simulated => SNP_REPORT_DATA,
            Platform::Tdx => TDX_REPORT_DATA,
            _ => {
                fail(Check::HardwareRoot, &"platform has no CPU report");
                return Err(ExternalError::new(Reason("platform has no CPU report")));
            }
        };
        // The signed REPORT_DATA is passed as the expected value: confide-ratls then checks
        // that it binds this very certificate's key.
        let Some(rd) = ev
            .report
            .get(range)
            .and_then(|s| <[u8; 64]>::try_from(s).ok())
        else {
            fail(Check::HardwareRoot, &"report too short for REPORT_DATA");
            return Err(ExternalError::new(Reason("report too short")));
        };
        // The dispatcher picks the platform's verifier (SEV-SNP and simulated, TDX) and the
        // NVIDIA verifier for GPU evidence in the container, with cached chain checks.
        let verified = confide_attest_verify::verify_evidence(
            evidence,
            &rd,
            confide_attest::UnixTime(now.as_secs()),
            &self.policy,
        )
        .map_err(|e| {
            fail(attest_check(&e), &e);
            ExternalError::new(e)
        })?;
        let signed_time = verified.signed_time();
        record(&self.findings, |f| f.evidence_time = signed_time);
        Ok(EvidenceClaims {
            platform: verified.platform().name().to_owned(),
            measurement: verified.measurement().to_vec(),
            model_digest: verified.model_digest().map(|d| d.to_vec()),
            config_digest: verified.config_digest().map(|d| d.to_vec()),
            report_data: *verified.report_data(),
            collected_at: signed_time
                .map(|s| TlsTime::since_unix_epoch(std::time::Duration::from_secs(s))),
        })
    }
}

/// The stapled bundle judged against the ledger trust and the device's ledger view.
#[derive(Debug)]
pub struct ViewInclusion {
    trust: LedgerTrust,
    view: Arc<LedgerView>,
    findings: SharedFindings,
}

impl ViewInclusion {
    /// A verifier trusting `trust` whose bundles must lie on `view`'s log.
    pub fn new(trust: LedgerTrust, view: Arc<LedgerView>, findings: SharedFindings) -> Self {
        ViewInclusion {
            trust,
            view,
            findings,
        }
    }
}

fn secs(s: u64) -> TlsTime {
    TlsTime::since_unix_epoch(std::time::Duration::from_secs(s))
}

impl InclusionVerifier for ViewInclusion {
    fn verify_inclusion(
        &self,
        bundle: &[u8],
        _now: TlsTime,
    ) -> Result<LedgerEntryClaims, ExternalError> {
        let fail = |check: Check, detail: String| {
            record(&self.findings, |f| f.ledger_failure = Some((check, detail)));
        };
        let b = Bundle::decode(bundle).map_err(|e| {
            fail(Check::LedgerEntry, e.to_string());
            ExternalError::new(e)
        })?;
        // Signature, witnesses and inclusion under the node's checkpoint...
        let v = verify_bundle(&b, &self.trust, None, None).map_err(|e| {
            fail(classify_release_error(&e), e.to_string());
            ExternalError::new(e)
        })?;
        // ...and that checkpoint must describe the same log the device verified (a prefix
        // of it): no split view between what the node staples and what devices see.
        let cp = v.checkpoint();
        if !self.view.is_prefix(cp.size(), cp.root()) {
            let detail = format!(
                "the node's checkpoint (size {}) is not part of the ledger this device verified \
                 (size {})",
                cp.size(),
                self.view.checkpoint().size()
            );
            fail(Check::Checkpoint, detail);
            return Err(ExternalError::new(Reason(
                "node checkpoint inconsistent with the device's view",
            )));
        }
        let LedgerEntry::Release(m) = v.entry() else {
            fail(
                Check::LedgerEntry,
                "the stapled entry is not a release manifest".into(),
            );
            return Err(ExternalError::new(Reason("entry is not a release")));
        };
        let cosigners = v.verified_checkpoint().cosigners().to_vec();
        let rev = m.source_revision.clone();
        record(&self.findings, |f| {
            f.cosigners = cosigners;
            f.source_revision = Some(rev);
        });
        Ok(LedgerEntryClaims {
            platform: m.platform.name().to_owned(),
            measurement: m.measurement.clone(),
            model_digest: Some(m.model_digest.to_vec()),
            config_digest: Some(m.config_digest.to_vec()),
            valid_from: secs(m.not_before),
            valid_until: Some(secs(m.not_after)),
            index: v.index(),
            checkpoint: CheckpointRef {
                origin: cp.origin().to_owned(),
                size: cp.size(),
                root_hash: cp.root().0,
            },
        })
    }
}

/// Which check an RA-TLS failure belongs to, refined by what the verifiers recorded.
pub fn classify(e: &RatlsError, findings: &Findings) -> (Check, String) {
    use RatlsError as R;
    match e {
        R::EvidenceRejected(_) | R::GpuEvidenceRejected(_) => findings
            .evidence_failure
            .clone()
            .unwrap_or((Check::HardwareRoot, e.to_string())),
        R::InclusionRejected(_) => findings
            .ledger_failure
            .clone()
            .unwrap_or((Check::LedgerEntry, e.to_string())),
        R::CertificateNotYetValid
        | R::CertificateExpired
        | R::CertificateLifetimeTooLong
        | R::StaleEvidence
        | R::EvidenceFromFuture
        | R::LedgerEntryNotYetValid
        | R::LedgerEntryExpired
        | R::NoTime => (Check::Freshness, e.to_string()),
        R::ReportDataMismatch(_) => (Check::KeyBinding, e.to_string()),
        R::PlatformMismatch
        | R::MeasurementNotListed
        | R::ModelDigestMismatch
        | R::ModelDigestNotAttested
        | R::ConfigDigestMismatch
        | R::ConfigDigestNotAttested => (Check::Measurement, e.to_string()),
        R::HandshakeSignatureInvalid | R::SignatureCertificateMismatch => {
            (Check::Handshake, e.to_string())
        }
        _ => (Check::HardwareRoot, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratls_failures_name_the_check() {
        let none = Findings::default();
        assert_eq!(
            classify(&RatlsError::CertificateExpired, &none).0,
            Check::Freshness
        );
        assert_eq!(
            classify(&RatlsError::MeasurementNotListed, &none).0,
            Check::Measurement
        );
        assert_eq!(
            classify(&RatlsError::ModelDigestMismatch, &none).0,
            Check::Measurement
        );
        assert_eq!(
            classify(&RatlsError::ConfigDigestMismatch, &none).0,
            Check::Measurement
        );
        assert_eq!(
            classify(&RatlsError::HandshakeSignatureInvalid, &none).0,
            Check::Handshake
        );
        assert_eq!(
            classify(&RatlsError::MissingCmwExtension, &none).0,
            Check::HardwareRoot
        );
        // An opaque rejection is refined by what the verifier recorded.
        let ext = || ExternalError::new(Reason("x"));
        let f = Findings {
            evidence_failure: Some((Check::Freshness, "stale".into())),
            ledger_failure: Some((Check::Witnesses, "1 of 2".into())),
            ..Findings::default()
        };
        assert_eq!(
            classify(&RatlsError::EvidenceRejected(ext()), &f),
            (Check::Freshness, "stale".into())
        );
        assert_eq!(
            classify(&RatlsError::InclusionRejected(ext()), &f),
            (Check::Witnesses, "1 of 2".into())
        );
        assert_eq!(
            classify(&RatlsError::InclusionRejected(ext()), &none).0,
            Check::LedgerEntry
        );
    }

    #[test]
    fn attest_errors_map_to_checks() {
        assert_eq!(
            attest_check(&confide_attest::Error::SimulatedNotAllowed),
            Check::HardwareRoot
        );
        assert_eq!(
            attest_check(&confide_attest::Error::FromFuture(5)),
            Check::Freshness
        );
        assert_eq!(
            attest_check(&confide_attest::Error::ReportDataMismatch),
            Check::KeyBinding
        );
    }

    #[test]
    fn unknown_evidence_media_type_is_a_hardware_root_failure() {
        let findings: SharedFindings = Arc::default();
        let v = PolicyEvidence::new(TrustPolicy::production(), Arc::clone(&findings));
        let now = TlsTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000));
        assert!(v.verify_evidence("text/plain", b"x", now).is_err());
        assert!(
            v.verify_evidence(EVIDENCE_MEDIA_TYPE, b"garbage", now)
                .is_err()
        );
        let f = findings.lock().unwrap().clone();
        assert_eq!(f.evidence_failure.unwrap().0, Check::HardwareRoot);
    }
}
