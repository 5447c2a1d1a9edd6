//! One entry point that verifies any Confide evidence.
//!
//! `confide-attest` defines the model and judges claims but knows no vendor format; the
//! leaves know one vendor each. This crate wires them together:
//!
//! ```text
//! evidence bytes ──Evidence::decode──► platform tag
//!     sev-snp / simulated ──► confide-attest-snp (pinned AMD ARKs / pinned simulated root)
//!     tdx                 ──► confide-attest-tdx (pinned Intel root, collateral in container)
//!     simulated-tdx       ──► confide-attest-tdx (pinned simulated Intel root, allow_simulated)
//!     GPU part, if any    ──► confide-attest-nvidia (pinned NVIDIA root, nonce = RD[0..32];
//!                             simulated GPU twin: pinned simulated GPU root, allow_simulated,
//!                             simulated CPU only)
//!  ──► confide_attest::verify_with (policy, REPORT_DATA, binding, debug, freshness)
//!  ──► VerifiedEvidence
//! ```
//!
//! [`verify_evidence`] uses a process-wide [`Verifiers`] with certificate-chain caches, so
//! a client that sees the same node repeatedly pays for the RSA/ECDSA chain checks once.

use std::sync::OnceLock;

pub use confide_attest::{
    Error, Evidence, Platform, ReportDataCheck, TrustPolicy, UnixTime, VerifiedEvidence,
};
use confide_attest::{GpuVerifier, PlatformVerifier};
pub use confide_attest_nvidia::{
    CcMode, GpuExpectations, NvidiaError, NvidiaVerifier, VerifiedGpu,
};
pub use confide_attest_snp::{SnpError, SnpVerifier};
pub use confide_attest_tdx::{TdxError, TdxVerifier};

/// The set of leaf verifiers.
#[derive(Default)]
pub struct Verifiers {
    snp: SnpVerifier,
    tdx: TdxVerifier,
    nvidia: NvidiaVerifier,
}

impl Verifiers {
    /// Verifiers that check every certificate chain on every call.
    pub fn uncached() -> Self {
        Verifiers {
            snp: SnpVerifier::new(),
            tdx: TdxVerifier::new(),
            nvidia: NvidiaVerifier::new(),
        }
    }

    /// Verifiers that cache verified certificate chains (SNP and NVIDIA; TDX collateral is
    /// re-verified each time because it expires on its own schedule).
    pub fn cached() -> Self {
        Verifiers {
            snp: SnpVerifier::with_cache(),
            tdx: TdxVerifier::new(),
            nvidia: NvidiaVerifier::with_cache(),
        }
    }

    fn cpu_for(&self, p: Platform) -> Result<&dyn PlatformVerifier, Error> {
        match p {
            Platform::SevSnp | Platform::Simulated => Ok(&self.snp),
            Platform::Tdx | Platform::SimulatedTdx => Ok(&self.tdx),
            _ => Err(Error::GpuAsCpuPlatform),
        }
    }

    /// Verify decoded evidence with an explicit REPORT_DATA check.
    pub fn verify(
        &self,
        evidence: &Evidence,
        check: ReportDataCheck<'_>,
        now: UnixTime,
        policy: &TrustPolicy,
    ) -> Result<VerifiedEvidence, Error> {
        let cpu = self.cpu_for(evidence.platform)?;
        let gpu: &dyn GpuVerifier = &self.nvidia;
        confide_attest::verify_with_check(cpu, Some(gpu), evidence, check, now, policy)
    }

    /// Verify GPU evidence on its own (no CPU report): SPDM signature, device chain, nonce.
    pub fn verify_gpu_only(
        &self,
        spdm: &[u8],
        certs: &[Vec<u8>],
        expected_nonce: Option<&[u8; 32]>,
        now: UnixTime,
        policy: &TrustPolicy,
    ) -> Result<VerifiedGpu, Error> {
        if !policy.allows(Platform::Nvidia) {
            return Err(Error::PlatformNotAllowed(Platform::Nvidia));
        }
        self.nvidia
            .verify(spdm, certs, expected_nonce, policy, now)
            .map_err(|e| Error::platform(Platform::Nvidia, e))
    }

    /// [`Verifiers::verify_gpu_only`], then the reference values and CC modes of `expect`
    /// (see [`GpuExpectations`]); a failure names the block index or the mode.
    pub fn verify_gpu_expected(
        &self,
        spdm: &[u8],
        certs: &[Vec<u8>],
        expected_nonce: Option<&[u8; 32]>,
        expect: &GpuExpectations,
        now: UnixTime,
        policy: &TrustPolicy,
    ) -> Result<VerifiedGpu, Error> {
        let v = self.verify_gpu_only(spdm, certs, expected_nonce, now, policy)?;
        v.check(expect)
            .map_err(|e| Error::platform(Platform::Nvidia, e))?;
        Ok(v)
    }
}

fn global() -> &'static Verifiers {
    static V: OnceLock<Verifiers> = OnceLock::new();
    V.get_or_init(Verifiers::cached)
}

/// Verify Confide evidence as embedded in an RA-TLS certificate.
///
/// `expected_report_data` is `confide_attest::report_data(spki, gpu)`, computed by the
/// caller from the certificate's key (and the GPU evidence carried in the container, see
/// [`expected_report_data`]). Returns [`VerifiedEvidence`] only when every check passed.
pub fn verify_evidence(
    evidence_bytes: &[u8],
    expected_report_data: &[u8; 64],
    now: UnixTime,
    policy: &TrustPolicy,
) -> Result<VerifiedEvidence, Error> {
    let evidence = Evidence::decode(evidence_bytes)?;
    global().verify(
        &evidence,
        ReportDataCheck::Confide(expected_report_data),
        now,
        policy,
    )
}

/// The REPORT_DATA a client must expect for `evidence_bytes` presented under a TLS key with
/// DER SubjectPublicKeyInfo `spki_der` (GPU digest taken from the container itself).
pub fn expected_report_data(evidence_bytes: &[u8], spki_der: &[u8]) -> Result<[u8; 64], Error> {
    let evidence = Evidence::decode(evidence_bytes)?;
    Ok(confide_attest::report_data(spki_der, evidence.gpu.as_ref()))
}
