//! Test-only stand-ins for the platform attester/verifier and the ledger
//! verifier, until `confide-attest-sim` and `confide-release` provide real ones.
//!
//! Evidence here is a small Ed25519-signed structure ("test vendor"); a ledger
//! bundle is an Ed25519-signed entry ("test ledger"). The signatures are real,
//! so a forged or altered structure is rejected by the verifiers exactly as a
//! real platform verifier would reject it.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use confide_ratls::rustls::pki_types::UnixTime;
use confide_ratls::{
    Attester, CheckpointRef, EvidenceClaims, EvidenceVerifier, ExternalError, GpuEvidenceVerifier,
    InclusionVerifier, LedgerEntryClaims, NodePolicy, NodeVerifier, Pin, Register,
};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

pub const EVIDENCE_TYPE: &str = "application/vnd.confide.test-evidence";
pub const GPU_TYPE: &str = "application/vnd.confide.test-gpu-evidence";
const EVIDENCE_MAGIC: &[u8] = b"confide-test-evidence-v1";
const BUNDLE_MAGIC: &[u8] = b"confide-test-bundle-v1";

pub const T0: u64 = 1_790_000_000;
pub const WINDOW: Duration = Duration::from_secs(3600);

pub fn at(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

pub fn measurement(tag: u8) -> Vec<u8> {
    vec![tag; 48]
}

pub fn model(tag: u8) -> Vec<u8> {
    vec![tag; 32]
}

#[derive(Debug, thiserror::Error)]
pub enum TestVerifyError {
    #[error("malformed test structure")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("unsupported media type")]
    MediaType,
}

fn put(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

struct Cursor<'a>(&'a [u8]);
impl<'a> Cursor<'a> {
    fn get(&mut self) -> Result<&'a [u8], TestVerifyError> {
        let (len, rest) = self
            .0
            .split_at_checked(4)
            .ok_or(TestVerifyError::Malformed)?;
        let n = u32::from_be_bytes(len.try_into().unwrap()) as usize;
        let (v, rest) = rest.split_at_checked(n).ok_or(TestVerifyError::Malformed)?;
        self.0 = rest;
        Ok(v)
    }
    fn u64(&mut self) -> Result<u64, TestVerifyError> {
        Ok(u64::from_be_bytes(
            self.get()?
                .try_into()
                .map_err(|_| TestVerifyError::Malformed)?,
        ))
    }
}

fn split_signed(
    bytes: &[u8],
    magic: &[u8],
    key: &VerifyingKey,
) -> Result<Vec<u8>, TestVerifyError> {
    let (body, sig) = bytes
        .split_at_checked(
            bytes
                .len()
                .checked_sub(64)
                .ok_or(TestVerifyError::Malformed)?,
        )
        .ok_or(TestVerifyError::Malformed)?;
    let sig = Signature::from_slice(sig).map_err(|_| TestVerifyError::Malformed)?;
    key.verify(body, &sig)
        .map_err(|_| TestVerifyError::BadSignature)?;
    body.strip_prefix(magic)
        .map(<[u8]>::to_vec)
        .ok_or(TestVerifyError::Malformed)
}

/// A simulated platform: signs what it is told it runs.
pub struct TestAttester {
    pub vendor: SigningKey,
    pub platform: String,
    pub measurement: Vec<u8>,
    pub model_digest: Option<Vec<u8>>,
    pub config_digest: Option<Vec<u8>>,
    pub collected_at: u64,
    /// Tamper hook: sign this REPORT_DATA instead of the one asked for.
    pub report_data_override: Option<[u8; 64]>,
}

impl TestAttester {
    pub fn new(vendor: &SigningKey) -> Self {
        Self {
            vendor: vendor.clone(),
            platform: "simulated".into(),
            measurement: measurement(1),
            model_digest: Some(model(2)),
            config_digest: Some(model(3)),
            collected_at: T0,
            report_data_override: None,
        }
    }
}

