//! GPU evidence from a real NVIDIA confidential GPU (Hopper and later), through NVML.
//!
//! The node asks the GPU for its SPDM GET_MEASUREMENTS exchange with a nonce derived from
//! the RA-TLS certificate key (`confide_attest::gpu_nonce`), and for its device certificate
//! chain, with the two NVML calls NVIDIA's own guest tools use:
//! `nvmlDeviceGetConfComputeGpuAttestationReport` and
//! `nvmlDeviceGetConfComputeGpuCertificate`. NVML is the driver's library
//! (`libnvidia-ml.so.1`), loaded at run time by `nvml-wrapper`: nothing NVIDIA ships is
//! linked into the node binary, and a machine without a GPU gets
//! [`NvmlAttestError::Unavailable`] rather than a crash.
//!
//! This crate only *gathers* evidence. Whether it is any good (signature, chain to the
//! pinned NVIDIA root, nonce, CC mode, measurements against the release's reference values)
//! is decided by clients, offline, in `confide-attest-nvidia` and `confide-verify`. The one
//! check made here is the system's own CC state at open: a node whose GPU is not in CC mode
//! refuses to start instead of serving evidence every client would refuse.

use confide_attest::{GpuAttester, GpuEvidence, PlatformError, input::pem_certificates};
use nvml_wrapper::Nvml;

/// Why NVML could not produce GPU evidence.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NvmlAttestError {
    /// NVML could not be loaded or initialised (no driver, no GPU, not a GPU guest).
    #[error("NVML is not available ({0}); is the NVIDIA driver installed in this guest?")]
    Unavailable(String),
    /// No GPU at this index.
    #[error("no NVIDIA GPU at index {index} ({reason})")]
    NoDevice {
        /// The index asked for.
        index: u32,
        /// NVML's reason.
        reason: String,
    },
    /// The system's confidential-computing state is not "CC on, production, accepting work".
    #[error(
        "the GPU is not ready for confidential computing (CC off, devtools mode, or not accepting client requests)"
    )]
    CcNotReady,
    /// An NVML confidential-computing call failed.
    #[error("NVML {call} failed: {reason}")]
    Call {
        /// Which call.
        call: &'static str,
        /// NVML's reason.
        reason: String,
    },
    /// The device certificate chain NVML returned is not a PEM chain.
    #[error("the GPU's certificate chain is not PEM certificates")]
    CertificateChain,
    /// NVML returned an empty attestation report.
    #[error("the GPU returned an empty attestation report")]
    EmptyReport,
}

/// A GPU attester for one NVIDIA GPU, by NVML index.
pub struct NvmlGpuAttester {
    nvml: Nvml,
    index: u32,
}

impl std::fmt::Debug for NvmlGpuAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlGpuAttester")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl NvmlGpuAttester {
    /// Loads NVML, finds GPU `index` and checks that confidential computing is on.
    pub fn open(index: u32) -> Result<Self, NvmlAttestError> {
        let nvml = Nvml::init().map_err(|e| NvmlAttestError::Unavailable(e.to_string()))?;
        let me = NvmlGpuAttester { nvml, index };
        let device = me.device()?;
        let ready =
            device
                .check_confidential_compute_status()
                .map_err(|e| NvmlAttestError::Call {
                    call: "nvmlSystemGetConfComputeState",
                    reason: e.to_string(),
                })?;
        if !ready {
            return Err(NvmlAttestError::CcNotReady);
        }
        Ok(me)
    }

    fn device(&self) -> Result<nvml_wrapper::Device<'_>, NvmlAttestError> {
        self.nvml
            .device_by_index(self.index)
            .map_err(|e| NvmlAttestError::NoDevice {
                index: self.index,
                reason: e.to_string(),
            })
    }

    /// The GPU's evidence for `nonce`.
    pub fn evidence(&self, nonce: &[u8; 32]) -> Result<GpuEvidence, NvmlAttestError> {
        let device = self.device()?;
        let report = device
            .confidential_compute_gpu_attestation_report(*nonce)
            .map_err(|e| NvmlAttestError::Call {
                call: "nvmlDeviceGetConfComputeGpuAttestationReport",
                reason: e.to_string(),
            })?;
        let certs =
            device
                .confidential_compute_gpu_certificate()
                .map_err(|e| NvmlAttestError::Call {
                    call: "nvmlDeviceGetConfComputeGpuCertificate",
                    reason: e.to_string(),
                })?;
        evidence_from_nvml(report.attestation_report, &certs.attestation_cert_chain)
    }
}

