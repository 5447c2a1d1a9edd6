//! A bounded cache of recently seen encapsulated keys (`enc`), the replay defence of
//! RFC 9458 §6.5: an Encapsulated Request captured by a relay or on the network and
//! sent again is refused while its `enc` is remembered. Each fresh request uses a fresh
//! ephemeral key, so a repeated `enc` is always a replay. The window is bounded in time
//! (and the inner `Date` check of §6.5.1 refuses requests older than the window) and
//! in entries, so memory stays bounded under load.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// The remembered keys, and the same keys in arrival order with their arrival time.
type Seen = (HashSet<[u8; 32]>, VecDeque<([u8; 32], u64)>);

/// See the module docs.
#[derive(Debug)]
pub struct ReplayCache {
    inner: Mutex<Seen>,
    window: u64,
    capacity: usize,
}

impl ReplayCache {
    /// A cache remembering entries for `window` seconds, at most `capacity` of them.
    pub fn new(window: u64, capacity: usize) -> Self {
        Self {
            inner: Mutex::new((HashSet::new(), VecDeque::new())),
            window,
            capacity: capacity.max(1),
        }
    }

    /// Record `enc` seen at `now`; `false` if it was already there (a replay). A
    /// poisoned lock fails closed (reports a replay).
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
