//! The SDK's error type: one enum, each variant saying which party or which check failed,
//! with [`Error::hint`] telling the person what they can do about it.
//!
//! Nothing here carries request content: chat text, drafts and generated text never reach
//! an error value (the node reports failures as a code, see `docs/sessions.md`).

use std::path::PathBuf;

use crate::chat::ChatError;
use crate::config::ConfigError;

/// The verification checks a client makes before any request content leaves the device
/// (DESIGN.md phase 4), plus the two wire checks (key config, token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Check {
    /// The hardware evidence chains to a root the trust policy pins (and simulated
    /// evidence only when the policy allows it).
    HardwareRoot,
    /// The evidence binds the TLS certificate key (REPORT_DATA).
    KeyBinding,
    /// The measured node binary, configuration and model digest are the ones released.
    Measurement,
    /// The release manifest is in the ledger (inclusion proof, index).
    LedgerEntry,
    /// The ledger checkpoint is signed by the ledger and consistent with the last one seen.
    Checkpoint,
    /// Enough independent witnesses cosigned the checkpoint.
    Witnesses,
    /// The certificate, evidence and release are valid now.
    Freshness,
    /// The gateway's OHTTP key configuration is logged in the ledger (key consistency).
    KeyConfig,
    /// An anonymous token was available and accepted.
    Token,
    /// The TLS 1.3 handshake itself (signature with the attested key).
    Handshake,
}

impl Check {
    /// Every check, in the order they are reported.
    pub const ALL: [Check; 10] = [
        Check::HardwareRoot,
        Check::KeyBinding,
        Check::Measurement,
        Check::LedgerEntry,
        Check::Checkpoint,
        Check::Witnesses,
        Check::Freshness,
        Check::KeyConfig,
        Check::Token,
        Check::Handshake,
    ];

    /// A short name in plain words.
    pub fn title(self) -> &'static str {
        match self {
            Check::HardwareRoot => "hardware root",
            Check::KeyBinding => "key binding",
            Check::Measurement => "measurement",
            Check::LedgerEntry => "ledger entry",
            Check::Checkpoint => "checkpoint",
            Check::Witnesses => "witnesses",
            Check::Freshness => "freshness",
            Check::KeyConfig => "key config",
            Check::Token => "token",
            Check::Handshake => "TLS handshake",
        }
    }
}

/// The parties a client talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Party {
    /// The OHTTP relay.
    Relay,
    /// The key-config host (the gateway's `/ohttp-keys`).
    KeyConfigHost,
    /// The Privacy Pass issuer.
    Issuer,
    /// The ledger.
    Ledger,
    /// The gateway (reached through the relay).
    Gateway,
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Party::Relay => "relay",
            Party::KeyConfigHost => "key-config host",
            Party::Issuer => "issuer",
            Party::Ledger => "ledger",
            Party::Gateway => "gateway",
        })
    }
}

