//! NVIDIA Hopper SPDM measurement verifier.
//!
//! A Hopper GPU in confidential-computing mode answers an SPDM 1.1 GET_MEASUREMENTS request
//! (DMTF DSP0274 v1.1.x §10.11) with a MEASUREMENTS response signed by its device key. The
//! evidence is the request followed by the response, exactly as exchanged, plus the device
//! certificate chain. This crate:
//!
//! 1. parses the request (SPDMVersion 0x11, code 0xE0, Param1 bit 0 = signature requested,
//!    32-byte nonce, SlotIDParam) and the response (code 0x60, NumberOfBlocks,
//!    MeasurementRecordLength, measurement blocks per §10.11.1 Table 45, the responder nonce,
//!    OpaqueData, and a 96-byte ECDSA P-384 signature), structurally, to the last byte —
//!    the signature is found by parsing, not by assuming it is the last 96 bytes;
//! 2. verifies the signature: SPDM 1.1 signs L1/L2 = request || response-without-signature
//!    (§10.11 "MEASUREMENTS response"), here with ECDSA P-384/SHA-384;
//! 3. verifies the device chain leaf → … → NVIDIA Device Identity CA: every certificate is
//!    ECDSA-with-SHA384 signed by the next, the top is the root pinned in the policy (byte for
//!    byte, or signed by it), and every validity period contains `now`;
//! 4. checks the request nonce against the expected nonce (Confide: SHA-256 of the TLS key,
//!    see `confide_attest::gpu_nonce`), so the report is fresh and bound to the session.
//!
//! Bytes after a complete signed response are accepted and ignored: collectors hand over the
//! driver's report buffer, which may be longer than the SPDM exchange it holds. Nothing in them
//! is read; [`VerifiedGpu::ignored_trailing_bytes`] says how many there were. A response cut
//! short anywhere, signature included, is refused with [`NvidiaError::Truncated`].
//!
//! On top of that, callers may demand (see [`GpuExpectations`]):
//! - reference values per measurement block ([`VerifiedGpu::check_reference`]), e.g. taken
//!   from NVIDIA's signed driver and VBIOS RIMs;
//! - a confidential-computing mode ([`VerifiedGpu::require_cc_mode`]). The signed report states
//!   it in the OpaqueData field list (NVIDIA's TLV list: u16 type, u16 length, value, all
//!   little-endian) as `OPAQUE_FIELD_ID_FEATURE_FLAG` (type 36): 0 = SPT (one GPU passed
//!   through in CC mode), 1 = MPT (multi-GPU passthrough), 2 = PPCIE (protected PCIe), present
//!   from `OPAQUE_DATA_VERSION` (type 34) 1 on. Older firmware/driver pairs do not carry the
//!   field ([`CcMode::Unstated`]); the r550 report in the test data is one. No field of the
//!   report says "CC off" or "devtools": NVIDIA's own verifiers read that state from the host
//!   driver (NVML, unsigned), and a GPU outside CC mode is told apart by its measurements no
//!   longer matching the RIM reference values.
//!
//! # Simulated GPU evidence
//!
//! `confide-attest-sim` has a GPU twin: the same SPDM exchange, signed by a device key under a
//! locally generated "simulated NVIDIA" PKI shaped like the real one. This verifier checks it
//! with exactly the code above; only the root differs. Which root a chain is checked against
//! is decided by a marker, not by trying both: a device (leaf) certificate whose subject
//! Organization is [`SIMULATED_GPU_ORGANIZATION`] is checked against
//! `TrustPolicy::simulated_gpu_root` only, and only when `allow_simulated` is set; any other
//! chain against `TrustPolicy::nvidia_root` only. So a simulated chain can never verify as
//! real (it would have to be signed by NVIDIA's root) and a real one never as simulated (it
//! would have to carry the marker, which NVIDIA's certificates do not, and be signed by the
//! simulated root). [`VerifiedGpu::is_simulated`] and `GpuClaims::simulated` say which.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use confide_attest::{
    GpuCcMode, GpuClaims, GpuEvidence, GpuVerifier, PlatformError, TrustPolicy, UnixTime,
};
use der::{Decode, Encode};
use p384::ecdsa::signature::Verifier as _;
use p384::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// SPDM version 1.1 as encoded in SPDMVersion.
pub const SPDM_1_1: u8 = 0x11;
/// GET_MEASUREMENTS request code.
pub const GET_MEASUREMENTS: u8 = 0xE0;
/// MEASUREMENTS response code.
pub const MEASUREMENTS: u8 = 0x60;
/// ECDSA P-384 signature size (r || s).
pub const SIGNATURE_LEN: usize = 96;

const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";

/// OpaqueData field type of the feature flag (NVIDIA `OPAQUE_FIELD_ID_FEATURE_FLAG`).
pub const OPAQUE_FEATURE_FLAG: u16 = 36;
/// OpaqueData field type of the opaque-data format version (`OPAQUE_FIELD_ID_OPAQUE_DATA_VERSION`).
pub const OPAQUE_DATA_VERSION: u16 = 34;

