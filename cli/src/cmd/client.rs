//! The device commands: `confide summarize`, `confide suggest`, `confide verify`.
//!
//! Each loads `client.toml`, verifies the node (every check in `confide_sdk::client`)
//! before any content leaves the device, streams the answer to stdout, and ends any
//! failure with one line `error: … (hint: …)` and a non-zero exit code:
//!
//! | code | meaning |
//! |---|---|
//! | 1 | other failure |
//! | 2 | usage, configuration or input (chat file) error |
//! | 3 | a party is unreachable or has no node |
//! | 4 | verification failed: the node or key config is not trusted, or its receipt for the answer does not check out |
//! | 5 | no tokens: the wallet is empty (`confide wallet refill` fills it, as its own step), or the issuer refused or rate-limited the account |
//! | 6 | AI features are off (`confide consent on` turns them on); nothing was sent |
//! | 7 | the chat is protected (by you, or its Advanced Chat Privacy); nothing was sent |

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use confide_sdk::chat::{self, ParseOptions, Selection};
use confide_sdk::client::CheckOutcome;
use confide_sdk::config::ClientConfig;
use confide_sdk::{Client, Error, Event, TextStream, VerificationReport};

/// `confide summarize`.
#[derive(Debug, clap::Args)]
pub struct SummarizeArgs {
    /// The client configuration (`client.toml`, as `confide up` writes it).
    #[arg(long)]
    pub config: PathBuf,
    /// The chat: a WhatsApp "Export chat" text file or a JSON message list.
    #[arg(long)]
    pub chat: PathBuf,
    /// Only the last N messages (after --since).
    #[arg(long)]
    pub last: Option<usize>,
    /// Only messages at or after this time: `2026-11-21`, `2026-11-21 09:14`, RFC 3339,
    /// or an age such as `90m`, `12h`, `7d`.
    #[arg(long)]
    pub since: Option<String>,
    /// Read dates in WhatsApp exports month-first (US phones) instead of detecting.
    #[arg(long)]
    pub month_first: bool,
    /// Print the verification report before the summary.
    #[arg(long)]
    pub show_verification: bool,
}

/// `confide suggest`.
#[derive(Debug, clap::Args)]
pub struct SuggestArgs {
    /// The client configuration.
    #[arg(long)]
    pub config: PathBuf,
    /// The draft message to rewrite.
    #[arg(long)]
    pub draft: String,
    /// friendly, formal, concise, apologetic or enthusiastic.
    #[arg(long, default_value = "friendly")]
    pub tone: String,
}

/// `confide verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The client configuration.
    #[arg(long)]
    pub config: PathBuf,
    /// Explain each check in plain words.
    #[arg(long)]
    pub explain: bool,
    /// Print the report as JSON.
    #[arg(long, conflicts_with = "explain")]
    pub json: bool,
}

/// Print the one-line error and hint; return the exit code for `e`.
pub fn fail(e: &Error) -> ExitCode {
    // One line: what failed, then what to do about it.
    eprintln!("error: {e} (hint: {})", e.hint());
    ExitCode::from(match e {
        Error::Config(_) | Error::Chat(_) | Error::InvalidRequest(_) | Error::State { .. } => 2,
        Error::Unreachable { .. } | Error::NoNode => 3,
        Error::Check {
            check: confide_sdk::Check::Token,
            ..
        }
        | Error::NoTokens { .. }
        | Error::WalletEmpty { .. } => 5,
        Error::Check { .. } | Error::Receipt(_) => 4,
        Error::ConsentRequired { .. } => 6,
        Error::ChatProtected(_) => 7,
        _ => 1,
    })
}

/// Load the configuration and build a client. It spends from the wallet and never fetches
/// tokens (an empty wallet is `Error::WalletEmpty`; `confide wallet refill` fills it).
pub fn connect(config: &Path) -> Result<Client, Error> {
    let cfg = ClientConfig::load(config)?;
    let tokens = std::sync::Arc::new(confide_sdk::issuance::IssuerTokens::new(&cfg)?);
    Client::new(cfg, tokens)
}

