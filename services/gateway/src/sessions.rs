//! Session routing: the gateway side of `docs/sessions.md`.
//!
//! Inner resources (reached after decapsulation, token redeemed):
//!
//! | inner request | token | gateway → node |
//! |---|---|---|
//! | `POST /v1/sessions` | required | picks a healthy node uniformly at random, chooses an opaque id (128 random bits, base64url), `POST {node}/sessions` with header `confide-session-id`; answers `200` + `confide-session-id` + the node's TLS flight |
//! | `POST /v1/sessions/<id>` | required | `POST {node}/sessions/<id>` on the pinned node; the node's body is streamed through as it arrives |
//! | `DELETE /v1/sessions/<id>` | not required | `DELETE {node}/sessions/<id>`; `204` |
//!
//! The gateway only moves TLS records: it cannot read them, and it picks nodes without
//! knowing who asks (the inner request carries no identity). Sessions idle longer than
//! the idle timeout are forgotten (`session-unknown`); a pinned node that stops
//! answering yields `node-gone` and the session is dropped, so the SDK re-attests a fresh
//! one. Nodes are health-checked with `GET {node}/health`.
//!
//! Every gateway→node call is bounded in time ([`NodeTimeouts`]): a node that accepts
//! the connection and then says nothing (hung, overloaded, or hostile) would otherwise
//! hold the device's request, the relay's connection and a gateway task forever. A node
//! that misses its deadline before answering yields `node-timeout` (504) and is treated
//! like a node that is gone: the session is dropped and the node marked down until its
//! next health check passes. A stream that stalls after it started is cut without its
//! end, which the device detects as truncation (fail closed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use bytes::BytesMut;
use futures::{StreamExt as _, TryStreamExt as _};
use http::{HeaderMap, HeaderValue, StatusCode};
use rand_core::{OsRng, RngCore};

use crate::inner::{InnerState, problem, require_token};

/// Header naming the session on the gateway→device and gateway→node legs.
pub const SESSION_ID_HEADER: &str = "confide-session-id";
/// Default idle timeout (docs/sessions.md).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(120);
/// Largest body forwarded to a node in one call.
const MAX_FORWARD: usize = 256 * 1024;
/// Default bound on waiting for a node's answer to start, and on any silence
/// within a streamed answer. Generous: a loaded node first evaluates the whole prompt
/// before its first record, and SmolLM-class models on CPU take seconds for that.
pub const DEFAULT_NODE_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default bound on one whole streamed answer from a node (the longest generation
/// the gateway will carry).
pub const DEFAULT_NODE_STREAM_TIMEOUT: Duration = Duration::from_secs(600);

/// How long the gateway waits on a node (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeTimeouts {
    /// Until the node's response head (and, for `POST /sessions`, its whole body)
    /// arrived; also the longest silence allowed between two streamed pieces.
    pub response: Duration,
    /// Overall bound on one streamed answer, from the request to its last piece.
    pub stream: Duration,
}

impl Default for NodeTimeouts {
    fn default() -> Self {
        Self {
            response: DEFAULT_NODE_RESPONSE_TIMEOUT,
            stream: DEFAULT_NODE_STREAM_TIMEOUT,
        }
    }
}

/// Why a call to a node failed (turned into a problem answer for the device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeCallError {
    /// The node did not answer within [`NodeTimeouts::response`].
    #[error("the node did not answer in time")]
    Timeout,
    /// The connection failed or broke.
    #[error("the node could not be reached")]
    Unreachable,
}

impl NodeCallError {
    /// The problem answer: `node-timeout` (504) or `node-gone` (502).
    pub fn response(self) -> Response {
        match self {
            Self::Timeout => problem(
                StatusCode::GATEWAY_TIMEOUT,
                "node-timeout",
                "the node behind this session did not answer in time",
            ),
            Self::Unreachable => node_gone(),
        }
    }
}

