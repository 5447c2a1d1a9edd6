//! The embedded engine: a GGUF model run in-process by llama.cpp (through `llama-cpp-2`,
//! built from the source the crate bundles), with continuous batching across requests.
//!
//! **Loading.** The file is copied once into a sealed in-memory file (`memfd`, sealed
//! against writes, growth and shrinking) while it is hashed; llama.cpp then maps that
//! sealed copy. So the digest the node reports is the digest of the weights that run:
//! whoever controls the disk (on a confidential VM, the host) cannot swap the file
//! between hashing and loading. The same sealed copy gives the metadata our tokenizer
//! and chat template are built from ([`crate::gguf`]).
//!
//! **Scheduling.** One worker thread owns the model and one llama.cpp context whose KV
//! cache holds up to [`LoadOptions::parallel`] sequences (unified cache of
//! [`LoadOptions::context_tokens`] cells). Each step it decodes one batch that carries
//! the next token of every running generation plus a chunk of any prompt still being
//! read (continuous batching), so a new request does not wait for the others to finish
//! and a long prompt does not stall the running ones for more than one chunk. A
//! request is admitted only when a sequence is free and the cache has room for its
//! prompt plus `max_tokens`, so a running generation never runs out of cache. Past the
//! slots, up to [`LoadOptions::queue`] requests wait in order; beyond that `generate`
//! fails at once with [`EngineError::Busy`].
//!
//! **Streaming and cancellation.** The worker never blocks on one reader: text waits
//! in a per-request buffer while the reader's channel is full, and that request sits
//! out the batch until the reader catches up. A dropped [`TokenStream`] frees the
//! request's sequence and cache cells at the next step.
//!
//! **Privacy.** llama.cpp's own logging is switched off: its messages are not written
//! for a TEE and must never be a path for request content.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom, Write};
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc as std_mpsc};
use std::time::Duration;

use futures::future::BoxFuture;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::gguf;
use crate::template::ChatTemplate;
use crate::tokenizer::{Tokenizer, TokenizerSpec};
use crate::{
    ChatMessage, Completion, Engine, EngineError, FinishReason, GenerateParams, ModelInfo,
    StreamEvent, TokenStream, Utf8Decoder,
};

/// Options for [`EmbeddedEngine::load`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Refuse the file unless its SHA-256 is this (the digest the ledger lists).
    pub expected_sha256: Option<[u8; 32]>,
    /// Where the model runs.
    pub backend: Backend,
    /// CPU threads for llama.cpp; 0 means every core this process may use.
    pub threads: usize,
    /// KV cache size in tokens, shared by all running requests; 0 means
    /// [`LoadOptions::DEFAULT_CONTEXT_TOKENS`], at most the model's training context
    /// times `parallel`. One request can use at most the smaller of this and the model's
    /// training context.
    pub context_tokens: u32,
    /// Requests generated at the same time (llama.cpp sequences), at least 1.
    pub parallel: u32,
    /// Requests that may wait for a free sequence; past this, `generate` answers
    /// [`EngineError::Busy`].
    pub queue: u32,
}

impl LoadOptions {
    /// Default KV cache size in tokens, shared by the running requests: 224 MiB of cache
    /// for Qwen2.5-Coder-1.5B (28 KiB per token), and room for the largest summarize
    /// request (24 KiB of chat, about 6k tokens) plus its answer.
    pub const DEFAULT_CONTEXT_TOKENS: u32 = 8192;
    /// Default number of concurrent generations.
    pub const DEFAULT_PARALLEL: u32 = 4;
    /// Default number of waiting requests.
    pub const DEFAULT_QUEUE: u32 = 32;
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            expected_sha256: None,
            backend: Backend::Cpu,
            threads: 0,
            context_tokens: 0,
            parallel: Self::DEFAULT_PARALLEL,
            queue: Self::DEFAULT_QUEUE,
        }
    }
}