/// After an answer: when the wallet is low, say so, so the person refills it as a step of
/// its own. The command itself never refills: a fetch right after a request would link
/// the two by time as surely as one right before.
fn wallet_notice(config: &Path) {
    let Ok(cfg) = ClientConfig::load(config) else {
        return;
    };
    let Ok(tokens) = confide_sdk::issuance::IssuerTokens::new(&cfg) else {
        return;
    };
    if tokens.is_low() {
        eprintln!(
            "note: {} tokens left in the wallet; refill it well before your next request: \
             confide wallet refill --config {}",
            tokens.available(),
            config.display()
        );
    }
}

/// A spinner on stderr until the first token (only when stderr is a terminal).
struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(what: &'static str) -> Progress {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            // Logs and pipes get no spinner (and no extra lines before an error).
            let _ = what;
            return Progress { task: None };
        }
        let task = tokio::spawn(async move {
            let frames = ['|', '/', '-', '\\'];
            let mut i = 0usize;
            loop {
                eprint!("\r{} {what} ", frames[i % frames.len()]);
                i += 1;
                tokio::time::sleep(Duration::from_millis(120)).await;
            }
        });
        Progress { task: Some(task) }
    }

    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            eprint!("\r\x1b[2K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stream events to stdout. Returns the error, if the stream ended in one.
pub async fn print_stream(mut s: TextStream) -> Result<(), Error> {
    let mut progress = Progress::start("verifying the node and waiting for the first words");
    let mut out = std::io::stdout();
    let mut shown = false;
    while let Some(ev) = s.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                progress.stop();
                if shown {
                    // Text already on stdout is provisional until the end's receipt; say,
                    // with the text, that this one never got its label.
                    let _ = writeln!(
                        out,
                        "\n— NOT VERIFIED: this answer is not labelled as privately processed ({e})"
                    );
                }
                return Err(e);
            }
        };
        match ev {
            Event::Reattested(r) => {
                progress.stop();
                eprintln!(
                    "notice: the node went away; re-attested a new node ({} at ledger index {}, \
                     every check passed) and resent the request",
                    r.platform, r.ledger_index
                );
            }
            Event::Unstreamed => {
                progress.stop();
                eprintln!(
                    "notice: the relay does not forward streamed (chunked OHTTP) requests; \
                     the answer arrives in one piece when the node has finished it"
                );
                progress = Progress::start("waiting for the whole answer");
            }
            Event::Text(t) => {
                progress.stop();
                shown = true;
                let _ = out.write_all(t.as_bytes());
                let _ = out.flush();
            }
            Event::End { finish, label, .. } => {
                progress.stop();
                let _ = writeln!(out);
                if finish == "length" {
                    eprintln!("(stopped at the length limit)");
                }
                // Every answer is labelled, on stdout with it, so a copy of the answer
                // keeps its label.
                let _ = writeln!(out, "\n— {}", label.line());
                if let Some(p) = &label.receipt_path {
                    eprintln!(
                        "receipt kept in {} (check it any time: confide receipts verify --config … {})",
                        p.display(),
                        p.display()
                    );
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn explain(c: &CheckOutcome) -> &'static str {
    use confide_sdk::Check as C;
    match c.check {
        C::HardwareRoot => {
            "The node's CPU produced a signed attestation report; its signature chains to a vendor root your trust policy pins."
        }
        C::KeyBinding => {
            "The report commits to the key of the TLS certificate, so only that TEE can hold the session keys."
        }
        C::Measurement => {
            "The report's measurement (node binary, configuration, model) equals the one in a published release."
        }
        C::LedgerEntry => {
            "That release is an entry of the transparency ledger, proven by a Merkle inclusion proof."
        }
        C::Checkpoint => {
            "The ledger signed the tree head, and it extends the one this device saw before (no rollback, no fork)."
        }
        C::Witnesses => {
            "Independent witnesses cosigned the tree head, so the ledger cannot show you a private view."
        }
        C::Freshness => "The certificate, evidence and release are valid at this moment.",
        C::KeyConfig => {
            "The gateway's OHTTP key is logged in the ledger: every device uses the same key, so you cannot be singled out."
        }
        C::Token => {
            "An anonymous Privacy Pass token authorised the request without revealing your account."
        }
        C::Handshake => "The TLS 1.3 handshake was signed with the attested key.",
        _ => "",
    }
}

/// Print a report for people.
pub fn print_report(r: &VerificationReport, with_explanations: bool) {
    println!("Verification of the node (nothing was sent before all checks passed):");
    if r.simulated {
        println!(
            "  !! SIMULATED platform: evidence from a local simulated vendor, NO hardware protection"
        );
    }
    for c in &r.checks {
        println!(
            "  [{}] {:<13} {}",
            if c.passed { "ok" } else { "FAILED" },
            c.title,
            c.detail
        );
        if with_explanations {
            println!("       {}", explain(c));
        }
    }
    println!(
        "  node: {} measurement {}, ledger {} index {}, checkpoint size {}",
        r.platform,
        short(&r.measurement),
        r.ledger_origin,
        r.ledger_index,
        r.checkpoint_size
    );
}

fn short(h: &str) -> String {
    if h.len() > 16 {
        format!("{}…", &h[..16])
    } else {
        h.to_owned()
    }
}

/// `confide summarize`.
pub async fn summarize(a: SummarizeArgs) -> anyhow::Result<ExitCode> {
    Ok(match summarize_inner(&a).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    })
}

/// Read and parse a chat file (WhatsApp export or JSON); `month_first` forces US dates.
pub fn read_chat(path: &Path, month_first: bool) -> Result<(chat::Chat, ParseOptions), Error> {
    let bytes = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| Error::State {
        path: path.to_owned(),
        detail: e.to_string(),
    })?);
    let opts = ParseOptions {
        date_order: if month_first {
            chat::DateOrder::MonthFirst
        } else {
            chat::DateOrder::Auto
        },
        ..ParseOptions::default()
    };
    let parsed = chat::parse(&bytes, &opts)?;
    Ok((parsed, opts))
}

