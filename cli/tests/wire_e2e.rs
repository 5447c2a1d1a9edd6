//! End to end on loopback with real processes: client (SDK) → capture → `confide relay
//! serve` → capture → `confide gateway serve`. The two captures are the evidence for
//! the wire's privacy split: the relay sees no plaintext (a canary inside the inner
//! request never appears in what it received), and the gateway receives no client
//! address and no identifying header (only host, content type, length and accept).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use confide_ohttp::KeyConfig;
use confide_ohttp::bhttp::Request;
use confide_sdk::wire::{WireClient, WireError, fetch_key_configs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CANARY: &str = "CANARY-PLAINTEXT-5e1d7a";

/// A child process killed when the test ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `confide ARGS` and read the address it prints ("listening on ADDR").
fn start(args: &[&str]) -> (Proc, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_confide"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected: {line}"));
    (Proc(child), addr.parse().unwrap())
}

/// A TCP forwarder that records every byte sent towards `upstream` and the addresses
/// of the peers that connected to it.
#[derive(Clone, Default)]
struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Capture {
    async fn start(upstream: SocketAddr) -> (Self, SocketAddr) {
        let cap = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let c = cap.clone();
        tokio::spawn(async move {
            while let Ok((down, peer)) = listener.accept().await {
                c.peers.lock().unwrap().push(peer);
                let up = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let (mut dr, mut dw) = down.into_split();
                let (mut ur, mut uw) = up.into_split();
                let rec = c.bytes.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16384];
                    while let Ok(n) = dr.read(&mut buf).await {
                        if n == 0 || uw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        rec.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = uw.shutdown().await;
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut ur, &mut dw).await;
                });
            }
        });
        (cap, addr)
    }

    fn bytes(&self) -> Vec<u8> {
        self.bytes.lock().unwrap().clone()
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Split a captured HTTP/1.1 byte stream into request heads (bodies skipped by
/// Content-Length), returning each head's header names.
fn request_heads(mut bytes: &[u8]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).to_string();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap().to_owned();
        let mut names = Vec::new();
        let mut len = 0usize;
        for l in lines {
            let (n, v) = l.split_once(':').unwrap();
            if n.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
            names.push(n.to_ascii_lowercase());
        }
        out.push((request_line, names));
        bytes = &bytes[(end + 4 + len).min(bytes.len())..];
    }
    out
}

