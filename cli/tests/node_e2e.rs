//! End to end with real processes on loopback: `confide node serve` (simulated TEE,
//! embedded SmolLM2), `confide gateway serve --node`, `confide relay serve`, and a
//! device that opens an attested session through relay and gateway with Privacy Pass
//! tokens and OHTTP, verifies the node (evidence, REPORT_DATA binding, cosigned ledger
//! inclusion) and summarises a chat with the embedded model, tokens streaming back.
//!
//! The ledger is `confide ledger serve` with two `confide witness serve` processes
//! cosigning its checkpoints; the node reads its C2SP tlog-tiles and staples the
//! inclusion bundle of its release; the device requires both cosignatures.
//!
//! The canary: a unique string inside the chat, with every process at `RUST_LOG=trace`,
//! must appear nowhere in any process's stdout/stderr (node, gateway, relay, ledger,
//! witnesses) or in any file under their directories.
#![allow(clippy::unwrap_used)]

#[path = "../../services/node/tests/common/mod.rs"]
mod common;
#[path = "common/tokens.rs"]
mod test_tokens;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use confide_attest_sim::SimulatedVendor;
use confide_engine::features::{ChatLine, SummarizeRequest};
use confide_ledger::client::LedgerClient;
use confide_node::frames::{AppRequest, EndInfo, Feature};
use confide_note::SignerKey;
use confide_ohttp::bhttp::Request;
use confide_release::LedgerTrust;
use confide_sdk::wire::{WireClient, fetch_key_configs};
use confide_session::{ClientEngine, FrameKind, SessionLimits};
use test_tokens::tokens;
use zeroize::Zeroizing;

const CANARY: &str = "CANARY-node-e2e-4b7d19c2e8";
const LEDGER_ORIGIN: &str = "ledger.node-e2e.test";

/// A child process killed when dropped, with its whole output captured.
struct Proc {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    lines: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Starts `confide ARGS` at `RUST_LOG=trace` in `cwd`, capturing stdout and stderr.
    fn start(args: &[&str], cwd: &Path) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_confide"))
            .args(args)
            .current_dir(cwd)
            .env("RUST_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut err = child.stderr.take().unwrap();
        let into = Arc::clone(&out);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                into.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let into = Arc::clone(&out);
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                into.lock()
                    .unwrap()
                    .extend_from_slice(format!("{l}\n").as_bytes());
                let _ = tx.send(l);
            }
        });
        Proc { child, out, lines }
    }

    /// Waits (bounded) for a stdout line starting with `prefix`; returns the rest.
    fn value(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(v) = l.strip_prefix(prefix) {
                        return v.trim().to_owned();
                    }
                }
                Err(_) => panic!(
                    "no `{prefix}` line: {}",
                    String::from_utf8_lossy(&self.out.lock().unwrap())
                ),
            }
        }
    }

    fn output(&self) -> Vec<u8> {
        self.out.lock().unwrap().clone()
    }
}

/// Starts a service that prints `listening on ADDR`.
fn start(args: &[&str], cwd: &Path) -> (Proc, SocketAddr) {
    let p = Proc::start(args, cwd);
    let addr = p.value("listening on ").parse().unwrap();
    (p, addr)
}

fn start_ledger(dir: &Path, witnesses: &[String]) -> (Proc, String, String) {
    let mut args = vec![
        "ledger",
        "serve",
        "--dir",
        dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--origin",
        LEDGER_ORIGIN,
    ];
    for w in witnesses {
        args.push("--witness");
        args.push(w);
    }
    std::fs::create_dir_all(dir).unwrap();
    let p = Proc::start(&args, dir);
    let vkey = p.value("ledger verifier key:");
    let url = p.value("ledger listening on");
    (p, vkey, url)
}

fn files_containing(dir: &Path, needle: &[u8], hits: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_containing(&p, needle, hits);
        } else if let Ok(b) = std::fs::read(&p)
            && b.windows(needle.len()).any(|w| w == needle)
        {
            hits.push(p.display().to_string());
        }
    }
}

