//! Host metrics: OpenMetrics text on a separate listener (ADR 0900, docs/operations.md).
//!
//! Every party registers its metrics in one [`MetricsRegistry`] at start, then serves
//! them with [`spawn_endpoint`] on its own `--metrics-listen` address, never on the
//! public one. What may become a metric is deliberately narrow:
//!
//! - names are fixed strings chosen in the code;
//! - label values come from fixed sets chosen in the code (`&'static str`), with two
//!   documented, configuration-bounded exceptions (a token key id prefix of a key the
//!   gateway is configured with, and a witness's position in the ledger's list);
//! - HTTP requests are labelled by the route *template* the router matched, replaced by
//!   the party's own static string from its route list ([`HttpMetrics::new`]); anything
//!   that is not on the list counts as `other`. Raw paths, query strings, header values
//!   and peer addresses are never looked at.
//!
//! `tests/metrics_e2e.rs` in the CLI scrapes every party after a canary run and checks
//! the output against the table in docs/operations.md, in both directions.

use std::fmt::Debug;
use std::hash::Hash;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body::{Frame, SizeHint};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use prometheus_client;

/// The OpenMetrics 1.0 text media type (what the encoder writes, `# EOF` included).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Prefix of every metric name.
pub const PREFIX: &str = "confide";
/// The path the metrics listener answers on.
pub const PATH: &str = "/metrics";

/// A fixed label set: names and values are static strings chosen in the code.
pub type Labels<const N: usize> = [(&'static str, &'static str); N];
/// A counter family over fixed labels.
pub type CounterFamily<const N: usize> = Family<Labels<N>, Counter>;
/// A gauge family over fixed labels.
pub type GaugeFamily<const N: usize> = Family<Labels<N>, Gauge>;
/// A histogram family over fixed labels; the constructor fixes the buckets.
pub type HistogramFamily<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;

/// Latency buckets, seconds: from a local answer to a CPU model thinking for minutes.
pub fn latency_histogram() -> Histogram {
    Histogram::new([0.005, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0, 300.0])
}

/// Coarse body-size buckets, bytes. Coarse on purpose: exact sizes of single requests
/// are traffic shape an operator has no need to keep (DESIGN.md, "What the operator can
/// still observe").
pub fn size_histogram() -> Histogram {
    Histogram::new([
        256.0,
        1024.0,
        4096.0,
        16_384.0,
        65_536.0,
        262_144.0,
        1_048_576.0,
    ])
}

type Hook = Box<dyn Fn() + Send + Sync>;

/// The metrics of one process, being registered.
pub struct MetricsRegistry {
    registry: Registry,
    hooks: Vec<Hook>,
}

impl Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsRegistry")
            .field("hooks", &self.hooks.len())
            .finish_non_exhaustive()
    }
}

impl Default for MetricsRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsRegistry {
    /// An empty registry; every name gets the `confide_` prefix.
    pub fn new() -> Self {
        Self {
            registry: Registry::with_prefix(PREFIX),
            hooks: Vec::new(),
        }
    }

    /// Register a counter family. `name` has no `_total`: the encoder adds it.
    pub fn counter_family<S>(
        &mut self,
        name: &'static str,
        help: &'static str,
    ) -> Family<S, Counter>
    where
        S: EncodeLabelSet + Clone + Hash + Eq + Debug + Send + Sync + 'static,
    {
        let f = Family::<S, Counter>::default();
        self.registry.register(name, help, f.clone());
        f
    }

