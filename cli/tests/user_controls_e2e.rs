#![allow(clippy::unwrap_used)]
//! The person's controls, across processes (`confide up` and the CLI):
//!
//! - AI features are off until turned on: `summarize` and `suggest` fail with their own
//!   error and exit code (6), and a capture standing in for every party (relay, issuer,
//!   ledger) shows that not one connection was made;
//! - a protected chat (by `confide chats protect`, or by its Advanced Chat Privacy line)
//!   fails with exit code 7, again with nothing sent;
//! - every answer is labelled, and comes with a receipt signed by the attested key that
//!   `confide receipts verify` checks offline; changing any byte of it, or checking it
//!   against another release, fails with a specific error.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

mod stack;
use stack::{Up, confide, must_replace, repo, text, variant};

/// A loopback listener that counts connections (and reads whatever arrives).
struct Capture {
    url: String,
    connections: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
}

fn capture() -> Capture {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(AtomicUsize::new(0));
    let (c, b) = (Arc::clone(&connections), Arc::clone(&bytes));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            c.fetch_add(1, Ordering::SeqCst);
            let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(200)));
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                b.fetch_add(n, Ordering::SeqCst);
            }
        }
    });
    Capture {
        url,
        connections,
        bytes,
    }
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// One `error:` line naming `needle`, and the exit code.
fn refused(out: &Output, exit: i32, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(code(out), Some(exit), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        text(&out.stdout).trim().is_empty(),
        "nothing printed as an answer"
    );
}

/// `t` with its own (fresh) consent and protected-chat files in `dir`.
fn own_state(t: &str, dir: &Path) -> String {
    let consent = dir.join("own-consent.json").display().to_string();
    let protected = dir.join("own-protected.json").display().to_string();
    let t = must_replace(t, "\"consent.json\"", &format!("\"{consent}\""));
    must_replace(&t, "\"protected-chats.json\"", &format!("\"{protected}\""))
}

/// A configuration whose relay, issuer and ledger are all `cap`, with its own state.
fn captured(up: &Up, dir: &Path, cap: &Capture, name: &str) -> PathBuf {
    let parties = [
        (
            format!("relay = \"{}/\"", up.url("relay")),
            format!("relay = \"{}/\"", cap.url),
        ),
        (
            format!("issuer = \"{}\"", up.url("issuer")),
            format!("issuer = \"{}\"", cap.url),
        ),
        (
            format!("ledger = \"{}\"", up.url("ledger")),
            format!("ledger = \"{}\"", cap.url),
        ),
    ];
    variant(up, dir, name, |t| {
        let mut t = t;
        for (from, to) in &parties {
            t = must_replace(&t, from, to);
        }
        own_state(&t, dir)
    })
}

/// The same state files, but the real parties.
fn real_with_own_state(up: &Up, dir: &Path, name: &str) -> PathBuf {
    variant(up, dir, name, |t| own_state(&t, dir))
}

