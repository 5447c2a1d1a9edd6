//! The crate's one error type.

/// Everything that can go wrong in the engine.
///
/// Messages name *what* was wrong (a field, a size, a limit, a model property) and
/// never contain request content: prompts and outputs are private and errors end up
/// in logs and HTTP responses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The model file could not be read.
    #[error("cannot read the model file {path}: {kind}")]
    ModelIo {
        /// The path that was opened.
        path: String,
        /// What the operating system reported.
        kind: std::io::ErrorKind,
    },
    /// The model file's SHA-256 is not the expected one.
    #[error("model file digest mismatch: expected sha256 {expected}, file has {actual}")]
    ModelDigestMismatch {
        /// Expected digest (hex).
        expected: String,
        /// Actual digest of the bytes that were read (hex).
        actual: String,
    },
    /// The file is not a GGUF model the engine can load.
    #[error("invalid GGUF model: {0}")]
    InvalidModel(String),
    /// `general.architecture` names an architecture this engine does not run.
    #[error("unsupported model architecture `{0}` (supported: llama, qwen2)")]
    UnsupportedArchitecture(String),
    /// The GGUF tokenizer model or pre-tokenizer is not one this engine implements.
    #[error("unsupported tokenizer: {0}")]
    UnsupportedTokenizer(String),
    /// The GGUF tokenizer metadata is inconsistent.
    #[error("invalid tokenizer metadata: {0}")]
    InvalidTokenizer(String),
    /// The model's chat template is not one this engine can render.
    #[error("unsupported chat template (supported: ChatML)")]
    UnsupportedChatTemplate,
    /// The text contains a character the model's vocabulary has no bytes for.
    #[error("text contains a character the model's vocabulary cannot represent")]
    UnrepresentableText,
    /// A pre-tokenizer regex failed (e.g. its backtracking limit) on the input.
    #[error("tokenization failed")]
    Tokenize,
    /// A request carried no messages.
    #[error("the request has no messages")]
    EmptyConversation,
    /// A request carried more messages than allowed.
    #[error("too many messages: {count}, the limit is {max}")]
    TooManyMessages {
        /// Messages received.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A text field is longer than its limit.
    #[error("{field} is {len} bytes, the limit is {max}")]
    FieldTooLong {
        /// Which field.
        field: &'static str,
        /// Its size in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A required text field is empty (or only whitespace).
    #[error("{field} is empty")]
    EmptyField {
        /// Which field.
        field: &'static str,
    },
    /// A field contains characters it must not (e.g. control characters in a name).
    #[error("{field} contains control characters")]
    ControlCharacters {
        /// Which field.
        field: &'static str,
    },
    /// The request as a whole is larger than allowed.
    #[error("request is {len} bytes, the limit is {max}")]
    RequestTooLarge {
        /// Total size in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A generation parameter is out of range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Prompt plus requested output do not fit the model's context window.
    #[error(
        "prompt is {prompt_tokens} tokens and max_tokens is {max_tokens}: more than the context window of {context} tokens"
    )]
    ContextOverflow {
        /// Tokens in the rendered prompt.
        prompt_tokens: usize,
        /// Requested maximum output tokens.
        max_tokens: u32,
        /// The model's context length.
        context: usize,
    },
    /// llama.cpp failed while loading or running the model.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The GPU the options ask for cannot be used: this build has no CUDA backend, the
    /// backend sees no device, or the ordinal names a device that does not exist.
    #[error("GPU unavailable: {0}")]
    GpuUnavailable(String),
    /// Every sequence is busy and the waiting queue is full; try again later.
    #[error("the engine is busy: {limit} requests are already running or waiting")]
    Busy {
        /// Running plus waiting requests the engine accepts.
        limit: usize,
    },
    /// The generation worker ended without reporting a result.
    #[error("the generation worker stopped unexpectedly")]
    WorkerGone,
    /// The upstream URL is not usable.
    #[error("invalid upstream URL: {0}")]
    UpstreamUrl(String),
    /// Transport-level failure talking to the upstream.
    #[error("upstream request failed: {0}")]
    UpstreamHttp(String),
    /// The upstream answered with a non-success HTTP status.
    #[error("upstream answered HTTP {0}")]
    UpstreamStatus(u16),
    /// The upstream's response does not follow the OpenAI chat completions protocol.
    #[error("upstream sent an invalid response: {0}")]
    UpstreamProtocol(&'static str),
    /// An attested upstream node could not be used: it failed verification, refused this
    /// node, or broke the session. The text names the typed cause (never request content).
    #[error("upstream node: {0}")]
    PeerNode(String),
}

impl EngineError {
    /// A stable, content-free name for the error kind, for allow-listed logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ModelIo { .. } => "model_io",
            Self::ModelDigestMismatch { .. } => "model_digest_mismatch",
            Self::InvalidModel(_) => "invalid_model",
            Self::UnsupportedArchitecture(_) => "unsupported_architecture",
            Self::UnsupportedTokenizer(_) => "unsupported_tokenizer",
            Self::InvalidTokenizer(_) => "invalid_tokenizer",
            Self::UnsupportedChatTemplate => "unsupported_chat_template",
            Self::Tokenize => "tokenize",
            Self::UnrepresentableText => "unrepresentable_text",
            Self::EmptyConversation => "empty_conversation",
            Self::TooManyMessages { .. } => "too_many_messages",
            Self::FieldTooLong { .. } => "field_too_long",
            Self::EmptyField { .. } => "empty_field",
            Self::ControlCharacters { .. } => "control_characters",
            Self::RequestTooLarge { .. } => "request_too_large",
            Self::InvalidParameter { .. } => "invalid_parameter",
            Self::ContextOverflow { .. } => "context_overflow",
            Self::Inference(_) => "inference",
            Self::GpuUnavailable(_) => "gpu_unavailable",
            Self::Busy { .. } => "busy",
            Self::WorkerGone => "worker_gone",
            Self::UpstreamUrl(_) => "upstream_url",
            Self::UpstreamHttp(_) => "upstream_http",
            Self::UpstreamStatus(_) => "upstream_status",
            Self::UpstreamProtocol(_) => "upstream_protocol",
            Self::PeerNode(_) => "peer_node",
        }
    }

    /// Whether the error is the caller's fault (a bad request) rather than the engine's.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::EmptyConversation
                | Self::TooManyMessages { .. }
                | Self::FieldTooLong { .. }
                | Self::EmptyField { .. }
                | Self::ControlCharacters { .. }
                | Self::RequestTooLarge { .. }
                | Self::InvalidParameter { .. }
                | Self::ContextOverflow { .. }
                | Self::UnrepresentableText
        )
    }
}
