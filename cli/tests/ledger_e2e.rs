//! End to end: a real ledger and three real witnesses (the `confide` binary, on
//! loopback), 1,000 entries from concurrent writers, `kill -9` of the ledger mid-way
//! and a restart, then every acknowledged entry's inclusion verified under the final
//! checkpoint cosigned by all three witnesses, consistency with a checkpoint taken
//! before the crash, and a clean `confide monitor` audit.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use confide_ledger::client::LedgerClient;
use confide_note::SignerKey;
use confide_release::{
    LedgerEntry, LedgerTrust, Platform, ReleaseManifest, StoredCheckpoint, verify_bundle,
    verify_checkpoint,
};
use tokio::sync::RwLock;

const ORIGIN: &str = "ledger.e2e.test";
const WRITERS: usize = 8;
const PER_WRITER: usize = 125;

/// A child process killed (SIGKILL) and reaped on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_confide"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// Wait (bounded) for a stdout line starting with `prefix`; return the rest.
    fn value(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no `{prefix}` line in time"));
            if let Some(v) = l.strip_prefix(prefix) {
                return v.trim().to_owned();
            }
        }
    }
}

fn start_ledger(dir: &Path, witnesses: &[String]) -> (Proc, String, String) {
    start_ledger_with(dir, witnesses, &[])
}

fn start_ledger_with(dir: &Path, witnesses: &[String], extra: &[&str]) -> (Proc, String, String) {
    let mut args = vec![
        "ledger",
        "serve",
        "--dir",
        dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--origin",
        ORIGIN,
    ];
    args.extend_from_slice(extra);
    for w in witnesses {
        args.push("--witness");
        args.push(w);
    }
    let p = Proc::start(&args);
    let vkey = p.value("ledger verifier key:");
    let url = p.value("ledger listening on");
    (p, vkey, url)
}

/// Start the ledger once so it creates its keys; return its verifier key and the
/// operator's signing key.
fn create_ledger(dir: &Path) -> (String, SignerKey) {
    let (first, vkey, _) = start_ledger(dir, &[]);
    drop(first);
    let key = std::fs::read_to_string(dir.join("operator.key")).unwrap();
    (vkey, SignerKey::parse(key.trim()).unwrap())
}

/// A witness for the log `vkey`; returns it with its `URL=VKEY` argument and its key.
fn start_witness(dir: &Path, name: &str, vkey: &str) -> (Proc, String, String) {
    let p = Proc::start(&[
        "witness",
        "serve",
        "--dir",
        dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--name",
        name,
        "--log",
        vkey,
    ]);
    let wkey = p.value("witness verifier key:");
    let wurl = p.value("witness listening on");
    (p, format!("{wurl}={wkey}"), wkey)
}

