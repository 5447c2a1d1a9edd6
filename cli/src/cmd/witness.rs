//! `confide witness` subcommands.

use std::process::ExitCode;

/// `confide witness` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum WitnessCmd {}

/// Run a `confide witness` subcommand.
pub async fn run(cmd: WitnessCmd) -> anyhow::Result<ExitCode> {
    match cmd {}
}
