//! `confide_ledger::mirror::export` against real ledgers on loopback sockets: a new mirror,
//! a mirror brought forward past a full tile, and every refusal (wrong signer, a forked
//! log, a rolled-back log, another origin), each leaving the mirror as it was.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use confide_ledger::Error;
use confide_ledger::client::LedgerClient;
use confide_ledger::mirror::{ExportSummary, HEADERS_FILE, export};
use confide_ledger::server::Ledger;

mod common;
use confide_note::{KeyType, SignerKey};
use confide_release::{KeyConfigEntry, LedgerEntry, LedgerTrust};

const ORIGIN: &str = "ledger.mirror.test";

struct Running {
    url: String,
    ledger: Ledger,
    dir: tempfile::TempDir,
    _serve: tokio::task::JoinHandle<()>,
}

async fn start(origin: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let (url, ledger, serve) = common::serve(dir.path(), origin).await;
    Running {
        url,
        ledger,
        dir,
        _serve: serve,
    }
}

/// A distinct canonical entry for each `(tag, i)`.
fn entry(tag: u8, i: u16) -> Vec<u8> {
    let mut key_config = vec![tag; 41];
    key_config[..2].copy_from_slice(&i.to_be_bytes());
    LedgerEntry::KeyConfig(KeyConfigEntry {
        key_config,
        not_before: 1,
        not_after: 2,
    })
    .encode()
    .unwrap()
}

/// Add entries `range` tagged `tag`, concurrently (the sequencer batches them).
async fn add(l: &Running, tag: u8, range: std::ops::Range<u16>) {
    let op = SignerKey::parse(
        std::fs::read_to_string(l.dir.path().join("operator.key"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let client = LedgerClient::new(&l.url).unwrap();
    let (client, op) = (&client, &op);
    let adds = range.map(|i| async move { client.add(&entry(tag, i), op).await.unwrap() });
    futures::future::join_all(adds).await;
}

fn trust(l: &Running) -> LedgerTrust {
    LedgerTrust::new(&l.ledger.verifier_key().to_vkey(), &[] as &[String], 0).unwrap()
}

async fn export_from(
    l: &Running,
    out: &Path,
    trust: Option<&LedgerTrust>,
) -> Result<ExportSummary, Error> {
    export(&LedgerClient::new(&l.url).unwrap(), out, trust).await
}

fn checkpoint(out: &Path) -> Vec<u8> {
    std::fs::read(out.join("checkpoint")).unwrap()
}

/// Every file of a mirror with its content, sorted by path.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_mirror_then_brought_forward() {
    let l = start(ORIGIN).await;
    add(&l, 1, 0..3).await;
    let out = tempfile::tempdir().unwrap();
    let t = trust(&l);

    let s = export_from(&l, out.path(), Some(&t)).await.unwrap();
    assert_eq!((s.size, s.previous_size), (3, 0));
    assert_eq!(
        (s.tiles_written, s.tiles_unchanged),
        (2, 0),
        "entries and level 0"
    );
    let served = LedgerClient::new(&l.url)
        .unwrap()
        .checkpoint()
        .await
        .unwrap();
    assert_eq!(
        checkpoint(out.path()),
        served.as_bytes(),
        "the signed note, unchanged"
    );
    assert!(out.path().join("tile/entries/000.p/3").is_file());
    assert!(out.path().join("tile/0/000.p/3").is_file());
    assert_eq!(
        std::fs::read_to_string(out.path().join("_headers")).unwrap(),
        HEADERS_FILE
    );

    // Nothing new: nothing written.
    let s = export_from(&l, out.path(), Some(&t)).await.unwrap();
    assert_eq!(
        (s.size, s.previous_size, s.tiles_written, s.tiles_unchanged),
        (3, 3, 0, 2)
    );

    // Past one full tile: full entry and level-0 tiles, a level-1 tile, new partials.
    add(&l, 1, 3..300).await;
    let s = export_from(&l, out.path(), Some(&t)).await.unwrap();
    assert_eq!((s.size, s.previous_size), (300, 3));
    for p in [
        "tile/entries/000",
        "tile/entries/001.p/44",
        "tile/0/000",
        "tile/0/001.p/44",
        "tile/1/000.p/1",
    ] {
        assert!(out.path().join(p).is_file(), "{p} missing");
    }
    // Old partial tiles stay (C2SP tlog-tiles: clients may still ask for them).
    assert!(out.path().join("tile/entries/000.p/3").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forks_rollbacks_wrong_signers_and_origins_leave_the_mirror_alone() {
    let l = start(ORIGIN).await;
    add(&l, 1, 0..5).await;
    let out = tempfile::tempdir().unwrap();
    export_from(&l, out.path(), None).await.unwrap();
    let before = snapshot(out.path());

    // A checkpoint not signed by the key the mirror operator pins.
    let other_key = SignerKey::from_seed(ORIGIN, KeyType::Ed25519, &[9; 32]).unwrap();
    let wrong = LedgerTrust::new(&other_key.verifier().to_vkey(), &[] as &[String], 0).unwrap();
    assert!(matches!(
        export_from(&l, out.path(), Some(&wrong)).await,
        Err(Error::Release(_))
    ));

    // Same origin, other history, larger: a fork.
    let fork = start(ORIGIN).await;
    add(&fork, 2, 0..7).await;
    match export_from(&fork, out.path(), None).await {
        Err(Error::MirrorFork(why)) => assert!(why.contains("size 5"), "{why}"),
        other => panic!("expected a fork, got {other:?}"),
    }

    // Same origin, fewer entries: a rollback.
    let small = start(ORIGIN).await;
    add(&small, 1, 0..2).await;
    assert!(matches!(
        export_from(&small, out.path(), None).await,
        Err(Error::MirrorRollback {
            mirrored: 5,
            ledger: 2
        })
    ));

    // Another log altogether.
    let other = start("another.log.test").await;
    add(&other, 1, 0..6).await;
    match export_from(&other, out.path(), None).await {
        Err(Error::MirrorFork(why)) => assert!(why.contains("origin"), "{why}"),
        other => panic!("expected an origin refusal, got {other:?}"),
    }

    assert!(
        snapshot(out.path()) == before,
        "every refusal left the mirror alone, tiles included"
    );
    // And the real ledger still extends it.
    add(&l, 1, 5..6).await;
    assert_eq!(export_from(&l, out.path(), None).await.unwrap().size, 6);
}
