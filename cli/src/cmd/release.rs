//! `confide release` subcommands.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use confide_release::LedgerEntry;

/// `confide release` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ReleaseCmd {
    /// Sign and submit a release manifest (TOML or JSON) to the ledger.
    Publish(PublishArgs),
}

/// Arguments of `confide release publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// The manifest: platform, measurement, model_digest, source_revision,
    /// build_recipe_digest, not_before, not_after, notes.
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
            let entry = LedgerEntry::from_document(&text).context("invalid manifest")?;
            if !matches!(entry, LedgerEntry::Release(_)) {
                anyhow::bail!(
                    "not a release manifest (use `confide ledger add` for other entries)"
                );
            }
            let key = super::ledger::read_operator_key(&a.key)?;
            super::ledger::submit(&a.ledger, &key, &entry.encode()?).await
        }
    }
}
