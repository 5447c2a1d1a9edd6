//! The C2SP tlog-witness service.
//!
//! Implements `POST /add-checkpoint` of C2SP `tlog-witness` ("add-checkpoint"): the
//! body is `old <size>\n`, up to 63 base64 consistency-proof lines, an empty line and
//! a C2SP checkpoint note. The witness
//!
//! 1. answers `404` if the origin is not one of its configured logs,
//! 2. `403` if no signature by that log's key verifies (unknown keys are ignored),
//! 3. `400` if the old size exceeds the checkpoint size (or the body is malformed),
//! 4. `409` with `Content-Type: text/x.tlog.size` and its recorded size if `old` is
//!    not the size it last cosigned,
//! 5. `409` if `old` equals the checkpoint size but the root differs (a split view),
//! 6. `422` if the RFC 6962 §2.1.2 / RFC 9162 §2.1.4 consistency proof does not verify,
//!
//! and otherwise persists the new size and root (atomically with the check, under one
//! lock, written with `confide_svc::durable::write_atomic` before answering) and
//! returns a C2SP `tlog-cosignature` `cosignature/v1` line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use confide_note::{Checkpoint, KeyType, Note, SignerKey, VerifierKey};
use confide_svc::metrics::prometheus_client::metrics::gauge::Gauge;
use confide_svc::metrics::{CounterFamily, MetricsRegistry};
use confide_svc::problem::Problem;
use confide_tlog::Hash;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Most consistency proof lines (C2SP tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;

/// Errors of the witness service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing the state directory failed.
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    /// A key is invalid.
    #[error("key: {0}")]
    Key(#[from] confide_note::Error),
    /// The state file is unreadable.
    #[error("state file is corrupt: {0}")]
    State(String),
    /// Creating the key failed.
    #[error("key file: {0}")]
    KeyFile(String),
}

/// The witness's route templates, as given to its router.
pub const ROUTES: &[&str] = &["/add-checkpoint"];

/// The witness's host metrics (docs/operations.md): checkpoints by outcome and when it
/// last cosigned. Labels are fixed names; a log is never named.
#[derive(Debug, Clone, Default)]
pub struct WitnessMetrics {
    checkpoints: CounterFamily<1>,
    last_cosign: Gauge,
}

impl WitnessMetrics {
    /// Register the witness's metrics.
    pub fn new(reg: &mut MetricsRegistry) -> Self {
        Self {
            checkpoints: reg.counter_family_of(
                "witness_checkpoints",
                "add-checkpoint requests by outcome",
                "outcome",
                &[
                    "cosigned",
                    "malformed",
                    "unknown_log",
                    "bad_signature",
                    "size_conflict",
                    "root_conflict",
                    "bad_proof",
                    "failed",
                ],
            ),
            last_cosign: reg.gauge(
                "witness_last_cosign_timestamp_seconds",
                "Unix time of the latest cosignature (0: none since start)",
            ),
        }
    }

    fn outcome(&self, outcome: &'static str) {
        self.checkpoints
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LogRecord {
    size: u64,
    root: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    logs: BTreeMap<String, LogRecord>,
}

struct Shared {
    metrics: WitnessMetrics,
    key: SignerKey,
    logs: Vec<VerifierKey>,
    state: Mutex<StateFile>,
    state_path: PathBuf,
}

/// A witness opened from its directory.
pub struct Witness {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("key", &self.shared.key.verifier())
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// Open the witness in `dir` with key name `name` (creating `witness.key` on first
    /// start) for the logs whose ledger keys are `logs`.
    pub fn open(dir: &Path, name: &str, logs: Vec<VerifierKey>) -> Result<Self, Error> {
        Self::open_with_metrics(dir, name, logs, WitnessMetrics::default())
    }

    /// [`Witness::open`], counting into `metrics`.
    pub fn open_with_metrics(
        dir: &Path,
        name: &str,
        logs: Vec<VerifierKey>,
        metrics: WitnessMetrics,
    ) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)?;
        let key = confide_ledger::server::load_or_create_key(
            &dir.join("witness.key"),
            name,
            KeyType::CosignatureV1,
        )
        .map_err(|e| Error::KeyFile(e.to_string()))?;
        let state_path = dir.join("state.json");
        let state = match std::fs::read(&state_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::State(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile::default(),
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            shared: Arc::new(Shared {
                metrics,
                key,
                logs,
                state: Mutex::new(state),
                state_path,
            }),
        })
    }

    /// The witness's `cosignature/v1` verifier key.
    pub fn verifier_key(&self) -> VerifierKey {
        self.shared.key.verifier()
    }

    /// The HTTP router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/add-checkpoint", post(add_checkpoint))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self.shared.clone())
    }
}

