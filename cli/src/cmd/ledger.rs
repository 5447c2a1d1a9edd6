//! `confide ledger` subcommands: run the transparency ledger, add entries, get proofs.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;
use confide_ledger::client::LedgerClient;
use confide_ledger::server::{Ledger, LedgerConfig, LedgerMetrics, WitnessConfig};
use confide_note::{SignerKey, VerifierKey};
use confide_release::{Bundle, LedgerEntry, LedgerTrust, verify_bundle};
use confide_svc::metrics::{HttpMetrics, MetricsRegistry};

/// `confide ledger` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LedgerCmd {
    /// Run the ledger: creates its keys under --dir on first start, prints
    /// `ledger verifier key: <vkey>` and serves the tlog-tiles layout and POST /add.
    Serve(ServeArgs),
    /// Add an entry (TOML/JSON document, or canonical bytes with --raw), signed with
    /// the operator key.
    Add(AddArgs),
    /// Build a stapleable bundle (entry + inclusion proof + cosigned checkpoint).
    Proof(ProofArgs),
    /// Verify a bundle offline, as a device does.
    Verify(VerifyArgs),
    /// Write a checked static mirror (checkpoint, tiles, entry bundles, `_headers`) to a
    /// directory any static web server, CDN or object store can serve. Run it again to
    /// bring the mirror forward; a ledger that forked or rolled back is refused.
    Export(ExportArgs),
}

/// Arguments of `confide ledger export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Base URL of the ledger (or of another mirror) to copy from.
    #[arg(long)]
    pub ledger: String,
    /// The mirror directory (created if missing; an earlier export there is extended).
    #[arg(long, visible_alias = "out")]
    pub dir: PathBuf,
    /// The ledger's verifier key: verify the checkpoint's signature before mirroring.
    #[arg(long)]
    pub ledger_key: Option<String>,
    /// Witness key (repeatable), with --ledger-key.
    #[arg(long = "witness-key", requires = "ledger_key")]
    pub witness_keys: Vec<String>,
    /// Witness cosignatures required, with --ledger-key (default: every --witness-key).
    #[arg(long, requires = "ledger_key")]
    pub quorum: Option<usize>,
    /// Development only: accept a quorum of 0 (the ledger's own word, no split-view check).
    #[arg(long)]
    pub allow_no_witness_quorum: bool,
}

/// Arguments of `confide ledger verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Bundle file (binary or base64, as written by `confide ledger proof`).
    #[arg(long)]
    pub bundle: PathBuf,
    /// The ledger's verifier key.
    #[arg(long)]
    pub ledger_key: String,
    /// Witness key (repeatable).
    #[arg(long = "witness-key")]
    pub witness_keys: Vec<String>,
    /// Witness cosignatures required (default: every --witness-key).
    #[arg(long)]
    pub quorum: Option<usize>,
    /// Development only: accept a quorum of 0 (the ledger's own word, no split-view check).
    #[arg(long)]
    pub allow_no_witness_quorum: bool,
}

/// Arguments of `confide ledger serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// State directory (keys, entries file, checkpoint).
    #[arg(long)]
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8600")]
    pub listen: String,
    /// Log origin (checkpoint origin line and ledger key name).
    #[arg(long)]
    pub origin: String,
    /// A witness to collect cosignatures from, as URL=VKEY (repeatable).
    #[arg(long = "witness")]
    pub witnesses: Vec<String>,
    /// Extra operator verifier key allowed to add (repeatable); DIR/operator.key is
    /// always allowed.
    #[arg(long = "operator")]
    pub operators: Vec<String>,
    /// With witnesses: have them cosign the unchanged checkpoint again after this many
    /// seconds without a new one, so devices that bound the age of the newest
    /// cosignature (`max_cosignature_age_secs`) keep accepting an idle ledger. 0: never.
    #[arg(long, default_value_t = 3600)]
    pub recosign_secs: u64,
    /// Serve `GET /metrics` (OpenMetrics) on this separate address, never on the
    /// public one (ADR 0900). Off when not given.
    #[arg(long)]
    pub metrics_listen: Option<String>,
}

