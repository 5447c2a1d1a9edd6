//! `confide engine` subcommands: serve a model over the OpenAI-compatible API, try it
//! from the command line, and inspect a model file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use confide_engine::features::{self, Limits, SuggestRequest, SummarizeRequest, Tone};
use confide_engine::openai::{UpstreamEngine, router};
use confide_engine::{
    Backend, ChatMessage, EmbeddedEngine, Engine, GenerateParams, LoadOptions, Role, StreamEvent,
};
use futures::StreamExt;
use zeroize::Zeroizing;

/// `confide engine` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EngineCmd {
    /// Serve a GGUF model as an OpenAI-compatible `/v1/chat/completions` endpoint
    /// (streaming included).
    Serve(ServeArgs),
    /// Generate once and stream the text to stdout: from a prompt, a chat file to
    /// summarise, or a draft to rewrite.
    Run(RunArgs),
    /// Print a model file's SHA-256, architecture and context length.
    Info(InfoArgs),
}

/// `confide engine serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Model: `quality`, `fast`, `tiny` (from `scripts/fetch-model`) or a GGUF file.
    #[arg(long, value_name = "NAME|PATH", value_parser = parse_model)]
    model: PathBuf,
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Refuse to start unless the model file has this SHA-256 (hex).
    #[arg(long)]
    expect_sha256: Option<String>,
    /// Run on this NVIDIA GPU (needs a build with `confide-engine/cuda`).
    #[arg(long, value_name = "ORDINAL")]
    cuda: Option<usize>,
    #[command(flatten)]
    tuning: TuningArgs,
}

/// `confide engine info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Model: `quality`, `fast`, `tiny` or a GGUF file.
    #[arg(long, value_name = "NAME|PATH", value_parser = parse_model)]
    model: PathBuf,
}

/// How the embedded engine runs. These settings change speed and memory, not what the
/// node does with a request, so they are not part of the measured configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct TuningArgs {
    /// CPU threads for llama.cpp (0: every core this process may use).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// KV cache size in tokens, shared by the requests running at once; one request
    /// gets at most the model's context window.
    #[arg(long, default_value_t = LoadOptions::DEFAULT_CONTEXT_TOKENS)]
    pub kv_tokens: u32,
    /// Requests generated at the same time (continuous batching).
    #[arg(long, default_value_t = LoadOptions::DEFAULT_PARALLEL)]
    pub parallel: u32,
    /// Requests that may wait for a free slot; past this the engine answers "busy".
    #[arg(long, default_value_t = LoadOptions::DEFAULT_QUEUE)]
    pub queue: u32,
}

impl TuningArgs {
    /// The engine's load options with these settings.
    pub fn options(&self, backend: Backend, expected_sha256: Option<[u8; 32]>) -> LoadOptions {
        LoadOptions {
            expected_sha256,
            backend,
            threads: self.threads,
            context_tokens: self.kv_tokens,
            parallel: self.parallel,
            queue: self.queue,
        }
    }

    /// The same settings as command-line arguments (for `confide up`'s nodes).
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--threads".into(),
            self.threads.to_string(),
            "--kv-tokens".into(),
            self.kv_tokens.to_string(),
            "--parallel".into(),
            self.parallel.to_string(),
            "--queue".into(),
            self.queue.to_string(),
        ]
    }
}

/// Where named models live: `$CONFIDE_MODELS_DIR`, or `models/` of this source tree
/// (where `scripts/fetch-model` installs them; see [`super::source_tree`]).
pub fn models_dir() -> PathBuf {
    std::env::var_os("CONFIDE_MODELS_DIR")
        .map_or_else(|| super::in_source_tree("models"), PathBuf::from)
}

/// `--model`: a name from `scripts/fetch-model` or a path.
pub fn parse_model(spec: &str) -> Result<PathBuf, String> {
    if spec.is_empty() {
        return Err("empty model name".into());
    }
    Ok(confide_engine::models::resolve(spec, &models_dir()))
}

/// `confide engine run`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("backend").required(true).args(["model", "upstream"])))]
#[command(group(clap::ArgGroup::new("input").required(true).args(["prompt", "summarize", "suggest"])))]
pub struct RunArgs {
    /// Model for the embedded engine: `quality`, `fast`, `tiny` or a GGUF file.
    #[arg(long, value_name = "NAME|PATH", value_parser = parse_model)]
    model: Option<PathBuf>,
    /// Base URL of an OpenAI-compatible server instead of a local model.
    #[arg(long)]
    upstream: Option<String>,
    /// Model id to ask the upstream for.
    #[arg(long, default_value = "default")]
    upstream_model: String,
    /// A user prompt.
    #[arg(long)]
    prompt: Option<String>,
    /// Optional system prompt for `--prompt`.
    #[arg(long, requires = "prompt")]
    system: Option<String>,
    /// A JSON file `{"messages":[{"sender","time","text"}]}` to summarise.
    #[arg(long)]
    summarize: Option<PathBuf>,
    /// A draft message to rewrite in `--tone`.
    #[arg(long, requires = "tone")]
    suggest: Option<String>,
    /// Tone for `--suggest`: friendly, formal, concise, apologetic, enthusiastic.
    #[arg(long)]
    tone: Option<String>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
    /// 0 for greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling threshold.
    #[arg(long)]
    top_p: Option<f32>,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Repetition penalty (1 disables it).
    #[arg(long, default_value_t = 1.1)]
    repeat_penalty: f32,
    /// Run on this NVIDIA GPU (needs a build with `confide-engine/cuda`).
    #[arg(long, value_name = "ORDINAL", conflicts_with = "upstream")]
    cuda: Option<usize>,
    #[command(flatten)]
    tuning: TuningArgs,
}

