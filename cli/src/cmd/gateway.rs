//! `confide gateway` subcommands: run the OHTTP gateway, export its key configs.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use confide_gateway::{
    Gateway, GatewayConfig, GatewayMetrics, KeyRing, KeySchedule, TokenGate, unix_now,
};
use confide_ohttp::KeyConfig;
use confide_svc::metrics::{HttpMetrics, MetricsRegistry};

/// `confide gateway` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum GatewayCmd {
    /// Serve `POST /gateway` (OHTTP) and `GET /ohttp-keys`.
    Serve(ServeArgs),
    /// Write the gateway's key configs as `application/ohttp-keys` (for the key-config
    /// host and for logging in the ledger).
    Keys(KeysArgs),
}

/// Where the key seed lives and how keys rotate.
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// State directory; the key seed is `DIR/ohttp-seed`, created on first start.
    #[arg(long, default_value = "gateway-data")]
    pub dir: PathBuf,
    /// Use this seed file instead of `DIR/ohttp-seed` (share it between replicas).
    #[arg(long)]
    pub ohttp_key: Option<PathBuf>,
    /// Rotate keys every period (e.g. `3600`, `90m`, `24h`, `7d`); default: never.
    #[arg(long, value_parser = parse_duration)]
    pub rotate_every: Option<u64>,
}

impl KeyArgs {
    fn schedule(&self) -> anyhow::Result<KeySchedule> {
        let path = self
            .ohttp_key
            .clone()
            .unwrap_or_else(|| self.dir.join("ohttp-seed"));
        KeySchedule::load_or_create(&path, self.rotate_every, &mut rand_core::OsRng)
            .with_context(|| format!("OHTTP key seed {}", path.display()))
    }
}

/// `confide gateway serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8480")]
    pub listen: String,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Accept `POST /gateway` only from these relay addresses (repeatable).
    #[arg(long = "relay")]
    pub relays: Vec<IpAddr>,
    /// The issuer's `redemption-keys.json`; enables token-protected inner resources.
    #[arg(long)]
    pub token_keys: Option<PathBuf>,
    /// Redis shared by gateway replicas (`redis://host:port/`): holds the double-spend
    /// records and the OHTTP replay cache, so that a token or an encapsulated request
    /// used at one replica is refused at every other. Required when several replicas
    /// serve the same keys. Default: an embedded double-spend store,
    /// `DIR/spent-tokens.redb`, and a replay cache in memory.
    #[arg(long)]
    pub redis: Option<String>,
    /// Largest encapsulated request accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body: usize,
    /// Replay window in seconds (RFC 9458 §6.5).
    #[arg(long, default_value_t = 300)]
    pub replay_window: u64,
    /// Node base URL (repeatable): sessions go to a healthy one chosen at random.
    #[arg(long = "node")]
    pub nodes: Vec<String>,
    /// Seconds after which an idle session is forgotten.
    #[arg(long, default_value_t = 120)]
    pub session_idle_secs: u64,
    /// Seconds to wait for a node to start answering (and the longest silence within
    /// a streamed answer); a node that misses it gets `node-timeout` and is marked down.
    #[arg(long, default_value_t = 60)]
    pub node_timeout_secs: u64,
    /// Seconds one streamed answer from a node may last in all.
    #[arg(long, default_value_t = 600)]
    pub node_stream_timeout_secs: u64,
    /// Serve `GET /metrics` (OpenMetrics) on this separate address, never on the
    /// public one (ADR 0900). Off when not given.
    #[arg(long)]
    pub metrics_listen: Option<String>,
}

/// `confide gateway keys`.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Output file (`application/ohttp-keys` bytes).
    #[arg(long)]
    pub out: PathBuf,
    /// Include this many epochs from now (current first), to log keys before use.
    #[arg(long, default_value_t = 1)]
    pub epochs: u64,
    /// Also write the ledger entry document (`kind = "key-config"`) for these bytes,
    /// to be logged with `confide release publish FILE`.
    #[arg(long)]
    pub entry_out: Option<PathBuf>,
    /// Validity of the ledger entry when keys do not rotate (e.g. `365d`).
    #[arg(long, value_parser = parse_duration, default_value = "365d")]
    pub valid_for: u64,
}

/// Parse `N`, `Ns`, `Nm`, `Nh` or `Nd` into seconds.
fn parse_duration(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        Some('d') => (&s[..s.len() - 1], 86_400),
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("not a duration: {s}"))?;
    let secs = n.checked_mul(mul).ok_or("duration too large")?;
    if secs == 0 {
        return Err("duration must be positive".into());
    }
    Ok(secs)
}

