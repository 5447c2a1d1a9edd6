//! Glue between `confide-ratls`' small traits and the real attestation and ledger crates.
//!
//! `confide-ratls` does not depend on any platform: it asks an [`confide_ratls::Attester`]
//! for evidence bytes and, on the client side, an [`EvidenceVerifier`] and an
//! [`InclusionVerifier`] for claims. This module provides the real implementations:
//!
//! - node side: [`EvidenceAttester`] wraps a `confide_attest::Attester` (simulated vendor
//!   or configfs-tsm) and emits the `CFEV` evidence container
//!   ([`EVIDENCE_MEDIA_TYPE`]) carrying the model/config binding;
//! - client side: [`PolicyEvidenceVerifier`] runs `confide_attest_verify::verify_evidence`
//!   (every platform leaf) under a
//!   [`TrustPolicy`], and [`LedgerInclusionVerifier`] runs `confide_release::verify_bundle`
//!   under a [`LedgerTrust`] and requires the entry to be a release manifest.
//!
//! The client-side adapters live here (not only in the SDK) so the node's own tests and
//! node-to-node calls verify peers through exactly the code devices use.

use std::sync::Arc;
use std::time::SystemTime;

use confide_attest::{AttestRequest, Binding, Evidence, Platform, TrustPolicy};
use confide_ratls::rustls::pki_types::UnixTime as TlsTime;
use confide_ratls::{
    CheckpointRef, EvidenceClaims, EvidenceVerifier, ExternalError, InclusionVerifier,
    LedgerEntryClaims,
};
use confide_release::{Bundle, LedgerEntry, LedgerTrust, StoredCheckpoint, verify_bundle};

use crate::Error;

/// Media type of the `CFEV` evidence container (`confide_attest::Evidence::encode`) in
/// the certificate's CMW `cpu` record.
pub const EVIDENCE_MEDIA_TYPE: &str = "application/vnd.confide.evidence";

/// Offset of REPORT_DATA in an SEV-SNP ATTESTATION_REPORT (AMD SEV-SNP ABI spec 56860,
/// Table 23); the simulated platform uses the same report layout.
const SNP_REPORT_DATA: std::ops::Range<usize> = 0x50..0x90;
/// Offset of REPORTDATA in a TDX quote v4: 48-byte header + 520 into the TD report body
/// (Intel TDX DCAP Quote Generation Library and Quote Verification spec, A.3).
const TDX_REPORT_DATA: std::ops::Range<usize> = 568..632;

/// Node side: evidence from a platform attester, bound to the model and configuration.
pub struct EvidenceAttester {
    inner: Arc<dyn confide_attest::Attester>,
    binding: Binding,
}

impl std::fmt::Debug for EvidenceAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvidenceAttester")
            .field("platform", &self.inner.platform())
            .finish_non_exhaustive()
    }
}

impl EvidenceAttester {
    /// Wraps `inner`; every report carries `binding` (model digest, config digest).
    pub fn new(inner: Arc<dyn confide_attest::Attester>, binding: Binding) -> Self {
        Self { inner, binding }
    }

    /// The platform of the wrapped attester.
    pub fn platform(&self) -> Platform {
        self.inner.platform()
    }
}

impl confide_ratls::Attester for EvidenceAttester {
    fn media_type(&self) -> &str {
        EVIDENCE_MEDIA_TYPE
    }

    fn attest(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, ExternalError> {
        // The node is a service: it may read the clock. Simulated evidence signs this
        // time in, and clients judge its freshness against their policy.
        let now = confide_attest::UnixTime::from_system_time(SystemTime::now());
        let ev = self
            .inner
            .attest(&AttestRequest {
                report_data: *report_data,
                binding: Some(self.binding),
                gpu: None,
                now,
            })
            .map_err(|_| {
                ExternalError::new(Error::Attestation("the platform refused to attest"))
            })?;
        Ok(ev.encode())
    }
}

/// Client side: CPU evidence judged by `confide_attest::verify_with` under a policy.
#[derive(Debug)]
pub struct PolicyEvidenceVerifier {
    policy: TrustPolicy,
}

impl PolicyEvidenceVerifier {
    /// A verifier applying `policy`.
    pub fn new(policy: TrustPolicy) -> Self {
        Self { policy }
    }
}

fn signed_report_data(ev: &Evidence) -> Result<[u8; 64], Error> {
    let range = match ev.platform {
        Platform::SevSnp | Platform::Simulated => SNP_REPORT_DATA,
        Platform::Tdx => TDX_REPORT_DATA,
        _ => return Err(Error::Attestation("platform has no CPU report")),
    };
    ev.report
        .get(range)
        .and_then(|s| <[u8; 64]>::try_from(s).ok())
        .ok_or(Error::Attestation("report too short for REPORT_DATA"))
}

impl EvidenceVerifier for PolicyEvidenceVerifier {
    fn verify_evidence(
        &self,
        media_type: &str,
        evidence: &[u8],
        now: TlsTime,
    ) -> Result<EvidenceClaims, ExternalError> {
        if media_type != EVIDENCE_MEDIA_TYPE {
            return Err(ExternalError::new(Error::Attestation(
                "unsupported evidence media type",
            )));
        }
        let ev = Evidence::decode(evidence).map_err(ExternalError::new)?;
        // `verify_with` compares the signed REPORT_DATA to what it is given; the binding
        // to the certificate key is then checked by confide-ratls on the returned value,
        // so here the expected value is the one the report carries.
        let rd = signed_report_data(&ev).map_err(ExternalError::new)?;
        // Every platform leaf (SEV-SNP, TDX, NVIDIA, simulated) through one dispatcher.
        let verified = confide_attest_verify::verify_evidence(
            evidence,
            &rd,
            confide_attest::UnixTime(now.as_secs()),
            &self.policy,
        )
        .map_err(ExternalError::new)?;
        Ok(EvidenceClaims {
            platform: verified.platform().name().to_owned(),
            measurement: verified.measurement().to_vec(),
            model_digest: verified.model_digest().map(|d| d.to_vec()),
            config_digest: verified.config_digest().map(|d| d.to_vec()),
            report_data: *verified.report_data(),
            collected_at: verified
                .signed_time()
                .map(|s| TlsTime::since_unix_epoch(std::time::Duration::from_secs(s))),
        })
    }
}

/// Client side: the stapled bundle judged by `confide_release::verify_bundle`.
#[derive(Debug)]
pub struct LedgerInclusionVerifier {
    trust: LedgerTrust,
    last_seen: Option<StoredCheckpoint>,
}

impl LedgerInclusionVerifier {
    /// A verifier trusting `trust`, requiring consistency with `last_seen` (the newest
    /// checkpoint this client verified before; the SDK persists it across sessions).
    pub fn new(trust: LedgerTrust, last_seen: Option<StoredCheckpoint>) -> Self {
        Self { trust, last_seen }
    }
}

fn secs(s: u64) -> TlsTime {
    TlsTime::since_unix_epoch(std::time::Duration::from_secs(s))
}

impl InclusionVerifier for LedgerInclusionVerifier {
    fn verify_inclusion(
        &self,
        bundle: &[u8],
        _now: TlsTime,
    ) -> Result<LedgerEntryClaims, ExternalError> {
        let b = Bundle::decode(bundle).map_err(ExternalError::new)?;
        let v = verify_bundle(&b, &self.trust, self.last_seen.as_ref(), None)
            .map_err(ExternalError::new)?;
        let LedgerEntry::Release(m) = v.entry() else {
            return Err(ExternalError::new(Error::Ledger(
                "stapled entry is not a release manifest",
            )));
        };
        let cp = v.checkpoint();
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
