//! The node side of `docs/sessions.md`: TLS records in, TLS records out.
//!
//! | request | body | response |
//! |---|---|---|
//! | `POST /sessions` + header `confide-session-id` | TLS records | `200`, TLS records |
//! | `POST /sessions/<id>` | TLS records | `200`, TLS records, streamed (chunked) |
//! | `DELETE /sessions/<id>` | empty | `204` |
//! | `GET /health` | — | `{"status":"ok","platform":..,"release_index":..}` |
//!
//! Each session owns one `confide_session::ServerEngine` (a rustls server connection:
//! TLS 1.3 only, RA-TLS certificate, no resumption, no 0-RTT), driven without sockets:
//! the request body goes to `put_incoming`, the response is what `get_outgoing` yields.
//! Each complete `Request` frame is run on the engine and the answer streams on a fixed
//! tick ([`ServiceSettings::stream_tick`]): every tick the text produced since the last
//! one goes out as `StreamChunk` frames plus a padding frame, one TLS write padded to a
//! bucket ([`STREAM_MIN_BUCKET`]), and a tick with no new text sends padding alone; one
//! `End` frame, padded to [`END_MIN_BUCKET`], closes each request (see [`crate::frames`]).
//! So the size and timing of what leaves the node follow the bucket and the tick, not
//! the tokens (`docs/sessions.md`, "Traffic shape").
//!
//! Replayed or reordered records fail the TLS record layer's AEAD with its implicit
//! sequence number (RFC 8446 section 5.3), which is fatal: the node answers with the
//! alert and forgets the session. Idle sessions expire and their state is dropped
//! (rustls wipes its traffic secrets on drop; our buffers are `Zeroizing`).
//!
//! There are no other routes: no debug, metrics or shell endpoints.
//!
//! Node to node ([`NodeService::peer_router`], served on its own listener): the same
//! routes, but every session is mutual RA-TLS. The caller must present an attested
//! certificate whose evidence and stapled ledger bundle pass the node's peer policy
//! (`confide_verify` pipeline, the one devices use); a caller without a certificate
//! gets the TLS `certificate_required` alert and its session is dropped. Peer sessions
//! carry [`crate::frames::PeerRequest`]s (a prompt another attested node built), device
//! sessions carry features; neither route accepts the other's sessions or requests.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use confide_engine::features::{
    Limits, WholeSentences, feature_params, suggest_prompt, summarize_prompt,
};
use confide_engine::{ChatMessage, Engine, EngineError, GenerateParams, StreamEvent};
use confide_ratls::rustls::pki_types::UnixTime;
use confide_ratls::{
    CredentialSnapshot, ManualClock, NodeCertResolver, NodeVerifier, server_config,
};
use confide_session::receipt::{ReceiptBody, ResponseDigest, request_digest};
use confide_session::{Frame, FrameKind, ServerEngine, SessionLimits};
use confide_svc::problem::Problem;
use futures::StreamExt as _;
use http::{HeaderMap, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::frames::{AppRequest, EndInfo, ErrorKind, Feature, PeerRequest, SignedReceipt, chunk};

/// Header carrying the gateway-chosen session id on `POST /sessions`.
pub const SESSION_ID_HEADER: &str = "confide-session-id";
/// Largest request body (TLS records) the node accepts in one call.
pub const MAX_BODY: usize = 256 * 1024;
/// Largest application frame either side may send (a request within the feature
/// limits is far smaller).
const MAX_FRAME: usize = 128 * 1024;
/// Default interval at which a streamed answer leaves the node (see [`ServiceSettings`]).
pub const DEFAULT_STREAM_TICK: Duration = Duration::from_millis(200);
/// The shortest tick the node accepts: shorter ticks approach one write per token.
pub const MIN_STREAM_TICK: Duration = Duration::from_millis(20);
/// The longest tick the node accepts (the added latency is up to one tick).
pub const MAX_STREAM_TICK: Duration = Duration::from_secs(2);
/// Bucket floor of a tick's unit: 246 bytes of text (one chunk frame and the padding
/// frame's header take 10) fit, which at the default tick is over 1 KiB of text a
/// second, more than a model streams. More text in one tick takes the next power of two.
pub const STREAM_MIN_BUCKET: usize = 256;
/// Bucket floor of an `End` unit: a receipt-bearing `End` is about 800 bytes whatever
/// the platform, so every success and every error fills the same 2 KiB.
pub const END_MIN_BUCKET: usize = 2048;
/// Most text in one chunk frame (keeps a frame within one TLS record and far below
/// the frame limit, whatever a tick holds).
const MAX_CHUNK_TEXT: usize = 16 * 1024 - 64;

/// Settings of the session service.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSettings {
    /// Sessions idle longer than this are dropped.
    pub idle_timeout: Duration,
    /// Most concurrent sessions.
    pub max_sessions: usize,
    /// Node-wide cap on generated tokens per request.
    pub max_tokens: u32,
    /// Feature input limits.
    pub limits: Limits,
    /// How often a streamed answer leaves the node (clamped to
    /// [`MIN_STREAM_TICK`]..=[`MAX_STREAM_TICK`]): text is held until the next tick,
    /// and every tick sends one padded unit, with text or without, so the timing of
    /// the answer says when the tick fired, not when a token was made.
    pub stream_tick: Duration,
}

