//! Processing receipts on the device: checked against the session the device verified,
//! kept (unless `[state] keep_receipts = false`), and verifiable later, offline, by the
//! person or by anyone they hand a receipt file to.
//!
//! The node signs each answer's receipt with its attested certificate key
//! (`confide_session::receipt`). In a session the device checks that:
//!
//! - the body is canonical and its request and answer digests are those of what this
//!   device sent and received;
//! - it names the certificate, release (ledger index, platform, measurement, model and
//!   configuration digests) this session verified;
//! - its time lies between the session's verification and now (allowing 300 s of clock
//!   difference), and inside the certificate's validity (so it can be verified offline
//!   later);
//! - the signature verifies with the session's certificate key.
//!
//! A receipt *file* holds the body, the signature and the node's certificate (with its
//! evidence and stapled ledger bundle), plus the ledger origin. [`verify_file`] re-runs
//! every RA-TLS certificate check as of the receipt's time under the person's trust
//! policy, then the signature, then the body against the verified certificate, and
//! optionally against a release manifest the auditor expects. It contacts nobody.
//!
//! A receipt reveals nothing about content: it holds digests, which say only whether a
//! given request and answer are the ones it covers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use confide_ratls::rustls::pki_types::{CertificateDer, UnixTime};
use confide_ratls::{NodePolicy, NodeVerifier, VerifiedNode};
use confide_release::{LedgerTrust, ReleaseManifest};
use confide_session::receipt::ReceiptBody;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::verify::evidence_verifier;

const FILE_VERSION: u32 = 1;
/// Clock difference tolerated between node and device when checking a receipt's time.
const SKEW_SECS: u64 = 300;

/// Why a receipt was refused. Each names the one thing that was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The node answered without a receipt.
    #[error("the node sent no receipt with its answer")]
    Missing,
    /// The body is not a canonical receipt body.
    #[error("malformed receipt: {0}")]
    Malformed(#[from] confide_session::receipt::ReceiptError),
    /// The receipt file is not a receipt file (JSON, base64, version).
    #[error("not a Confide receipt file: {0}")]
    NotAReceiptFile(&'static str),
    /// A field of the receipt differs from what it must equal.
    #[error("the receipt's {field} is not the one {against}")]
    Mismatch {
        /// Which field (`request digest`, `measurement`, ...).
        field: &'static str,
        /// What it was compared with (`this session verified`, `the expected release
        /// lists`, ...).
        against: &'static str,
    },
    /// The receipt's time is outside the session (or its certificate's validity).
    #[error("the receipt's time is outside the session it belongs to")]
    Time,
    /// The signature does not verify with the certificate key.
    #[error("the receipt's signature does not verify with the node's certificate key")]
    BadSignature,
    /// The node's certificate does not pass the RA-TLS checks as of the receipt's time.
    #[error("the node certificate in the receipt is not trusted: {0}")]
    Certificate(String),
}

/// What a receipt file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptFile {
    version: u32,
    /// The canonical body (signed).
    body: String,
    /// The signature, hex (DER ECDSA P-256 SHA-256).
    signature: String,
    /// The node certificate, base64 DER.
    certificate: String,
    /// The ledger origin the release was proven in; must equal the origin of the
    /// checkpoint in the certificate's stapled bundle.
    ledger_origin: String,
}

/// A receipt that passed every check: its body, and where it was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// The signed body.
    pub body: ReceiptBody,
    /// The ledger origin.
    pub ledger_origin: String,
    /// The file it was kept in, if kept.
    pub path: Option<PathBuf>,
}

impl VerifiedReceipt {
    /// A short id: the receipt's time and the start of its answer digest.
    pub fn id(&self) -> String {
        format!(
            "{}-{}",
            self.body.time,
            &hex::encode(self.body.response_sha256)[..12]
        )
    }
}

/// What the device knows about the answer it received, to check a receipt against.
#[derive(Debug)]
pub struct Expected<'a> {
    /// SHA-256 of the request frame's payload this device sent.
    pub request_sha256: [u8; 32],
    /// `ResponseDigest` of the chunks this device received.
    pub response_sha256: [u8; 32],
    /// The node this session verified.
    pub node: &'a VerifiedNode,
    /// When the session was verified (Unix seconds).
    pub verified_at: u64,
    /// Now (Unix seconds).
    pub now: u64,
}

