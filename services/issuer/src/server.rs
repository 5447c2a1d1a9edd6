//! The issuer's HTTP interface.
//!
//! - `GET /.well-known/private-token-issuer-directory` (RFC 9578 §4), media type
//!   `application/private-token-issuer-directory`.
//! - `POST /token-request` (the `issuer-request-uri`), body
//!   `application/private-token-request`, answer `application/private-token-response`
//!   (RFC 9578 §5.2, §6.2), with `Authorization: Bearer <account credential>`.
//!
//! Errors are RFC 9457 problems with a `urn:confide:problem:issuer-*` type, one per cause.

use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use confide_svc::metrics::prometheus_client::metrics::counter::Counter;
use confide_svc::metrics::{CounterFamily, MetricsRegistry};
use confide_svc::problem::Problem;
use confide_tokens::{IssuerKeySet, TokenRequest, TokenType};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::accounts::AccountStore;
use crate::ratelimit::{RateLimiter, Reservation};
use crate::state::IssuerDir;
use crate::unix_now;

/// RFC 9578 §4 directory path.
pub const DIRECTORY_PATH: &str = "/.well-known/private-token-issuer-directory";
/// The issuance path this issuer serves.
pub const REQUEST_PATH: &str = "/token-request";
const MEDIA_DIRECTORY: &str = "application/private-token-issuer-directory";
const MEDIA_REQUEST: &str = "application/private-token-request";
const MEDIA_RESPONSE: &str = "application/private-token-response";
/// Larger than any token request (3 + 256 bytes); anything bigger is refused unread.
const MAX_BODY: usize = 1024;

/// The issuer's route templates, as given to its router.
pub const ROUTES: &[&str] = &[DIRECTORY_PATH, REQUEST_PATH];

/// The issuer's host metrics (docs/operations.md): tokens issued by type, refusals by
/// reason, key rotations. Labels are fixed names; never an account or a credential.
#[derive(Debug, Clone, Default)]
pub struct IssuerMetrics {
    issued: CounterFamily<1>,
    refused: CounterFamily<1>,
    rotations: Counter,
}

impl IssuerMetrics {
    /// Register the issuer's metrics.
    pub fn new(reg: &mut MetricsRegistry) -> Self {
        Self {
            issued: reg.counter_family_of(
                "issuer_tokens_issued",
                "Tokens issued, by token type",
                "token_type",
                &["voprf", "blind_rsa"],
            ),
            refused: reg.counter_family_of(
                "issuer_requests_refused",
                "Token requests refused, by reason (rate_limited: an account over its limit)",
                "reason",
                Self::REFUSALS,
            ),
            rotations: reg.counter("issuer_key_rotations", "Issuer key set updates"),
        }
    }

    /// The values of the `reason` label.
    pub const REFUSALS: &[&str] = &[
        "wrong_media_type",
        "missing_credential",
        "bad_credential",
        "malformed_request",
        "rate_limited",
        "unavailable",
        "internal",
    ];

    fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&[("reason", reason)]).inc();
    }

    fn issued(&self, ty: TokenType) {
        let t = match ty {
            TokenType::Voprf => "voprf",
            TokenType::BlindRsa => "blind_rsa",
        };
        self.issued.get_or_create(&[("token_type", t)]).inc();
    }
}

/// Serving configuration.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The `issuer-request-uri` published in the directory: absolute, or relative to the
    /// directory URL (RFC 9578 §4 allows both). Default `/token-request`.
    pub request_uri: String,
    /// Issuances per account per window unless the account has its own limit.
    pub default_limit: u32,
    /// Where issuance outcomes are counted.
    pub metrics: IssuerMetrics,
}

/// Shared state of the service.
pub struct IssuerState {
    keys: RwLock<IssuerKeySet>,
    dir: IssuerDir,
    accounts: Arc<dyn AccountStore>,
    limiter: RateLimiter,
    config: IssuerConfig,
}

impl IssuerState {
    /// Assemble the state.
    pub fn new(
        keys: IssuerKeySet,
        dir: IssuerDir,
        accounts: Arc<dyn AccountStore>,
        limiter: RateLimiter,
        config: IssuerConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            keys: RwLock::new(keys),
            dir,
            accounts,
            limiter,
            config,
        })
    }

    /// Rotate keys if no key of some type issues at `now`, persisting the new key set.
    /// Returns whether it rotated.
    pub fn rotate_if_due(&self, now: u64) -> Result<bool, crate::Error> {
        let mut keys = self
            .keys
            .write()
            .map_err(|_| crate::Error::RateLimit("key lock poisoned".into()))?;
        let rotated = keys.rotate_if_due(now, &mut rand::rngs::OsRng)?;
        if rotated {
            self.dir.save(&keys)?;
            self.config.metrics.rotations.inc();
            tracing::info!("issuer key set updated (rotation or successor keys)");
        }
        Ok(rotated)
    }
}

