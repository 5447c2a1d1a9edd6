//! `confide evidence` subcommands.

use std::process::ExitCode;

/// `confide evidence` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EvidenceCmd {}

/// Run a `confide evidence` subcommand.
pub async fn run(cmd: EvidenceCmd) -> anyhow::Result<ExitCode> {
    match cmd {}
}
