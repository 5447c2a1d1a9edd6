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
use confide_node::{
    BundleSource, EngineChoice, Node, NodeOptions, NodePlatform, ServiceSettings, egress,
};
use confide_svc::metrics::MetricsRegistry;

/// `confide node` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum NodeCmd {
    /// Serve RA-TLS sessions (the node side of docs/sessions.md).
    Serve(ServeArgs),
    /// Print the measurement, model digest and configuration digest this node would
    /// attest to (JSON), to write its release manifest.
    Measure(ConfigArgs),
}

/// Platform names on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PlatformArg {
    /// Simulated vendor (no protection; development and tests only).
    Simulated,
    /// AMD SEV-SNP via configfs-tsm.
    SevSnp,
    /// Intel TDX via configfs-tsm.
    Tdx,
}

/// The flags that decide what the node is (and so its measured configuration).
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("backend").required(true).args(["model", "upstream"])))]
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
    /// OpenAI-compatible upstream inside the same TEE instead of an embedded model.
    #[arg(long, requires = "model_digest")]
    upstream: Option<String>,
    /// Model id to ask the upstream for.
    #[arg(long, default_value = "default")]
    upstream_model: String,
    /// SHA-256 (hex) of the upstream's weights, as the release lists it.
    #[arg(long)]
    model_digest: Option<String>,
    /// Shared simulated vendor directory (so several nodes share one root).
    #[arg(long)]
    sim_vendor: Option<PathBuf>,
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
}

fn options(
    c: &ConfigArgs,
    bundle: BundleSource,
    cert_lifetime: Duration,
) -> anyhow::Result<NodeOptions> {
    let engine = match (&c.model, &c.upstream) {
        (_, Some(url)) => {
            let hex_digest = c
                .model_digest
                .as_deref()
                .context("--upstream needs --model-digest")?;
            let bytes = hex::decode(hex_digest.trim()).context("--model-digest is not hex")?;
            let model_digest: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("--model-digest must be 32 bytes"))?;
            EngineChoice::Upstream {
                url: url.clone(),
                model: c.upstream_model.clone(),
                model_digest,
            }
        }
        (Some(path), None) => {
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
        (None, None) => anyhow::bail!("give --model or --upstream"),
    };
    Ok(NodeOptions {
        dir: c.dir.clone(),
        platform: match c.platform {
            PlatformArg::Simulated => NodePlatform::Simulated,
            PlatformArg::SevSnp => NodePlatform::SevSnp,
            PlatformArg::Tdx => NodePlatform::Tdx,
        },
        engine,
        bundle,
        sim_vendor: c.sim_vendor.clone(),
        dev_allow_writable_cwd: c.dev_allow_writable_cwd,
        cert_lifetime,
        settings: ServiceSettings {
            idle_timeout: Duration::from_secs(c.session_idle_secs.max(1)),
            max_sessions: 1024,
            max_tokens: c.max_tokens.max(1),
            limits: Limits::default(),
        },
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
            let out = serde_json::json!({
                "platform": m.platform.name(),
                "measurement": hex::encode(&m.measurement),
                "model_digest": hex::encode(m.model_digest),
                "config_digest": hex::encode(m.config_digest),
            });
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
    let (listener, addr) = confide_svc::bind(&a.listen).await?;
    println!("listening on {addr}");
    tracing::info!(event = "node_listening", port = u64::from(addr.port()));
    confide_svc::serve(listener, node.router()).await?;
    tracing::info!(event = "shutdown");
    Ok(ExitCode::SUCCESS)
}
