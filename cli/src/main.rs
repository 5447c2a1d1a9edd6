//! `confide`: the one binary for every party and task.
//!
//! Each role lives in its own module under `cmd/` and exposes a clap subcommand type
//! plus an async `run` returning the process exit code. `main` only parses and
//! dispatches; errors are printed as one line (`error: ...`) with a non-zero exit.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Confide: private AI inference inside attested TEEs.
#[derive(Debug, Parser)]
#[command(name = "confide", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run or use the transparency ledger (release log).
    #[command(subcommand)]
    Ledger(cmd::ledger::LedgerCmd),
    /// Run a C2SP tlog-witness that cosigns ledger checkpoints.
    #[command(subcommand)]
    Witness(cmd::witness::WitnessCmd),
    /// Publish node releases to the ledger.
    #[command(subcommand)]
    Release(cmd::release::ReleaseCmd),
    /// Audit a ledger: fetch tiles, recompute the tree, check consistency.
    Monitor(cmd::monitor::MonitorArgs),
    /// Verify hardware attestation evidence (SEV-SNP, TDX, NVIDIA, simulated).
    #[command(subcommand)]
    Evidence(cmd::evidence::EvidenceCmd),
    /// Run the Privacy Pass token issuer.
    #[command(subcommand)]
    Issuer(cmd::issuer::IssuerCmd),
    /// Run the OHTTP gateway or export its key configs.
    #[command(subcommand)]
    Gateway(cmd::gateway::GatewayCmd),
    /// Run the OHTTP relay.
    #[command(subcommand)]
    Relay(cmd::relay::RelayCmd),
    /// Run or try the inference engine on its own.
    #[command(subcommand)]
    Engine(cmd::engine::EngineCmd),
    /// Run the attested inference node (RA-TLS sessions inside the TEE).
    #[command(subcommand)]
    Node(cmd::node::NodeCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Ledger(c) => cmd::ledger::run(c).await,
            Command::Witness(c) => cmd::witness::run(c).await,
            Command::Release(c) => cmd::release::run(c).await,
            Command::Monitor(a) => cmd::monitor::run(a).await,
            Command::Evidence(c) => cmd::evidence::run(c).await,
            Command::Issuer(c) => cmd::issuer::run(c).await,
            Command::Gateway(c) => cmd::gateway::run(c).await,
            Command::Relay(c) => cmd::relay::run(c).await,
            Command::Engine(c) => cmd::engine::run(c).await,
            Command::Node(c) => cmd::node::run(c).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            // One clear line; the chain of causes joined, no backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
