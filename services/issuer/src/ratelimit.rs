//! Per-account issuance limits over fixed windows, persisted so that a restart does not
//! hand every account a fresh allowance: in a redb file for one issuer, or in Redis when
//! several issuer replicas must share one count (otherwise each replica would grant the
//! whole limit, and N replicas N times it).
//!
//! Windows are aligned to multiples of the window length since the Unix epoch, so every
//! replica of the count agrees on where a window starts. Each issuance first reserves
//! one unit atomically (one fsync'd write transaction, or one Lua script on Redis), then
//! signs: concurrent requests from one account, on any replica, can never exceed the
//! limit. Redis counters expire with their window; the time to live is computed from
//! the issuer's clock, never an absolute time read by Redis's clock.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use confide_token_store::RedisShared;

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

/// Where the counts live.
#[derive(Clone)]
enum Backend {
    Redb(Arc<redb::Database>),
    Redis(RedisShared),
}

/// Persistent per-account counters.
#[derive(Clone)]
pub struct RateLimiter {
    backend: Backend,
    window_secs: u64,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field(
                "backend",
                &match self.backend {
                    Backend::Redb(_) => "redb",
                    Backend::Redis(_) => "redis",
                },
            )
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
            backend: Backend::Redb(Arc::new(db)),
            window_secs,
        })
    }

    /// Counters shared by every issuer replica connected to the Redis at `url`
    /// (keys `confide:issuance:<window start>:<account>`).
    pub async fn connect_redis(url: &str, window_secs: u64) -> Result<Self, Error> {
        if window_secs == 0 {
            return Err(Error::RateLimit("window must be positive".into()));
        }
        let shared = RedisShared::connect(url, "confide:issuance:")
            .await
            .map_err(|e| Error::RateLimit(e.to_string()))?;
        Ok(Self {
            backend: Backend::Redis(shared),
            window_secs,
        })
    }

    /// Reserve one issuance for `account` at `now` under `limit`.
    pub async fn reserve(&self, account: &str, limit: u32, now: u64) -> Result<Reservation, Error> {
        let window = now - now % self.window_secs;
        let retry_after = window + self.window_secs - now;
        match &self.backend {
            Backend::Redb(db) => {
                let db = Arc::clone(db);
                let account = account.to_owned();
                let window_secs = self.window_secs;
                // redb blocks on fsync; keep it off the async workers.
                tokio::task::spawn_blocking(move || {
                    reserve_redb(&db, window_secs, &account, limit, now)
                })
                .await
                .map_err(|e| Error::RateLimit(e.to_string()))?
            }
            Backend::Redis(r) => {
                // The counter lives until its window ends, by our clock (plus a second,
                // so a replica whose clock is slightly behind still finds it).
                let ttl = Duration::from_secs(retry_after.saturating_add(1));
                match r
                    .reserve(&format!("{window}:{account}"), limit, ttl)
                    .await
                    .map_err(|e| Error::RateLimit(e.to_string()))?
                {
                    Some(remaining) => Ok(Reservation::Granted { remaining }),
                    None => Ok(Reservation::Limited { retry_after }),
                }
            }
        }
    }

    /// Issuances counted for `account` in the window containing `now`.
    pub async fn count(&self, account: &str, now: u64) -> Result<u32, Error> {
        let window = now - now % self.window_secs;
        match &self.backend {
            Backend::Redb(db) => count_redb(db, window, account),
            Backend::Redis(r) => r
                .count(&format!("{window}:{account}"))
                .await
                .map_err(|e| Error::RateLimit(e.to_string())),
        }
    }
}

