//! The node-side interface: ask the platform for evidence binding 64 bytes of REPORT_DATA.

use crate::{Binding, Evidence, GpuEvidence, Platform, PlatformError, UnixTime};

/// What the node asks an attester for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestRequest {
    /// REPORT_DATA, built with [`crate::report_data`] (TLS key hash || GPU evidence digest).
    pub report_data: [u8; 64],
    /// Model/config digests to carry; the platform's binding field (HOST_DATA/MRCONFIGID,
    /// set at launch) must hold `binding_digest` of them or clients reject the evidence.
    pub binding: Option<Binding>,
    /// GPU evidence whose digest is `report_data[32..64]`, obtained with nonce
    /// `report_data[0..32]`.
    pub gpu: Option<GpuEvidence>,
    /// Current time (only simulated evidence signs it in).
    pub now: UnixTime,
}

/// A source of evidence on the node (configfs-tsm on real hardware, or the simulator).
pub trait Attester: Send + Sync {
    /// The platform this attester produces evidence for.
    fn platform(&self) -> Platform;
    /// Produce evidence for `req`.
    fn attest(&self, req: &AttestRequest) -> Result<Evidence, PlatformError>;
}

/// A source of GPU evidence on the node: the confidential GPU's SPDM GET_MEASUREMENTS
/// exchange and its device certificate chain (NVML on real hardware, the simulated GPU in
/// CI).
///
/// The node asks with `nonce` = `REPORT_DATA[0..32]` (the certificate key binding: its key
/// and validity hashed,
/// [`crate::gpu_nonce`]) and then has the CPU sign the evidence's digest into
/// `REPORT_DATA[32..64]`: the GPU report is fresh for this key and bound to this CPU report.
pub trait GpuAttester: Send + Sync {
    /// The GPU's evidence for `nonce`.
    fn gpu_evidence(&self, nonce: &[u8; 32]) -> Result<GpuEvidence, PlatformError>;
}
