//! `confide witness` subcommands.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use confide_note::VerifierKey;
use confide_svc::metrics::{HttpMetrics, MetricsRegistry};
use confide_witness::{ROUTES, Witness, WitnessMetrics};

/// `confide witness` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum WitnessCmd {
    /// Run a C2SP tlog-witness: creates its key under --dir on first start and prints
    /// `witness verifier key: <vkey>`.
    Serve(ServeArgs),
}

/// Arguments of `confide witness serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// State directory (key, latest cosigned size and root per log).
    #[arg(long)]
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8700")]
    pub listen: String,
    /// Witness key name (fixed at first start).
    #[arg(long, default_value = "witness.confide.local")]
    pub name: String,
    /// Verifier key of a log to witness (repeatable).
    #[arg(long = "log", required = true)]
    pub logs: Vec<String>,
    /// Serve `GET /metrics` (OpenMetrics) on this separate address, never on the
    /// public one (ADR 0900). Off when not given.
    #[arg(long)]
    pub metrics_listen: Option<String>,
}

/// Run a `confide witness` subcommand.
pub async fn run(cmd: WitnessCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        WitnessCmd::Serve(a) => {
            confide_svc::init_tracing();
            let logs = a
                .logs
                .iter()
                .map(|l| VerifierKey::parse(l))
                .collect::<Result<Vec<_>, _>>()
                .context("invalid --log key")?;
            let (listener, addr) = confide_svc::bind(&a.listen).await?;
            let mut reg = MetricsRegistry::new();
            let http = HttpMetrics::new(&mut reg, ROUTES);
            let w =
                Witness::open_with_metrics(&a.dir, &a.name, logs, WitnessMetrics::new(&mut reg))
                    .context("cannot open the witness")?;
            if let Some(m) = &a.metrics_listen {
                confide_svc::metrics::spawn_endpoint(m, reg.finish()).await?;
            }
            println!("witness verifier key: {}", w.verifier_key().to_vkey());
            println!("witness listening on http://{addr}");
            std::io::stdout().flush()?;
            confide_svc::serve(listener, http.instrument(w.router())).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
