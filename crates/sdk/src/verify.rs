//! The device's verifiers: the `confide-verify` pipeline (every platform's leaf verifier
//! under the trust policy; the stapled bundle under the ledger trust and on the device's
//! verified [`LedgerView`]), with an [`Observer`] that records the typed cause of a
//! failure and the facts of a success ([`Findings`]), so the client can say *which* check
//! failed and report every check made: `confide-ratls` itself only sees opaque
//! [`ExternalError`](confide_ratls::ExternalError)s.

use std::sync::{Arc, Mutex};

use confide_attest::{Evidence, TrustPolicy, VerifiedEvidence};
use confide_ratls::RatlsError;
use confide_release::{LedgerEntry, LedgerTrust, VerifiedInclusion};
use confide_verify::{EvidencePipeline, InclusionPipeline, LogView, Observer};

use crate::error::Check;
use crate::ledger::{LedgerView, classify_release_error};

pub use confide_verify::EVIDENCE_MEDIA_TYPE;

/// What the verifiers learnt during one handshake.
#[derive(Debug, Default, Clone)]
pub struct Findings {
    /// The typed cause of an evidence rejection, with the check it belongs to.
    pub evidence_failure: Option<(Check, String)>,
    /// The typed cause of a ledger rejection.
    pub ledger_failure: Option<(Check, String)>,
    /// Whether the evidence came from a simulated platform.
    pub simulated: bool,
    /// When the evidence says it was made (Unix seconds), if it signs a time.
    pub evidence_time: Option<u64>,
    /// Witnesses whose cosignatures on the node's checkpoint verified.
    pub cosigners: Vec<String>,
    /// The release manifest's source revision.
    pub source_revision: Option<String>,
    /// The registers the release pins, each compared with the evidence (`MRTD`, `RTMR0`...).
    pub pinned: Vec<String>,
    /// The GPU's verified facts, when the evidence carried a GPU: its CC mode, how many
    /// measurement blocks it reported, and whether its root was the simulated one.
    pub gpu: Option<GpuFindings>,
}

/// What the verifier established about a node's GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuFindings {
    /// The confidential-computing mode the signed report states.
    pub cc_mode: confide_attest::GpuCcMode,
    /// SPDM measurement blocks reported (each compared where the release pins it).
    pub blocks: usize,
    /// The device chain ended at the simulated NVIDIA root (no GPU at all).
    pub simulated: bool,
}

/// Shared between the verifiers (inside rustls) and the client.
pub type SharedFindings = Arc<Mutex<Findings>>;

