//! The OHTTP gateway (operator): decapsulates, redeems tokens, routes sessions.
//!
//! Outer resources (reached by relays):
//! - `POST /gateway` and `POST /.well-known/ohttp-gateway` (RFC 9540 §4, the path a
//!   standard relay appends to a gateway origin): `message/ohttp-req` →
//!   `message/ohttp-res` (RFC 9458 §4-§5), and `message/ohttp-chunked-req` →
//!   `message/ohttp-chunked-res` (draft-ietf-ohai-chunked-ohttp), the latter streamed
//!   chunk by chunk.
//! - `GET /ohttp-keys` and `GET /.well-known/ohttp-gateway` (RFC 9540 §5):
//!   `application/ohttp-keys` (RFC 9458 §3.2), current key first.
//!
//! Errors before decapsulation are unencapsulated RFC 9457 problems (RFC 9458 §5.2);
//! an unknown key or unsupported algorithm is the `ohttp-key` problem type (§5.3) so
//! that clients refetch keys. Errors after decapsulation are encapsulated responses
//! from the inner resources ([`inner`]), including the `date` problem (§6.5.2).
//! Nothing about a request's content reaches a log line: only kinds and sizes.

pub mod inner;
pub mod keys;
pub mod metrics;
pub mod replay;
pub mod sessions;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use confide_ohttp::bhttp::{self, Fields};
use confide_ohttp::{
    CHUNKED_REQUEST_MEDIA_TYPE, CHUNKED_RESPONSE_MEDIA_TYPE, KEYS_MEDIA_TYPE, KeyConfig,
    REQUEST_MEDIA_TYPE, RESPONSE_MEDIA_TYPE,
};
use confide_svc::problem::Problem;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use rand_core::OsRng;
use tower::ServiceExt;

pub use inner::{InnerState, TokenGate, TokenRejection};
pub use keys::{KeyRing, KeySchedule};
pub use metrics::GatewayMetrics;
pub use replay::{ReplayCache, ReplayUnavailable};

/// The IANA problem type for key configuration problems (RFC 9458 §5.3, §9.5).
pub const OHTTP_KEY_PROBLEM: &str = "https://iana.org/assignments/http-problem-types#ohttp-key";
/// The RFC 9540 well-known gateway resource (§4: where requests go; §5: where key
/// configurations are fetched): `GET` answers the key configurations,
/// `POST` takes encapsulated requests.
pub const WELL_KNOWN_PATH: &str = "/.well-known/ohttp-gateway";
/// The IANA problem type for a clock difference (RFC 9458 §6.5.2, §9.4).
pub const DATE_PROBLEM: &str = "https://iana.org/assignments/http-problem-types#date";

/// Gateway errors (setup and key material; request errors become HTTP responses).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An OHTTP key problem.
    #[error("OHTTP: {0}")]
    Ohttp(#[from] confide_ohttp::Error),
    /// The seed file could not be read, parsed or written.
    #[error("key file: {0}")]
    KeyFile(String),
    /// An invalid setting.
    #[error("configuration: {0}")]
    Config(&'static str),
}

/// Current Unix time in seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Limits and policy.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest encapsulated request body accepted.
    pub max_request_body: usize,
    /// Largest inner response collected for a non-chunked reply.
    pub max_response_body: usize,
    /// If set, only these peer addresses (the relays) may use `POST /gateway`.
    pub allowed_relays: Option<Vec<IpAddr>>,
    /// Replay window in seconds (RFC 9458 §6.5).
    pub replay_window: u64,
    /// Most remembered encapsulated keys.
    pub replay_capacity: usize,
    /// Remember encapsulated keys in this Redis, shared with the other gateway
    /// replicas, instead of in this process (RFC 9458 §6.5 across replicas).
    pub shared_replay: Option<confide_token_store::RedisShared>,
    /// Where refusals, decapsulation failures and redemptions are counted.
    pub metrics: GatewayMetrics,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_request_body: 1 << 20,
            max_response_body: 8 << 20,
            allowed_relays: None,
            replay_window: 300,
            replay_capacity: 1 << 20,
            shared_replay: None,
            metrics: GatewayMetrics::default(),
        }
    }
}

