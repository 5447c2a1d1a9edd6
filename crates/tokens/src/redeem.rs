//! Redemption at the gateway (RFC 9577 §2.2 and RFC 9578 §5.4, §6.4) and the
//! double-spend store trait.
//!
//! [`Redeemer::redeem`] checks, in order: the credential parses as a `PrivateToken`
//! (RFC 9577 §2.2.2) and has an exact-length `Token`; the token type is one this gateway
//! holds keys for; the challenge digest is the fixed public challenge's; the key id
//! names a known key inside its validity window; the authenticator verifies; and only
//! then that the nonce has not been spent under this key. Each failure is its own
//! [`Error`] variant. Only a token that passed every check reaches the store, so a forged
//! token cannot burn a store slot.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use sha2::{Digest, Sha256};

use crate::keys::{RedemptionKeys, Verifier};
use crate::wire::{Token, TokenType};
use crate::{Error, KEY_ID_LEN, Result};

/// The identity of a spent token: SHA-256("confide-spent-v1" || token_type ||
/// token_key_id || nonce). Hashing keeps store keys fixed-size and lets one store serve
/// several keys without one key's nonces colliding with another's.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpentId([u8; 32]);

impl SpentId {
    fn of(token: &Token) -> Self {
        let mut h = Sha256::new();
        h.update(b"confide-spent-v1");
        h.update(token.token_type().code().to_be_bytes());
        h.update(token.token_key_id());
        h.update(token.nonce());
        Self(h.finalize().into())
    }
    /// The 32 bytes, for a backend's key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// Rebuild from stored bytes (backends that list their keys).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl std::fmt::Debug for SpentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpentId(..)")
    }
}

/// What the store found when asked to record a spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendOutcome {
    /// Not seen before; now recorded as spent.
    Fresh,
    /// Already recorded: a replay.
    AlreadySpent,
}

/// A store backend failure. The reason is the backend's own text about its state
/// (connection refused, disk full), never a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFailure {
    /// Which backend.
    pub backend: &'static str,
    /// What went wrong.
    pub reason: String,
}

impl std::fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.backend, self.reason)
    }
}

/// The future a [`SpentStore`] returns.
pub type StoreFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SpendOutcome, StoreFailure>> + Send + 'a>>;

/// A double-spend store shared by every gateway replica that redeems the same keys.
///
/// `spend` must be atomic: of any number of concurrent calls with the same id, across
/// all replicas, exactly one returns [`SpendOutcome::Fresh`]. Records may be dropped
/// once `expires_at` (Unix seconds, the key's expiry) has passed, because the
/// redeemer rejects the token as expired from then on.
pub trait SpentStore: Send + Sync {
    /// Atomically record `id` as spent until `expires_at`, reporting whether it was.
    fn spend(&self, id: SpentId, expires_at: u64, now: u64) -> StoreFuture<'_>;
    /// A short name for the backend, for metrics.
    fn backend(&self) -> &'static str;
}

/// An in-process store: correct for a single replica that never restarts; used by
/// tests and as the reference the persistent backends are compared with.
#[derive(Debug, Default)]
pub struct MemorySpentStore {
    spent: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    map: HashMap<SpentId, u64>,
    /// Purge expired records when the map reaches this size, then double it: amortised
    /// O(1) per spend instead of a full scan on every call.
    purge_at: usize,
}

impl MemorySpentStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    /// Records currently held.
    pub fn len(&self) -> usize {
        self.spent.lock().map(|m| m.map.len()).unwrap_or(0)
    }
    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SpentStore for MemorySpentStore {
    fn spend(&self, id: SpentId, expires_at: u64, now: u64) -> StoreFuture<'_> {
        let r = match self.spent.lock() {
            Ok(mut m) => {
                if m.map.len() >= m.purge_at.max(4096) {
                    m.map.retain(|_, exp| *exp > now);
                    m.purge_at = m.map.len().saturating_mul(2);
                }
                match m.map.get(&id) {
                    Some(exp) if *exp > now => Ok(SpendOutcome::AlreadySpent),
                    _ => {
                        m.map.insert(id, expires_at);
                        Ok(SpendOutcome::Fresh)
                    }
                }
            }
            Err(_) => Err(StoreFailure {
                backend: "memory",
                reason: "lock poisoned".into(),
            }),
        };
        Box::pin(std::future::ready(r))
    }
    fn backend(&self) -> &'static str {
        "memory"
    }
}

/// Proof that a token passed every check except the double-spend check. Only
/// [`Redeemer::verify`] makes one.
#[derive(Debug)]
pub struct VerifiedToken {
    token_type: TokenType,
    key_id: [u8; KEY_ID_LEN],
    spent_id: SpentId,
    expires_at: u64,
}

