//! Inference engine trait with an embedded llama.cpp engine and an OpenAI-compatible upstream.
//!
//! The node runs its model behind one interface, [`Engine`]: it takes chat messages and
//! [`GenerateParams`] and returns a [`TokenStream`] of text pieces as the model produces
//! them. Dropping the stream cancels the generation (the worker notices that the
//! receiver is gone at the next token and stops).
//!
//! Two real implementations:
//!
//! - [`EmbeddedEngine`]: a GGUF model run in-process by llama.cpp (llama architecture,
//!   e.g. SmolLM2, and Qwen2), several requests at once with continuous batching. The
//!   tokenizer is assembled from the GGUF metadata ([`gguf`], [`tokenizer`]) and the
//!   prompt is rendered with the model's chat template ([`template`]) directly into
//!   token ids, so request text can never smuggle in control tokens. The model file's
//!   SHA-256 is reported in [`ModelInfo`]; the node measures it into its evidence. The
//!   models Confide ships by name are in [`models`].
//! - [`openai::UpstreamEngine`]: an OpenAI-compatible `/v1/chat/completions` server
//!   (vLLM, llama.cpp server, or `confide engine serve`, whose router is
//!   [`openai::router`]) reached over HTTP inside the same TEE, streaming with SSE.
//!
//! The two product features build their prompts in [`features`]: `summarize` (messages
//! with sender, time, text) and `suggest` (a draft and a [`features::Tone`]), each with
//! per-request size limits and a schema that rejects any field it does not need.
//!
//! Request content (prompts, generated text) is held in [`zeroize::Zeroizing`] buffers
//! where the code owns them, and never appears in errors or logs: [`EngineError`]
//! carries sizes, counts and field names only.

mod embedded;
mod error;
pub mod features;
pub mod gguf;
pub mod openai;
pub mod template;
pub mod tokenizer;
mod types;
mod utf8;

pub use embedded::{Backend, EmbeddedEngine, LoadOptions};
#[doc(hidden)]
pub use embedded::{RawLoopTimings, raw_batched_loop, raw_greedy_loop};
pub use error::EngineError;
pub use types::{
    ChatMessage, Completion, Engine, FinishReason, GenerateParams, ModelInfo, Role, StreamEvent,
    TokenStream,
};
pub use utf8::Utf8Decoder;

pub mod models;
