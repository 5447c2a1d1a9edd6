//! The one verification pipeline: what turns a node's evidence and stapled ledger bundle
//! into the claims RA-TLS compares.
//!
//! ```text
//! CMW cpu record ──EvidencePipeline──► confide-attest-verify (every platform leaf, policy)
//!                                        └─► registers(): MEASUREMENT, POLICY / MRTD, RTMR0..3 / gpu.N
//! ledger bundle  ──InclusionPipeline─► confide-release::verify_bundle (signature, witnesses,
//!                                        inclusion, consistency) └─► the manifest's pins()
//!                        both ──► confide_ratls::match_release (register by register)
//! ```
//!
//! Every caller goes through here: the SDK (which adds its ledger view and records the
//! typed cause of a failure through an [`Observer`]), node-to-node calls, the session
//! tests, and the node itself, which compares its own registers with the release it is
//! about to staple ([`registers`] + [`manifest_claims`] + `match_release`) so a node whose
//! image is not the release refuses to start instead of every client refusing it.
//!
//! Platform layouts live here and nowhere else: where REPORT_DATA sits in each report
//! format, and which bytes of a report are which register.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use confide_attest::{Evidence, ReportDataCheck, TrustPolicy, VerifiedEvidence};
use confide_attest_verify::Verifiers;
use confide_ratls::rustls::pki_types::UnixTime as TlsTime;
use confide_ratls::{
    CheckpointRef, EvidenceClaims, EvidenceVerifier, ExternalError, InclusionVerifier,
    LedgerEntryClaims, Pin, Register,
};
use confide_release::{
    Bundle, LedgerEntry, LedgerTrust, ReleaseManifest, StoredCheckpoint, VerifiedInclusion,
    verify_bundle,
};

pub use confide_ratls::match_release;

/// Media type of the `CFEV` evidence container (`confide_attest::Evidence::encode`) in a
/// node certificate's CMW `cpu` record.
pub const EVIDENCE_MEDIA_TYPE: &str = "application/vnd.confide.evidence";

/// SEV-SNP ATTESTATION_REPORT fields (AMD SEV-SNP ABI spec 56860, Table 23); the simulated
/// SEV-SNP twin uses the same layout.
mod snp {
    use std::ops::Range;
    /// Guest POLICY (§4.3), little-endian u64.
    pub const POLICY: Range<usize> = 0x08..0x10;
    pub const REPORT_DATA: Range<usize> = 0x50..0x90;
    pub const MEASUREMENT: Range<usize> = 0x90..0xC0;
}

/// TDX quote v4 fields: the 48-byte quote header, then the TD report body (Intel TDX DCAP
/// Quote Generation Library and Quote Verification spec, A.3.2 "TD Quote Body").
mod tdx {
    use std::ops::Range;
    const BODY: usize = 48;
    pub const MRTD: Range<usize> = BODY + 136..BODY + 184;
    /// RTMR0..3 follow each other, 48 bytes apart.
    pub const RTMR0: usize = BODY + 328;
    pub const REPORT_DATA: Range<usize> = BODY + 520..BODY + 584;
}

/// Which report layout a platform's evidence uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Snp,
    Tdx,
}

/// By name, so the simulated twin of each platform shares the real one's layout.
fn layout(platform: &str) -> Option<Layout> {
    match platform {
        "sev-snp" | "simulated" => Some(Layout::Snp),
        "tdx" | "simulated-tdx" => Some(Layout::Tdx),
        _ => None,
    }
}

/// Why the pipeline refused something, before, inside or after the real verifiers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The CMW record's media type is not [`EVIDENCE_MEDIA_TYPE`].
    #[error("unsupported evidence media type")]
    MediaType,
    /// The evidence names a platform that has no CPU report (a GPU alone).
    #[error("evidence platform {0} has no CPU report")]
    NoCpuReport(String),
    /// The report is too short to hold the fields its platform defines.
    #[error("{platform} report too short for {field}")]
    ShortReport {
        /// The platform.
        platform: String,
        /// The field that did not fit.
        field: &'static str,
    },
    /// The evidence did not verify (decoding, vendor chain, TCB, policy, binding...).
    #[error(transparent)]
    Evidence(#[from] confide_attest::Error),
    /// The stapled bundle did not verify (signature, witnesses, inclusion, consistency).
    #[error(transparent)]
    Ledger(#[from] confide_release::Error),
    /// The stapled ledger entry is not a release manifest.
    #[error("the stapled ledger entry is not a release manifest")]
    NotARelease,
    /// The node's checkpoint is not on the log this device verified.
    #[error(
        "the node's checkpoint (size {node_size}) is not part of the ledger this device \
         verified (size {device_size})"
    )]
    NotOnDeviceView {
        /// The size of the checkpoint the node stapled.
        node_size: u64,
        /// The size of the device's verified checkpoint.
        device_size: u64,
    },
    /// A later ledger entry revoked the stapled release.
    #[error("the release at ledger index {index} was revoked: {reason}")]
    Revoked {
        /// The release's leaf index.
        index: u64,
        /// The reason the revocation gives.
        reason: String,
    },
}

