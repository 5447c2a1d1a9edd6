//! Per-account issuance limits over fixed windows, persisted in a redb file so that a
//! restart does not hand every account a fresh allowance.
//!
//! Windows are aligned to multiples of the window length since the Unix epoch, so every
//! replica of the count agrees on where a window starts. Each issuance first reserves
//! one unit atomically (one write transaction, fsync'd), then signs: concurrent requests
//! from one account can never exceed the limit.

use std::path::Path;
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::Error;

/// account id -> (window start, count).
const COUNTS: TableDefinition<&str, (u64, u32)> = TableDefinition::new("issuance_counts");

/// The outcome of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Within the limit; `remaining` more are allowed in this window.
    Granted {
        /// Issuances left in the window after this one.
        remaining: u32,
    },
    /// Over the limit until `retry_after` seconds from now.
    Limited {
        /// Seconds until the window ends.
        retry_after: u64,
    },
}

/// Persistent per-account counters.
#[derive(Clone)]
pub struct RateLimiter {
    db: Arc<redb::Database>,
    window_secs: u64,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("window_secs", &self.window_secs)
            .finish()
    }
}

impl RateLimiter {
    /// Open (or create) the counter database.
    pub fn open(path: &Path, window_secs: u64) -> Result<Self, Error> {
        if window_secs == 0 {
            return Err(Error::RateLimit("window must be positive".into()));
        }
        let e = |e: redb::Error| Error::RateLimit(e.to_string());
        let db = redb::Database::create(path).map_err(|x| e(x.into()))?;
        let tx = db.begin_write().map_err(|x| e(x.into()))?;
        tx.open_table(COUNTS).map_err(|x| e(x.into()))?;
        tx.commit().map_err(|x| e(x.into()))?;
        Ok(Self {
            db: Arc::new(db),
            window_secs,
        })
    }

    /// Reserve one issuance for `account` at `now` under `limit`.
    pub fn reserve(&self, account: &str, limit: u32, now: u64) -> Result<Reservation, Error> {
        let e = |e: redb::Error| Error::RateLimit(e.to_string());
        let window = now - now % self.window_secs;
        let tx = self.db.begin_write().map_err(|x| e(x.into()))?;
        let result = {
            let mut t = tx.open_table(COUNTS).map_err(|x| e(x.into()))?;
            let count = match t.get(account).map_err(|x| e(x.into()))?.map(|g| g.value()) {
                Some((start, count)) if start == window => count,
                _ => 0,
            };
            if count >= limit {
                Reservation::Limited {
                    retry_after: window + self.window_secs - now,
                }
            } else {
                t.insert(account, (window, count + 1))
                    .map_err(|x| e(x.into()))?;
                Reservation::Granted {
                    remaining: limit - count - 1,
                }
            }
        };
        match result {
            Reservation::Granted { .. } => tx.commit().map_err(|x| e(x.into()))?,
            Reservation::Limited { .. } => tx.abort().map_err(|x| e(x.into()))?,
        }
        Ok(result)
    }

    /// Issuances counted for `account` in the window containing `now`.
    pub fn count(&self, account: &str, now: u64) -> Result<u32, Error> {
        let e = |e: redb::Error| Error::RateLimit(e.to_string());
        let window = now - now % self.window_secs;
        let tx = self.db.begin_read().map_err(|x| e(x.into()))?;
        let t = tx.open_table(COUNTS).map_err(|x| e(x.into()))?;
        Ok(
            match t.get(account).map_err(|x| e(x.into()))?.map(|g| g.value()) {
                Some((start, count)) if start == window => count,
                _ => 0,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_per_window_rolls_over_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rl.redb");
        let t: u64 = 1_800_000_000; // a multiple of 100: the start of a 100 s window
        {
            let rl = RateLimiter::open(&path, 100).unwrap();
            assert_eq!(
                rl.reserve("a", 2, t).unwrap(),
                Reservation::Granted { remaining: 1 }
            );
            assert_eq!(
                rl.reserve("a", 2, t + 1).unwrap(),
                Reservation::Granted { remaining: 0 }
            );
            assert_eq!(
                rl.reserve("a", 2, t + 10).unwrap(),
                Reservation::Limited { retry_after: 90 }
            );
            // Another account has its own count.
            assert_eq!(
                rl.reserve("b", 2, t + 10).unwrap(),
                Reservation::Granted { remaining: 1 }
            );
        }
        // Reopened: the count is still there; the next window starts afresh.
        let rl = RateLimiter::open(&path, 100).unwrap();
        assert_eq!(rl.count("a", t + 50).unwrap(), 2);
        assert!(matches!(
            rl.reserve("a", 2, t + 99).unwrap(),
            Reservation::Limited { .. }
        ));
        assert_eq!(
            rl.reserve("a", 2, t + 100).unwrap(),
            Reservation::Granted { remaining: 1 }
        );
        assert!(RateLimiter::open(&dir.path().join("x.redb"), 0).is_err());
    }
}
