//! The ledger HTTP service and its sequencer.
//!
//! Routes:
//! - `POST /add` — body: canonical [`confide_release::LedgerEntry`] bytes; header
//!   [`crate::auth::HEADER`]. Answers `{"index": N, "tree_size": S}` once the entry is
//!   durable and covered by the published cosigned checkpoint of size `S`.
//! - `GET /checkpoint` — the current C2SP checkpoint note, ledger-signed and carrying
//!   the witness cosignatures collected for it (`Cache-Control: no-cache`).
//! - `GET /tile/<L>/<N>[.p/<W>]`, `GET /tile/entries/<N>[.p/<W>]` — C2SP tlog-tiles,
//!   immutable once published (`Cache-Control: public, max-age=31536000, immutable`).
//!
//! Tiles are computed from the in-memory tree of the *published* checkpoint only, so a
//! tile never reflects entries not yet covered by a signed checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use confide_note::{Checkpoint, KeyType, Note, NoteSignature, SignerKey, VerifierKey};
use confide_svc::metrics::prometheus_client::metrics::counter::Counter;
use confide_svc::metrics::prometheus_client::metrics::family::Family;
use confide_svc::metrics::prometheus_client::metrics::gauge::Gauge;
use confide_svc::metrics::{CounterFamily, MetricsRegistry};
use confide_svc::problem::Problem;
use confide_tiles::TileId;
use confide_tlog::{Hash, MemoryTree, leaf_hash};
use rand::RngCore;
use tokio::sync::{RwLock, mpsc, oneshot};

use crate::Error;
use crate::store::EntryLog;

/// Most adds collected into one batch.
pub const MAX_BATCH: usize = 256;
/// How long the sequencer waits for more adds after the first of a batch.
pub const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// Largest accepted `POST /add` body.
pub const MAX_ADD_BODY: usize = 16 * 1024;

/// The ledger's route templates, as given to its router.
pub const ROUTES: &[&str] = &["/add", "/checkpoint", "/tile/{*path}"];

type WitnessLabel = [(&'static str, String); 1];

/// The ledger's host metrics (docs/operations.md): its size, adds by outcome,
/// checkpoints, and how far each witness is behind. The `witness` label is the
/// witness's position in the `--witness` list ("0", "1", ...), so it is bounded by the
/// configuration and carries no address.
#[derive(Debug, Clone, Default)]
pub struct LedgerMetrics {
    entries: Gauge,
    adds: CounterFamily<1>,
    checkpoints: Counter,
    cosignatures: Gauge,
    witness_lag: Family<WitnessLabel, Gauge>,
    witness_failures: Family<WitnessLabel, Counter>,
}

impl LedgerMetrics {
    /// Register the ledger's metrics.
    pub fn new(reg: &mut MetricsRegistry) -> Self {
        Self {
            entries: reg.gauge("ledger_entries", "Entries in the log (its tree size)"),
            adds: reg.counter_family_of(
                "ledger_adds",
                "POST /add requests by outcome",
                "outcome",
                &[
                    "appended",
                    "duplicate",
                    "unauthorized",
                    "invalid_entry",
                    "failed",
                ],
            ),
            checkpoints: reg.counter("ledger_checkpoints", "Checkpoints signed and published"),
            cosignatures: reg.gauge(
                "ledger_checkpoint_cosignatures",
                "Witness cosignatures on the latest checkpoint",
            ),
            witness_lag: reg.gauge_family(
                "ledger_witness_lag_entries",
                "Entries the latest checkpoint has that a witness has not cosigned yet",
            ),
            witness_failures: reg.counter_family(
                "ledger_witness_failures",
                "Cosignature requests a witness failed or refused",
            ),
        }
    }

    fn add(&self, outcome: &'static str) {
        self.adds.get_or_create(&[("outcome", outcome)]).inc();
    }
}

fn witness_label(i: usize) -> WitnessLabel {
    [("witness", i.to_string())]
}

/// A witness the ledger asks for cosignatures.
#[derive(Debug, Clone)]
pub struct WitnessConfig {
    /// Base URL (the submission prefix); `/add-checkpoint` is appended.
    pub url: String,
    /// Its `cosignature/v1` verifier key.
    pub key: VerifierKey,
}

impl WitnessConfig {
    /// Parse `URL=VKEY`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let (url, vkey) = s
            .split_once('=')
            .ok_or(Error::Protocol("witness must be given as URL=VKEY"))?;
        let key = VerifierKey::parse(vkey)?;
        if key.key_type() != KeyType::CosignatureV1 {
            return Err(Error::Key(confide_note::Error::WrongKeyType(
                key.name().to_owned(),
            )));
        }
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            key,
        })
    }
}