fn problem(status: StatusCode, title: &str) -> Response {
    Problem::new(status, "about:blank", title).into_response()
}

struct Request {
    old: u64,
    proof: Vec<Hash>,
    note: Note,
    checkpoint: Checkpoint,
}

fn parse_request(body: &[u8]) -> Result<Request, &'static str> {
    let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8")?;
    let (first, mut rest) = text.split_once('\n').ok_or("missing old size line")?;
    let old_s = first
        .strip_prefix("old ")
        .ok_or("first line must be `old <size>`")?;
    if old_s.is_empty()
        || !old_s.bytes().all(|b| b.is_ascii_digit())
        || (old_s.len() > 1 && old_s.starts_with('0'))
    {
        return Err("old size is not a canonical decimal");
    }
    let old: u64 = old_s.parse().map_err(|_| "old size out of range")?;
    let mut proof = Vec::new();
    loop {
        let (line, r) = rest.split_once('\n').ok_or("missing empty line")?;
        rest = r;
        if line.is_empty() {
            break;
        }
        if proof.len() == MAX_PROOF_LINES {
            return Err("more than 63 proof lines");
        }
        let raw = B64.decode(line).map_err(|_| "proof line is not base64")?;
        proof.push(Hash::from_slice(&raw).map_err(|_| "proof hash must be 32 bytes")?);
    }
    let note = Note::parse(rest).map_err(|_| "malformed checkpoint note")?;
    let checkpoint = Checkpoint::parse(note.text()).map_err(|_| "malformed checkpoint")?;
    Ok(Request {
        old,
        proof,
        note,
        checkpoint,
    })
}

async fn add_checkpoint(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let (outcome, response) = check_and_cosign(&s, &body).await;
    s.metrics.outcome(outcome);
    response
}

