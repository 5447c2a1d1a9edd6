//! `confide issuer` subcommands.

use std::process::ExitCode;

/// `confide issuer` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum IssuerCmd {}

/// Run a `confide issuer` subcommand.
pub async fn run(cmd: IssuerCmd) -> anyhow::Result<ExitCode> {
    match cmd {}
}
