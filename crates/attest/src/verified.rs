//! The verifier traits, the claims a leaf establishes, and the `VerifiedEvidence` proof type.
//!
//! Split of responsibilities:
//! - a *leaf* ([`PlatformVerifier`]) checks the vendor signature, the certificate chain up to
//!   a root pinned in the policy, certificate validity at `now`, and platform-specific policy
//!   (minimum TCB, TDX TCB status). It returns [`PlatformClaims`].
//! - [`verify_with`] then applies every platform-neutral check (platform allowed, simulated
//!   allowed, debug, REPORT_DATA key binding, model/config binding, GPU binding, freshness)
//!   and is the only place a [`VerifiedEvidence`] is constructed.

use crate::{Error, Evidence, Platform, PlatformError, TrustPolicy, binding_digest};

/// Seconds since the Unix epoch. Verifiers take "now" as this value and never read a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// From a `SystemTime` (times before the epoch clamp to 0).
    pub fn from_system_time(t: std::time::SystemTime) -> Self {
        UnixTime(
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        )
    }
}

/// The trusted computing base the evidence was produced on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tcb {
    /// SEV-SNP REPORTED_TCB components (SPLs).
    Snp {
        /// Boot loader SPL.
        bootloader: u8,
        /// PSP OS SPL.
        tee: u8,
        /// SNP firmware SPL.
        snp: u8,
        /// Microcode SPL.
        microcode: u8,
        /// Turin FMC SPL.
        fmc: Option<u8>,
    },
    /// TDX: TEE_TCB_SVN and the collateral's verdict.
    Tdx {
        /// TEE_TCB_SVN from the TD report (16 bytes).
        tee_tcb_svn: [u8; 16],
        /// TCB status from Intel's TCB info (e.g. `UpToDate`).
        status: String,
        /// Intel security advisories that apply.
        advisories: Vec<String>,
    },
}

impl std::fmt::Display for Tcb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tcb::Snp {
                bootloader,
                tee,
                snp,
                microcode,
                fmc,
            } => {
                write!(
                    f,
                    "bootloader={bootloader} tee={tee} snp={snp} microcode={microcode}"
                )?;
                if let Some(fmc) = fmc {
                    write!(f, " fmc={fmc}")?;
                }
                Ok(())
            }
            Tcb::Tdx {
                tee_tcb_svn,
                status,
                advisories,
            } => {
                write!(
                    f,
                    "status={status} tee_tcb_svn={}",
                    hex::encode(tee_tcb_svn)
                )?;
                if !advisories.is_empty() {
                    write!(f, " advisories={}", advisories.join(","))?;
                }
                Ok(())
            }
        }
    }
}

/// What a leaf verifier established from a signed report whose chain it checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformClaims {
    /// The platform whose pinned root signed the chain (Simulated when the simulated root did).
    pub platform: Platform,
    /// Launch measurement: SNP MEASUREMENT (48 bytes); TDX MRTD||RTMR0..3 (240 bytes).
    pub measurement: Vec<u8>,
    /// The 64 signed REPORT_DATA bytes.
    pub report_data: [u8; 64],
    /// The field that carries the model/config binding (SNP HOST_DATA, TDX MRCONFIGID).
    pub binding_field: Vec<u8>,
    /// TCB.
    pub tcb: Tcb,
    /// Chip identifier (SNP CHIP_ID; TDX PPID from the PCK certificate, if present).
    pub chip_id: Vec<u8>,
    /// Guest debug allowed (SNP policy bit 19; TDX TD_ATTRIBUTES.DEBUG).
    pub debug: bool,
    /// A time signed into the report (simulated evidence only; real hardware signs none).
    pub signed_time: Option<u64>,
    /// Report format version (SNP report VERSION, TDX quote version).
    pub version: u32,
}

/// The confidential-computing mode a GPU's signed report states (NVIDIA's
/// `OPAQUE_FIELD_ID_FEATURE_FLAG` in the SPDM MEASUREMENTS opaque data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GpuCcMode {
    /// The report does not state a mode: firmware or drivers before the field existed, or
    /// a GPU whose confidential-computing mode is off. Refused by default.
    Unstated,
    /// Single-GPU passthrough with CC on (feature flag 0).
    Spt,
    /// Multi-GPU passthrough with CC on (feature flag 1).
    Mpt,
    /// Protected PCIe: GPUs and NVSwitches in one CC domain (feature flag 2).
    Ppcie,
}

