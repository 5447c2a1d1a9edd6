//! The ledger service on a real loopback socket: authentication, canonical-entry
//! checks, idempotent adds, tile and checkpoint caching headers, restart recovery,
//! and refusal to start when acknowledged entries are missing.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use confide_ledger::client::LedgerClient;
use confide_ledger::server::{Ledger, LedgerConfig};

mod common;
use confide_ledger::{Error, auth};
use confide_note::{KeyType, SignerKey};
use confide_release::{KeyConfigEntry, LedgerEntry, LedgerTrust, verify_bundle};

const ORIGIN: &str = "ledger.server.test";

async fn start(dir: &Path) -> (String, Ledger, tokio::task::JoinHandle<()>) {
    common::serve(dir, ORIGIN).await
}

fn entry(i: u8) -> Vec<u8> {
    LedgerEntry::KeyConfig(KeyConfigEntry {
        key_config: vec![i; 41],
        not_before: 1,
        not_after: 2,
    })
    .encode()
    .unwrap()
}

fn operator(dir: &Path) -> SignerKey {
    SignerKey::parse(
        std::fs::read_to_string(dir.join("operator.key"))
            .unwrap()
            .trim(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_auth_tiles_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, ledger, h) = start(tmp.path()).await;
    let vkey = ledger.verifier_key().to_vkey();
    let op = operator(tmp.path());
    let c = LedgerClient::new(&url).unwrap();
    let http = reqwest::Client::new();

    // No header: 401. Another key: 403. Non-canonical body: 400.
    let r = http
        .post(format!("{url}/add"))
        .body(entry(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let stranger = SignerKey::from_seed("operator", KeyType::Ed25519, &[8; 32]).unwrap();
    match c.add(&entry(1), &stranger).await {
        Err(Error::Status { status: 403, .. }) => {}
        other => panic!("{other:?}"),
    }
    let mut junk = entry(1);
    junk.push(0);
    match c.add(&junk, &op).await {
        Err(Error::Status { status: 400, .. }) => {}
        other => panic!("{other:?}"),
    }
    // A signature over another body is refused.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let hdr = auth::sign(&op, ORIGIN, now, &entry(9)).unwrap();
    let r = http
        .post(format!("{url}/add"))
        .header(auth::HEADER, hdr)
        .body(entry(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Good adds; a repeated entry keeps its index.
    for i in 0..10u8 {
        let r = c.add(&entry(i), &op).await.unwrap();
        assert_eq!(r.index, u64::from(i));
        assert_eq!(r.tree_size, u64::from(i) + 1);
    }
    assert_eq!(c.add(&entry(3), &op).await.unwrap().index, 3);

    // Checkpoint and tiles, with their caching headers.
    let r = http.get(format!("{url}/checkpoint")).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let r = http
        .get(format!("{url}/tile/0/000.p/10"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(r.bytes().await.unwrap().len(), 320);
    assert_eq!(
        http.get(format!("{url}/tile/0/000.p/11"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(format!("{url}/tile/0/000"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(format!("{url}/tile/0/0"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // The largest index a path can name (u64::MAX) is refused, not overflowed.
    for p in [
        "tile/0/x018/x446/x744/x073/x709/x551/615",
        "tile/entries/x018/x446/x744/x073/x709/x551/615.p/255",
        "tile/7/x018/x446/x744/x073/x709/x551/615",
    ] {
        let r = http.get(format!("{url}/{p}")).send().await.unwrap();
        assert_eq!(r.status(), 404);
    }

    let trust = LedgerTrust::new(&vkey, &[] as &[&str], 0).unwrap();
    let b = c.bundle(7).await.unwrap();
    assert_eq!(verify_bundle(&b, &trust, None, None).unwrap().index(), 7);
    h.abort();
    drop(ledger);

    // Restart: same key, same entries, same root.
    let before = c.checkpoint().await.ok();
    let (url2, ledger2, h2) = start(tmp.path()).await;
    assert_eq!(ledger2.verifier_key().to_vkey(), vkey);
    assert_eq!(ledger2.size(), 10);
    let c2 = LedgerClient::new(&url2).unwrap();
    let note = c2.checkpoint().await.unwrap();
    if let Some(b) = before {
        assert_eq!(b, note);
    }
    assert_eq!(c2.add(&entry(10), &op).await.unwrap().index, 10);
    h2.abort();
    drop(ledger2);

    // Lose acknowledged entries (cut the entries file): the ledger refuses to start.
    let log = tmp.path().join("entries.log");
    let len = std::fs::metadata(&log).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    match Ledger::open(LedgerConfig {
        dir: tmp.path().to_owned(),
        origin: ORIGIN.into(),
        witnesses: vec![],
        operators: vec![],
        recosign_every: None,
    })
    .await
    {
        Err(Error::CheckpointMismatch(_)) => {}
        other => panic!("{other:?}"),
    }
}