impl Attester for TestAttester {
    fn media_type(&self) -> &str {
        EVIDENCE_TYPE
    }
    fn attest(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, ExternalError> {
        let mut body = EVIDENCE_MAGIC.to_vec();
        put(&mut body, self.platform.as_bytes());
        put(&mut body, &self.measurement);
        put(&mut body, self.model_digest.as_deref().unwrap_or_default());
        put(&mut body, self.config_digest.as_deref().unwrap_or_default());
        put(
            &mut body,
            &self.report_data_override.unwrap_or(*report_data),
        );
        put(&mut body, &self.collected_at.to_be_bytes());
        let sig = self.vendor.sign(&body);
        body.extend_from_slice(&sig.to_bytes());
        Ok(body)
    }
}

#[derive(Debug)]
pub struct TestEvidenceVerifier {
    pub vendor: VerifyingKey,
}

/// A verifier for a format that embeds GPU evidence: reports `digest` as the
/// embedded, verified GPU evidence digest.
#[derive(Debug)]
pub struct EmbeddedGpuVerifier {
    pub inner: TestEvidenceVerifier,
    pub digest: Option<[u8; 32]>,
}

impl EvidenceVerifier for EmbeddedGpuVerifier {
    fn verify_evidence(
        &self,
        media_type: &str,
        evidence: &[u8],
        now: UnixTime,
    ) -> Result<EvidenceClaims, ExternalError> {
        self.inner.verify_evidence(media_type, evidence, now)
    }

    fn verify_evidence_with_gpu(
        &self,
        media_type: &str,
        evidence: &[u8],
        now: UnixTime,
    ) -> Result<(EvidenceClaims, Option<[u8; 32]>), ExternalError> {
        Ok((
            self.inner.verify_evidence(media_type, evidence, now)?,
            self.digest,
        ))
    }
}

impl EvidenceVerifier for TestEvidenceVerifier {
    fn verify_evidence(
        &self,
        media_type: &str,
        evidence: &[u8],
        _now: UnixTime,
    ) -> Result<EvidenceClaims, ExternalError> {
        if media_type != EVIDENCE_TYPE {
            return Err(ExternalError::new(TestVerifyError::MediaType));
        }
        let body =
            split_signed(evidence, EVIDENCE_MAGIC, &self.vendor).map_err(ExternalError::new)?;
        let mut c = Cursor(&body);
        let f = || TestVerifyError::Malformed;
        let platform = String::from_utf8(c.get().map_err(ExternalError::new)?.to_vec())
            .map_err(|_| ExternalError::new(f()))?;
        let measurement = c.get().map_err(ExternalError::new)?.to_vec();
        let model = c.get().map_err(ExternalError::new)?.to_vec();
        let config = c.get().map_err(ExternalError::new)?.to_vec();
        let rd: [u8; 64] = c
            .get()
            .map_err(ExternalError::new)?
            .try_into()
            .map_err(|_| ExternalError::new(f()))?;
        let collected = c.u64().map_err(ExternalError::new)?;
        Ok(EvidenceClaims {
            platform,
            registers: vec![Register {
                name: "MEASUREMENT".into(),
                value: measurement.clone(),
                must_be_pinned: true,
            }],
            measurement,
            model_digest: (!model.is_empty()).then_some(model),
            config_digest: (!config.is_empty()).then_some(config),
            report_data: rd,
            collected_at: Some(at(collected)),
        })
    }
}

/// GPU evidence: Ed25519 signature by a "GPU vendor" over the bytes.
#[derive(Debug)]
pub struct TestGpuVerifier {
    pub vendor: VerifyingKey,
}

pub fn gpu_evidence(vendor: &SigningKey, body: &[u8]) -> Vec<u8> {
    let mut v = body.to_vec();
    v.extend_from_slice(&vendor.sign(body).to_bytes());
    v
}

impl GpuEvidenceVerifier for TestGpuVerifier {
    fn verify_gpu_evidence(
        &self,
        media_type: &str,
        evidence: &[u8],
        _now: UnixTime,
    ) -> Result<(), ExternalError> {
        if media_type != GPU_TYPE {
            return Err(ExternalError::new(TestVerifyError::MediaType));
        }
        split_signed(evidence, b"", &self.vendor).map_err(ExternalError::new)?;
        Ok(())
    }
}

/// A ledger entry as the test ledger signs it.
#[derive(Clone)]
pub struct TestEntry {
    pub platform: String,
    pub measurement: Vec<u8>,
    pub model_digest: Option<Vec<u8>>,
    pub config_digest: Option<Vec<u8>>,
    pub valid_from: u64,
    pub valid_until: u64,
    pub index: u64,
}

impl TestEntry {
    pub fn matching(a: &TestAttester) -> Self {
        Self {
            platform: a.platform.clone(),
            measurement: a.measurement.clone(),
            model_digest: a.model_digest.clone(),
            config_digest: a.config_digest.clone(),
            valid_from: T0 - 86_400,
            valid_until: T0 + 30 * 86_400,
            index: 7,
        }
    }

