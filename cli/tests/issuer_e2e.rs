//! End to end with real processes: `confide issuer serve` issues tokens over HTTP to the
//! SDK's token client (pinned keys), and two `confide gateway serve` replicas sharing one
//! real `redis-server` redeem them on `POST /v1/sessions` inside OHTTP: a token spent at
//! one replica is refused at the other. Issuer and gateway logs (at trace level) are
//! checked for tokens, blinded elements and the account credential.
#![allow(clippy::unwrap_used)]

mod common;

use common::{confide, now, start};

use std::path::Path;

use base64::Engine as _;
use confide_ohttp::bhttp::Request;
use confide_sdk::tokens::{IssuerPin, TokenClient, TokenClientError, TokenWallet};
use confide_sdk::wire::{WireClient, fetch_key_configs};
use confide_token_store::testing::RedisServer;
use confide_tokens::keys::ChallengeConfig;
use confide_tokens::{IssuerKeySet, TokenType};

const ISSUER: &str = "issuer.confide.test";
const ORIGIN: &str = "gateway.confide.test";

fn pin(dir: &Path, url: &str, token_type: TokenType) -> IssuerPin {
    // The pinned key ids come from the operator's configuration (here: computed from the
    // issuer's key file), not from the directory the client is about to check.
    let keys = IssuerKeySet::from_json(&std::fs::read(dir.join("keys.json")).unwrap()).unwrap();
    let key = keys
        .directory("/token-request", now())
        .newest_key(token_type, now())
        .unwrap();
    IssuerPin {
        issuer_url: url.to_owned(),
        challenge: ChallengeConfig {
            issuer_name: ISSUER.into(),
            origin_info: ORIGIN.into(),
        },
        token_type,
        key_ids: vec![*key.key_id()],
    }
}

