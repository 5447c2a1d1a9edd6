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
use futures::TryStreamExt as _;
use http::{HeaderMap, HeaderValue, StatusCode};
use rand_core::{OsRng, RngCore};

use crate::inner::{InnerState, problem, require_token};

/// Header naming the session on the gateway→device and gateway→node legs.
pub const SESSION_ID_HEADER: &str = "confide-session-id";
/// Default idle timeout (docs/sessions.md).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(120);
/// Largest body forwarded to a node in one call.
const MAX_FORWARD: usize = 256 * 1024;

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
                .timeout(Duration::from_secs(5))
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
        let resp = match self
            .http
            .post(url)
            .header(SESSION_ID_HEADER, &id)
            .body(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(_) => {
                self.mark_gone(&id, node);
                return node_gone();
            }
        };
        if !resp.status().is_success() {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-node-available",
                "the node refused the session",
            );
        }
        let records = match resp.bytes().await {
            Ok(b) => b,
            Err(_) => {
                self.mark_gone(&id, node);
                return node_gone();
            }
        };
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
        let resp = match self.http.post(url).body(body).send().await {
            Ok(r) => r,
            Err(_) => {
                self.mark_gone(id, node);
                return node_gone();
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
        // Chunks go out as the node produces them; the gateway holds none of them.
        let stream = resp.bytes_stream().map_err(std::io::Error::other);
        (StatusCode::OK, Body::from_stream(stream)).into_response()
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
        let _ = self.http.delete(url).send().await;
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
                    // Streamed in two pieces, as a node streams generated records.
                    let parts = futures::stream::iter([
                        Ok::<_, std::io::Error>(format!("{name}:{id}:")),
                        Ok(format!("{}", body.len())),
                    ]);
                    Body::from_stream(parts)
                })
                .delete(|| async { StatusCode::NO_CONTENT }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        url
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
                assert_eq!(body_text(fwd).await, format!("{name}:{id}:7"));
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
}