/// Assembles [`GpuEvidence`] from what NVML returns: the SPDM request and signed response
/// (kept byte for byte, including any padding after the signature, which verifiers ignore
/// and report), and the attestation certificate chain, PEM, leaf first.
pub fn evidence_from_nvml(
    attestation_report: Vec<u8>,
    attestation_cert_chain: &[u8],
) -> Result<GpuEvidence, NvmlAttestError> {
    if attestation_report.is_empty() {
        return Err(NvmlAttestError::EmptyReport);
    }
    // NVML's buffer is NUL-padded after the PEM text.
    let end = attestation_cert_chain
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(attestation_cert_chain.len());
    let text = std::str::from_utf8(&attestation_cert_chain[..end])
        .map_err(|_| NvmlAttestError::CertificateChain)?;
    let certs = pem_certificates(text).map_err(|_| NvmlAttestError::CertificateChain)?;
    if certs.is_empty() {
        return Err(NvmlAttestError::CertificateChain);
    }
    Ok(GpuEvidence {
        spdm: attestation_report,
        certs,
    })
}

impl GpuAttester for NvmlGpuAttester {
    fn gpu_evidence(&self, nonce: &[u8; 32]) -> Result<GpuEvidence, PlatformError> {
        Ok(self.evidence(nonce)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The real H100 device chain in the fixtures, as NVML hands it over: PEM, leaf first,
    /// NUL-padded to the size of NVML's buffer. It must verify to the pinned NVIDIA root
    /// exactly as the chain file does.
    #[test]
    fn nvml_chain_buffer_becomes_der_leaf_first() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/nvidia/hopperCertChain.txt"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let mut buf = text.clone().into_bytes();
        buf.resize(0x5000, 0);
        let ev = evidence_from_nvml(vec![0x11, 0xe0], &buf).unwrap();
        assert_eq!(ev.certs.len(), 5);
        assert_eq!(ev.certs, pem_certificates(&text).unwrap());
        // Leaf first: the GPU's own certificate, not the root, opens the list.
        let root = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/nvidia/nvidia_device_root.pem"
        ))
        .unwrap();
        assert_ne!(ev.certs[0], pem_certificates(&root).unwrap()[0]);
        assert_eq!(ev.spdm, vec![0x11, 0xe0]);
    }

    #[test]
    fn empty_report_and_garbage_chain_are_refused() {
        assert!(matches!(
            evidence_from_nvml(Vec::new(), b""),
            Err(NvmlAttestError::EmptyReport)
        ));
        assert!(matches!(
            evidence_from_nvml(vec![1], b"not a certificate"),
            Err(NvmlAttestError::CertificateChain)
        ));
        assert!(matches!(
            evidence_from_nvml(vec![1], &[0xff, 0xfe, 0]),
            Err(NvmlAttestError::CertificateChain)
        ));
    }

    /// This machine kind has no GPU: opening must fail with a clear error, not crash.
    #[test]
    fn without_a_driver_open_fails_cleanly() {
        if std::path::Path::new("/dev/nvidiactl").exists() {
            return; // a GPU machine: nothing to show here
        }
        let err = NvmlGpuAttester::open(0).unwrap_err();
        assert!(matches!(err, NvmlAttestError::Unavailable(_)), "{err}");
    }
}
