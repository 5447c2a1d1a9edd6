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
//! Each complete `Request` frame is run on the engine and every text piece is sealed
//! into a `StreamChunk` frame and sent as soon as the model produces it, so the HTTP
//! response streams; one `End` frame closes each request (see [`crate::frames`]).
//!
//! Replayed or reordered records fail the TLS record layer's AEAD with its implicit
//! sequence number (RFC 8446 section 5.3), which is fatal: the node answers with the
//! alert and forgets the session. Idle sessions expire and their state is dropped
//! (rustls wipes its traffic secrets on drop; our buffers are `Zeroizing`).
//!
//! There are no other routes: no debug, metrics or shell endpoints.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use confide_engine::features::{
    Limits, WholeSentences, feature_params, suggest_prompt, summarize_prompt,
};
use confide_engine::{Engine, EngineError, StreamEvent};
use confide_ratls::rustls::pki_types::UnixTime;
use confide_ratls::{CredentialSnapshot, ManualClock, NodeCertResolver, server_config};
use confide_session::receipt::{ReceiptBody, ResponseDigest, request_digest};
use confide_session::{Frame, FrameKind, ServerEngine, SessionLimits};
use confide_svc::problem::Problem;
use futures::StreamExt as _;
use http::{HeaderMap, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::frames::{AppRequest, EndInfo, ErrorKind, Feature, SignedReceipt, chunk};

/// Header carrying the gateway-chosen session id on `POST /sessions`.
pub const SESSION_ID_HEADER: &str = "confide-session-id";
/// Largest request body (TLS records) the node accepts in one call.
pub const MAX_BODY: usize = 256 * 1024;
/// Largest application frame either side may send (a request within the feature
/// limits is far smaller).
const MAX_FRAME: usize = 128 * 1024;

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
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(120),
            max_sessions: 1024,
            max_tokens: 256,
            limits: Limits::default(),
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

/// Seals `frame` into the session and returns the records to send.
fn seal(engine: &mut ServerEngine, frame: &Frame) -> Vec<u8> {
    // A send error leaves the engine failed; whatever it queued (an alert) still goes out.
    let _ = engine.send(frame);
    take_output(engine)
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
        })
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
        let started = Instant::now();
        let request = request_digest(payload);
        let mut response = ResponseDigest::new();
        let req: AppRequest = match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(_) => {
                tracing::info!(event = "request_rejected", kind = "frame");
                return send(
                    tx,
                    seal(conn, &EndInfo::error(ErrorKind::BadRequest).to_frame()),
                )
                .await;
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
                return send(
                    tx,
                    seal(conn, &EndInfo::error(ErrorKind::BadRequest).to_frame()),
                )
                .await;
            }
        };
        let messages = match prompt {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(event = "request_rejected", kind = "limit");
                return send(
                    tx,
                    seal(conn, &EndInfo::error(engine_error_kind(&e)).to_frame()),
                )
                .await;
            }
        };
        let mut stream = match self.engine.generate(messages, feature_params(max)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(event = "generation_failed", kind = "engine");
                return send(
                    tx,
                    seal(conn, &EndInfo::error(engine_error_kind(&e)).to_frame()),
                )
                .await;
            }
        };
        tracing::info!(event = "generation_started", max_tokens = u64::from(max));
        let mut pieces = 0u64;
        // Whole sentences only, so an answer cut at max_tokens never ends mid-sentence.
        let mut gate = WholeSentences::default();
        while let Some(ev) = stream.next().await {
            let frame = match ev {
                Ok(StreamEvent::Text(t)) => {
                    let t = gate.push(&t);
                    if t.is_empty() {
                        continue;
                    }
                    pieces += 1;
                    let frame = chunk(&t);
                    response.update(frame.payload());
                    frame
                }
                Ok(StreamEvent::Done(c)) => {
                    let tail = gate.finish(c.finish_reason);
                    if !tail.is_empty() {
                        pieces += 1;
                        let frame = chunk(&tail);
                        response.update(frame.payload());
                        if !send(tx, seal(conn, &frame)).await {
                            return false;
                        }
                    }
                    tracing::info!(
                        event = "generation_finished",
                        pieces = pieces,
                        tokens = u64::from(c.completion_tokens.unwrap_or(0)),
                        ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        kind = c.finish_reason.as_str()
                    );
                    let Some(receipt) = self.receipt(signer, ledger_index, request, response)
                    else {
                        return send(
                            tx,
                            seal(conn, &EndInfo::error(ErrorKind::Engine).to_frame()),
                        )
                        .await;
                    };
                    let end = EndInfo {
                        finish: Some(c.finish_reason.as_str().to_owned()),
                        completion_tokens: c.completion_tokens,
                        error: None,
                        receipt: Some(receipt),
                    };
                    return send(tx, seal(conn, &end.to_frame())).await;
                }
                Err(e) => {
                    tracing::warn!(event = "generation_failed", kind = "engine");
                    return send(
                        tx,
                        seal(conn, &EndInfo::error(engine_error_kind(&e)).to_frame()),
                    )
                    .await;
                }
            };
            // Dropping `stream` on a failed send cancels the generation.
            if !send(tx, seal(conn, &frame)).await {
                return false;
            }
        }
        tracing::warn!(event = "generation_failed", kind = "engine");
        send(
            tx,
            seal(conn, &EndInfo::error(ErrorKind::Engine).to_frame()),
        )
        .await
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
    let engine = match server_config(signer.resolver(), Arc::clone(&svc.clock))
        .ok()
        .and_then(|tls| ServerEngine::new(tls, Arc::clone(&svc.clock), limits()).ok())
    {
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
    };
    if s.engine.put_incoming(&body, now_tls()).is_err() {
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
    tracing::info!(
        event = "session_opened",
        sessions = svc.session_count() as u64
    );
    records_response(out)
}

async fn continue_session(
    State(svc): State<Arc<NodeService>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let found = svc
        .lock_table()
        .get(&id)
        .map(|e| (Arc::clone(&e.session), Arc::clone(&e.touched)));
    let Some((session, touched)) = found else {
        tracing::info!(event = "session_unknown");
        return problem(
            StatusCode::NOT_FOUND,
            "session-unknown",
            "session expired or never existed",
        );
    };
    let mut guard = session.lock_owned().await;
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
        tracing::info!(event = "session_handshake_failed", kind = "tls");
        let alert = take_output(&mut guard.engine);
        drop(guard);
        svc.lock_table().remove(&id);
        return records_response(alert);
    }
    let mut requests = Vec::new();
    while let Some(f) = guard.engine.recv() {
        if f.kind() == FrameKind::Request {
            requests.push(f.into_payload());
        } else {
            // A client sends only requests; anything else is a protocol error.
            // Fail the session closed.
            tracing::info!(event = "request_rejected", kind = "frame");
            let out = seal(
                &mut guard.engine,
                &EndInfo::error(ErrorKind::BadRequest).to_frame(),
            );
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
                if !svc2
                    .run_request(
                        &payload,
                        &mut session.engine,
                        &session.signer,
                        session.ledger_index,
                        &tx,
                    )
                    .await
                {
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

async fn close_session(State(svc): State<Arc<NodeService>>, Path(id): Path<String>) -> Response {
    match svc.lock_table().remove(&id) {
        Some(_) => {
            tracing::info!(event = "session_closed");
            StatusCode::NO_CONTENT.into_response()
        }
        None => problem(
            StatusCode::NOT_FOUND,
            "session-unknown",
            "session expired or never existed",
        ),
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