async fn summarize_inner(a: &SummarizeArgs) -> Result<(), Error> {
    let cfg_client = connect(&a.config)?;
    let (parsed, opts) = read_chat(&a.chat, a.month_first)?;
    let since = match &a.since {
        Some(s) => Some(chat::parse_since(
            s,
            time::OffsetDateTime::now_utc(),
            opts.offset,
        )?),
        None => None,
    };
    let selection = Selection {
        since,
        last: a.last,
    };
    // Consent and protection first, before any party is contacted (even to verify). The
    // SDK checks them again in `summarize` itself.
    cfg_client.may_summarize(&parsed)?;
    let selected = parsed.select(&selection, &opts.limits)?;
    eprintln!(
        "summarising {} of {} messages ({} system/media lines skipped)",
        selected.len(),
        parsed.messages.len(),
        parsed.skipped.total()
    );
    drop(selected);
    if a.show_verification {
        let r = cfg_client.verify().await?;
        print_report(&r, false);
    }
    let stream = cfg_client.summarize(&parsed, &selection, None).await?;
    let res = print_stream(stream).await;
    cfg_client.close().await;
    if res.is_ok() {
        wallet_notice(&a.config);
    }
    res
}

/// `confide suggest`.
pub async fn suggest(a: SuggestArgs) -> anyhow::Result<ExitCode> {
    let run = async {
        let client = connect(&a.config)?;
        let stream = client.suggest(&a.draft, &a.tone, None).await?;
        let res = print_stream(stream).await;
        client.close().await;
        if res.is_ok() {
            wallet_notice(&a.config);
        }
        res
    };
    Ok(match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    })
}

/// `confide verify`.
pub async fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let run = async {
        let client = connect(&a.config)?;
        let _progress = Progress::start("verifying the node");
        let report = client.verify().await;
        client.close().await;
        report
    };
    Ok(match run.await {
        Ok(r) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print_report(&r, a.explain);
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    })
}