/// Run `fut` (a node call) under `limit`.
async fn bounded<T, E>(
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, NodeCallError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(NodeCallError::Unreachable),
        Err(_) => Err(NodeCallError::Timeout),
    }
}

/// Session routing errors (configuration only; request errors are problem responses).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionRoutingError {
    /// A node URL is not an absolute http(s) URL.
    #[error("node URL must start with http:// or https://")]
    NodeUrl,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for nodes")]
    Client,
    /// A node timeout is zero (every call would fail).
    #[error("node timeouts must be positive")]
    Timeout,
}

#[derive(Debug)]
struct NodeEntry {
    url: String,
    healthy: AtomicBool,
}

#[derive(Debug, Clone, Copy)]
struct Pinned {
    node: usize,
    touched: Instant,
}

/// The session table and the set of nodes.
#[derive(Debug)]
pub struct SessionRouter {
    nodes: Vec<NodeEntry>,
    table: Mutex<HashMap<String, Pinned>>,
    idle: Duration,
    timeouts: NodeTimeouts,
    http: reqwest::Client,
}

fn new_session_id() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn valid_id(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The largest TLS 1.3 record on the wire: 5 header bytes and at most 2^14 + 256 bytes
/// of protected payload (RFC 8446 section 5.2).
const MAX_TLS_RECORD: usize = 5 + (1 << 14) + 256;

/// The next whole TLS record at the front of `buf`, if it holds one.
fn next_record(buf: &mut BytesMut) -> Result<Option<Bytes>, std::io::Error> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = 5 + usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    if len > MAX_TLS_RECORD {
        return Err(std::io::Error::other(
            "the node sent an oversized TLS record",
        ));
    }
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(buf.split_to(len).freeze()))
}

/// Re-cuts a node's response body into whole TLS records, one stream item each.
///
/// Why: the gateway seals one chunked-OHTTP chunk per item, and how the node's HTTP body
/// arrives (TCP segments, HTTP chunks) depends on the network and the load, not on what
/// the node wrote. Cut at record boundaries, the chunks the relay sees are exactly the
/// node's records, whose sizes the node pads to buckets. The record header is plaintext
/// by design (RFC 8446 section 5.1), so this reads nothing the gateway could not see
/// anyway. A body that breaks off inside a record, or a header announcing an impossible
/// length, ends the stream with an error: the device sees a truncated answer.
fn tls_records<S, E>(body: S) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
{
    futures::stream::unfold(
        (body, BytesMut::new(), false),
        |(mut body, mut buf, failed)| async move {
            if failed {
                return None;
            }
            loop {
                match next_record(&mut buf) {
                    Ok(Some(record)) => return Some((Ok(record), (body, buf, false))),
                    Ok(None) => {}
                    Err(e) => return Some((Err(e), (body, buf, true))),
                }
                match body.next().await {
                    Some(Ok(b)) => buf.extend_from_slice(&b),
                    Some(Err(_)) => {
                        let e = std::io::Error::other("the node's response failed");
                        return Some((Err(e), (body, buf, true)));
                    }
                    None if buf.is_empty() => return None,
                    None => {
                        let e = std::io::Error::other("the node's response ended inside a record");
                        return Some((Err(e), (body, buf, true)));
                    }
                }
            }
        },
    )
}

fn node_gone() -> Response {
    problem(
        StatusCode::BAD_GATEWAY,
        "node-gone",
        "the node behind this session stopped answering",
    )
}

fn session_unknown() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "session-unknown",
        "session expired or never existed",
    )
}

impl SessionRouter {
    /// A router over `nodes` (base URLs) expiring sessions idle for `idle`. Nodes start
    /// unhealthy until their first health check passes.
    pub fn new(nodes: &[String], idle: Duration) -> Result<Arc<Self>, SessionRoutingError> {
        Self::with_timeouts(nodes, idle, NodeTimeouts::default())
    }