/// Subject Organization (O) of every certificate of the simulated NVIDIA device PKI
/// (`confide-attest-sim`). NVIDIA's own certificates say `NVIDIA Corporation` or `NVIDIA`.
/// On the device certificate it selects the simulated root (module docs).
pub const SIMULATED_GPU_ORGANIZATION: &str = "Confide SIMULATED NVIDIA - NOT A GPU";

const OID_ORGANIZATION: &str = "2.5.4.10";

/// The confidential-computing mode a Hopper report states in its signed feature flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CcMode {
    /// No feature flag in the report (opaque-data version 0: firmware/driver before the
    /// field existed). The report does not say which CC mode it was produced in.
    Unstated,
    /// Feature flag 0: single GPU passthrough in CC mode.
    Spt,
    /// Feature flag 1: multi-GPU passthrough in CC mode.
    Mpt,
    /// Feature flag 2: protected PCIe mode (GPUs and NVSwitches share one CC domain).
    Ppcie,
}

impl std::fmt::Display for CcMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CcMode::Unstated => "unstated",
            CcMode::Spt => "SPT",
            CcMode::Mpt => "MPT",
            CcMode::Ppcie => "PPCIE",
        })
    }
}

/// One OpaqueData field (NVIDIA's TLV list inside the signed MEASUREMENTS response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpaqueField {
    /// Field type (`OPAQUE_FIELD_ID_*`).
    pub id: u16,
    /// Field value, as signed.
    pub value: Vec<u8>,
}

/// What a caller demands of verified GPU evidence beyond signature, chain and nonce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuExpectations {
    /// Reference values: SPDM measurement block index (as in the response, from 1; NVIDIA
    /// RIMs number from 0, so RIM index `i` is block `i + 1`) to the accepted SHA-384 values.
    /// Every listed index must be present and equal one of its alternatives; blocks not
    /// listed are not judged.
    pub reference: BTreeMap<u32, Vec<[u8; 48]>>,
    /// Accepted CC modes; empty: the mode is not judged.
    pub cc_modes: Vec<CcMode>,
}

/// Why GPU evidence was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NvidiaError {
    /// Input ended inside a field.
    #[error("SPDM message truncated in {0}")]
    Truncated(&'static str),
    /// Request SPDMVersion is not 1.1.
    #[error("unsupported SPDM request version {0:#04x}")]
    RequestVersion(u8),
    /// Request code is not GET_MEASUREMENTS.
    #[error("request code {0:#04x} is not GET_MEASUREMENTS")]
    RequestCode(u8),
    /// The request did not ask for a signature (so the response is unsigned).
    #[error("GET_MEASUREMENTS did not request a signature")]
    SignatureNotRequested,
    /// Response version differs from request version.
    #[error("response SPDM version {0:#04x} differs from the request's")]
    ResponseVersion(u8),
    /// Response code is not MEASUREMENTS.
    #[error("response code {0:#04x} is not MEASUREMENTS")]
    ResponseCode(u8),
    /// Measurement blocks do not fill MeasurementRecordLength or their count is wrong.
    #[error("measurement record malformed: {0}")]
    MeasurementRecord(&'static str),
    /// Fewer than one certificate.
    #[error("no device certificate chain")]
    MissingCertificates,
    /// Certificate `n` (0 = leaf) does not parse.
    #[error("device certificate {0} does not parse")]
    BadCertificate(usize),
    /// Certificate `n` is not signed with ECDSA-with-SHA384.
    #[error("device certificate {0} uses an unsupported signature algorithm")]
    UnsupportedAlgorithm(usize),
    /// Certificate `n` is not signed by certificate `n + 1`.
    #[error("device certificate {0} is not signed by its issuer")]
    ChainSignature(usize),
    /// The chain does not end at the pinned NVIDIA root.
    #[error("device chain does not end at the pinned NVIDIA root")]
    UntrustedRoot,
    /// No NVIDIA root pinned in the policy.
    #[error("trust policy pins no NVIDIA root")]
    NoPinnedRoot,
    /// The device certificate carries the simulated-GPU marker and the policy does not allow
    /// simulated evidence.
    #[error("simulated GPU evidence is not allowed by the trust policy")]
    SimulatedNotAllowed,
    /// The device certificate carries the simulated-GPU marker and the policy pins no
    /// simulated NVIDIA root.
    #[error("simulated GPU evidence but the trust policy pins no simulated GPU root")]
    NoPinnedSimulatedRoot,
    /// Certificate `n` expired.
    #[error("device certificate {0} has expired")]
    CertificateExpired(usize),
    /// Certificate `n` not yet valid.
    #[error("device certificate {0} is not yet valid")]
    CertificateNotYetValid(usize),
    /// A public key is not a P-384 point.
    #[error("device certificate {0} has no valid P-384 key")]
    BadPublicKey(usize),
    /// The SPDM signature does not verify under the leaf key.
    #[error("SPDM measurement signature does not verify")]
    Signature,
    /// The request nonce differs from the expected one.
    #[error("SPDM request nonce does not match the expected nonce")]
    NonceMismatch,
    /// The OpaqueData field list is malformed.
    #[error("OpaqueData malformed: {0}")]
    OpaqueData(&'static str),
    /// The feature flag holds a value NVIDIA does not define.
    #[error("unknown CC feature flag value {0}")]
    UnknownFeatureFlag(u64),
    /// The report's CC mode is not one the caller accepts.
    #[error("GPU CC mode {0} is not accepted")]
    CcModeNotAccepted(CcMode),
    /// A measurement block with a reference value is missing from the report.
    #[error("measurement block {0} has a reference value but is not in the report")]
    MeasurementMissing(u32),
    /// A measurement block equals none of its reference values.
    #[error("measurement block {0} differs from its reference values")]
    MeasurementMismatch(u32),
}

/// One SPDM measurement block (DSP0274 Table 45) in the DMTF measurement format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurementBlock {
    /// Index.
    pub index: u8,
    /// MeasurementSpecification (bit 0 = DMTF).
    pub spec: u8,
    /// DMTFSpecMeasurementValueType.
    pub value_type: u8,
    /// DMTFSpecMeasurementValue.
    pub value: Vec<u8>,
}

/// A parsed (not yet verified) GET_MEASUREMENTS exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpdmMeasurements {
    /// SPDM version of the exchange.
    pub version: u8,
    /// Requester nonce.
    pub request_nonce: [u8; 32],
    /// Responder nonce.
    pub response_nonce: [u8; 32],
    /// Measurement blocks.
    pub blocks: Vec<MeasurementBlock>,
    /// OpaqueData.
    pub opaque: Vec<u8>,
    /// Number of bytes covered by the signature (request || response minus signature).
    pub signed_len: usize,
    /// r || s.
    pub signature: [u8; SIGNATURE_LEN],
    /// Bytes after the signature: neither signed nor read, only counted.
    pub trailing_bytes: usize,
}