/// The compute device for the embedded engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// The CPU (the default).
    #[default]
    Cpu,
    /// An NVIDIA GPU by ordinal, every layer offloaded to it alone. Needs the crate's
    /// `cuda` feature (llama.cpp's CUDA backend); without it, with no device visible or
    /// with an ordinal beyond the devices, loading fails with
    /// [`EngineError::GpuUnavailable`] saying which.
    Cuda(usize),
}

/// llama.cpp's process-wide initialisation, done once.
fn backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut b = LlamaBackend::init().map_err(|e| e.to_string())?;
            // llama.cpp logs to stderr by default; nothing it says may leave the node
            // unfiltered (see the module docs).
            b.void_logs();
            Ok(b)
        })
        .as_ref()
        .map_err(|e| EngineError::Inference(format!("llama.cpp initialisation failed: {e}")))
}

/// A GGUF file copied into a sealed memfd, with its digest and metadata.
struct SealedModel {
    file: std::fs::File,
    digest: [u8; 32],
    metadata: gguf::Metadata,
}

impl SealedModel {
    fn copy_from(mut src: impl Read, path_for_errors: &str) -> Result<Self, EngineError> {
        use rustix::fs::{MemfdFlags, SealFlags};
        let io = |kind: std::io::ErrorKind| EngineError::ModelIo {
            path: path_for_errors.to_owned(),
            kind,
        };
        let fd = rustix::fs::memfd_create(
            "confide-model",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| io(std::io::Error::from(e).kind()))?;
        let mut file = std::fs::File::from(fd);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 8 << 20];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e.kind())),
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(|e| io(e.kind()))?;
        }
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
        )
        .map_err(|e| io(std::io::Error::from(e).kind()))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| io(e.kind()))?;
        let metadata = gguf::read_metadata(std::io::BufReader::new(&file))?;
        Ok(Self {
            file,
            digest: hasher.finalize().into(),
            metadata,
        })
    }

    /// A path llama.cpp can open that names this sealed file and nothing else.
    fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

/// What the worker needs to start, checked before it does.
struct Prepared {
    sealed: SealedModel,
    info: ModelInfo,
    tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    stop: Vec<u32>,
    train_context: u32,
}

fn prepare(sealed: SealedModel, opts: &LoadOptions) -> Result<Prepared, EngineError> {
    if let Some(expected) = opts.expected_sha256
        && expected != sealed.digest
    {
        return Err(EngineError::ModelDigestMismatch {
            expected: hex::encode(expected),
            actual: hex::encode(sealed.digest),
        });
    }
    let md = &sealed.metadata;
    let arch = md
        .string("general.architecture")
        .ok_or_else(|| EngineError::InvalidModel("general.architecture is missing".into()))?
        .to_owned();
    if !matches!(arch.as_str(), "llama" | "qwen2") {
        return Err(EngineError::UnsupportedArchitecture(arch));
    }
    let name = md.string("general.name").unwrap_or(&arch).to_owned();
    let train_context = md
        .kv
        .get(&format!("{arch}.context_length"))
        .and_then(gguf::Value::to_u32)
        .filter(|&n| n > 0)
        .ok_or_else(|| EngineError::InvalidModel(format!("{arch}.context_length is missing")))?;
    let tokenizer = Tokenizer::new(&TokenizerSpec::from_gguf(&md.kv)?)?;
    let template = ChatTemplate::detect(md.string("tokenizer.chat_template"), &tokenizer)?;
    let mut stop = template.stop_tokens();
    stop.extend(tokenizer.eos());
    stop.sort_unstable();
    stop.dedup();
    let info = ModelInfo {
        name,
        architecture: arch,
        sha256: Some(sealed.digest),
        context_length: Some(train_context as usize),
    };
    Ok(Prepared {
        sealed,
        info,
        tokenizer: Arc::new(tokenizer),
        template,
        stop,
        train_context,
    })
}

/// Settings the worker runs with, resolved from [`LoadOptions`] and the model.
#[derive(Debug, Clone, Copy)]
struct Resolved {
    threads: i32,
    cache_tokens: u32,
    per_request: u32,
    parallel: u32,
    batch: u32,
}

