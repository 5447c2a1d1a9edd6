//! The seams to the attestation and ledger crates.
//!
//! RA-TLS needs three things it does not implement itself: a platform attester
//! (node side), a platform evidence verifier and a ledger-bundle verifier
//! (client side). They are small traits so this crate does not depend on which
//! platform or ledger format is in use; adapters in the node and SDK wire in
//! `confide-attest*` and `confide-release`. Time is always an argument.

use std::fmt::Debug;

use rustls::pki_types::UnixTime;

use crate::error::ExternalError;

/// Produces CPU TEE evidence whose REPORT_DATA is exactly the 64 bytes given.
pub trait Attester: Send + Sync {
    /// Media type of the evidence this attester emits (CMW record type).
    fn media_type(&self) -> &str;
    /// Obtains evidence binding `report_data` (see [`crate::report_data`]).
    fn attest(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, ExternalError>;
}

/// One measurement register as the hardware signed it (for example SEV-SNP `MEASUREMENT`,
/// TDX `RTMR1`, or `gpu.5` for a GPU's SPDM measurement index 5).
///
/// Names containing a dot form a group (`gpu.*`): when evidence carries a group, the
/// ledger entry must pin at least one register of it, so a release that never mentions a
/// GPU cannot approve a node that sends plaintext to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// The register's name as the vendor's specification spells it.
    pub name: String,
    /// Its value.
    pub value: Vec<u8>,
    /// Whether a ledger entry must pin this register. The RTMR a node extends at run
    /// time (TDX RTMR3) is the usual register that a release may leave open.
    pub must_be_pinned: bool,
}

/// One register a ledger entry pins, with every value it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The register's name (as in [`Register::name`]).
    pub name: String,
    /// The accepted values (one for CPU registers; GPU references may list alternatives).
    pub accepted: Vec<Vec<u8>>,
}

/// What a platform verifier established about CPU evidence.
///
/// The verifier must have checked the signature chain to its pinned root and
/// the platform policy (TCB, debug) before returning this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceClaims {
    /// Platform name as the ledger spells it (for example `sev-snp`, `tdx`, `simulated`).
    pub platform: String,
    /// The launch measurement (MEASUREMENT, MRTD‖RTMR0..3, ...), for display and receipts.
    pub measurement: Vec<u8>,
    /// Every measured register, by name: what the ledger entry's pins are compared with.
    pub registers: Vec<Register>,
    /// The model digest that is part of the measured configuration, when the platform attests one.
    pub model_digest: Option<Vec<u8>>,
    /// The node configuration digest bound next to the model digest (HOST_DATA /
    /// MRCONFIGID), when the platform attests one.
    pub config_digest: Option<Vec<u8>>,
    /// The 64-byte REPORT_DATA / REPORTDATA field as signed by the hardware.
    pub report_data: [u8; 64],
    /// When the evidence was produced, if the format carries a signed time.
    pub collected_at: Option<UnixTime>,
}

/// Verifies CPU TEE evidence.
pub trait EvidenceVerifier: Send + Sync + Debug {
    /// Verifies `evidence` of type `media_type` at time `now`.
    fn verify_evidence(
        &self,
        media_type: &str,
        evidence: &[u8],
        now: UnixTime,
    ) -> Result<EvidenceClaims, ExternalError>;

    /// As [`EvidenceVerifier::verify_evidence`], also returning the SHA-256 of
    /// GPU evidence that travels *inside* the CPU evidence (as in the
    /// `confide-attest` container) and that this call verified. The digest is
    /// what REPORT_DATA[32..64] must hold. Override only if `evidence` can
    /// carry GPU evidence and the override verifies it; the default reports none,
    /// so a non-zero GPU half then fails the binding check (fail closed).
    fn verify_evidence_with_gpu(
        &self,
        media_type: &str,
        evidence: &[u8],
        now: UnixTime,
    ) -> Result<(EvidenceClaims, Option<[u8; 32]>), ExternalError> {
        self.verify_evidence(media_type, evidence, now)
            .map(|claims| (claims, None))
    }
}

/// Verifies GPU evidence (for example an NVIDIA Hopper SPDM report and its chain).
pub trait GpuEvidenceVerifier: Send + Sync + Debug {
    /// Verifies `evidence` of type `media_type` at time `now`.
    fn verify_gpu_evidence(
        &self,
        media_type: &str,
        evidence: &[u8],
        now: UnixTime,
    ) -> Result<(), ExternalError>;
}

/// A reference to the checkpoint a ledger entry was proven under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRef {
    /// The log's origin line (C2SP tlog-checkpoint).
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// RFC 9162 root hash.
    pub root_hash: [u8; 32],
}

/// What a ledger verifier established about a stapled bundle.
///
/// The verifier must have checked the inclusion proof (RFC 9162 section 2.1.3),
/// the checkpoint signature and witness cosignature quorum, and consistency with
/// the newest checkpoint the device has seen before returning this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntryClaims {
    /// Platform the release is for.
    pub platform: String,
    /// The release's primary measurement (SEV-SNP MEASUREMENT, TDX MRTD), for display.
    pub measurement: Vec<u8>,
    /// Every register the release pins; evidence must match each one.
    pub pins: Vec<Pin>,
    /// The model digest the release lists, if any.
    pub model_digest: Option<Vec<u8>>,
    /// The node configuration digest the release lists, if any.
    pub config_digest: Option<Vec<u8>>,
    /// Start of the release's validity.
    pub valid_from: UnixTime,
    /// End of the release's validity, if bounded.
    pub valid_until: Option<UnixTime>,
    /// Leaf index of the entry in the log.
    pub index: u64,
    /// The checkpoint the inclusion was proven under.
    pub checkpoint: CheckpointRef,
}

/// Verifies a stapled ledger bundle.
pub trait InclusionVerifier: Send + Sync + Debug {
    /// Verifies `bundle` at time `now`.
    fn verify_inclusion(
        &self,
        bundle: &[u8],
        now: UnixTime,
    ) -> Result<LedgerEntryClaims, ExternalError>;
}
