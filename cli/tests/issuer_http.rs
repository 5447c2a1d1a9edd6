//! `confide issuer serve` over real HTTP: the RFC 9578 §4 directory, issuance, and one
//! distinct refusal per cause (missing credential, bad credential, wrong media type,
//! malformed request, over the account's limit, limit surviving a restart). The issuer's
//! trace log never carries a blinded element, a response or a credential.
#![allow(clippy::unwrap_used)]

mod common;

use common::{confide, now, start};

use std::process::Command;

use base64::Engine as _;
use confide_tokens::keys::ChallengeConfig;
use confide_tokens::{IssuerDirectory, TokenType};

async fn post(url: &str, auth: Option<&str>, ct: &str, body: Vec<u8>) -> (u16, String, Vec<u8>) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", ct)
        .body(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

fn problem_type(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["type"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_issuance_and_each_refusal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("issuer");
    let d = dir.to_str().unwrap();
    confide(&[
        "issuer",
        "init",
        "--dir",
        d,
        "--issuer-name",
        "issuer.test",
        "--origin-info",
        "gw.test",
    ]);
    // A second init must not overwrite the keys.
    let again = Command::new(env!("CARGO_BIN_EXE_confide"))
        .args(["issuer", "init", "--dir", d, "--issuer-name", "x"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already initialised"));
    let cred = confide(&[
        "issuer",
        "add-account",
        "--dir",
        d,
        "--id",
        "bob",
        "--limit",
        "3",
    ])
    .trim()
    .to_owned();
    let other = confide(&["issuer", "add-account", "--dir", d, "--id", "carol"])
        .trim()
        .to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["keys.json", "redemption-keys.json", "accounts.json"] {
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }
    let log = tmp.path().join("issuer.log");
    let (proc_, addr) = start(
        &[
            "issuer",
            "serve",
            "--dir",
            d,
            "--listen",
            "127.0.0.1:0",
            "--window-secs",
            "3600",
        ],
        &log,
    );

    // The directory: media type, both token types, keys in the RFC encodings.
    let resp = reqwest::get(format!(
        "http://{addr}/.well-known/private-token-issuer-directory"
    ))
    .await
    .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/private-token-issuer-directory"
    );
    let dirdoc = IssuerDirectory::from_json(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(dirdoc.issuer_request_uri, "/token-request");
    assert_eq!(dirdoc.token_keys.len(), 2);
    for k in &dirdoc.token_keys {
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(&k.token_key)
            .unwrap();
        match k.token_type {
            1 => assert_eq!(raw.len(), 49),
            2 => assert_eq!(&raw[..2], &[0x30, 0x82]),
            t => panic!("unexpected type {t}"),
        }
    }
    let rsa = dirdoc.newest_key(TokenType::BlindRsa, now()).unwrap();
    let challenge = ChallengeConfig {
        issuer_name: "issuer.test".into(),
        origin_info: "gw.test".into(),
    };
    let url = format!("http://{addr}/token-request");
    let bearer = format!("Bearer {cred}");
    let mut secrets = vec![cred.clone(), other.clone()];

    // A good request.
    let (req, pending) = rsa
        .begin(
            challenge.digest(TokenType::BlindRsa).unwrap(),
            &mut rand::rngs::OsRng,
        )
        .unwrap();
    let body = req.encode();
    secrets.push(hex::encode(&body[3..40]));
    secrets.push(base64::engine::general_purpose::STANDARD.encode(&body[3..40]));
    let (status, ct, resp) = post(
        &url,
        Some(&bearer),
        "application/private-token-request",
        body.clone(),
    )
    .await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "application/private-token-response")
    );
    secrets.push(hex::encode(&resp[..32]));
    pending.finalize(&resp).unwrap();

    // Each refusal, with its own status and problem type.
    let ct_req = "application/private-token-request";
    let (s, _, b) = post(&url, None, ct_req, body.clone()).await;
    assert_eq!(
        (s, problem_type(&b).as_str()),
        (401, "urn:confide:problem:issuer-missing-credential")
    );
    let (s, _, b) = post(
        &url,
        Some("Bearer not-a-real-credential"),
        ct_req,
        body.clone(),
    )
    .await;
    assert_eq!(
        (s, problem_type(&b).as_str()),
        (401, "urn:confide:problem:issuer-bad-credential")
    );
    let (s, _, b) = post(&url, Some(&format!("Basic {cred}")), ct_req, body.clone()).await;
    assert_eq!(
        (s, problem_type(&b).as_str()),
        (401, "urn:confide:problem:issuer-bad-credential")
    );
    let (s, _, b) = post(
        &url,
        Some(&bearer),
        "application/octet-stream",
        body.clone(),
    )
    .await;
    assert_eq!(
        (s, problem_type(&b).as_str()),
        (415, "urn:confide:problem:issuer-wrong-media-type")
    );
    let (s, _, b) = post(&url, Some(&bearer), ct_req, body[..100].to_vec()).await;
    assert_eq!(
        (s, problem_type(&b).as_str()),
        (400, "urn:confide:problem:issuer-malformed-request")
    );
    let mut wrong_key = body.clone();
    wrong_key[2] ^= 0xff; // truncated key id that names no key
    let (s, _, b) = post(&url, Some(&bearer), ct_req, wrong_key).await;
    assert_eq!(
        (s, problem_type(&b).as_str()),
        (400, "urn:confide:problem:issuer-malformed-request")
    );
    let (s, _, _) = post(&url, Some(&bearer), ct_req, vec![0; 4096]).await;
    assert_eq!(s, 413, "oversized bodies are refused unread");

    // bob's limit is 3 per window: the good request and the key-id miss used 2 (a
    // reservation is taken before signing), so one more passes, then 429.
    let (s, _, _) = post(&url, Some(&bearer), ct_req, body.clone()).await;
    assert_eq!(s, 200);
    let (s, _, b) = post(&url, Some(&bearer), ct_req, body.clone()).await;
    assert_eq!(
        (s, problem_type(&b).as_str()),
        (429, "urn:confide:problem:issuer-rate-limited")
    );
    // Another account is unaffected.
    let (s, _, _) = post(&url, Some(&format!("Bearer {other}")), ct_req, body.clone()).await;
    assert_eq!(s, 200);

    // Restart: the count survives.
    drop(proc_);
    let log2 = tmp.path().join("issuer2.log");
    let (_p2, addr2) = start(
        &[
            "issuer",
            "serve",
            "--dir",
            d,
            "--listen",
            "127.0.0.1:0",
            "--window-secs",
            "3600",
        ],
        &log2,
    );
    let (s, _, b) = post(
        &format!("http://{addr2}/token-request"),
        Some(&bearer),
        ct_req,
        body.clone(),
    )
    .await;
    assert_eq!(
        (s, problem_type(&b).as_str()),
        (429, "urn:confide:problem:issuer-rate-limited")
    );

    for l in [&log, &log2] {
        let text = std::fs::read_to_string(l).unwrap();
        assert!(
            text.contains("TRACE") || text.contains("DEBUG") || text.contains("INFO"),
            "log is real"
        );
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "issuer log carries a credential, blinded element or response"
            );
        }
        assert!(
            !text.contains("bob") && !text.contains("carol"),
            "issuer log names an account"
        );
    }
}