impl ServiceSettings {
    /// The tick the node streams on: [`ServiceSettings::stream_tick`] clamped to
    /// [`MIN_STREAM_TICK`]..=[`MAX_STREAM_TICK`] (what the configuration digest names).
    pub fn effective_stream_tick(&self) -> Duration {
        self.stream_tick.clamp(MIN_STREAM_TICK, MAX_STREAM_TICK)
    }
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(120),
            max_sessions: 1024,
            max_tokens: 256,
            limits: Limits::default(),
            stream_tick: DEFAULT_STREAM_TICK,
        }
    }
}

struct Session {
    engine: ServerEngine,
    /// The credential this session's handshake presented: receipts are signed with its
    /// key, so they verify against the certificate the device checked even after the
    /// node has refreshed its certificate.
    signer: CredentialSnapshot,
    /// The ledger index of the release that credential's stapled bundle proves: what
    /// this session's receipts name, whatever the node staples later.
    ledger_index: u64,
    /// A node-to-node session (mutual RA-TLS, peer requests) rather than a device's.
    mutual: bool,
}

/// What the node attests about itself, repeated in every receipt it signs (the device
/// checks each value against the certificate it verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFacts {
    /// The attested measurement.
    pub measurement: Vec<u8>,
    /// The model digest (as attested and listed).
    pub model_digest: Option<Vec<u8>>,
    /// The configuration digest (as attested and listed).
    pub config_digest: Option<Vec<u8>>,
}

struct Entry {
    session: Arc<tokio::sync::Mutex<Session>>,
    /// Milliseconds since the service epoch of the last use.
    touched: Arc<AtomicU64>,
}

/// The node's session table and engine.
pub struct NodeService {
    resolver: Arc<NodeCertResolver>,
    clock: Arc<ManualClock>,
    release: ReleaseFacts,
    engine: Arc<dyn Engine>,
    settings: ServiceSettings,
    table: Mutex<HashMap<String, Entry>>,
    epoch: Instant,
    platform: &'static str,
    release_index: AtomicU64,
    /// How callers of the node-to-node route are verified; unset, that route refuses all.
    peer: OnceLock<NodeVerifier>,
}

impl std::fmt::Debug for NodeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeService")
            .field("platform", &self.platform)
            .field("sessions", &self.session_count())
            .finish_non_exhaustive()
    }
}