    /// As [`SessionRouter::new`], bounding every node call by `timeouts`.
    pub fn with_timeouts(
        nodes: &[String],
        idle: Duration,
        timeouts: NodeTimeouts,
    ) -> Result<Arc<Self>, SessionRoutingError> {
        if timeouts.response.is_zero() || timeouts.stream.is_zero() {
            return Err(SessionRoutingError::Timeout);
        }
        let mut entries = Vec::with_capacity(nodes.len());
        for n in nodes {
            if !(n.starts_with("http://") || n.starts_with("https://")) {
                return Err(SessionRoutingError::NodeUrl);
            }
            entries.push(NodeEntry {
                url: n.trim_end_matches('/').to_owned(),
                healthy: AtomicBool::new(false),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|_| SessionRoutingError::Client)?;
        Ok(Arc::new(Self {
            nodes: entries,
            table: Mutex::new(HashMap::new()),
            idle,
            timeouts,
            http,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pinned>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.lock().len()
    }

    /// Number of nodes that passed their last health check.
    pub fn healthy_nodes(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.healthy.load(Ordering::Relaxed))
            .count()
    }

    /// Checks every node's `GET /health` once.
    pub async fn check_health(&self) {
        for n in &self.nodes {
            let ok = match self
                .http
                .get(format!("{}/health", n.url))
                .timeout(self.timeouts.response.min(Duration::from_secs(5)))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => r
                    .json::<serde_json::Value>()
                    .await
                    .map(|v| v.get("status").and_then(|s| s.as_str()) == Some("ok"))
                    .unwrap_or(false),
                _ => false,
            };
            n.healthy.store(ok, Ordering::Relaxed);
        }
    }

    /// Drops sessions idle longer than the timeout.
    pub fn expire_idle(&self) -> usize {
        let idle = self.idle;
        let mut t = self.lock();
        let before = t.len();
        t.retain(|_, p| p.touched.elapsed() <= idle);
        before - t.len()
    }

    /// Health-checks nodes and expires sessions every `period`, starting now.
    pub fn spawn_maintenance(self: &Arc<Self>, period: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                me.check_health().await;
                me.expire_idle();
            }
        })
    }

