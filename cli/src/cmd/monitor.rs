//! `confide monitor`: audit a ledger.
//!
//! Fetches the checkpoint and verifies it (ledger signature, witness quorum, and
//! consistency with the checkpoint stored by the previous run, via an RFC 9162
//! consistency proof built from tiles); fetches every entry bundle, recomputes the
//! whole tree and compares its root; checks every entry is a canonical ledger entry;
//! lists releases and key configs; then stores the new checkpoint. Any inconsistency
//! exits non-zero and leaves the stored state untouched.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use confide_ledger::client::LedgerClient;
use confide_release::{LedgerEntry, LedgerTrust, StoredCheckpoint, verify_checkpoint};
use confide_tiles::TileId;
use confide_tlog::{MemoryTree, leaf_hash};

/// Arguments of `confide monitor`.
#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    /// Base URL of the ledger.
    #[arg(long)]
    pub ledger: String,
    /// File holding the checkpoint seen by the last run (created if missing).
    #[arg(long)]
    pub state: PathBuf,
    /// The ledger's verifier key.
    #[arg(long)]
    pub ledger_key: String,
    /// A witness's verifier key (repeatable).
    #[arg(long = "witness-key")]
    pub witness_keys: Vec<String>,
    /// Witness cosignatures required (default: every --witness-key).
    #[arg(long)]
    pub quorum: Option<usize>,
    /// Development only: accept a quorum of 0 (the ledger's own word, no split-view check).
    #[arg(long)]
    pub allow_no_witness_quorum: bool,
}

/// Run `confide monitor`.
pub async fn run(args: MonitorArgs) -> anyhow::Result<ExitCode> {
    let quorum = super::ledger::witness_quorum(
        args.quorum,
        args.witness_keys.len(),
        args.allow_no_witness_quorum,
    )?;
    let trust = LedgerTrust::new(&args.ledger_key, &args.witness_keys, quorum)?;
    let client = LedgerClient::new(&args.ledger)?;
    let last = match std::fs::read_to_string(&args.state) {
        Ok(t) => Some(StoredCheckpoint::parse(&t).context("state file is not a checkpoint")?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context("cannot read the state file"),
    };
    let note = client.checkpoint().await?;
    let size = LedgerClient::parse_checkpoint(&note)?.size();
    let proof = match &last {
        Some(l) if l.size() > 0 && l.size() < size => {
            Some(client.consistency_proof(l.size(), size).await?)
        }
        _ => None,
    };
    let verified = verify_checkpoint(&note, &trust, last.as_ref(), proof.as_deref())
        .context("checkpoint rejected")?;

    // Recompute the whole tree from the entries.
    let mut tree = MemoryTree::new();
    let mut problems = 0usize;
    let mut releases = 0usize;
    let mut key_configs = 0usize;
    let mut revocations = 0usize;
    for n in 0..size.div_ceil(confide_tiles::TILE_WIDTH) {
        let id = TileId::for_entry(n * confide_tiles::TILE_WIDTH, size)?;
        for entry in client.entry_bundle(&id).await? {
            let index = tree.push(leaf_hash(&entry));
            match LedgerEntry::decode(&entry) {
                Ok(LedgerEntry::Release(m)) => {
                    releases += 1;
                    println!(
                        "{index}\trelease\t{}\tmeasurement {}\tmodel {}\trev {}\tvalid {}..{}",
                        m.platform.name(),
                        hex::encode(&m.measurement),
                        hex::encode(m.model_digest),
                        m.source_revision,
                        m.not_before,
                        m.not_after
                    );
                }
                Ok(LedgerEntry::KeyConfig(k)) => {
                    key_configs += 1;
                    println!(
                        "{index}\tkey-config\t{} bytes\tvalid {}..{}",
                        k.key_config.len(),
                        k.not_before,
                        k.not_after
                    );
                }
                Ok(LedgerEntry::Revocation(r)) => {
                    revocations += 1;
                    // Devices honour only revocations of an earlier entry.
                    let note = if r.index < index {
                        ""
                    } else {
                        "\t(ignored: not an earlier entry)"
                    };
                    println!(
                        "{index}\trevocation\tof {}\treason {:?}{note}",
                        r.index, r.reason
                    );
                }
                Ok(_) => println!("{index}\tother"),
                Err(e) => {
                    problems += 1;
                    eprintln!("entry {index} is not a valid ledger entry: {e}");
                }
            }
        }
    }
    if tree.size() != size {
        anyhow::bail!(
            "entry bundles hold {} entries, the checkpoint says {size}",
            tree.size()
        );
    }
    if tree.root() != *verified.checkpoint().root() {
        anyhow::bail!("recomputed root differs from the checkpoint root (size {size})");
    }
    if let Some(l) = &last {
        // Stronger than the consistency proof: the stored root must be the root of
        // the first l.size() entries we just fetched.
        if tree.root_at(l.size())? != *l.root() {
            anyhow::bail!(
                "entries do not reproduce the stored checkpoint of size {}",
                l.size()
            );
        }
    }
    if problems > 0 {
        eprintln!("{problems} malformed entries");
        return Ok(ExitCode::FAILURE);
    }
    confide_svc::durable::write_atomic(&args.state, verified.checkpoint().encode().as_bytes())
        .context("cannot write the state file")?;
    println!(
        "ok: size {size}, {releases} releases, {key_configs} key configs, {revocations} revocations, cosigned by {:?}",
        verified.cosigners()
    );
    Ok(ExitCode::SUCCESS)
}