impl GpuCcMode {
    /// Every mode in which CC is on: the default a trust policy accepts.
    pub const ON: [GpuCcMode; 3] = [GpuCcMode::Spt, GpuCcMode::Mpt, GpuCcMode::Ppcie];

    /// The name used in policies and reports (`unstated`, `spt`, `mpt`, `ppcie`).
    pub fn name(self) -> &'static str {
        match self {
            GpuCcMode::Unstated => "unstated",
            GpuCcMode::Spt => "spt",
            GpuCcMode::Mpt => "mpt",
            GpuCcMode::Ppcie => "ppcie",
        }
    }
}

impl std::fmt::Display for GpuCcMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for GpuCcMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "unstated" => Ok(GpuCcMode::Unstated),
            "spt" => Ok(GpuCcMode::Spt),
            "mpt" => Ok(GpuCcMode::Mpt),
            "ppcie" => Ok(GpuCcMode::Ppcie),
            other => Err(Error::UnknownGpuCcMode(other.to_owned())),
        }
    }
}

/// What the GPU verifier established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuClaims {
    /// The 32-byte nonce of the signed SPDM request.
    pub nonce: [u8; 32],
    /// Measurement blocks: (index, DMTF measurement value).
    pub measurements: Vec<(u8, Vec<u8>)>,
    /// The confidential-computing mode the signed report states.
    pub cc_mode: GpuCcMode,
    /// Bytes that followed the complete signed SPDM response, ignored unread (0 normally).
    pub ignored_trailing_bytes: usize,
    /// True when the device chain ended at the policy's simulated NVIDIA root
    /// (`TrustPolicy::simulated_gpu_root`) rather than the real one: no GPU at all.
    pub simulated: bool,
}

/// A platform leaf verifier (one per CPU TEE).
pub trait PlatformVerifier {
    /// The platforms this verifier can establish (SNP's also establishes Simulated).
    fn handles(&self, p: Platform) -> bool;
    /// Check signature, chain, validity at `now` and platform-specific policy.
    fn verify_platform(
        &self,
        evidence: &Evidence,
        policy: &TrustPolicy,
        now: UnixTime,
    ) -> Result<PlatformClaims, PlatformError>;
}

/// A GPU evidence verifier.
pub trait GpuVerifier {
    /// Check the SPDM signature and device chain, expected nonce included.
    fn verify_gpu(
        &self,
        gpu: &crate::GpuEvidence,
        expected_nonce: &[u8; 32],
        policy: &TrustPolicy,
        now: UnixTime,
    ) -> Result<GpuClaims, PlatformError>;
}

/// Proof that evidence passed every check of a [`TrustPolicy`].
///
/// Fields are private; the only constructor is [`verify_with`], after every check passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEvidence {
    claims: PlatformClaims,
    key_bound: bool,
    binding: Option<crate::Binding>,
    gpu: Option<([u8; 32], GpuClaims)>,
}

