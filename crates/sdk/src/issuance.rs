//! The [`TokenSource`] the [`crate::Client`] spends from: a persisted
//! [`TokenWallet`] refilled by [`TokenClient`] (both in [`crate::tokens`]) from the
//! configured issuer, only under the key ids that `client.toml` pins.
//!
//! One token is spent per inner request (RFC 9577; `docs/sessions.md`), so opening a
//! session and sending one request cost two.
//!
//! # Issuance is never linked to a request by time
//!
//! The issuer knows which account fetched tokens, and when; the gateway knows when a
//! token was spent. If the client fetched tokens when its wallet ran dry and spent one
//! milliseconds later, the two timestamps would name the account behind the session
//! (issue 13, finding 2). So:
//!
//! - spending ([`TokenSource::authorization`], called while a session is set up) never
//!   fetches. An empty wallet is [`Error::WalletEmpty`], at once or after waiting (bounded
//!   by [`WalletPolicy::wait_for_refill`]) for a background refill plus a further random
//!   delay;
//! - refills happen ahead of need: [`IssuerTokens::spawn_refiller`] runs in the
//!   background of a long-lived app and refills once fewer than
//!   [`WalletPolicy::low_water`] tokens remain, after a random delay uniform in
//!   `[refill_delay_min, refill_delay_max]`, so when it fires says nothing about when the
//!   next session starts; a one-shot tool (`confide wallet refill`, `confide up` at start)
//!   calls [`IssuerTokens::refill`] as a separate step, well before any session.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use confide_tokens::keys::ChallengeConfig;
use rand_core::RngCore;

use crate::client::TokenSource;
use crate::config::{ClientConfig, WalletPolicy};
use crate::error::{Check, Error, Party};
use crate::tokens::{IssuerPin, TokenClient, TokenClientError, TokenWallet};

/// How often an idle refiller looks at the wallet file even without a local spend
/// (another process sharing the file may have spent from it).
const IDLE_LOOK: Duration = Duration::from_secs(60);

