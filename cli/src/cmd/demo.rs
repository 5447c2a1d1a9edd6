//! `confide demo`: the README's first command. `confide up` in a temporary directory,
//! a verification report, a real summary of the bundled WhatsApp sample chat, shut down.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::client::{connect, fail, print_report, print_stream};
use super::up::{Stack, UpArgs, unix_now};

/// `confide demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The chat to summarise (default: the bundled `examples/chat-whatsapp.txt`).
    #[arg(long)]
    pub chat: Option<PathBuf>,
    /// Model: `quality` (the default), `fast`, `tiny` (from `scripts/fetch-model`) or a
    /// GGUF file.
    #[arg(long, env = "CONFIDE_MODEL", value_name = "NAME|PATH", value_parser = super::engine::parse_model)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub tuning: super::engine::TuningArgs,
    /// Keep the temporary directory (logs, ledger, keys) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
    /// Agree to send the sample chat for a summary without being asked (AI features are
    /// off until you agree; without a terminal to ask on, the demo needs this).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Say what will be sent and to whom, then ask (or take `--yes`). Nothing is started
/// before the answer.
fn ask_consent(a: &DemoArgs, chat: &Path, messages: usize, bytes: usize) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    eprintln!(
        "AI features are off until you turn them on. This demo will send the {messages} \
         messages of {} ({bytes} bytes of text) for a summary:\n\
         \x20 - only to a node that passes every attestation and ledger check first (here a \
         SIMULATED TEE on this machine: no hardware protection);\n\
         \x20 - through a relay (it sees this machine's address, not the content) and a \
         gateway (it sees neither);\n\
         \x20 - the node keeps nothing, and nothing else leaves the device.",
        chat.display()
    );
    if a.yes {
        eprintln!("--yes: AI features on for this demo.");
        return true;
    }
    if !std::io::stdin().is_terminal() {
        eprintln!("No terminal to ask on: run `confide demo --yes` to agree.");
        return false;
    }
    eprint!("Turn AI features on for this demo? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

fn default_chat() -> PathBuf {
    super::in_source_tree("examples/chat-whatsapp.txt")
}

/// Run the demo.
pub async fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let chat_path = a.chat.clone().unwrap_or_else(default_chat);
    let chat_bytes = std::fs::read(&chat_path)
        .with_context(|| format!("cannot read the sample chat {}", chat_path.display()))?;
    let parsed = confide_sdk::chat::parse(&chat_bytes, &confide_sdk::chat::ParseOptions::default())
        .with_context(|| format!("{}", chat_path.display()))?;
    let limits = confide_sdk::chat::Limits::default();
    let selection = confide_sdk::chat::Selection::default();
    let selected = parsed.select(&selection, &limits)?;
    let text_bytes: usize = selected.iter().map(|m| m.sender.len() + m.text.len()).sum();
    if !ask_consent(&a, &chat_path, selected.len(), text_bytes) {
        // The SDK's ConsentRequired exit code, with the demo's own way out.
        eprintln!(
            "error: AI features are off: nothing was started or sent (hint: answer y, or run \
             `confide demo --yes`)"
        );
        return Ok(ExitCode::from(6));
    }

    let tmp = tempfile::Builder::new()
        .prefix("confide-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let dir = tmp.path().join("system");
    eprintln!(
        "== 1/4 starting ledger, 3 witnesses, issuer, node, gateway and relay in {}",
        dir.display()
    );
    let up = UpArgs {
        platform: super::up::SimPlatform::SimSnp,
        gpu: false,
        sim_fault: Vec::new(),
        model_node: None,
        dir: dir.clone(),
        nodes: 1,
        model: a.model.clone(),
        max_tokens: 256,
        tuning: a.tuning.clone(),
    };
    let stack = Stack::start(&up).await?;
    println!("{}", stack.status());

    let result = async {
        let cfg = confide_sdk::config::ClientConfig::load(&stack.client_config)?;
        confide_sdk::consent::Consent::record(&cfg.consent_state, true, unix_now())?;
        let client = connect(&stack.client_config)?;
        eprintln!("== 2/4 verifying the node before sending anything");
        let report = client.verify().await?;
        print_report(&report, true);
        eprintln!(
            "== 3/4 summarising {} ({} messages; {} system/media lines were not sent)",
            chat_path.display(),
            selected.len(),
            parsed.skipped.total()
        );
        println!("\nSummary:");
        let stream = client.summarize(&parsed, &selection, None).await?;
        let res = print_stream(stream).await;
        client.close().await;
        res
    }
    .await;

    eprintln!("== 4/4 shutting everything down");
    stack.stop().await;
    if a.keep {
        let kept = tmp.keep();
        eprintln!("kept {}", kept.display());
    } else if result.is_ok() {
        eprintln!(
            "(the demo's directory, with the receipt, is removed now; `confide demo --keep` keeps it)"
        );
    }
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    })
}
