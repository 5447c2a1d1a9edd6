//! Both double-spend backends against the same contract, plus two "replicas" sharing Redis.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use confide_token_store::testing::RedisServer;
use confide_token_store::{RedbSpentStore, RedisSpentStore};
use confide_tokens::{SpendOutcome, SpentId, SpentStore};

const NOW: u64 = 1_800_000_000;

fn id(n: u8) -> SpentId {
    SpentId::from_bytes([n; 32])
}

fn wall_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn contract(store: Arc<dyn SpentStore>, now: u64) {
    assert_eq!(
        store.spend(id(1), now + 100, now).await.unwrap(),
        SpendOutcome::Fresh
    );
    assert_eq!(
        store.spend(id(1), now + 100, now + 1).await.unwrap(),
        SpendOutcome::AlreadySpent
    );
    assert_eq!(
        store.spend(id(2), now + 100, now).await.unwrap(),
        SpendOutcome::Fresh
    );
    // Many concurrent spends of one id: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            s.spend(id(3), now + 100, now).await.unwrap()
        }));
    }
    let mut fresh = 0;
    for t in tasks {
        if t.await.unwrap() == SpendOutcome::Fresh {
            fresh += 1;
        }
    }
    assert_eq!(
        fresh,
        1,
        "{}: exactly one concurrent spend may win",
        store.backend()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_contract_persistence_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spent.redb");
    {
        let store = Arc::new(RedbSpentStore::open(&path).unwrap());
        contract(store.clone(), NOW).await;
        assert_eq!(store.len().unwrap(), 3);
    }
    // Reopened (a restart): the spends are still there.
    let store = RedbSpentStore::open(&path).unwrap();
    assert_eq!(
        store.spend(id(1), NOW + 100, NOW + 2).await.unwrap(),
        SpendOutcome::AlreadySpent
    );
    // After the key's expiry the records are purged as new spends come in.
    for n in 10..14 {
        store.spend(id(n), NOW + 10_000, NOW + 200).await.unwrap();
    }
    assert_eq!(
        store.len().unwrap(),
        4,
        "the three expired records were purged"
    );
    // A second process (or handle) cannot open the same file: one writer at a time.
    assert!(RedbSpentStore::open(&path).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_group_commit_concurrent_spends_are_durable_and_unique() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spent.redb");
    const SPENDS: usize = 400;
    let commits;
    {
        let store = Arc::new(RedbSpentStore::open(&path).unwrap());
        // Every id is spent twice at the same time by different tasks, so the two
        // attempts often land in one batch: exactly one of each pair may win.
        let mut tasks = Vec::new();
        for n in 0..SPENDS {
            for _ in 0..2 {
                let s = Arc::clone(&store);
                let mut b = [0u8; 32];
                b[..8].copy_from_slice(&(n as u64).to_be_bytes());
                tasks.push(tokio::spawn(async move {
                    (
                        n,
                        s.spend(SpentId::from_bytes(b), NOW + 100, NOW)
                            .await
                            .unwrap(),
                    )
                }));
            }
        }
        let mut wins = vec![0u32; SPENDS];
        for t in tasks {
            let (n, o) = t.await.unwrap();
            if o == SpendOutcome::Fresh {
                wins[n] += 1;
            }
        }
        assert!(wins.iter().all(|&w| w == 1), "each id wins exactly once");
        commits = store.commits();
        assert!(commits >= 1 && commits <= SPENDS as u64);
        println!("{} spends in {commits} commits", 2 * SPENDS);
    }
    // Reopened: every spend answered `Fresh` was committed before its answer.
    let store = RedbSpentStore::open(&path).unwrap();
    assert_eq!(store.len().unwrap(), SPENDS as u64);
    for n in 0..SPENDS {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&(n as u64).to_be_bytes());
        assert_eq!(
            store
                .spend(SpentId::from_bytes(b), NOW + 100, NOW + 1)
                .await
                .unwrap(),
            SpendOutcome::AlreadySpent
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_contract_two_replicas_and_ttl() {
    let server = RedisServer::start().unwrap();
    let a = Arc::new(RedisSpentStore::connect(&server.url()).await.unwrap());
    let now = wall_now();
    contract(a.clone(), now).await;
    // Another replica, another connection: the spend made by the first is seen.
    let b = RedisSpentStore::connect(&server.url()).await.unwrap();
    assert_eq!(
        b.spend(id(1), now + 100, now).await.unwrap(),
        SpendOutcome::AlreadySpent
    );
    let exp = now + 86_400;
    assert_eq!(b.spend(id(9), exp, now).await.unwrap(), SpendOutcome::Fresh);
    // The record expires with the key: its time to live is the key's remaining life by
    // the gateway's clock (at most; a little may have passed since `now`).
    let client = redis::Client::open(server.url()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let pttl = |n: u8| {
        let key = format!("confide:spent:{}", hex::encode([n; 32]));
        let mut conn = conn.clone();
        async move {
            let ms: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            ms
        }
    };
    let ttl = pttl(9).await;
    assert!(ttl > 86_000_000 && ttl <= 86_400_000, "{ttl}");
    // The gateway's clock, not Redis's, decides: with a gateway clock well behind the
    // Redis server's, an absolute expiry (`EXAT`) would already have passed on Redis
    // and the spend would be forgotten at once (a double spend). The relative expiry
    // keeps it for the key's remaining life as the gateway sees it.
    let behind = now - 10_000;
    assert_eq!(
        b.spend(id(21), behind + 100, behind).await.unwrap(),
        SpendOutcome::Fresh
    );
    assert_eq!(
        a.spend(id(21), behind + 100, behind + 1).await.unwrap(),
        SpendOutcome::AlreadySpent
    );
    let ttl = pttl(21).await;
    assert!(ttl > 90_000 && ttl <= 100_000, "{ttl}");
    // A record whose expiry has passed is gone: spending the id again counts as fresh.
    let past = now - 1;
    b.spend(id(20), past, now).await.unwrap();
    assert_eq!(
        b.spend(id(20), now + 100, now).await.unwrap(),
        SpendOutcome::Fresh
    );
}

#[tokio::test]
async fn redis_unreachable_is_an_error_not_a_pass() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = RedisSpentStore::connect(&format!("redis://127.0.0.1:{port}/")).await;
    assert!(matches!(
        r,
        Err(confide_token_store::Error::RedisConnect(_))
    ));
    assert!(matches!(
        RedisSpentStore::connect("nope://x").await,
        Err(confide_token_store::Error::RedisUrl)
    ));
}