/// The gateway: keys, inner resources, policy.
pub struct Gateway {
    ring: Arc<KeyRing>,
    inner: Router,
    config: GatewayConfig,
    replay: ReplayCache,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over `ring` with the built-in inner resources.
    pub fn new(
        ring: Arc<KeyRing>,
        config: GatewayConfig,
        tokens: Option<Arc<dyn TokenGate>>,
    ) -> Self {
        let inner = inner::router(Arc::new(InnerState {
            ring: ring.clone(),
            tokens,
            metrics: config.metrics.clone(),
        }));
        let mut replay = ReplayCache::new(config.replay_window, config.replay_capacity);
        if let Some(shared) = &config.shared_replay {
            replay = replay.with_shared(shared.clone());
        }
        Self {
            ring,
            inner,
            config,
            replay,
        }
    }

    /// Add inner resources (the node's session routes). Routes given here take part in
    /// the same dispatch as `/v1/health` and take precedence over the built-in ones
    /// (session routing replaces the built-in `POST /v1/sessions` answer).
    pub fn with_inner_routes(mut self, routes: Router) -> Self {
        self.inner = routes.fallback_service(self.inner);
        self
    }

    /// The outer HTTP router. Both the historical paths and the RFC 9540 well-known
    /// resource are served, so a relay that forwards to a configured full URL and a
    /// standard relay that appends `/.well-known/ohttp-gateway` to the origin both work.
    pub fn router(self) -> Router {
        Router::new()
            .route("/gateway", post(gateway))
            .route("/ohttp-keys", get(ohttp_keys))
            .route(WELL_KNOWN_PATH, get(ohttp_keys).post(gateway))
            .with_state(Arc::new(self))
    }
}

fn ohttp_key_problem(title: &str, detail: String) -> Response {
    Problem::new(StatusCode::BAD_REQUEST, OHTTP_KEY_PROBLEM, title)
        .with_detail(detail)
        .into_response()
}

/// `GET /ohttp-keys` (RFC 9458 §3.2). Cacheable until the next rotation.
async fn ohttp_keys(State(gw): State<Arc<Gateway>>) -> Response {
    let now = unix_now();
    match gw.ring.server(now) {
        Ok(server) => {
            let max_age = gw
                .ring
                .schedule()
                .next_rotation(now)
                .map_or(86_400, |t| t.saturating_sub(now));
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, KEYS_MEDIA_TYPE.to_owned()),
                    (header::CACHE_CONTROL, format!("public, max-age={max_age}")),
                ],
                KeyConfig::encode_list(&server.configs()),
            )
                .into_response()
        }
        Err(_) => inner::problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "keys-unavailable",
            "keys unavailable",
        ),
    }
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// `POST /gateway`.
async fn gateway(State(gw): State<Arc<Gateway>>, request: http::Request<Body>) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    // Only relays may reach the gateway when so configured. A missing peer address
    // (no socket) is refused too.
    if let Some(allowed) = &gw.config.allowed_relays {
        let ok = peer.is_some_and(|a| allowed.contains(&a.ip()));
        if !ok {
            tracing::warn!("request from a peer that is not a configured relay refused");
            gw.config.metrics.refused("relay_required");
            return inner::problem(
                StatusCode::FORBIDDEN,
                "relay-required",
                "requests must come through a relay",
            );
        }
    }
    let chunked = match media_type(&headers).as_deref() {
        Some(REQUEST_MEDIA_TYPE) => false,
        Some(CHUNKED_REQUEST_MEDIA_TYPE) => true,
        _ => {
            gw.config.metrics.refused("unsupported_media_type");
            return inner::problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "expected message/ohttp-req or message/ohttp-chunked-req",
            );
        }
    };
    let limit = gw.config.max_request_body;
    let body = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            gw.config.metrics.refused("too_large");
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "urn:confide:problem:request-too-large",
                "encapsulated request too large",
            )
            .with_detail(format!("limit is {limit} bytes"))
            .into_response();
        }
        Err(_) => {
            gw.config.metrics.refused("body_unreadable");
            return inner::problem(
                StatusCode::BAD_REQUEST,
                "body-unreadable",
                "request body could not be read",
            );
        }
    };
    let now = unix_now();
    let server = match gw.ring.server(now) {
        Ok(s) => s,
        Err(_) => {
            gw.config.metrics.refused("keys_unavailable");
            return inner::problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "keys-unavailable",
                "keys unavailable",
            );
        }
    };
    let decapsulated = if chunked {
        server
            .decapsulate_chunked(&body)
            .map(|(pt, r)| (pt, Responder::Chunked(r)))
    } else {
        server
            .decapsulate(&body)
            .map(|(pt, r)| (pt, Responder::Plain(r)))
    };
    let (plaintext, responder) = match decapsulated {
        Ok(x) => x,
        Err(e) => return decapsulation_error(&gw.config.metrics, &e),
    };
    // A successfully decrypted enc seen before is a replay (RFC 9458 §6.5).
    let mut enc = [0u8; 32];
    if let Some(b) = body.get(7..39) {
        enc.copy_from_slice(b);
    }
    match gw.replay.check(enc, now).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("replayed encapsulated request refused");
            gw.config.metrics.refused("replayed");
            return inner::problem(
                StatusCode::BAD_REQUEST,
                "replayed-request",
                "encapsulated request replayed",
            );
        }
        Err(_) => {
            // Without the shared check a replay could pass: refuse (fail closed).
            gw.config.metrics.refused("replay_store_unavailable");
            return inner::problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "replay-check-unavailable",
                "the replay check is unavailable",
            );
        }
    }
    let response = match bhttp::Request::decode(&plaintext) {
        Ok(req) => dispatch(&gw, req, now).await,
        Err(e) => {
            tracing::info!(kind = %e, "malformed binary HTTP request");
            gw.config.metrics.refused("malformed_bhttp");
            inner::problem(
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "malformed binary HTTP request",
            )
        }
    };
    responder
        .respond(response, gw.config.max_response_body)
        .await
}

