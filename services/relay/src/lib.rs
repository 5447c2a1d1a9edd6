//! The OHTTP relay (third party): forwards encapsulated bodies only
//! (the Oblivious Relay Resource of RFC 9458 §2, with the duties of §6.2-§6.3).
//!
//! The relay learns who is asking (it sees the client's address) and nothing else: it
//! forwards the encapsulated body and its media type to the one gateway it is
//! configured for, over its own connection pool, and nothing of the client's request
//! beyond those two things: no `Forwarded`/`X-Forwarded-For`, no cookies, no user
//! agent, no other header. Its abuse duties are a body-size limit, timeouts and a
//! per-client-address rate limit (§6.3). Responses are passed through as they arrive,
//! so chunked OHTTP streams are never buffered whole. Only sizes and statuses are
//! logged; the client address is used for rate limiting and never logged or forwarded.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use confide_svc::metrics::{CounterFamily, MetricsRegistry};
use confide_svc::problem::Problem;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Limited};

/// Request media types the relay forwards (RFC 9458 §9.1, chunked draft §8).
const REQUEST_TYPES: [&str; 2] = ["message/ohttp-req", "message/ohttp-chunked-req"];
/// Response media types passed back; anything else from the gateway is dropped.
const RESPONSE_TYPES: [&str; 4] = [
    "message/ohttp-res",
    "message/ohttp-chunked-res",
    "application/problem+json",
    "application/ohttp-keys",
];

/// Relay setup errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The gateway URL is not an absolute http(s) URL.
    #[error("gateway URL must be an absolute http:// or https:// URL")]
    GatewayUrl,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// An invalid limit.
    #[error("configuration: {0}")]
    Config(&'static str),
}

/// Limits and the gateway to forward to.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The Oblivious Gateway Resource URL.
    pub gateway: String,
    /// Largest request body forwarded.
    pub max_body: usize,
    /// Time allowed to connect and receive the gateway's response head.
    pub timeout: Duration,
    /// Longest silence allowed between two pieces of a streamed response.
    pub idle_timeout: Duration,
    /// Sustained requests per second per client address.
    pub rate_per_sec: f64,
    /// Burst size per client address.
    pub burst: f64,
    /// Pooled idle connections to the gateway.
    pub pool_idle: usize,
}

impl RelayConfig {
    /// Defaults for `gateway`.
    pub fn new(gateway: impl Into<String>) -> Self {
        Self {
            gateway: gateway.into(),
            max_body: 1 << 20,
            timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            rate_per_sec: 20.0,
            burst: 40.0,
            pool_idle: 32,
        }
    }
}

/// The relay's route templates, as given to its router (the `route` label's values).
pub const ROUTES: &[&str] = &["/", "/{*path}"];

/// What happened to a request, for host monitoring (docs/operations.md). The label is
/// one of a fixed set; nothing of the request or the client is recorded.
#[derive(Debug, Clone, Default)]
pub struct RelayMetrics {
    outcomes: CounterFamily<1>,
}

impl RelayMetrics {
    /// Register the relay's own metrics.
    pub fn new(reg: &mut MetricsRegistry) -> Self {
        Self {
            outcomes: reg.counter_family_of(
                "relay_requests",
                "Requests by outcome: forwarded, or why the relay refused or failed them",
                "outcome",
                Self::OUTCOMES,
            ),
        }
    }

    /// The values of the `outcome` label.
    pub const OUTCOMES: &[&str] = &[
        "forwarded",
        "rate_limited",
        "unsupported_media_type",
        "too_large",
        "body_unreadable",
        "gateway_unreachable",
        "gateway_timeout",
    ];

    fn count(&self, outcome: &'static str) {
        self.outcomes.get_or_create(&[("outcome", outcome)]).inc();
    }
}

/// Lock shards of the rate limiter: requests from different addresses rarely wait for
/// each other.
const LIMITER_SHARDS: usize = 16;

type Buckets = HashMap<IpAddr, (f64, Instant)>;