async fn open_session(client: &WireClient, authorization: Option<&str>) -> (u16, String) {
    let mut req = Request::new("POST", "https", ORIGIN, "/v1/sessions");
    if let Some(a) = authorization {
        req.headers.append("authorization", a.as_bytes().to_vec());
    }
    let resp = client.send(&req).await.unwrap();
    (
        resp.status,
        String::from_utf8_lossy(&resp.content).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_over_http_and_redeem_at_two_replicas_sharing_redis() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let tmp = tempfile::tempdir().unwrap();
    let idir = tmp.path().join("issuer");
    let idir_s = idir.to_str().unwrap();
    confide(&[
        "issuer",
        "init",
        "--dir",
        idir_s,
        "--issuer-name",
        ISSUER,
        "--origin-info",
        ORIGIN,
    ]);
    let credential = confide(&["issuer", "add-account", "--dir", idir_s, "--id", "alice"])
        .trim()
        .to_owned();
    let issuer_log = tmp.path().join("issuer.log");
    let (_issuer, iaddr) = start(
        &[
            "issuer",
            "serve",
            "--dir",
            idir_s,
            "--listen",
            "127.0.0.1:0",
        ],
        &issuer_log,
    );
    let issuer_url = format!("http://{iaddr}");

    // Fetch tokens of both types through the SDK client, into a persisted wallet.
    let wallet = TokenWallet::open(&tmp.path().join("wallet.json")).unwrap();
    for ty in [TokenType::BlindRsa, TokenType::Voprf] {
        let client = TokenClient::new(pin(&idir, &issuer_url, ty), &credential).unwrap();
        assert_eq!(client.fetch_batch(2, &wallet, now()).await.unwrap(), 2);
    }
    assert_eq!(wallet.len(), 4);
    // Key consistency: a directory key that is not pinned is refused before any request.
    let mut wrong = pin(&idir, &issuer_url, TokenType::BlindRsa);
    wrong.key_ids = vec![[7; 32]];
    let err = TokenClient::new(wrong, &credential)
        .unwrap()
        .fetch_batch(1, &wallet, now())
        .await
        .unwrap_err();
    assert!(matches!(err, TokenClientError::KeyNotPinned(_)), "{err}");
    // The wallet survives a restart of the client.
    drop(wallet);
    let wallet = TokenWallet::open(&tmp.path().join("wallet.json")).unwrap();
    let tokens: Vec<String> = (0..4)
        .map(|_| wallet.spend().unwrap().unwrap().to_string())
        .collect();
    assert!(wallet.spend().unwrap().is_none());

    // Two gateway replicas, each with its own OHTTP keys, sharing the redis store.
    let keys_path = idir.join("redemption-keys.json");
    let mut replicas = Vec::new();
    let mut procs = Vec::new();
    for i in 0..2 {
        let gdir = tmp.path().join(format!("gw{i}"));
        let log = tmp.path().join(format!("gw{i}.log"));
        let (p, addr) = start(
            &[
                "gateway",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--dir",
                gdir.to_str().unwrap(),
                "--relay",
                "127.0.0.1",
                "--token-keys",
                keys_path.to_str().unwrap(),
                "--redis",
                &redis.url(),
            ],
            &log,
        );
        procs.push((p, log));
        let configs = fetch_key_configs(
            &reqwest::Client::new(),
            &format!("http://{addr}/ohttp-keys"),
        )
        .await
        .unwrap();
        replicas.push(WireClient::new_without_ledger_check(
            reqwest::Client::new(),
            format!("http://{addr}/gateway"),
            configs[0].clone(),
        ));
    }
    let (a, b) = (&replicas[0], &replicas[1]);

    // Each token: valid at the first replica it reaches (503: it passed redemption and no
    // node exists), refused as replayed at the other replica and at the same one.
    for (i, t) in tokens.iter().enumerate() {
        let (first, second) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let (status, body) = open_session(first, Some(t)).await;
        assert_eq!(status, 503, "token {i}: {body}");
        assert!(body.contains("no node available"), "{body}");
        for replica in [second, first] {
            let (status, body) = open_session(replica, Some(t)).await;
            assert_eq!(status, 401, "token {i} replay: {body}");
            assert!(body.contains("token-replayed"), "{body}");
        }
    }
    // No token, and a forged one.
    let (status, body) = open_session(a, None).await;
    assert_eq!(
        (status, body.contains("token-required")),
        (401, true),
        "{body}"
    );
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(
            tokens[0]
                .trim_start_matches("PrivateToken token=\"")
                .trim_end_matches('"'),
        )
        .unwrap();
    let mut forged = raw.clone();
    forged[2] ^= 1; // another nonce: not spent, but the signature no longer matches
    let forged = format!(
        "PrivateToken token=\"{}\"",
        base64::engine::general_purpose::URL_SAFE.encode(&forged)
    );
    let (status, body) = open_session(b, Some(&forged)).await;
    assert_eq!(
        (status, body.contains("token-invalid")),
        (401, true),
        "{body}"
    );

    // Nothing logged a token, a credential or key material, at trace level.
    drop(
        procs
            .drain(..)
            .map(|(p, log)| {
                drop(p);
                log
            })
            .collect::<Vec<_>>(),
    );
    let mut logs = vec![std::fs::read_to_string(&issuer_log).unwrap()];
    for i in 0..2 {
        logs.push(std::fs::read_to_string(tmp.path().join(format!("gw{i}.log"))).unwrap());
    }
    assert!(logs[0].contains("token issued"), "the issuer log is real");
    let mut needles: Vec<String> = vec![credential.clone()];
    for t in &tokens {
        let b64 = t
            .trim_start_matches("PrivateToken token=\"")
            .trim_end_matches('"')
            .trim_end_matches('=');
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .unwrap();
        needles.push(b64[..40].to_owned());
        needles.push(hex::encode(&bytes[2..34])); // the nonce
        needles.push(hex::encode(&bytes[bytes.len() - 32..])); // the authenticator's tail
    }
    for log in &logs {
        for n in &needles {
            assert!(
                !log.contains(n.as_str()),
                "a log line carries a secret or token fragment"
            );
        }
    }
}

/// "token issued" lines in an issuer log so far.
fn issued(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("token issued")
        .count()
}

/// Issue 13, finding 2, in the SDK against a real issuer: spending never fetches (an
/// empty wallet is `WalletEmpty`, and the issuer saw no request), the background refiller
/// refills a low wallet by itself, and a request allowed to wait gets its token from that
/// background refill, not from a fetch of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spending_never_issues_and_the_wallet_refills_in_the_background() {
    use std::sync::Arc;
    use std::time::Duration;

    use confide_sdk::TokenSource as _;
    use confide_sdk::config::WalletPolicy;
    use confide_sdk::issuance::IssuerTokens;

    let tmp = tempfile::tempdir().unwrap();
    let idir = tmp.path().join("issuer");
    let idir_s = idir.to_str().unwrap();
    confide(&[
        "issuer",
        "init",
        "--dir",
        idir_s,
        "--issuer-name",
        ISSUER,
        "--origin-info",
        ORIGIN,
    ]);
    let credential = confide(&["issuer", "add-account", "--dir", idir_s, "--id", "bob"])
        .trim()
        .to_owned();
    let log = tmp.path().join("issuer.log");
    let (_issuer, iaddr) = start(
        &[
            "issuer",
            "serve",
            "--dir",
            idir_s,
            "--listen",
            "127.0.0.1:0",
        ],
        &log,
    );
    let url = format!("http://{iaddr}");
    let wallet_path = tmp.path().join("tokens.json");
    let policy = WalletPolicy {
        low_water: 2,
        batch: 3,
        refill_delay_min: Duration::from_millis(100),
        refill_delay_max: Duration::from_millis(400),
        wait_for_refill: Duration::ZERO,
    };
    let tokens_with = |policy: WalletPolicy| {
        Arc::new(IssuerTokens::from_parts(
            TokenClient::new(pin(&idir, &url, TokenType::Voprf), &credential).unwrap(),
            TokenWallet::open(&wallet_path).unwrap(),
            policy,
        ))
    };
    let tokens = tokens_with(policy);

    // Empty wallet, no refiller: the request fails at once, and the issuer saw nothing.
    let err = tokens.authorization().await.unwrap_err();
    assert!(
        matches!(
            err,
            confide_sdk::Error::WalletEmpty {
                refill_running: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.hint().contains("confide wallet refill"),
        "{}",
        err.hint()
    );
    assert_eq!(issued(&log), 0, "a request made the client fetch tokens");

    // The refiller sees the empty (low) wallet and fills it by itself, after its delay.
    let refiller = tokens.spawn_refiller();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while tokens.available() < 3 {
        assert!(std::time::Instant::now() < deadline, "no background refill");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(issued(&log), 3);
    // Spending down to the low-water mark wakes it again; above it, it stays idle.
    tokens.authorization().await.unwrap();
    assert_eq!(tokens.available(), 2);
    tokens.authorization().await.unwrap();
    while tokens.available() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "no second background refill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(issued(&log), 6);
    drop(refiller);

    // A client allowed to wait (bounded) for the background refill when it finds the
    // wallet empty: the token it spends came from that refill, not from its own fetch.
    let waiting = tokens_with(WalletPolicy {
        wait_for_refill: Duration::from_secs(60),
        ..policy
    });
    for _ in 0..4 {
        waiting.authorization().await.unwrap();
    }
    let before = issued(&log);
    let _refiller = waiting.spawn_refiller();
    waiting.authorization().await.unwrap();
    assert_eq!(issued(&log), before + 3, "exactly one background batch");
    assert_eq!(waiting.available(), 2);
}