fn decapsulation_error(metrics: &GatewayMetrics, e: &confide_ohttp::Error) -> Response {
    use confide_ohttp::Error as E;
    tracing::info!(kind = %e, "decapsulation failed");
    // The kind is one of four fixed names; the error's text (which may quote a key id
    // or a length from the request) never becomes a label.
    metrics.decapsulation_failed(match e {
        E::UnknownKeyId(_) => "unknown_key_id",
        E::UnsupportedKem(_)
        | E::UnsupportedKdf(_)
        | E::UnsupportedAead(_)
        | E::SuiteNotOffered => "unsupported_suite",
        E::Truncated(_) | E::Chunk(_) => "malformed",
        _ => "decryption_failed",
    });
    match e {
        E::UnknownKeyId(id) => ohttp_key_problem(
            "key identifier unknown",
            format!("key id {id} is not current"),
        ),
        E::UnsupportedKem(_)
        | E::UnsupportedKdf(_)
        | E::UnsupportedAead(_)
        | E::SuiteNotOffered => ohttp_key_problem("key configuration not supported", e.to_string()),
        E::Truncated(_) | E::Chunk(_) => inner::problem(
            StatusCode::BAD_REQUEST,
            "malformed-encapsulation",
            "malformed encapsulated request",
        ),
        _ => inner::problem(
            StatusCode::BAD_REQUEST,
            "decryption-failed",
            "encapsulated request could not be decrypted",
        ),
    }
}

