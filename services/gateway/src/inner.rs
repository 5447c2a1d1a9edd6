//! The gateway's inner resources: what a decapsulated Binary HTTP request reaches.
//!
//! They form an ordinary axum [`Router`], so other parts of Confide add resources
//! (the node's session routing) by merging routes with
//! [`crate::Gateway::with_inner_routes`]. Inner requests carry no client address: the
//! router is called directly, never through a socket, so `ConnectInfo` does not exist
//! for them. Errors are RFC 9457 problem documents with `urn:confide:problem:<name>`
//! types (docs/sessions.md).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use confide_svc::problem::Problem;
use http::{HeaderMap, StatusCode, header};

use crate::keys::KeyRing;
use crate::metrics::{GatewayMetrics, KeyTag, Redemption};
use crate::unix_now;

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenRejection {
    /// No `Authorization: PrivateToken` header.
    Missing,
    /// The token failed a check (format, key, challenge, authenticator, validity).
    Invalid,
    /// The token was already spent.
    Replayed,
    /// The double-spend store did not answer: refuse, fail closed.
    StoreUnavailable,
}

/// The future a [`TokenGate`] returns.
pub type GateFuture<'a> = Pin<Box<dyn Future<Output = Result<(), TokenRejection>> + Send + 'a>>;

/// The future [`TokenGate::redeem_keyed`] returns: the outcome and, once the token
/// matched a configured key, that key's tag.
pub type KeyedGateFuture<'a> =
    Pin<Box<dyn Future<Output = (Result<(), TokenRejection>, Option<KeyTag>)> + Send + 'a>>;

/// Redeems the RFC 9577 `PrivateToken` credential of a protected inner request.
pub trait TokenGate: Send + Sync + 'static {
    /// Verify and spend the token in the `Authorization` header value at `now`.
    fn redeem<'a>(&'a self, authorization: &'a str, now: u64) -> GateFuture<'a>;

    /// [`TokenGate::redeem`], also naming the configured issuer key the token was
    /// checked against (for the per-key redemption metric). A gate that cannot tell
    /// names none.
    fn redeem_keyed<'a>(&'a self, authorization: &'a str, now: u64) -> KeyedGateFuture<'a> {
        Box::pin(async move { (self.redeem(authorization, now).await, None) })
    }
}

impl TokenGate for confide_tokens::Redeemer {
    fn redeem<'a>(&'a self, authorization: &'a str, now: u64) -> GateFuture<'a> {
        Box::pin(async move { self.redeem_keyed(authorization, now).await.0 })
    }

    fn redeem_keyed<'a>(&'a self, authorization: &'a str, now: u64) -> KeyedGateFuture<'a> {
        Box::pin(async move {
            // Verify and spend as `Redeemer::redeem` does, in two steps, so that the key
            // is known once verification matched it to a configured key (and only then:
            // a key id that matches nothing configured is never reported).
            let verified = match self.verify(authorization, now) {
                Ok(v) => v,
                Err(e) => {
                    tracing::info!(kind = e.kind(), "token refused");
                    return (Err(TokenRejection::Invalid), None);
                }
            };
            let key = KeyTag::of(verified.key_id());
            let result = match self.spend(verified, now).await {
                Ok(_) => Ok(()),
                Err(confide_tokens::Error::Replayed) => Err(TokenRejection::Replayed),
                Err(confide_tokens::Error::Store(_)) => Err(TokenRejection::StoreUnavailable),
                Err(e) => {
                    tracing::info!(kind = e.kind(), "token refused");
                    Err(TokenRejection::Invalid)
                }
            };
            (result, key)
        })
    }
}

/// What the inner resources share.
pub struct InnerState {
    /// The gateway's keys (health reports their identifiers).
    pub ring: Arc<KeyRing>,
    /// Token redemption; `None` means protected resources are unavailable.
    pub tokens: Option<Arc<dyn TokenGate>>,
    /// Where redemption outcomes are counted.
    pub metrics: GatewayMetrics,
}

impl std::fmt::Debug for InnerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InnerState")
            .field("tokens", &self.tokens.is_some())
            .finish_non_exhaustive()
    }
}

/// A problem response with Confide's type namespace.
pub fn problem(status: StatusCode, name: &str, title: &str) -> Response {
    Problem::new(status, &format!("urn:confide:problem:{name}"), title).into_response()
}

/// Check the token of a protected request. Returns the refusal response, if any.
pub async fn require_token(state: &InnerState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(gate) = &state.tokens else {
        state.metrics.redemption(Redemption::NotConfigured, None);
        return Err(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "redemption-unavailable",
            "token redemption is not configured",
        ));
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        state.metrics.redemption(Redemption::Missing, None);
        return Err(problem(
            StatusCode::UNAUTHORIZED,
            "token-required",
            "a PrivateToken is required",
        ));
    };
    let (result, key) = gate.redeem_keyed(value, unix_now()).await;
    state.metrics.redemption(
        match result {
            Ok(()) => Redemption::Redeemed,
            Err(TokenRejection::Missing) => Redemption::Missing,
            Err(TokenRejection::Replayed) => Redemption::DoubleSpend,
            Err(TokenRejection::Invalid) => Redemption::Invalid,
            Err(TokenRejection::StoreUnavailable) => Redemption::StoreUnavailable,
        },
        key,
    );
    match result {
        Ok(()) => Ok(()),
        Err(TokenRejection::Missing) => Err(problem(
            StatusCode::UNAUTHORIZED,
            "token-required",
            "a PrivateToken is required",
        )),
        Err(TokenRejection::Replayed) => Err(problem(
            StatusCode::UNAUTHORIZED,
            "token-replayed",
            "token already spent",
        )),
        Err(TokenRejection::Invalid) => Err(problem(
            StatusCode::UNAUTHORIZED,
            "token-invalid",
            "token not valid",
        )),
        Err(TokenRejection::StoreUnavailable) => Err(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "redemption-unavailable",
            "double-spend store unavailable",
        )),
    }
}

/// The built-in inner resources: `GET /v1/health` and `POST /v1/sessions`.
pub fn router(state: Arc<InnerState>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/sessions", post(open_session))
        .fallback(not_found)
        .with_state(state)
}

/// `GET /v1/health`: no token, JSON status, so anyone can test the whole path
/// client → relay → gateway.
async fn health(State(state): State<Arc<InnerState>>) -> Response {
    let now = unix_now();
    let key_ids: Vec<u8> = match state.ring.server(now) {
        Ok(s) => s.configs().iter().map(|c| c.key_id()).collect(),
        Err(_) => Vec::new(),
    };
    let body = serde_json::json!({
        "status": if key_ids.is_empty() { "degraded" } else { "ok" },
        "service": "confide-gateway",
        "ohttp_key_ids": key_ids,
        "next_key_rotation": state.ring.schedule().next_rotation(now),
        "token_redemption": state.tokens.is_some(),
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `POST /v1/sessions`: opens an attested session with a node (docs/sessions.md). With
/// no node configured, a request with a valid token gets `503 no-node-available`.
async fn open_session(State(state): State<Arc<InnerState>>, headers: HeaderMap) -> Response {
    if let Err(refusal) = require_token(&state, &headers).await {
        return refusal;
    }
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "no-node-available",
        "no node available",
    )
}

async fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "not-found", "no such inner resource")
}