fn identifying_client() -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("cookie", "sid=CANARY-COOKIE-91".parse().unwrap());
    h.insert("x-forwarded-for", "198.51.100.23".parse().unwrap());
    h.insert("forwarded", "for=198.51.100.23".parse().unwrap());
    h.insert("x-client-id", "CANARY-ID-44".parse().unwrap());
    reqwest::Client::builder()
        .user_agent("canary-agent/9.9")
        .default_headers(h)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_through_relay_and_gateway_processes_with_captures() {
    let dir = tempfile::tempdir().unwrap();
    let gw_dir = dir.path().join("gw");
    let (_gw, gw_addr) = start(&[
        "gateway",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--dir",
        gw_dir.to_str().unwrap(),
        "--relay",
        "127.0.0.1",
    ]);
    let (to_gateway, cap_gw_addr) = Capture::start(gw_addr).await;
    let gateway_url = format!("http://{cap_gw_addr}/gateway");
    let (_relay, relay_addr) = start(&[
        "relay",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--gateway",
        &gateway_url,
        "--max-body",
        "4096",
    ]);
    let (to_relay, cap_relay_addr) = Capture::start(relay_addr).await;

    // Key configs from the gateway's key endpoint, and the same from the static export.
    let plain = reqwest::Client::new();
    let configs = fetch_key_configs(&plain, &format!("http://{gw_addr}/ohttp-keys"))
        .await
        .unwrap();
    let out = dir.path().join("ohttp-keys.bin");
    let status = Command::new(env!("CARGO_BIN_EXE_confide"))
        .args([
            "gateway",
            "keys",
            "--dir",
            gw_dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        KeyConfig::decode_list(&std::fs::read(&out).unwrap()).unwrap(),
        configs
    );
    // The ledger entry document for the same bytes, as `confide release publish` reads it.
    let entry_path = dir.path().join("key-config.json");
    let status = Command::new(env!("CARGO_BIN_EXE_confide"))
        .args([
            "gateway",
            "keys",
            "--dir",
            gw_dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--entry-out", entry_path.to_str().unwrap()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let doc = std::fs::read_to_string(&entry_path).unwrap();
    match confide_release::LedgerEntry::from_document(&doc).unwrap() {
        confide_release::LedgerEntry::KeyConfig(k) => {
            assert_eq!(k.key_config, std::fs::read(&out).unwrap());
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!(k.is_valid_at(now));
        }
        other => panic!("not a key-config entry: {other:?}"),
    }

    // The client sends identifying headers to the relay on purpose; the inner request
    // carries the canary in its path and a header.
    let client = WireClient::new_without_ledger_check(
        identifying_client(),
        format!("http://{cap_relay_addr}/relay"),
        configs[0].clone(),
    );
    let mut req = Request::new(
        "GET",
        "https",
        "gateway.confide",
        &format!("/v1/health?probe={CANARY}"),
    );
    req.headers.append("x-canary", CANARY.as_bytes().to_vec());
    let resp = client.send(&req).await.unwrap();
    assert_eq!(resp.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&resp.content).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["service"], "confide-gateway");

    // The same through chunked OHTTP, streamed through the relay.
    let stream = client.send_streaming(&req).await.unwrap();
    assert_eq!(stream.status(), 200);
    let body = stream.collect(1 << 16).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "ok");

    // What the relay saw: the identifying headers (so the capture is real), and no
    // plaintext.
    let relay_saw = to_relay.bytes();
    assert!(
        contains(&relay_saw, "canary-agent/9.9"),
        "capture recorded the client's request"
    );
    assert!(
        !contains(&relay_saw, CANARY),
        "the relay saw the plaintext canary"
    );
    assert!(
        !contains(&relay_saw, "/v1/health"),
        "the relay saw the inner path"
    );

    // What the gateway received: only allow-listed header names, nothing identifying,
    // not the client's address or port.
    let gateway_got = to_gateway.bytes();
    let heads = request_heads(&gateway_got);
    assert_eq!(heads.len(), 2, "two forwarded requests");
    for (line, names) in &heads {
        assert!(line.starts_with("POST /gateway HTTP/1.1"), "{line}");
        for n in names {
            assert!(
                ["host", "content-type", "content-length", "accept"].contains(&n.as_str()),
                "the gateway received header {n}"
            );
        }
    }
    for needle in [
        "canary-agent",
        "CANARY-COOKIE-91",
        "198.51.100.23",
        "CANARY-ID-44",
        CANARY,
        "forwarded",
        "via",
    ] {
        assert!(
            !contains(&gateway_got, needle),
            "the gateway received {needle}"
        );
    }
    for peer in to_relay.peers.lock().unwrap().iter() {
        assert!(
            !contains(&gateway_got, &format!(":{}", peer.port())),
            "client port reached the gateway"
        );
    }

    // Negative: unknown key id (ohttp-key problem → refetch), relay body limit, wrong
    // media type at the relay.
    let mut wrong_id = configs[0].encode();
    wrong_id[0] = wrong_id[0].wrapping_add(1);
    let stale = WireClient::new_without_ledger_check(
        plain.clone(),
        format!("http://{relay_addr}/"),
        KeyConfig::decode(&wrong_id).unwrap(),
    );
    assert!(matches!(
        stale.send(&req).await,
        Err(WireError::KeyConfigRejected)
    ));
    let big = plain
        .post(format!("http://{relay_addr}/"))
        .header("content-type", "message/ohttp-req")
        .body(vec![0u8; 5000])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let wrong_type = plain
        .post(format!("http://{relay_addr}/"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 50])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_refuses_a_direct_client_when_relays_are_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (_gw, gw_addr) = start(&[
        "gateway",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--dir",
        dir.path().to_str().unwrap(),
        "--relay",
        "192.0.2.1",
    ]);
    let plain = reqwest::Client::new();
    let configs = fetch_key_configs(&plain, &format!("http://{gw_addr}/ohttp-keys"))
        .await
        .unwrap();
    let direct = WireClient::new_without_ledger_check(
        plain,
        format!("http://{gw_addr}/gateway"),
        configs[0].clone(),
    );
    match direct
        .send(&Request::new("GET", "https", "g", "/v1/health"))
        .await
    {
        Err(WireError::Status {
            status: 403,
            problem,
        }) => {
            assert_eq!(
                problem.as_deref(),
                Some("urn:confide:problem:relay-required")
            );
        }
        other => panic!("expected 403 relay-required, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_the_seed_serve_the_same_keys() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("shared-seed");
    let start_replica = |name: &str| {
        let d = dir.path().join(name);
        start(&[
            "gateway",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dir",
            d.to_str().unwrap(),
            "--ohttp-key",
            seed.to_str().unwrap(),
            "--rotate-every",
            "1h",
        ])
    };
    let (_a, a_addr) = start_replica("a");
    let (_b, b_addr) = start_replica("b");
    let plain = reqwest::Client::new();
    let from_a = fetch_key_configs(&plain, &format!("http://{a_addr}/ohttp-keys"))
        .await
        .unwrap();
    let from_b = fetch_key_configs(&plain, &format!("http://{b_addr}/ohttp-keys"))
        .await
        .unwrap();
    assert_eq!(from_a, from_b);
    // A key learnt from replica A works at replica B.
    let to_b = WireClient::new_without_ledger_check(
        plain,
        format!("http://{b_addr}/gateway"),
        from_a[0].clone(),
    );
    let resp = to_b
        .send(&Request::new("GET", "https", "g", "/v1/health"))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
}

/// Issue one real Privacy Pass token (type 0x0001, VOPRF) from `set`, as a client would.
fn issue_token(set: &confide_tokens::IssuerKeySet, now: u64) -> String {
    use confide_tokens::{IssuerDirectory, TokenRequest, TokenType};
    let dir = IssuerDirectory::from_json(
        &serde_json::to_vec(&set.directory("https://i/req", now)).unwrap(),
    )
    .unwrap();
    let key = dir.newest_key(TokenType::Voprf, now).unwrap();
    let digest = set.challenge().digest(TokenType::Voprf).unwrap();
    let (req, pending) = key.begin(digest, &mut rand_core::OsRng).unwrap();
    let resp = set
        .issue(
            &TokenRequest::decode(&req.encode()).unwrap(),
            now,
            &mut rand_core::OsRng,
        )
        .unwrap();
    pending.finalize(resp.encode()).unwrap().to_authorization()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_redeem_real_tokens_through_the_relay_and_survive_a_restart() {
    use confide_tokens::IssuerKeySet;
    use confide_tokens::keys::{ChallengeConfig, RotationPolicy};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let challenge = ChallengeConfig {
        issuer_name: "issuer.confide.test".into(),
        origin_info: "gateway.confide.test".into(),
    };
    let policy = RotationPolicy {
        issue_secs: 3600,
        overlap_secs: 3600,
    };
    let set = IssuerKeySet::generate(challenge, policy, now, &mut rand_core::OsRng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("redemption-keys.json");
    std::fs::write(&keys_file, set.redemption_keys_json().unwrap()).unwrap();
    let gw_dir = dir.path().join("gw");
    let gw_args = [
        "gateway",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--dir",
        gw_dir.to_str().unwrap(),
        "--token-keys",
        keys_file.to_str().unwrap(),
    ];
    let (gw, gw_addr) = start(&gw_args);
    let (_relay, relay_addr) = start(&[
        "relay",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--gateway",
        &format!("http://{gw_addr}/gateway"),
    ]);
    let plain = reqwest::Client::new();
    let configs = fetch_key_configs(&plain, &format!("http://{gw_addr}/ohttp-keys"))
        .await
        .unwrap();
    let client = WireClient::new_without_ledger_check(
        plain.clone(),
        format!("http://{relay_addr}/"),
        configs[0].clone(),
    );

    let problem = |r: confide_ohttp::bhttp::Response| {
        let v: serde_json::Value = serde_json::from_slice(&r.content).unwrap();
        (r.status, v["type"].as_str().unwrap().to_owned())
    };
    let sessions = |auth: Option<&str>| {
        let mut r = Request::new("POST", "https", "gateway.confide.test", "/v1/sessions");
        if let Some(a) = auth {
            r.headers.append("authorization", a.as_bytes().to_vec());
        }
        r
    };
    let token = issue_token(&set, now);
    assert_eq!(
        problem(client.send(&sessions(None)).await.unwrap()),
        (401, "urn:confide:problem:token-required".into())
    );
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        problem(client.send(&sessions(Some(&forged))).await.unwrap()).0,
        401
    );
    assert_eq!(
        problem(client.send(&sessions(Some(&token))).await.unwrap()),
        (503, "urn:confide:problem:no-node-available".into())
    );
    assert_eq!(
        problem(client.send(&sessions(Some(&token))).await.unwrap()),
        (401, "urn:confide:problem:token-replayed".into())
    );

    // The embedded double-spend store survives a restart of the gateway.
    drop(gw);
    let (_gw2, gw2_addr) = start(&gw_args);
    let direct = WireClient::new_without_ledger_check(
        plain,
        format!("http://{gw2_addr}/gateway"),
        configs[0].clone(),
    );
    assert_eq!(
        problem(direct.send(&sessions(Some(&token))).await.unwrap()),
        (401, "urn:confide:problem:token-replayed".into())
    );
    let fresh = issue_token(&set, now);
    assert_eq!(
        problem(direct.send(&sessions(Some(&fresh))).await.unwrap()).0,
        503
    );
}
