//! `confide engine` subcommands.

use std::process::ExitCode;

/// `confide engine` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EngineCmd {}

/// Run a `confide engine` subcommand.
pub async fn run(cmd: EngineCmd) -> anyhow::Result<ExitCode> {
    match cmd {}
}