fn record(f: &SharedFindings, update: impl FnOnce(&mut Findings)) {
    if let Ok(mut g) = f.lock() {
        update(&mut g);
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

/// The check a pipeline failure belongs to.
fn pipeline_check(e: &confide_verify::Error) -> Check {
    use confide_verify::Error as E;
    match e {
        E::Evidence(e) => attest_check(e),
        E::Ledger(e) => classify_release_error(e),
        E::NotARelease => Check::LedgerEntry,
        E::NotOnDeviceView { .. } => Check::Checkpoint,
        E::Revoked { .. } => Check::LedgerEntry,
        _ => Check::HardwareRoot,
    }
}

/// `e` with its causes (`nvidia verification failed: SPDM request nonce does not match…`):
/// the leaf verifiers' typed errors sit in `source()`, and the person needs the leaf's.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// Records what the pipeline decided into [`Findings`].
#[derive(Debug)]
struct Recorder(SharedFindings);

impl Observer for Recorder {
    fn evidence_rejected(&self, e: &confide_verify::Error) {
        let failure = (pipeline_check(e), with_causes(e));
        record(&self.0, |f| f.evidence_failure = Some(failure));
    }
    fn evidence_accepted(&self, _ev: &Evidence, v: &VerifiedEvidence) {
        let (simulated, time) = (v.is_simulated(), v.signed_time());
        let gpu = v.gpu_cc_mode().map(|cc_mode| GpuFindings {
            cc_mode,
            blocks: v.gpu_measurements().map_or(0, <[_]>::len),
            simulated: v.gpu_simulated(),
        });
        record(&self.0, |f| {
            f.simulated = simulated;
            f.evidence_time = time;
            f.gpu = gpu;
        });
    }
    fn inclusion_rejected(&self, e: &confide_verify::Error) {
        let failure = (pipeline_check(e), with_causes(e));
        record(&self.0, |f| f.ledger_failure = Some(failure));
    }
    fn inclusion_accepted(&self, v: &VerifiedInclusion) {
        let cosigners = v.verified_checkpoint().cosigners().to_vec();
        let (rev, pinned) = match v.entry() {
            LedgerEntry::Release(m) => (
                Some(m.source_revision.clone()),
                m.pins().into_iter().map(|(name, _)| name).collect(),
            ),
            _ => (None, Vec::new()),
        };
        record(&self.0, |f| {
            f.cosigners = cosigners;
            f.source_revision = rev;
            f.pinned = pinned;
        });
    }
}

impl LogView for LedgerView {
    fn contains(&self, size: u64, root: &confide_release::Hash) -> bool {
        self.is_prefix(size, root)
    }
    fn size(&self) -> u64 {
        self.checkpoint().size()
    }
    fn revocation(&self, index: u64) -> Option<String> {
        LedgerView::revocation(self, index).map(str::to_owned)
    }
}

/// Evidence judged under the trust policy, recording into `findings`.
pub fn evidence_verifier(policy: TrustPolicy, findings: SharedFindings) -> EvidencePipeline {
    EvidencePipeline::new(policy).with_observer(Arc::new(Recorder(findings)))
}

/// The stapled bundle judged against `trust`, and required to lie on `view`'s log: no
/// split view between what the node staples and what devices see.
pub fn inclusion_verifier(
    trust: LedgerTrust,
    view: Arc<LedgerView>,
    max_release_age: Option<u64>,
    findings: SharedFindings,
) -> InclusionPipeline {
    InclusionPipeline::new(trust, None)
        .with_view(view)
        .with_max_release_age(max_release_age)
        .with_observer(Arc::new(Recorder(findings)))
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
        | R::CertificateTooOld
        | R::StaleEvidence
        | R::EvidenceFromFuture
        | R::LedgerEntryNotYetValid
        | R::LedgerEntryExpired
        | R::NoTime => (Check::Freshness, e.to_string()),
        // The certificate's dates are part of what the evidence binds (ADR 0602).
        R::ReportDataMismatch(_) | R::ValidityMismatch => (Check::KeyBinding, e.to_string()),
        R::PlatformMismatch
        | R::MeasurementNotListed { .. }
        | R::RegisterNotAttested { .. }
        | R::RegisterNotPinned { .. }
        | R::RegisterGroupNotPinned { .. }
        | R::NothingPinned
        | R::ModelDigestMismatch
        | R::ModelDigestNotAttested
        | R::ModelNotAttested
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
    use confide_ratls::EvidenceVerifier as _;
    use confide_ratls::rustls::pki_types::UnixTime as TlsTime;

    #[test]
    fn ratls_failures_name_the_check() {
        let none = Findings::default();
        assert_eq!(
            classify(&RatlsError::CertificateExpired, &none).0,
            Check::Freshness
        );
        assert_eq!(
            classify(&RatlsError::CertificateTooOld, &none).0,
            Check::Freshness
        );
        assert_eq!(
            classify(&RatlsError::ValidityMismatch, &none).0,
            Check::KeyBinding
        );
        assert_eq!(
            classify(
                &RatlsError::MeasurementNotListed {
                    register: "RTMR1".into()
                },
                &none
            )
            .0,
            Check::Measurement
        );
        assert_eq!(
            classify(&RatlsError::ModelDigestMismatch, &none).0,
            Check::Measurement
        );
        assert_eq!(
            classify(&RatlsError::ModelNotAttested, &none).0,
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
        let ext = || confide_ratls::ExternalError::new(confide_verify::Error::NotARelease);
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
        let v = evidence_verifier(TrustPolicy::production(), Arc::clone(&findings));
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