impl SpdmMeasurements {
    /// The OpaqueData field list, parsed strictly (every field complete, nothing left over).
    pub fn opaque_fields(&self) -> Result<Vec<OpaqueField>, NvidiaError> {
        let mut c = Cur {
            b: &self.opaque,
            pos: 0,
        };
        let mut out = Vec::new();
        while c.pos < self.opaque.len() {
            let id = c
                .u16("opaque field type")
                .map_err(|_| NvidiaError::OpaqueData("field type truncated"))?;
            let len = c
                .u16("opaque field size")
                .map_err(|_| NvidiaError::OpaqueData("field size truncated"))?;
            let value = c
                .take(usize::from(len), "opaque field value")
                .map_err(|_| NvidiaError::OpaqueData("field value truncated"))?
                .to_vec();
            out.push(OpaqueField { id, value });
        }
        Ok(out)
    }

    /// The CC mode stated by the signed feature flag ([`CcMode::Unstated`] without one).
    pub fn cc_mode(&self) -> Result<CcMode, NvidiaError> {
        let fields = self.opaque_fields()?;
        let mut flags = fields.iter().filter(|f| f.id == OPAQUE_FEATURE_FLAG);
        let Some(flag) = flags.next() else {
            return Ok(CcMode::Unstated);
        };
        if flags.next().is_some() {
            return Err(NvidiaError::OpaqueData("feature flag appears twice"));
        }
        // Little-endian integer; NVIDIA sends 2 bytes and its verifiers accept up to 8.
        if flag.value.is_empty() || flag.value.len() > 8 {
            return Err(NvidiaError::OpaqueData("feature flag size"));
        }
        let v = flag
            .value
            .iter()
            .rev()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        match v {
            0 => Ok(CcMode::Spt),
            1 => Ok(CcMode::Mpt),
            2 => Ok(CcMode::Ppcie),
            other => Err(NvidiaError::UnknownFeatureFlag(other)),
        }
    }
}

struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], NvidiaError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(NvidiaError::Truncated(what))?;
        let s = self
            .b
            .get(self.pos..end)
            .ok_or(NvidiaError::Truncated(what))?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, NvidiaError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, NvidiaError> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u24(&mut self, what: &'static str) -> Result<usize, NvidiaError> {
        let s = self.take(3, what)?;
        Ok(usize::from(s[0]) | usize::from(s[1]) << 8 | usize::from(s[2]) << 16)
    }
}