/// Check the inner `Date` (RFC 9458 §6.5.1) and call the inner router.
async fn dispatch(gw: &Gateway, req: bhttp::Request, now: u64) -> Response {
    if let Some(date) = req.headers.get("date") {
        let parsed = std::str::from_utf8(date)
            .ok()
            .and_then(|s| httpdate::parse_http_date(s).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let fresh = parsed.is_some_and(|t| t.abs_diff(now) <= gw.config.replay_window);
        if !fresh {
            gw.config.metrics.refused("stale_date");
            let mut r = Problem::new(
                StatusCode::BAD_REQUEST,
                DATE_PROBLEM,
                "date is not acceptable",
            )
            .into_response();
            if let Ok(v) =
                HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now()))
            {
                r.headers_mut().insert(header::DATE, v);
            }
            return r;
        }
    }
    let Ok(method) = Method::from_bytes(req.method.as_bytes()) else {
        gw.config.metrics.refused("malformed_bhttp");
        return inner::problem(StatusCode::BAD_REQUEST, "malformed-request", "bad method");
    };
    let mut builder = http::Request::builder()
        .method(method)
        .uri(req.path.as_str());
    for (name, value) in req.headers.iter() {
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) else {
            gw.config.metrics.refused("malformed_bhttp");
            return inner::problem(
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "bad header field",
            );
        };
        builder = builder.header(n, v);
    }
    let Ok(http_req) = builder.body(Body::from(req.content)) else {
        gw.config.metrics.refused("malformed_bhttp");
        return inner::problem(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "bad request target",
        );
    };
    match gw.inner.clone().oneshot(http_req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// How the response to one request is encapsulated.
enum Responder {
    Plain(confide_ohttp::ServerResponse),
    Chunked(confide_ohttp::ChunkedServerResponse),
}

/// Header fields of an inner response that go into the Binary HTTP message
/// (connection-specific fields stay out, RFC 9292 §3.6 / RFC 9110 §7.6.1).
fn response_fields(headers: &HeaderMap) -> Fields {
    let mut f = Fields::new();
    for (n, v) in headers {
        if matches!(
            n.as_str(),
            "connection" | "transfer-encoding" | "keep-alive" | "content-length"
        ) {
            continue;
        }
        f.append(n.as_str(), v.as_bytes().to_vec());
    }
    f
}

fn outer(media: &'static str, body: Body) -> Response {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

impl Responder {
    async fn respond(self, response: Response, max_body: usize) -> Response {
        let (parts, body) = response.into_parts();
        let status = parts.status.as_u16();
        let fields = response_fields(&parts.headers);
        match self {
            Responder::Plain(sr) => {
                // A plain answer to a streamed resource (a relay without chunked OHTTP,
                // ADR 0402) is collected whole; a stream cut by the node is not "too large".
                let collected = match Limited::new(body, max_body).collect().await {
                    Ok(c) => c,
                    Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                        return inner::problem(
                            StatusCode::BAD_GATEWAY,
                            "response-too-large",
                            "inner response too large",
                        );
                    }
                    Err(_) => {
                        return inner::problem(
                            StatusCode::BAD_GATEWAY,
                            "inner-response-failed",
                            "the inner response ended with an error",
                        );
                    }
                };
                let trailers = collected
                    .trailers()
                    .map(response_fields)
                    .unwrap_or_default();
                let msg = bhttp::Response {
                    status,
                    headers: fields,
                    content: collected.to_bytes().to_vec(),
                    trailers,
                };
                match sr.encapsulate(&msg.encode(), &mut OsRng) {
                    Ok(enc) => outer(RESPONSE_MEDIA_TYPE, Body::from(enc)),
                    Err(_) => inner::problem(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "encapsulation-failed",
                        "encapsulation failed",
                    ),
                }
            }
            Responder::Chunked(csr) => {
                let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
                tokio::spawn(stream_chunks(csr, status, fields, body, tx));
                let stream = futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|x| (x, rx))
                });
                outer(CHUNKED_RESPONSE_MEDIA_TYPE, Body::from_stream(stream))
            }
        }
    }
}

/// Seal an inner response as chunked OHTTP as its body arrives: the nonce, the
/// indeterminate-length BHTTP head, one sealed chunk per body frame, then the final
/// chunk with the trailers. If the inner body fails, the stream is cut without a final
/// chunk, which the client detects as truncation (fail closed).
async fn stream_chunks(
    csr: confide_ohttp::ChunkedServerResponse,
    status: u16,
    fields: Fields,
    mut body: Body,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let io_err = |what: &'static str| std::io::Error::other(what);
    let Ok((nonce, mut sealer)) = csr.start(&mut OsRng) else {
        let _ = tx.send(Err(io_err("encapsulation failed"))).await;
        return;
    };
    if tx.send(Ok(Bytes::from(nonce))).await.is_err() {
        return;
    }
    let head = bhttp::Response::encode_stream_head(status, &fields);
    match sealer.seal(&head, false) {
        Ok(c) => {
            if tx.send(Ok(Bytes::from(c))).await.is_err() {
                return;
            }
        }
        Err(_) => return,
    }
    let mut trailers = Fields::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(_) => {
                let _ = tx.send(Err(io_err("inner response failed"))).await;
                return;
            }
        };
        match frame.into_data() {
            Ok(data) => {
                let sealed = match sealer.seal(&bhttp::encode_stream_chunk(&data), false) {
                    Ok(s) => s,
                    Err(_) => return,
                };
                if !sealed.is_empty() && tx.send(Ok(Bytes::from(sealed))).await.is_err() {
                    return; // the relay or client went away
                }
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = response_fields(&t);
                }
            }
        }
    }
    if let Ok(last) = sealer.seal(&bhttp::encode_stream_end(&trailers), true) {
        let _ = tx.send(Ok(Bytes::from(last))).await;
    }
}