    /// A healthy node, uniformly at random (the gateway does not know who asks).
    fn pick(&self) -> Option<usize> {
        let healthy: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].healthy.load(Ordering::Relaxed))
            .collect();
        if healthy.is_empty() {
            return None;
        }
        let r = OsRng.next_u64() % healthy.len() as u64;
        healthy.get(usize::try_from(r).ok()?).copied()
    }

    /// The node pinned to `id`, touching the session; `None` if unknown or expired.
    fn pinned(&self, id: &str) -> Option<usize> {
        let mut t = self.lock();
        let p = t.get_mut(id)?;
        if p.touched.elapsed() > self.idle {
            t.remove(id);
            return None;
        }
        p.touched = Instant::now();
        Some(p.node)
    }

    fn mark_gone(&self, id: &str, node: usize) {
        self.lock().remove(id);
        if let Some(n) = self.nodes.get(node) {
            n.healthy.store(false, Ordering::Relaxed);
        }
    }

    fn call_failed(&self, id: &str, node: usize, e: NodeCallError) {
        // Only kinds reach the log: never a URL path (it holds the session id).
        tracing::warn!(kind = %e, "node call failed");
        self.mark_gone(id, node);
    }

    /// `POST /v1/sessions` after the token was redeemed.
    pub async fn open(&self, body: Bytes) -> Response {
        if body.len() > MAX_FORWARD {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "request too large",
            );
        }
        let Some(node) = self.pick() else {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-node-available",
                "no node available",
            );
        };
        let id = new_session_id();
        let url = format!("{}/sessions", self.nodes[node].url);
        // One deadline for the head and the body: the node's first flight is small.
        let call = async {
            let resp = self
                .http
                .post(url)
                .header(SESSION_ID_HEADER, &id)
                .body(body)
                .send()
                .await?;
            let status = resp.status();
            resp.bytes().await.map(|b| (status, b))
        };
        let (status, records) = match bounded(self.timeouts.response, call).await {
            Ok(r) => r,
            Err(e) => {
                self.call_failed(&id, node, e);
                return e.response();
            }
        };
        if !status.is_success() {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-node-available",
                "the node refused the session",
            );
        }
        self.lock().insert(
            id.clone(),
            Pinned {
                node,
                touched: Instant::now(),
            },
        );
        tracing::info!(bytes = records.len(), "session opened");
        let mut r = (StatusCode::OK, records).into_response();
        if let Ok(v) = HeaderValue::from_str(&id) {
            r.headers_mut().insert(SESSION_ID_HEADER, v);
        }
        r
    }

    /// `POST /v1/sessions/<id>` after the token was redeemed: streamed passthrough.
    pub async fn forward(&self, id: &str, body: Bytes) -> Response {
        if !valid_id(id) {
            return session_unknown();
        }
        if body.len() > MAX_FORWARD {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "request too large",
            );
        }
        let Some(node) = self.pinned(id) else {
            return session_unknown();
        };
        let url = format!("{}/sessions/{id}", self.nodes[node].url);
        let overall = tokio::time::Instant::now() + self.timeouts.stream;
        let resp = match bounded(
            self.timeouts.response,
            self.http.post(url).body(body).send(),
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                self.call_failed(id, node, e);
                return e.response();
            }
        };
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                // The node expired or dropped the session (for example after a
                // replayed record): so does the gateway.
                self.lock().remove(id);
                return session_unknown();
            }
            _ => {
                self.mark_gone(id, node);
                return node_gone();
            }
        }
        // Records go out as the node produces them, each bounded in time; the gateway
        // holds no more than the one record it is completing.
        let stream = resp.bytes_stream().map_err(std::io::Error::other);
        let body = tls_records(Box::pin(bounded_stream(
            stream,
            self.timeouts.response,
            overall,
        )));
        (StatusCode::OK, Body::from_stream(body)).into_response()
    }

    /// `DELETE /v1/sessions/<id>`.
    pub async fn close(&self, id: &str) -> Response {
        let node = self.lock().remove(id).map(|p| p.node);
        let Some(node) = node else {
            return session_unknown();
        };
        let url = format!("{}/sessions/{id}", self.nodes[node].url);
        // The node expires the session anyway; a failed delete changes nothing for
        // the device.
        let _ = bounded(self.timeouts.response, self.http.delete(url).send()).await;
        StatusCode::NO_CONTENT.into_response()
    }

    /// The inner routes (`/v1/sessions`, `/v1/sessions/<id>`), checking tokens with
    /// `inner`. Give them to [`crate::Gateway::with_inner_routes`].
    pub fn routes(self: &Arc<Self>, inner: Arc<InnerState>) -> Router {
        Router::new()
            .route("/v1/sessions", post(open_session))
            .route(
                "/v1/sessions/{id}",
                post(continue_session).delete(close_session),
            )
            .with_state(RouteState {
                router: Arc::clone(self),
                inner,
            })
    }
}

/// `stream`, cut with an error when a piece takes longer than `gap` or the stream
/// runs past `deadline`. The cut stream has no end, so the device's chunked-OHTTP
/// reader reports truncation rather than taking a partial answer as whole.
fn bounded_stream(
    stream: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static,
    gap: Duration,
    deadline: tokio::time::Instant,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    use futures::StreamExt as _;
    futures::stream::unfold(Some(stream), move |state| async move {
        let mut s = state?;
        let until = deadline.min(tokio::time::Instant::now() + gap);
        match tokio::time::timeout_at(until, s.next()).await {
            Ok(Some(item)) => Some((item, Some(s))),
            Ok(None) => None,
            Err(_) => {
                tracing::warn!(kind = %NodeCallError::Timeout, "node stream cut");
                Some((Err(std::io::Error::other(NodeCallError::Timeout)), None))
            }
        }
    })
}

