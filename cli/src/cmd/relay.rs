//! `confide relay` subcommands.

use std::process::ExitCode;

/// `confide relay` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RelayCmd {}

/// Run a `confide relay` subcommand.
pub async fn run(cmd: RelayCmd) -> anyhow::Result<ExitCode> {
    match cmd {}
}
