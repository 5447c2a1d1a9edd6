//! Privacy Pass costs, per core (single-threaded), each against a baseline measured in the
//! same run so that numbers from different machines compare:
//!
//! - issuance (issuer side, one token) and redemption verification (gateway side, no
//!   store), for types 0x0001 and 0x0002, against one Ed25519 signature over the same
//!   98-byte token input (a familiar unit of public-key cost);
//! - one double-spend check (`SpentStore::spend` of a fresh id) on the embedded redb
//!   store and on Redis (a real `redis-server` on loopback), against the in-memory store.
//!
//! Criterion measures each operation; a summary table with ops/s and the ratios is
//! printed at the end (from a second, shorter timing pass of the same closures).
//! Run: `cargo bench -p confide-token-store --bench tokens`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use confide_token_store::testing::RedisServer;
use confide_token_store::{RedbSpentStore, RedisSpentStore};
use confide_tokens::keys::{ChallengeConfig, RotationPolicy};
use confide_tokens::{
    IssuerKeySet, MemorySpentStore, Redeemer, SpentId, SpentStore, Token, TokenRequest, TokenType,
};
use criterion::Criterion;
use ed25519_dalek::Signer as _;
use rand::rngs::OsRng;

const NOW: u64 = 1_800_000_000;

struct Fixture {
    set: IssuerKeySet,
    redeemer: Redeemer,
    requests: Vec<(TokenType, TokenRequest)>,
    tokens: Vec<(TokenType, String)>,
}

fn fixture() -> Fixture {
    let challenge = ChallengeConfig {
        issuer_name: "issuer.bench".into(),
        origin_info: "gw.bench".into(),
    };
    let policy = RotationPolicy {
        issue_secs: 86_400,
        overlap_secs: 86_400,
    };
    let set = IssuerKeySet::generate(challenge.clone(), policy, NOW, &mut OsRng).expect("keys");
    let redeemer = Redeemer::new(
        set.redemption_keys().expect("keys"),
        Arc::new(MemorySpentStore::new()),
    );
    let dir = set.directory("/r", NOW);
    let mut requests = Vec::new();
    let mut tokens = Vec::new();
    for ty in [TokenType::Voprf, TokenType::BlindRsa] {
        let key = dir.newest_key(ty, NOW).expect("key");
        let (req, pending) = key
            .begin(challenge.digest(ty).expect("digest"), &mut OsRng)
            .expect("begin");
        let resp = set.issue(&req, NOW, &mut OsRng).expect("issue");
        let token: Token = pending.finalize(resp.encode()).expect("finalize");
        requests.push((ty, req));
        tokens.push((ty, token.to_authorization()));
    }
    Fixture {
        set,
        redeemer,
        requests,
        tokens,
    }
}

fn name(ty: TokenType) -> &'static str {
    match ty {
        TokenType::Voprf => "type1_voprf_p384",
        TokenType::BlindRsa => "type2_blind_rsa_2048",
    }
}

/// Mean time of `f` over about `budget`.
fn time_it(budget: Duration, mut f: impl FnMut()) -> Duration {
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < budget {
        f();
        n += 1;
    }
    start.elapsed() / n.max(1)
}

fn main() {
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let fx = fixture();
    let signing = ed25519_dalek::SigningKey::generate(&mut OsRng);
    let input = [0x5au8; 98];

    let mut g = c.benchmark_group("crypto");
    g.bench_function("baseline_ed25519_sign", |b| b.iter(|| signing.sign(&input)));
    for (ty, req) in &fx.requests {
        g.bench_function(format!("issue_{}", name(*ty)), |b| {
            b.iter(|| fx.set.issue(req, NOW, &mut OsRng).expect("issue"))
        });
    }
    for (ty, auth) in &fx.tokens {
        g.bench_function(format!("redeem_verify_{}", name(*ty)), |b| {
            b.iter(|| fx.redeemer.verify(auth, NOW).expect("verify"))
        });
    }
    g.finish();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut stores: Vec<(&str, Arc<dyn SpentStore>)> =
        vec![("baseline_memory", Arc::new(MemorySpentStore::new()))];
    stores.push((
        "redb",
        Arc::new(RedbSpentStore::open(&dir.path().join("spent.redb")).expect("redb")),
    ));
    let redis = match RedisServer::start() {
        Ok(server) => {
            let store = rt
                .block_on(RedisSpentStore::connect(&server.url()))
                .expect("redis connect");
            stores.push(("redis", Arc::new(store)));
            Some(server)
        }
        Err(e) => {
            eprintln!("redis backend skipped: {e}");
            None
        }
    };
    let counter = AtomicU64::new(0);
    let fresh_id = || {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&n.to_be_bytes());
        SpentId::from_bytes(b)
    };
    let mut g = c.benchmark_group("double_spend_check");
    for (label, store) in &stores {
        g.bench_function(*label, |b| {
            b.iter(|| {
                rt.block_on(store.spend(fresh_id(), NOW + 3600, NOW))
                    .expect("spend")
            })
        });
    }
    g.finish();
    c.final_summary();

    // Summary with ratios (same process, same run).
    let budget = Duration::from_millis(700);
    let base = time_it(budget, || {
        signing.sign(&input);
    });
    println!("\nPrivacy Pass per core (single thread); ratio = op time / baseline time");
    println!(
        "{:<36} {:>12} {:>12} {:>10}",
        "operation", "mean", "ops/s/core", "ratio"
    );
    let row = |label: &str, t: Duration, base: Duration| {
        println!(
            "{:<36} {:>12} {:>12.0} {:>10.2}",
            label,
            format!("{:.1?}", t),
            1.0 / t.as_secs_f64(),
            t.as_secs_f64() / base.as_secs_f64()
        );
    };
    row("baseline: ed25519 sign", base, base);
    for (ty, req) in &fx.requests {
        let t = time_it(budget, || {
            fx.set.issue(req, NOW, &mut OsRng).expect("issue");
        });
        row(&format!("issue {}", name(*ty)), t, base);
    }
    for (ty, auth) in &fx.tokens {
        let t = time_it(budget, || {
            fx.redeemer.verify(auth, NOW).expect("verify");
        });
        row(&format!("redeem verify {}", name(*ty)), t, base);
    }
    let mut mem = Duration::ZERO;
    for (label, store) in &stores {
        let t = time_it(budget, || {
            rt.block_on(store.spend(fresh_id(), NOW + 3600, NOW))
                .expect("spend");
        });
        if *label == "baseline_memory" {
            mem = t;
        }
        row(&format!("spend check {label}"), t, mem);
    }
    drop(redis);
}