/// The 64-byte REPORT_DATA as signed in `ev`'s CPU report.
pub fn signed_report_data(ev: &Evidence) -> Result<[u8; 64], Error> {
    let name = ev.platform.name();
    let range = match layout(name) {
        Some(Layout::Snp) => snp::REPORT_DATA,
        Some(Layout::Tdx) => tdx::REPORT_DATA,
        None => return Err(Error::NoCpuReport(name.to_owned())),
    };
    field(name, &ev.report, range, "REPORT_DATA")?
        .try_into()
        .map_err(|_| short(name, "REPORT_DATA"))
}

fn short(platform: &str, field: &'static str) -> Error {
    Error::ShortReport {
        platform: platform.to_owned(),
        field,
    }
}

fn field<'a>(
    platform: &str,
    report: &'a [u8],
    range: Range<usize>,
    name: &'static str,
) -> Result<&'a [u8], Error> {
    report.get(range).ok_or_else(|| short(platform, name))
}

fn register(name: &str, value: &[u8], must_be_pinned: bool) -> Register {
    Register {
        name: name.to_owned(),
        value: value.to_vec(),
        must_be_pinned,
    }
}

/// The named registers of a CPU report of `platform` (its evidence name), plus the GPU's
/// SPDM measurements (`gpu.N`) when GPU evidence came with it.
///
/// On a verified report these are what the hardware signed. The node also calls this on
/// its own report, which it trusts because it asked its own hardware for it.
pub fn registers(
    platform: &str,
    report: &[u8],
    gpu: Option<&[(u8, Vec<u8>)]>,
) -> Result<Vec<Register>, Error> {
    let mut out = Vec::new();
    match layout(platform) {
        Some(Layout::Snp) => {
            let m = field(platform, report, snp::MEASUREMENT, "MEASUREMENT")?;
            let p = field(platform, report, snp::POLICY, "POLICY")?;
            out.push(register("MEASUREMENT", m, true));
            out.push(register("POLICY", p, true));
        }
        Some(Layout::Tdx) => {
            out.push(register(
                "MRTD",
                field(platform, report, tdx::MRTD, "MRTD")?,
                true,
            ));
            for i in 0..4 {
                let at = tdx::RTMR0 + 48 * i;
                let name = ["RTMR0", "RTMR1", "RTMR2", "RTMR3"][i];
                // RTMR3 is extended at run time by the guest (an application register):
                // a release may pin it, and need not.
                out.push(register(
                    name,
                    field(platform, report, at..at + 48, name)?,
                    i < 3,
                ));
            }
        }
        None => return Err(Error::NoCpuReport(platform.to_owned())),
    }
    for (index, value) in gpu.unwrap_or_default() {
        out.push(register(&format!("gpu.{index}"), value, false));
    }
    Ok(out)
}

/// The RA-TLS claims of verified evidence (`ev` is the container `verified` came from).
pub fn evidence_claims(
    ev: &Evidence,
    verified: &VerifiedEvidence,
) -> Result<EvidenceClaims, Error> {
    let platform = verified.platform().name();
    Ok(EvidenceClaims {
        platform: platform.to_owned(),
        measurement: verified.measurement().to_vec(),
        registers: registers(platform, &ev.report, verified.gpu_measurements())?,
        model_digest: verified.model_digest().map(|d| d.to_vec()),
        config_digest: verified.config_digest().map(|d| d.to_vec()),
        report_data: *verified.report_data(),
        collected_at: verified.signed_time().map(tls_time),
    })
}