/// The protocol steps; returns the outcome's fixed name with the answer, so every
/// return path is counted exactly once.
async fn check_and_cosign(s: &Shared, body: &[u8]) -> (&'static str, Response) {
    let req = match parse_request(body) {
        Ok(r) => r,
        Err(why) => return ("malformed", problem(StatusCode::BAD_REQUEST, why)),
    };
    let cp = &req.checkpoint;
    let log_keys: Vec<&VerifierKey> = s.logs.iter().filter(|k| k.name() == cp.origin()).collect();
    if log_keys.is_empty() {
        return (
            "unknown_log",
            problem(StatusCode::NOT_FOUND, "unknown log origin"),
        );
    }
    if !log_keys.iter().any(|k| k.verify(&req.note).is_ok()) {
        return (
            "bad_signature",
            problem(StatusCode::FORBIDDEN, "no valid signature by the log's key"),
        );
    }
    if req.old > cp.size() {
        return (
            "malformed",
            problem(
                StatusCode::BAD_REQUEST,
                "old size larger than checkpoint size",
            ),
        );
    }
    // Check and persist under one lock (the race the spec describes).
    let mut state = s.state.lock().await;
    let rec = state.logs.get(cp.origin()).cloned().unwrap_or_default();
    if req.old != rec.size {
        let mut r = (StatusCode::CONFLICT, format!("{}\n", rec.size)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/x.tlog.size"),
        );
        return ("size_conflict", r);
    }
    let stored_root = if rec.size == 0 {
        None
    } else {
        match B64
            .decode(&rec.root)
            .ok()
            .and_then(|b| Hash::from_slice(&b).ok())
        {
            Some(h) => Some(h),
            None => {
                return (
                    "failed",
                    problem(StatusCode::INTERNAL_SERVER_ERROR, "witness state damaged"),
                );
            }
        }
    };
    if req.old == cp.size() {
        if !req.proof.is_empty() {
            return (
                "malformed",
                problem(
                    StatusCode::BAD_REQUEST,
                    "proof must be empty for equal sizes",
                ),
            );
        }
        if stored_root.is_some_and(|r| r != *cp.root()) {
            return (
                "root_conflict",
                problem(StatusCode::CONFLICT, "same size, different root"),
            );
        }
    } else if req.old == 0 {
        if !req.proof.is_empty() {
            return (
                "malformed",
                problem(StatusCode::BAD_REQUEST, "proof must be empty from size 0"),
            );
        }
    } else if let Some(old_root) = stored_root
        && confide_tlog::verify_consistency(req.old, cp.size(), &req.proof, &old_root, cp.root())
            .is_err()
    {
        tracing::warn!(
            origin = cp.origin(),
            old = req.old,
            new = cp.size(),
            "inconsistent checkpoint refused"
        );
        return (
            "bad_proof",
            problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "consistency proof does not verify",
            ),
        );
    }
    let new = LogRecord {
        size: cp.size(),
        root: B64.encode(cp.root().0),
    };
    let previous = state.logs.insert(cp.origin().to_owned(), new);
    let bytes = match serde_json::to_vec_pretty(&*state) {
        Ok(b) => b,
        Err(_) => {
            return (
                "failed",
                problem(StatusCode::INTERNAL_SERVER_ERROR, "state encoding failed"),
            );
        }
    };
    let path = s.state_path.clone();
    if tokio::task::spawn_blocking(move || confide_svc::durable::write_atomic(&path, &bytes))
        .await
        .map_or(true, |r| r.is_err())
    {
        // Not persisted: undo in memory and cosign nothing.
        match previous {
            Some(p) => state.logs.insert(cp.origin().to_owned(), p),
            None => state.logs.remove(cp.origin()),
        };
        return (
            "failed",
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot persist witness state",
            ),
        );
    }
    drop(state);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match s.key.cosign(req.note.text(), now) {
        Ok(sig) => {
            let mut r = (StatusCode::OK, sig.to_line()).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            s.metrics
                .last_cosign
                .set(i64::try_from(now).unwrap_or(i64::MAX));
            ("cosigned", r)
        }
        Err(_) => (
            "failed",
            problem(StatusCode::INTERNAL_SERVER_ERROR, "cosigning failed"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confide_tlog::{MemoryTree, consistency_proof, leaf_hash};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    struct Env {
        _dir: tempfile::TempDir,
        w: Witness,
        log: SignerKey,
        tree: MemoryTree,
    }

    fn env() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let log = SignerKey::from_seed("log.test", KeyType::Ed25519, &[1; 32]).unwrap();
        let w = Witness::open(dir.path(), "w.test", vec![log.verifier()]).unwrap();
        let mut tree = MemoryTree::new();
        for i in 0..40u64 {
            tree.push(leaf_hash(&i.to_be_bytes()));
        }
        Env {
            _dir: dir,
            w,
            log,
            tree,
        }
    }

    fn note(key: &SignerKey, origin: &str, size: u64, root: Hash) -> String {
        let cp = Checkpoint::new(origin, size, root).unwrap();
        let mut n = Note::new(&cp.to_text()).unwrap();
        n.add_signature(key.sign_note(n.text()).unwrap()).unwrap();
        n.encode()
    }

    fn body(old: u64, proof: &[Hash], note: &str) -> String {
        let mut b = format!("old {old}\n");
        for h in proof {
            b.push_str(&B64.encode(h.0));
            b.push('\n');
        }
        b.push('\n');
        b.push_str(note);
        b
    }

    async fn post(w: &Witness, b: String) -> (StatusCode, String, String) {
        let resp = w
            .router()
            .oneshot(
                axum::http::Request::post("/add-checkpoint")
                    .body(axum::body::Body::from(b))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        (status, ct, text)
    }

    #[tokio::test]
    async fn protocol_status_codes() {
        let e = env();
        let t = &e.tree;
        let n10 = note(&e.log, "log.test", 10, t.root_at(10).unwrap());
        // First checkpoint from size 0: cosigned, and the cosignature verifies.
        let (s, _, text) = post(&e.w, body(0, &[], &n10)).await;
        assert_eq!(s, StatusCode::OK);
        let mut n = Note::parse(&n10).unwrap();
        n.add_signature(confide_note::NoteSignature::parse_line(&text).unwrap())
            .unwrap();
        assert!(e.w.verifier_key().verify(&n).unwrap().is_some());
        // Wrong old size: 409 with the recorded size.
        let n20 = note(&e.log, "log.test", 20, t.root_at(20).unwrap());
        let (s, ct, text) = post(&e.w, body(0, &[], &n20)).await;
        assert_eq!(
            (s, ct.as_str(), text.as_str()),
            (StatusCode::CONFLICT, "text/x.tlog.size", "10\n")
        );
        // Bad consistency proof: 422.
        let mut p = consistency_proof(t, 10, 20).unwrap();
        p[0].0[0] ^= 1;
        assert_eq!(
            post(&e.w, body(10, &p, &n20)).await.0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        // Good proof: 200.
        let p = consistency_proof(t, 10, 20).unwrap();
        assert_eq!(post(&e.w, body(10, &p, &n20)).await.0, StatusCode::OK);
        // Same size, other root (split view): 409.
        let fork = note(&e.log, "log.test", 20, Hash([3; 32]));
        assert_eq!(
            post(&e.w, body(20, &[], &fork)).await.0,
            StatusCode::CONFLICT
        );
        // Rollback to an older checkpoint: 409 (old size does not match).
        assert_eq!(
            post(&e.w, body(10, &[], &n10)).await.0,
            StatusCode::CONFLICT
        );
        // Unknown origin: 404. Bad signature: 403. Old > size: 400. Malformed: 400.
        let other = SignerKey::from_seed("other.test", KeyType::Ed25519, &[2; 32]).unwrap();
        assert_eq!(
            post(
                &e.w,
                body(
                    0,
                    &[],
                    &note(&other, "other.test", 1, t.root_at(1).unwrap())
                )
            )
            .await
            .0,
            StatusCode::NOT_FOUND
        );
        let impostor = SignerKey::from_seed("log.test", KeyType::Ed25519, &[9; 32]).unwrap();
        let n30 = note(&impostor, "log.test", 30, t.root_at(30).unwrap());
        assert_eq!(
            post(&e.w, body(20, &[], &n30)).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            post(&e.w, body(25, &[], &n20)).await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            post(&e.w, "old 01\n\n".to_string() + &n20).await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            post(&e.w, "nonsense".into()).await.0,
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn state_survives_restart() {
        let e = env();
        let n10 = note(&e.log, "log.test", 10, e.tree.root_at(10).unwrap());
        assert_eq!(post(&e.w, body(0, &[], &n10)).await.0, StatusCode::OK);
        let dir = e._dir.path().to_owned();
        let w2 = Witness::open(&dir, "w.test", vec![e.log.verifier()]).unwrap();
        assert_eq!(w2.verifier_key(), e.w.verifier_key());
        let (s, _, text) = post(&w2, body(0, &[], &n10)).await;
        assert_eq!((s, text.as_str()), (StatusCode::CONFLICT, "10\n"));
    }
}