    /// Register a counter family with one label whose values are `values`, each series
    /// created at zero so that it is exported (and alerts can take its rate) before the
    /// first event.
    pub fn counter_family_of(
        &mut self,
        name: &'static str,
        help: &'static str,
        label: &'static str,
        values: &[&'static str],
    ) -> CounterFamily<1> {
        let f: CounterFamily<1> = self.counter_family(name, help);
        for v in values {
            let _ = f.get_or_create(&[(label, *v)]);
        }
        f
    }

    /// Register a counter without labels.
    pub fn counter(&mut self, name: &'static str, help: &'static str) -> Counter {
        let c = Counter::default();
        self.registry.register(name, help, c.clone());
        c
    }

    /// Register a gauge without labels.
    pub fn gauge(&mut self, name: &'static str, help: &'static str) -> Gauge {
        let g = Gauge::default();
        self.registry.register(name, help, g.clone());
        g
    }

    /// Register a gauge family.
    pub fn gauge_family<S>(&mut self, name: &'static str, help: &'static str) -> Family<S, Gauge>
    where
        S: EncodeLabelSet + Clone + Hash + Eq + Debug + Send + Sync + 'static,
    {
        let f = Family::<S, Gauge>::default();
        self.registry.register(name, help, f.clone());
        f
    }

    /// Register a histogram family whose buckets `buckets` fixes.
    pub fn histogram_family<S>(
        &mut self,
        name: &'static str,
        help: &'static str,
        buckets: fn() -> Histogram,
    ) -> Family<S, Histogram, fn() -> Histogram>
    where
        S: EncodeLabelSet + Clone + Hash + Eq + Debug + Send + Sync + 'static,
        fn() -> Histogram: MetricConstructor<Histogram>,
    {
        let f = Family::<S, Histogram, fn() -> Histogram>::new_with_constructor(buckets);
        self.registry.register(name, help, f.clone());
        f
    }

    /// Run `f` before every scrape: for gauges that read a party's own state (session
    /// tables, node health) at the moment they are asked for, rather than keeping a
    /// second copy of it up to date.
    pub fn on_scrape(&mut self, f: impl Fn() + Send + Sync + 'static) {
        self.hooks.push(Box::new(f));
    }

    /// Stop registering; the result is what the endpoint serves.
    pub fn finish(self) -> Arc<Scrape> {
        Arc::new(Scrape {
            registry: self.registry,
            hooks: self.hooks,
        })
    }
}

/// A finished registry, ready to be encoded.
pub struct Scrape {
    registry: Registry,
    hooks: Vec<Hook>,
}

impl Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrape").finish_non_exhaustive()
    }
}

/// Metrics could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("metrics encoding failed")]
pub struct EncodeError;

impl Scrape {
    /// The OpenMetrics text of every registered metric.
    pub fn encode(&self) -> Result<String, EncodeError> {
        for h in &self.hooks {
            h();
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .map_err(|_| EncodeError)?;
        Ok(out)
    }
}

async fn metrics_handler(State(scrape): State<Arc<Scrape>>) -> Response {
    match scrape.encode() {
        Ok(text) => {
            let mut r = text.into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The metrics router: `GET /metrics` and nothing else.
pub fn router(scrape: Arc<Scrape>) -> Router {
    Router::new()
        .route(PATH, get(metrics_handler))
        .with_state(scrape)
}

/// Bind `listen`, print `metrics endpoint: http://ADDR/metrics` on stdout (before the
/// party's own `listening on` line, which `confide up` waits for) and serve the metrics
/// in the background until SIGINT/SIGTERM. Returns the bound address.
pub async fn spawn_endpoint(listen: &str, scrape: Arc<Scrape>) -> anyhow::Result<SocketAddr> {
    use std::io::Write as _;
    let (listener, addr) = crate::bind(listen).await?;
    println!("metrics endpoint: http://{addr}{PATH}");
    std::io::stdout().flush().ok();
    tokio::spawn(async move {
        if let Err(e) = crate::serve(listener, router(scrape)).await {
            tracing::error!(error = %e, "metrics endpoint failed");
        }
    });
    Ok(addr)
}

/// The status class of a response: a fixed string, never the code itself.
pub fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// The label used for requests that matched no route on the list.
pub const OTHER_ROUTE: &str = "other";

/// Request count, latency and body sizes by route template, for one party's public
/// router.
#[derive(Clone)]
pub struct HttpMetrics {
    routes: &'static [&'static str],
    requests: CounterFamily<3>,
    duration: HistogramFamily<2>,
    request_bytes: HistogramFamily<2>,
    response_bytes: HistogramFamily<2>,
}

impl Debug for HttpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetrics")
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl HttpMetrics {
    /// Register the HTTP metrics for a router whose route templates are `routes`
    /// (exactly as given to `Router::route`).
    pub fn new(reg: &mut MetricsRegistry, routes: &'static [&'static str]) -> Self {
        Self {
            routes,
            requests: reg.counter_family("http_requests", "HTTP requests answered"),
            duration: reg.histogram_family(
                "http_request_duration_seconds",
                "Seconds from request to response head",
                latency_histogram,
            ),
            request_bytes: reg.histogram_family(
                "http_request_body_bytes",
                "Request body bytes read, coarse buckets",
                size_histogram,
            ),
            response_bytes: reg.histogram_family(
                "http_response_body_bytes",
                "Response body bytes sent, coarse buckets",
                size_histogram,
            ),
        }
    }

    /// `router` with every request counted. The layer wraps each route, so the
    /// template the router matched is known; it is then looked up in the route list,
    /// and the list's own string is used.
    pub fn instrument(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), track))
    }

    fn route_of(&self, matched: Option<&MatchedPath>) -> &'static str {
        matched
            .and_then(|m| self.routes.iter().copied().find(|r| *r == m.as_str()))
            .unwrap_or(OTHER_ROUTE)
    }
}

