//! `confide node`: run the attested inference node, or print what it measures.
//!
//! `serve` installs the node's allow-listed egress layer before anything else runs, so
//! no library can log request data; the only other output is the listening address on
//! stdout and, on the simulated platform, the fixed simulated-attestation warning.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use confide_engine::Backend;
use confide_engine::features::Limits;
use confide_node::ledger::ReleaseChoice;
use confide_node::metrics::NodeMetrics;
use confide_node::process::MemoryProtection;
use confide_node::{
    BundleSource, EngineChoice, Node, NodeOptions, NodePlatform, ServiceSettings, egress,
};
use confide_svc::metrics::MetricsRegistry;

/// `confide node` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum NodeCmd {
    /// Serve RA-TLS sessions (the node side of docs/sessions.md).
    Serve(ServeArgs),
    /// Print the measurement (and every register), model digest and configuration digest this node would
    /// attest to (JSON), to write its release manifest.
    Measure(ConfigArgs),
}

/// Platform names on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PlatformArg {
    /// Simulated SEV-SNP vendor (no protection; development and tests only).
    #[value(alias = "sim-snp")]
    Simulated,
    /// Simulated TDX vendor: DCAP quotes under a local root, verified by the real TDX
    /// verifier (no protection; development and tests only).
    #[value(name = "simulated-tdx", alias = "sim-tdx")]
    SimulatedTdx,
    /// AMD SEV-SNP via configfs-tsm.
    SevSnp,
    /// Intel TDX via configfs-tsm.
    Tdx,
}

/// The flags that decide what the node is (and so its measured configuration).
#[derive(Debug, clap::Args)]
// `multiple`: --model may come from $CONFIDE_MODEL while another backend is named on the
// command line; then --upstream-node, else --upstream, wins (see `options`).
#[command(group(clap::ArgGroup::new("backend").required(true).multiple(true).args(["model", "upstream", "upstream_node"])))]
pub struct ConfigArgs {
    /// The node's directory (the simulated vendor lives in `DIR/sim-vendor`).
    #[arg(long)]
    dir: PathBuf,
    /// TEE platform.
    #[arg(long, value_enum)]
    platform: PlatformArg,
    /// Model for the embedded engine: `quality`, `fast`, `tiny` (from
    /// `scripts/fetch-model`) or a GGUF file.
    #[arg(long, env = "CONFIDE_MODEL", value_name = "NAME|PATH", value_parser = super::engine::parse_model)]
    model: Option<PathBuf>,
    /// OpenAI-compatible upstream inside the same TEE instead of an embedded model: a
    /// loopback address (`http://127.0.0.1:8000`) or `unix:/PATH`; anything else is
    /// refused (plaintext must not leave the TEE; use --upstream-node for another machine).
    #[arg(long)]
    upstream: Option<String>,
    /// Model id to ask the upstream for.
    #[arg(long, default_value = "default")]
    upstream_model: String,
    /// The upstream's weights file: the node hashes it and attests that digest. Without
    /// it the node attests "model digest not attested", which clients refuse unless
    /// their policy sets `allow_unattested_model`.
    #[arg(long, value_name = "PATH", requires = "upstream")]
    upstream_model_file: Option<PathBuf>,
    /// Another attested node as the inference upstream (its node-to-node listener, see
    /// `--peer-listen`): reached over mutual RA-TLS and verified under --peer-policy at
    /// start and at every session. This node attests the model digest that node attests.
    #[arg(long, value_name = "URL", requires = "peer_policy")]
    upstream_node: Option<String>,
    /// With --upstream-node: the model digest (hex SHA-256) the upstream node must
    /// attest; start fails if the verified node attests another.
    #[arg(long, value_name = "HEX", requires = "upstream_node")]
    upstream_node_model_digest: Option<String>,
    /// Trust policy for other nodes (the device policy TOML: roots, platforms, freshness,
    /// `[ledger]` keys): the --upstream-node, and callers of --peer-listen. Its digest is
    /// part of the configuration digest.
    #[arg(long, value_name = "FILE")]
    peer_policy: Option<PathBuf>,
    /// Shared simulated vendor directory (so several nodes share one root).
    #[arg(long)]
    sim_vendor: Option<PathBuf>,
    /// The confidential GPU to attest next to the CPU: `simulated` (the simulated H100,
    /// simulated platforms only), `nvml` or `nvml:INDEX` (a real NVIDIA GPU in CC mode,
    /// through the driver's NVML). Its evidence is bound into every certificate, and the
    /// release must pin its measurements.
    #[arg(long, value_name = "simulated|nvml[:INDEX]", default_value = "none")]
    gpu: confide_node::GpuChoice,
    /// Tests only, simulated platforms only: behave like a hostile host
    /// (gpu-stale-nonce, gpu-other-certificate, gpu-cc-off, gpu-measurement:INDEX) so
    /// that a test can show clients refuse it.
    #[arg(long, hide = true, value_name = "FAULT")]
    sim_fault: Vec<confide_node::SimFault>,
    /// Development only: allow a writable working directory.
    #[arg(long)]
    dev_allow_writable_cwd: bool,
    /// Largest number of tokens generated per request.
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
    /// Run the embedded model on this NVIDIA GPU (needs a build with
    /// `confide-engine/cuda`).
    #[arg(long, value_name = "ORDINAL", conflicts_with = "upstream")]
    cuda: Option<usize>,
    #[command(flatten)]
    tuning: super::engine::TuningArgs,
    /// Seconds after which an idle session is dropped.
    #[arg(long, default_value_t = 120)]
    session_idle_secs: u64,
    /// Milliseconds between the padded units a streamed answer leaves in (20..=2000):
    /// text waits for the next tick, and every tick sends one unit, with text or
    /// padding only, so the timing shows the tick, not the tokens. Part of the
    /// configuration digest when not the default.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(20..=2000))]
    stream_tick_ms: u64,
}

