//! The one error type of `confide-attest`.

use crate::Platform;

/// A boxed error from a platform leaf verifier (`confide-attest-snp`, `-tdx`, `-nvidia`).
///
/// Leaves keep their own typed enums; callers that need the exact reason downcast
/// (`err.source().downcast_ref::<SnpError>()`).
pub type PlatformError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong decoding evidence, loading a policy or judging evidence.
///
/// Messages name *what* was wrong, never the content of secrets (evidence is public data,
/// but we still do not echo whole blobs).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- evidence container ----
    /// The container does not start with the `CFEV` magic.
    #[error("evidence container: bad magic (not Confide evidence)")]
    BadMagic,
    /// The container format version is not one we understand.
    #[error("evidence container: unsupported format version {0}")]
    UnsupportedFormat(u8),
    /// The platform tag byte is unknown.
    #[error("evidence container: unknown platform tag {0}")]
    UnknownPlatformTag(u8),
    /// A platform name is unknown.
    #[error("unknown platform name (expected sev-snp, tdx, nvidia or simulated)")]
    UnknownPlatformName,
    /// The container ended inside a field.
    #[error("evidence container: truncated in {0}")]
    Truncated(&'static str),
    /// A length prefix exceeds the bound for that field.
    #[error("evidence container: {field} too long ({len} bytes, limit {limit})")]
    FieldTooLong {
        /// Which field.
        field: &'static str,
        /// Declared length.
        len: usize,
        /// Limit.
        limit: usize,
    },
    /// Bytes remain after the last field.
    #[error("evidence container: {0} trailing bytes")]
    TrailingBytes(usize),
    /// Reserved flag bits are set.
    #[error("evidence container: reserved flag bits set ({0:#04x})")]
    ReservedFlags(u8),
    /// The NVIDIA platform is GPU-only and cannot be a container's CPU platform.
    #[error("evidence container: platform nvidia cannot carry CPU evidence")]
    GpuAsCpuPlatform,

    // ---- input decoding ----
    /// Input that should be hex is not.
    #[error("invalid hex input")]
    InvalidHex,
    /// A PEM block is malformed.
    #[error("invalid PEM: {0}")]
    InvalidPem(&'static str),
    /// No certificate found in input.
    #[error("no certificate found in input")]
    NoCertificate,

    // ---- policy ----
    /// The TOML policy does not parse or has unknown fields.
    #[error("trust policy: {0}")]
    PolicyParse(String),
    /// The policy's `version` is not 1.
    #[error("trust policy: unsupported version {0} (expected 1)")]
    UnsupportedPolicyVersion(u32),
    /// A root named in the policy is not a PEM certificate.
    #[error("trust policy: root {0} is not a PEM certificate")]
    PolicyRootInvalid(String),
    /// `allow_simulated = true` but no simulated root is pinned.
    #[error(
        "trust policy: allow_simulated requires roots.simulated and/or roots.simulated_tdx to \
         be named"
    )]
    SimulatedRootMissing,
    /// The witness quorum is larger than the number of witnesses listed: no checkpoint
    /// could ever be accepted.
    #[error(
        "trust policy: ledger.witness_quorum is {quorum} but only {listed} witnesses are listed"
    )]
    WitnessQuorumUnreachable {
        /// The quorum asked for.
        quorum: u32,
        /// Witness keys listed.
        listed: u32,
    },
    /// A ledger key with a witness quorum of 0 and no development flag.
    #[error(
        "trust policy: a witness quorum of 0 trusts the ledger alone; list witnesses, or set \
         ledger.allow_no_witness_quorum = true (development only)"
    )]
    WitnessQuorumZero,
    /// A `[sev_snp.tcb_floor.*]` table names an FMC SPL for Milan/Genoa, or none for Turin.
    #[error(
        "trust policy: sev_snp.tcb_floor.{0} must give fmc exactly when the generation is turin"
    )]
    SnpTcbFloorInvalid(&'static str),
    /// `sev_snp.min_guest_abi` is not `MAJOR.MINOR` with each part 0..=255.
    #[error("trust policy: sev_snp.min_guest_abi must be \"MAJOR.MINOR\" (e.g. \"1.51\")")]
    SnpGuestAbiInvalid,

    // ---- judging ----
    /// The policy does not allow this platform.
    #[error("platform {0} is not allowed by the trust policy")]
    PlatformNotAllowed(Platform),
    /// Simulated evidence while the policy does not allow it.
    #[error("simulated evidence is not allowed by the trust policy")]
    SimulatedNotAllowed,
    /// The container's platform tag disagrees with the root that signed the evidence.
    #[error("platform mismatch: container says {container}, evidence verified as {verified}")]
    PlatformMismatch {
        /// Tag in the container.
        container: Platform,
        /// What the leaf verifier established.
        verified: Platform,
    },
    /// REPORT_DATA does not equal what the caller expected (key binding failed).
    #[error("REPORT_DATA does not match the expected key binding")]
    ReportDataMismatch,
    /// The second half of REPORT_DATA is not the digest of the GPU evidence (or zeros).
    #[error("REPORT_DATA does not bind the GPU evidence digest")]
    GpuBindingMismatch,
    /// The GPU SPDM nonce is not the first half of REPORT_DATA.
    #[error("GPU evidence nonce does not match the TLS key binding")]
    GpuNonceMismatch,
    /// GPU evidence verified under the simulated NVIDIA root inside evidence from a hardware
    /// CPU platform. Refused outright: a simulated GPU proves nothing, and letting it ride in
    /// a hardware report would make that report look like a CPU+GPU TEE it is not.
    #[error("simulated GPU evidence inside {0} (hardware) CPU evidence")]
    SimulatedGpuWithHardwareCpu(Platform),
    /// The GPU's signed report states a confidential-computing mode the policy does not
    /// accept (by default: anything but CC on, including a report that states none).
    #[error(
        "GPU confidential-computing mode is {0}; the trust policy accepts only CC on (gpu_cc_modes)"
    )]
    GpuCcModeNotAccepted(crate::verified::GpuCcMode),
    /// A policy names a GPU CC mode that does not exist.
    #[error("unknown GPU CC mode {0:?} (known: unstated, spt, mpt, ppcie)")]
    UnknownGpuCcMode(String),
    /// Policy requires GPU evidence and the container has none.
    #[error("trust policy requires GPU evidence and none was presented")]
    GpuEvidenceMissing,
    /// GPU evidence present but no GPU verifier was supplied.
    #[error("GPU evidence present but no GPU verifier is available")]
    GpuVerifierMissing,
    /// Debug policy bit set and the policy forbids debug.
    #[error("guest has debugging enabled and the trust policy forbids it")]
    DebugNotAllowed,
    /// The platform's binding field is not SHA-256(model digest || config digest).
    #[error("model/config binding field does not match the carried digests")]
    BindingMismatch,
    /// Signed-in evidence time is older than the freshness window.
    #[error("evidence is stale: {age_secs}s old, window {window_secs}s")]
    Stale {
        /// Age in seconds.
        age_secs: u64,
        /// Policy window.
        window_secs: u64,
    },
    /// Signed-in evidence time lies in the future (beyond the allowed skew).
    #[error("evidence time lies {0}s in the future")]
    FromFuture(u64),
    /// The platform leaf verifier rejected the evidence.
    // The cause is reachable through `source()` (printed by `{:#}` chains), not repeated here.
    #[error("{platform} verification failed")]
    Platform {
        /// Which platform.
        platform: Platform,
        /// The leaf's typed error.
        #[source]
        source: PlatformError,
    },
}

impl Error {
    /// Wrap a leaf error.
    pub fn platform(platform: Platform, source: impl Into<PlatformError>) -> Self {
        Error::Platform {
            platform,
            source: source.into(),
        }
    }

    /// The leaf's typed error, if this is a platform failure of type `E`.
    pub fn platform_source<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Error::Platform { source, .. } => source.downcast_ref::<E>(),
            _ => None,
        }
    }
}