impl Resolved {
    /// Prompt tokens decoded per step at most (llama.cpp's `n_batch`).
    const BATCH: u32 = 512;

    fn new(opts: &LoadOptions, train_context: u32) -> Result<Self, EngineError> {
        if opts.parallel == 0 || opts.parallel > 64 {
            return Err(EngineError::InvalidParameter {
                name: "parallel",
                reason: "must be between 1 and 64",
            });
        }
        let threads = if opts.threads == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            opts.threads
        };
        let threads = i32::try_from(threads.min(512)).unwrap_or(1);
        let wanted = if opts.context_tokens == 0 {
            LoadOptions::DEFAULT_CONTEXT_TOKENS
        } else {
            opts.context_tokens
        };
        let cache_tokens = wanted.min(train_context.saturating_mul(opts.parallel));
        if cache_tokens < 256 {
            return Err(EngineError::InvalidParameter {
                name: "context_tokens",
                reason: "must be at least 256",
            });
        }
        Ok(Self {
            threads,
            cache_tokens,
            per_request: cache_tokens.min(train_context),
            parallel: opts.parallel,
            batch: Self::BATCH,
        })
    }
}

/// A loaded model. Cheap to share (`Arc<EmbeddedEngine>` or `Arc<dyn Engine>`).
pub struct EmbeddedEngine {
    info: ModelInfo,
    tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    settings: Resolved,
    queue_limit: usize,
    jobs: std_mpsc::Sender<Job>,
    /// Requests accepted and not yet finished (running or waiting).
    outstanding: Arc<AtomicUsize>,
    /// Requests running on a sequence.
    active: Arc<AtomicUsize>,
}

impl std::fmt::Debug for EmbeddedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedEngine")
            .field("info", &self.info)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl EmbeddedEngine {
    /// Load a GGUF model from `path` (blocking: call it from `spawn_blocking` or use
    /// [`EmbeddedEngine::open`] in async code).
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Self, EngineError> {
        let shown = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| EngineError::ModelIo {
            path: shown.clone(),
            kind: e.kind(),
        })?;
        Self::start(SealedModel::copy_from(file, &shown)?, opts)
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
        Self::start(SealedModel::copy_from(&bytes[..], "<memory>")?, opts)
    }

    fn start(sealed: SealedModel, opts: &LoadOptions) -> Result<Self, EngineError> {
        let prepared = prepare(sealed, opts)?;
        let settings = Resolved::new(opts, prepared.train_context)?;
        let backend_choice = opts.backend;
        let (jobs_tx, jobs_rx) = std_mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = std_mpsc::sync_channel::<Result<(), EngineError>>(1);
        let active = Arc::new(AtomicUsize::new(0));
        let outstanding = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            tokenizer: Arc::clone(&prepared.tokenizer),
            stop: prepared.stop.clone(),
            settings,
            active: Arc::clone(&active),
            outstanding: Arc::clone(&outstanding),
        };
        let sealed = prepared.sealed;
        std::thread::Builder::new()
            .name("confide-llama".into())
            .spawn(move || worker.run(&sealed, backend_choice, &ready_tx, &jobs_rx))
            .map_err(|e| EngineError::Inference(format!("cannot start the engine thread: {e}")))?;
        ready_rx.recv().map_err(|_| EngineError::WorkerGone)??;
        tracing::info!(
            architecture = %prepared.info.architecture,
            context_length = prepared.train_context,
            cache_tokens = settings.cache_tokens,
            parallel = settings.parallel,
            threads = settings.threads,
            "model loaded"
        );
        Ok(Self {
            info: prepared.info,
            tokenizer: prepared.tokenizer,
            template: prepared.template,
            settings,
            queue_limit: (opts.parallel as usize).saturating_add(opts.queue as usize),
            jobs: jobs_tx,
            outstanding,
            active,
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

    /// Most tokens (prompt plus output) one request may use.
    pub fn request_context(&self) -> usize {
        self.settings.per_request as usize
    }

    /// How many generations are running on a sequence right now (0 once every stream
    /// has finished or been dropped and the worker has released its sequence).
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
        if ids.len() + params.max_tokens as usize > self.request_context() {
            return Err(EngineError::ContextOverflow {
                prompt_tokens: ids.len(),
                max_tokens: params.max_tokens,
                context: self.request_context(),
            });
        }
        Ok(ids)
    }

    fn submit(
        &self,
        messages: &[ChatMessage],
        params: GenerateParams,
    ) -> Result<TokenStream, EngineError> {
        let prompt = self.prompt_ids(messages, &params)?;
        // Reserve a place first, so that concurrent callers cannot overshoot the bound.
        let before = self.outstanding.fetch_add(1, Ordering::SeqCst);
        if before >= self.queue_limit {
            self.outstanding.fetch_sub(1, Ordering::SeqCst);
            return Err(EngineError::Busy {
                limit: self.queue_limit,
            });
        }
        let (tx, stream) = TokenStream::channel();
        let job = Job { prompt, params, tx };
        if self.jobs.send(job).is_err() {
            self.outstanding.fetch_sub(1, Ordering::SeqCst);
            return Err(EngineError::WorkerGone);
        }
        Ok(stream)
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
        let result = self.submit(&messages, params);
        drop(messages);
        Box::pin(async move { result })
    }
}

