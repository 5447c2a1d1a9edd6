//! Client-side adapters from this crate's verifier traits to the real
//! attestation (`confide-attest-verify`) and ledger (`confide-release`) crates.
//! Enabled by the `verifiers` feature; the SDK and node-to-node callers use them.
//!
//! - [`AttestEvidenceVerifier`]: decodes the `confide-attest` evidence container
//!   (`CFEV`, media type [`EVIDENCE_MEDIA_TYPE`]), verifies it under a
//!   [`TrustPolicy`] with the leaf verifiers (SEV-SNP, TDX, simulated; NVIDIA for
//!   embedded GPU evidence), and reports the GPU evidence digest it verified so
//!   the REPORT_DATA check covers it.
//! - [`ReleaseInclusionVerifier`]: decodes a stapled [`Bundle`] and runs
//!   [`verify_bundle`] against a [`LedgerTrust`] and the newest checkpoint the
//!   device has stored; only release-manifest entries qualify.
//!
//! The attestation verifier is asked to compare REPORT_DATA against the value
//! the report itself carries: the *meaning* of REPORT_DATA (this certificate's
//! key, this GPU evidence) is checked afterwards by [`crate::NodeVerifier`],
//! which knows the certificate. Every other check (vendor chain, TCB, debug,
//! model/config binding, GPU binding and nonce, signed-time freshness) is the
//! attestation crate's.

use std::fmt;
use std::time::Duration;

use confide_attest::{Evidence, Platform, ReportDataCheck, TrustPolicy};
use confide_attest_verify::Verifiers;
use confide_release::{Bundle, LedgerEntry, LedgerTrust, StoredCheckpoint, verify_bundle};
use rustls::pki_types::UnixTime;

use crate::error::ExternalError;
use crate::traits::{
    CheckpointRef, EvidenceClaims, EvidenceVerifier, InclusionVerifier, LedgerEntryClaims,
};

/// Media type of the `confide-attest` evidence container in the CMW `cpu` record.
pub const EVIDENCE_MEDIA_TYPE: &str = "application/vnd.confide.evidence";

/// SEV-SNP ATTESTATION_REPORT REPORT_DATA (AMD SEV-SNP ABI spec 56860, table 23);
/// the simulated platform uses the same layout.
const SNP_REPORT_DATA: std::ops::Range<usize> = 0x50..0x90;
/// TDX quote v4 REPORTDATA: 48-byte quote header + offset 520 in the TD report body
/// (Intel TDX DCAP Quote Generation Library and Quote Verification spec, A.3).
const TDX_REPORT_DATA: std::ops::Range<usize> = 568..632;

/// Why an adapter refused something before or after the real verifier ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// The CMW record's media type is not [`EVIDENCE_MEDIA_TYPE`].
    #[error("unsupported evidence media type")]
    MediaType,
    /// The evidence names a platform without a CPU report.
    #[error("evidence platform has no CPU report")]
    NoCpuReport,
    /// The report is too short to hold REPORT_DATA.
    #[error("report too short for REPORT_DATA")]
    ShortReport,
    /// The stapled ledger entry is not a release manifest.
    #[error("stapled ledger entry is not a release manifest")]
    NotARelease,
}

/// [`EvidenceVerifier`] over `confide-attest-verify`.
pub struct AttestEvidenceVerifier {
    policy: TrustPolicy,
    leaves: Verifiers,
}

impl fmt::Debug for AttestEvidenceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttestEvidenceVerifier")
            .field("allowed_platforms", &self.policy.allowed_platforms)
            .field("allow_simulated", &self.policy.allow_simulated)
            .finish_non_exhaustive()
    }
}

impl AttestEvidenceVerifier {
    /// A verifier applying `policy`, caching verified vendor certificate chains.
    pub fn new(policy: TrustPolicy) -> Self {
        Self {
            policy,
            leaves: Verifiers::cached(),
        }
    }
}

fn signed_report_data(ev: &Evidence) -> Result<[u8; 64], AdapterError> {
    let range = match ev.platform {
        Platform::SevSnp | Platform::Simulated => SNP_REPORT_DATA,
        Platform::Tdx => TDX_REPORT_DATA,
        _ => return Err(AdapterError::NoCpuReport),
    };
    ev.report
        .get(range)
        .and_then(|s| <[u8; 64]>::try_from(s).ok())
        .ok_or(AdapterError::ShortReport)
}

fn to_tls_time(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

impl EvidenceVerifier for AttestEvidenceVerifier {
    fn verify_evidence(
        &self,
        media_type: &str,
        evidence: &[u8],
        now: UnixTime,
    ) -> Result<EvidenceClaims, ExternalError> {
        self.verify_evidence_with_gpu(media_type, evidence, now)
            .map(|(claims, _)| claims)
    }

    fn verify_evidence_with_gpu(
        &self,
        media_type: &str,
        evidence: &[u8],
        now: UnixTime,
    ) -> Result<(EvidenceClaims, Option<[u8; 32]>), ExternalError> {
        if media_type != EVIDENCE_MEDIA_TYPE {
            return Err(ExternalError::new(AdapterError::MediaType));
        }
        let ev = Evidence::decode(evidence).map_err(ExternalError::new)?;
        let rd = signed_report_data(&ev).map_err(ExternalError::new)?;
        let v = self
            .leaves
            .verify(
                &ev,
                ReportDataCheck::Confide(&rd),
                confide_attest::UnixTime(now.as_secs()),
                &self.policy,
            )
            .map_err(ExternalError::new)?;
        let claims = EvidenceClaims {
            platform: v.platform().name().to_owned(),
            measurement: v.measurement().to_vec(),
            model_digest: v.model_digest().map(|d| d.to_vec()),
            config_digest: v.config_digest().map(|d| d.to_vec()),
            report_data: *v.report_data(),
            collected_at: v.signed_time().map(to_tls_time),
        };
        Ok((claims, v.gpu_evidence_digest()))
    }
}

/// [`InclusionVerifier`] over `confide-release`.
#[derive(Debug)]
pub struct ReleaseInclusionVerifier {
    trust: LedgerTrust,
    last_seen: Option<StoredCheckpoint>,
}

impl ReleaseInclusionVerifier {
    /// A verifier trusting `trust`, requiring consistency with `last_seen`, the newest
    /// checkpoint this device verified before (the SDK stores it between sessions).
    pub fn new(trust: LedgerTrust, last_seen: Option<StoredCheckpoint>) -> Self {
        Self { trust, last_seen }
    }
}

impl InclusionVerifier for ReleaseInclusionVerifier {
    fn verify_inclusion(
        &self,
        bundle: &[u8],
        _now: UnixTime,
    ) -> Result<LedgerEntryClaims, ExternalError> {
        let b = Bundle::decode(bundle).map_err(ExternalError::new)?;
        let v = verify_bundle(&b, &self.trust, self.last_seen.as_ref(), None)
            .map_err(ExternalError::new)?;
        let LedgerEntry::Release(m) = v.entry() else {
            return Err(ExternalError::new(AdapterError::NotARelease));
        };
        let cp = v.checkpoint();
        Ok(LedgerEntryClaims {
            platform: m.platform.name().to_owned(),
            measurement: m.measurement.clone(),
            model_digest: Some(m.model_digest.to_vec()),
            config_digest: Some(m.config_digest.to_vec()),
            valid_from: to_tls_time(m.not_before),
            valid_until: Some(to_tls_time(m.not_after)),
            index: v.index(),
            checkpoint: CheckpointRef {
                origin: cp.origin().to_owned(),
                size: cp.size(),
                root_hash: cp.root().0,
            },
        })
    }
}
