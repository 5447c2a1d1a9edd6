//! `confide release` subcommands.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use confide_release::LedgerEntry;

/// `confide release` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ReleaseCmd {
    /// Sign and submit a release manifest or a gateway key-config document (TOML or
    /// JSON) to the ledger.
    Publish(PublishArgs),
}

/// Arguments of `confide release publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// The manifest: platform, measurement, model_digest, config_digest, source_revision,
    /// build_recipe_digest, not_before, not_after, notes (or a `kind = "key-config"`
    /// document: key_config, not_before, not_after).
    pub manifest: PathBuf,
    /// Ledger base URL.
    #[arg(long)]
    pub ledger: String,
    /// Operator private key file.
    #[arg(long)]
    pub key: PathBuf,
}

/// Run a `confide release` subcommand.
pub async fn run(cmd: ReleaseCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ReleaseCmd::Publish(a) => {
            let text = std::fs::read_to_string(&a.manifest)
                .with_context(|| format!("cannot read {}", a.manifest.display()))?;
            // A release manifest (no `kind`, or `kind = "release"`) or a gateway key
            // config document (`kind = "key-config"`, as `confide gateway keys
            // --entry-out` writes it): both are things devices must find in the log.
            let entry = LedgerEntry::from_document(&text).context("invalid manifest")?;
            let key = super::ledger::read_operator_key(&a.key)?;
            super::ledger::submit(&a.ledger, &key, &entry.encode()?).await
        }
    }
}