/// The RA-TLS claims of a release manifest proven under `checkpoint` at `index`.
pub fn manifest_claims(
    m: &ReleaseManifest,
    index: u64,
    checkpoint: CheckpointRef,
) -> LedgerEntryClaims {
    LedgerEntryClaims {
        platform: m.platform.name().to_owned(),
        measurement: m.measurement.clone(),
        pins: m
            .pins()
            .into_iter()
            .map(|(name, accepted)| Pin { name, accepted })
            .collect(),
        model_digest: Some(m.model_digest.to_vec()),
        config_digest: Some(m.config_digest.to_vec()),
        valid_from: tls_time(m.not_before),
        valid_until: Some(tls_time(m.not_after)),
        index,
        checkpoint,
    }
}

/// The RA-TLS claims of a verified inclusion; only release manifests qualify.
pub fn inclusion_claims(v: &VerifiedInclusion) -> Result<LedgerEntryClaims, Error> {
    let LedgerEntry::Release(m) = v.entry() else {
        return Err(Error::NotARelease);
    };
    let cp = v.checkpoint();
    Ok(manifest_claims(
        m,
        v.index(),
        CheckpointRef {
            origin: cp.origin().to_owned(),
            size: cp.size(),
            root_hash: cp.root().0,
        },
    ))
}

fn tls_time(secs: u64) -> TlsTime {
    TlsTime::since_unix_epoch(Duration::from_secs(secs))
}

/// Told what the pipeline decided, so a caller can report *which* check failed (RA-TLS
/// itself only passes opaque errors through rustls) and every fact of a success.
pub trait Observer: Send + Sync {
    /// The evidence was refused.
    fn evidence_rejected(&self, _error: &Error) {}
    /// The evidence verified (`evidence` is the decoded container).
    fn evidence_accepted(&self, _evidence: &Evidence, _verified: &VerifiedEvidence) {}
    /// The bundle was refused.
    fn inclusion_rejected(&self, _error: &Error) {}
    /// The bundle verified and holds a release.
    fn inclusion_accepted(&self, _verified: &VerifiedInclusion) {}
}

/// A device's verified view of the log: the node's checkpoint must lie on it, so a node
/// cannot staple a proof from a split view of the ledger.
pub trait LogView: Send + Sync {
    /// Whether the tree of `size` with `root` is a prefix of the verified view.
    fn contains(&self, size: u64, root: &confide_release::Hash) -> bool;
    /// The size of the verified view (for the error message).
    fn size(&self) -> u64;
    /// The reason the release at leaf `index` was revoked, if a later entry of the
    /// verified view revokes it.
    fn revocation(&self, _index: u64) -> Option<String> {
        None
    }
}

/// [`EvidenceVerifier`] for the `CFEV` container: every platform leaf under a policy.
pub struct EvidencePipeline {
    policy: TrustPolicy,
    leaves: Verifiers,
    observer: Option<Arc<dyn Observer>>,
}

impl fmt::Debug for EvidencePipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvidencePipeline")
            .field("allowed_platforms", &self.policy.allowed_platforms)
            .field("allow_simulated", &self.policy.allow_simulated)
            .finish_non_exhaustive()
    }
}

impl EvidencePipeline {
    /// A verifier applying `policy`, caching verified vendor certificate chains.
    pub fn new(policy: TrustPolicy) -> Self {
        EvidencePipeline {
            policy,
            leaves: Verifiers::cached(),
            observer: None,
        }
    }

    /// Report every decision to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Verify `bytes` and return the container, the verified evidence and its claims.
    pub fn verify(
        &self,
        media_type: &str,
        bytes: &[u8],
        now: TlsTime,
    ) -> Result<(Evidence, VerifiedEvidence, EvidenceClaims), Error> {
        if media_type != EVIDENCE_MEDIA_TYPE {
            return Err(Error::MediaType);
        }
        let ev = Evidence::decode(bytes)?;
        // The signed REPORT_DATA is the expected value here: what it must *mean* (this
        // certificate's key, this GPU evidence) is checked by confide-ratls, which knows
        // the certificate. Every other check is the attestation crates'.
        let rd = signed_report_data(&ev)?;
        let verified = self.leaves.verify(
            &ev,
            ReportDataCheck::Confide(&rd),
            confide_attest::UnixTime(now.as_secs()),
            &self.policy,
        )?;
        let claims = evidence_claims(&ev, &verified)?;
        Ok((ev, verified, claims))
    }
}

