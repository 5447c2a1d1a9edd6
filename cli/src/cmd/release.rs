//! `confide release` subcommands.

use std::process::ExitCode;

/// `confide release` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ReleaseCmd {}

/// Run a `confide release` subcommand.
pub async fn run(cmd: ReleaseCmd) -> anyhow::Result<ExitCode> {
    match cmd {}
}
