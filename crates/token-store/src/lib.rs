//! Double-spend stores for Privacy Pass redemption (RFC 9577 §2.2 leaves replay
//! prevention to the origin; RFC 9576 §3.5 notes that a token must be spent only once).
//!
//! Both implement [`confide_tokens::SpentStore`]: an atomic "record this token id as
//! spent until the key's expiry, unless it already is".
//!
//! - [`RedbSpentStore`]: embedded and persistent (a `redb` file, pure Rust, fsync on every
//!   commit), the default for a single gateway. Concurrent spends are group-committed
//!   (one transaction and one fsync for all spends that arrived during the previous
//!   commit). A spend that returned `Fresh` survives a crash. One process holds the file
//!   at a time.
//! - [`RedisSpentStore`]: Redis `SET key 1 NX PX <ms until the key expires>`, for several
//!   gateway replicas sharing one store. `NX` makes the spend atomic across replicas; `PX`
//!   lets Redis drop the record when the key expires. The time to live is computed from
//!   the gateway's clock, never an absolute time read by the Redis server's clock.
//!
//! See docs/adr/0301-spent-token-stores.md.

pub mod testing;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use confide_tokens::redeem::StoreFuture;
use confide_tokens::{SpendOutcome, SpentId, SpentStore, StoreFailure};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// Failures opening or using a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The embedded database could not be opened or created.
    #[error("cannot open spent-token database: {0}")]
    Open(String),
    /// The Redis URL is not valid.
    #[error("invalid Redis URL")]
    RedisUrl,
    /// Redis could not be reached.
    #[error("cannot connect to Redis: {0}")]
    RedisConnect(String),
}

/// id (32 bytes) -> expires_at.
const SPENT: TableDefinition<&[u8], u64> = TableDefinition::new("spent");
/// (expires_at, id) -> (): lets expired records be found without a full scan.
const EXPIRY: TableDefinition<(u64, &[u8]), ()> = TableDefinition::new("spent_by_expiry");
/// Expired records removed per spend: bounded work per call, but faster than records
/// are added, so the database does not grow without end.
const PURGE_PER_SPEND: usize = 4;

/// Most spends committed in one write transaction. Bounds the time one batch holds
/// its callers and the size of one commit; far above what arrives during one fsync.
const MAX_BATCH: usize = 1024;
/// Spends waiting for the committer; callers wait (asynchronously) beyond that.
const QUEUE: usize = 4 * MAX_BATCH;

/// One spend waiting for the committer.
struct Pending {
    id: SpentId,
    expires_at: u64,
    now: u64,
    reply: tokio::sync::oneshot::Sender<Result<SpendOutcome, StoreFailure>>,
}

/// The committer thread and the way to reach it. Dropped with the last store handle:
/// closing the queue lets the thread finish what it holds and exit, and the drop
/// waits for that, so the file is released (a reopen in the same process works).
struct Committer {
    queue: Option<tokio::sync::mpsc::Sender<Pending>>,
    thread: Option<std::thread::JoinHandle<()>>,
    db: Arc<redb::Database>,
    commits: Arc<AtomicU64>,
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Embedded persistent double-spend store.
///
/// Spends are group-committed: one committer thread takes every spend that arrived
/// while the previous commit was being made durable and records them all in one redb
/// write transaction, so one fsync covers many spends. No caller hears `Fresh` before
/// the transaction holding its spend is committed (durable). Within a batch the spends
/// are applied in arrival order in the same transaction, so a token spent twice in one
/// batch is `Fresh` once and `AlreadySpent` after.
#[derive(Clone)]
pub struct RedbSpentStore {
    inner: Arc<Committer>,
}

impl std::fmt::Debug for RedbSpentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedbSpentStore")
    }
}

fn failure(backend: &'static str, e: impl std::fmt::Display) -> StoreFailure {
    StoreFailure {
        backend,
        reason: e.to_string(),
    }
}

