//! The OpenAI-compatible chat completions protocol: an upstream client and a server.
//!
//! The wire format is OpenAI's `POST /v1/chat/completions` (request `messages`,
//! `max_tokens`, `temperature`, `top_p`, `seed`, `stream`; response `choices[0].message`
//! or, with `stream: true`, Server-Sent Events (WHATWG HTML, "Server-sent events")
//! whose `data:` lines carry `chat.completion.chunk` objects with `choices[0].delta`,
//! ended by `data: [DONE]`). vLLM and the llama.cpp server implement the same shape.
//!
//! - [`UpstreamEngine`] is an [`Engine`] that forwards to such a server inside the same
//!   TEE (for GPUs and bigger models).
//! - [`router`] serves any [`Engine`] with that protocol (`confide engine serve`).
//!
//! Request bodies are parsed without echoing their content: a malformed body gets
//! "invalid request body" with a position, never a fragment of the text.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{
    ChatMessage, Completion, Engine, EngineError, FinishReason, GenerateParams, ModelInfo,
    StreamEvent, TokenStream,
};

/// Largest request body the server accepts.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Largest single SSE event the client accepts from an upstream.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------------

/// `POST /v1/chat/completions` request body (the fields Confide uses).
///
/// Unknown fields are ignored, as OpenAI-compatible servers do, so standard clients
/// work; `n` other than 1 is refused.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// Model id (informational for a single-model server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Output token bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Newer name for `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature (OpenAI's default is 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Sampler seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Repetition penalty (vLLM's name; llama.cpp calls it `repeat_penalty`).
    #[serde(
        default,
        alias = "repeat_penalty",
        skip_serializing_if = "Option::is_none"
    )]
    pub repetition_penalty: Option<f32>,
    /// Number of choices; only 1 is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Stream with SSE.
    #[serde(default)]
    pub stream: bool,
}

#[derive(Serialize)]
struct UsageWire {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
}

impl UsageWire {
    fn from_completion(c: &Completion) -> Option<Self> {
        let (p, n) = (c.prompt_tokens?, c.completion_tokens?);
        Some(Self {
            prompt_tokens: p,
            completion_tokens: n,
            total_tokens: p.saturating_add(n),
        })
    }
}

#[derive(Serialize)]
struct ResponseMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ResponseChoice<'a> {
    index: u32,
    message: ResponseMessage<'a>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct ChatCompletionResponse<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ResponseChoice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageWire>,
}

#[derive(Serialize, Default)]
struct DeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

#[derive(Serialize)]
struct ChunkChoiceOut<'a> {
    index: u32,
    delta: DeltaOut<'a>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChunkChoiceOut<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageWire>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: String,
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'a str,
}

// ---------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------

struct ServerState {
    engine: Arc<dyn Engine>,
    next_id: AtomicU64,
}

/// An axum router serving `engine` as `POST /v1/chat/completions` (streaming and not)
/// and `GET /v1/models`.
pub fn router(engine: Arc<dyn Engine>) -> Router {
    let state = Arc::new(ServerState {
        engine,
        next_id: AtomicU64::new(1),
    });
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn error_response(status: StatusCode, kind: &'static str, code: &str, message: String) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            message,
            kind,
            code,
        },
    };
    (status, axum::Json(body)).into_response()
}

fn engine_error_response(e: &EngineError) -> Response {
    if e.is_client_error() {
        error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            e.kind(),
            e.to_string(),
        )
    } else {
        // Typed event, no message: `confide engine serve` logs through the node's
        // allow-list, which drops free text.
        tracing::warn!(event = "generation_failed", kind = "engine");
        error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            e.kind(),
            "the engine failed".to_owned(),
        )
    }
}

async fn models(State(st): State<Arc<ServerState>>) -> Response {
    let info = st.engine.info();
    axum::Json(serde_json::json!({
        "object": "list",
        "data": [{
            "id": info.name,
            "object": "model",
            "owned_by": "confide",
            "sha256": info.sha256_hex(),
        }],
    }))
    .into_response()
}

