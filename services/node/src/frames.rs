//! Application messages carried in `confide-session` frames.
//!
//! `confide-session` defines the framing (`kind:u8 length:u32be payload`, kinds request,
//! response, stream chunk, end). This module defines what the node puts in them:
//!
//! ```text
//! Request      JSON {"summarize":{"messages":[{"sender","time","text"}..]}}
//!                 | {"suggest":{"draft":..,"tone":..}}      optional "max_tokens"
//! StreamChunk  UTF-8 text as the model produced it (whole characters)
//! End          JSON {"finish":"stop"|"length"|"other","completion_tokens":n|null}
//!                 | {"error":"bad-request"|"too-large"|"engine"|"unavailable"}
//! ```
//!
//! On the node-to-node route (mutual RA-TLS, `docs/node.md`) a calling node that passed
//! verification sends, instead of a feature, the prompt it built ([`PeerRequest`]):
//!
//! ```text
//! Request      JSON {"generate":{"messages":[{"role","content"}..],"max_tokens":n,
//!                    "temperature":t,"top_p":p|absent,"seed":s,"repeat_penalty":r}}
//! ```
//!
//! A request is answered by zero or more chunks and exactly one `End`. An error carries
//! only its kind, never text. Unknown members are refused (data minimisation: the schema
//! carries only what the feature needs).

use confide_engine::features::{SuggestRequest, SummarizeRequest};
use confide_engine::{ChatMessage, GenerateParams};
use confide_session::{Frame, FrameKind};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Error;

/// Why a request failed, as told to the client (a kind, never text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The JSON did not parse, or named no, two, or an unknown feature or field.
    BadRequest,
    /// A size limit was exceeded.
    TooLarge,
    /// The engine failed while generating.
    Engine,
    /// The node is shutting down or overloaded.
    Unavailable,
}

/// The feature a request asks for.
#[derive(Debug, Clone)]
pub enum Feature {
    /// Summarise selected chat messages.
    Summarize(SummarizeRequest),
    /// Rewrite a draft in a tone.
    Suggest(SuggestRequest),
}

/// An application request: exactly one of `summarize` / `suggest`, and optionally
/// `max_tokens`. Any other member is refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRequest {
    /// `summarize` input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summarize: Option<SummarizeRequest>,
    /// `suggest` input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggest: Option<SuggestRequest>,
    /// Upper bound on generated tokens (the node caps it at its own limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

impl AppRequest {
    /// A request for `feature`.
    pub fn new(feature: Feature, max_tokens: Option<u32>) -> Self {
        match feature {
            Feature::Summarize(s) => Self {
                summarize: Some(s),
                suggest: None,
                max_tokens,
            },
            Feature::Suggest(s) => Self {
                summarize: None,
                suggest: Some(s),
                max_tokens,
            },
        }
    }

    /// The one feature this request names.
    pub fn into_feature(self) -> Result<Feature, Error> {
        match (self.summarize, self.suggest) {
            (Some(s), None) => Ok(Feature::Summarize(s)),
            (None, Some(s)) => Ok(Feature::Suggest(s)),
            _ => Err(Error::Frame("a request names exactly one feature")),
        }
    }

    /// The request frame.
    pub fn to_frame(&self) -> Result<Frame, Error> {
        let j =
            Zeroizing::new(serde_json::to_vec(self).map_err(|_| Error::Frame("request encoding"))?);
        Ok(Frame::new(FrameKind::Request, j.to_vec()))
    }
}

/// A generation asked for by another attested node (the mutual route only: devices
/// can ask for features, never send a raw prompt).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerRequest {
    /// The generation.
    pub generate: PeerGenerate,
}

/// The chat messages and parameters of one generation (see [`GenerateParams`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerGenerate {
    /// The prompt, as the calling node built it.
    pub messages: Vec<ChatMessage>,
    /// Upper bound on generated tokens (this node caps it at its own limit).
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f32,
    /// Nucleus sampling threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Sampler seed.
    pub seed: u64,
    /// Repeat penalty.
    pub repeat_penalty: f32,
}

impl PeerRequest {
    /// A request for `messages` with `params`.
    pub fn new(messages: Vec<ChatMessage>, params: GenerateParams) -> Self {
        Self {
            generate: PeerGenerate {
                messages,
                max_tokens: params.max_tokens,
                temperature: params.temperature,
                top_p: params.top_p,
                seed: params.seed,
                repeat_penalty: params.repeat_penalty,
            },
        }
    }