fn now_tls() -> UnixTime {
    UnixTime::since_unix_epoch(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

fn problem(status: StatusCode, name: &str, title: &str) -> Response {
    Problem::new(status, &format!("urn:confide:problem:{name}"), title).into_response()
}

fn valid_id(id: &str) -> bool {
    (16..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Everything the session engine wants to send now.
fn take_output(engine: &mut ServerEngine) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = engine.get_outgoing() {
        if b.is_empty() {
            break;
        }
        out.extend_from_slice(&b);
    }
    out
}

/// Seals `frames` and padding into the session as one write of at least `min_bucket`
/// bytes ([`confide_session::padded_len`]) and returns the records to send.
fn seal_padded(engine: &mut ServerEngine, frames: &[&Frame], min_bucket: usize) -> Vec<u8> {
    // A send error leaves the engine failed; whatever it queued (an alert) still goes out.
    let _ = engine.send_padded(frames, min_bucket);
    take_output(engine)
}

/// Seals an `End` frame padded to [`END_MIN_BUCKET`]: a success with its receipt and
/// every error kind look the same on the wire.
fn seal_end(engine: &mut ServerEngine, end: &EndInfo) -> Vec<u8> {
    seal_padded(engine, &[&end.to_frame()], END_MIN_BUCKET)
}

/// Takes everything in `pending` as `StreamChunk` frames, each at most
/// [`MAX_CHUNK_TEXT`] bytes and cut only between characters.
fn take_chunks(pending: &mut Zeroizing<String>) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut rest: &str = pending;
    while !rest.is_empty() {
        let mut cut = rest.len().min(MAX_CHUNK_TEXT);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        frames.push(chunk(&rest[..cut]));
        rest = &rest[cut..];
    }
    pending.clear();
    frames
}

fn limits() -> SessionLimits {
    SessionLimits {
        max_frame_payload: MAX_FRAME,
        max_incoming_batch: MAX_BODY,
        max_inbox: 4 * MAX_FRAME,
    }
}

fn engine_error_kind(e: &EngineError) -> ErrorKind {
    match e {
        EngineError::FieldTooLong { .. }
        | EngineError::TooManyMessages { .. }
        | EngineError::RequestTooLarge { .. } => ErrorKind::TooLarge,
        EngineError::EmptyConversation
        | EngineError::EmptyField { .. }
        | EngineError::ControlCharacters { .. }
        | EngineError::InvalidParameter { .. } => ErrorKind::BadRequest,
        // Every sequence busy and the queue full: the device may try again later.
        EngineError::Busy { .. } => ErrorKind::Unavailable,
        _ => ErrorKind::Engine,
    }
}

impl NodeService {
    /// A service presenting the credential `resolver` serves (refreshed by the node; each
    /// session keeps the one its handshake used), with TLS time from `clock`, generating
    /// with `engine`, and signing receipts that name `release`.
    pub fn new(
        resolver: Arc<NodeCertResolver>,
        clock: Arc<ManualClock>,
        engine: Arc<dyn Engine>,
        settings: ServiceSettings,
        platform: &'static str,
        release_index: u64,
        release: ReleaseFacts,
    ) -> Arc<Self> {
        Arc::new(Self {
            resolver,
            clock,
            release,
            engine,
            settings,
            table: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            platform,
            release_index: AtomicU64::new(release_index),
            peer: OnceLock::new(),
        })
    }

    /// Accept node-to-node sessions from callers `verifier` accepts (set once; returns
    /// false if a verifier was already set).
    pub fn set_peer_verifier(&self, verifier: NodeVerifier) -> bool {
        self.peer.set(verifier).is_ok()
    }

    /// The node-to-node routes (mutual RA-TLS; serve them on their own listener): the
    /// session contract of [`NodeService::router`], for attested callers only.
    pub fn peer_router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/sessions", post(open_peer_session))
            .route(
                "/sessions/{id}",
                post(continue_peer_session).delete(close_peer_session),
            )
            .route("/health", get(health))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(Arc::clone(self))
    }

    /// The HTTP routes of the session contract (and nothing else).
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/sessions", post(open_session))
            .route(
                "/sessions/{id}",
                post(continue_session).delete(close_session),
            )
            .route("/health", get(health))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(Arc::clone(self))
    }

    /// The credential resolver new sessions take their certificate from (the node's
    /// refresh task installs each new credential here).
    pub fn resolver(&self) -> &Arc<NodeCertResolver> {
        &self.resolver
    }

    /// Records the ledger index of the release currently stapled (for `/health`).
    pub fn set_release_index(&self, index: u64) {
        self.release_index.store(index, Ordering::Relaxed);
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.lock_table().len()
    }

    fn lock_table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Drops sessions idle for longer than the timeout (skipping any in use).
    pub fn expire_idle(&self) -> usize {
        let now = self.now_ms();
        let idle = u64::try_from(self.settings.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut table = self.lock_table();
        let before = table.len();
        table.retain(|_, e| {
            let fresh = now.saturating_sub(e.touched.load(Ordering::Relaxed)) <= idle;
            // A session whose lock is held is serving a request right now.
            fresh || e.session.try_lock().is_err()
        });
        let n = before - table.len();
        for _ in 0..n {
            tracing::info!(event = "session_expired");
        }
        n
    }

    /// Runs [`NodeService::expire_idle`] periodically until the process ends.
    pub fn spawn_expiry(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let svc = Arc::clone(self);
        let period = (self.settings.idle_timeout / 4).max(Duration::from_millis(250));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                svc.expire_idle();
            }
        })
    }

    /// The signed receipt for an answer (see `confide_session::receipt`); `None` only if
    /// the key cannot sign, which the device treats as a failed answer.
    fn receipt(
        &self,
        signer: &CredentialSnapshot,
        ledger_index: u64,
        request: [u8; 32],
        response: ResponseDigest,
    ) -> Option<SignedReceipt> {
        let body = ReceiptBody {
            request_sha256: request,
            response_sha256: response.finish(),
            ledger_index,
            platform: self.platform.to_owned(),
            measurement: self.release.measurement.clone(),
            model_digest: self.release.model_digest.clone(),
            config_digest: self.release.config_digest.clone(),
            certificate_sha256: Sha256::digest(signer.certificate().as_ref()).into(),
            time: now_tls().as_secs(),
        }
        .encode();
        match signer.sign(body.as_bytes()) {
            Ok(sig) => Some(SignedReceipt {
                body,
                signature: hex::encode(sig),
            }),
            Err(_) => {
                tracing::warn!(event = "generation_failed", kind = "receipt");
                None
            }
        }
    }

    async fn run_request(
        &self,
        payload: &[u8],
        conn: &mut ServerEngine,
        signer: &CredentialSnapshot,
        ledger_index: u64,
        tx: &Sender,
    ) -> bool {
        let request = request_digest(payload);
        let req: AppRequest = match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(_) => {
                tracing::info!(event = "request_rejected", kind = "frame");
                return send(tx, seal_end(conn, &EndInfo::error(ErrorKind::BadRequest))).await;
            }
        };
        let max = req
            .max_tokens
            .unwrap_or(self.settings.max_tokens)
            .clamp(1, self.settings.max_tokens.max(1));
        let prompt = match req.into_feature() {
            Ok(Feature::Summarize(s)) => summarize_prompt(&s, &self.settings.limits),
            Ok(Feature::Suggest(s)) => suggest_prompt(&s, &self.settings.limits),
            Err(_) => {
                tracing::info!(event = "request_rejected", kind = "feature");
                return send(tx, seal_end(conn, &EndInfo::error(ErrorKind::BadRequest))).await;
            }
        };
        let messages = match prompt {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(event = "request_rejected", kind = "limit");
                return send(tx, seal_end(conn, &EndInfo::error(engine_error_kind(&e)))).await;
            }
        };
        self.answer(
            request,
            messages,
            feature_params(max),
            conn,
            signer,
            ledger_index,
            tx,
        )
        .await
    }

    /// A peer node's request: the prompt it built, run as it is (capped at this node's
    /// token limit).
    async fn run_peer_request(
        &self,
        payload: &[u8],
        conn: &mut ServerEngine,
        signer: &CredentialSnapshot,
        ledger_index: u64,
        tx: &Sender,
    ) -> bool {
        let request = request_digest(payload);
        let Ok(req) = serde_json::from_slice::<PeerRequest>(payload) else {
            tracing::info!(event = "request_rejected", kind = "generate");
            return send(tx, seal_end(conn, &EndInfo::error(ErrorKind::BadRequest))).await;
        };
        let (messages, params) = req.into_parts(self.settings.max_tokens);
        self.answer(request, messages, params, conn, signer, ledger_index, tx)
            .await
    }

    /// Runs one generation and streams it on the tick: every `stream_tick` one padded
    /// unit carrying all text produced since the last tick (or padding only), and on the
    /// tick after the engine finished, that unit and one padded `End` (with a receipt).
    /// The tick, not the model, decides when bytes leave; the bucket, not the text,
    /// decides how many (see `docs/sessions.md`, "Traffic shape").
    #[allow(clippy::too_many_arguments)]
    async fn answer(
        &self,
        request: [u8; 32],
        messages: Vec<ChatMessage>,
        params: GenerateParams,
        conn: &mut ServerEngine,
        signer: &CredentialSnapshot,
        ledger_index: u64,
        tx: &Sender,
    ) -> bool {
        let started = Instant::now();
        let max = params.max_tokens;
        let mut response = ResponseDigest::new();
        let mut stream = match self.engine.generate(messages, params).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(event = "generation_failed", kind = "engine");
                return send(tx, seal_end(conn, &EndInfo::error(engine_error_kind(&e)))).await;
            }
        };
        tracing::info!(event = "generation_started", max_tokens = u64::from(max));
        let mut pieces = 0u64;
        // Whole sentences only, so an answer cut at max_tokens never ends mid-sentence.
        let mut gate = WholeSentences::default();
        // Text produced since the last tick, waiting for it.
        let mut pending = Zeroizing::new(String::new());
        let mut finished: Option<Result<confide_engine::Completion, ErrorKind>> = None;
        let period = self.settings.effective_stream_tick();
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        // A late tick (a busy runtime) shifts the grid rather than bursting to catch up.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Events first: whatever the engine has ready when a tick is due goes
                // out with that tick.
                biased;
                ev = stream.next(), if finished.is_none() => match ev {
                    Some(Ok(StreamEvent::Text(t))) => {
                        pending.push_str(&gate.push(&t));
                    }
                    Some(Ok(StreamEvent::Done(c))) => {
                        pending.push_str(&gate.finish(c.finish_reason));
                        finished = Some(Ok(c));
                    }
                    Some(Err(e)) => {
                        tracing::warn!(event = "generation_failed", kind = "engine");
                        finished = Some(Err(engine_error_kind(&e)));
                    }
                    None => {
                        tracing::warn!(event = "generation_failed", kind = "engine");
                        finished = Some(Err(ErrorKind::Engine));
                    }
                },
                _ = tick.tick() => {
                    let frames = take_chunks(&mut pending);
                    for f in &frames {
                        pieces += 1;
                        response.update(f.payload());
                    }
                    let refs: Vec<&Frame> = frames.iter().collect();
                    // Dropping `stream` on a failed send cancels the generation.
                    if !send(tx, seal_padded(conn, &refs, STREAM_MIN_BUCKET)).await {
                        return false;
                    }
                    let Some(outcome) = finished.take() else {
                        continue;
                    };
                    let c = match outcome {
                        Ok(c) => c,
                        Err(kind) => return send(tx, seal_end(conn, &EndInfo::error(kind))).await,
                    };
                    tracing::info!(
                        event = "generation_finished",
                        pieces = pieces,
                        tokens = u64::from(c.completion_tokens.unwrap_or(0)),
                        ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        kind = c.finish_reason.as_str()
                    );
                    let Some(receipt) = self.receipt(signer, ledger_index, request, response)
                    else {
                        return send(tx, seal_end(conn, &EndInfo::error(ErrorKind::Engine))).await;
                    };
                    let end = EndInfo {
                        finish: Some(c.finish_reason.as_str().to_owned()),
                        completion_tokens: c.completion_tokens,
                        error: None,
                        receipt: Some(receipt),
                    };
                    return send(tx, seal_end(conn, &end)).await;
                }
            }
        }
    }
}