#[derive(Clone)]
struct RouteState {
    router: Arc<SessionRouter>,
    inner: Arc<InnerState>,
}

async fn open_session(State(s): State<RouteState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refusal) = require_token(&s.inner, &headers).await {
        return refusal;
    }
    s.router.open(body).await
}

async fn continue_session(
    State(s): State<RouteState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = require_token(&s.inner, &headers).await {
        return refusal;
    }
    s.router.forward(&id, body).await
}

async fn close_session(State(s): State<RouteState>, Path(id): Path<String>) -> Response {
    s.router.close(&id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_128_bit_base64url() {
        let a = new_session_id();
        let b = new_session_id();
        assert_ne!(a, b);
        assert!(valid_id(&a), "{a}");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&a)
            .unwrap();
        assert_eq!(raw.len(), 16);
        assert!(!valid_id("../../health"));
        assert!(!valid_id(""));
    }

    #[test]
    fn node_urls_are_checked() {
        assert!(SessionRouter::new(&["ftp://x".into()], DEFAULT_IDLE).is_err());
        let r = SessionRouter::new(&["http://127.0.0.1:1/".into()], DEFAULT_IDLE).unwrap();
        assert_eq!(r.healthy_nodes(), 0);
        assert!(r.pick().is_none());
    }

    #[tokio::test]
    async fn no_node_then_node_gone_then_unknown() {
        // A port nobody listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let r = SessionRouter::new(&[url], Duration::from_millis(50)).unwrap();
        r.check_health().await;
        assert_eq!(r.healthy_nodes(), 0);
        let resp = r.open(Bytes::from_static(b"hello")).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);

        // Pin a session to the dead node by hand: forwarding says node-gone and the
        // session is dropped; afterwards it is unknown.
        r.nodes[0].healthy.store(true, Ordering::Relaxed);
        let id = new_session_id();
        r.lock().insert(
            id.clone(),
            Pinned {
                node: 0,
                touched: Instant::now(),
            },
        );
        let resp = r.forward(&id, Bytes::from_static(b"x")).await;
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(r.healthy_nodes(), 0);
        let resp = r.forward(&id, Bytes::from_static(b"x")).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);

        // Idle expiry.
        r.lock().insert(
            id.clone(),
            Pinned {
                node: 0,
                touched: Instant::now(),
            },
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(r.expire_idle(), 1);
    }
    /// A node speaking the gateway→node contract on loopback, answering with its name.
    async fn fake_node(name: &'static str) -> String {
        use axum::routing::get;
        let app = Router::new()
            .route(
                "/health",
                get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
            )
            .route(
                "/sessions",
                post(move |h: HeaderMap, body: Bytes| async move {
                    assert!(valid_id(
                        h.get(SESSION_ID_HEADER).unwrap().to_str().unwrap()
                    ));
                    format!("{name}:hello:{}", body.len())
                }),
            )
            .route(
                "/sessions/{id}",
                post(move |Path(id): Path<String>, body: Bytes| async move {
                    // Two records, as a node streams generated records, cut across
                    // three pieces the way TCP might deliver them.
                    let mut wire = record(format!("{name}:{id}:").as_bytes());
                    wire.extend(record(format!("{}", body.len()).as_bytes()));
                    let tail = wire.split_off(7);
                    let mid = wire.split_off(3);
                    let parts =
                        futures::stream::iter([Ok::<_, std::io::Error>(wire), Ok(mid), Ok(tail)]);
                    Body::from_stream(parts)
                })
                .delete(|| async { StatusCode::NO_CONTENT }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        url
    }

    /// A TLS application-data record around `payload` (the gateway reads only the header).
    fn record(payload: &[u8]) -> Vec<u8> {
        let mut r = vec![23, 3, 3];
        r.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
        r.extend_from_slice(payload);
        r
    }

    /// The payloads of the records the gateway forwarded, one per body frame.
    async fn forwarded_records(r: Response) -> Vec<String> {
        use http_body_util::BodyExt as _;
        let mut body = r.into_body();
        let mut out = Vec::new();
        while let Some(f) = body.frame().await {
            let data = f.unwrap().into_data().unwrap();
            let len = usize::from(u16::from_be_bytes([data[3], data[4]]));
            assert_eq!(data.len(), 5 + len, "one whole record per frame");
            out.push(String::from_utf8(data[5..].to_vec()).unwrap());
        }
        out
    }

    #[tokio::test]
    async fn node_bodies_are_recut_into_whole_records() {
        use futures::StreamExt as _;
        let a = record(&[1; 300]);
        let b = record(&[2; 20]);
        let wire: Vec<u8> = [a.clone(), b.clone()].concat();
        // However the body is cut, the items are the records.
        for cut in [1, 4, 5, 6, 299, 305, 310, wire.len()] {
            let pieces: Vec<Result<Bytes, std::io::Error>> = wire
                .chunks(cut)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let got: Vec<Bytes> = tls_records(futures::stream::iter(pieces))
                .map(Result::unwrap)
                .collect()
                .await;
            assert_eq!(
                got,
                vec![Bytes::from(a.clone()), Bytes::from(b.clone())],
                "{cut}"
            );
        }
        // A body ending inside a record, or announcing an impossible length, fails.
        let cut: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::from(a[..100].to_vec()))];
        let got: Vec<_> = tls_records(futures::stream::iter(cut)).collect().await;
        assert_eq!(got.len(), 1);
        assert!(got[0].is_err());
        let huge = vec![Ok::<_, std::io::Error>(Bytes::from_static(&[
            23, 3, 3, 0xff, 0xff, 0,
        ]))];
        let got: Vec<_> = tls_records(futures::stream::iter(huge)).collect().await;
        assert!(got.len() == 1 && got[0].is_err());
    }

    async fn body_text(r: Response) -> String {
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn sessions_spread_over_healthy_nodes_and_stay_pinned() {
        let a = fake_node("a").await;
        let b = fake_node("b").await;
        let r = SessionRouter::new(&[a, b], DEFAULT_IDLE).unwrap();
        r.check_health().await;
        assert_eq!(r.healthy_nodes(), 2);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..40 {
            let resp = r.open(Bytes::from_static(b"hello")).await;
            assert_eq!(resp.status(), StatusCode::OK);
            let id = resp.headers()[SESSION_ID_HEADER]
                .to_str()
                .unwrap()
                .to_owned();
            let node = body_text(resp).await;
            let name = node.split(':').next().unwrap().to_owned();
            assert_eq!(node, format!("{name}:hello:5"));
            // Later requests of the session reach the same node, body streamed through.
            for _ in 0..2 {
                let fwd = r.forward(&id, Bytes::from_static(b"records")).await;
                assert_eq!(fwd.status(), StatusCode::OK);
                assert_eq!(
                    forwarded_records(fwd).await,
                    vec![format!("{name}:{id}:"), "7".to_owned()]
                );
            }
            seen.insert(name);
        }
        assert_eq!(seen.len(), 2, "both healthy nodes are used");
        assert_eq!(r.session_count(), 40);
        let some = r.lock().keys().next().unwrap().clone();
        assert_eq!(r.close(&some).await.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.close(&some).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.session_count(), 39);
    }

    /// A real node-side socket that misbehaves: accepts connections, reads what comes,
    /// writes `head` (possibly nothing) and then stays silent with the socket open.
    async fn stalling_node(head: &'static [u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut sock, _)) = l.accept().await {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(head).await;
                held.push(sock); // never answered further, never closed
            }
        });
        url
    }

    fn pin(r: &SessionRouter, node: usize) -> String {
        let id = new_session_id();
        r.lock().insert(
            id.clone(),
            Pinned {
                node,
                touched: Instant::now(),
            },
        );
        id
    }

    async fn problem_type(r: Response) -> String {
        let v: serde_json::Value = serde_json::from_str(&body_text(r).await).unwrap();
        v["type"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn a_silent_node_times_out_with_a_problem_answer() {
        let url = stalling_node(b"").await;
        let timeouts = NodeTimeouts {
            response: Duration::from_millis(300),
            stream: Duration::from_secs(5),
        };
        let r = SessionRouter::with_timeouts(&[url], DEFAULT_IDLE, timeouts).unwrap();
        // The health check is bounded too: the silent node is not healthy.
        r.check_health().await;
        assert_eq!(r.healthy_nodes(), 0);

        // Opening a session on it (as if it had passed an earlier check).
        r.nodes[0].healthy.store(true, Ordering::Relaxed);
        let resp = r.open(Bytes::from_static(b"hello")).await;
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(problem_type(resp).await, "urn:confide:problem:node-timeout");
        assert_eq!(r.healthy_nodes(), 0, "a node that times out is marked down");
        assert_eq!(r.session_count(), 0);

        // Continuing a session pinned to it: same answer, and the session is dropped.
        r.nodes[0].healthy.store(true, Ordering::Relaxed);
        let id = pin(&r, 0);
        let resp = r.forward(&id, Bytes::from_static(b"records")).await;
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(problem_type(resp).await, "urn:confide:problem:node-timeout");
        assert_eq!(r.session_count(), 0);
        assert_eq!(r.healthy_nodes(), 0);

        // Closing is bounded too (the answer does not depend on the node).
        r.nodes[0].healthy.store(true, Ordering::Relaxed);
        let id = pin(&r, 0);
        assert_eq!(r.close(&id).await.status(), StatusCode::NO_CONTENT);
        assert!(
            SessionRouter::with_timeouts(
                &[],
                DEFAULT_IDLE,
                NodeTimeouts {
                    response: Duration::ZERO,
                    stream: Duration::from_secs(1)
                }
            )
            .is_err()
        );
    }

    #[tokio::test]
    async fn a_stream_that_stalls_is_cut_not_ended() {
        // The head and one whole TLS record in a chunked answer, then silence.
        let url = stalling_node(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\n\x17\x03\x03\x00\x05hello\r\n",
        )
        .await;
        let timeouts = NodeTimeouts {
            response: Duration::from_millis(300),
            stream: Duration::from_secs(5),
        };
        let r = SessionRouter::with_timeouts(&[url], DEFAULT_IDLE, timeouts).unwrap();
        let id = pin(&r, 0);
        let resp = r.forward(&id, Bytes::from_static(b"records")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();
        use http_body_util::BodyExt as _;
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"\x17\x03\x03\x00\x05hello");
        // The stall turns into an error, never into a clean end of the stream.
        let next = body.frame().await;
        assert!(matches!(next, Some(Err(_))), "stalled stream must be cut");

        // The overall bound holds even when the node keeps trickling within the gap.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut sock, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    // A record header announcing 16 KiB, whose body then trickles in
                    // a byte at a time: the record is never complete, the node never
                    // silent for longer than the gap.
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                              5\r\n\x17\x03\x03\x40\x00\r\n",
                        )
                        .await;
                    while sock.write_all(b"1\r\nx\r\n").await.is_ok() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                });
            }
        });
        let timeouts = NodeTimeouts {
            response: Duration::from_secs(2),
            stream: Duration::from_millis(300),
        };
        let r = SessionRouter::with_timeouts(&[url], DEFAULT_IDLE, timeouts).unwrap();
        let id = pin(&r, 0);
        let resp = r.forward(&id, Bytes::from_static(b"records")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let collected = resp.into_body().collect().await;
        assert!(
            collected.is_err(),
            "an endless stream is cut at the overall bound"
        );
    }
}