fn mismatch(field: &'static str, against: &'static str) -> ReceiptError {
    ReceiptError::Mismatch { field, against }
}

/// The body's release fields against a verified node.
fn check_node(
    b: &ReceiptBody,
    node: &VerifiedNode,
    against: &'static str,
) -> Result<(), ReceiptError> {
    if b.certificate_sha256 != *node.certificate_sha256() {
        return Err(mismatch("certificate", against));
    }
    if b.ledger_index != node.ledger_index() {
        return Err(mismatch("ledger index", against));
    }
    if b.platform != node.platform() {
        return Err(mismatch("platform", against));
    }
    if b.measurement != node.measurement() {
        return Err(mismatch("measurement", against));
    }
    if b.model_digest.as_deref() != node.model_digest() {
        return Err(mismatch("model digest", against));
    }
    if b.config_digest.as_deref() != node.config_digest() {
        return Err(mismatch("configuration digest", against));
    }
    Ok(())
}

/// Check a receipt from an `End` frame against the session (see the module docs):
/// `certificate` is the one the session's handshake verified.
pub fn check_in_session(
    body: &str,
    signature_hex: &str,
    certificate: &CertificateDer<'_>,
    expected: &Expected<'_>,
) -> Result<ReceiptBody, ReceiptError> {
    let b = ReceiptBody::parse(body)?;
    if b.request_sha256 != expected.request_sha256 {
        return Err(mismatch("request digest", "this device sent"));
    }
    if b.response_sha256 != expected.response_sha256 {
        return Err(mismatch("answer digest", "this device received"));
    }
    check_node(&b, expected.node, "this session verified")?;
    if b.time.saturating_add(SKEW_SECS) < expected.verified_at
        || b.time > expected.now.saturating_add(SKEW_SECS)
    {
        return Err(ReceiptError::Time);
    }
    // Offline verification checks the certificate as of the receipt's time, so a receipt
    // from after the certificate's validity could never be proven later: refuse it now.
    let (not_before, not_after) = confide_ratls::certificate_validity(certificate)
        .map_err(|e| ReceiptError::Certificate(e.to_string()))?;
    if b.time < not_before || b.time > not_after {
        return Err(ReceiptError::Time);
    }
    let sig = hex::decode(signature_hex).map_err(|_| ReceiptError::BadSignature)?;
    confide_ratls::verify_certificate_signature(certificate, body.as_bytes(), &sig)
        .map_err(|_| ReceiptError::BadSignature)?;
    Ok(b)
}

/// Keep a checked receipt in `dir`; returns the file.
pub(crate) fn store(
    dir: &Path,
    body: &ReceiptBody,
    signature_hex: &str,
    certificate: &CertificateDer<'_>,
    ledger_origin: &str,
) -> Result<PathBuf, Error> {
    let file = ReceiptFile {
        version: FILE_VERSION,
        body: body.encode(),
        signature: signature_hex.to_owned(),
        certificate: base64::engine::general_purpose::STANDARD.encode(certificate.as_ref()),
        ledger_origin: ledger_origin.to_owned(),
    };
    // Time, answer and request digests: two receipts share a name only if they are the
    // same request and answer in the same second, and even then none is overwritten.
    let stem = format!(
        "{}-{}-{}",
        body.time,
        &hex::encode(body.response_sha256)[..12],
        &hex::encode(body.request_sha256)[..8]
    );
    let mut path = dir.join(format!("{stem}.json"));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = dir.join(format!("{stem}-{n}.json"));
    }
    crate::state::write_json(&path, &file)?;
    Ok(path)
}

/// The receipt files in `dir`, oldest first (a missing directory: none).
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::State {
                path: dir.to_owned(),
                detail: e.to_string(),
            });
        }
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    out.sort();
    Ok(out)
}

/// Read a receipt file's body without verifying anything (for listing).
pub fn peek(path: &Path) -> Result<(ReceiptBody, String), Error> {
    let f = read_file(path)?;
    let b = ReceiptBody::parse(&f.body).map_err(|e| Error::Receipt(e.into()))?;
    Ok((b, f.ledger_origin))
}