fn entry(writer: usize, i: usize) -> Vec<u8> {
    LedgerEntry::Release(ReleaseManifest {
        platform: Platform::Simulated,
        measurement: vec![writer as u8; 48],
        snp_policy: Some(0x30000),
        rtmrs: Vec::new(),
        gpu_reference: Default::default(),
        model_digest: [i as u8; 32],
        config_digest: [3; 32],
        source_revision: format!("writer-{writer}-entry-{i}"),
        build_recipe_digest: [7; 32],
        not_before: 1_700_000_000,
        not_after: 1_900_000_000,
        notes: String::new(),
    })
    .encode()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_three_witnesses_concurrent_writers_kill9_restart() {
    tokio::time::timeout(Duration::from_secs(400), scenario())
        .await
        .expect("scenario timed out");
}

async fn scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let ldir = tmp.path().join("ledger");

    // First start creates the ledger's keys; witnesses need its verifier key.
    let (vkey, operator) = create_ledger(&ldir);

    let mut witnesses = Vec::new();
    let mut witness_args = Vec::new();
    let mut witness_keys = Vec::new();
    for i in 0..3 {
        let wdir = tmp.path().join(format!("w{i}"));
        let (p, arg, wkey) = start_witness(&wdir, &format!("w{i}.e2e.test"), &vkey);
        witness_args.push(arg);
        witness_keys.push(wkey);
        witnesses.push(p);
    }
    let trust = LedgerTrust::new(&vkey, &witness_keys, 3).unwrap();

    let (ledger, vkey2, url) = start_ledger(&ldir, &witness_args);
    assert_eq!(vkey, vkey2, "the key must survive a restart");
    let url = Arc::new(RwLock::new(url));
    let mut ledger = Some(ledger);

    let acked = Arc::new(AtomicUsize::new(0));
    let operator = Arc::new(operator);
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let url = url.clone();
        let acked = acked.clone();
        let operator = operator.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..PER_WRITER {
                let e = entry(w, i);
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    let u = url.read().await.clone();
                    let c = LedgerClient::new(&u).unwrap();
                    match c.add_with_origin(&e, &operator, ORIGIN).await {
                        Ok(r) => {
                            assert!(r.index < r.tree_size);
                            got.push((e.clone(), r.index));
                            acked.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        Err(err) => {
                            assert!(Instant::now() < deadline, "add kept failing: {err}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
            got
        }));
    }

    // Mid-way: remember a checkpoint, then kill -9 the ledger and restart it.
    while acked.load(Ordering::SeqCst) < 400 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before_crash_note = LedgerClient::new(&url.read().await.clone())
        .unwrap()
        .checkpoint()
        .await
        .unwrap();
    let before = verify_checkpoint(&before_crash_note, &trust, None, None).unwrap();
    drop(ledger.take()); // SIGKILL while writers are sending
    let acked_at_kill = acked.load(Ordering::SeqCst);
    assert!(
        acked_at_kill < WRITERS * PER_WRITER,
        "the kill must land mid-way"
    );
    let (l2, _, url2) = start_ledger(&ldir, &witness_args);
    ledger = Some(l2);
    *url.write().await = url2.clone();

    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), WRITERS * PER_WRITER);
    let indices: HashSet<u64> = all.iter().map(|(_, i)| *i).collect();
    assert_eq!(indices.len(), all.len(), "every entry has its own index");

    // Final checkpoint: signed by the ledger, cosigned by all three witnesses,
    // consistent with the one seen before the crash.
    let client = LedgerClient::new(&url2).unwrap();
    let note = client.checkpoint().await.unwrap();
    let size = LedgerClient::parse_checkpoint(&note).unwrap().size();
    assert_eq!(
        size,
        (WRITERS * PER_WRITER) as u64,
        "no entry lost or duplicated"
    );
    let stored = StoredCheckpoint::parse(&before.checkpoint().encode()).unwrap();
    let proof = client.consistency_proof(stored.size(), size).await.unwrap();
    let fin = verify_checkpoint(&note, &trust, Some(&stored), Some(&proof)).unwrap();
    assert_eq!(fin.cosigners().len(), 3);

    // Every acknowledged entry is included at its index under the final checkpoint.
    for (bytes, index) in &all {
        let b = client.bundle_at(*index, &note, size).await.unwrap();
        assert_eq!(&b.entry, bytes);
        let v = verify_bundle(&b, &trust, Some(fin.checkpoint()), None).unwrap();
        assert_eq!(v.index(), *index);
        // And it survives the stapled encoding.
        let round = confide_release::Bundle::decode(&b.encode().unwrap()).unwrap();
        assert_eq!(round, b);
    }

    // The monitor recomputes the tree, lists the releases, and stores its state.
    let state = tmp.path().join("monitor.state");
    let mut args = vec![
        "monitor".to_string(),
        "--ledger".into(),
        url2.clone(),
        "--state".into(),
        state.to_str().unwrap().into(),
        "--ledger-key".into(),
        vkey.clone(),
        "--quorum".into(),
        "3".into(),
    ];
    for k in &witness_keys {
        args.push("--witness-key".into());
        args.push(k.clone());
    }
    for _ in 0..2 {
        let out = run_confide(args.clone()).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "monitor failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("ok: size 1000, 1000 releases"), "{stdout}");
    }
    assert_eq!(
        StoredCheckpoint::parse(&std::fs::read_to_string(&state).unwrap())
            .unwrap()
            .size(),
        1000
    );

    // The monitor exits non-zero on a split view or a rollback against its state.
    let forked = StoredCheckpoint::new(ORIGIN, 1000, confide_tlog::Hash([1; 32])).unwrap();
    std::fs::write(&state, forked.encode()).unwrap();
    let out = run_confide(args.clone()).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fork"));
    let ahead = StoredCheckpoint::new(ORIGIN, 2000, confide_tlog::Hash([1; 32])).unwrap();
    std::fs::write(&state, ahead.encode()).unwrap();
    let out = run_confide(args.clone()).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rollback"));

    // The operator commands: publish a manifest, add a key config, get and verify a bundle.
    let manifest = tmp.path().join("release.toml");
    std::fs::write(
        &manifest,
        format!(
            "platform = \"tdx\"\nmeasurement = \"{}\"\nrtmrs = [\"{r}\", \"{r}\", \"{r}\"]\n\
             model_digest = \"{}\"\nconfig_digest = \"{}\"\nsource_revision = \"git:cli\"\nbuild_recipe_digest = \"{}\"\n\
             not_before = \"2026-01-01T00:00:00Z\"\nnot_after = 1900000000\n",
            "ab".repeat(48),
            "cd".repeat(32),
            "12".repeat(32),
            "ef".repeat(32),
            r = "0a".repeat(48)
        ),
    )
    .unwrap();
    let key_file = ldir.join("operator.key");
    let out = run_confide(vec![
        "release".into(),
        "publish".into(),
        manifest.to_str().unwrap().into(),
        "--ledger".into(),
        url2.clone(),
        "--key".into(),
        key_file.to_str().unwrap().into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("index 1000 tree_size 1001"));
    let kc = tmp.path().join("kc.json");
    std::fs::write(
        &kc,
        r#"{"kind":"key-config","key_config":"0001002000","not_before":1,"not_after":2}"#,
    )
    .unwrap();
    let out = run_confide(vec![
        "ledger".into(),
        "add".into(),
        "--entry".into(),
        kc.to_str().unwrap().into(),
        "--ledger".into(),
        url2.clone(),
        "--key".into(),
        key_file.to_str().unwrap().into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("index 1001 tree_size 1002"));
    // `release publish` takes a key-config document too (what `gateway keys --entry-out`
    // writes).
    let kc2 = tmp.path().join("kc2.json");
    std::fs::write(
        &kc2,
        r#"{"kind":"key-config","key_config":"0001002001","not_before":1,"not_after":2}"#,
    )
    .unwrap();
    let out = run_confide(vec![
        "release".into(),
        "publish".into(),
        kc2.to_str().unwrap().into(),
        "--ledger".into(),
        url2.clone(),
        "--key".into(),
        key_file.to_str().unwrap().into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("index 1002 tree_size 1003"));
    let bundle = tmp.path().join("bundle.bin");
    let mut trust_args = vec![
        "--ledger-key".to_string(),
        vkey.clone(),
        "--quorum".into(),
        "3".into(),
    ];
    for k in &witness_keys {
        trust_args.push("--witness-key".into());
        trust_args.push(k.clone());
    }
    let mut a = vec![
        "ledger".to_string(),
        "proof".into(),
        "--ledger".into(),
        url2.clone(),
        "--index".into(),
        "1000".into(),
        "--out".into(),
        bundle.to_str().unwrap().into(),
    ];
    a.extend(trust_args.clone());
    let out = run_confide(a).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut a = vec![
        "ledger".to_string(),
        "verify".into(),
        "--bundle".into(),
        bundle.to_str().unwrap().into(),
    ];
    a.extend(trust_args);
    let out = run_confide(a).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok: index 1000"), "{stdout}");
    assert!(stdout.contains("git:cli"), "{stdout}");

    drop(ledger);
    drop(witnesses);
}

async fn run_confide(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_confide"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// An idle ledger keeps its checkpoint fresh: with `--recosign-secs`, the witnesses cosign
/// the unchanged tree again, so the newest cosignature keeps moving while the size and
/// root stay put, and each new checkpoint still verifies and is consistent with the last.
/// Without this, a device with `max_cosignature_age_secs` would refuse a healthy ledger
/// that simply had nothing new to log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_ledger_is_cosigned_again() {
    tokio::time::timeout(Duration::from_secs(120), idle_scenario())
        .await
        .expect("scenario timed out");
}

async fn idle_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let ldir = tmp.path().join("ledger");
    let (vkey, operator) = create_ledger(&ldir);
    let (_witness, witness_arg, wkey) = start_witness(&tmp.path().join("w"), "w.idle.test", &vkey);
    let trust = LedgerTrust::new(&vkey, std::slice::from_ref(&wkey), 1).unwrap();
    let (_ledger, _, url) = start_ledger_with(&ldir, &[witness_arg], &["--recosign-secs", "1"]);
    let client = LedgerClient::new(&url).unwrap();
    client
        .add_with_origin(&entry(0, 0), &operator, ORIGIN)
        .await
        .unwrap();

    let first_note = client.checkpoint().await.unwrap();
    let first = verify_checkpoint(&first_note, &trust, None, None).unwrap();
    let first_at = first.newest_cosignature().expect("cosigned");
    // Cosignature timestamps have one-second resolution: wait for one strictly newer.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (note, later) = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let note = client.checkpoint().await.unwrap();
        let stored = StoredCheckpoint::parse(&first.checkpoint().encode()).unwrap();
        let v = verify_checkpoint(&note, &trust, Some(&stored), Some(&[])).unwrap();
        if v.newest_cosignature().unwrap() > first_at {
            break (note, v);
        }
        assert!(
            Instant::now() < deadline,
            "no new cosignature on an idle ledger"
        );
    };
    assert_ne!(note, first_note);
    let parsed = |n: &str| LedgerClient::parse_checkpoint(n).unwrap();
    assert_eq!(parsed(&note).size(), 1, "nothing was added");
    assert_eq!(parsed(&note).root(), parsed(&first_note).root());
    assert_eq!(later.cosigners().len(), 1);
}