type Sender = mpsc::Sender<Result<Bytes, Infallible>>;

async fn send(tx: &Sender, records: Vec<u8>) -> bool {
    if records.is_empty() {
        return true;
    }
    tx.send(Ok(Bytes::from(records))).await.is_ok()
}

fn records_response(records: Vec<u8>) -> Response {
    (StatusCode::OK, records).into_response()
}

async fn open_session(
    State(svc): State<Arc<NodeService>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    open_with(svc, &headers, &body, false).await
}

async fn open_peer_session(
    State(svc): State<Arc<NodeService>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    open_with(svc, &headers, &body, true).await
}

async fn continue_session(
    State(svc): State<Arc<NodeService>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    continue_with(svc, id, body, false).await
}

async fn continue_peer_session(
    State(svc): State<Arc<NodeService>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    continue_with(svc, id, body, true).await
}

async fn close_session(State(svc): State<Arc<NodeService>>, Path(id): Path<String>) -> Response {
    close_with(&svc, &id, false)
}

async fn close_peer_session(
    State(svc): State<Arc<NodeService>>,
    Path(id): Path<String>,
) -> Response {
    close_with(&svc, &id, true)
}

fn unknown_session() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "session-unknown",
        "session expired or never existed",
    )
}

/// Opens a device session (`mutual` false) or a node-to-node one.
async fn open_with(
    svc: Arc<NodeService>,
    headers: &HeaderMap,
    body: &[u8],
    mutual: bool,
) -> Response {
    let Some(id) = headers
        .get(SESSION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_id(v))
        .map(str::to_owned)
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "session-id-invalid",
            "missing or malformed confide-session-id header",
        );
    };
    if svc.lock_table().contains_key(&id) {
        return problem(
            StatusCode::CONFLICT,
            "session-exists",
            "session id already in use",
        );
    }
    if svc.session_count() >= svc.settings.max_sessions {
        svc.expire_idle();
        if svc.session_count() >= svc.settings.max_sessions {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "node-busy",
                "too many open sessions",
            );
        }
    }
    // This session presents, and later signs receipts with, the credential served now.
    let signer = svc.resolver.snapshot();
    let engine = if mutual {
        // The caller must be an attested node this node's peer policy accepts.
        let Some(verifier) = svc.peer.get() else {
            return problem(
                StatusCode::NOT_FOUND,
                "no-peer-route",
                "this node accepts no node-to-node sessions",
            );
        };
        ServerEngine::new_mutual(signer.resolver(), verifier.clone(), limits(), now_tls()).ok()
    } else {
        server_config(signer.resolver(), Arc::clone(&svc.clock))
            .ok()
            .and_then(|tls| ServerEngine::new(tls, Arc::clone(&svc.clock), limits()).ok())
    };
    let engine = match engine {
        Some(e) => e,
        None => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "node-busy",
                "cannot create a TLS session",
            );
        }
    };
    // The release index the certificate itself staples; the shared value only if the
    // bundle cannot be read (never for a credential this node issued).
    let ledger_index = confide_release::Bundle::decode(signer.ledger_bundle())
        .map_or_else(|_| svc.release_index.load(Ordering::Relaxed), |b| b.index);
    let mut s = Session {
        engine,
        signer,
        ledger_index,
        mutual,
    };
    if s.engine.put_incoming(body, now_tls()).is_err() {
        tracing::info!(event = "session_handshake_failed", kind = "tls");
        // The alert tells the client why; the session is not kept.
        return records_response(take_output(&mut s.engine));
    }
    let out = take_output(&mut s.engine);
    let entry = Entry {
        session: Arc::new(tokio::sync::Mutex::new(s)),
        touched: Arc::new(AtomicU64::new(svc.now_ms())),
    };
    svc.lock_table().insert(id, entry);
    let sessions = svc.session_count() as u64;
    if mutual {
        // Only the node's half of the handshake so far: the caller is verified when its
        // certificate arrives (`peer_verified`), and nothing runs before that.
        tracing::info!(event = "peer_session_opened", sessions = sessions);
    } else {
        tracing::info!(event = "session_opened", sessions = sessions);
    }
    records_response(out)
}