/// Parse request || response (fuzz entry point). Never panics.
pub fn parse_spdm(bytes: &[u8]) -> Result<SpdmMeasurements, NvidiaError> {
    let mut c = Cur { b: bytes, pos: 0 };
    // --- GET_MEASUREMENTS request ---
    let version = c.u8("request version")?;
    if version != SPDM_1_1 {
        return Err(NvidiaError::RequestVersion(version));
    }
    let code = c.u8("request code")?;
    if code != GET_MEASUREMENTS {
        return Err(NvidiaError::RequestCode(code));
    }
    let param1 = c.u8("request param1")?;
    let _operation = c.u8("request param2")?;
    if param1 & 1 == 0 {
        return Err(NvidiaError::SignatureNotRequested);
    }
    let mut request_nonce = [0u8; 32];
    request_nonce.copy_from_slice(c.take(32, "request nonce")?);
    let _slot = c.u8("request slot id")?;

    // --- MEASUREMENTS response ---
    let rv = c.u8("response version")?;
    if rv != version {
        return Err(NvidiaError::ResponseVersion(rv));
    }
    let rc = c.u8("response code")?;
    if rc != MEASUREMENTS {
        return Err(NvidiaError::ResponseCode(rc));
    }
    let _p1 = c.u8("response param1")?;
    let _p2 = c.u8("response param2")?;
    let n_blocks = c.u8("number of blocks")?;
    let record_len = c.u24("measurement record length")?;
    let record = c.take(record_len, "measurement record")?;
    let mut r = Cur { b: record, pos: 0 };
    let mut blocks = Vec::with_capacity(usize::from(n_blocks));
    while r.pos < record.len() {
        let index = r.u8("block index")?;
        let spec = r.u8("block specification")?;
        let size = usize::from(r.u16("block size")?);
        let body = r.take(size, "block body")?;
        let mut m = Cur { b: body, pos: 0 };
        let value_type = m.u8("DMTF value type")?;
        let value_size = usize::from(m.u16("DMTF value size")?);
        let value = m.take(value_size, "DMTF value")?.to_vec();
        if m.pos != body.len() {
            return Err(NvidiaError::MeasurementRecord(
                "block size disagrees with DMTF value size",
            ));
        }
        blocks.push(MeasurementBlock {
            index,
            spec,
            value_type,
            value,
        });
    }
    if blocks.len() != usize::from(n_blocks) {
        return Err(NvidiaError::MeasurementRecord(
            "NumberOfBlocks disagrees with the record",
        ));
    }
    let mut response_nonce = [0u8; 32];
    response_nonce.copy_from_slice(c.take(32, "response nonce")?);
    let opaque_len = usize::from(c.u16("opaque length")?);
    let opaque = c.take(opaque_len, "opaque data")?.to_vec();
    let signed_len = c.pos;
    let mut signature = [0u8; SIGNATURE_LEN];
    signature.copy_from_slice(c.take(SIGNATURE_LEN, "signature")?);
    // The response ends with its signature (DSP0274 Table 44); what follows belongs to no
    // SPDM message. It is counted and never read (module docs).
    let trailing_bytes = bytes.len() - c.pos;
    Ok(SpdmMeasurements {
        version,
        request_nonce,
        response_nonce,
        blocks,
        opaque,
        signed_len,
        signature,
        trailing_bytes,
    })
}

#[derive(Clone)]
struct CheckedChain {
    leaf: VerifyingKey,
    validity: Vec<(u64, u64)>,
}

/// NVIDIA GPU evidence verifier, optionally caching verified device chains.
#[derive(Default)]
pub struct NvidiaVerifier {
    cache: Option<Mutex<HashMap<[u8; 32], CheckedChain>>>,
}

/// Verified GPU evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedGpu {
    /// The parsed exchange whose signature and chain verified.
    pub measurements: SpdmMeasurements,
    simulated: bool,
}

impl VerifiedGpu {
    /// True when the chain ended at the policy's simulated NVIDIA root (no GPU at all).
    pub fn is_simulated(&self) -> bool {
        self.simulated
    }

    /// How many bytes followed the complete signed response and were ignored (0 normally).
    pub fn ignored_trailing_bytes(&self) -> usize {
        self.measurements.trailing_bytes
    }

    /// The CC mode the signed report states.
    pub fn cc_mode(&self) -> Result<CcMode, NvidiaError> {
        self.measurements.cc_mode()
    }

    /// The report's CC mode, if it is one of `accepted`.
    pub fn require_cc_mode(&self, accepted: &[CcMode]) -> Result<CcMode, NvidiaError> {
        let mode = self.cc_mode()?;
        if accepted.contains(&mode) {
            Ok(mode)
        } else {
            Err(NvidiaError::CcModeNotAccepted(mode))
        }
    }

    /// Compare measurement blocks with reference values (see [`GpuExpectations::reference`]).
    /// The first failing index, in ascending order, is named in the error.
    pub fn check_reference(
        &self,
        reference: &BTreeMap<u32, Vec<[u8; 48]>>,
    ) -> Result<(), NvidiaError> {
        for (&index, alternatives) in reference {
            let mut blocks = self
                .measurements
                .blocks
                .iter()
                .filter(|b| u32::from(b.index) == index);
            let block = blocks
                .next()
                .ok_or(NvidiaError::MeasurementMissing(index))?;
            // A report naming one index twice has no single value to judge.
            if blocks.next().is_some() {
                return Err(NvidiaError::MeasurementMismatch(index));
            }
            if !alternatives
                .iter()
                .any(|a| a.as_slice() == block.value.as_slice())
            {
                return Err(NvidiaError::MeasurementMismatch(index));
            }
        }
        Ok(())
    }

