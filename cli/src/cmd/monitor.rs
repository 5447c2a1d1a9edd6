//! `confide monitor`: audit a ledger.

use std::process::ExitCode;

/// Arguments of `confide monitor`.
#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    /// Base URL of the ledger.
    #[arg(long)]
    pub ledger: String,
}

/// Run `confide monitor`.
pub async fn run(args: MonitorArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("monitor is not built yet (ledger {})", args.ledger)
}
