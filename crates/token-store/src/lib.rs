//! Double-spend stores for Privacy Pass redemption (RFC 9577 §2.2 leaves replay
//! prevention to the origin; RFC 9576 §3.5 notes that a token must be spent only once).
//!
//! Both implement [`confide_tokens::SpentStore`]: an atomic "record this token id as
//! spent until the key's expiry, unless it already is".
//!
//! - [`RedbSpentStore`]: embedded and persistent (a `redb` file, pure Rust, fsync on every
//!   commit), the default for a single gateway. A spend that returned `Fresh` survives a
//!   crash. One process holds the file at a time.
//! - [`RedisSpentStore`]: Redis `SET key 1 NX EXAT expires_at`, for several gateway
//!   replicas sharing one store. `NX` makes the spend atomic across replicas; `EXAT` lets
//!   Redis drop the record when the key expires.
//!
//! See docs/adr/0301-spent-token-stores.md.

pub mod testing;

use std::path::Path;
use std::sync::Arc;
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

/// Embedded persistent double-spend store.
#[derive(Clone)]
pub struct RedbSpentStore {
    db: Arc<redb::Database>,
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
    /// Open (or create) the database file at `path`.
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
        Ok(Self { db: Arc::new(db) })
    }

    /// Number of records held (expired ones not yet purged included).
    pub fn len(&self) -> Result<u64, StoreFailure> {
        use redb::ReadableTableMetadata;
        let tx = self.db.begin_read().map_err(|e| failure("redb", e))?;
        let t = tx.open_table(SPENT).map_err(|e| failure("redb", e))?;
        t.len().map_err(|e| failure("redb", e))
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> Result<bool, StoreFailure> {
        Ok(self.len()? == 0)
    }

    fn spend_blocking(
        &self,
        id: SpentId,
        expires_at: u64,
        now: u64,
    ) -> Result<SpendOutcome, StoreFailure> {
        let f = |e: redb::Error| failure("redb", e);
        let tx = self.db.begin_write().map_err(|e| f(e.into()))?;
        let outcome = {
            let mut spent = tx.open_table(SPENT).map_err(|e| f(e.into()))?;
            let mut expiry = tx.open_table(EXPIRY).map_err(|e| f(e.into()))?;
            // Purge a few records whose key has expired.
            let mut old: Vec<(u64, Vec<u8>)> = Vec::with_capacity(PURGE_PER_SPEND);
            for entry in expiry
                .range::<(u64, &[u8])>(..(now, &[][..]))
                .map_err(|e| f(e.into()))?
                .take(PURGE_PER_SPEND)
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
            let key: &[u8] = id.as_bytes();
            let existing = spent.get(key).map_err(|e| f(e.into()))?.map(|g| g.value());
            match existing {
                Some(exp) if exp > now => SpendOutcome::AlreadySpent,
                stale => {
                    if let Some(exp) = stale {
                        expiry.remove((exp, key)).map_err(|e| f(e.into()))?;
                    }
                    spent.insert(key, expires_at).map_err(|e| f(e.into()))?;
                    expiry
                        .insert((expires_at, key), ())
                        .map_err(|e| f(e.into()))?;
                    SpendOutcome::Fresh
                }
            }
        };
        if outcome == SpendOutcome::Fresh {
            // Durable before we answer: a crash after "Fresh" must not forget the spend.
            tx.commit().map_err(|e| f(e.into()))?;
        } else {
            tx.abort().map_err(|e| f(e.into()))?;
        }
        Ok(outcome)
    }
}

impl SpentStore for RedbSpentStore {
    fn spend(&self, id: SpentId, expires_at: u64, now: u64) -> StoreFuture<'_> {
        let this = self.clone();
        Box::pin(async move {
            // redb blocks on fsync; keep it off the async workers.
            tokio::task::spawn_blocking(move || this.spend_blocking(id, expires_at, now))
                .await
                .map_err(|e| failure("redb", e))?
        })
    }
    fn backend(&self) -> &'static str {
        "redb"
    }
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
    fn spend(&self, id: SpentId, expires_at: u64, _now: u64) -> StoreFuture<'_> {
        let mut conn = self.conn.clone();
        let key = format!("{}{}", self.prefix, hex::encode(id.as_bytes()));
        Box::pin(async move {
            // SET NX is the atomic test-and-set; EXAT ties the record's life to the key's.
            let reply: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(1u8)
                .arg("NX")
                .arg("EXAT")
                .arg(expires_at)
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