impl RedbSpentStore {
    /// Open (or create) the database file at `path` and start its committer thread.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let db = redb::Database::create(path).map_err(|e| Error::Open(e.to_string()))?;
        // Create the tables up front so that reads never race a first write.
        let tx = db.begin_write().map_err(|e| Error::Open(e.to_string()))?;
        {
            tx.open_table(SPENT)
                .map_err(|e| Error::Open(e.to_string()))?;
            tx.open_table(EXPIRY)
                .map_err(|e| Error::Open(e.to_string()))?;
        }
        tx.commit().map_err(|e| Error::Open(e.to_string()))?;
        let db = Arc::new(db);
        let commits = Arc::new(AtomicU64::new(0));
        let (queue, rx) = tokio::sync::mpsc::channel(QUEUE);
        // A plain thread, not a tokio task: the commit blocks on fsync.
        let thread = std::thread::Builder::new()
            .name("spent-committer".into())
            .spawn({
                let db = Arc::clone(&db);
                let commits = Arc::clone(&commits);
                move || committer(&db, rx, &commits)
            })
            .map_err(|e| Error::Open(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Committer {
                queue: Some(queue),
                thread: Some(thread),
                db,
                commits,
            }),
        })
    }

    /// Number of records held (expired ones not yet purged included).
    pub fn len(&self) -> Result<u64, StoreFailure> {
        use redb::ReadableTableMetadata;
        let tx = self.inner.db.begin_read().map_err(|e| failure("redb", e))?;
        let t = tx.open_table(SPENT).map_err(|e| failure("redb", e))?;
        t.len().map_err(|e| failure("redb", e))
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> Result<bool, StoreFailure> {
        Ok(self.len()? == 0)
    }

    /// Write transactions committed for spends so far (each one fsync); with
    /// concurrent spends this is below the number of spends.
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }
}