    /// Both checks of `expect`: reference values, then (if any are listed) the CC mode.
    pub fn check(&self, expect: &GpuExpectations) -> Result<(), NvidiaError> {
        self.check_reference(&expect.reference)?;
        if !expect.cc_modes.is_empty() {
            self.require_cc_mode(&expect.cc_modes)?;
        }
        Ok(())
    }
}

impl NvidiaVerifier {
    /// Verifier without a cache.
    pub fn new() -> Self {
        NvidiaVerifier { cache: None }
    }

    /// Verifier that caches verified device chains (the per-report signature is still checked).
    pub fn with_cache() -> Self {
        NvidiaVerifier {
            cache: Some(Mutex::new(HashMap::new())),
        }
    }

    /// Verify SPDM request||response with its device chain (DER, leaf first).
    pub fn verify(
        &self,
        spdm: &[u8],
        certs: &[Vec<u8>],
        expected_nonce: Option<&[u8; 32]>,
        policy: &TrustPolicy,
        now: UnixTime,
    ) -> Result<VerifiedGpu, NvidiaError> {
        let m = parse_spdm(spdm)?;
        // The device certificate's marker picks the one root it may chain to (module docs).
        let leaf = certs.first().ok_or(NvidiaError::MissingCertificates)?;
        let simulated = is_simulated_device(&parse(0, leaf)?);
        let root = if simulated {
            if !policy.allow_simulated {
                return Err(NvidiaError::SimulatedNotAllowed);
            }
            policy
                .simulated_gpu_root
                .as_deref()
                .ok_or(NvidiaError::NoPinnedSimulatedRoot)?
        } else {
            policy
                .nvidia_root
                .as_deref()
                .ok_or(NvidiaError::NoPinnedRoot)?
        };
        let key = chain_key(certs, root);
        let cached = self
            .cache
            .as_ref()
            .and_then(|c| c.lock().ok().and_then(|m| m.get(&key).cloned()));
        let chain = match cached {
            Some(c) => c,
            None => {
                let c = check_chain(certs, root)?;
                if let Some(Ok(mut map)) = self.cache.as_ref().map(|c| c.lock()) {
                    map.insert(key, c.clone());
                }
                c
            }
        };
        for (i, (nb, na)) in chain.validity.iter().enumerate() {
            if now.0 < *nb {
                return Err(NvidiaError::CertificateNotYetValid(i));
            }
            if now.0 > *na {
                return Err(NvidiaError::CertificateExpired(i));
            }
        }
        let sig = Signature::from_slice(&m.signature).map_err(|_| NvidiaError::Signature)?;
        chain
            .leaf
            .verify(&spdm[..m.signed_len], &sig)
            .map_err(|_| NvidiaError::Signature)?;
        if expected_nonce.is_some_and(|n| &m.request_nonce != n) {
            return Err(NvidiaError::NonceMismatch);
        }
        Ok(VerifiedGpu {
            measurements: m,
            simulated,
        })
    }

    /// [`NvidiaVerifier::verify`], then [`VerifiedGpu::check`] against `expect`.
    pub fn verify_expected(
        &self,
        spdm: &[u8],
        certs: &[Vec<u8>],
        expected_nonce: Option<&[u8; 32]>,
        expect: &GpuExpectations,
        policy: &TrustPolicy,
        now: UnixTime,
    ) -> Result<VerifiedGpu, NvidiaError> {
        let v = self.verify(spdm, certs, expected_nonce, policy, now)?;
        v.check(expect)?;
        Ok(v)
    }
}

impl GpuVerifier for NvidiaVerifier {
    fn verify_gpu(
        &self,
        gpu: &GpuEvidence,
        expected_nonce: &[u8; 32],
        policy: &TrustPolicy,
        now: UnixTime,
    ) -> Result<GpuClaims, PlatformError> {
        let v = self.verify(&gpu.spdm, &gpu.certs, Some(expected_nonce), policy, now)?;
        // The policy judges the mode (confide_attest::TrustPolicy::gpu_cc_modes); an
        // undefined feature flag is refused here, as NVIDIA's verifiers refuse it.
        let cc_mode = match v.cc_mode()? {
            CcMode::Unstated => GpuCcMode::Unstated,
            CcMode::Spt => GpuCcMode::Spt,
            CcMode::Mpt => GpuCcMode::Mpt,
            CcMode::Ppcie => GpuCcMode::Ppcie,
        };
        Ok(GpuClaims {
            cc_mode,
            nonce: v.measurements.request_nonce,
            ignored_trailing_bytes: v.measurements.trailing_bytes,
            simulated: v.simulated,
            measurements: v
                .measurements
                .blocks
                .into_iter()
                .map(|b| (b.index, b.value))
                .collect(),
        })
    }
}

fn chain_key(certs: &[Vec<u8>], root: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for c in certs.iter().map(Vec::as_slice).chain([root]) {
        h.update((c.len() as u64).to_be_bytes());
        h.update(c);
    }
    h.finalize().into()
}

fn parse(i: usize, d: &[u8]) -> Result<x509_cert::Certificate, NvidiaError> {
    let c = x509_cert::Certificate::from_der(d).map_err(|_| NvidiaError::BadCertificate(i))?;
    match c.to_der() {
        Ok(again) if again == d => Ok(c),
        _ => Err(NvidiaError::BadCertificate(i)),
    }
}