/// Arguments of `confide ledger add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// Ledger base URL.
    #[arg(long)]
    pub ledger: String,
    /// Operator private key file (the ledger's DIR/operator.key).
    #[arg(long)]
    pub key: PathBuf,
    /// Entry document (TOML or JSON; `kind = "release"` or `"key-config"`).
    #[arg(long, conflicts_with = "raw", required_unless_present = "raw")]
    pub entry: Option<PathBuf>,
    /// Canonical entry bytes.
    #[arg(long)]
    pub raw: Option<PathBuf>,
}

/// Arguments of `confide ledger proof`.
#[derive(Debug, clap::Args)]
pub struct ProofArgs {
    /// Ledger base URL.
    #[arg(long)]
    pub ledger: String,
    /// Leaf index.
    #[arg(long)]
    pub index: u64,
    /// Write the binary bundle here (default: base64 on stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Verify the bundle under this ledger key before writing it.
    #[arg(long)]
    pub ledger_key: Option<String>,
    /// Witness key for verification (repeatable).
    #[arg(long = "witness-key")]
    pub witness_keys: Vec<String>,
    /// Witness cosignatures required (default: every --witness-key).
    #[arg(long)]
    pub quorum: Option<usize>,
    /// Development only: accept a quorum of 0 (the ledger's own word, no split-view check).
    #[arg(long)]
    pub allow_no_witness_quorum: bool,
}

/// The witness quorum of a command's `--quorum`: every listed `--witness-key` by default
/// (issue 13, finding 5: never a quiet 0), and 0 — trusting the ledger alone not to show
/// different devices different logs — only with `--allow-no-witness-quorum`.
pub fn witness_quorum(
    quorum: Option<usize>,
    listed: usize,
    allow_zero: bool,
) -> anyhow::Result<usize> {
    let q = quorum.unwrap_or(listed);
    if q == 0 && !allow_zero {
        anyhow::bail!(
            "a witness quorum of 0 trusts the ledger alone: give --witness-key (the quorum \
             defaults to every one listed), or pass --allow-no-witness-quorum (development only)"
        );
    }
    Ok(q)
}

/// Read an operator key file.
pub fn read_operator_key(path: &PathBuf) -> anyhow::Result<SignerKey> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read key file {}", path.display()))?,
    );
    SignerKey::parse(text.trim()).context("invalid operator key file")
}

/// Submit canonical entry bytes and print the result.
pub async fn submit(ledger: &str, key: &SignerKey, entry: &[u8]) -> anyhow::Result<ExitCode> {
    let client = LedgerClient::new(ledger)?;
    let r = client.add(entry, key).await.context("add failed")?;
    println!(
        "index {} tree_size {} leaf_hash {:?}",
        r.index,
        r.tree_size,
        confide_tlog::leaf_hash(entry)
    );
    Ok(ExitCode::SUCCESS)
}

