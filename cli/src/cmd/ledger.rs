//! `confide ledger` subcommands.

use std::process::ExitCode;

/// `confide ledger` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LedgerCmd {}

/// Run a `confide ledger` subcommand.
pub async fn run(cmd: LedgerCmd) -> anyhow::Result<ExitCode> {
    match cmd {}
}