/// One shard's buckets in two generations: `current` holds the addresses seen in this
/// window, `previous` those seen only in the window before.
#[derive(Debug, Default)]
struct Shard {
    current: Buckets,
    previous: Buckets,
    window_start: Option<Instant>,
}

/// A token bucket per client address.
///
/// Forgetting idle clients costs O(1) per request: the buckets live in two generations per
/// shard, each a refill period long (`burst / rate`, after which an untouched bucket is full
/// and indistinguishable from a new one). When a window ends, the older generation is
/// dropped whole — every bucket in it was last touched at least a refill period ago — and
/// dropped after the lock is released. An address seen again moves back to the current
/// generation with its state. (Before, past 100 000 addresses every request scanned every
/// bucket under one mutex.)
#[derive(Debug)]
pub struct RateLimiter {
    shards: Box<[Mutex<Shard>]>,
    hasher: std::collections::hash_map::RandomState,
    rate: f64,
    burst: f64,
    window: Duration,
}

impl RateLimiter {
    /// `rate` tokens per second, at most `burst` saved.
    pub fn new(rate: f64, burst: f64) -> Self {
        // A bucket that never refills (rate 0) is never forgotten.
        let window = Duration::try_from_secs_f64(burst / rate).unwrap_or(Duration::MAX);
        Self {
            shards: (0..LIMITER_SHARDS)
                .map(|_| Mutex::new(Shard::default()))
                .collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            rate,
            burst,
            window,
        }
    }

    /// Take one token for `ip` at `now`; `false` means refuse. A poisoned lock refuses.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        use std::hash::BuildHasher as _;
        let i = (self.hasher.hash_one(ip) % LIMITER_SHARDS as u64) as usize;
        let Ok(mut shard) = self.shards[i].lock() else {
            return false;
        };
        let start = *shard.window_start.get_or_insert(now);
        let mut expired = None;
        if now.saturating_duration_since(start) >= self.window {
            let current = std::mem::take(&mut shard.current);
            expired = Some(std::mem::replace(&mut shard.previous, current));
            shard.window_start = Some(now);
        }
        let bucket = match shard.previous.remove(&ip) {
            Some(b) => b,
            None => shard.current.get(&ip).copied().unwrap_or((self.burst, now)),
        };
        let (tokens, last) = bucket;
        let elapsed = now.saturating_duration_since(last).as_secs_f64();
        let mut tokens = (tokens + elapsed * self.rate).min(self.burst);
        let allowed = tokens >= 1.0;
        if allowed {
            tokens -= 1.0;
        }
        shard.current.insert(ip, (tokens, now));
        drop(shard);
        // Freeing a large generation happens outside the lock.
        drop(expired);
        allowed
    }

    /// Addresses with a bucket (both generations), for tests and metrics.
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok().map(|s| s.current.len() + s.previous.len()))
            .sum()
    }
}

/// The address a rate-limit bucket is keyed by: an IPv4 address as is, an IPv6
/// address by its /64 prefix (one subscriber usually holds a whole /64, so per-address
/// buckets would let one client rotate through 2^64 addresses). IPv4-mapped IPv6
/// addresses count as the IPv4 address.
pub fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

/// The relay.
#[derive(Debug)]
pub struct Relay {
    config: RelayConfig,
    gateway: reqwest::Url,
    client: reqwest::Client,
    limiter: RateLimiter,
    metrics: RelayMetrics,
}

