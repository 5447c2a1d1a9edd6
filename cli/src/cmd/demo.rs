//! `confide demo`: the README's first command. `confide up` in a temporary directory,
//! a verification report, a real summary of the bundled WhatsApp sample chat, shut down.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::client::{connect, fail, print_report, print_stream};
use super::up::{Stack, UpArgs};

/// `confide demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The chat to summarise (default: the bundled `examples/chat-whatsapp.txt`).
    #[arg(long)]
    pub chat: Option<PathBuf>,
    /// GGUF model (default: `models/SmolLM2-135M-Instruct.Q4_1.gguf` of this source tree).
    #[arg(long, env = "CONFIDE_MODEL")]
    pub model: Option<PathBuf>,
    /// Keep the temporary directory (logs, ledger, keys) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
}

fn default_chat() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/chat-whatsapp.txt");
    p.canonicalize().unwrap_or(p)
}

/// Run the demo.
pub async fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let chat_path = a.chat.clone().unwrap_or_else(default_chat);
    let chat_bytes = std::fs::read(&chat_path)
        .with_context(|| format!("cannot read the sample chat {}", chat_path.display()))?;
    let parsed = confide_sdk::chat::parse(&chat_bytes, &confide_sdk::chat::ParseOptions::default())
        .with_context(|| format!("{}", chat_path.display()))?;
    let limits = confide_sdk::chat::Limits::default();
    let selected = parsed.select(&confide_sdk::chat::Selection::default(), &limits)?;

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
        dir: dir.clone(),
        nodes: 1,
        model: a.model.clone(),
        max_tokens: 160,
    };
    let stack = Stack::start(&up).await?;
    println!("{}", stack.status());

    let result = async {
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
        let stream = client.summarize(&selected, None).await?;
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
    }
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    })
}
