//! Platform-neutral evidence model, trust policy and the `VerifiedEvidence` proof type.
//!
//! This crate knows no vendor format. It defines:
//! - [`Evidence`]: the container a node embeds in its RA-TLS certificate (wire format and
//!   the exact REPORT_DATA layout in [`evidence`]);
//! - [`TrustPolicy`]: the versioned TOML document holding every trust decision;
//! - [`PlatformVerifier`] / [`GpuVerifier`]: what each leaf crate (`confide-attest-snp`,
//!   `-tdx`, `-nvidia`) implements;
//! - [`verify_with`]: the one function that judges leaf claims against the policy and the
//!   only constructor of [`VerifiedEvidence`].
//!
//! Most callers want `confide_attest_verify::verify_evidence`, which wires the leaves in.
//!
//! Freshness: verifiers never read a clock; `now` is an argument. Simulated evidence signs its
//! creation time and is judged against `freshness_secs`. Real SNP/TDX reports carry no time:
//! their freshness comes from REPORT_DATA binding an ephemeral TLS key (and for the GPU, the
//! SPDM nonce derived from it), so a replayed report is useless without that key.

pub mod attester;
pub mod error;
pub mod evidence;
pub mod input;
pub mod policy;
pub mod verified;

pub use attester::{AttestRequest, Attester, GpuAttester};
pub use error::{Error, PlatformError};
pub use evidence::{
    Binding, Evidence, GpuEvidence, Platform, binding_digest, gpu_nonce, report_data,
};
pub use policy::{
    LedgerPolicy, SnpGeneration, SnpMinTcb, SnpPolicy, SnpTcbFloor, TdxPolicy, TrustPolicy,
    bulletin_tcb_floors,
};
pub use verified::{
    GpuCcMode, GpuClaims, GpuVerifier, MAX_CLOCK_SKEW_SECS, PlatformClaims, PlatformVerifier,
    ReportDataCheck, Tcb, UnixTime, VerifiedEvidence, verify_with, verify_with_check,
};
