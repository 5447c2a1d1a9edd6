//! A bounded cache of recently seen encapsulated keys (`enc`), the replay defence of
//! RFC 9458 §6.5: an Encapsulated Request captured by a relay or on the network and
//! sent again is refused while its `enc` is remembered. Each fresh request uses a fresh
//! ephemeral key, so a repeated `enc` is always a replay. The window is bounded in time
//! (and the inner `Date` check of §6.5.1 refuses requests older than the window) and
//! in entries, so memory stays bounded under load.
//!
//! One cache per gateway process is not enough with several replicas behind one name:
//! a request captured on its way to one replica could be replayed to another. With a
//! shared Redis ([`ReplayCache::with_shared`]), every replica marks each `enc` there
//! (`SET NX PX <window>`, atomic across replicas), and a replay is refused whichever
//! replica saw the original. A Redis that does not answer refuses the request (fail
//! closed).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use confide_token_store::RedisShared;

/// The shared replay store did not answer: the request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replay store unavailable")]
pub struct ReplayUnavailable;

/// The remembered keys, and the same keys in arrival order with their arrival time.
type Seen = (HashSet<[u8; 32]>, VecDeque<([u8; 32], u64)>);

/// See the module docs.
#[derive(Debug)]
pub struct ReplayCache {
    inner: Mutex<Seen>,
    window: u64,
    capacity: usize,
    shared: Option<RedisShared>,
}

impl ReplayCache {
    /// A cache remembering entries for `window` seconds, at most `capacity` of them.
    pub fn new(window: u64, capacity: usize) -> Self {
        Self {
            inner: Mutex::new((HashSet::new(), VecDeque::new())),
            window,
            capacity: capacity.max(1),
            shared: None,
        }
    }

    /// Keep the seen keys in a Redis shared by all gateway replicas instead of in
    /// this process (connect with prefix `confide:ohttp-enc:`).
    pub fn with_shared(mut self, shared: RedisShared) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Whether seen keys are shared through Redis.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Record `enc` seen at `now`, in the shared store when there is one: `Ok(false)`
    /// for a replay, an error when the shared store did not answer.
    pub async fn check(&self, enc: [u8; 32], now: u64) -> Result<bool, ReplayUnavailable> {
        match &self.shared {
            None => Ok(self.check_and_insert(enc, now)),
            Some(r) => r
                // The key's life is the window, counted by Redis from now: a relative
                // expiry, so Redis's clock never decides how long a key is remembered.
                .mark_once(&hex::encode(enc), Duration::from_secs(self.window.max(1)))
                .await
                .map_err(|e| {
                    tracing::warn!(backend = e.backend, "replay store failed");
                    ReplayUnavailable
                }),
        }
    }

    /// Record `enc` seen at `now` in this process's memory; `false` if it was already
    /// there (a replay). A poisoned lock fails closed (reports a replay).
    pub fn check_and_insert(&self, enc: [u8; 32], now: u64) -> bool {
        let Ok(mut g) = self.inner.lock() else {
            return false;
        };
        let (set, order) = &mut *g;
        while let Some((old, t)) = order.front() {
            if t.saturating_add(self.window) <= now || order.len() >= self.capacity {
                set.remove(old);
                order.pop_front();
            } else {
                break;
            }
        }
        if !set.insert(enc) {
            return false;
        }
        order.push_back((enc, now));
        true
    }

    /// The window in seconds.
    pub fn window(&self) -> u64 {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_refused_within_the_window_only() {
        let c = ReplayCache::new(60, 10);
        assert!(c.check_and_insert([1; 32], 100));
        assert!(!c.check_and_insert([1; 32], 110));
        assert!(c.check_and_insert([2; 32], 110));
        assert!(c.check_and_insert([1; 32], 161));
        let small = ReplayCache::new(60, 2);
        for i in 0..5u8 {
            assert!(small.check_and_insert([i; 32], 1));
        }
        assert!(small.inner.lock().map(|g| g.1.len()).unwrap_or(0) <= 2);
    }
}