    pub fn bundle(&self, ledger: &SigningKey) -> Vec<u8> {
        let mut body = BUNDLE_MAGIC.to_vec();
        put(&mut body, self.platform.as_bytes());
        put(&mut body, &self.measurement);
        put(&mut body, self.model_digest.as_deref().unwrap_or_default());
        put(&mut body, self.config_digest.as_deref().unwrap_or_default());
        put(&mut body, &self.valid_from.to_be_bytes());
        put(&mut body, &self.valid_until.to_be_bytes());
        put(&mut body, &self.index.to_be_bytes());
        let sig = ledger.sign(&body);
        body.extend_from_slice(&sig.to_bytes());
        body
    }
}

#[derive(Debug)]
pub struct TestInclusionVerifier {
    pub ledger: VerifyingKey,
}

impl InclusionVerifier for TestInclusionVerifier {
    fn verify_inclusion(
        &self,
        bundle: &[u8],
        _now: UnixTime,
    ) -> Result<LedgerEntryClaims, ExternalError> {
        let body = split_signed(bundle, BUNDLE_MAGIC, &self.ledger).map_err(ExternalError::new)?;
        let mut c = Cursor(&body);
        let e = ExternalError::new;
        let platform = String::from_utf8(c.get().map_err(e)?.to_vec())
            .map_err(|_| ExternalError::new(TestVerifyError::Malformed))?;
        let measurement = c.get().map_err(ExternalError::new)?.to_vec();
        let model = c.get().map_err(ExternalError::new)?.to_vec();
        let config = c.get().map_err(ExternalError::new)?.to_vec();
        let valid_from = c.u64().map_err(ExternalError::new)?;
        let valid_until = c.u64().map_err(ExternalError::new)?;
        let index = c.u64().map_err(ExternalError::new)?;
        Ok(LedgerEntryClaims {
            platform,
            pins: vec![Pin {
                name: "MEASUREMENT".into(),
                accepted: vec![measurement.clone()],
            }],
            measurement,
            model_digest: (!model.is_empty()).then_some(model),
            config_digest: (!config.is_empty()).then_some(config),
            valid_from: at(valid_from),
            valid_until: Some(at(valid_until)),
            index,
            checkpoint: CheckpointRef {
                origin: "test.confide.invalid/ledger".into(),
                size: index + 1,
                root_hash: [0x42; 32],
            },
        })
    }
}

/// Keys for one test world: platform vendor, GPU vendor, ledger.
pub struct World {
    pub vendor: SigningKey,
    pub gpu_vendor: SigningKey,
    pub ledger: SigningKey,
}

impl World {
    pub fn new() -> Self {
        Self {
            vendor: SigningKey::from_bytes(&[1; 32]),
            gpu_vendor: SigningKey::from_bytes(&[2; 32]),
            ledger: SigningKey::from_bytes(&[3; 32]),
        }
    }

    pub fn verifier(&self) -> NodeVerifier {
        NodeVerifier::new(
            NodePolicy::new(WINDOW),
            Arc::new(TestEvidenceVerifier {
                vendor: self.vendor.verifying_key(),
            }),
            Arc::new(TestInclusionVerifier {
                ledger: self.ledger.verifying_key(),
            }),
        )
    }

    pub fn gpu_verifier(&self) -> Arc<TestGpuVerifier> {
        Arc::new(TestGpuVerifier {
            vendor: self.gpu_vendor.verifying_key(),
        })
    }
}