impl EvidenceVerifier for EvidencePipeline {
    fn verify_evidence(
        &self,
        media_type: &str,
        evidence: &[u8],
        now: TlsTime,
    ) -> Result<EvidenceClaims, ExternalError> {
        self.verify_evidence_with_gpu(media_type, evidence, now)
            .map(|(claims, _)| claims)
    }

    fn verify_evidence_with_gpu(
        &self,
        media_type: &str,
        evidence: &[u8],
        now: TlsTime,
    ) -> Result<(EvidenceClaims, Option<[u8; 32]>), ExternalError> {
        match self.verify(media_type, evidence, now) {
            Ok((ev, verified, claims)) => {
                if let Some(o) = &self.observer {
                    o.evidence_accepted(&ev, &verified);
                }
                Ok((claims, verified.gpu_evidence_digest()))
            }
            Err(e) => {
                if let Some(o) = &self.observer {
                    o.evidence_rejected(&e);
                }
                Err(ExternalError::new(e))
            }
        }
    }
}

/// [`InclusionVerifier`] for stapled bundles: the ledger's trust, consistency with the
/// newest checkpoint the device stored, and optionally a device's whole verified view.
pub struct InclusionPipeline {
    trust: LedgerTrust,
    last_seen: Option<StoredCheckpoint>,
    view: Option<Arc<dyn LogView>>,
    observer: Option<Arc<dyn Observer>>,
    max_release_age: Option<u64>,
}

impl fmt::Debug for InclusionPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InclusionPipeline")
            .field("trust", &self.trust)
            .field("last_seen", &self.last_seen)
            .finish_non_exhaustive()
    }
}

impl InclusionPipeline {
    /// A verifier trusting `trust`, requiring consistency with `last_seen`, the newest
    /// checkpoint this device verified before (the SDK stores it between sessions).
    pub fn new(trust: LedgerTrust, last_seen: Option<StoredCheckpoint>) -> Self {
        InclusionPipeline {
            trust,
            last_seen,
            view: None,
            observer: None,
            max_release_age: None,
        }
    }

    /// Refuse a release whose `not_before` lies more than `secs` before the handshake's
    /// time (the trust policy's `max_release_age_secs`).
    pub fn with_max_release_age(mut self, secs: Option<u64>) -> Self {
        self.max_release_age = secs;
        self
    }

    /// Require the node's checkpoint to lie on `view`.
    pub fn with_view(mut self, view: Arc<dyn LogView>) -> Self {
        self.view = Some(view);
        self
    }

    /// Report every decision to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Verify `bundle` and return the verified inclusion and its claims.
    pub fn verify(&self, bundle: &[u8]) -> Result<(VerifiedInclusion, LedgerEntryClaims), Error> {
        let b = Bundle::decode(bundle)?;
        let v = verify_bundle(&b, &self.trust, self.last_seen.as_ref(), None)?;
        if let Some(view) = &self.view {
            let cp = v.checkpoint();
            if !view.contains(cp.size(), cp.root()) {
                return Err(Error::NotOnDeviceView {
                    node_size: cp.size(),
                    device_size: view.size(),
                });
            }
            // A revocation logged after the node stapled its bundle is on the device's
            // (newer) view, not in the bundle: checked here, before any session.
            if let Some(reason) = view.revocation(v.index()) {
                return Err(Error::Revoked {
                    index: v.index(),
                    reason,
                });
            }
        }
        let claims = inclusion_claims(&v)?;
        Ok((v, claims))
    }
}

impl InclusionVerifier for InclusionPipeline {
    fn verify_inclusion(
        &self,
        bundle: &[u8],
        now: TlsTime,
    ) -> Result<LedgerEntryClaims, ExternalError> {
        let checked = self.verify(bundle).and_then(|(v, claims)| {
            if let (Some(max), LedgerEntry::Release(m)) = (self.max_release_age, v.entry()) {
                m.check_age(now.as_secs(), max)?;
            }
            Ok((v, claims))
        });
        match checked {
            Ok((v, claims)) => {
                if let Some(o) = &self.observer {
                    o.inclusion_accepted(&v);
                }
                Ok(claims)
            }
            Err(e) => {
                if let Some(o) = &self.observer {
                    o.inclusion_rejected(&e);
                }
                Err(ExternalError::new(e))
            }
        }
    }
}