/// Two issuer processes serving the same accounts with `--redis`: one limit in all, not
/// one per replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_issuer_replicas_sharing_redis_enforce_one_limit() {
    let redis = confide_token_store::testing::RedisServer::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("issuer");
    let d = dir.to_str().unwrap();
    confide(&[
        "issuer",
        "init",
        "--dir",
        d,
        "--issuer-name",
        "issuer.test",
        "--origin-info",
        "gw.test",
    ]);
    let cred = confide(&[
        "issuer",
        "add-account",
        "--dir",
        d,
        "--id",
        "dave",
        "--limit",
        "4",
    ])
    .trim()
    .to_owned();
    let url = redis.url();
    let args = [
        "issuer",
        "serve",
        "--dir",
        d,
        "--listen",
        "127.0.0.1:0",
        "--window-secs",
        "3600",
        "--redis",
        &url,
    ];
    let (_a, addr_a) = start(&args, &tmp.path().join("a.log"));
    let (_b, addr_b) = start(&args, &tmp.path().join("b.log"));
    let resp = reqwest::get(format!(
        "http://{addr_a}/.well-known/private-token-issuer-directory"
    ))
    .await
    .unwrap();
    let dirdoc = IssuerDirectory::from_json(&resp.bytes().await.unwrap()).unwrap();
    let rsa = dirdoc.newest_key(TokenType::BlindRsa, now()).unwrap();
    let challenge = ChallengeConfig {
        issuer_name: "issuer.test".into(),
        origin_info: "gw.test".into(),
    };
    let bearer = format!("Bearer {cred}");
    let mut granted = 0;
    let mut limited = 0;
    // Alternate between the replicas, twice the limit in all.
    for i in 0..8 {
        let addr = if i % 2 == 0 { addr_a } else { addr_b };
        let (req, _) = rsa
            .begin(
                challenge.digest(TokenType::BlindRsa).unwrap(),
                &mut rand::rngs::OsRng,
            )
            .unwrap();
        let (s, _, b) = post(
            &format!("http://{addr}/token-request"),
            Some(&bearer),
            "application/private-token-request",
            req.encode(),
        )
        .await;
        match s {
            200 => granted += 1,
            429 => {
                assert_eq!(problem_type(&b), "urn:confide:problem:issuer-rate-limited");
                limited += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((granted, limited), (4, 4), "one limit across both replicas");
}
