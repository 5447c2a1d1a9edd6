//! `confide gateway` subcommands.

use std::process::ExitCode;

/// `confide gateway` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum GatewayCmd {}

/// Run a `confide gateway` subcommand.
pub async fn run(cmd: GatewayCmd) -> anyhow::Result<ExitCode> {
    match cmd {}
}