impl VerifiedToken {
    /// The token type.
    pub fn token_type(&self) -> TokenType {
        self.token_type
    }
    /// The issuer key the token was issued under.
    pub fn key_id(&self) -> &[u8; KEY_ID_LEN] {
        &self.key_id
    }
}

/// Proof that a token was valid and had not been spent; it is now spent. Only
/// [`Redeemer::redeem`] makes one. It carries nothing that links to issuance beyond the
/// key id, which every token from that key shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    token_type: TokenType,
    key_id: [u8; KEY_ID_LEN],
}

impl Redeemed {
    /// The token type.
    pub fn token_type(&self) -> TokenType {
        self.token_type
    }
    /// The issuer key id.
    pub fn key_id(&self) -> &[u8; KEY_ID_LEN] {
        &self.key_id
    }
}

/// The gateway's redeemer: keys, the fixed challenge, and a shared double-spend store.
pub struct Redeemer {
    // Behind a lock so that a rotation (a new redemption-keys.json) can be picked up
    // without rebuilding the redeemer or losing the store.
    keys: RwLock<Arc<RedemptionKeys>>,
    store: Arc<dyn SpentStore>,
}

impl std::fmt::Debug for Redeemer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redeemer")
            .field("keys", &self.keys())
            .field("store", &self.store.backend())
            .finish()
    }
}

impl Redeemer {
    /// A redeemer over `keys` recording spends in `store`.
    pub fn new(keys: RedemptionKeys, store: Arc<dyn SpentStore>) -> Self {
        Self {
            keys: RwLock::new(Arc::new(keys)),
            store,
        }
    }

    /// The keys currently in use.
    pub fn keys(&self) -> Arc<RedemptionKeys> {
        match self.keys.read() {
            Ok(k) => Arc::clone(&k),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replace the keys (after the issuer rotated). Spent records are kept.
    pub fn replace_keys(&self, keys: RedemptionKeys) {
        let keys = Arc::new(keys);
        match self.keys.write() {
            Ok(mut k) => *k = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
    }

    /// Every check but the double-spend check, on an `Authorization` header value.
    /// `now` is Unix seconds.
    pub fn verify(&self, authorization: &str, now: u64) -> Result<VerifiedToken> {
        let token = Token::from_authorization(authorization)?;
        self.verify_token(&token, now)
    }

    /// Every check but the double-spend check, on a decoded token.
    pub fn verify_token(&self, token: &Token, now: u64) -> Result<VerifiedToken> {
        let keys = self.keys();
        let ty = token.token_type();
        if !keys.keys.iter().any(|k| k.token_type == ty) {
            return Err(Error::WrongTokenType(ty.code()));
        }
        let expected = keys
            .digests
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, d)| d)
            .ok_or(Error::WrongTokenType(ty.code()))?;
        // The digest is public (it is of a public challenge): no need for constant time.
        if token.challenge_digest() != expected {
            return Err(Error::WrongChallenge);
        }
        let key = keys
            .keys
            .iter()
            .find(|k| k.token_type == ty && &k.key_id == token.token_key_id())
            .ok_or(Error::UnknownKeyId)?;
        if now < key.validity.not_before {
            return Err(Error::KeyNotYetValid);
        }
        if now >= key.validity.expires_at {
            return Err(Error::KeyExpired);
        }
        match &key.verifier {
            Verifier::Voprf(k) => k.verify(token)?,
            Verifier::BlindRsa(k) => k.verify(token)?,
        }
        Ok(VerifiedToken {
            token_type: ty,
            key_id: key.key_id,
            spent_id: SpentId::of(token),
            expires_at: key.validity.expires_at,
        })
    }

    /// Record a verified token as spent; [`Error::Replayed`] if it already was, and
    /// [`Error::Store`] (refuse: fail closed) if the store cannot answer.
    pub async fn spend(&self, verified: VerifiedToken, now: u64) -> Result<Redeemed> {
        match self
            .store
            .spend(verified.spent_id, verified.expires_at, now)
            .await
        {
            Ok(SpendOutcome::Fresh) => Ok(Redeemed {
                token_type: verified.token_type,
                key_id: verified.key_id,
            }),
            Ok(SpendOutcome::AlreadySpent) => Err(Error::Replayed),
            Err(e) => Err(Error::Store(e)),
        }
    }

    /// Verify the `Authorization` header value and spend the token: the gateway's one call.
    pub async fn redeem(&self, authorization: &str, now: u64) -> Result<Redeemed> {
        let verified = self.verify(authorization, now)?;
        self.spend(verified, now).await
    }
}