impl VerifiedEvidence {
    /// The platform (Simulated when the simulated root signed).
    pub fn platform(&self) -> Platform {
        self.claims.platform
    }
    /// Launch measurement bytes (SNP 48 bytes; TDX MRTD||RTMR0..3, 240 bytes).
    pub fn measurement(&self) -> &[u8] {
        &self.claims.measurement
    }
    /// Model digest, when the evidence carried one and the binding field matched.
    pub fn model_digest(&self) -> Option<[u8; 32]> {
        self.binding.map(|b| b.model_digest)
    }
    /// Configuration digest, when carried and bound.
    pub fn config_digest(&self) -> Option<[u8; 32]> {
        self.binding.map(|b| b.config_digest)
    }
    /// TCB.
    pub fn tcb(&self) -> &Tcb {
        &self.claims.tcb
    }
    /// Chip identifier.
    pub fn chip_id(&self) -> &[u8] {
        &self.claims.chip_id
    }
    /// Whether the guest allows debugging (only possible if the policy allowed it).
    pub fn debug(&self) -> bool {
        self.claims.debug
    }
    /// The signed REPORT_DATA.
    pub fn report_data(&self) -> &[u8; 64] {
        &self.claims.report_data
    }
    /// SHA-256 of the GPU evidence bound into REPORT_DATA, when GPU evidence was verified.
    pub fn gpu_evidence_digest(&self) -> Option<[u8; 32]> {
        self.gpu.as_ref().map(|g| g.0)
    }
    /// Verified GPU measurement blocks.
    pub fn gpu_measurements(&self) -> Option<&[(u8, Vec<u8>)]> {
        self.gpu.as_ref().map(|g| g.1.measurements.as_slice())
    }
    /// The GPU's confidential-computing mode, when GPU evidence was verified.
    pub fn gpu_cc_mode(&self) -> Option<GpuCcMode> {
        self.gpu.as_ref().map(|g| g.1.cc_mode)
    }
    /// Bytes after the signed SPDM response that the GPU verifier ignored, when GPU evidence
    /// was verified.
    pub fn gpu_ignored_trailing_bytes(&self) -> Option<usize> {
        self.gpu.as_ref().map(|g| g.1.ignored_trailing_bytes)
    }
    /// True for simulated evidence, SEV-SNP or TDX twin (no hardware protection at all), or
    /// with GPU evidence from the simulated GPU twin. (A simulated GPU is only accepted inside
    /// simulated CPU evidence, so today the second condition implies the first; it is checked
    /// anyway so this never under-reports.)
    pub fn is_simulated(&self) -> bool {
        self.claims.platform.is_simulated() || self.gpu_simulated()
    }
    /// True when GPU evidence was verified and came from the simulated GPU twin.
    pub fn gpu_simulated(&self) -> bool {
        self.gpu.as_ref().is_some_and(|g| g.1.simulated)
    }
    /// Time signed into the evidence (simulated only).
    pub fn signed_time(&self) -> Option<u64> {
        self.claims.signed_time
    }
    /// Report format version.
    pub fn report_version(&self) -> u32 {
        self.claims.version
    }
    /// True when REPORT_DATA was checked in full against the Confide layout
    /// ([`ReportDataCheck::Confide`]); false for foreign evidence checked by prefix or not at all.
    pub fn report_data_bound(&self) -> bool {
        self.key_bound
    }
}