/// The committer loop: wait for one spend, take every other one already queued (up to
/// [`MAX_BATCH`]), apply them in one transaction, commit, answer. Ends when every
/// store handle is gone and the queue is empty.
fn committer(
    db: &redb::Database,
    mut rx: tokio::sync::mpsc::Receiver<Pending>,
    commits: &AtomicU64,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let requests: Vec<(SpentId, u64, u64)> =
            batch.iter().map(|p| (p.id, p.expires_at, p.now)).collect();
        match apply_batch(db, &requests) {
            Ok((outcomes, committed)) => {
                if committed {
                    commits.fetch_add(1, Ordering::Relaxed);
                }
                for (p, o) in batch.into_iter().zip(outcomes) {
                    let _ = p.reply.send(Ok(o));
                }
            }
            Err(e) => {
                // Nothing of the batch is recorded: every spend in it is refused
                // (the gateway answers "store unavailable"), never taken as fresh.
                for p in batch {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Apply `requests` (id, expires_at, now) in order in one write transaction and commit
/// it if any was fresh. Returns each outcome and whether a commit was made. An error
/// means nothing was recorded.
fn apply_batch(
    db: &redb::Database,
    requests: &[(SpentId, u64, u64)],
) -> Result<(Vec<SpendOutcome>, bool), StoreFailure> {
    let f = |e: redb::Error| failure("redb", e);
    let Some(now) = requests.iter().map(|r| r.2).min() else {
        return Ok((Vec::new(), false));
    };
    let tx = db.begin_write().map_err(|e| f(e.into()))?;
    let mut outcomes = Vec::with_capacity(requests.len());
    {
        let mut spent = tx.open_table(SPENT).map_err(|e| f(e.into()))?;
        let mut expiry = tx.open_table(EXPIRY).map_err(|e| f(e.into()))?;
        // Purge a few records whose key has expired, as many per batch as the batch
        // has spends: the database still shrinks faster than it grows. The batch's
        // earliest `now` is used so that no spend sees a record purged too early.
        let mut old: Vec<(u64, Vec<u8>)> = Vec::new();
        for entry in expiry
            .range::<(u64, &[u8])>(..(now, &[][..]))
            .map_err(|e| f(e.into()))?
            .take(PURGE_PER_SPEND.saturating_mul(requests.len()))
        {
            let (k, _) = entry.map_err(|e| f(e.into()))?;
            let (exp, key) = k.value();
            old.push((exp, key.to_vec()));
        }
        for (exp, key) in &old {
            expiry
                .remove((*exp, key.as_slice()))
                .map_err(|e| f(e.into()))?;
            spent.remove(key.as_slice()).map_err(|e| f(e.into()))?;
        }
        for (id, expires_at, now) in requests {
            let key: &[u8] = id.as_bytes();
            // Reads see this transaction's own earlier inserts: a second spend of an
            // id in the same batch finds the first.
            let existing = spent.get(key).map_err(|e| f(e.into()))?.map(|g| g.value());
            outcomes.push(match existing {
                Some(exp) if exp > *now => SpendOutcome::AlreadySpent,
                stale => {
                    if let Some(exp) = stale {
                        expiry.remove((exp, key)).map_err(|e| f(e.into()))?;
                    }
                    spent.insert(key, *expires_at).map_err(|e| f(e.into()))?;
                    expiry
                        .insert((*expires_at, key), ())
                        .map_err(|e| f(e.into()))?;
                    SpendOutcome::Fresh
                }
            });
        }
    }
    let any_fresh = outcomes.contains(&SpendOutcome::Fresh);
    if any_fresh {
        // Durable before anyone is answered: a crash after "Fresh" must not forget it.
        tx.commit().map_err(|e| f(e.into()))?;
    } else {
        tx.abort().map_err(|e| f(e.into()))?;
    }
    Ok((outcomes, any_fresh))
}

impl SpentStore for RedbSpentStore {
    fn spend(&self, id: SpentId, expires_at: u64, now: u64) -> StoreFuture<'_> {
        Box::pin(async move {
            let queue = self
                .inner
                .queue
                .as_ref()
                .ok_or_else(|| failure("redb", "store closed"))?;
            let (reply, answer) = tokio::sync::oneshot::channel();
            queue
                .send(Pending {
                    id,
                    expires_at,
                    now,
                    reply,
                })
                .await
                .map_err(|_| failure("redb", "committer stopped"))?;
            answer
                .await
                .map_err(|_| failure("redb", "committer stopped"))?
        })
    }
    fn backend(&self) -> &'static str {
        "redb"
    }
}

/// How long Redis must keep a spend record: the key's remaining life by *our* clock
/// (`now`, the clock the token's validity was checked against), in milliseconds;
/// `None` when the key has already expired. A relative expiry, not `EXAT`: an absolute
/// time is read against the Redis server's clock, so a Redis clock running ahead of the
/// gateway's would forget spends of still-valid tokens early (a double spend).
fn ttl_millis(expires_at: u64, now: u64) -> Option<u64> {
    let secs = expires_at.checked_sub(now).filter(|&s| s > 0)?;
    Some(secs.saturating_mul(1000))
}

/// Redis-backed double-spend store shared by gateway replicas.
#[derive(Clone)]
pub struct RedisSpentStore {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisSpentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSpentStore")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisSpentStore {
    /// Connect to `url` (`redis://host:port/db`); keys are `confide:spent:<hex id>`.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with_prefix(url, "confide:spent:").await
    }

    /// Connect with a custom key prefix (several deployments sharing one Redis).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(|_| Error::RedisUrl)?;
        // Bounded retries and timeouts: a slow or dead Redis must turn into a refused
        // token within seconds (fail closed), never a request that hangs.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| Error::RedisConnect(e.to_string()))?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }
}

impl SpentStore for RedisSpentStore {
    fn spend(&self, id: SpentId, expires_at: u64, now: u64) -> StoreFuture<'_> {
        // The ConnectionManager multiplexes one connection: concurrent spends are
        // pipelined on it, not serialised one round trip at a time.
        let mut conn = self.conn.clone();
        let key = format!("{}{}", self.prefix, hex::encode(id.as_bytes()));
        Box::pin(async move {
            let Some(ttl_ms) = ttl_millis(expires_at, now) else {
                // The key has already expired by our clock: there is nothing to
                // remember (the verifier refuses such a token before it gets here).
                return Ok(SpendOutcome::Fresh);
            };
            // SET NX is the atomic test-and-set; PX ties the record's life to the key's.
            let reply: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(1u8)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut conn)
                .await
                .map_err(|e| failure("redis", e))?;
            Ok(match reply {
                Some(_) => SpendOutcome::Fresh,
                None => SpendOutcome::AlreadySpent,
            })
        })
    }
    fn backend(&self) -> &'static str {
        "redis"
    }
}