impl Relay {
    /// Build a relay with its own connection pool.
    pub fn new(config: RelayConfig) -> Result<Self, Error> {
        let gateway = reqwest::Url::parse(&config.gateway).map_err(|_| Error::GatewayUrl)?;
        if !matches!(gateway.scheme(), "http" | "https") || gateway.host().is_none() {
            return Err(Error::GatewayUrl);
        }
        if config.max_body == 0 || config.rate_per_sec <= 0.0 || config.burst < 1.0 {
            return Err(Error::Config("limits must be positive (burst at least 1)"));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .pool_max_idle_per_host(config.pool_idle)
            // Never route through a proxy from the environment, and send no user agent.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Client(e.to_string()))?;
        let limiter = RateLimiter::new(config.rate_per_sec, config.burst);
        Ok(Self {
            config,
            gateway,
            client,
            limiter,
            metrics: RelayMetrics::default(),
        })
    }

    /// Count outcomes into `metrics` (without this they are counted nowhere).
    pub fn with_metrics(mut self, metrics: RelayMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The relay's HTTP router: `POST /` (and any path) forwards to the gateway.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", post(relay))
            .route("/{*path}", post(relay))
            .with_state(Arc::new(self))
    }
}

fn problem(status: StatusCode, name: &str, title: &str) -> Response {
    Problem::new(status, &format!("urn:confide:problem:{name}"), title).into_response()
}

fn media_type(headers: &HeaderMap) -> Option<&'static str> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let m = v.split(';').next().unwrap_or("").trim();
    REQUEST_TYPES
        .into_iter()
        .find(|t| t.eq_ignore_ascii_case(m))
}