/// Ledger configuration.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// State directory (keys, entries file, checkpoint).
    pub dir: PathBuf,
    /// Log origin (also the ledger key's name).
    pub origin: String,
    /// Witnesses to collect cosignatures from.
    pub witnesses: Vec<WitnessConfig>,
    /// Extra operator keys (vkeys) allowed to add, besides `DIR/operator.key`.
    pub operators: Vec<VerifierKey>,
    /// Ask the witnesses to cosign the current checkpoint again after this long without a
    /// new one, even when nothing was added. Devices whose policy sets a maximum
    /// cosignature age (`max_cosignature_age_secs`) would otherwise refuse an idle but
    /// healthy ledger; a ledger that stops doing this is exactly what they must notice.
    /// `None`: only new entries produce checkpoints.
    pub recosign_every: Option<Duration>,
}

struct Published {
    size: u64,
    note: Arc<String>,
}

struct LogState {
    tree: MemoryTree,
    entries: Vec<Arc<Vec<u8>>>,
    by_hash: HashMap<Hash, u64>,
    published: Published,
}

struct Shared {
    metrics: LedgerMetrics,
    origin: String,
    operators: Vec<VerifierKey>,
    state: RwLock<LogState>,
    tx: mpsc::Sender<AddRequest>,
}

struct AddRequest {
    entry: Vec<u8>,
    reply: oneshot::Sender<Result<(u64, u64), String>>,
}

/// A ledger opened from its directory, ready to serve.
pub struct Ledger {
    router: Router,
    verifier: VerifierKey,
    operator_key_file: PathBuf,
    size: u64,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("verifier", &self.verifier)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Load the signer key at `path`, creating it (with a fresh random seed) on first
/// start. The file holds the C2SP private key string and is written atomically.
pub fn load_or_create_key(path: &Path, name: &str, key_type: KeyType) -> Result<SignerKey, Error> {
    if !path.exists() {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let k = SignerKey::from_seed(name, key_type, &seed)?;
        seed.fill(0);
        confide_svc::durable::create_new_atomic(path, k.to_skey().as_bytes())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path)?);
    let k = SignerKey::parse(text.trim())?;
    if k.name() != name {
        return Err(Error::Key(confide_note::Error::InvalidName));
    }
    Ok(k)
}

impl Ledger {
    /// Open the ledger in `cfg.dir`: create keys on first start, recover the entries
    /// file, check the stored checkpoint against it, publish a checkpoint covering
    /// every durable entry, and start the sequencer.
    pub async fn open(cfg: LedgerConfig) -> Result<Self, Error> {
        Self::open_with_metrics(cfg, LedgerMetrics::default()).await
    }