async fn track(State(m): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = m.route_of(request.extensions().get::<MatchedPath>());
    let method = method_label(request.method());
    let labels = [("route", route), ("method", method)];
    let request = request.map(|b| {
        Body::new(Counted {
            inner: b,
            bytes: 0,
            sink: Some(m.request_bytes.get_or_create(&labels).clone()),
        })
    });
    let response = next.run(request).await;
    m.duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&[
            ("route", route),
            ("method", method),
            ("status", status_class(response.status())),
        ])
        .inc();
    let sink = m.response_bytes.get_or_create(&labels).clone();
    response.map(|b| {
        Body::new(Counted {
            inner: b,
            bytes: 0,
            sink: Some(sink),
        })
    })
}

/// A body that counts the data bytes passing through it and records the total in its
/// histogram when dropped (a streamed answer is counted once it ends or is cut).
struct Counted {
    inner: Body,
    bytes: u64,
    sink: Option<Histogram>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.bytes = this.bytes.saturating_add(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(h) = self.sink.take() {
            // Precision loss above 2^53 bytes does not matter for a coarse bucket.
            #[allow(clippy::cast_precision_loss)]
            h.observe(self.bytes as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn requests_are_counted_by_template_and_class() {
        let mut reg = MetricsRegistry::new();
        let http = HttpMetrics::new(&mut reg, &["/items/{id}"]);
        let app = http.instrument(
            Router::new()
                .route(
                    "/items/{id}",
                    axum::routing::post(|b: Bytes| async move { b }),
                )
                .fallback(|| async { StatusCode::NOT_FOUND }),
        );
        let scrape = reg.finish();
        for path in ["/items/secret-a", "/items/secret-b", "/nowhere/secret-c"] {
            let r = app
                .clone()
                .oneshot(
                    http::Request::post(path)
                        .body(Body::from(vec![7u8; 300]))
                        .unwrap(),
                )
                .await
                .unwrap();
            let _ = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        }
        let text = scrape.encode().unwrap();
        assert!(!text.contains("secret"), "{text}");
        assert!(
            text.contains(
                "confide_http_requests_total{route=\"/items/{id}\",method=\"POST\",status=\"2xx\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "confide_http_requests_total{route=\"other\",method=\"POST\",status=\"4xx\"} 1"
            ),
            "{text}"
        );
        // 300 bytes in and out: in the 1024 bucket, not the 256 one.
        assert!(
            text.contains(
                "confide_http_request_body_bytes_bucket{le=\"256.0\",route=\"/items/{id}\",method=\"POST\"} 0"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "confide_http_response_body_bytes_bucket{le=\"1024.0\",route=\"/items/{id}\",method=\"POST\"} 2"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn endpoint_serves_openmetrics() {
        let mut reg = MetricsRegistry::new();
        let c = reg.counter("things", "Things");
        let g = reg.gauge("level", "Level");
        reg.on_scrape(move || {
            g.set(5);
        });
        c.inc();
        let r = router(reg.finish())
            .oneshot(http::Request::get(PATH).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("confide_things_total 1"), "{text}");
        assert!(text.contains("confide_level 5"), "{text}");
    }
}