    /// The messages and parameters, `max_tokens` capped at `cap`.
    pub fn into_parts(self, cap: u32) -> (Vec<ChatMessage>, GenerateParams) {
        let g = self.generate;
        let params = GenerateParams {
            max_tokens: g.max_tokens.clamp(1, cap.max(1)),
            temperature: g.temperature,
            top_p: g.top_p,
            seed: g.seed,
            repeat_penalty: g.repeat_penalty,
        };
        (g.messages, params)
    }

    /// The request frame.
    pub fn to_frame(&self) -> Result<Frame, Error> {
        let j =
            Zeroizing::new(serde_json::to_vec(self).map_err(|_| Error::Frame("request encoding"))?);
        Ok(Frame::new(FrameKind::Request, j.to_vec()))
    }
}

/// The `End` frame payload.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndInfo {
    /// Why generation ended (`stop`, `length`, `other`), on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish: Option<String>,
    /// Tokens generated, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u32>,
    /// The error kind, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorKind>,
    /// On success: the processing receipt, signed with the session's attested
    /// certificate key (`confide_session::receipt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<SignedReceipt>,
}

/// A receipt body and its signature, as the `End` frame carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReceipt {
    /// The canonical body (`confide_session::receipt::ReceiptBody::encode`).
    pub body: String,
    /// ECDSA P-256 SHA-256 signature over `body` by the certificate key, DER, hex.
    pub signature: String,
}

impl EndInfo {
    /// A failed request.
    pub fn error(kind: ErrorKind) -> Self {
        Self {
            error: Some(kind),
            ..Self::default()
        }
    }

    /// The `End` frame.
    pub fn to_frame(&self) -> Frame {
        // Serialising this struct of enums, short strings and numbers cannot fail; an
        // empty object (read by clients as a malformed end) is the fallback.
        let j = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        Frame::new(FrameKind::End, j)
    }

    /// Parses an `End` payload.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(payload).map_err(|_| Error::Frame("end payload"))
    }
}

/// A chunk frame for `text`.
pub fn chunk(text: &str) -> Frame {
    Frame::new(FrameKind::StreamChunk, text.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_schema_rejects_unknown_fields() {
        let ok = br#"{"suggest":{"draft":"hi there","tone":"formal"},"max_tokens":8}"#;
        let r: AppRequest = serde_json::from_slice(ok).unwrap();
        assert_eq!(r.max_tokens, Some(8));
        assert!(matches!(r.into_feature().unwrap(), Feature::Suggest(_)));
        let none: AppRequest = serde_json::from_slice(b"{}").unwrap();
        assert!(none.into_feature().is_err());
        let extra = br#"{"suggest":{"draft":"hi","tone":"formal","user":"x"}}"#;
        assert!(serde_json::from_slice::<AppRequest>(extra).is_err());
        let unknown = br#"{"translate":{"text":"hi"}}"#;
        assert!(serde_json::from_slice::<AppRequest>(unknown).is_err());
    }

    #[test]
    fn peer_requests_round_trip_and_are_capped() {
        let msgs = vec![ChatMessage::new(confide_engine::Role::User, "hi")];
        let params = GenerateParams {
            max_tokens: 999,
            ..GenerateParams::default()
        };
        let f = PeerRequest::new(msgs, params).to_frame().unwrap();
        let back: PeerRequest = serde_json::from_slice(f.payload()).unwrap();
        let (m, p) = back.into_parts(16);
        assert_eq!(m.len(), 1);
        assert_eq!(p.max_tokens, 16);
        // A device request is not a peer request, and vice versa.
        let device = br#"{"suggest":{"draft":"hi there","tone":"formal"}}"#;
        assert!(serde_json::from_slice::<PeerRequest>(device).is_err());
        assert!(serde_json::from_slice::<AppRequest>(f.payload()).is_err());
    }

    #[test]
    fn end_payloads_round_trip() {
        let e = EndInfo::error(ErrorKind::TooLarge);
        let f = e.to_frame();
        assert_eq!(f.kind(), FrameKind::End);
        assert_eq!(f.payload(), br#"{"error":"too-large"}"#);
        assert_eq!(EndInfo::parse(f.payload()).unwrap(), e);
        let ok = EndInfo {
            finish: Some("stop".into()),
            completion_tokens: Some(5),
            error: None,
            receipt: None,
        };
        assert_eq!(EndInfo::parse(ok.to_frame().payload()).unwrap(), ok);
        assert!(EndInfo::parse(br#"{"error":"free text"}"#).is_err());
    }
}