    /// [`Ledger::open`], counting into `metrics`.
    pub async fn open_with_metrics(
        cfg: LedgerConfig,
        metrics: LedgerMetrics,
    ) -> Result<Self, Error> {
        std::fs::create_dir_all(&cfg.dir)?;
        let key = load_or_create_key(&cfg.dir.join("ledger.key"), &cfg.origin, KeyType::Ed25519)?;
        let operator_key_file = cfg.dir.join("operator.key");
        let operator = load_or_create_key(&operator_key_file, "operator", KeyType::Ed25519)?;
        let mut operators = vec![operator.verifier()];
        operators.extend(cfg.operators.iter().cloned());

        let rec = EntryLog::open(&cfg.dir.join("entries.log"))?;
        if rec.truncated_bytes > 0 {
            tracing::warn!(
                bytes = rec.truncated_bytes,
                "cut a torn final record from the entries file"
            );
        }
        let mut tree = MemoryTree::new();
        let mut by_hash = HashMap::new();
        let mut entries = Vec::with_capacity(rec.entries.len());
        for e in rec.entries {
            let h = leaf_hash(&e);
            let i = tree.push(h);
            by_hash.entry(h).or_insert(i);
            entries.push(Arc::new(e));
        }

        // The stored checkpoint must describe a prefix of the recovered entries:
        // every acknowledged entry is under it, so a shorter file means lost data.
        let cp_path = cfg.dir.join("checkpoint");
        let stored_size = match std::fs::read_to_string(&cp_path) {
            Ok(text) => {
                let note = Note::parse(&text)?;
                key.verifier().verify(&note)?;
                let cp = Checkpoint::parse(note.text())?;
                if cp.size() > tree.size() {
                    return Err(Error::CheckpointMismatch(format!(
                        "checkpoint covers {} entries, the entries file holds {}",
                        cp.size(),
                        tree.size()
                    )));
                }
                if tree.root_at(cp.size())? != *cp.root() {
                    return Err(Error::CheckpointMismatch("root differs".into()));
                }
                Some((cp.size(), text))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };

        let witnesses = WitnessClient::new(cfg.witnesses.clone(), metrics.clone())?;
        let size = tree.size();
        metrics.entries.set(i64::try_from(size).unwrap_or(i64::MAX));
        let published = match stored_size {
            Some((s, text)) if s == size => Published {
                size: s,
                note: Arc::new(text),
            },
            _ => {
                // Entries made durable before a crash, never acknowledged: publish them.
                let note = make_checkpoint(&key, &cfg.origin, &tree, &witnesses).await?;
                confide_svc::durable::write_atomic(&cp_path, note.as_bytes())?;
                Published {
                    size,
                    note: Arc::new(note),
                }
            }
        };

        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let shared = Arc::new(Shared {
            metrics,
            origin: cfg.origin.clone(),
            operators,
            state: RwLock::new(LogState {
                tree,
                entries,
                by_hash,
                published,
            }),
            tx,
        });
        let seq = Sequencer {
            shared: shared.clone(),
            log: rec.log,
            key: SignerKey::parse(key.to_skey().as_str())?,
            witnesses,
            checkpoint_path: cp_path,
            recosign_every: cfg.recosign_every.filter(|_| !cfg.witnesses.is_empty()),
        };
        tokio::spawn(seq.run(rx));

        let router = Router::new()
            .route("/add", post(add))
            .route("/checkpoint", get(checkpoint))
            .route("/tile/{*path}", get(tile))
            .layer(DefaultBodyLimit::max(MAX_ADD_BODY))
            .with_state(shared);
        Ok(Self {
            router,
            verifier: key.verifier(),
            operator_key_file,
            size,
        })
    }

    /// The ledger's verifier key.
    pub fn verifier_key(&self) -> &VerifierKey {
        &self.verifier
    }

    /// Path of the operator key created on first start.
    pub fn operator_key_file(&self) -> &Path {
        &self.operator_key_file
    }

    /// Entries recovered at open.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The HTTP router.
    pub fn router(&self) -> Router {
        self.router.clone()
    }
}

async fn make_checkpoint(
    key: &SignerKey,
    origin: &str,
    tree: &MemoryTree,
    witnesses: &WitnessClient,
) -> Result<String, Error> {
    let cp = Checkpoint::new(origin, tree.size(), tree.root())?;
    let mut note = Note::new(&cp.to_text())?;
    note.add_signature(key.sign_note(note.text())?)?;
    let cosigned = witnesses.cosign(&mut note, tree).await;
    witnesses.metrics.checkpoints.inc();
    witnesses
        .metrics
        .cosignatures
        .set(i64::try_from(cosigned).unwrap_or(i64::MAX));
    Ok(note.encode())
}

struct Sequencer {
    shared: Arc<Shared>,
    log: EntryLog,
    key: SignerKey,
    witnesses: WitnessClient,
    checkpoint_path: PathBuf,
    recosign_every: Option<Duration>,
}

impl Sequencer {
    async fn run(mut self, mut rx: mpsc::Receiver<AddRequest>) {
        // Far enough to never fire when re-cosigning is off.
        let idle = self
            .recosign_every
            .unwrap_or(Duration::from_secs(100 * 365 * 86_400));
        let mut next_recosign = tokio::time::Instant::now() + idle;
        loop {
            let first = tokio::select! {
                r = rx.recv() => match r {
                    Some(r) => r,
                    None => return,
                },
                () = tokio::time::sleep_until(next_recosign) => {
                    if let Err(e) = self.recosign().await {
                        // Not fatal: the next add or the next interval tries again; the
                        // devices' age limit is what notices a ledger that keeps failing.
                        tracing::warn!(error = %e, "re-cosigning the checkpoint failed");
                    }
                    next_recosign = tokio::time::Instant::now() + idle;
                    continue;
                }
            };
            next_recosign = tokio::time::Instant::now() + idle;
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(r)) => batch.push(r),
                    _ => break,
                }
            }
            if let Err(e) = self.commit(&mut batch).await {
                tracing::error!(error = %e, "batch failed; entries not acknowledged");
                for r in batch.drain(..) {
                    let _ = r.reply.send(Err("storage failure".into()));
                }
            }
        }
    }

    /// A fresh checkpoint for the current tree, unchanged, so the witnesses cosign it
    /// with a new timestamp (C2SP tlog-witness: `old` equal to the size is a valid
    /// request when the root is the one the witness knows).
    async fn recosign(&mut self) -> Result<(), Error> {
        let (note, size) = {
            let st = self.shared.state.read().await;
            let note =
                make_checkpoint(&self.key, &self.shared.origin, &st.tree, &self.witnesses).await?;
            (note, st.tree.size())
        };
        self.publish(note, size).await
    }

    /// Make `note` durable, then serve it: a checkpoint is never published before it
    /// would survive a crash.
    async fn publish(&mut self, note: String, size: u64) -> Result<(), Error> {
        let path = self.checkpoint_path.clone();
        let bytes = note.clone().into_bytes();
        tokio::task::block_in_place(|| confide_svc::durable::write_atomic(&path, &bytes))?;
        let mut st = self.shared.state.write().await;
        st.published = Published {
            size,
            note: Arc::new(note),
        };
        Ok(())
    }

    async fn commit(&mut self, batch: &mut Vec<AddRequest>) -> Result<(), Error> {
        // Assign indices; duplicates (already logged or twice in this batch) get the
        // existing index, so adds are idempotent.
        let mut answers: Vec<u64> = Vec::with_capacity(batch.len());
        let mut new_entries: Vec<Vec<u8>> = Vec::new();
        let mut new_hashes: HashMap<Hash, u64> = HashMap::new();
        {
            let st = self.shared.state.read().await;
            let mut next = st.tree.size();
            for r in batch.iter() {
                let h = leaf_hash(&r.entry);
                if let Some(&i) = st.by_hash.get(&h).or(new_hashes.get(&h)) {
                    answers.push(i);
                } else {
                    new_hashes.insert(h, next);
                    answers.push(next);
                    new_entries.push(r.entry.clone());
                    next += 1;
                }
            }
        }
        if !new_entries.is_empty() {
            // Durable first: write and fsync the records before signing anything.
            tokio::task::block_in_place(|| self.log.append_batch(&new_entries))?;
            let mut st = self.shared.state.write().await;
            for e in new_entries {
                let h = leaf_hash(&e);
                let i = st.tree.push(h);
                st.by_hash.entry(h).or_insert(i);
                st.entries.push(Arc::new(e));
            }
            self.shared
                .metrics
                .entries
                .set(i64::try_from(st.tree.size()).unwrap_or(i64::MAX));
        }
        // Only the sequencer writes the state, so holding a read guard while the
        // witnesses answer blocks no reader and needs no copy of the tree.
        let (note, size) = {
            let st = self.shared.state.read().await;
            let size = st.tree.size();
            if st.published.size == size {
                (None, size)
            } else {
                let note =
                    make_checkpoint(&self.key, &self.shared.origin, &st.tree, &self.witnesses)
                        .await?;
                (Some(note), size)
            }
        };
        if let Some(note) = note {
            self.publish(note, size).await?;
        }
        // Counted once durable and published: a failed batch is counted as `failed`
        // by the handlers that get the error.
        let appended = new_hashes.len() as u64;
        let m = &self.shared.metrics;
        m.adds
            .get_or_create(&[("outcome", "appended")])
            .inc_by(appended);
        m.adds
            .get_or_create(&[("outcome", "duplicate")])
            .inc_by((batch.len() as u64).saturating_sub(appended));
        for (r, i) in batch.drain(..).zip(answers) {
            let _ = r.reply.send(Ok((i, size)));
        }
        Ok(())
    }
}