/// How REPORT_DATA is checked.
#[derive(Debug, Clone, Copy)]
pub enum ReportDataCheck<'a> {
    /// Confide layout: all 64 bytes must equal this (TLS key hash || GPU digest or zeros).
    Confide(&'a [u8; 64]),
    /// Foreign evidence (not produced by a Confide node): REPORT_DATA must start with these
    /// bytes (a verifier-chosen nonce). GPU evidence is not allowed in this mode.
    Prefix(&'a [u8]),
    /// Foreign evidence whose REPORT_DATA the caller does not check (offline inspection).
    Unchecked,
}

/// Allowed clock skew for signed-in times that lie in the future.
pub const MAX_CLOCK_SKEW_SECS: u64 = 60;

/// Verify `evidence` with the given leaf verifiers and judge it against `policy`.
///
/// `expected_report_data` is what the caller computed from the TLS key (see
/// [`crate::report_data`]): it must equal the signed REPORT_DATA byte for byte.
pub fn verify_with(
    cpu: &dyn PlatformVerifier,
    gpu: Option<&dyn GpuVerifier>,
    evidence: &Evidence,
    expected_report_data: &[u8; 64],
    now: UnixTime,
    policy: &TrustPolicy,
) -> Result<VerifiedEvidence, Error> {
    verify_with_check(
        cpu,
        gpu,
        evidence,
        ReportDataCheck::Confide(expected_report_data),
        now,
        policy,
    )
}

/// [`verify_with`] with an explicit REPORT_DATA check mode (see [`ReportDataCheck`]).
pub fn verify_with_check(
    cpu: &dyn PlatformVerifier,
    gpu: Option<&dyn GpuVerifier>,
    evidence: &Evidence,
    check: ReportDataCheck<'_>,
    now: UnixTime,
    policy: &TrustPolicy,
) -> Result<VerifiedEvidence, Error> {
    // Cheap policy gates first, so a disallowed platform costs no signature checks.
    if evidence.platform.is_simulated() && !policy.allow_simulated {
        return Err(Error::SimulatedNotAllowed);
    }
    if !policy.allows(evidence.platform) {
        return Err(Error::PlatformNotAllowed(evidence.platform));
    }
    if !cpu.handles(evidence.platform) {
        return Err(Error::PlatformNotAllowed(evidence.platform));
    }
    let claims = cpu
        .verify_platform(evidence, policy, now)
        .map_err(|e| Error::platform(evidence.platform, e))?;
    // The root that signed decides the platform, not the container's tag.
    if claims.platform != evidence.platform {
        return Err(Error::PlatformMismatch {
            container: evidence.platform,
            verified: claims.platform,
        });
    }
    // Each simulated twin needs its own root pinned (the SNP twin's RSA root says nothing
    // about the TDX twin's P-256 one).
    if claims.platform.is_simulated()
        && (!policy.allow_simulated || policy.simulated_root_for(claims.platform).is_none())
    {
        return Err(Error::SimulatedNotAllowed);
    }
    if claims.debug && !policy.allow_debug {
        return Err(Error::DebugNotAllowed);
    }
    let confide_layout = match check {
        ReportDataCheck::Confide(expected) => {
            if !ct_eq(&claims.report_data, expected) {
                return Err(Error::ReportDataMismatch);
            }
            true
        }
        ReportDataCheck::Prefix(p) => {
            if p.len() > 64 || !ct_eq(&claims.report_data[..p.len()], p) {
                return Err(Error::ReportDataMismatch);
            }
            false
        }
        ReportDataCheck::Unchecked => false,
    };
    if !confide_layout && evidence.gpu.is_some() {
        return Err(Error::GpuBindingMismatch);
    }
    if let Some(b) = &evidence.binding {
        let want = binding_digest(&b.model_digest, &b.config_digest);
        let field = &claims.binding_field;
        // HOST_DATA is exactly 32 bytes; MRCONFIGID is 48 with the tail zero.
        let ok =
            field.len() >= 32 && ct_eq(&field[..32], &want) && field[32..].iter().all(|&x| x == 0);
        if !ok {
            return Err(Error::BindingMismatch);
        }
    }
    if let Some(t) = claims.signed_time {
        if t > now.0.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(Error::FromFuture(t - now.0));
        }
        let age = now.0.saturating_sub(t);
        if age > policy.freshness_secs {
            return Err(Error::Stale {
                age_secs: age,
                window_secs: policy.freshness_secs,
            });
        }
    }
    let gpu_part = match &evidence.gpu {
        None => {
            if policy.require_gpu {
                return Err(Error::GpuEvidenceMissing);
            }
            if confide_layout && claims.report_data[32..].iter().any(|&x| x != 0) {
                return Err(Error::GpuBindingMismatch);
            }
            None
        }
        Some(g) => {
            if !policy.allows(Platform::Nvidia) {
                return Err(Error::PlatformNotAllowed(Platform::Nvidia));
            }
            let digest = g.digest();
            if !ct_eq(&claims.report_data[32..], &digest) {
                return Err(Error::GpuBindingMismatch);
            }
            let v = gpu.ok_or(Error::GpuVerifierMissing)?;
            let mut nonce = [0u8; 32];
            nonce.copy_from_slice(&claims.report_data[..32]);
            let gc = v
                .verify_gpu(g, &nonce, policy, now)
                .map_err(|e| Error::platform(Platform::Nvidia, e))?;
            if gc.nonce != nonce {
                return Err(Error::GpuNonceMismatch);
            }
            // Plaintext reaches this GPU: with CC off its memory is open to the host.
            if !policy.gpu_cc_modes.contains(&gc.cc_mode) {
                return Err(Error::GpuCcModeNotAccepted(gc.cc_mode));
            }
            // A simulated GPU only inside a simulated CPU (policy docs): never let a hardware
            // CPU report lend its weight to a GPU that does not exist. The leaf already
            // refused it without allow_simulated and a pinned simulated GPU root; checked
            // again here because this is the function that hands out VerifiedEvidence.
            if gc.simulated {
                if !claims.platform.is_simulated() {
                    return Err(Error::SimulatedGpuWithHardwareCpu(claims.platform));
                }
                if !policy.allow_simulated || policy.simulated_gpu_root.is_none() {
                    return Err(Error::SimulatedNotAllowed);
                }
            }
            Some((digest, gc))
        }
    };
    Ok(VerifiedEvidence {
        claims,
        key_bound: confide_layout,
        binding: evidence.binding,
        gpu: gpu_part,
    })
}

/// Constant-time equality for equal-length inputs (lengths are public).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
