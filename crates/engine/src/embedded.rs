//! The embedded engine: a GGUF model run in-process on the CPU with candle.
//!
//! Loading reads the whole file once, hashes exactly those bytes (SHA-256) and parses
//! the model from the same buffer, so the reported digest is the digest of the weights
//! that run (no window for the file to change between hashing and loading).
//!
//! Generation runs on tokio's blocking pool (`spawn_blocking`): the async runtime is
//! never blocked by matrix multiplications. The worker sends text pieces through a
//! bounded channel and stops as soon as the receiving [`TokenStream`] is dropped.
//! One model instance holds one KV cache, so generations on one engine are serialised
//! by an async mutex (waiting callers do not hold a thread).

use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::{quantized_llama, quantized_qwen2};
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc};
use zeroize::Zeroizing;

use crate::template::ChatTemplate;
use crate::tokenizer::{Tokenizer, TokenizerSpec};
use crate::{
    ChatMessage, Completion, Engine, EngineError, FinishReason, GenerateParams, ModelInfo,
    StreamEvent, TokenStream, Utf8Decoder,
};

/// Options for [`EmbeddedEngine::load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Refuse the file unless its SHA-256 is this (the digest the ledger lists).
    pub expected_sha256: Option<[u8; 32]>,
    /// Where the model runs.
    pub backend: Backend,
}

/// The compute device for the embedded engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// The CPU (the default; pure Rust).
    #[default]
    Cpu,
    /// An NVIDIA GPU by ordinal. Needs the crate's `cuda` feature (candle's CUDA
    /// backend); without it, loading fails with [`EngineError::Inference`] saying
    /// candle was not compiled with CUDA support.
    Cuda(usize),
}

impl Backend {
    fn device(self) -> Result<Device, EngineError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(ordinal) => Ok(Device::new_cuda(ordinal)?),
        }
    }
}

/// The architectures candle runs for us.
enum Weights {
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
}

impl Weights {
    /// Logits for the last position of `input` (shape `[1, seq]`), starting at `pos`.
    /// `pos == 0` restarts the KV cache.
    fn forward(&mut self, input: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        match self {
            Self::Llama(m) => m.forward(input, pos),
            Self::Qwen2(m) => m.forward(input, pos),
        }
    }
}

/// A loaded model. Cheap to share (`Arc<EmbeddedEngine>` or `Arc<dyn Engine>`).
pub struct EmbeddedEngine {
    info: ModelInfo,
    tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    stop: Arc<Vec<u32>>,
    context_length: usize,
    device: Device,
    weights: Arc<Mutex<Weights>>,
    active: Arc<AtomicUsize>,
}

