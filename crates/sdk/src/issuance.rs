//! The [`TokenSource`] the [`crate::Client`] spends from: a persisted
//! [`TokenWallet`] refilled by [`TokenClient`] (both in [`crate::tokens`]) from the
//! configured issuer, a few tokens at a time (prefetch), only under the key ids that
//! `client.toml` pins.
//!
//! One token is spent per inner request (RFC 9577; `docs/sessions.md`), so opening a
//! session and sending one request cost two.

use std::future::Future;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use confide_tokens::keys::ChallengeConfig;

use crate::client::TokenSource;
use crate::config::ClientConfig;
use crate::error::{Check, Error, Party};
use crate::tokens::{IssuerPin, TokenClient, TokenClientError, TokenWallet};

/// Tokens fetched per trip to the issuer.
pub const PREFETCH: usize = 4;

/// Wallet plus issuer client.
#[derive(Debug)]
pub struct IssuerTokens {
    client: TokenClient,
    wallet: TokenWallet,
    issuer: String,
    refill: tokio::sync::Mutex<()>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A token-client failure as the SDK's error.
pub fn token_error(e: TokenClientError, issuer: &str) -> Error {
    match e {
        TokenClientError::Unreachable(detail) => Error::Unreachable {
            party: Party::Issuer,
            url: issuer.to_owned(),
            detail,
        },
        TokenClientError::Credential => Error::NoTokens {
            detail: "the issuer did not accept the account credential".into(),
        },
        TokenClientError::RateLimited => Error::NoTokens {
            detail: "the account's issuance limit is reached for now".into(),
        },
        TokenClientError::KeyNotPinned(id) => Error::Check {
            check: Check::Token,
            detail: format!(
                "the issuer's key {id} is not pinned in client.toml (an issuer key of your own \
                 would identify you)"
            ),
        },
        TokenClientError::Wallet { path, detail } => Error::State { path, detail },
        other => Error::Protocol {
            party: Party::Issuer,
            detail: other.to_string(),
        },
    }
}

impl IssuerTokens {
    /// Tokens for `config`'s account, pinned issuer keys and gateway challenge.
    pub fn new(config: &ClientConfig) -> Result<IssuerTokens, Error> {
        let t = &config.tokens;
        let issuer = config.endpoints.issuer.clone();
        let pin = IssuerPin {
            issuer_url: issuer.clone(),
            challenge: ChallengeConfig {
                issuer_name: t.issuer_name.clone(),
                origin_info: t.origin_info.clone(),
            },
            token_type: t.token_type,
            key_ids: t.key_ids.clone(),
        };
        let client = TokenClient::new(pin, config.credential.expose())
            .map_err(|e| token_error(e, &issuer))?;
        let wallet = TokenWallet::open(&config.token_store).map_err(|e| token_error(e, &issuer))?;
        Ok(IssuerTokens {
            client,
            wallet,
            issuer,
            refill: tokio::sync::Mutex::new(()),
        })
    }

    /// Unspent tokens held.
    pub fn available(&self) -> usize {
        self.wallet.len()
    }

    /// Make sure at least one token is held, fetching [`PREFETCH`] if none is.
    pub async fn prefetch(&self) -> Result<(), Error> {
        let _guard = self.refill.lock().await;
        if self.wallet.is_empty() {
            self.client
                .fetch_batch(PREFETCH, &self.wallet, unix_now())
                .await
                .map_err(|e| token_error(e, &self.issuer))?;
        }
        Ok(())
    }

    async fn take(&self) -> Result<String, Error> {
        for _ in 0..2 {
            if let Some(t) = self
                .wallet
                .spend()
                .map_err(|e| token_error(e, &self.issuer))?
            {
                return Ok(t.to_string());
            }
            self.prefetch().await?;
        }
        Err(Error::NoTokens {
            detail: "the issuer returned no token".into(),
        })
    }
}

impl TokenSource for IssuerTokens {
    fn authorization(&self) -> Pin<Box<dyn Future<Output = Result<String, Error>> + Send + '_>> {
        Box::pin(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_errors_say_what_to_do() {
        let e = token_error(TokenClientError::RateLimited, "http://i");
        assert!(matches!(e, Error::NoTokens { .. }));
        assert!(e.hint().contains("rate-limit"));
        let e = token_error(TokenClientError::KeyNotPinned("ab".into()), "http://i");
        assert!(matches!(
            e,
            Error::Check {
                check: Check::Token,
                ..
            }
        ));
        let e = token_error(TokenClientError::Unreachable("refused".into()), "http://i");
        assert!(matches!(
            e,
            Error::Unreachable {
                party: Party::Issuer,
                ..
            }
        ));
    }
}