fn canary_chat() -> SummarizeRequest {
    let mut c = chat();
    c.messages.push(ChatLine {
        sender: Zeroizing::new("Alice".into()),
        time: c.messages[0].time + time::Duration::minutes(7),
        text: Zeroizing::new(format!("The boathouse gate code is {CANARY}.")),
    });
    c
}

fn outgoing(engine: &mut ClientEngine) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = engine.get_outgoing() {
        if b.is_empty() {
            break;
        }
        out.extend_from_slice(&b);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attested_summary_through_relay_and_gateway_with_canary() {
    let model = model_path();
    let root_dir = tempfile::tempdir().unwrap();
    let node_dir = root_dir.path().join("node");
    let gw_dir = root_dir.path().join("gateway");
    let relay_dir = root_dir.path().join("relay");
    for d in [&node_dir, &gw_dir, &relay_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    let vendor = SimulatedVendor::load_or_create(&node_dir.join("sim-vendor")).unwrap();
    let common_args = [
        "--dir",
        node_dir.to_str().unwrap(),
        "--platform",
        "simulated",
        "--model",
        model.to_str().unwrap(),
        "--max-tokens",
        "64",
        "--dev-allow-writable-cwd",
    ];

    // What the node will attest to, for its release manifest.
    let out = Command::new(env!("CARGO_BIN_EXE_confide"))
        .args(["node", "measure"])
        .args(common_args)
        .current_dir(&node_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let measurement = hex::decode(m["measurement"].as_str().unwrap()).unwrap();
    let model_digest: [u8; 32] = hex::decode(m["model_digest"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(
        hex::encode(model_digest),
        confide_engine::models::TINY.sha256,
        "the measured model digest is the file's SHA-256"
    );
    // `node serve` below runs with the same configuration flags, so the same digest.
    let config_digest: [u8; 32] = hex::decode(m["config_digest"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();

    // The ledger and two witnesses, as processes. First start makes the ledger's keys.
    let ledger_dir = root_dir.path().join("ledger");
    let (first, ledger_vkey, _) = start_ledger(&ledger_dir, &[]);
    drop(first);
    let mut witnesses = Vec::new();
    let mut witness_args = Vec::new();
    let mut witness_keys = Vec::new();
    for i in 0..2 {
        let wdir = root_dir.path().join(format!("witness-{i}"));
        std::fs::create_dir_all(&wdir).unwrap();
        let name = format!("w{i}.node-e2e.test");
        let p = Proc::start(
            &[
                "witness",
                "serve",
                "--dir",
                wdir.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--name",
                &name,
                "--log",
                &ledger_vkey,
            ],
            &wdir,
        );
        let wkey = p.value("witness verifier key:");
        let wurl = p.value("witness listening on");
        witness_args.push(format!("{wurl}={wkey}"));
        witness_keys.push(wkey);
        witnesses.push((wdir, p));
    }
    let (ledger_proc, _, ledger_url) = start_ledger(&ledger_dir, &witness_args);
    let trust = LedgerTrust::new(&ledger_vkey, &witness_keys, 2).unwrap();
    let operator = SignerKey::parse(
        std::fs::read_to_string(ledger_dir.join("operator.key"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    // The ledger lists an older, other build and this one.
    let lc = LedgerClient::new(&ledger_url).unwrap();
    for e in [
        release(&[0x33; 48], model_digest, config_digest),
        release(&measurement, model_digest, config_digest),
    ] {
        lc.add_with_origin(&e.encode().unwrap(), &operator, LEDGER_ORIGIN)
            .await
            .unwrap();
    }

    let mut args = vec![
        "node",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--ledger",
        &ledger_url,
    ];
    args.extend(common_args);
    let (node, node_addr) = start(&args, &node_dir);
    // The node holds plaintext: it must never write a core file.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", node.child.id())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(),
        ["0", "0"],
        "{core}"
    );

    let (issuer, toks) = tokens(16);
    let token_keys = root_dir.path().join("redemption-keys.json");
    std::fs::write(&token_keys, issuer.redemption_keys_json().unwrap()).unwrap();
    let node_url = format!("http://{node_addr}");
    let (gateway, gw_addr) = start(
        &[
            "gateway",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dir",
            gw_dir.to_str().unwrap(),
            "--relay",
            "127.0.0.1",
            "--token-keys",
            token_keys.to_str().unwrap(),
            "--node",
            &node_url,
        ],
        &gw_dir,
    );
    let gateway_url = format!("http://{gw_addr}/gateway");
    let (relay, relay_addr) = start(
        &[
            "relay",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--gateway",
            &gateway_url,
        ],
        &relay_dir,
    );

    let http = reqwest::Client::new();
    let configs = fetch_key_configs(&http, &format!("http://{gw_addr}/ohttp-keys"))
        .await
        .unwrap();
    let wire = WireClient::new_without_ledger_check(
        http.clone(),
        format!("http://{relay_addr}/"),
        configs[0].clone(),
    );

    // Open: ClientHello → relay → gateway (token redeemed, node picked) → node.
    let mut engine = ClientEngine::new(
        verifier_with_trust(vendor.root_der(), trust, 3600),
        SessionLimits::default(),
        tls_now(),
    )
    .unwrap();
    let hello = outgoing(&mut engine);
    let mut toks = toks.into_iter();
    let deadline = Instant::now() + Duration::from_secs(20);
    let opened = loop {
        let mut req = Request::new("POST", "https", "gateway.confide.test", "/v1/sessions");
        req.headers
            .append("authorization", toks.next().unwrap().to_authorization());
        req.content = hello.clone();
        let resp = wire.send(&req).await.unwrap();
        // The gateway health-checks nodes every 2 s; until its first check passed it
        // answers no-node-available (each attempt spends a token, so take a new one).
        if resp.status == 503 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        break resp;
    };
    assert_eq!(
        opened.status,
        200,
        "{}",
        String::from_utf8_lossy(&opened.content)
    );
    let id = String::from_utf8(opened.headers.get("confide-session-id").unwrap().to_vec()).unwrap();
    engine.put_incoming(&opened.content, tls_now()).unwrap();
    let node_proof = engine.verified_node().expect("node verified").clone();
    assert_eq!(node_proof.measurement(), &measurement[..]);
    assert_eq!(node_proof.model_digest(), Some(&model_digest[..]));
    assert_eq!(node_proof.ledger_index(), 1);
    assert_eq!(node_proof.platform(), "simulated");

    // The request, with Finished, in one round trip; the answer streams back.
    let req = AppRequest::new(Feature::Summarize(canary_chat()), Some(64));
    engine.send(&req.to_frame().unwrap()).unwrap();
    let mut inner = Request::new(
        "POST",
        "https",
        "gateway.confide.test",
        &format!("/v1/sessions/{id}"),
    );
    inner
        .headers
        .append("authorization", toks.next().unwrap().to_authorization());
    inner.content = outgoing(&mut engine);
    let started = Instant::now();
    let mut stream = wire.send_streaming(&inner).await.unwrap();
    assert_eq!(stream.status(), 200);
    let mut text = String::new();
    let mut chunks = 0usize;
    let mut first_chunk = None;
    let mut end = None;
    while let Some(data) = stream.next_data().await.unwrap() {
        engine.put_incoming(&data, tls_now()).unwrap();
        while let Some(f) = engine.recv() {
            match f.kind() {
                FrameKind::StreamChunk => {
                    chunks += 1;
                    first_chunk.get_or_insert_with(Instant::now);
                    text.push_str(std::str::from_utf8(f.payload()).unwrap());
                }
                FrameKind::End => {
                    end = Some((Instant::now(), EndInfo::parse(f.payload()).unwrap()))
                }
                k => panic!("unexpected frame {k:?}"),
            }
        }
    }
    let (end_at, end) = end.expect("an End frame");
    assert!(end.error.is_none(), "{end:?}");
    let first_chunk = first_chunk.expect("streamed chunks");
    println!(
        "summary ({chunks} chunks, first after {:?}, end after {:?}): {text}",
        first_chunk - started,
        end_at - started
    );
    // Streaming: the first piece arrived well before generation ended. Text leaves on
    // the node's tick (200 ms), so two chunks are at least a tick apart.
    assert!(chunks >= 2, "{chunks} chunks");
    assert!(
        end_at.duration_since(first_chunk) > Duration::from_millis(100),
        "first token must arrive before generation ends"
    );
    // Real model output about this chat.
    let lower = text.to_lowercase();
    let about = [
        "picnic",
        "lake",
        "alice",
        "bob",
        "sandwich",
        "noon",
        "saturday",
        "boathouse",
    ];
    assert!(
        about.iter().filter(|w| lower.contains(*w)).count() >= 2,
        "summary is not about the chat: {text}"
    );

    // Close the session through the gateway (no token needed).
    let del = Request::new(
        "DELETE",
        "https",
        "gateway.confide.test",
        &format!("/v1/sessions/{id}"),
    );
    assert_eq!(wire.send(&del).await.unwrap().status, 204);
    let mut again = Request::new(
        "POST",
        "https",
        "gateway.confide.test",
        &format!("/v1/sessions/{id}"),
    );
    again
        .headers
        .append("authorization", toks.next().unwrap().to_authorization());
    let resp = wire.send(&again).await.unwrap();
    assert_eq!(resp.status, 404);
    assert!(String::from_utf8_lossy(&resp.content).contains("session-unknown"));

    // A second session, then the node dies: the gateway answers node-gone.
    let mut engine2 = ClientEngine::new(
        verifier_with_trust(
            vendor.root_der(),
            LedgerTrust::new(&ledger_vkey, &witness_keys, 2).unwrap(),
            3600,
        ),
        SessionLimits::default(),
        tls_now(),
    )
    .unwrap();
    let mut open2 = Request::new("POST", "https", "gateway.confide.test", "/v1/sessions");
    open2
        .headers
        .append("authorization", toks.next().unwrap().to_authorization());
    open2.content = outgoing(&mut engine2);
    let resp = wire.send(&open2).await.unwrap();
    assert_eq!(resp.status, 200);
    let id2 = String::from_utf8(resp.headers.get("confide-session-id").unwrap().to_vec()).unwrap();
    engine2.put_incoming(&resp.content, tls_now()).unwrap();
    assert!(engine2.is_established());
    let node_output = node.output();
    drop(node);
    let mut gone = Request::new(
        "POST",
        "https",
        "gateway.confide.test",
        &format!("/v1/sessions/{id2}"),
    );
    gone.headers
        .append("authorization", toks.next().unwrap().to_authorization());
    gone.content = outgoing(&mut engine2);
    let resp = wire.send(&gone).await.unwrap();
    assert_eq!(resp.status, 502);
    assert!(String::from_utf8_lossy(&resp.content).contains("node-gone"));

    // The canary: nowhere in any output or file of node, gateway, relay.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut outputs: Vec<(String, Vec<u8>)> = vec![
        ("node".into(), node_output),
        ("gateway".into(), gateway.output()),
        ("relay".into(), relay.output()),
        ("ledger".into(), ledger_proc.output()),
    ];
    for (i, (_, w)) in witnesses.iter().enumerate() {
        outputs.push((format!("witness-{i}"), w.output()));
    }
    drop((gateway, relay, ledger_proc, witnesses));
    for (name, out) in &outputs {
        assert!(
            !out.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
            "canary leaked into {name} output"
        );
    }
    let node_log = String::from_utf8_lossy(&outputs[0].1);
    assert!(
        node_log.contains("\"event\":\"generation_finished\""),
        "node emitted no allow-listed events at trace: {node_log}"
    );
    assert!(node_log.contains("SIMULATED ATTESTATION"));
    let mut hits = Vec::new();
    // Every directory of every party (node, gateway, relay, ledger, witnesses).
    files_containing(root_dir.path(), CANARY.as_bytes(), &mut hits);
    assert!(hits.is_empty(), "canary found in files: {hits:?}");
}

#[test]
fn node_refuses_a_writable_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_confide"))
        .args([
            "node",
            "serve",
            "--dir",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--platform",
            "simulated",
            "--model",
            model_path().to_str().unwrap(),
            "--ledger",
            "http://127.0.0.1:9",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("working directory is writable"), "{err}");
    // Nothing was left behind by the check.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