/// Counts within a fixed window, reserved atomically: refuses once `limit` is reached.
/// The count is created with the window's remaining life as its time to live, so it
/// vanishes when the window ends. Runs as one Lua script, atomic on the Redis server.
const RESERVE_SCRIPT: &str = r"
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
local limit = tonumber(ARGV[1])
if c >= limit then return -1 end
c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return limit - c
";

/// State shared by replicas through Redis beyond spent tokens: "seen once" markers
/// (the gateway's OHTTP replay cache) and per-window counters (the issuer's
/// per-account limits). Same connection policy as [`RedisSpentStore`]: bounded
/// timeouts, so a dead Redis is a refusal within seconds (fail closed), never a hang.
/// Every expiry is a relative time to live computed from the caller's clock.
#[derive(Clone)]
pub struct RedisShared {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisShared")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisShared {
    /// Connect to `url`; every key is `prefix` followed by the caller's key.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, Error> {
        let conn = RedisSpentStore::connect_with_prefix(url, prefix).await?;
        Ok(Self {
            conn: conn.conn,
            prefix: conn.prefix,
        })
    }

    /// Remember `key` for `ttl` unless it is already remembered: `true` the first
    /// time, `false` while an earlier mark lives (on any replica).
    pub async fn mark_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreFailure> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(format!("{}{key}", self.prefix))
            .arg(1u8)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .query_async(&mut conn)
            .await
            .map_err(|e| failure("redis", e))?;
        Ok(reply.is_some())
    }

    /// Count one more under `key` (a window's counter, whose remaining life is `ttl`)
    /// if fewer than `limit` are counted: `Some(remaining)` after counting, `None`
    /// when the limit is reached (nothing counted).
    pub async fn reserve(
        &self,
        key: &str,
        limit: u32,
        ttl: Duration,
    ) -> Result<Option<u32>, StoreFailure> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        // Plain EVAL (the script is short, and issuance is not a hot path); the
        // crate's script cache would need another dependency.
        let left: i64 = redis::cmd("EVAL")
            .arg(RESERVE_SCRIPT)
            .arg(1u8)
            .arg(format!("{}{key}", self.prefix))
            .arg(limit)
            .arg(ms)
            .query_async(&mut conn)
            .await
            .map_err(|e| failure("redis", e))?;
        Ok(u32::try_from(left).ok())
    }

    /// The count under `key` (0 when none).
    pub async fn count(&self, key: &str) -> Result<u32, StoreFailure> {
        let mut conn = self.conn.clone();
        let n: Option<u32> = redis::cmd("GET")
            .arg(format!("{}{key}", self.prefix))
            .query_async(&mut conn)
            .await
            .map_err(|e| failure("redis", e))?;
        Ok(n.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn redis_ttl_comes_from_our_clock() {
        assert_eq!(ttl_millis(1_000_100, 1_000_000), Some(100_000));
        assert_eq!(ttl_millis(1_000_000, 1_000_000), None);
        assert_eq!(ttl_millis(999_999, 1_000_000), None);
        assert_eq!(ttl_millis(u64::MAX, 0), Some(u64::MAX));
    }

    #[test]
    fn one_batch_spends_a_token_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbSpentStore::open(&dir.path().join("s.redb")).unwrap();
        let a = SpentId::from_bytes([1; 32]);
        let b = SpentId::from_bytes([2; 32]);
        let now = 1_800_000_000;
        // The same token twice in one transaction (as when two gateway tasks spend it
        // at once and the committer takes both): exactly the first wins.
        let (outcomes, committed) = apply_batch(
            &store.inner.db,
            &[
                (a, now + 100, now),
                (b, now + 100, now),
                (a, now + 100, now),
            ],
        )
        .unwrap();
        assert!(committed);
        assert_eq!(
            outcomes,
            [
                SpendOutcome::Fresh,
                SpendOutcome::Fresh,
                SpendOutcome::AlreadySpent
            ]
        );
        // A batch of spends already recorded commits nothing.
        let (outcomes, committed) =
            apply_batch(&store.inner.db, &[(a, now + 100, now + 1)]).unwrap();
        assert!(!committed);
        assert_eq!(outcomes, [SpendOutcome::AlreadySpent]);
        assert_eq!(store.len().unwrap(), 2);
    }
}