/// Turn a wire request into engine inputs, with OpenAI's defaults.
fn params_from(req: &ChatCompletionRequest) -> Result<GenerateParams, EngineError> {
    if req.n.is_some_and(|n| n != 1) {
        return Err(EngineError::InvalidParameter {
            name: "n",
            reason: "only n = 1 is supported",
        });
    }
    let defaults = GenerateParams::default();
    let params = GenerateParams {
        max_tokens: req
            .max_completion_tokens
            .or(req.max_tokens)
            .unwrap_or(defaults.max_tokens),
        temperature: req.temperature.unwrap_or(1.0),
        top_p: req.top_p,
        seed: req.seed.unwrap_or(defaults.seed),
        repeat_penalty: req.repetition_penalty.unwrap_or(defaults.repeat_penalty),
    };
    params.validate()?;
    Ok(params)
}

async fn chat_completions(State(st): State<Arc<ServerState>>, body: Bytes) -> Response {
    let req: ChatCompletionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            // serde_json's messages can quote input; report only the position.
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_body",
                format!(
                    "invalid request body at line {} column {}",
                    e.line(),
                    e.column()
                ),
            );
        }
    };
    drop(body);
    let params = match params_from(&req) {
        Ok(p) => p,
        Err(e) => return engine_error_response(&e),
    };
    let streaming = req.stream;
    let model = st.engine.info().name.clone();
    let tokens = match st.engine.generate(req.messages, params).await {
        Ok(s) => s,
        Err(e) => return engine_error_response(&e),
    };
    let id = format!("chatcmpl-{}", st.next_id.fetch_add(1, Ordering::Relaxed));
    let created = unix_now();
    if streaming {
        Sse::new(sse_events(tokens, id, model, created)).into_response()
    } else {
        match tokens.collect_text().await {
            Ok((text, done)) => {
                let body = ChatCompletionResponse {
                    id: &id,
                    object: "chat.completion",
                    created,
                    model: &model,
                    choices: [ResponseChoice {
                        index: 0,
                        message: ResponseMessage {
                            role: "assistant",
                            content: &text,
                        },
                        finish_reason: done.finish_reason.as_str(),
                    }],
                    usage: UsageWire::from_completion(&done),
                };
                axum::Json(body).into_response()
            }
            Err(e) => engine_error_response(&e),
        }
    }
}

fn chunk_event(
    id: &str,
    model: &str,
    created: u64,
    delta: DeltaOut<'_>,
    finish: Option<&Completion>,
) -> Event {
    let chunk = ChunkOut {
        id,
        object: "chat.completion.chunk",
        created,
        model,
        choices: [ChunkChoiceOut {
            index: 0,
            delta,
            finish_reason: finish.map(|c| c.finish_reason.as_str()),
        }],
        usage: finish.and_then(UsageWire::from_completion),
    };
    let json = Zeroizing::new(serde_json::to_string(&chunk).unwrap_or_default());
    Event::default().data(json.as_str())
}

/// The SSE body: a role chunk, one chunk per text piece, a finish chunk, `[DONE]`.
/// When the client disconnects, axum drops this stream, which drops the
/// [`TokenStream`] and so stops the generation.
fn sse_events(
    tokens: TokenStream,
    id: String,
    model: String,
    created: u64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let first = chunk_event(
        &id,
        &model,
        created,
        DeltaOut {
            role: Some("assistant"),
            content: None,
        },
        None,
    );
    let body = tokens.map(move |ev| {
        Ok(match ev {
            Ok(StreamEvent::Text(t)) => chunk_event(
                &id,
                &model,
                created,
                DeltaOut {
                    role: None,
                    content: Some(&t),
                },
                None,
            ),
            Ok(StreamEvent::Done(done)) => {
                chunk_event(&id, &model, created, DeltaOut::default(), Some(&done))
            }
            Err(e) => {
                tracing::warn!(event = "generation_failed", kind = "engine");
                let body = ErrorBody {
                    error: ErrorDetail {
                        message: "the engine failed".to_owned(),
                        kind: "server_error",
                        code: e.kind(),
                    },
                };
                Event::default().data(serde_json::to_string(&body).unwrap_or_default())
            }
        })
    });
    futures::stream::once(async move { Ok(first) })
        .chain(body)
        .chain(futures::stream::once(async {
            Ok(Event::default().data("[DONE]"))
        }))
}

// ---------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------

#[derive(Deserialize)]
struct UsageIn {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
}

#[derive(Deserialize, Default)]
struct DeltaIn {
    #[serde(default)]
    content: Option<Zeroizing<String>>,
}