/// Wallet plus issuer client.
#[derive(Debug)]
pub struct IssuerTokens {
    client: TokenClient,
    wallet: TokenWallet,
    issuer: String,
    policy: WalletPolicy,
    /// One fetch at a time per process.
    refill: tokio::sync::Mutex<()>,
    /// A spend happened: the refiller looks at the low-water mark.
    spent: tokio::sync::Notify,
    /// Bumped after each background refill, for requests waiting on an empty wallet.
    refilled: tokio::sync::watch::Sender<u64>,
    /// Whether a background refiller runs (only then is waiting for one sensible).
    refiller: AtomicBool,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A delay uniform in `[min, max]` (millisecond steps), from the OS's random source: a
/// predictable delay would let the issuer and the gateway line the events up again.
pub fn random_delay(min: Duration, max: Duration) -> Duration {
    let lo = u64::try_from(min.as_millis()).unwrap_or(u64::MAX);
    let hi = u64::try_from(max.as_millis()).unwrap_or(u64::MAX).max(lo);
    let span = hi - lo;
    let pick = if span == u64::MAX {
        rand_core::OsRng.next_u64()
    } else {
        // Modulo bias is below 2^-40 for any span a person would configure.
        rand_core::OsRng.next_u64() % (span + 1)
    };
    Duration::from_millis(lo + pick)
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

/// The background refiller of [`IssuerTokens::spawn_refiller`]; stopped when dropped.
#[derive(Debug)]
pub struct Refiller {
    task: tokio::task::JoinHandle<()>,
    tokens: Arc<IssuerTokens>,
}

impl Drop for Refiller {
    fn drop(&mut self) {
        self.task.abort();
        self.tokens.refiller.store(false, Ordering::SeqCst);
    }
}

impl IssuerTokens {
    /// Tokens for `config`'s account, pinned issuer keys and gateway challenge, refilled
    /// as `config.wallet` says. Contacts nobody.
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
        Ok(IssuerTokens::from_parts(client, wallet, config.wallet))
    }

    /// Tokens from `client` into `wallet`, refilled as `policy` says (an app that builds
    /// its own [`TokenClient`]; [`IssuerTokens::new`] builds one from `client.toml`).
    pub fn from_parts(client: TokenClient, wallet: TokenWallet, policy: WalletPolicy) -> Self {
        IssuerTokens {
            issuer: client.issuer_url().to_owned(),
            client,
            wallet,
            policy,
            refill: tokio::sync::Mutex::new(()),
            spent: tokio::sync::Notify::new(),
            refilled: tokio::sync::watch::channel(0).0,
            refiller: AtomicBool::new(false),
        }
    }

    /// Unspent tokens held.
    pub fn available(&self) -> usize {
        self.wallet.len()
    }

    /// The refill settings in use.
    pub fn policy(&self) -> &WalletPolicy {
        &self.policy
    }

    /// Whether fewer than the low-water mark remain (a refill is due).
    pub fn is_low(&self) -> bool {
        self.available() < self.policy.low_water
    }

    /// Fetch `n` tokens now (an explicit, separate step: `confide wallet refill`,
    /// `confide up` at start; never called while a session is set up). Returns how many
    /// arrived (fewer if the account's limit was reached after at least one).
    pub async fn refill(&self, n: usize) -> Result<usize, Error> {
        let _guard = self.refill.lock().await;
        self.client
            .fetch_batch(n, &self.wallet, unix_now())
            .await
            .map_err(|e| token_error(e, &self.issuer))
    }

    /// Start the background refiller (needs a Tokio runtime). Whenever fewer than
    /// `low_water` tokens remain it waits a random delay uniform in the policy's window,
    /// then fetches `batch` tokens if the wallet is still low. A failed refill is logged
    /// (its kind only) and tried again after another random delay. It stops when the
    /// returned handle is dropped.
    pub fn spawn_refiller(self: &Arc<Self>) -> Refiller {
        self.refiller.store(true, Ordering::SeqCst);
        let me = Arc::clone(self);
        let task = tokio::spawn(async move {
            loop {
                while !me.is_low() {
                    tokio::select! {
                        () = me.spent.notified() => {}
                        () = tokio::time::sleep(IDLE_LOOK) => {}
                    }
                }
                let p = me.policy;
                tokio::time::sleep(random_delay(p.refill_delay_min, p.refill_delay_max)).await;
                if !me.is_low() {
                    continue;
                }
                match me.refill(p.batch).await {
                    Ok(n) => {
                        tracing::debug!(tokens = n, "wallet refilled in the background");
                        me.refilled.send_modify(|g| *g = g.wrapping_add(1));
                    }
                    Err(e) => {
                        // The error names a party or a check, never a token or credential.
                        tracing::info!(error = %e, "background wallet refill failed");
                    }
                }
            }
        });
        Refiller {
            task,
            tokens: Arc::clone(self),
        }
    }

    fn spend(&self) -> Result<Option<String>, Error> {
        let t = self
            .wallet
            .spend()
            .map_err(|e| token_error(e, &self.issuer))?;
        if t.is_some() && self.is_low() {
            self.spent.notify_one();
        }
        Ok(t.map(|t| t.to_string()))
    }

    fn empty(&self) -> Error {
        Error::WalletEmpty {
            wallet: self.wallet_path(),
            refill_running: self.refiller.load(Ordering::SeqCst),
        }
    }

    fn wallet_path(&self) -> std::path::PathBuf {
        self.wallet
            .path()
            .map(ToOwned::to_owned)
            .unwrap_or_default()
    }

    /// One token for a request. Never fetches: see the module documentation.
    async fn take(&self) -> Result<String, Error> {
        // Subscribed before looking, so a refill landing in between is not missed.
        let mut refilled = self.refilled.subscribe();
        if let Some(t) = self.spend()? {
            return Ok(t);
        }
        self.spent.notify_one();
        let wait = self.policy.wait_for_refill;
        if wait.is_zero() || !self.refiller.load(Ordering::SeqCst) {
            return Err(self.empty());
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if !matches!(
                tokio::time::timeout_at(deadline, refilled.changed()).await,
                Ok(Ok(()))
            ) {
                return Err(self.empty());
            }
            // The refill just landed: a session now would follow the issuance by
            // milliseconds. Wait a further random delay (within the bound) first.
            let p = self.policy;
            let pause = random_delay(p.refill_delay_min, p.refill_delay_max);
            if tokio::time::Instant::now() + pause > deadline {
                return Err(self.empty());
            }
            tokio::time::sleep(pause).await;
            if let Some(t) = self.spend()? {
                return Ok(t);
            }
        }
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
    fn random_delays_stay_in_their_window_and_vary() {
        let (lo, hi) = (Duration::from_millis(30), Duration::from_millis(90));
        let picks: Vec<Duration> = (0..200).map(|_| random_delay(lo, hi)).collect();
        assert!(picks.iter().all(|d| *d >= lo && *d <= hi));
        let distinct: std::collections::BTreeSet<_> = picks.iter().collect();
        assert!(distinct.len() > 10, "a random delay, not a fixed one");
        assert_eq!(random_delay(hi, hi), hi);
        assert_eq!(random_delay(hi, lo), hi, "max below min: min");
    }

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
