//! `confide relay` subcommands: run the OHTTP relay.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use confide_relay::{ROUTES, Relay, RelayConfig, RelayMetrics};
use confide_svc::metrics::{HttpMetrics, MetricsRegistry};

/// `confide relay` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RelayCmd {
    /// Forward encapsulated requests from clients to one gateway.
    Serve(ServeArgs),
}

/// `confide relay serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8470")]
    pub listen: String,
    /// The gateway's `POST /gateway` URL.
    #[arg(long)]
    pub gateway: String,
    /// Largest request body forwarded, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body: usize,
    /// Seconds allowed to reach the gateway and get its response head.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Longest silence in a streamed response, in seconds.
    #[arg(long, default_value_t = 60)]
    pub idle_timeout: u64,
    /// Sustained requests per second per client address.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Burst per client address.
    #[arg(long, default_value_t = 40.0)]
    pub burst: f64,
    /// Serve `GET /metrics` (OpenMetrics) on this separate address, never on the
    /// public one (ADR 0900). Off when not given.
    #[arg(long)]
    pub metrics_listen: Option<String>,
}

/// Run a `confide relay` subcommand.
pub async fn run(cmd: RelayCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        RelayCmd::Serve(a) => {
            confide_svc::init_tracing();
            let config = RelayConfig {
                max_body: a.max_body,
                timeout: Duration::from_secs(a.timeout),
                idle_timeout: Duration::from_secs(a.idle_timeout),
                rate_per_sec: a.rate,
                burst: a.burst,
                ..RelayConfig::new(a.gateway)
            };
            let mut reg = MetricsRegistry::new();
            let http = HttpMetrics::new(&mut reg, ROUTES);
            let relay = Relay::new(config)?.with_metrics(RelayMetrics::new(&mut reg));
            let router = http.instrument(relay.router());
            if let Some(m) = &a.metrics_listen {
                confide_svc::metrics::spawn_endpoint(m, reg.finish()).await?;
            }
            let (listener, addr) = confide_svc::bind(&a.listen).await?;
            println!("listening on {addr}");
            std::io::stdout().flush().ok();
            confide_svc::serve(listener, router).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