/// Talks C2SP tlog-witness to the configured witnesses.
struct WitnessClient {
    http: reqwest::Client,
    witnesses: Vec<(WitnessConfig, tokio::sync::Mutex<u64>)>,
    metrics: LedgerMetrics,
}

impl WitnessClient {
    fn new(witnesses: Vec<WitnessConfig>, metrics: LedgerMetrics) -> Result<Self, Error> {
        // Every configured witness has its series from the start, at zero.
        for i in 0..witnesses.len() {
            let _ = metrics.witness_lag.get_or_create(&witness_label(i));
            let _ = metrics.witness_failures.get_or_create(&witness_label(i));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            http,
            witnesses: witnesses
                .into_iter()
                .map(|w| (w, tokio::sync::Mutex::new(0)))
                .collect(),
            metrics,
        })
    }

    /// Ask every witness to cosign `note` (already ledger-signed) and add each valid
    /// cosignature to it. A witness that fails is logged and skipped: the checkpoint
    /// is still published, carrying the cosignatures that were collected. Returns how
    /// many witnesses cosigned.
    async fn cosign(&self, note: &mut Note, tree: &MemoryTree) -> usize {
        let body_note = note.encode();
        let futs = self
            .witnesses
            .iter()
            .map(|(w, known)| self.ask(w, known, &body_note, tree));
        let results = futures::future::join_all(futs).await;
        let mut cosigned = 0;
        for (i, ((w, known), r)) in self.witnesses.iter().zip(results).enumerate() {
            let label = witness_label(i);
            match r {
                Ok(lines) => {
                    let mut valid = false;
                    for line in lines {
                        let Ok(sig) = NoteSignature::parse_line(&line) else {
                            continue;
                        };
                        let mut probe = note.clone();
                        if probe.add_signature(sig.clone()).is_ok() && w.key.verify(&probe).is_ok()
                        {
                            valid |= note.add_signature(sig).is_ok();
                        }
                    }
                    if valid {
                        cosigned += 1;
                    } else {
                        self.metrics.witness_failures.get_or_create(&label).inc();
                    }
                }
                Err(e) => {
                    tracing::warn!(witness = %w.url, error = %e, "no cosignature");
                    self.metrics.witness_failures.get_or_create(&label).inc();
                }
            }
            // What the witness last cosigned (or told us it has), against our size.
            let lag = tree.size().saturating_sub(*known.lock().await);
            self.metrics
                .witness_lag
                .get_or_create(&label)
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
        cosigned
    }

    async fn ask(
        &self,
        w: &WitnessConfig,
        known: &tokio::sync::Mutex<u64>,
        note: &str,
        tree: &MemoryTree,
    ) -> Result<Vec<String>, Error> {
        let mut known = known.lock().await;
        let size = tree.size();
        // At most two rounds: the first may teach us the witness's size (409).
        for _ in 0..2 {
            let old = (*known).min(size);
            let mut body = format!("old {old}\n");
            if old > 0 && old < size {
                for h in confide_tlog::consistency_proof(tree, old, size)? {
                    body.push_str(&B64.encode(h.0));
                    body.push('\n');
                }
            }
            body.push('\n');
            body.push_str(note);
            let resp = self
                .http
                .post(format!("{}/add-checkpoint", w.url))
                .body(body)
                .send()
                .await?;
            let status = resp.status();
            let ctype = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let text = resp.text().await?;
            if status == StatusCode::OK {
                *known = size;
                return Ok(text.lines().map(str::to_owned).collect());
            }
            if status == StatusCode::CONFLICT && ctype.starts_with("text/x.tlog.size") {
                let s: u64 = text
                    .trim()
                    .parse()
                    .map_err(|_| Error::Protocol("bad text/x.tlog.size body"))?;
                if s > size {
                    return Err(Error::Protocol("witness has seen a larger tree than ours"));
                }
                *known = s;
                continue;
            }
            return Err(Error::Status {
                status: status.as_u16(),
                body: text.chars().take(200).collect(),
            });
        }
        Err(Error::Protocol("witness kept answering 409"))
    }
}

