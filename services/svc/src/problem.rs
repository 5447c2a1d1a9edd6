//! RFC 9457 problem details (`application/problem+json`).
//!
//! Services answer errors with a problem type and a short, fixed title. The `detail`
//! member must never carry request content: callers pass only static text or values
//! the service itself produced (sizes, key ids).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A URI naming the problem type (RFC 9457 §3.1.1).
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short, human-readable summary that does not change between occurrences.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// An explanation specific to this occurrence. Never request content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Problem {
    /// A problem of the given type, title and status.
    pub fn new(status: StatusCode, type_uri: &str, title: &str) -> Self {
        Self {
            type_uri: type_uri.to_owned(),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: None,
        }
    }

    /// Add a detail line (static or service-generated text only).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        resp
    }
}
