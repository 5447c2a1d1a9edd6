//! Node side of the glue between `confide-ratls`' small traits and the attestation crates.
//!
//! `confide-ratls` does not depend on any platform: it asks an [`confide_ratls::Attester`]
//! for evidence bytes. [`EvidenceAttester`] wraps a `confide_attest::Attester` (simulated
//! vendor or configfs-tsm) and emits the `CFEV` evidence container
//! ([`EVIDENCE_MEDIA_TYPE`]) carrying the model/config binding.
//!
//! Verifying peers (node-to-node calls, the node's own tests) goes through the one
//! pipeline devices use: `confide_verify::{EvidencePipeline, InclusionPipeline}`.

use std::sync::Arc;
use std::time::SystemTime;

use confide_attest::{AttestRequest, Binding, GpuAttester, GpuEvidence, Platform};
use confide_ratls::ExternalError;

use crate::Error;

pub use confide_verify::EVIDENCE_MEDIA_TYPE;

/// Node side: evidence from a platform attester, bound to the model and configuration,
/// and to the GPU's evidence when the node has a GPU (`crate::gpu`).
pub struct EvidenceAttester {
    inner: Arc<dyn confide_attest::Attester>,
    binding: Binding,
    gpu: Option<Arc<dyn GpuAttester>>,
    /// Simulated hostile host only (`crate::gpu::SimFault::GpuOtherCertificate`).
    swap_gpu: Option<GpuEvidence>,
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
        Self {
            inner,
            binding,
            gpu: None,
            swap_gpu: None,
        }
    }

    /// Also attest the GPU: each report binds GPU evidence gathered for the same
    /// certificate key (nonce = `REPORT_DATA[0..32]`).
    pub fn with_gpu(mut self, gpu: Arc<dyn GpuAttester>) -> Self {
        self.gpu = Some(gpu);
        self
    }

    /// Simulated hostile host: ship `evidence` in place of the GPU evidence the CPU
    /// report binds.
    pub(crate) fn swapping_gpu_evidence(mut self, evidence: Option<GpuEvidence>) -> Self {
        self.swap_gpu = evidence;
        self
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
        let mut report_data = *report_data;
        let gpu = match &self.gpu {
            None => None,
            Some(g) => {
                let mut nonce = [0u8; 32];
                nonce.copy_from_slice(&report_data[..32]);
                let ev = g.gpu_evidence(&nonce).map_err(|_| {
                    ExternalError::new(Error::Attestation("the GPU refused to attest"))
                })?;
                report_data[32..].copy_from_slice(&ev.digest());
                Some(ev)
            }
        };
        let mut ev = self
            .inner
            .attest(&AttestRequest {
                report_data,
                binding: Some(self.binding),
                gpu,
                now,
            })
            .map_err(|_| {
                ExternalError::new(Error::Attestation("the platform refused to attest"))
            })?;
        if let Some(other) = &self.swap_gpu {
            ev.gpu = Some(other.clone());
        }
        Ok(ev.encode())
    }
}