fn problem(status: StatusCode, title: &str) -> Response {
    Problem::new(status, "about:blank", title).into_response()
}

async fn add(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(auth) = headers
        .get(crate::auth::HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        s.metrics.add("unauthorized");
        return problem(StatusCode::UNAUTHORIZED, "missing Confide-Auth header");
    };
    if let Err(e) = crate::auth::verify(auth, &s.operators, &s.origin, now_unix(), &body) {
        let status = match e {
            crate::auth::AuthError::Malformed | crate::auth::AuthError::Stale => {
                StatusCode::UNAUTHORIZED
            }
            _ => StatusCode::FORBIDDEN,
        };
        s.metrics.add("unauthorized");
        return problem(status, &e.to_string());
    }
    if let Err(e) = confide_release::LedgerEntry::decode(&body) {
        s.metrics.add("invalid_entry");
        return Problem::new(
            StatusCode::BAD_REQUEST,
            "about:blank",
            "invalid ledger entry",
        )
        .with_detail(e.to_string())
        .into_response();
    }
    let (reply, rx) = oneshot::channel();
    if s.tx
        .send(AddRequest {
            entry: body.to_vec(),
            reply,
        })
        .await
        .is_err()
    {
        s.metrics.add("failed");
        return problem(StatusCode::SERVICE_UNAVAILABLE, "sequencer stopped");
    }
    match rx.await {
        Ok(Ok((index, tree_size))) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "index": index, "tree_size": tree_size }).to_string(),
        )
            .into_response(),
        _ => {
            s.metrics.add("failed");
            problem(StatusCode::SERVICE_UNAVAILABLE, "entry not stored")
        }
    }
}