/// Run a `confide ledger` subcommand.
pub async fn run(cmd: LedgerCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        LedgerCmd::Serve(a) => {
            confide_svc::init_tracing();
            let witnesses = a
                .witnesses
                .iter()
                .map(|w| WitnessConfig::parse(w))
                .collect::<Result<Vec<_>, _>>()
                .context("invalid --witness")?;
            let operators = a
                .operators
                .iter()
                .map(|o| VerifierKey::parse(o))
                .collect::<Result<Vec<_>, _>>()
                .context("invalid --operator")?;
            let (listener, addr) = confide_svc::bind(&a.listen).await?;
            let mut reg = MetricsRegistry::new();
            let http = HttpMetrics::new(&mut reg, confide_ledger::server::ROUTES);
            let ledger = Ledger::open_with_metrics(
                LedgerConfig {
                    dir: a.dir,
                    origin: a.origin,
                    witnesses,
                    operators,
                    recosign_every: (a.recosign_secs > 0)
                        .then(|| std::time::Duration::from_secs(a.recosign_secs)),
                },
                LedgerMetrics::new(&mut reg),
            )
            .await
            .context("cannot open the ledger")?;
            if let Some(m) = &a.metrics_listen {
                confide_svc::metrics::spawn_endpoint(m, reg.finish()).await?;
            }
            println!("ledger verifier key: {}", ledger.verifier_key().to_vkey());
            println!(
                "operator key file: {}",
                ledger.operator_key_file().display()
            );
            println!("ledger entries: {}", ledger.size());
            println!("ledger listening on http://{addr}");
            std::io::stdout().flush()?;
            confide_svc::serve(listener, http.instrument(ledger.router())).await?;
            Ok(ExitCode::SUCCESS)
        }
        LedgerCmd::Add(a) => {
            let key = read_operator_key(&a.key)?;
            let bytes = match (&a.entry, &a.raw) {
                (Some(doc), _) => {
                    let text = std::fs::read_to_string(doc)
                        .with_context(|| format!("cannot read {}", doc.display()))?;
                    LedgerEntry::from_document(&text)?.encode()?
                }
                (None, Some(raw)) => {
                    let b = std::fs::read(raw)
                        .with_context(|| format!("cannot read {}", raw.display()))?;
                    LedgerEntry::decode(&b).context("not a canonical ledger entry")?;
                    b
                }
                (None, None) => anyhow::bail!("give --entry or --raw"),
            };
            submit(&a.ledger, &key, &bytes).await
        }
        LedgerCmd::Export(a) => {
            let client = LedgerClient::new(&a.ledger)?;
            let trust = match &a.ledger_key {
                Some(lk) => Some(LedgerTrust::new(
                    lk,
                    &a.witness_keys,
                    witness_quorum(a.quorum, a.witness_keys.len(), a.allow_no_witness_quorum)?,
                )?),
                None => {
                    // Devices verify everything a mirror serves anyway; the mirror
                    // operator should still know what was not checked here.
                    eprintln!(
                        "warning: no --ledger-key: the checkpoint's signatures are not \
                         verified (the tree and tiles still are)"
                    );
                    None
                }
            };
            std::fs::create_dir_all(&a.dir)
                .with_context(|| format!("cannot create {}", a.dir.display()))?;
            let s = confide_ledger::mirror::export(&client, &a.dir, trust.as_ref())
                .await
                .context("mirror not updated")?;
            println!(
                "mirrored size {} (was {}): {} tiles written, {} unchanged, in {}",
                s.size,
                s.previous_size,
                s.tiles_written,
                s.tiles_unchanged,
                a.dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        LedgerCmd::Proof(a) => {
            let quorum = witness_quorum(a.quorum, a.witness_keys.len(), a.allow_no_witness_quorum);
            let client = LedgerClient::new(&a.ledger)?;
            let bundle = client
                .bundle(a.index)
                .await
                .context("cannot build the bundle")?;
            if let Some(lk) = &a.ledger_key {
                let trust = LedgerTrust::new(lk, &a.witness_keys, quorum?)?;
                let v =
                    verify_bundle(&bundle, &trust, None, None).context("bundle does not verify")?;
                eprintln!(
                    "verified: index {} under checkpoint size {} cosigned by {:?}",
                    v.index(),
                    v.checkpoint().size(),
                    v.verified_checkpoint().cosigners()
                );
            }
            let bytes = bundle.encode()?;
            match &a.out {
                Some(p) => std::fs::write(p, &bytes)
                    .with_context(|| format!("cannot write {}", p.display()))?,
                None => println!(
                    "{}",
                    base64::engine::general_purpose::STANDARD.encode(&bytes)
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        LedgerCmd::Verify(a) => {
            // The trust comes first: a missing quorum is a mistake in the command, whatever
            // the bundle holds.
            let quorum = witness_quorum(a.quorum, a.witness_keys.len(), a.allow_no_witness_quorum)?;
            let trust = LedgerTrust::new(&a.ledger_key, &a.witness_keys, quorum)?;
            let bytes = std::fs::read(&a.bundle)
                .with_context(|| format!("cannot read {}", a.bundle.display()))?;
            let bundle = read_bundle(&bytes)?;
            let v = verify_bundle(&bundle, &trust, None, None).context("bundle rejected")?;
            println!(
                "ok: index {} leaf_hash {:?} checkpoint size {} cosigned by {:?}",
                v.index(),
                v.leaf_hash(),
                v.checkpoint().size(),
                v.verified_checkpoint().cosigners()
            );
            println!("{}", v.entry().to_json()?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Decode a bundle written by `confide ledger proof` (binary or base64).
pub fn read_bundle(bytes: &[u8]) -> anyhow::Result<Bundle> {
    if let Ok(b) = Bundle::decode(bytes) {
        return Ok(b);
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(String::from_utf8_lossy(bytes).trim())
        .context("bundle is neither binary nor base64")?;
    Ok(Bundle::decode(&raw)?)
}