/// Whether a device certificate's subject names [`SIMULATED_GPU_ORGANIZATION`] as its
/// Organization (in any string type: the content bytes are compared).
fn is_simulated_device(c: &x509_cert::Certificate) -> bool {
    c.tbs_certificate.subject.0.iter().any(|rdn| {
        rdn.0.iter().any(|atv| {
            atv.oid.to_string() == OID_ORGANIZATION
                && atv.value.value() == SIMULATED_GPU_ORGANIZATION.as_bytes()
        })
    })
}

fn key_of(i: usize, c: &x509_cert::Certificate) -> Result<VerifyingKey, NvidiaError> {
    VerifyingKey::from_sec1_bytes(
        c.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )
    .map_err(|_| NvidiaError::BadPublicKey(i))
}

fn signed_by(
    i: usize,
    c: &x509_cert::Certificate,
    issuer: &VerifyingKey,
) -> Result<(), NvidiaError> {
    if c.signature_algorithm.oid.to_string() != OID_ECDSA_SHA384 {
        return Err(NvidiaError::UnsupportedAlgorithm(i));
    }
    let tbs = c
        .tbs_certificate
        .to_der()
        .map_err(|_| NvidiaError::BadCertificate(i))?;
    let sig =
        Signature::from_der(c.signature.raw_bytes()).map_err(|_| NvidiaError::ChainSignature(i))?;
    issuer
        .verify(&tbs, &sig)
        .map_err(|_| NvidiaError::ChainSignature(i))
}