async fn checkpoint(State(s): State<Arc<Shared>>) -> Response {
    let note = s.state.read().await.published.note.clone();
    let mut r = (StatusCode::OK, note.as_str().to_owned()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn tile(State(s): State<Arc<Shared>>, UrlPath(path): UrlPath<String>) -> Response {
    let Ok(id) = TileId::parse_path(&format!("tile/{path}")) else {
        return problem(StatusCode::NOT_FOUND, "not a tile path");
    };
    let st = s.state.read().await;
    let size = st.published.size;
    // The tile must exist, at this width or wider, in the published tree.
    let base = u32::from(id.level.unwrap_or(0)) * u32::from(confide_tiles::TILE_HEIGHT);
    let available = if base >= 64 { 0 } else { size >> base };
    let end = id
        .index
        .saturating_mul(confide_tiles::TILE_WIDTH)
        .saturating_add(u64::from(id.width));
    if end > available {
        return problem(StatusCode::NOT_FOUND, "tile not published");
    }
    let body = match id.level {
        Some(_) => confide_tiles::hash_tile(&st.tree, &id),
        None => {
            let start = id.index * confide_tiles::TILE_WIDTH;
            let slice: Vec<&[u8]> = (start..end)
                .filter_map(|i| st.entries.get(i as usize).map(|e| e.as_slice()))
                .collect();
            confide_tiles::encode_entry_bundle(&slice)
        }
    };
    drop(st);
    match body {
        Ok(b) => {
            let mut r = (StatusCode::OK, b).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            // Tiles (full or partial) never change once published (C2SP tlog-tiles).
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            r
        }
        Err(_) => problem(StatusCode::INTERNAL_SERVER_ERROR, "tile unavailable"),
    }
}
