//! The engine interface: messages, parameters, the token stream and the trait.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::EngineError;

/// Who said a chat message (the roles of the OpenAI chat API and of ChatML).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The person's turn.
    User,
    /// The model's turn.
    Assistant,
}

impl Role {
    /// The role's name as written in chat templates and the OpenAI API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One chat message. The content is private and wiped from memory on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: Zeroizing<String>,
}

impl ChatMessage {
    /// A message with the given role and content.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: Zeroizing::new(content.into()),
        }
    }
}

impl std::fmt::Debug for ChatMessage {
    // Content is request data: it must not end up in a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatMessage")
            .field("role", &self.role)
            .field("content", &format_args!("<{} bytes>", self.content.len()))
            .finish()
    }
}

/// Sampling and length parameters of one generation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerateParams {
    /// Upper bound on generated tokens (1..=[`GenerateParams::MAX_TOKENS_LIMIT`]).
    pub max_tokens: u32,
    /// 0 means greedy decoding (argmax); otherwise softmax temperature in (0, 2].
    pub temperature: f32,
    /// Nucleus sampling threshold in (0, 1]; `None` samples from the whole distribution.
    pub top_p: Option<f32>,
    /// Seed of the sampler's RNG; with the same seed and inputs, output is reproducible.
    pub seed: u64,
    /// Penalty (>= 1.0) applied to logits of recently generated tokens; 1.0 disables it.
    /// Small models loop without it.
    pub repeat_penalty: f32,
}

impl GenerateParams {
    /// Largest accepted `max_tokens`.
    pub const MAX_TOKENS_LIMIT: u32 = 4096;
    /// How many of the latest tokens the repeat penalty looks at.
    pub const REPEAT_WINDOW: usize = 64;

    /// Check every parameter's range.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.max_tokens == 0 {
            return Err(EngineError::InvalidParameter {
                name: "max_tokens",
                reason: "must be at least 1",
            });
        }
        if self.max_tokens > Self::MAX_TOKENS_LIMIT {
            return Err(EngineError::InvalidParameter {
                name: "max_tokens",
                reason: "must be at most 4096",
            });
        }
        if !self.temperature.is_finite() || !(0.0..=2.0).contains(&self.temperature) {
            return Err(EngineError::InvalidParameter {
                name: "temperature",
                reason: "must be a number in [0, 2]",
            });
        }
        if let Some(p) = self.top_p
            && (!p.is_finite() || p <= 0.0 || p > 1.0)
        {
            return Err(EngineError::InvalidParameter {
                name: "top_p",
                reason: "must be a number in (0, 1]",
            });
        }
        if !self.repeat_penalty.is_finite() || !(1.0..=2.0).contains(&self.repeat_penalty) {
            return Err(EngineError::InvalidParameter {
                name: "repeat_penalty",
                reason: "must be a number in [1, 2]",
            });
        }
        Ok(())
    }
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            temperature: 0.0,
            top_p: None,
            seed: 0,
            repeat_penalty: 1.1,
        }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model emitted an end-of-turn token.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// An upstream reported another reason (e.g. a content filter).
    Other,
}

impl FinishReason {
    /// The OpenAI API's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::Other => "other",
        }
    }
}

/// Summary of a finished generation (the stream's last event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Tokens in the prompt, where known (an upstream may not report usage).
    pub prompt_tokens: Option<u32>,
    /// Tokens generated, where known.
    pub completion_tokens: Option<u32>,
}

/// One event of a [`TokenStream`].
#[derive(Debug)]
pub enum StreamEvent {
    /// The next piece of generated text (one or more tokens, always whole UTF-8).
    Text(Zeroizing<String>),
    /// Generation ended; no events follow.
    Done(Completion),
}

/// Text pieces as the model produces them. Dropping the stream cancels generation.
///
/// Yields `Ok(StreamEvent::Text(..))` zero or more times, then exactly one
/// `Ok(StreamEvent::Done(..))` or one `Err(..)`, then ends.
pub struct TokenStream {
    rx: mpsc::Receiver<Result<StreamEvent, EngineError>>,
}

impl TokenStream {
    /// Channel capacity between a producer and the stream: small, so a slow reader
    /// applies back-pressure to the model instead of buffering a whole answer.
    pub const CHANNEL_CAPACITY: usize = 16;

    /// A stream fed through the returned sender (for engine implementations). The
    /// producer should stop when `send` fails or `Sender::is_closed` turns true: that
    /// means the stream was dropped.
    pub fn channel() -> (mpsc::Sender<Result<StreamEvent, EngineError>>, Self) {
        let (tx, rx) = mpsc::channel(Self::CHANNEL_CAPACITY);
        (tx, Self { rx })
    }

    /// Drain the stream into one string and the completion summary.
    pub async fn collect_text(mut self) -> Result<(Zeroizing<String>, Completion), EngineError> {
        let mut out = Zeroizing::new(String::new());
        while let Some(ev) = self.rx.recv().await {
            match ev? {
                StreamEvent::Text(t) => out.push_str(&t),
                StreamEvent::Done(c) => return Ok((out, c)),
            }
        }
        Err(EngineError::WorkerGone)
    }
}

impl Stream for TokenStream {
    type Item = Result<StreamEvent, EngineError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl std::fmt::Debug for TokenStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStream").finish_non_exhaustive()
    }
}

/// What an engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// A display name (GGUF `general.name`, or the upstream's model id).
    pub name: String,
    /// Architecture (`llama`, `qwen2`, or `upstream`).
    pub architecture: String,
    /// SHA-256 of the model file as loaded; `None` for an upstream, whose weights the
    /// node cannot see (its measurement must come from the upstream's own TEE).
    pub sha256: Option<[u8; 32]>,
    /// Context window in tokens, where known.
    pub context_length: Option<usize>,
}

impl ModelInfo {
    /// The model digest as lowercase hex, if known.
    pub fn sha256_hex(&self) -> Option<String> {
        self.sha256.map(hex::encode)
    }
}

/// An inference engine: chat messages in, a stream of text out.
///
/// Object safe (`Arc<dyn Engine>`); implementations must not block the async runtime.
pub trait Engine: Send + Sync {
    /// What this engine runs.
    fn info(&self) -> &ModelInfo;

    /// Start generating the assistant's reply to `messages`.
    ///
    /// Bad requests (empty conversation, parameters out of range, prompt too long) are
    /// rejected here, before any work starts; errors during generation arrive on the
    /// stream.
    fn generate(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerateParams,
    ) -> BoxFuture<'_, Result<TokenStream, EngineError>>;
}