type Tx = mpsc::Sender<Result<StreamEvent, EngineError>>;

/// One request as handed to the worker.
struct Job {
    prompt: Zeroizing<Vec<u32>>,
    params: GenerateParams,
    tx: Tx,
}

impl Job {
    /// KV cache cells this request may use at most.
    fn reserve(&self) -> u32 {
        u32::try_from(self.prompt.len())
            .unwrap_or(u32::MAX)
            .saturating_add(self.params.max_tokens)
    }
}

/// A request running on a sequence.
struct Slot {
    seq: i32,
    job: Job,
    sampler: LlamaSampler,
    /// Prompt tokens already in the cache.
    prefilled: usize,
    /// The token to feed next, once the prompt is in.
    next: Option<LlamaToken>,
    /// Position of `next` in the sequence.
    pos: i32,
    generated: u32,
    decoder: Utf8Decoder,
    /// Events the reader has not taken yet (its channel was full).
    pending: VecDeque<Result<StreamEvent, EngineError>>,
    /// Batch index whose logits belong to this slot in the current step.
    logits_at: Option<i32>,
    finished: bool,
}

impl Slot {
    /// Hand buffered events to the reader; false when the reader is gone.
    fn flush(&mut self) -> bool {
        while let Some(ev) = self.pending.pop_front() {
            match self.job.tx.try_send(ev) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(ev)) => {
                    self.pending.push_front(ev);
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        true
    }

    fn finish(&mut self, reason: FinishReason) {
        let rest = self.decoder.finish();
        if !rest.is_empty() {
            self.pending.push_back(Ok(StreamEvent::Text(rest)));
        }
        self.pending.push_back(Ok(StreamEvent::Done(Completion {
            finish_reason: reason,
            prompt_tokens: u32::try_from(self.job.prompt.len()).ok(),
            completion_tokens: Some(self.generated),
        })));
        self.finished = true;
    }

    fn fail(&mut self, e: EngineError) {
        self.pending.clear();
        self.pending.push_back(Err(e));
        self.finished = true;
    }
}

/// The sampler chain for one request: repeat penalty over the last
/// [`GenerateParams::REPEAT_WINDOW`] generated tokens, then greedy or
/// top-p/temperature sampling seeded from the request.
fn sampler_for(p: &GenerateParams, n_vocab: i32) -> LlamaSampler {
    let mut chain = Vec::new();
    if p.repeat_penalty > 1.0 {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            i32::try_from(GenerateParams::REPEAT_WINDOW).unwrap_or(64),
            p.repeat_penalty,
            0.0,
            0.0,
        ));
    }
    if p.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if let Some(top_p) = p.top_p
            && top_p < 1.0
        {
            chain.push(LlamaSampler::top_p(top_p, 1));
        }
        chain.push(LlamaSampler::temp(p.temperature));
        // llama.cpp seeds with 32 bits; fold the 64-bit seed so every bit counts.
        let seed = (p.seed ^ (p.seed >> 32)) as u32;
        chain.push(LlamaSampler::dist(seed));
    }
    LlamaSampler::chain_simple(chain)
}

