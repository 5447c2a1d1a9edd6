//! `confide wallet refill|status`: the device's anonymous-token wallet.
//!
//! Tokens are fetched with the account credential, so the issuer sees who fetched and
//! when. `confide summarize`, `suggest` and `verify` therefore never fetch: they spend
//! from the wallet, and an empty wallet ends them with exit code 5 before anything is
//! sent. Refilling is this separate step, to run well before a request (or `confide up`
//! refills the wallet it writes at start and in the background). `--random-delay` first
//! waits a random time from the configuration's `[wallet] refill_delay_secs`, for
//! scripts that would otherwise refill at a moment tied to a request.

use std::path::PathBuf;
use std::process::ExitCode;

use confide_sdk::config::ClientConfig;
use confide_sdk::issuance::{IssuerTokens, random_delay};

use super::client::fail;

/// `confide wallet`.
#[derive(Debug, clap::Subcommand)]
pub enum WalletCmd {
    /// Fetch tokens from the issuer into the wallet now (as its own step, never tied to a
    /// request).
    Refill(RefillArgs),
    /// Print how many tokens the wallet holds and whether a refill is due.
    Status(StatusArgs),
}

/// `confide wallet refill`.
#[derive(Debug, clap::Args)]
pub struct RefillArgs {
    /// The client configuration (`client.toml`).
    #[arg(long)]
    pub config: PathBuf,
    /// Tokens to fetch (default: the configuration's `[wallet] batch`, 16).
    #[arg(long)]
    pub count: Option<usize>,
    /// Wait a random delay from `[wallet] refill_delay_secs` before fetching.
    #[arg(long)]
    pub random_delay: bool,
}

/// `confide wallet status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The client configuration (`client.toml`).
    #[arg(long)]
    pub config: PathBuf,
}

/// Run `confide wallet`.
pub async fn run(c: WalletCmd) -> anyhow::Result<ExitCode> {
    let res = match c {
        WalletCmd::Refill(a) => refill(a).await,
        WalletCmd::Status(a) => status(&a),
    };
    Ok(match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    })
}

async fn refill(a: RefillArgs) -> Result<(), confide_sdk::Error> {
    let cfg = ClientConfig::load(&a.config)?;
    let tokens = IssuerTokens::new(&cfg)?;
    let p = *tokens.policy();
    let count = a.count.unwrap_or(p.batch);
    if count == 0 || count > confide_sdk::config::MAX_REFILL_BATCH {
        return Err(confide_sdk::Error::InvalidRequest(
            "--count must be between 1 and 100",
        ));
    }
    if a.random_delay {
        let d = random_delay(p.refill_delay_min, p.refill_delay_max);
        eprintln!("waiting {}s before refilling", d.as_secs());
        tokio::time::sleep(d).await;
    }
    let got = tokens.refill(count).await?;
    println!(
        "fetched {got} tokens; the wallet holds {}",
        tokens.available()
    );
    Ok(())
}

fn status(a: &StatusArgs) -> Result<(), confide_sdk::Error> {
    let cfg = ClientConfig::load(&a.config)?;
    let tokens = IssuerTokens::new(&cfg)?;
    let n = tokens.available();
    println!(
        "{n} tokens in {} (refill due below {})",
        cfg.token_store.display(),
        tokens.policy().low_water
    );
    if tokens.is_low() {
        println!(
            "refill: confide wallet refill --config {}",
            a.config.display()
        );
    }
    Ok(())
}