/// Continues a session on the route it was opened on (a device session is unknown on
/// the node-to-node route and the other way round).
async fn continue_with(svc: Arc<NodeService>, id: String, body: Bytes, mutual: bool) -> Response {
    let found = svc
        .lock_table()
        .get(&id)
        .map(|e| (Arc::clone(&e.session), Arc::clone(&e.touched)));
    let Some((session, touched)) = found else {
        tracing::info!(event = "session_unknown");
        return unknown_session();
    };
    let mut guard = session.lock_owned().await;
    if guard.mutual != mutual {
        tracing::info!(event = "session_unknown");
        return unknown_session();
    }
    let was_established = guard.engine.is_established();
    // A session lives no longer than the certificate it presented: a receipt signed after
    // notAfter would not verify offline. The device re-attests on session-unknown.
    if now_tls().as_secs() >= guard.signer.not_after() {
        drop(guard);
        svc.lock_table().remove(&id);
        tracing::info!(event = "session_expired");
        return problem(
            StatusCode::NOT_FOUND,
            "session-unknown",
            "the session's certificate expired",
        );
    }
    touched.store(svc.now_ms(), Ordering::Relaxed);
    if guard.engine.put_incoming(&body, now_tls()).is_err() {
        if guard.mutual && !was_established {
            // A caller without an attested certificate, or one the peer policy refuses:
            // the alert (certificate_required, bad_certificate) says which.
            tracing::info!(event = "peer_refused", kind = "peer");
        } else {
            tracing::info!(event = "session_handshake_failed", kind = "tls");
        }
        let alert = take_output(&mut guard.engine);
        drop(guard);
        svc.lock_table().remove(&id);
        return records_response(alert);
    }
    if guard.mutual && !was_established && guard.engine.is_established() {
        tracing::info!(event = "peer_verified", kind = "peer");
    }
    let mut requests = Vec::new();
    while let Some(f) = guard.engine.recv() {
        if f.kind() == FrameKind::Request {
            requests.push(f.into_payload());
        } else {
            // A client sends only requests; anything else is a protocol error.
            // Fail the session closed.
            tracing::info!(event = "request_rejected", kind = "frame");
            let out = seal_end(&mut guard.engine, &EndInfo::error(ErrorKind::BadRequest));
            drop(guard);
            svc.lock_table().remove(&id);
            return records_response(out);
        }
    }
    let first = take_output(&mut guard.engine);
    if requests.is_empty() {
        return records_response(first);
    }
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    let svc2 = Arc::clone(&svc);
    tokio::spawn(async move {
        if send(&tx, first).await {
            for payload in requests {
                let session = &mut *guard;
                let ok = if session.mutual {
                    svc2.run_peer_request(
                        &payload,
                        &mut session.engine,
                        &session.signer,
                        session.ledger_index,
                        &tx,
                    )
                    .await
                } else {
                    svc2.run_request(
                        &payload,
                        &mut session.engine,
                        &session.signer,
                        session.ledger_index,
                        &tx,
                    )
                    .await
                };
                if !ok {
                    break;
                }
            }
        }
        touched.store(svc2.now_ms(), Ordering::Relaxed);
        drop(guard);
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn close_with(svc: &NodeService, id: &str, mutual: bool) -> Response {
    let mut table = svc.lock_table();
    let same_route = table
        .get(id)
        .is_some_and(|e| e.session.try_lock().map_or(true, |s| s.mutual == mutual));
    if same_route && table.remove(id).is_some() {
        tracing::info!(event = "session_closed");
        StatusCode::NO_CONTENT.into_response()
    } else {
        unknown_session()
    }
}

async fn health(State(svc): State<Arc<NodeService>>) -> Response {
    axum::Json(serde_json::json!({
        "status": "ok",
        "platform": svc.platform,
        "release_index": svc.release_index.load(Ordering::Relaxed),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_cut_between_characters() {
        // An odd prefix puts every 16 KiB boundary inside a two-byte character.
        let text = format!("a{}", "é".repeat(MAX_CHUNK_TEXT));
        let mut pending = Zeroizing::new(text.clone());
        let frames = take_chunks(&mut pending);
        assert!(pending.is_empty());
        assert!(frames.len() >= 2);
        let mut joined = Vec::new();
        for f in &frames {
            assert_eq!(f.kind(), FrameKind::StreamChunk);
            assert!(f.payload().len() <= MAX_CHUNK_TEXT);
            assert!(std::str::from_utf8(f.payload()).is_ok());
            joined.extend_from_slice(f.payload());
        }
        assert_eq!(joined, text.as_bytes());
        assert!(take_chunks(&mut Zeroizing::new(String::new())).is_empty());
    }

    #[test]
    fn the_tick_is_clamped() {
        let tick = |ms| {
            ServiceSettings {
                stream_tick: Duration::from_millis(ms),
                ..ServiceSettings::default()
            }
            .effective_stream_tick()
        };
        assert_eq!(tick(0), MIN_STREAM_TICK);
        assert_eq!(tick(60_000), MAX_STREAM_TICK);
        assert_eq!(tick(150), Duration::from_millis(150));
        assert_eq!(
            ServiceSettings::default().effective_stream_tick(),
            DEFAULT_STREAM_TICK
        );
    }
}
