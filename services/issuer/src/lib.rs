//! The Privacy Pass issuer (RFC 9578): the issuer directory (§4), issuance for token types
//! 0x0001 and 0x0002 (§5, §6), account authentication, per-account rate limits and key
//! rotation.
//!
//! State lives in one directory (`--dir`):
//!
//! - `keys.json`: secret keys and their validity ([`confide_tokens::IssuerKeySet`]).
//! - `redemption-keys.json`: what gateways need to redeem (see docs/tokens.md).
//! - `accounts.json`: the embedded account store ([`accounts::FileAccountStore`]).
//! - `ratelimit.redb`: issuance counts per account and window ([`ratelimit::RateLimiter`]).
//!
//! Logging: only the kind of outcome and the token type are logged. Never a credential,
//! an account id, a token request or response, or a key.

pub mod accounts;
pub mod ratelimit;
pub mod server;
pub mod state;

pub use accounts::{Account, AccountStore, FileAccountStore};
pub use ratelimit::RateLimiter;
pub use server::{IssuerConfig, IssuerMetrics, router};
pub use state::IssuerDir;

/// Issuer failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file in the issuer directory could not be read or written.
    #[error("issuer directory file {file}: {reason}")]
    Io {
        /// Which file.
        file: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The issuer directory already holds keys (init refuses to overwrite them).
    #[error("issuer directory already initialised")]
    AlreadyInitialised,
    /// The accounts file is malformed.
    #[error("accounts file rejected: {0}")]
    Accounts(&'static str),
    /// An account with this id already exists.
    #[error("account already exists")]
    AccountExists,
    /// The rate-limit database failed.
    #[error("rate-limit store: {0}")]
    RateLimit(String),
    /// A token protocol error.
    #[error(transparent)]
    Tokens(#[from] confide_tokens::Error),
}

/// Current Unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
