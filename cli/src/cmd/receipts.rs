//! `confide receipts list|verify`: the processing receipts this device kept, and their
//! offline verification (for the person, or an auditor they hand a receipt file to).
//!
//! `verify` contacts nobody: it re-runs every RA-TLS check on the node certificate the
//! receipt carries, as of the receipt's time, under the trust policy of `client.toml`,
//! then checks the signature and every field (see `confide_sdk::receipt`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use confide_release::{LedgerEntry, LedgerTrust, ReleaseManifest};
use confide_sdk::config::ClientConfig;
use confide_sdk::receipt;

use super::client::fail;

/// `confide receipts`.
#[derive(Debug, clap::Subcommand)]
pub enum ReceiptsCmd {
    /// List the receipts kept on this device.
    List(ListArgs),
    /// Verify a receipt file offline: which attested release processed the request.
    Verify(VerifyArgs),
}

/// `confide receipts list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The client configuration (`client.toml`); receipts are in its `[state] receipts`.
    #[arg(long)]
    pub config: PathBuf,
}

/// `confide receipts verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The client configuration whose trust policy (roots, ledger and witness keys) decides.
    #[arg(long)]
    pub config: PathBuf,
    /// The receipt file.
    pub receipt: PathBuf,
    /// A release manifest (TOML, as `confide release publish` takes) the receipt must name.
    #[arg(long)]
    pub release: Option<PathBuf>,
    /// Print the verified receipt as JSON.
    #[arg(long)]
    pub json: bool,
}

fn opt_hex(v: Option<&Vec<u8>>) -> String {
    v.map_or_else(|| "-".into(), hex::encode)
}

/// Run `confide receipts`.
pub fn run(cmd: ReceiptsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ReceiptsCmd::List(a) => {
            let cfg = match ClientConfig::load(&a.config) {
                Ok(c) => c,
                Err(e) => return Ok(fail(&e.into())),
            };
            let files = match receipt::list(&cfg.receipts_dir) {
                Ok(f) => f,
                Err(e) => return Ok(fail(&e)),
            };
            if files.is_empty() {
                println!("no receipts in {}", cfg.receipts_dir.display());
            }
            for f in files {
                match receipt::peek(&f) {
                    Ok((b, origin)) => println!(
                        "{}\t{}\tmeasurement {}…\t{} index {}\t{}",
                        b.time,
                        b.platform,
                        {
                            // Any file in the directory is listed, verified or not.
                            let m = hex::encode(&b.measurement);
                            m.get(..16).map_or(m.clone(), str::to_owned)
                        },
                        origin,
                        b.ledger_index,
                        f.display()
                    ),
                    Err(e) => println!("{}\tunreadable: {e}", f.display()),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ReceiptsCmd::Verify(a) => {
            let cfg = match ClientConfig::load(&a.config) {
                Ok(c) => c,
                Err(e) => return Ok(fail(&e.into())),
            };
            let l = &cfg.policy.ledger;
            let trust = LedgerTrust::new(&l.log_vkey, &l.witness_vkeys, l.witness_quorum as usize)
                .context("the trust policy's ledger keys are not usable")?;
            let expect = match &a.release {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read {}", p.display()))?;
                    match LedgerEntry::from_toml(&text)
                        .with_context(|| format!("{} is not a release manifest", p.display()))?
                    {
                        LedgerEntry::Release(m) => Some::<ReleaseManifest>(m),
                        _ => anyhow::bail!("{} is not a release manifest", p.display()),
                    }
                }
                None => None,
            };
            match receipt::verify_file(&a.receipt, &cfg.policy, &trust, expect.as_ref()) {
                Ok(v) => {
                    let b = &v.body;
                    if a.json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "verified": true,
                                "time": b.time,
                                "platform": b.platform,
                                "measurement": hex::encode(&b.measurement),
                                "model_digest": opt_hex(b.model_digest.as_ref()),
                                "config_digest": opt_hex(b.config_digest.as_ref()),
                                "ledger_origin": v.ledger_origin,
                                "ledger_index": b.ledger_index,
                                "request_sha256": hex::encode(b.request_sha256),
                                "response_sha256": hex::encode(b.response_sha256),
                                "certificate_sha256": hex::encode(b.certificate_sha256),
                            })
                        );
                    } else {
                        println!(
                            "receipt verified: at {} the attested release below processed a request",
                            b.time
                        );
                        println!(
                            "  platform      {}{}",
                            b.platform,
                            if b.platform == "simulated" {
                                " (SIMULATED: no hardware protection)"
                            } else {
                                ""
                            }
                        );
                        println!("  measurement   {}", hex::encode(&b.measurement));
                        println!("  model         {}", opt_hex(b.model_digest.as_ref()));
                        println!("  configuration {}", opt_hex(b.config_digest.as_ref()));
                        println!(
                            "  ledger        {} index {}",
                            v.ledger_origin, b.ledger_index
                        );
                        println!("  request       sha256 {}", hex::encode(b.request_sha256));
                        println!("  answer        sha256 {}", hex::encode(b.response_sha256));
                        if a.release.is_some() {
                            println!("  matches the expected release manifest");
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(fail(&e)),
            }
        }
    }
}