/// Run a `confide gateway` subcommand.
pub async fn run(cmd: GatewayCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        GatewayCmd::Serve(a) => serve(a).await,
        GatewayCmd::Keys(a) => keys(a),
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    confide_svc::init_tracing();
    let ring = Arc::new(KeyRing::new(a.keys.schedule()?));
    // Build the keys once so a bad seed fails at start, not at the first request.
    ring.server(unix_now()).context("deriving OHTTP keys")?;
    let tokens: Option<Arc<dyn TokenGate>> = match &a.token_keys {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let keys = confide_tokens::RedemptionKeys::from_json(&bytes)
                .with_context(|| format!("parsing {}", path.display()))?;
            let store: Arc<dyn confide_tokens::SpentStore> = match &a.redis {
                Some(url) => Arc::new(
                    confide_token_store::RedisSpentStore::connect(url)
                        .await
                        .context("connecting to the Redis double-spend store")?,
                ),
                None => {
                    std::fs::create_dir_all(&a.keys.dir)
                        .with_context(|| format!("creating {}", a.keys.dir.display()))?;
                    let path = a.keys.dir.join("spent-tokens.redb");
                    Arc::new(
                        confide_token_store::RedbSpentStore::open(&path)
                            .with_context(|| format!("opening {}", path.display()))?,
                    )
                }
            };
            let redeemer = Arc::new(confide_tokens::Redeemer::new(keys, store));
            spawn_key_reload(path.clone(), Arc::clone(&redeemer));
            Some(redeemer)
        }
        None => None,
    };
    let mut reg = MetricsRegistry::new();
    let http = HttpMetrics::new(&mut reg, confide_gateway::metrics::ROUTES);
    let metrics = GatewayMetrics::new(&mut reg);
    let shared_replay = match &a.redis {
        Some(url) => Some(
            confide_token_store::RedisShared::connect(url, "confide:ohttp-enc:")
                .await
                .context("connecting to the Redis replay cache")?,
        ),
        None => None,
    };
    let config = GatewayConfig {
        shared_replay,
        max_request_body: a.max_body,
        allowed_relays: (!a.relays.is_empty()).then(|| a.relays.clone()),
        replay_window: a.replay_window,
        metrics: metrics.clone(),
        ..GatewayConfig::default()
    };
    let mut gateway = Gateway::new(Arc::clone(&ring), config, tokens.clone());
    if !a.nodes.is_empty() {
        // Session routing (docs/sessions.md): replaces the built-in 503 answer.
        let sessions = confide_gateway::sessions::SessionRouter::with_timeouts(
            &a.nodes,
            std::time::Duration::from_secs(a.session_idle_secs.max(1)),
            confide_gateway::sessions::NodeTimeouts {
                response: std::time::Duration::from_secs(a.node_timeout_secs),
                stream: std::time::Duration::from_secs(a.node_stream_timeout_secs),
            },
        )?;
        sessions.spawn_maintenance(std::time::Duration::from_secs(2));
        // Read from the session table at each scrape: node health as the gateway's
        // own checks see it, and how many sessions are pinned (a count, nothing more).
        let live = reg.gauge("gateway_sessions", "Sessions the gateway is routing");
        let healthy = reg.gauge(
            "gateway_nodes_healthy",
            "Nodes that passed their last health check",
        );
        let nodes = reg.gauge("gateway_nodes", "Nodes configured");
        nodes.set(i64::try_from(a.nodes.len()).unwrap_or(i64::MAX));
        let table = Arc::clone(&sessions);
        reg.on_scrape(move || {
            live.set(i64::try_from(table.session_count()).unwrap_or(i64::MAX));
            healthy.set(i64::try_from(table.healthy_nodes()).unwrap_or(i64::MAX));
        });
        let inner = Arc::new(confide_gateway::InnerState {
            ring,
            tokens,
            metrics,
        });
        gateway = gateway.with_inner_routes(sessions.routes(inner));
    }
    let router = http.instrument(gateway.router());
    if let Some(m) = &a.metrics_listen {
        confide_svc::metrics::spawn_endpoint(m, reg.finish()).await?;
    }
    let (listener, addr) = confide_svc::bind(&a.listen).await?;
    println!("listening on {addr}");
    std::io::stdout().flush().ok();
    tracing::info!(%addr, relays = a.relays.len(), "gateway serving");
    confide_svc::serve(listener, router).await?;
    Ok(ExitCode::SUCCESS)
}

/// Re-read `redemption-keys.json` when it changes (the issuer rotated its keys) and
/// swap the keys in; spent records are kept (docs/tokens.md "Gateway integration"). A
/// file that does not parse is ignored with a warning: the previous keys stay.
fn spawn_key_reload(path: PathBuf, redeemer: Arc<confide_tokens::Redeemer>) {
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut last = modified(&path);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            tick.tick().await;
            let now = modified(&path);
            if now == last {
                continue;
            }
            last = now;
            match std::fs::read(&path)
                .ok()
                .and_then(|b| confide_tokens::RedemptionKeys::from_json(&b).ok())
            {
                Some(keys) => {
                    redeemer.replace_keys(keys);
                    tracing::info!("token redemption keys reloaded");
                }
                None => tracing::warn!(
                    "redemption keys file changed but is not valid; keeping the old keys"
                ),
            }
        }
    });
}

fn keys(a: KeysArgs) -> anyhow::Result<ExitCode> {
    let schedule = a.keys.schedule()?;
    let configs = schedule.upcoming_configs(unix_now(), a.epochs)?;
    let bytes = KeyConfig::encode_list(&configs);
    confide_svc::durable::write_atomic(&a.out, &bytes)
        .with_context(|| format!("writing {}", a.out.display()))?;
    for c in &configs {
        println!(
            "key id {} public key {}",
            c.key_id(),
            hex::encode(c.public_key())
        );
    }
    if let Some(path) = &a.entry_out {
        // Valid from the current epoch's start until the last exported key stops being
        // accepted (one period after its own epoch, as the previous key).
        let now = unix_now();
        let (not_before, not_after) = match a.keys.rotate_every {
            Some(p) => {
                let start = schedule.epoch(now).saturating_mul(p);
                (
                    start,
                    start.saturating_add(p.saturating_mul(a.epochs.max(1) + 1)),
                )
            }
            None => (now, now.saturating_add(a.valid_for)),
        };
        let entry = confide_release::LedgerEntry::KeyConfig(confide_release::KeyConfigEntry {
            key_config: bytes,
            not_before,
            not_after,
        });
        let doc = entry.to_json().context("encoding the ledger entry")?;
        confide_svc::durable::write_atomic(path, doc.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("x").is_err());
    }
}