#[test]
fn consent_protection_labels_and_receipts() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Up::start(&tmp.path().join("sys"), 1);
    let cap = capture();
    let cfg = captured(&up, tmp.path(), &cap, "captured.toml");
    let cfg = cfg.to_str().unwrap();
    let chat = repo().join("examples/chat-whatsapp-android.txt");
    let chat = chat.to_str().unwrap();
    let summarize = |cfg: &str, chat: &str| {
        confide(&["summarize", "--config", cfg, "--chat", chat, "--last", "2"])
    };

    // 1. No consent yet: nothing leaves the device, even with --show-verification.
    let status = confide(&["consent", "status", "--config", cfg]);
    assert!(text(&status.stdout).contains("off (never turned on)"));
    refused(&summarize(cfg, chat), 6, "AI features are off");
    refused(
        &confide(&[
            "summarize",
            "--config",
            cfg,
            "--chat",
            chat,
            "--show-verification",
        ]),
        6,
        "AI features are off",
    );
    refused(
        &confide(&["suggest", "--config", cfg, "--draft", "see you at 5"]),
        6,
        "AI features are off",
    );
    assert_eq!(
        cap.connections.load(Ordering::SeqCst),
        0,
        "no party was contacted"
    );

    // 2. Consent given, chat protected: still nothing sent.
    assert!(
        confide(&["consent", "on", "--config", cfg])
            .status
            .success()
    );
    let out = confide(&[
        "chats",
        "protect",
        "--config",
        cfg,
        "--chat",
        chat,
        "--name",
        "book club",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = text(&confide(&["chats", "list", "--config", cfg]).stdout);
    assert!(list.contains("book club"), "{list}");
    refused(&summarize(cfg, chat), 7, "you protected this chat");

    // A later export of the same group, with a new member, is still recognised.
    let later = tmp.path().join("later.txt");
    let mut export = std::fs::read_to_string(chat).unwrap();
    export.push_str("11/22/26, 9:00 AM - Zoe: hi all, new here\n");
    std::fs::write(&later, &export).unwrap();
    refused(
        &summarize(cfg, later.to_str().unwrap()),
        7,
        "you protected this chat",
    );

    // A chat whose export says Advanced Chat Privacy is on, never listed here.
    let acp = tmp.path().join("acp.txt");
    std::fs::write(
        &acp,
        "12/01/26, 9:00 AM - Ann: lunch?\n\
         12/01/26, 9:01 AM - Bob: sure\n\
         12/01/26, 9:02 AM - Bob turned on advanced chat privacy. This setting prevents \
         others from exporting chats, auto-downloading media and using messages for AI features.\n",
    )
    .unwrap();
    refused(
        &summarize(cfg, acp.to_str().unwrap()),
        7,
        "Advanced Chat Privacy",
    );
    assert_eq!(
        cap.connections.load(Ordering::SeqCst),
        0,
        "no party was contacted"
    );
    assert_eq!(cap.bytes.load(Ordering::SeqCst), 0);

    // Consent withdrawn is its own message.
    assert!(
        confide(&["consent", "off", "--config", cfg])
            .status
            .success()
    );
    refused(
        &confide(&["suggest", "--config", cfg, "--draft", "hello"]),
        6,
        "you turned them off",
    );

    // 3. The same device state against the real parties: allowed once unprotected and
    //    on; the answer is labelled and its receipt kept.
    let real = real_with_own_state(&up, tmp.path(), "real.toml");
    let real = real.to_str().unwrap();
    assert!(
        confide(&["consent", "on", "--config", real])
            .status
            .success()
    );
    assert!(
        confide(&["chats", "unprotect", "--config", real, "--chat", chat])
            .status
            .success()
    );
    let out = summarize(real, chat);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer = text(&out.stdout);
    assert!(
        answer.contains("privately processed by an attested node: simulated (SIMULATED"),
        "{answer}"
    );
    assert!(
        answer.contains("ledger confide.local/ledger index"),
        "{answer}"
    );

    // 4. The receipt: listed, verified offline, and every tampering refused.
    let listed = text(&confide(&["receipts", "list", "--config", real]).stdout);
    let file = PathBuf::from(listed.lines().last().unwrap().rsplit('\t').next().unwrap());
    assert!(file.is_file(), "{listed}");
    let ok = confide(&[
        "receipts",
        "verify",
        "--config",
        real,
        file.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["platform"], "simulated");

    // Against the release the node runs: accepted; against another release: refused.
    let release = up.dir.join("node-1/release.toml");
    let against = |manifest: &Path| {
        confide(&[
            "receipts",
            "verify",
            "--config",
            real,
            file.to_str().unwrap(),
            "--release",
            manifest.to_str().unwrap(),
        ])
    };
    let out = against(&release);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let other = tmp.path().join("other-release.toml");
    let manifest = std::fs::read_to_string(&release).unwrap();
    let measurement = v["measurement"].as_str().unwrap();
    let flipped = format!(
        "{}{}",
        if measurement.starts_with('0') {
            "1"
        } else {
            "0"
        },
        &measurement[1..]
    );
    std::fs::write(&other, must_replace(&manifest, measurement, &flipped)).unwrap();
    let out = against(&other);
    assert_eq!(code(&out), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("measurement is not the one the expected release lists"),
        "{}",
        text(&out.stderr)
    );

    // Changing any single byte of the receipt file fails, with a receipt error (or, where
    // the change breaks the file's own syntax, "not a Confide receipt file").
    let original = std::fs::read(&file).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&original).unwrap();
    let mut errors = std::collections::BTreeSet::new();
    // Every byte of the signed body, every byte of the signature, a spread of the
    // certificate's bytes: each changed on its own.
    // (field, every how many bytes, replacement byte pair): each byte changed on its own
    // to a value of the same alphabet, so the change is a valid string of that field.
    let mut cases: Vec<serde_json::Value> = Vec::new();
    for (field, step, (x, y)) in [
        ("body", 1, (b'1', b'2')),
        ("signature", 1, (b'a', b'b')),
        ("certificate", 97, (b'A', b'B')),
    ] {
        let value = doc[field].as_str().unwrap().as_bytes().to_vec();
        for i in (0..value.len()).step_by(step) {
            let mut b = value.clone();
            b[i] = if b[i] == x { y } else { x };
            let mut d = doc.clone();
            d[field] = String::from_utf8(b).unwrap().into();
            cases.push(d);
        }
    }
    let tampered = tmp.path().join("tampered.json");
    for d in &cases {
        if *d == doc {
            continue;
        }
        std::fs::write(&tampered, serde_json::to_vec(d).unwrap()).unwrap();
        let out = confide(&[
            "receipts",
            "verify",
            "--config",
            real,
            tampered.to_str().unwrap(),
        ]);
        assert_eq!(code(&out), Some(4), "accepted: {d}\n{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.starts_with("error: receipt rejected: "), "{err}");
        errors.insert(
            err.trim_start_matches("error: receipt rejected: ")
                .split(':')
                .next()
                .unwrap()
                .to_owned(),
        );
    }
    eprintln!("{} tampered receipts refused, as: {errors:?}", cases.len());
    assert!(
        errors.len() >= 4,
        "distinct, specific errors expected: {errors:?}"
    );
    // Every byte of the file, through the SDK in-process (the same code the CLI runs):
    // each change fails, unless it only re-formats the JSON (same parsed document).
    let cfg = confide_sdk::config::ClientConfig::load(Path::new(real)).unwrap();
    let l = &cfg.policy.ledger;
    let trust =
        confide_release::LedgerTrust::new(&l.log_vkey, &l.witness_vkeys, l.witness_quorum as usize)
            .unwrap();
    let check = |bytes: &[u8]| {
        std::fs::write(&tampered, bytes).unwrap();
        confide_sdk::receipt::verify_file(&tampered, &cfg.policy, &trust, None)
    };
    check(&original).unwrap();
    let mut swept = 0;
    for i in 0..original.len() {
        let mut b = original.clone();
        b[i] ^= 0x01;
        if serde_json::from_slice::<serde_json::Value>(&b).is_ok_and(|v| v == doc) {
            continue;
        }
        swept += 1;
        assert!(
            matches!(check(&b), Err(confide_sdk::Error::Receipt(_))),
            "byte {i} changed and the receipt still verified"
        );
    }
    assert!(swept > original.len() / 2, "{swept} of {}", original.len());

    // And the untouched file still verifies.
    std::fs::write(&tampered, &original).unwrap();
    assert!(
        confide(&[
            "receipts",
            "verify",
            "--config",
            real,
            tampered.to_str().unwrap()
        ])
        .status
        .success()
    );
}