/// The router.
pub fn router(state: Arc<IssuerState>) -> Router {
    Router::new()
        .route(DIRECTORY_PATH, get(directory))
        .route(REQUEST_PATH, post(token_request))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn problem(status: StatusCode, kind: &str, title: &str) -> Response {
    Problem::new(status, &format!("urn:confide:problem:issuer-{kind}"), title).into_response()
}

async fn directory(State(state): State<Arc<IssuerState>>) -> Response {
    let dir = match state.keys.read() {
        Ok(keys) => keys.directory(&state.config.request_uri, unix_now()),
        Err(_) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            );
        }
    };
    match serde_json::to_vec(&dir) {
        Ok(body) => {
            let mut resp = (StatusCode::OK, body).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(MEDIA_DIRECTORY),
            );
            // Clients cache the directory; keys change only on rotation (RFC 9578 §4).
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=300"),
            );
            resp
        }
        Err(_) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
        ),
    }
}

fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(value) = value.to_str() else {
        return Some(Err(()));
    };
    let (scheme, cred) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Bearer") || cred.trim().is_empty() {
        return Some(Err(()));
    }
    Some(Ok(cred.trim()))
}

async fn token_request(
    State(state): State<Arc<IssuerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.trim().eq_ignore_ascii_case(MEDIA_REQUEST) {
        state.config.metrics.refused("wrong_media_type");
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong-media-type",
            "Body must be application/private-token-request",
        );
    }
    // Authenticate before parsing anything else: no work for anonymous callers.
    let account = match bearer(&headers) {
        None => {
            state.config.metrics.refused("missing_credential");
            let mut r = problem(
                StatusCode::UNAUTHORIZED,
                "missing-credential",
                "Account credential required",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        Some(Err(())) => {
            state.config.metrics.refused("bad_credential");
            return problem(
                StatusCode::UNAUTHORIZED,
                "bad-credential",
                "Account credential not accepted",
            );
        }
        Some(Ok(cred)) => match state.accounts.authenticate(cred) {
            Some(a) => a,
            None => {
                state.config.metrics.refused("bad_credential");
                return problem(
                    StatusCode::UNAUTHORIZED,
                    "bad-credential",
                    "Account credential not accepted",
                );
            }
        },
    };
    let request = match TokenRequest::decode(&body) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(kind = e.kind(), "token request refused");
            state.config.metrics.refused("malformed_request");
            return problem(
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "Malformed token request",
            )
            .into_response();
        }
    };
    let now = unix_now();
    let limit = account.limit.unwrap_or(state.config.default_limit);
    let reservation = state.limiter.reserve(&account.id, limit, now).await;
    match reservation {
        Ok(Reservation::Granted { .. }) => {}
        Ok(Reservation::Limited { retry_after }) => {
            tracing::info!("token request refused: account over its limit");
            state.config.metrics.refused("rate_limited");
            let mut r = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Issuance limit reached for this window",
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        Err(e) => {
            tracing::error!(error = %e, "rate-limit store failed");
            state.config.metrics.refused("unavailable");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Issuer temporarily unavailable",
            );
        }
    }
    let token_type = request.token_type();
    let st = Arc::clone(&state);
    // RSA signing takes about a millisecond: off the async workers.
    let issued = tokio::task::spawn_blocking(move || match st.keys.read() {
        Ok(keys) => keys.issue(&request, now, &mut rand::rngs::OsRng),
        Err(_) => Err(confide_tokens::Error::Crypto("key lock poisoned")),
    })
    .await;
    match issued {
        Ok(Ok(response)) => {
            tracing::info!(token_type = token_type.code(), "token issued");
            state.config.metrics.issued(token_type);
            let mut resp = (StatusCode::OK, response.encode().to_vec()).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(MEDIA_RESPONSE),
            );
            resp
        }
        Ok(Err(e)) => {
            tracing::info!(kind = e.kind(), "token request refused");
            state.config.metrics.refused("malformed_request");
            problem(
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "Malformed token request",
            )
        }
        Err(_) => {
            state.config.metrics.refused("internal");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            )
        }
    }
}
