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

use std::collections::HashMap;
use std::sync::Mutex;

use confide_attest::{GpuClaims, GpuEvidence, GpuVerifier, PlatformError, TrustPolicy, UnixTime};
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
    /// Bytes after the signature.
    #[error("{0} bytes after the SPDM signature")]
    TrailingBytes(usize),
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
    if c.pos != bytes.len() {
        return Err(NvidiaError::TrailingBytes(bytes.len() - c.pos));
    }
    Ok(SpdmMeasurements {
        version,
        request_nonce,
        response_nonce,
        blocks,
        opaque,
        signed_len,
        signature,
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
        let root = policy
            .nvidia_root
            .as_deref()
            .ok_or(NvidiaError::NoPinnedRoot)?;
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
        Ok(VerifiedGpu { measurements: m })
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
        Ok(GpuClaims {
            nonce: v.measurements.request_nonce,
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

    fn fixture() -> (Vec<u8>, Vec<Vec<u8>>) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/nvidia/");
        let hexs = std::fs::read(format!("{dir}hopperAttestationReport.txt")).unwrap();
        let spdm = confide_attest::input::decode_hex_or_binary(&hexs).unwrap();
        let pem = std::fs::read(format!("{dir}hopperCertChain.txt")).unwrap();
        let certs = confide_attest::input::decode_certificates(&pem).unwrap();
        (spdm, certs)
    }

    const NOW: UnixTime = UnixTime(1_750_000_000);

    #[test]
    fn hopper_fixture_parses_and_verifies() {
        let (spdm, certs) = fixture();
        let m = parse_spdm(&spdm).unwrap();
        assert_eq!(m.version, SPDM_1_1);
        assert_eq!(m.blocks.len(), 64);
        assert!(m.blocks.iter().all(|b| b.value.len() == 48));
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
}