impl std::fmt::Debug for EmbeddedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedEngine")
            .field("info", &self.info)
            .field("tokenizer", &self.tokenizer)
            .finish_non_exhaustive()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl EmbeddedEngine {
    /// Load a GGUF model from `path` (blocking: call it from `spawn_blocking` or use
    /// [`EmbeddedEngine::open`] in async code).
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Self, EngineError> {
        let io_err = |e: std::io::Error| EngineError::ModelIo {
            path: path.display().to_string(),
            kind: e.kind(),
        };
        let mut file = std::fs::File::open(path).map_err(io_err)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err)?;
        Self::from_bytes(bytes, opts)
    }

    /// Load a GGUF model on the blocking pool.
    pub async fn open(path: &Path, opts: LoadOptions) -> Result<Self, EngineError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::load(&path, &opts))
            .await
            .map_err(|_| EngineError::WorkerGone)?
    }

    /// Load a GGUF model from its bytes.
    pub fn from_bytes(bytes: Vec<u8>, opts: &LoadOptions) -> Result<Self, EngineError> {
        let digest = sha256(&bytes);
        if let Some(expected) = opts.expected_sha256
            && expected != digest
        {
            return Err(EngineError::ModelDigestMismatch {
                expected: hex::encode(expected),
                actual: hex::encode(digest),
            });
        }
        let mut cursor = Cursor::new(bytes);
        let content = gguf_file::Content::read(&mut cursor)
            .map_err(|e| EngineError::InvalidModel(e.to_string()))?;
        let md = &content.metadata;
        let md_string = |key: &str| match md.get(key) {
            Some(gguf_file::Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let arch = md_string("general.architecture")
            .ok_or_else(|| EngineError::InvalidModel("general.architecture is missing".into()))?;
        let name = md_string("general.name").unwrap_or_else(|| arch.clone());
        let context_length = md
            .get(&format!("{arch}.context_length"))
            .and_then(|v| v.to_u32().ok())
            .ok_or_else(|| EngineError::InvalidModel(format!("{arch}.context_length is missing")))?
            as usize;

        let tokenizer = Tokenizer::new(&TokenizerSpec::from_gguf(md)?)?;
        let template_src = md_string("tokenizer.chat_template");
        let template = ChatTemplate::detect(template_src.as_deref(), &tokenizer)?;
        let mut stop = template.stop_tokens();
        stop.extend(tokenizer.eos());
        stop.sort_unstable();
        stop.dedup();

        let device = opts.backend.device()?;
        let weights = match arch.as_str() {
            "llama" => Weights::Llama(
                quantized_llama::ModelWeights::from_gguf(content, &mut cursor, &device)
                    .map_err(|e| EngineError::InvalidModel(e.to_string()))?,
            ),
            "qwen2" => Weights::Qwen2(
                quantized_qwen2::ModelWeights::from_gguf(content, &mut cursor, &device)
                    .map_err(|e| EngineError::InvalidModel(e.to_string()))?,
            ),
            other => return Err(EngineError::UnsupportedArchitecture(other.to_owned())),
        };
        tracing::info!(
            architecture = %arch,
            context_length,
            vocab = tokenizer.vocab_size(),
            "model loaded"
        );
        Ok(Self {
            info: ModelInfo {
                name,
                architecture: arch,
                sha256: Some(digest),
                context_length: Some(context_length),
            },
            tokenizer: Arc::new(tokenizer),
            template,
            stop: Arc::new(stop),
            context_length,
            device,
            weights: Arc::new(Mutex::new(weights)),
            active: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The tokenizer built from the model's metadata.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The model's chat template.
    pub fn template(&self) -> ChatTemplate {
        self.template
    }

    /// How many generation workers are running right now (0 once every stream has
    /// finished or been dropped and its worker has exited).
    pub fn active_generations(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Render `messages` into prompt token ids and check that they fit.
    pub fn prompt_ids(
        &self,
        messages: &[ChatMessage],
        params: &GenerateParams,
    ) -> Result<Zeroizing<Vec<u32>>, EngineError> {
        params.validate()?;
        let ids = self.template.render(&self.tokenizer, messages)?;
        if ids.len() + params.max_tokens as usize > self.context_length {
            return Err(EngineError::ContextOverflow {
                prompt_tokens: ids.len(),
                max_tokens: params.max_tokens,
                context: self.context_length,
            });
        }
        Ok(ids)
    }

    async fn start(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerateParams,
    ) -> Result<TokenStream, EngineError> {
        let prompt = self.prompt_ids(&messages, &params)?;
        drop(messages);
        let weights = Arc::clone(&self.weights).lock_owned().await;
        let (tx, stream) = TokenStream::channel();
        let job = Job {
            tokenizer: Arc::clone(&self.tokenizer),
            stop: Arc::clone(&self.stop),
            prompt,
            params,
            device: self.device.clone(),
            _active: ActiveGuard::new(&self.active),
        };
        tokio::task::spawn_blocking(move || {
            let tx_err = tx.clone();
            if let Err(e) = job.run(weights, &tx) {
                // The receiver may be gone already; then nobody needs the error.
                let _ = tx_err.blocking_send(Err(e));
            }
        });
        Ok(stream)
    }
}

/// Counts a running worker for [`EmbeddedEngine::active_generations`].
struct ActiveGuard(Arc<AtomicUsize>);

impl ActiveGuard {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(counter))
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One generation, run on a blocking thread.
struct Job {
    tokenizer: Arc<Tokenizer>,
    stop: Arc<Vec<u32>>,
    prompt: Zeroizing<Vec<u32>>,
    params: GenerateParams,
    device: Device,
    _active: ActiveGuard,
}

type Tx = mpsc::Sender<Result<StreamEvent, EngineError>>;

impl Job {
    fn run(self, mut weights: OwnedMutexGuard<Weights>, tx: &Tx) -> Result<(), EngineError> {
        let p = self.params;
        let sampling = if p.temperature <= 0.0 {
            Sampling::ArgMax
        } else {
            match p.top_p {
                Some(top_p) if top_p < 1.0 => Sampling::TopP {
                    p: f64::from(top_p),
                    temperature: f64::from(p.temperature),
                },
                _ => Sampling::All {
                    temperature: f64::from(p.temperature),
                },
            }
        };
        let mut sampler = LogitsProcessor::from_sampling(p.seed, sampling);
        let device = self.device.clone();

        let input = Tensor::new(self.prompt.as_slice(), &device)?.unsqueeze(0)?;
        let mut logits = weights.forward(&input, 0)?.squeeze(0)?;
        drop(input);

        let mut generated: Zeroizing<Vec<u32>> =
            Zeroizing::new(Vec::with_capacity(p.max_tokens as usize));
        let mut decoder = Utf8Decoder::new();
        let mut finish = FinishReason::Length;
        for step in 0..p.max_tokens as usize {
            if tx.is_closed() {
                // The stream was dropped: stop computing for nobody.
                return Ok(());
            }
            if p.repeat_penalty > 1.0 && !generated.is_empty() {
                let start = generated
                    .len()
                    .saturating_sub(GenerateParams::REPEAT_WINDOW);
                logits = candle_transformers::utils::apply_repeat_penalty(
                    &logits,
                    p.repeat_penalty,
                    &generated[start..],
                )?;
            }
            let next = sampler.sample(&logits)?;
            if self.stop.contains(&next) {
                finish = FinishReason::Stop;
                break;
            }
            generated.push(next);
            let text = decoder.push(self.tokenizer.token_bytes(next));
            if !text.is_empty() && tx.blocking_send(Ok(StreamEvent::Text(text))).is_err() {
                return Ok(());
            }
            if step + 1 == p.max_tokens as usize {
                break;
            }
            let input = Tensor::new(&[next], &device)?.unsqueeze(0)?;
            logits = weights
                .forward(&input, self.prompt.len() + step)?
                .squeeze(0)?;
        }
        drop(weights);
        let rest = decoder.finish();
        if !rest.is_empty() && tx.blocking_send(Ok(StreamEvent::Text(rest))).is_err() {
            return Ok(());
        }
        let done = Completion {
            finish_reason: finish,
            prompt_tokens: u32::try_from(self.prompt.len()).ok(),
            completion_tokens: u32::try_from(generated.len()).ok(),
        };
        let _ = tx.blocking_send(Ok(StreamEvent::Done(done)));
        Ok(())
    }
}

impl Engine for EmbeddedEngine {
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

/// Raw candle decode loop without the engine's streaming, sampling and detokenising
/// layers, for the benchmark's baseline: greedy tokens from a prompt, as ids.
#[doc(hidden)]
pub fn raw_greedy_loop(
    engine: &EmbeddedEngine,
    prompt: &[u32],
    max_tokens: usize,
) -> Result<Vec<u32>, EngineError> {
    let mut weights = engine.weights.blocking_lock();
    let device = engine.device.clone();
    let input = Tensor::new(prompt, &device)?.unsqueeze(0)?;
    let mut logits = weights.forward(&input, 0)?.squeeze(0)?;
    let mut out = Vec::with_capacity(max_tokens);
    for step in 0..max_tokens {
        let next = logits.argmax(0)?.to_scalar::<u32>()?;
        out.push(next);
        if step + 1 == max_tokens {
            break;
        }
        let input = Tensor::new(&[next], &device)?.unsqueeze(0)?;
        logits = weights.forward(&input, prompt.len() + step)?.squeeze(0)?;
    }
    Ok(out)
}
