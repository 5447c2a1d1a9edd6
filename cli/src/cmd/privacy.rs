//! The person's controls: `confide consent on|off|status` and
//! `confide chats protect|unprotect|list`.
//!
//! Both only read and write the device's own state files (named in `client.toml`,
//! `[state] consent` and `[state] protected_chats`); neither contacts any party.

use std::path::PathBuf;
use std::process::ExitCode;

use confide_sdk::Error;
use confide_sdk::chat;
use confide_sdk::config::ClientConfig;
use confide_sdk::consent::Consent;
use confide_sdk::protect::{ChatIdentity, ProtectedChats};

use super::client::{fail, read_chat};
use super::up::unix_now;

/// `confide consent`.
#[derive(Debug, clap::Subcommand)]
pub enum ConsentCmd {
    /// Turn AI features on: summaries and suggestions may be sent to an attested node.
    On(ConfigArg),
    /// Turn AI features off: nothing is sent until they are turned on again.
    Off(ConfigArg),
    /// Show whether AI features are on.
    Status(ConfigArg),
}

/// The client configuration whose state is changed.
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// The client configuration (`client.toml`).
    #[arg(long)]
    pub config: PathBuf,
}

/// `confide chats`.
#[derive(Debug, clap::Subcommand)]
pub enum ChatsCmd {
    /// Protect a chat: AI features will refuse it, before anything leaves this device.
    Protect(ChatArgs),
    /// Allow a protected chat again.
    Unprotect(ChatArgs),
    /// List the protected chats (keys and labels; names are never stored).
    List(ConfigArg),
}

/// A chat export to recognise.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// The client configuration (`client.toml`).
    #[arg(long)]
    pub config: PathBuf,
    /// The chat: a WhatsApp "Export chat" text file or a JSON message list.
    #[arg(long)]
    pub chat: PathBuf,
    /// Your own label for the list (stored as given; optional).
    #[arg(long)]
    pub name: Option<String>,
    /// Read dates in WhatsApp exports month-first (US phones) instead of detecting.
    #[arg(long)]
    pub month_first: bool,
}

fn describe(c: Consent) -> String {
    match c {
        Consent::NotAsked => "off (never turned on)".into(),
        Consent::Given { at } => format!("on (since {})", when(at)),
        Consent::Withdrawn { at } => format!("off (turned off {})", when(at)),
    }
}

fn when(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Run `confide consent`.
pub fn consent(cmd: ConsentCmd) -> anyhow::Result<ExitCode> {
    let run = || -> Result<(), Error> {
        match cmd {
            ConsentCmd::On(a) => {
                let cfg = ClientConfig::load(&a.config)?;
                let c = Consent::record(&cfg.consent_state, true, unix_now())?;
                println!("AI features: {}", describe(c));
                println!(
                    "Summaries and suggestions you ask for are sent only to a node that passes \
                     every attestation and ledger check, through the relay in your config; \
                     protected chats are never sent. Turn off with `confide consent off`."
                );
            }
            ConsentCmd::Off(a) => {
                let cfg = ClientConfig::load(&a.config)?;
                let c = Consent::record(&cfg.consent_state, false, unix_now())?;
                println!("AI features: {}", describe(c));
            }
            ConsentCmd::Status(a) => {
                let cfg = ClientConfig::load(&a.config)?;
                println!(
                    "AI features: {}",
                    describe(Consent::load(&cfg.consent_state)?)
                );
            }
        }
        Ok(())
    };
    Ok(match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    })
}

fn identity(a: &ChatArgs) -> Result<(chat::Chat, ChatIdentity), Error> {
    let (parsed, _) = read_chat(&a.chat, a.month_first)?;
    let id = ChatIdentity::of(&parsed);
    Ok((parsed, id))
}

/// Run `confide chats`.
pub fn chats(cmd: ChatsCmd) -> anyhow::Result<ExitCode> {
    let run = || -> Result<(), Error> {
        match cmd {
            ChatsCmd::Protect(a) => {
                let cfg = ClientConfig::load(&a.config)?;
                let (parsed, id) = identity(&a)?;
                let mut list = ProtectedChats::load(&cfg.protected_chats)?;
                let new = list.protect(&id, a.name.clone(), unix_now());
                list.save(&cfg.protected_chats)?;
                println!(
                    "{} chat {} ({} keys{})",
                    if new {
                        "protected"
                    } else {
                        "already protected; updated"
                    },
                    id.short(),
                    id.keys().len(),
                    if parsed.facts.advanced_chat_privacy == Some(true) {
                        "; its Advanced Chat Privacy setting is on too"
                    } else {
                        ""
                    }
                );
            }
            ChatsCmd::Unprotect(a) => {
                let cfg = ClientConfig::load(&a.config)?;
                let (parsed, id) = identity(&a)?;
                let mut list = ProtectedChats::load(&cfg.protected_chats)?;
                let removed = list.unprotect(&id);
                list.save(&cfg.protected_chats)?;
                let n = removed.len();
                if n == 0 {
                    println!("chat {} was not protected", id.short());
                } else {
                    // One export can match several entries (the same people wrote in two
                    // chats): name every entry removed, so nothing is unprotected unseen.
                    println!(
                        "{n} protected entr{} removed: {}",
                        if n == 1 { "y" } else { "ies" },
                        removed
                            .iter()
                            .map(|c| c.display_name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                if parsed.facts.advanced_chat_privacy == Some(true) {
                    println!(
                        "note: its Advanced Chat Privacy setting is on, so AI features still \
                         refuse it"
                    );
                }
            }
            ChatsCmd::List(a) => {
                let cfg = ClientConfig::load(&a.config)?;
                let list = ProtectedChats::load(&cfg.protected_chats)?;
                if list.chats().is_empty() {
                    println!("no protected chats");
                }
                for c in list.chats() {
                    println!(
                        "{}\t{}\tsince {}\t{} keys",
                        &c.keys[0][..12],
                        c.label.as_deref().unwrap_or("-"),
                        when(c.since),
                        c.keys.len()
                    );
                }
            }
        }
        Ok(())
    };
    Ok(match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    })
}