async fn relay(State(relay): State<Arc<Relay>>, request: http::Request<Body>) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let ip = rate_key(peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip()));
    if !relay.limiter.allow(ip, Instant::now()) {
        tracing::info!("rate limited");
        relay.metrics.count("rate_limited");
        let mut r = problem(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "too many requests",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let Some(media) = media_type(&headers) else {
        relay.metrics.count("unsupported_media_type");
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "expected message/ohttp-req or message/ohttp-chunked-req",
        );
    };
    let limit = relay.config.max_body;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        relay.metrics.count("too_large");
        return too_large(limit);
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            relay.metrics.count("too_large");
            return too_large(limit);
        }
        Err(_) => {
            relay.metrics.count("body_unreadable");
            return problem(
                StatusCode::BAD_REQUEST,
                "body-unreadable",
                "request body could not be read",
            );
        }
    };
    let size = bytes.len();
    // Only the media type and the body leave the relay.
    let request = relay
        .client
        .post(relay.gateway.clone())
        .header(header::CONTENT_TYPE, media)
        .body(bytes);
    let upstream = match tokio::time::timeout(relay.config.timeout, request.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => {
            tracing::warn!(size, "gateway unreachable");
            relay.metrics.count("gateway_unreachable");
            return problem(
                StatusCode::BAD_GATEWAY,
                "gateway-unreachable",
                "gateway unreachable",
            );
        }
        Err(_) => {
            tracing::warn!(size, "gateway timed out");
            relay.metrics.count("gateway_timeout");
            return problem(
                StatusCode::GATEWAY_TIMEOUT,
                "gateway-timeout",
                "gateway timed out",
            );
        }
    };
    let status = upstream.status();
    tracing::info!(size, status = status.as_u16(), "forwarded");
    relay.metrics.count("forwarded");
    let content_type = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let m = v.split(';').next().unwrap_or("").trim();
            RESPONSE_TYPES
                .into_iter()
                .find(|t| t.eq_ignore_ascii_case(m))
        });
    // Pass the body through as it arrives; a stalled stream is cut after the idle
    // timeout (the client sees a truncated chunked response and fails closed).
    let idle = relay.config.idle_timeout;
    let stream = upstream.bytes_stream().boxed();
    let passthrough = futures::stream::unfold(Some(stream), move |state| async move {
        let mut s = state?;
        match tokio::time::timeout(idle, s.next()).await {
            Ok(Some(Ok(b))) => Some((Ok::<Bytes, std::io::Error>(b), Some(s))),
            Ok(Some(Err(_))) => Some((Err(std::io::Error::other("gateway stream failed")), None)),
            Ok(None) => None,
            Err(_) => Some((Err(std::io::Error::other("gateway stream idle")), None)),
        }
    });
    let mut resp = Response::new(Body::from_stream(passthrough));
    *resp.status_mut() = status;
    if let Some(ct) = content_type {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn too_large(limit: usize) -> Response {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "urn:confide:problem:request-too-large",
        "encapsulated request too large",
    )
    .with_detail(format!("limit is {limit} bytes"))
    .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rate_limiter_refills_per_address() {
        let l = RateLimiter::new(2.0, 2.0);
        let t = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.allow(a, t));
        assert!(l.allow(a, t));
        assert!(!l.allow(a, t), "burst exhausted");
        assert!(l.allow(b, t), "other clients unaffected");
        assert!(l.allow(a, t + Duration::from_millis(600)), "refilled");
    }

    /// Forgetting idle clients is O(1) per request (issue 13, finding 7): 300 000 addresses
    /// are admitted quickly (the old limiter scanned every bucket on each request past
    /// 100 000), an exhausted client is not forgotten while its bucket is still empty, and
    /// the buckets of clients idle for two refill periods are gone.
    #[test]
    fn many_addresses_cost_constant_time_and_idle_ones_are_forgotten() {
        let l = RateLimiter::new(1.0, 2.0); // full again 2 s after the last request
        let t = Instant::now();
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(l.allow(a, t) && l.allow(a, t));
        assert!(!l.allow(a, t));
        let started = std::time::Instant::now();
        for i in 0..300_000u32 {
            let ip = IpAddr::V4((0x0A00_0000 + i).into());
            assert!(l.allow(ip, t + Duration::from_millis(100)));
        }
        let spent = started.elapsed();
        assert!(
            spent < Duration::from_secs(10),
            "300k admissions took {spent:?}"
        );
        assert_eq!(l.tracked(), 300_001);
        // Still exhausted half a second later: not forgotten among the crowd.
        assert!(!l.allow(a, t + Duration::from_millis(500)));
        // Two refill periods later, after fresh traffic touched every shard, the idle crowd
        // is gone; `a` was refilled and is served.
        for round in 1..=2u64 {
            for i in 0..2_000u32 {
                let ip = IpAddr::V4((0xC000_0200 + i).into());
                l.allow(ip, t + Duration::from_millis(2_100 * round));
            }
        }
        assert!(l.tracked() < 10_000, "{} buckets kept", l.tracked());
        assert!(l.allow(a, t + Duration::from_secs(5)));
    }

    async fn call(router: &Router, media: &str, body: Vec<u8>, peer: &str) -> StatusCode {
        use tower::ServiceExt;
        let mut req = http::Request::post("/")
            .header("content-type", media)
            .body(Body::from(body))
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        router.clone().oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn limits_apply_before_anything_is_forwarded() {
        // Nothing listens on port 1: a request that passed every check gets 502.
        let mut c = RelayConfig::new("http://127.0.0.1:1/gateway");
        c.max_body = 100;
        c.rate_per_sec = 0.001;
        c.burst = 3.0;
        let r = Relay::new(c).unwrap().router();
        assert_eq!(
            call(&r, "message/ohttp-req", vec![0; 101], "192.0.2.9:5").await,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            call(&r, "text/plain", vec![0; 10], "192.0.2.9:5").await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            call(&r, "message/ohttp-req", vec![0; 10], "192.0.2.9:5").await,
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            call(&r, "message/ohttp-req", vec![0; 10], "192.0.2.9:5").await,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            call(&r, "message/ohttp-chunked-req", vec![0; 10], "192.0.2.10:5").await,
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(rate_key(a), rate_key(b));
        assert_ne!(rate_key(a), rate_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(rate_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bad_gateway_urls_and_limits_are_refused() {
        assert!(matches!(
            Relay::new(RelayConfig::new("not a url")),
            Err(Error::GatewayUrl)
        ));
        assert!(matches!(
            Relay::new(RelayConfig::new("ftp://x/gateway")),
            Err(Error::GatewayUrl)
        ));
        let mut c = RelayConfig::new("http://127.0.0.1:1/gateway");
        c.burst = 0.0;
        assert!(matches!(Relay::new(c), Err(Error::Config(_))));
    }
}