/// The worker thread's state.
struct Worker {
    tokenizer: Arc<Tokenizer>,
    stop: Vec<u32>,
    settings: Resolved,
    active: Arc<AtomicUsize>,
    outstanding: Arc<AtomicUsize>,
}

/// The ggml device index of CUDA device `ordinal`, or why there is none. The three
/// causes get three messages: an operator who asked for a GPU must learn whether to
/// rebuild, to fix the driver or VM, or to pick another ordinal.
fn cuda_device(ordinal: usize) -> Result<usize, EngineError> {
    if !cfg!(feature = "cuda") {
        return Err(EngineError::GpuUnavailable(
            "this build has no CUDA backend (build with the `cuda` feature)".into(),
        ));
    }
    let gpus: Vec<_> = llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .filter(|d| {
            d.backend == "CUDA" && d.device_type == llama_cpp_2::LlamaBackendDeviceType::Gpu
        })
        .collect();
    if gpus.is_empty() {
        return Err(EngineError::GpuUnavailable(
            "the CUDA backend finds no device (no NVIDIA driver loaded, or no GPU visible to \
             this machine)"
                .into(),
        ));
    }
    match gpus.get(ordinal) {
        Some(d) => Ok(d.index),
        None => Err(EngineError::GpuUnavailable(format!(
            "CUDA device {ordinal} does not exist: {} found ({})",
            gpus.len(),
            gpus.iter()
                .map(|d| d.description.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// How llama.cpp loads the weights for `choice`; the engine and the benchmark's raw
/// baselines both load through here, so a baseline runs where the engine runs.
fn model_params(choice: Backend) -> Result<LlamaModelParams, EngineError> {
    let params = LlamaModelParams::default();
    match choice {
        // llama.cpp's default offloads every layer to whatever GPU it finds; the CPU
        // choice must stay on the CPU even in a `cuda` build on a GPU machine.
        Backend::Cpu => Ok(params.with_n_gpu_layers(0)),
        // One GPU, every layer: the device is named explicitly, because llama.cpp's
        // default would split the layers over every GPU it sees.
        Backend::Cuda(ordinal) => {
            let device = cuda_device(ordinal)?;
            params
                .with_n_gpu_layers(u32::MAX)
                .with_devices(&[device])
                .map_err(|e| EngineError::GpuUnavailable(format!("CUDA device {ordinal}: {e}")))
        }
    }
}

fn inference(what: &str, e: impl std::fmt::Display) -> EngineError {
    // llama.cpp's errors are status codes and parameter names, never tensor or token
    // contents, so they are safe to keep.
    EngineError::Inference(format!("{what}: {e}"))
}

impl Worker {
    fn run(
        self,
        sealed: &SealedModel,
        choice: Backend,
        ready: &std_mpsc::SyncSender<Result<(), EngineError>>,
        jobs: &std_mpsc::Receiver<Job>,
    ) {
        let loaded = (|| {
            let backend = backend()?;
            let params = model_params(choice)?;
            let model =
                LlamaModel::load_from_file(backend, sealed.proc_path(), &params).map_err(|e| {
                    EngineError::InvalidModel(format!("llama.cpp could not load it: {e}"))
                })?;
            Ok((backend, model))
        })();
        let (backend, model) = match loaded {
            Ok(v) => v,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let s = self.settings;
        let ctx_params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(s.cache_tokens))
            .with_n_batch(s.batch)
            .with_n_ubatch(s.batch)
            .with_n_seq_max(s.parallel)
            .with_kv_unified(true)
            .with_n_threads(s.threads)
            .with_n_threads_batch(s.threads);
        let mut ctx = match model.new_context(backend, ctx_params) {
            Ok(c) => c,
            Err(e) => {
                let _ = ready.send(Err(inference("llama.cpp could not create a context", e)));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        self.schedule(&model, &mut ctx, jobs);
    }

    fn schedule(
        &self,
        model: &LlamaModel,
        ctx: &mut LlamaContext<'_>,
        jobs: &std_mpsc::Receiver<Job>,
    ) {
        let s = self.settings;
        let mut waiting: VecDeque<Job> = VecDeque::new();
        let mut slots: Vec<Slot> = Vec::new();
        let mut free: Vec<i32> = (0..i32::try_from(s.parallel).unwrap_or(1)).rev().collect();
        let mut reserved: u32 = 0;
        let mut batch = LlamaBatch::new(s.batch as usize, 1);
        let mut open = true;
        loop {
            // Intake: block only when there is nothing at all to do.
            if slots.is_empty() && waiting.is_empty() {
                if !open {
                    return;
                }
                match jobs.recv() {
                    Ok(j) => waiting.push_back(j),
                    Err(_) => return,
                }
            }
            loop {
                match jobs.try_recv() {
                    Ok(j) => waiting.push_back(j),
                    Err(std_mpsc::TryRecvError::Empty) => break,
                    Err(std_mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            // Waiting requests whose reader left need no work.
            let before = waiting.len();
            waiting.retain(|j| !j.tx.is_closed());
            self.outstanding
                .fetch_sub(before - waiting.len(), Ordering::SeqCst);

            // Admit in arrival order while a sequence and cache room are free.
            while let Some(job) = waiting.front() {
                let need = job.reserve();
                if free.is_empty() || reserved.saturating_add(need) > s.cache_tokens {
                    break;
                }
                let (Some(job), Some(seq)) = (waiting.pop_front(), free.pop()) else {
                    break;
                };
                reserved += need;
                self.active.fetch_add(1, Ordering::SeqCst);
                let sampler = sampler_for(&job.params, model.n_vocab());
                slots.push(Slot {
                    seq,
                    job,
                    sampler,
                    prefilled: 0,
                    next: None,
                    pos: 0,
                    generated: 0,
                    decoder: Utf8Decoder::new(),
                    pending: VecDeque::new(),
                    logits_at: None,
                    finished: false,
                });
            }

            // Deliver buffered events; release finished and abandoned requests.
            let mut i = 0;
            while i < slots.len() {
                let alive = slots[i].flush();
                let done = slots[i].finished && slots[i].pending.is_empty();
                if !alive || done {
                    let slot = slots.swap_remove(i);
                    let _ = ctx.clear_kv_cache_seq(u32::try_from(slot.seq).ok(), None, None);
                    reserved -= slot.job.reserve();
                    free.push(slot.seq);
                    self.active.fetch_sub(1, Ordering::SeqCst);
                    self.outstanding.fetch_sub(1, Ordering::SeqCst);
                } else {
                    i += 1;
                }
            }

            // Build one batch: the next token of every running generation whose reader
            // keeps up, then prompt chunks while there is room.
            batch.clear();
            let mut ok = true;
            for slot in &mut slots {
                slot.logits_at = None;
                if slot.finished || !slot.pending.is_empty() {
                    continue;
                }
                if let Some(tok) = slot.next {
                    ok &= batch.add(tok, slot.pos, &[slot.seq], true).is_ok();
                    slot.logits_at = Some(batch.n_tokens() - 1);
                }
            }
            for slot in &mut slots {
                if slot.finished || slot.next.is_some() {
                    continue;
                }
                let room = (s.batch as usize).saturating_sub(batch.n_tokens() as usize);
                if room == 0 {
                    break;
                }
                let total = slot.job.prompt.len();
                let end = (slot.prefilled + room).min(total);
                for (k, &id) in slot.job.prompt[slot.prefilled..end].iter().enumerate() {
                    let pos = i32::try_from(slot.prefilled + k).unwrap_or(i32::MAX);
                    let last = slot.prefilled + k + 1 == total;
                    ok &= batch
                        .add(LlamaToken::new(id as i32), pos, &[slot.seq], last)
                        .is_ok();
                    if last {
                        slot.logits_at = Some(batch.n_tokens() - 1);
                    }
                }
                slot.prefilled = end;
            }
            if batch.n_tokens() == 0 {
                // Every running request waits for its reader: give them a moment.
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            let decoded = if ok {
                ctx.decode(&mut batch)
                    .map_err(|e| inference("decode failed", e))
            } else {
                Err(EngineError::Inference("batch assembly failed".into()))
            };
            if let Err(e) = decoded {
                // The cache state of every request in this batch is now unknown.
                for slot in slots.iter_mut().filter(|s| !s.finished) {
                    slot.fail(EngineError::Inference(e.to_string()));
                }
                continue;
            }

            // Sample for every request that asked for logits in this step.
            for slot in &mut slots {
                let Some(idx) = slot.logits_at.take() else {
                    continue;
                };
                let tok = slot.sampler.sample(ctx, idx);
                let id = u32::try_from(tok.0).unwrap_or(u32::MAX);
                if self.stop.contains(&id) || model.vocab().is_eog(tok) {
                    slot.finish(FinishReason::Stop);
                    continue;
                }
                slot.generated += 1;
                let text = slot.decoder.push(self.tokenizer.token_bytes(id));
                if !text.is_empty() {
                    slot.pending.push_back(Ok(StreamEvent::Text(text)));
                }
                if slot.generated >= slot.job.params.max_tokens {
                    slot.finish(FinishReason::Length);
                    continue;
                }
                slot.pos = i32::try_from(slot.job.prompt.len() + slot.generated as usize - 1)
                    .unwrap_or(i32::MAX);
                slot.next = Some(tok);
            }
        }
    }
}

/// Timings of llama.cpp's own minimal decode loop, the engine benchmark's baseline.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct RawLoopTimings {
    /// Prompt decode plus the first sampled token.
    pub first_token: Duration,
    /// Generated tokens after the first, per second.
    pub tokens_per_second: f64,
    /// The generated token ids (greedy, so the engine's greedy output must match them).
    pub ids: Vec<u32>,
}

/// llama.cpp's raw loop on its own context: decode the prompt in one batch, then greedy
/// argmax one token at a time, no streaming, no detokenising, no scheduler. This is what
/// llama.cpp's `simple` example does, and the ceiling the engine is measured against.
#[doc(hidden)]
pub fn raw_greedy_loop(
    path: &Path,
    threads: usize,
    prompt: &[u32],
    max_tokens: usize,
) -> Result<RawLoopTimings, EngineError> {
    let n_ctx = u32::try_from(prompt.len() + max_tokens + 16).unwrap_or(u32::MAX);
    let (backend, model) = raw_model(path)?;
    let mut ctx = raw_context(backend, &model, threads, n_ctx, 1)?;
    let mut batch = LlamaBatch::new(n_ctx as usize, 1);
    let start = std::time::Instant::now();
    for (i, &id) in prompt.iter().enumerate() {
        batch
            .add(
                LlamaToken::new(id as i32),
                i as i32,
                &[0],
                i + 1 == prompt.len(),
            )
            .map_err(|e| inference("batch", e))?;
    }
    ctx.decode(&mut batch).map_err(|e| inference("decode", e))?;
    let mut sampler = LlamaSampler::greedy();
    let mut tok = sampler.sample(&ctx, batch.n_tokens() - 1);
    let first_token = start.elapsed();
    let mut ids = Vec::with_capacity(max_tokens);
    ids.push(u32::try_from(tok.0).unwrap_or(u32::MAX));
    let rest = std::time::Instant::now();
    let start_pos = i32::try_from(prompt.len()).unwrap_or(i32::MAX);
    for pos in (start_pos..).take(max_tokens.saturating_sub(1)) {
        batch.clear();
        batch
            .add(tok, pos, &[0], true)
            .map_err(|e| inference("batch", e))?;
        ctx.decode(&mut batch).map_err(|e| inference("decode", e))?;
        tok = sampler.sample(&ctx, 0);
        ids.push(u32::try_from(tok.0).unwrap_or(u32::MAX));
    }
    let secs = rest.elapsed().as_secs_f64();
    Ok(RawLoopTimings {
        first_token,
        tokens_per_second: (max_tokens.saturating_sub(1)) as f64 / secs.max(1e-9),
        ids,
    })
}

/// The model and context of the raw baselines: loaded as the engine loads it on the
/// CPU, llama.cpp's context defaults, our thread count, one batch as large as the cache.
fn raw_model(path: &Path) -> Result<(&'static LlamaBackend, LlamaModel), EngineError> {
    let backend = backend()?;
    let model = LlamaModel::load_from_file(backend, path, &model_params(Backend::Cpu)?)
        .map_err(|e| inference("load", e))?;
    Ok((backend, model))
}

fn raw_context<'m>(
    backend: &LlamaBackend,
    model: &'m LlamaModel,
    threads: usize,
    n_ctx: u32,
    sequences: u32,
) -> Result<LlamaContext<'m>, EngineError> {
    let threads = i32::try_from(threads.max(1)).unwrap_or(1);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_ctx)
        .with_n_ubatch(Resolved::BATCH)
        .with_n_seq_max(sequences)
        .with_kv_unified(true)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    model
        .new_context(backend, params)
        .map_err(|e| inference("context", e))
}

/// llama.cpp's raw loop over `sequences` copies of one prompt decoded together: every
/// prompt in one batch, then one batch per step carrying the next token of every
/// sequence, greedy, `max_tokens` each, nothing else. Returns total generated tokens per
/// second from the start of the prompt decode, the same measure the benchmark takes of
/// the engine serving as many requests at once. This is the most a scheduler on top of
/// llama.cpp can get from batching on this machine: how much one batch of N costs
/// against N batches of one is llama.cpp's matrix kernels' business, not ours.
#[doc(hidden)]
pub fn raw_batched_loop(
    path: &Path,
    threads: usize,
    prompt: &[u32],
    max_tokens: usize,
    sequences: usize,
) -> Result<f64, EngineError> {
    let seqs = sequences.clamp(1, 64);
    let n_ctx = u32::try_from((prompt.len() + max_tokens + 16) * seqs).unwrap_or(u32::MAX);
    let (backend, model) = raw_model(path)?;
    let mut ctx = raw_context(backend, &model, threads, n_ctx, seqs as u32)?;
    let mut batch = LlamaBatch::new(n_ctx as usize, seqs as i32);
    let mut sampler = LlamaSampler::greedy();
    let start = std::time::Instant::now();
    for seq in 0..seqs as i32 {
        for (i, &id) in prompt.iter().enumerate() {
            batch
                .add(
                    LlamaToken::new(id as i32),
                    i as i32,
                    &[seq],
                    i + 1 == prompt.len(),
                )
                .map_err(|e| inference("batch", e))?;
        }
    }
    ctx.decode(&mut batch).map_err(|e| inference("decode", e))?;
    let plen = prompt.len();
    // Logits of sequence k's last prompt token sit at batch index (k + 1) * plen - 1.
    let mut next: Vec<LlamaToken> = (0..seqs)
        .map(|k| sampler.sample(&ctx, ((k + 1) * plen) as i32 - 1))
        .collect();
    let start_pos = i32::try_from(plen).unwrap_or(i32::MAX);
    for pos in (start_pos..).take(max_tokens.saturating_sub(1)) {
        batch.clear();
        for (k, &tok) in next.iter().enumerate() {
            batch
                .add(tok, pos, &[k as i32], true)
                .map_err(|e| inference("batch", e))?;
        }
        ctx.decode(&mut batch).map_err(|e| inference("decode", e))?;
        for (k, tok) in next.iter_mut().enumerate() {
            *tok = sampler.sample(&ctx, k as i32);
        }
    }
    let generated = (seqs * max_tokens) as f64;
    Ok(generated / start.elapsed().as_secs_f64().max(1e-9))
}