fn reserve_redb(
    db: &redb::Database,
    window_secs: u64,
    account: &str,
    limit: u32,
    now: u64,
) -> Result<Reservation, Error> {
    let e = |e: redb::Error| Error::RateLimit(e.to_string());
    let window = now - now % window_secs;
    let tx = db.begin_write().map_err(|x| e(x.into()))?;
    let result = {
        let mut t = tx.open_table(COUNTS).map_err(|x| e(x.into()))?;
        let count = match t.get(account).map_err(|x| e(x.into()))?.map(|g| g.value()) {
            Some((start, count)) if start == window => count,
            _ => 0,
        };
        if count >= limit {
            Reservation::Limited {
                retry_after: window + window_secs - now,
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

fn count_redb(db: &redb::Database, window: u64, account: &str) -> Result<u32, Error> {
    let e = |e: redb::Error| Error::RateLimit(e.to_string());
    let tx = db.begin_read().map_err(|x| e(x.into()))?;
    let t = tx.open_table(COUNTS).map_err(|x| e(x.into()))?;
    Ok(
        match t.get(account).map_err(|x| e(x.into()))?.map(|g| g.value()) {
            Some((start, count)) if start == window => count,
            _ => 0,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limit_per_window_rolls_over_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rl.redb");
        let t: u64 = 1_800_000_000; // a multiple of 100: the start of a 100 s window
        {
            let rl = RateLimiter::open(&path, 100).unwrap();
            assert_eq!(
                rl.reserve("a", 2, t).await.unwrap(),
                Reservation::Granted { remaining: 1 }
            );
            assert_eq!(
                rl.reserve("a", 2, t + 1).await.unwrap(),
                Reservation::Granted { remaining: 0 }
            );
            assert_eq!(
                rl.reserve("a", 2, t + 10).await.unwrap(),
                Reservation::Limited { retry_after: 90 }
            );
            // Another account has its own count.
            assert_eq!(
                rl.reserve("b", 2, t + 10).await.unwrap(),
                Reservation::Granted { remaining: 1 }
            );
        }
        // Reopened: the count is still there; the next window starts afresh.
        let rl = RateLimiter::open(&path, 100).unwrap();
        assert_eq!(rl.count("a", t + 50).await.unwrap(), 2);
        assert!(matches!(
            rl.reserve("a", 2, t + 99).await.unwrap(),
            Reservation::Limited { .. }
        ));
        assert_eq!(
            rl.reserve("a", 2, t + 100).await.unwrap(),
            Reservation::Granted { remaining: 1 }
        );
        assert!(RateLimiter::open(&dir.path().join("x.redb"), 0).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_issuers_sharing_redis_see_one_limit() {
        let server = confide_token_store::testing::RedisServer::start().unwrap();
        // Two replicas, each with its own connection, as two issuer processes have.
        let a = RateLimiter::connect_redis(&server.url(), 100)
            .await
            .unwrap();
        let b = RateLimiter::connect_redis(&server.url(), 100)
            .await
            .unwrap();
        let t: u64 = 1_800_000_000;
        // Twelve concurrent requests against a limit of 5, spread over both replicas:
        // exactly five are granted in all.
        let mut tasks = Vec::new();
        for i in 0..12 {
            let rl = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(
                async move { rl.reserve("acct", 5, t + 1).await },
            ));
        }
        let mut granted = 0;
        for task in tasks {
            match task.await.unwrap().unwrap() {
                Reservation::Granted { .. } => granted += 1,
                Reservation::Limited { retry_after } => assert_eq!(retry_after, 99),
            }
        }
        assert_eq!(granted, 5, "one limit across replicas");
        assert_eq!(a.count("acct", t + 2).await.unwrap(), 5);
        assert_eq!(b.count("acct", t + 2).await.unwrap(), 5);
        // Another account, another count; the next window starts afresh on both.
        assert_eq!(
            b.reserve("other", 5, t + 3).await.unwrap(),
            Reservation::Granted { remaining: 4 }
        );
        assert_eq!(
            a.reserve("acct", 5, t + 100).await.unwrap(),
            Reservation::Granted { remaining: 4 }
        );
        assert!(matches!(
            b.reserve("acct", 5, t + 99).await.unwrap(),
            Reservation::Limited { .. }
        ));
        assert!(RateLimiter::connect_redis(&server.url(), 0).await.is_err());
    }

    #[tokio::test]
    async fn redis_unreachable_refuses() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("redis://127.0.0.1:{port}/");
        assert!(RateLimiter::connect_redis(&url, 100).await.is_err());
    }
}