/// Everything the SDK can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration could not be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The chat file could not be used.
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// A party did not answer (connection refused, timeout).
    #[error("cannot reach the {party} at {url}: {detail}")]
    Unreachable {
        /// Who.
        party: Party,
        /// Where.
        url: String,
        /// The transport error (no content).
        detail: String,
    },
    /// A party answered with something unusable.
    #[error("the {party} answered unexpectedly: {detail}")]
    Protocol {
        /// Who.
        party: Party,
        /// What was wrong.
        detail: String,
    },
    /// A verification check failed: the node (or the key config) is not trusted, and no
    /// request content was sent.
    #[error("verification failed at the {} check: {detail}", check.title())]
    Check {
        /// Which check.
        check: Check,
        /// Why (a typed cause rendered; never content).
        detail: String,
    },
    /// No anonymous token could be obtained (account refused or over its rate limit).
    #[error("no tokens available: {detail}")]
    NoTokens {
        /// The issuer's reason.
        detail: String,
    },
    /// The token wallet is empty. Tokens are never fetched while a session is being set up
    /// (issuance right before a request would let the issuer and the gateway link the
    /// request to the account by time), so nothing was sent.
    #[error(
        "no tokens in the wallet {}{}: nothing was sent (tokens are fetched ahead of need, \
         never while a request waits)",
        wallet.display(),
        if *refill_running { "; a background refill is due" } else { "" }
    )]
    WalletEmpty {
        /// The wallet file.
        wallet: PathBuf,
        /// Whether a background refiller runs (a refill will come by itself).
        refill_running: bool,
    },
    /// The gateway has no node to route to.
    #[error("no node is available behind the gateway")]
    NoNode,
    /// The node failed the request; it reports only a kind, never text.
    #[error("the node refused the request: {kind}")]
    Node {
        /// `bad request`, `too large`, `engine failure`, `unavailable`.
        kind: &'static str,
    },
    /// The session was lost again right after re-attesting.
    #[error("the session was lost twice in a row (node went away after re-attestation)")]
    SessionLost,
    /// The client's state file (last-seen checkpoint, tokens) could not be read or written.
    #[error("cannot use state file {path}: {detail}")]
    State {
        /// The file.
        path: PathBuf,
        /// The I/O or format error.
        detail: String,
    },
    /// A request argument was rejected before sending.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// AI features are off: the person has not turned them on, or turned them off.
    /// Nothing was sent.
    #[error("AI features are off{}: nothing was sent", if *withdrawn { " (you turned them off)" } else { " until you turn them on" })]
    ConsentRequired {
        /// Whether the person turned them off (rather than never being asked).
        withdrawn: bool,
    },
    /// The node's processing receipt is missing or does not check out: the answer cannot
    /// be attributed to the attested release, and is not shown as privately processed.
    #[error("receipt rejected: {0}")]
    Receipt(#[from] crate::receipt::ReceiptError),
    /// The chat may not be used for AI features. Nothing was sent.
    #[error("this chat is protected: {0}; nothing was sent")]
    ChatProtected(crate::protect::Protection),
}

impl Error {
    /// What the person can do about it, in one sentence.
    pub fn hint(&self) -> &'static str {
        match self {
            Error::Config(_) => "check the path and contents of client.toml (see docs/sdk.md)",
            Error::Chat(_) => {
                "export the chat again from WhatsApp (without media) or give a JSON message list"
            }
            Error::Unreachable { .. } => {
                "is the system running? start it with `confide up --dir DIR`"
            }
            Error::Protocol { .. } => "the party may be a different version; check its logs",
            Error::Check {
                check: Check::HardwareRoot,
                ..
            } => {
                "the node's hardware is not trusted by your policy; do not send it data \
                 (for the simulated platform, the policy must pin its root explicitly)"
            }
            Error::Check {
                check: Check::Measurement | Check::LedgerEntry,
                ..
            } => "the node runs software that is not a published release; do not use it",
            Error::Check {
                check: Check::Checkpoint | Check::Witnesses,
                ..
            } => {
                "the ledger view is inconsistent or not witnessed; report it, and keep your \
                 checkpoint file as evidence"
            }
            Error::Check {
                check: Check::Freshness,
                ..
            } => "check this device's clock; otherwise the node's release or evidence expired",
            Error::Check {
                check: Check::KeyConfig,
                ..
            } => "the gateway's key is not logged in the ledger; it may be singling you out",
            Error::Check { .. } => "the node could not be verified; do not send it data",
            Error::NoTokens { .. } => {
                "wait for the rate-limit window to pass, or check the account credential"
            }
            Error::WalletEmpty { .. } => {
                "run `confide wallet refill --config <client.toml>` now, as its own step well \
                 before your next request (an app keeps `IssuerTokens::spawn_refiller` running)"
            }
            Error::NoNode => "no node is running; start one or wait for it to come back",
            Error::Node { .. } => "shorten the request or try again later",
            Error::SessionLost => "try again in a moment",
            Error::State { .. } => "check that the state file is writable and not corrupted",
            Error::InvalidRequest(_) => "check the command's arguments",
            Error::Receipt(_) => {
                "do not rely on this answer; report the node and keep the receipt file as evidence"
            }
            Error::ConsentRequired { .. } => {
                "turn AI features on with `confide consent on --config <client.toml>` if you \
                 want to use them"
            }
            Error::ChatProtected(crate::protect::Protection::Listed) => {
                "`confide chats unprotect --chat FILE` allows it again"
            }
            Error::ChatProtected(_) => {
                "only the chat's members can change its Advanced Chat Privacy setting"
            }
        }
    }
}