/// `confide node serve`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["ledger", "bundle"])))]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address to listen on (port 0 picks one; the address is printed).
    #[arg(long)]
    listen: String,
    /// Also serve node-to-node sessions (mutual RA-TLS: callers must present attested
    /// certificates that pass --peer-policy) on this separate address; printed as
    /// `peer endpoint: URL`. Devices keep using --listen.
    #[arg(long, value_name = "ADDR", requires = "peer_policy")]
    peer_listen: Option<String>,
    /// Base URL of the ledger (C2SP tlog-tiles) to fetch the stapled bundle from.
    #[arg(long)]
    ledger: Option<String>,
    /// A bundle file (`confide ledger proof` output) instead of `--ledger`.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Ledger index of this node's release, or `auto` (newest matching entry).
    #[arg(long, default_value = "auto")]
    release_index: String,
    /// Certificate lifetime in seconds (the clients' freshness window).
    #[arg(long, default_value_t = 3600)]
    cert_lifetime_secs: u64,
    /// Most concurrent sessions.
    #[arg(long, default_value_t = 1024)]
    max_sessions: usize,
    /// Serve `GET /metrics` (OpenMetrics: allow-listed event counts and the session
    /// count only) on this separate address for the host (ADR 0900). Off when not given.
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Start even when memory cannot be locked and swap is active, so session plaintext
    /// could be written to the swap device. Development machines only: a node refuses
    /// that by default (see docs/node.md, "Process protections").
    #[arg(long)]
    allow_swap: bool,
}

fn options(
    c: &ConfigArgs,
    bundle: BundleSource,
    cert_lifetime: Duration,
) -> anyhow::Result<NodeOptions> {
    let engine = match (&c.model, &c.upstream, &c.upstream_node) {
        (_, _, Some(url)) => {
            let model_digest = match c.upstream_node_model_digest.as_deref() {
                Some(h) => Some(
                    hex::decode(h.trim())
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .context("--upstream-node-model-digest must be 64 hex digits")?,
                ),
                None => None,
            };
            EngineChoice::PeerNode {
                url: url.clone(),
                model_digest,
            }
        }
        (_, Some(url), None) => EngineChoice::Upstream {
            url: url.clone(),
            model: c.upstream_model.clone(),
            model_file: c.upstream_model_file.clone(),
        },
        (Some(path), None, None) => {
            if !path.exists() {
                anyhow::bail!(
                    "model file {} not found (run scripts/fetch-model)",
                    path.display()
                );
            }
            EngineChoice::Embedded(
                path.clone(),
                c.tuning
                    .options(c.cuda.map_or(Backend::Cpu, Backend::Cuda), None),
            )
        }
        (None, None, None) => anyhow::bail!("give --model, --upstream or --upstream-node"),
    };
    Ok(NodeOptions {
        dir: c.dir.clone(),
        platform: match c.platform {
            PlatformArg::Simulated => NodePlatform::Simulated,
            PlatformArg::SimulatedTdx => NodePlatform::SimulatedTdx,
            PlatformArg::SevSnp => NodePlatform::SevSnp,
            PlatformArg::Tdx => NodePlatform::Tdx,
        },
        engine,
        bundle,
        sim_vendor: c.sim_vendor.clone(),
        gpu: c.gpu,
        sim_faults: c.sim_fault.clone(),
        dev_allow_writable_cwd: c.dev_allow_writable_cwd,
        cert_lifetime,
        settings: ServiceSettings {
            idle_timeout: Duration::from_secs(c.session_idle_secs.max(1)),
            max_sessions: 1024,
            max_tokens: c.max_tokens.max(1),
            limits: Limits::default(),
            stream_tick: Duration::from_millis(c.stream_tick_ms),
        },
        peer_policy: c.peer_policy.clone(),
    })
}