fn backend(cuda: Option<usize>) -> Backend {
    cuda.map_or(Backend::Cpu, Backend::Cuda)
}

/// Run a `confide engine` subcommand.
pub async fn run(cmd: EngineCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        EngineCmd::Serve(a) => serve(a).await,
        EngineCmd::Run(a) => run_once(a).await,
        EngineCmd::Info(a) => info(a).await,
    }
}

fn parse_sha256(hex_str: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(hex_str).context("--expect-sha256 is not hex")?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| anyhow::anyhow!("--expect-sha256 must be 32 bytes (64 hex digits)"))
}

async fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    // The engine server runs inside the TEE next to the node and sees every prompt: its
    // logs pass the node's allow-list of typed events (issue 13, finding 8), not plain
    // logging, so no library can write request content to them.
    confide_node::egress::install();
    let opts = a.tuning.options(
        backend(a.cuda),
        a.expect_sha256.as_deref().map(parse_sha256).transpose()?,
    );
    let engine = EmbeddedEngine::open(&a.model, opts)
        .await
        .with_context(|| format!("cannot load {}", a.model.display()))?;
    let digest = engine.info().sha256_hex().unwrap_or_default();
    let (listener, addr) = confide_svc::bind(&a.listen).await?;
    // Printed on stdout (not the log) so scripts and tests can find the port.
    println!("model sha256 {digest}");
    println!("listening on http://{addr}");
    std::io::stdout().flush().ok();
    tracing::info!(event = "engine_listening");
    confide_svc::serve(listener, router(Arc::new(engine))).await?;
    Ok(ExitCode::SUCCESS)
}

async fn info(a: InfoArgs) -> anyhow::Result<ExitCode> {
    let engine = EmbeddedEngine::open(&a.model, LoadOptions::default())
        .await
        .with_context(|| format!("cannot load {}", a.model.display()))?;
    let i = engine.info();
    println!("name           {}", i.name);
    println!("architecture   {}", i.architecture);
    println!("sha256         {}", i.sha256_hex().unwrap_or_default());
    if let Some(n) = i.context_length {
        println!("context        {n}");
    }
    println!("vocab          {}", engine.tokenizer().vocab_size());
    println!("pre-tokenizer  {:?}", engine.tokenizer().pre_tokenizer());
    Ok(ExitCode::SUCCESS)
}

async fn run_once(a: RunArgs) -> anyhow::Result<ExitCode> {
    let limits = Limits::default();
    let messages: Vec<ChatMessage> = if let Some(prompt) = &a.prompt {
        let mut m = Vec::new();
        if let Some(system) = &a.system {
            m.push(ChatMessage::new(Role::System, system.clone()));
        }
        m.push(ChatMessage::new(Role::User, prompt.clone()));
        m
    } else if let Some(path) = &a.summarize {
        let raw = Zeroizing::new(
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        );
        let req: SummarizeRequest = serde_json::from_slice(&raw).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a summarize request (line {} column {})",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        features::summarize_prompt(&req, &limits)?
    } else if let Some(draft) = &a.suggest {
        let tone: Tone = a.tone.as_deref().unwrap_or_default().parse()?;
        let req = SuggestRequest {
            draft: Zeroizing::new(draft.clone()),
            tone,
        };
        features::suggest_prompt(&req, &limits)?
    } else {
        anyhow::bail!("one of --prompt, --summarize or --suggest is required");
    };
    let params = GenerateParams {
        max_tokens: a.max_tokens,
        temperature: a.temperature,
        top_p: a.top_p,
        seed: a.seed,
        repeat_penalty: a.repeat_penalty,
    };
    let engine: Arc<dyn Engine> = match (&a.model, &a.upstream) {
        (Some(path), _) => Arc::new(
            EmbeddedEngine::open(path, a.tuning.options(backend(a.cuda), None))
                .await
                .with_context(|| format!("cannot load {}", path.display()))?,
        ),
        (None, Some(url)) => Arc::new(UpstreamEngine::new(url, &a.upstream_model)?),
        (None, None) => anyhow::bail!("one of --model or --upstream is required"),
    };
    let mut stream = engine.generate(messages, params).await?;
    while let Some(ev) = stream.next().await {
        match ev? {
            StreamEvent::Text(t) => {
                let mut out = std::io::stdout().lock();
                out.write_all(t.as_bytes())?;
                out.flush()?;
            }
            StreamEvent::Done(done) => {
                println!();
                eprintln!(
                    "[finish: {}, prompt tokens: {}, completion tokens: {}]",
                    done.finish_reason.as_str(),
                    done.prompt_tokens.map_or("?".into(), |n| n.to_string()),
                    done.completion_tokens.map_or("?".into(), |n| n.to_string()),
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