fn check_chain(certs: &[Vec<u8>], root_der: &[u8]) -> Result<CheckedChain, NvidiaError> {
    if certs.is_empty() {
        return Err(NvidiaError::MissingCertificates);
    }
    // If the presented chain includes the root, it must be the pinned one byte for byte.
    let mut list: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
    if list.last() == Some(&root_der) {
        list.pop();
    } else if list.len() > 1 {
        let top = parse(list.len() - 1, list[list.len() - 1])?;
        if top.tbs_certificate.subject == top.tbs_certificate.issuer {
            return Err(NvidiaError::UntrustedRoot);
        }
    }
    if list.is_empty() {
        return Err(NvidiaError::MissingCertificates);
    }
    let root_index = list.len();
    let root = parse(root_index, root_der)?;
    let root_key = key_of(root_index, &root)?;
    signed_by(root_index, &root, &root_key).map_err(|_| NvidiaError::UntrustedRoot)?;
    let parsed = list
        .iter()
        .enumerate()
        .map(|(i, d)| parse(i, d))
        .collect::<Result<Vec<_>, _>>()?;
    let mut validity = Vec::with_capacity(parsed.len() + 1);
    for (i, c) in parsed.iter().enumerate() {
        let issuer_key = match parsed.get(i + 1) {
            Some(next) => key_of(i + 1, next)?,
            None => root_key,
        };
        signed_by(i, c, &issuer_key).map_err(|e| match (e, i + 1 == parsed.len()) {
            // The top of the presented chain not signed by the pinned root.
            (NvidiaError::ChainSignature(_), true) => NvidiaError::UntrustedRoot,
            (e, _) => e,
        })?;
        let v = &c.tbs_certificate.validity;
        validity.push((
            v.not_before.to_unix_duration().as_secs(),
            v.not_after.to_unix_duration().as_secs(),
        ));
    }
    let v = &root.tbs_certificate.validity;
    validity.push((
        v.not_before.to_unix_duration().as_secs(),
        v.not_after.to_unix_duration().as_secs(),
    ));
    Ok(CheckedChain {
        leaf: key_of(0, &parsed[0])?,
        validity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/nvidia/");

    /// One real exchange: `""` is NVIDIA's nvtrust sample (driver r550, no feature flag),
    /// `"rim/"` the attestation SDK's (driver r580, opaque-data version 1, feature flag SPT).
    fn exchange(sub: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
        let hexs = std::fs::read(format!("{DIR}{sub}hopperAttestationReport.txt")).unwrap();
        let spdm = confide_attest::input::decode_hex_or_binary(&hexs).unwrap();
        let pem = std::fs::read(format!("{DIR}{sub}hopperCertChain.txt")).unwrap();
        let certs = confide_attest::input::decode_certificates(&pem).unwrap();
        (spdm, certs)
    }

    fn fixture() -> (Vec<u8>, Vec<Vec<u8>>) {
        exchange("")
    }

    fn nonce(h: &str) -> [u8; 32] {
        hex::decode(h).unwrap().try_into().unwrap()
    }

    const NONCE_NVTRUST: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";
    const NONCE_SDK: &str = "5bb22e377702d4e1e8215a903ba094826b9ac7f731dee1fe8102958bf2840aca";

    const NOW: UnixTime = UnixTime(1_750_000_000);

    #[test]
    fn hopper_fixture_parses_and_verifies() {
        let (spdm, certs) = fixture();
        let m = parse_spdm(&spdm).unwrap();
        assert_eq!(m.version, SPDM_1_1);
        assert_eq!(m.blocks.len(), 64);
        assert!(m.blocks.iter().all(|b| b.value.len() == 48));
        assert_eq!(m.trailing_bytes, 0);
        let policy = TrustPolicy::production();
        for v in [NvidiaVerifier::new(), NvidiaVerifier::with_cache()] {
            let ok = v
                .verify(&spdm, &certs, Some(&m.request_nonce), &policy, NOW)
                .unwrap();
            assert_eq!(ok.measurements, m);
            // again, through the cache
            v.verify(&spdm, &certs, None, &policy, NOW).unwrap();
        }
        // Without the root in the presented chain, the pinned root completes it.
        NvidiaVerifier::new()
            .verify(&spdm, &certs[..4], None, &policy, NOW)
            .unwrap();
    }

    /// Both real exchanges verify with the nonce of their own SPDM request; neither carries
    /// bytes after its signature, and each one's OpaqueData states what it is.
    #[test]
    fn both_real_exchanges_verify() {
        let policy = TrustPolicy::production();
        for (sub, n, driver, mode) in [
            ("", NONCE_NVTRUST, &b"550.90.07\0"[..], CcMode::Unstated),
            ("rim/", NONCE_SDK, &b"580.159.03\0"[..], CcMode::Spt),
        ] {
            let (spdm, certs) = exchange(sub);
            let v = NvidiaVerifier::new()
                .verify(&spdm, &certs, Some(&nonce(n)), &policy, NOW)
                .unwrap();
            assert_eq!(v.ignored_trailing_bytes(), 0, "{sub}");
            assert_eq!(v.measurements.blocks.len(), 64);
            let fields = v.measurements.opaque_fields().unwrap();
            // OPAQUE_FIELD_ID_DRIVER_VERSION (3).
            assert_eq!(
                fields.iter().find(|f| f.id == 3).unwrap().value,
                driver,
                "{sub}"
            );
            assert_eq!(v.cc_mode().unwrap(), mode, "{sub}");
            // The two GPUs are different devices: their chains are not interchangeable.
            let other = exchange(if sub.is_empty() { "rim/" } else { "" }).1;
            assert_eq!(
                NvidiaVerifier::new().verify(&spdm, &other, None, &policy, NOW),
                Err(NvidiaError::Signature)
            );
        }
    }

    /// Bytes after a complete signed response are ignored and counted; the verified exchange
    /// is otherwise identical. Cutting into the response, signature included, is refused.
    #[test]
    fn trailing_bytes_ignored_truncation_refused() {
        let policy = TrustPolicy::production();
        for (sub, n) in [("", NONCE_NVTRUST), ("rim/", NONCE_SDK)] {
            let (spdm, certs) = exchange(sub);
            let base = parse_spdm(&spdm).unwrap();
            // One byte, some junk, and padding to NVML's 8 KiB report buffer.
            for extra in [vec![0u8], vec![0xA5; 37], vec![0u8; 0x2000 - spdm.len()]] {
                let mut long = spdm.clone();
                long.extend_from_slice(&extra);
                let v = NvidiaVerifier::new()
                    .verify(&long, &certs, Some(&nonce(n)), &policy, NOW)
                    .unwrap();
                assert_eq!(v.ignored_trailing_bytes(), extra.len());
                let mut again = v.measurements.clone();
                again.trailing_bytes = 0;
                assert_eq!(again, base);
            }
            assert_eq!(
                parse_spdm(&spdm[..spdm.len() - 1]),
                Err(NvidiaError::Truncated("signature"))
            );
            assert_eq!(
                parse_spdm(&spdm[..base.signed_len]),
                Err(NvidiaError::Truncated("signature"))
            );
            assert_eq!(
                parse_spdm(&spdm[..base.signed_len - 1]),
                Err(NvidiaError::Truncated("opaque data"))
            );
        }
    }

    #[test]
    fn wrong_nonce_and_truncation() {
        let (spdm, certs) = fixture();
        let policy = TrustPolicy::production();
        assert_eq!(
            NvidiaVerifier::new().verify(&spdm, &certs, Some(&[0; 32]), &policy, NOW),
            Err(NvidiaError::NonceMismatch)
        );
        for n in 0..spdm.len() {
            assert!(parse_spdm(&spdm[..n]).is_err());
        }
    }

    fn reference_of(v: &VerifiedGpu) -> BTreeMap<u32, Vec<[u8; 48]>> {
        v.measurements
            .blocks
            .iter()
            .map(|b| {
                (
                    u32::from(b.index),
                    vec![b.value.as_slice().try_into().unwrap()],
                )
            })
            .collect()
    }

    #[test]
    fn reference_values_name_the_failing_index() {
        let (spdm, certs) = exchange("rim/");
        let policy = TrustPolicy::production();
        let v = NvidiaVerifier::new()
            .verify(&spdm, &certs, None, &policy, NOW)
            .unwrap();
        let mut reference = reference_of(&v);
        assert_eq!(reference.len(), 64);
        v.check_reference(&reference).unwrap();
        v.check_reference(&BTreeMap::new()).unwrap();

        // The right value as the second alternative is still a match.
        let right = reference[&5][0];
        let mut wrong = right;
        wrong[47] ^= 1;
        reference.insert(5, vec![wrong, right]);
        v.check_reference(&reference).unwrap();
        reference.insert(5, vec![wrong]);
        assert_eq!(
            v.check_reference(&reference),
            Err(NvidiaError::MeasurementMismatch(5))
        );
        reference.insert(5, vec![]);
        assert_eq!(
            v.check_reference(&reference),
            Err(NvidiaError::MeasurementMismatch(5))
        );
        reference.insert(5, vec![right]);
        reference.insert(65, vec![right]);
        assert_eq!(
            v.check_reference(&reference),
            Err(NvidiaError::MeasurementMissing(65))
        );
        // Index 0 does not exist in SPDM numbering (blocks count from 1).
        let mut zero = BTreeMap::new();
        zero.insert(0, vec![right]);
        assert_eq!(
            v.check_reference(&zero),
            Err(NvidiaError::MeasurementMissing(0))
        );

        // Through the verifier, together with the CC mode.
        let expect = GpuExpectations {
            reference: reference_of(&v),
            cc_modes: vec![CcMode::Spt],
        };
        NvidiaVerifier::new()
            .verify_expected(
                &spdm,
                &certs,
                Some(&nonce(NONCE_SDK)),
                &expect,
                &policy,
                NOW,
            )
            .unwrap();
        // The other GPU's report differs from these reference values.
        let (spdm1, certs1) = fixture();
        let e = NvidiaVerifier::new()
            .verify_expected(
                &spdm1,
                &certs1,
                None,
                &GpuExpectations {
                    cc_modes: vec![],
                    ..expect
                },
                &policy,
                NOW,
            )
            .unwrap_err();
        assert!(matches!(e, NvidiaError::MeasurementMismatch(_)), "{e:?}");
    }

    #[test]
    fn cc_mode_from_the_signed_feature_flag() {
        let policy = TrustPolicy::production();
        let (spdm, certs) = exchange("rim/");
        let v = NvidiaVerifier::new()
            .verify(&spdm, &certs, None, &policy, NOW)
            .unwrap();
        assert_eq!(v.require_cc_mode(&[CcMode::Spt]), Ok(CcMode::Spt));
        assert_eq!(
            v.require_cc_mode(&[CcMode::Mpt, CcMode::Ppcie]),
            Err(NvidiaError::CcModeNotAccepted(CcMode::Spt))
        );
        // The r550 report predates the flag: a caller demanding a stated mode refuses it.
        let (spdm1, certs1) = fixture();
        let v1 = NvidiaVerifier::new()
            .verify(&spdm1, &certs1, None, &policy, NOW)
            .unwrap();
        assert_eq!(
            v1.require_cc_mode(&[CcMode::Spt, CcMode::Mpt]),
            Err(NvidiaError::CcModeNotAccepted(CcMode::Unstated))
        );
        // The flag is signed: the last OpaqueData field is type 36, two bytes, value 0.
        let m = &v.measurements;
        assert_eq!(&m.opaque[m.opaque.len() - 6..], &[36, 0, 2, 0, 0, 0]);
        let mut flipped = spdm.clone();
        flipped[m.signed_len - 2] = 2;
        assert_eq!(
            NvidiaVerifier::new().verify(&flipped, &certs, None, &policy, NOW),
            Err(NvidiaError::Signature)
        );
        assert_eq!(parse_spdm(&flipped).unwrap().cc_mode(), Ok(CcMode::Ppcie));

        // Flag values and list shapes, on the parsed (unverified) structure.
        let with_opaque = |tail: &[u8]| {
            let mut m = m.clone();
            let keep = m.opaque.len() - 6;
            m.opaque.truncate(keep);
            m.opaque.extend_from_slice(tail);
            m.cc_mode()
        };
        assert_eq!(with_opaque(&[36, 0, 2, 0, 1, 0]), Ok(CcMode::Mpt));
        assert_eq!(with_opaque(&[36, 0, 1, 0, 2]), Ok(CcMode::Ppcie));
        assert_eq!(
            with_opaque(&[36, 0, 2, 0, 3, 0]),
            Err(NvidiaError::UnknownFeatureFlag(3))
        );
        assert_eq!(
            with_opaque(&[36, 0, 0, 0]),
            Err(NvidiaError::OpaqueData("feature flag size"))
        );
        assert_eq!(
            with_opaque(&[36, 0, 2, 0, 0, 0, 36, 0, 2, 0, 0, 0]),
            Err(NvidiaError::OpaqueData("feature flag appears twice"))
        );
        assert_eq!(
            with_opaque(&[36, 0, 3, 0, 0, 0]),
            Err(NvidiaError::OpaqueData("field value truncated"))
        );
        assert_eq!(
            with_opaque(&[36]),
            Err(NvidiaError::OpaqueData("field type truncated"))
        );
        assert_eq!(with_opaque(&[]), Ok(CcMode::Unstated));
    }
}
