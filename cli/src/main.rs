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
    /// Publish and revoke node releases in the ledger, and turn NVIDIA RIMs into their GPU
    /// reference values.
    #[command(subcommand)]
    Release(cmd::release::ReleaseCmd),
    /// Compute the launch measurements a guest image will produce (SEV-SNP launch digest;
    /// TDX MRTD and RTMR0..2), and the release manifest that pins them.
    #[command(subcommand)]
    Measure(cmd::measure::MeasureCmd),
    /// Build the node image's initramfs (deterministic cpio); see scripts/build-image.
    #[command(subcommand)]
    Image(cmd::image::ImageCmd),
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
    /// Measure the engine (against llama.cpp's own loop, across concurrent requests), the
    /// private path, each party's memory, attestation, the ledger and tokens; print one
    /// table, each row against a baseline from the same run.
    Bench(cmd::bench::BenchArgs),
    /// Run the attested inference node (RA-TLS sessions inside the TEE).
    #[command(subcommand)]
    Node(cmd::node::NodeCmd),
    /// Start every party on this machine (separate processes) and write DIR/client.toml.
    Up(cmd::up::UpArgs),
    /// Start everything in a temporary directory, verify, summarise the sample chat, stop.
    Demo(cmd::demo::DemoArgs),
    /// Summarise a chat (WhatsApp export or JSON) inside an attested node.
    Summarize(cmd::client::SummarizeArgs),
    /// Rewrite a draft message in a tone, inside an attested node.
    Suggest(cmd::client::SuggestArgs),
    /// Verify the node and print every check made.
    Verify(cmd::client::VerifyArgs),
    /// Refill the device's anonymous-token wallet (a separate step, never tied to a
    /// request), or show what it holds.
    #[command(subcommand)]
    Wallet(cmd::wallet::WalletCmd),
    /// Turn AI features on or off on this device (off until turned on).
    #[command(subcommand)]
    Consent(cmd::privacy::ConsentCmd),
    /// Protect chats from AI features on this device, or list them.
    #[command(subcommand)]
    Chats(cmd::privacy::ChatsCmd),
    /// List and verify (offline) the signed processing receipts kept for each answer.
    #[command(subcommand)]
    Receipts(cmd::receipts::ReceiptsCmd),
}

fn main() -> ExitCode {
    // Started by the kernel as the node image's /init: set the guest up, serve as its
    // guest.toml says, and power off when the node stops (PID 1 must never exit).
    if cmd::image::guest::is_init() {
        let code = match cmd::image::guest::boot() {
            Ok(argv) => match Cli::try_parse_from(argv) {
                Ok(cli) => dispatch(cli),
                Err(e) => {
                    eprintln!("error: /etc/confide/guest.toml: node arguments: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("error: guest init: {e:#}");
                ExitCode::FAILURE
            }
        };
        eprintln!("confide: the node stopped ({code:?}); powering off");
        cmd::image::guest::power_off();
    }
    // A party started by `confide up` stops when `up` dies.
    cmd::up::exit_with_parent();
    dispatch(Cli::parse())
}

fn dispatch(cli: Cli) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
            Command::Measure(c) => cmd::measure::run(c),
            Command::Image(c) => cmd::image::run(c),
            Command::Monitor(a) => cmd::monitor::run(a).await,
            Command::Evidence(c) => cmd::evidence::run(c).await,
            Command::Issuer(c) => cmd::issuer::run(c).await,
            Command::Gateway(c) => cmd::gateway::run(c).await,
            Command::Relay(c) => cmd::relay::run(c).await,
            Command::Engine(c) => cmd::engine::run(c).await,
            Command::Bench(a) => cmd::bench::run(a).await,
            Command::Node(c) => cmd::node::run(c).await,
            Command::Up(a) => cmd::up::run(a).await,
            Command::Demo(a) => cmd::demo::run(a).await,
            Command::Summarize(a) => cmd::client::summarize(a).await,
            Command::Suggest(a) => cmd::client::suggest(a).await,
            Command::Verify(a) => cmd::client::verify(a).await,
            Command::Wallet(c) => cmd::wallet::run(c).await,
            Command::Consent(c) => cmd::privacy::consent(c),
            Command::Chats(c) => cmd::privacy::chats(c),
            Command::Receipts(c) => cmd::receipts::run(c),
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