#[derive(Deserialize)]
struct ChunkChoiceIn {
    #[serde(default)]
    delta: DeltaIn,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChunkIn {
    #[serde(default)]
    choices: Vec<ChunkChoiceIn>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct MessageIn {
    #[serde(default)]
    content: Option<Zeroizing<String>>,
}

#[derive(Deserialize)]
struct ChoiceIn {
    message: MessageIn,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ResponseIn {
    choices: Vec<ChoiceIn>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

fn finish_from(s: Option<&str>) -> Option<FinishReason> {
    s.map(|s| match s {
        "stop" | "eos" => FinishReason::Stop,
        "length" => FinishReason::Length,
        _ => FinishReason::Other,
    })
}

/// Incremental parser for a `text/event-stream` body: yields each event's `data`
/// (multi-line data joined with `\n`), ignoring comments and other fields.
#[derive(Default)]
pub struct SseParser {
    line: Zeroizing<Vec<u8>>,
    data: Zeroizing<Vec<u8>>,
    has_data: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes; returns the data of every event completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Zeroizing<Vec<u8>>>, EngineError> {
        let mut events = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                if self.line.len() >= MAX_EVENT_BYTES {
                    return Err(EngineError::UpstreamProtocol("SSE line too long"));
                }
                self.line.push(b);
                continue;
            }
            let mut line: &[u8] = &self.line;
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            if line.is_empty() {
                if self.has_data {
                    events.push(Zeroizing::new(std::mem::take(&mut *self.data)));
                    self.has_data = false;
                }
            } else if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if self.has_data {
                    self.data.push(b'\n');
                }
                if self.data.len() + value.len() > MAX_EVENT_BYTES {
                    return Err(EngineError::UpstreamProtocol("SSE event too large"));
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            // Comments (":...") and `event:`/`id:`/`retry:` fields carry nothing we use.
            self.line.clear();
        }
        Ok(events)
    }
}

/// An [`Engine`] backed by an OpenAI-compatible server (vLLM, llama.cpp server,
/// `confide engine serve`).
pub struct UpstreamEngine {
    client: reqwest::Client,
    url: reqwest::Url,
    model: String,
    api_key: Option<Zeroizing<String>>,
    info: ModelInfo,
}

impl std::fmt::Debug for UpstreamEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamEngine")
            .field("url", &self.url.as_str())
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl UpstreamEngine {
    /// How long to wait for a connection.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Longest silence between two reads before the request fails (a hung upstream
    /// must not hang the caller).
    pub const READ_TIMEOUT: Duration = Duration::from_secs(120);

    /// An upstream at `base_url` (e.g. `http://127.0.0.1:8000`, with or without a
    /// trailing `/v1`), asking for `model`. `unix:/PATH` reaches the server over the Unix
    /// domain socket at `/PATH` instead (requests then name the host `localhost`).
    pub fn new(base_url: &str, model: &str) -> Result<Self, EngineError> {
        let socket = unix_socket_path(base_url)?;
        let mut base = match &socket {
            Some(_) => reqwest::Url::parse("http://localhost/"),
            None => reqwest::Url::parse(base_url),
        }
        .map_err(|e| EngineError::UpstreamUrl(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(EngineError::UpstreamUrl(
                "scheme must be http or https".into(),
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(EngineError::UpstreamUrl(
                "must not have a query or fragment".into(),
            ));
        }
        let path = base.path().trim_end_matches('/');
        let path = path.strip_suffix("/v1").unwrap_or(path).to_owned();
        base.set_path(&format!("{path}/v1/chat/completions"));
        // Every prompt goes to exactly this URL: never to a proxy named by the host's
        // environment (HTTP_PROXY, ALL_PROXY, ...), never on to wherever a redirect points.
        // Either would hand request content to someone the release does not name.
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Self::CONNECT_TIMEOUT)
            .read_timeout(Self::READ_TIMEOUT)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = socket {
            builder = builder.unix_socket(path);
        }
        let client = builder
            .build()
            .map_err(|e| EngineError::UpstreamHttp(e.to_string()))?;
        Ok(Self {
            client,
            url: base,
            model: model.to_owned(),
            api_key: None,
            info: ModelInfo {
                name: model.to_owned(),
                architecture: "upstream".to_owned(),
                sha256: None,
                context_length: None,
            },
        })
    }

    /// Send `Authorization: Bearer <key>` (vLLM `--api-key`, llama.cpp `--api-key`).
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Zeroizing::new(key.into()));
        self
    }

    /// The full endpoint URL.
    pub fn endpoint(&self) -> &str {
        self.url.as_str()
    }

    fn request(
        &self,
        messages: Vec<ChatMessage>,
        params: &GenerateParams,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, EngineError> {
        params.validate()?;
        if messages.is_empty() {
            return Err(EngineError::EmptyConversation);
        }
        let body = ChatCompletionRequest {
            model: Some(self.model.clone()),
            messages,
            max_tokens: Some(params.max_tokens),
            max_completion_tokens: None,
            temperature: Some(params.temperature),
            top_p: params.top_p,
            seed: Some(params.seed),
            repetition_penalty: (params.repeat_penalty > 1.0).then_some(params.repeat_penalty),
            n: None,
            stream,
        };
        let json = Zeroizing::new(
            serde_json::to_vec(&body).map_err(|_| EngineError::UpstreamProtocol("encode"))?,
        );
        let mut rb = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json.to_vec());
        if stream {
            rb = rb.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        if let Some(key) = &self.api_key {
            rb = rb.bearer_auth(key.as_str());
        }
        Ok(rb)
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, EngineError> {
        let resp = rb
            .send()
            .await
            .map_err(|e| EngineError::UpstreamHttp(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(EngineError::UpstreamStatus(resp.status().as_u16()));
        }
        Ok(resp)
    }

    /// A non-streaming completion (`stream: false`).
    pub async fn complete(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerateParams,
    ) -> Result<(Zeroizing<String>, Completion), EngineError> {
        let resp = self.send(self.request(messages, &params, false)?).await?;
        let bytes = Zeroizing::new(
            resp.bytes()
                .await
                .map_err(|e| EngineError::UpstreamHttp(e.without_url().to_string()))?
                .to_vec(),
        );
        let parsed: ResponseIn = serde_json::from_slice(&bytes)
            .map_err(|_| EngineError::UpstreamProtocol("response is not a chat completion"))?;
        let choice = parsed
            .choices
            .into_iter()
            .next()
            .ok_or(EngineError::UpstreamProtocol("response has no choices"))?;
        let text = choice.message.content.unwrap_or_default();
        let done = Completion {
            finish_reason: finish_from(choice.finish_reason.as_deref())
                .unwrap_or(FinishReason::Other),
            prompt_tokens: parsed.usage.as_ref().and_then(|u| u.prompt_tokens),
            completion_tokens: parsed.usage.as_ref().and_then(|u| u.completion_tokens),
        };
        Ok((text, done))
    }

    async fn start(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerateParams,
    ) -> Result<TokenStream, EngineError> {
        let resp = self.send(self.request(messages, &params, true)?).await?;
        let (tx, stream) = TokenStream::channel();
        tokio::spawn(async move {
            let result = tokio::select! {
                // The caller dropped the stream: dropping `resp` here closes the
                // connection, which tells the upstream to stop generating.
                () = tx.closed() => return,
                r = pump(resp, &tx) => r,
            };
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(stream)
    }
}

/// The socket path of a `unix:/PATH` (or `unix:///PATH`) upstream, `None` for any other
/// URL. The path must be absolute: a relative one would depend on the working directory.
pub fn unix_socket_path(url: &str) -> Result<Option<std::path::PathBuf>, EngineError> {
    let Some(rest) = url.strip_prefix("unix:") else {
        return Ok(None);
    };
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if !path.starts_with('/') || path.contains(['?', '#']) {
        return Err(EngineError::UpstreamUrl(
            "a unix socket upstream is unix:/ABSOLUTE/PATH".into(),
        ));
    }
    Ok(Some(std::path::PathBuf::from(path)))
}

/// Forward an SSE response's deltas into the channel until `[DONE]`.
async fn pump(
    resp: reqwest::Response,
    tx: &tokio::sync::mpsc::Sender<Result<StreamEvent, EngineError>>,
) -> Result<(), EngineError> {
    let mut body = resp.bytes_stream();
    let mut parser = SseParser::new();
    let mut finish: Option<FinishReason> = None;
    let mut usage: Option<UsageIn> = None;
    let mut pieces = 0u32;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| EngineError::UpstreamHttp(e.without_url().to_string()))?;
        for data in parser.push(&chunk)? {
            if data.as_slice() == b"[DONE]" {
                let done = Completion {
                    finish_reason: finish.unwrap_or(FinishReason::Other),
                    prompt_tokens: usage.as_ref().and_then(|u| u.prompt_tokens),
                    completion_tokens: usage
                        .as_ref()
                        .and_then(|u| u.completion_tokens)
                        .or(Some(pieces)),
                };
                let _ = tx.send(Ok(StreamEvent::Done(done))).await;
                return Ok(());
            }
            let parsed: ChunkIn = serde_json::from_slice(&data)
                .map_err(|_| EngineError::UpstreamProtocol("event is not a completion chunk"))?;
            if parsed.error.is_some() {
                return Err(EngineError::UpstreamProtocol(
                    "upstream reported an error mid-stream",
                ));
            }
            if parsed.usage.is_some() {
                usage = parsed.usage;
            }
            for choice in parsed.choices {
                if let Some(f) = finish_from(choice.finish_reason.as_deref()) {
                    finish = Some(f);
                }
                if let Some(text) = choice.delta.content
                    && !text.is_empty()
                {
                    pieces = pieces.saturating_add(1);
                    if tx.send(Ok(StreamEvent::Text(text))).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
    Err(EngineError::UpstreamProtocol("stream ended without [DONE]"))
}

impl Engine for UpstreamEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn generate(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerateParams,
    ) -> BoxFuture<'_, Result<TokenStream, EngineError>> {
        Box::pin(self.start(messages, params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_parser_handles_split_lines_crlf_comments_and_multiline_data() {
        let mut p = SseParser::new();
        assert!(p.push(b": keep-alive\n\nda").unwrap().is_empty());
        let ev = p.push(b"ta: {\"a\":1}\r\n\r\ndata: x\ndata: y\n").unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].as_slice(), b"{\"a\":1}");
        let ev = p.push(b"\nevent: foo\ndata:[DONE]\n\n").unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].as_slice(), b"x\ny");
        assert_eq!(ev[1].as_slice(), b"[DONE]");
    }

    #[test]
    fn sse_parser_bounds_event_size() {
        let mut p = SseParser::new();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert!(matches!(
            p.push(&big),
            Err(EngineError::UpstreamProtocol(_))
        ));
    }

    #[test]
    fn upstream_url_is_normalised_and_checked() {
        let e = UpstreamEngine::new("http://127.0.0.1:8000", "m").unwrap();
        assert_eq!(e.endpoint(), "http://127.0.0.1:8000/v1/chat/completions");
        let e = UpstreamEngine::new("http://h:1/v1/", "m").unwrap();
        assert_eq!(e.endpoint(), "http://h:1/v1/chat/completions");
        let e = UpstreamEngine::new("https://h/prefix", "m").unwrap();
        assert_eq!(e.endpoint(), "https://h/prefix/v1/chat/completions");
        assert!(matches!(
            UpstreamEngine::new("ftp://h", "m"),
            Err(EngineError::UpstreamUrl(_))
        ));
        assert!(matches!(
            UpstreamEngine::new("not a url", "m"),
            Err(EngineError::UpstreamUrl(_))
        ));
        let e = UpstreamEngine::new("unix:/run/vllm.sock", "m").unwrap();
        assert_eq!(e.endpoint(), "http://localhost/v1/chat/completions");
        assert_eq!(
            unix_socket_path("unix:///run/vllm.sock").unwrap(),
            Some("/run/vllm.sock".into())
        );
        assert!(matches!(
            UpstreamEngine::new("unix:run/vllm.sock", "m"),
            Err(EngineError::UpstreamUrl(_))
        ));
    }

    #[test]
    fn request_defaults_and_n_check() {
        let req: ChatCompletionRequest =
            serde_json::from_str(r#"{"messages":[{"role":"user","content":"hi"}],"n":2}"#).unwrap();
        assert!(matches!(
            params_from(&req),
            Err(EngineError::InvalidParameter { name: "n", .. })
        ));
        let req: ChatCompletionRequest = serde_json::from_str(
            r#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":7,"repeat_penalty":1.2,"stream_options":{}}"#,
        )
        .unwrap();
        let p = params_from(&req).unwrap();
        assert_eq!(p.max_tokens, 7);
        assert!((p.temperature - 1.0).abs() < f32::EPSILON);
        assert!((p.repeat_penalty - 1.2).abs() < f32::EPSILON);
    }
}