fn read_file(path: &Path) -> Result<ReceiptFile, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::State {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    let f: ReceiptFile = serde_json::from_slice(&bytes)
        .map_err(|_| Error::Receipt(ReceiptError::NotAReceiptFile("not receipt JSON")))?;
    if f.version != FILE_VERSION {
        return Err(Error::Receipt(ReceiptError::NotAReceiptFile(
            "unknown receipt file version",
        )));
    }
    Ok(f)
}

/// Verify a receipt file offline under `policy` and the ledger `trust` (see the module
/// docs). With `expect`, the receipt must also name exactly that release.
pub fn verify_file(
    path: &Path,
    policy: &confide_attest::TrustPolicy,
    trust: &LedgerTrust,
    expect: Option<&ReleaseManifest>,
) -> Result<VerifiedReceipt, Error> {
    let f = read_file(path)?;
    let body = ReceiptBody::parse(&f.body).map_err(|e| Error::Receipt(e.into()))?;
    let cert = base64::engine::general_purpose::STANDARD
        .decode(&f.certificate)
        .map_err(|_| Error::Receipt(ReceiptError::NotAReceiptFile("certificate is not base64")))?;
    let cert = CertificateDer::from(cert);
    let sig = hex::decode(&f.signature)
        .map_err(|_| Error::Receipt(ReceiptError::NotAReceiptFile("signature is not hex")))?;
    if <[u8; 32]>::from(Sha256::digest(cert.as_ref())) != body.certificate_sha256 {
        return Err(Error::Receipt(mismatch(
            "certificate",
            "the receipt file carries",
        )));
    }
    let mut node_policy = NodePolicy::new(Duration::from_secs(policy.freshness_secs));
    node_policy.require_gpu = policy.require_gpu;
    node_policy.allow_unattested_model = policy.allow_unattested_model;
    // The policy's max_certificate_age_secs is not applied: it judged the certificate at
    // the handshake, while a receipt is signed when its answer ends, possibly later; the
    // default (the freshness window, the certificate's longest life) still bounds it.
    // No rollback state offline: the stapled bundle is verified on its own (signature,
    // witness quorum, inclusion), as of the receipt's time.
    let verifier = NodeVerifier::new(
        node_policy,
        Arc::new(evidence_verifier(policy.clone(), Arc::default())),
        Arc::new(confide_verify::InclusionPipeline::new(trust.clone(), None)),
    );
    let at = UnixTime::since_unix_epoch(Duration::from_secs(body.time));
    let node = verifier
        .verify_signed(&cert, f.body.as_bytes(), &sig, at)
        .map_err(|e| {
            Error::Receipt(match e {
                confide_ratls::RatlsError::SignatureInvalid => ReceiptError::BadSignature,
                confide_ratls::RatlsError::CertificateExpired
                | confide_ratls::RatlsError::CertificateNotYetValid => ReceiptError::Time,
                other => ReceiptError::Certificate(other.to_string()),
            })
        })?;
    check_node(&body, &node, "the node certificate attests").map_err(Error::Receipt)?;
    // The origin is not in the signed body; it must be the log the stapled bundle was
    // verified in, so no byte of the file goes unchecked.
    if f.ledger_origin != node.checkpoint().origin {
        return Err(Error::Receipt(mismatch(
            "ledger origin",
            "the node certificate's ledger bundle names",
        )));
    }
    if let Some(m) = expect {
        let against = "the expected release lists";
        let fail = |field| Err(Error::Receipt(mismatch(field, against)));
        if body.platform != m.platform.name() {
            return fail("platform");
        }
        if body.measurement != m.measurement {
            return fail("measurement");
        }
        if body.model_digest.as_deref() != Some(&m.model_digest[..]) {
            return fail("model digest");
        }
        if body.config_digest.as_deref() != Some(&m.config_digest[..]) {
            return fail("configuration digest");
        }
    }
    Ok(VerifiedReceipt {
        body,
        ledger_origin: f.ledger_origin,
        path: Some(path.to_owned()),
    })
}