/// Runs a `confide node` subcommand.
pub async fn run(cmd: NodeCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        NodeCmd::Serve(a) => serve(a).await,
        NodeCmd::Measure(c) => {
            // Measuring needs no bundle; the source is never read.
            let opts = options(
                &c,
                BundleSource::File(PathBuf::new()),
                Duration::from_secs(3600),
            )?;
            let m = confide_node::node::measure(&opts).await?;
            // The release fields this node needs, spelled as a manifest spells them:
            // what `confide release publish` takes, plus every register by name.
            let mut out = serde_json::json!({
                "platform": m.platform.name(),
                "measurement": hex::encode(&m.measurement),
                "model_digest": hex::encode(m.model_digest),
                "model_attested": m.model_digest != confide_node::UNATTESTED_MODEL_DIGEST,
                "config_digest": hex::encode(m.config_digest),
                "registers": m.registers.iter()
                    .map(|r| (r.name.clone(), serde_json::Value::String(hex::encode(&r.value))))
                    .collect::<serde_json::Map<_, _>>(),
            });
            if let Some(p) = m.snp_policy() {
                out["snp_policy"] = p.into();
            }
            let rtmrs = m.rtmrs();
            if !rtmrs.is_empty() {
                out["rtmrs"] = rtmrs.iter().map(hex::encode).collect();
            }
            let gpu = m.gpu_reference();
            if !gpu.is_empty() {
                // As a release's [gpu_reference] table: SPDM block index -> accepted values.
                out["gpu_reference"] = gpu
                    .iter()
                    .map(|(i, v)| (i.to_string(), serde_json::json!([hex::encode(v)])))
                    .collect::<serde_json::Map<_, _>>()
                    .into();
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    // Before anything secret exists: no core dumps, not dumpable (confide_node::process).
    confide_node::process::harden()?;
    // First: from here on only allow-listed events leave the process, panics included;
    // the metrics count those same events and nothing else.
    let mut reg = MetricsRegistry::new();
    let metrics = NodeMetrics::new(&mut reg);
    egress::install_with_metrics(metrics.clone());
    // Before the model or any session key is loaded: memory locked, or no swap to leak to.
    let memory = confide_node::process::protect_memory(a.allow_swap)?;
    tracing::info!(
        event = "memory_protection",
        locked = memory == MemoryProtection::Locked,
        swap_allowed = memory == MemoryProtection::SwapAllowed
    );
    let bundle = match (&a.ledger, &a.bundle) {
        (Some(url), _) => BundleSource::Ledger {
            url: url.clone(),
            choice: match a.release_index.as_str() {
                "auto" => ReleaseChoice::Auto,
                n => ReleaseChoice::Index(
                    n.parse()
                        .context("--release-index must be a number or auto")?,
                ),
            },
        },
        (None, Some(path)) => BundleSource::File(path.clone()),
        (None, None) => anyhow::bail!("give --ledger or --bundle"),
    };
    if a.cert_lifetime_secs < 60 {
        anyhow::bail!("--cert-lifetime-secs must be at least 60");
    }
    let mut opts = options(&a.config, bundle, Duration::from_secs(a.cert_lifetime_secs))?;
    opts.settings.max_sessions = a.max_sessions.max(1);
    let node = Node::start(opts).await?;
    let service = std::sync::Arc::clone(node.service());
    reg.on_scrape(move || metrics.set_sessions(service.session_count()));
    if let Some(m) = &a.metrics_listen {
        confide_svc::metrics::spawn_endpoint(m, reg.finish()).await?;
    }
    if let Some(peer) = &a.peer_listen {
        // Printed before "listening on", which is the line that says the node is ready.
        let (listener, addr) = confide_svc::bind(peer).await?;
        println!("peer endpoint: http://{addr}");
        let router = node.peer_router();
        tokio::spawn(async move {
            if confide_svc::serve(listener, router).await.is_err() {
                tracing::warn!(event = "shutdown", kind = "io");
            }
        });
    }
    let (listener, addr) = confide_svc::bind(&a.listen).await?;
    println!("listening on {addr}");
    tracing::info!(event = "node_listening", port = u64::from(addr.port()));
    confide_svc::serve(listener, node.router()).await?;
    tracing::info!(event = "shutdown");
    Ok(ExitCode::SUCCESS)
}
