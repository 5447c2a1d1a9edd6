#![allow(clippy::unwrap_used)]
//! Issue 13, finding 2: issuance is not linkable to a session by time. With real
//! processes (`confide up`: issuer, gateway, relay, a simulated-TEE node), a device with a
//! wallet of its own drives the CLI, and the test reads the issuer's `token issued` and
//! the gateway's `session opened` timestamps from their logs.
//!
//! A session's setup window runs from the start of the device command that set it up to
//! the moment the gateway opened it. The test checks, by ordering only, that no issuance
//! falls in any such window: a fresh device's first request fails with a clear error and
//! fetches nothing, the tokens come from `confide wallet refill`, a step of its own that
//! ends before any session starts, and an emptied wallet fails again without fetching.
//! Before the fix, the first request fetched tokens and redeemed one milliseconds later.
//!
//! Model: `CONFIDE_MODEL` or `<repo>/models/SmolLM2-135M-Instruct.Q4_1.gguf`.

use std::path::Path;
use std::process::Output;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

mod stack;
use stack::{Up, confide, must_replace, sample_chat, text, variant};

/// The timestamps of the log lines of `log` that contain `event` (the services log with
/// `tracing`'s default format: an RFC 3339 UTC time first, possibly wrapped in ANSI
/// colour codes).
fn stamps(log: &Path, event: &str) -> Vec<OffsetDateTime> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(event))
        .map(|l| {
            let plain = strip_ansi(l);
            let first = plain
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            OffsetDateTime::parse(&first, &Rfc3339)
                .unwrap_or_else(|e| panic!("no timestamp in {plain:?}: {e}"))
        })
        .collect()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (a letter).
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `confide summarize` refused for an empty wallet: exit code 5, its last line the one
/// error line naming the way out (before it, only the "summarising N of M" line).
fn assert_wallet_empty(out: &Output) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert!(last.starts_with("error: no tokens in the wallet"), "{err}");
    assert!(last.contains("confide wallet refill"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Run a device command, with the time just before it started and just after it ended.
fn timed(f: impl FnOnce() -> Output) -> (OffsetDateTime, Output, OffsetDateTime) {
    let start = OffsetDateTime::now_utc();
    let out = f();
    (start, out, OffsetDateTime::now_utc())
}

#[test]
fn no_issuance_within_any_session_setup_window() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Up::start(&tmp.path().join("sys"), 1);
    // A device of its own: `up`'s account and trust, a wallet that starts empty (`up`
    // filled its own wallet, which this device does not use, so `up`'s background
    // refiller has nothing to do).
    let wallet = tmp.path().join("device-tokens.json");
    let cfg = variant(&up, tmp.path(), "device.toml", |t| {
        must_replace(&t, "\"tokens.json\"", &format!("\"{}\"", wallet.display()))
    });
    let cfg_s = cfg.to_str().unwrap();
    let issuer_log = up.dir.join("logs/issuer.err.log");
    let gateway_log = up.dir.join("logs/gateway.err.log");
    let issued = || stamps(&issuer_log, "token issued");
    let opened = || stamps(&gateway_log, "session opened");
    let issued_before = issued().len();
    assert!(
        issued_before > 0,
        "the issuer log is real (up filled its wallet)"
    );
    let opened_before = opened().len();
    let summarize = || {
        confide(&[
            "summarize",
            "--config",
            cfg_s,
            "--chat",
            sample_chat().to_str().unwrap(),
            "--last",
            "2",
        ])
    };
    let mut windows = Vec::new();

    // 1. A fresh device's first request: one clear line, exit code 5, nothing fetched and
    //    nothing sent.
    let (a, out, b) = timed(summarize);
    assert_wallet_empty(&out);
    windows.push((a, b));
    assert_eq!(issued().len(), issued_before, "the request fetched tokens");
    assert_eq!(opened().len(), opened_before, "a session was opened");

    // 2. The refill: a step of its own.
    let (refill_start, out, refill_end) =
        timed(|| confide(&["wallet", "refill", "--config", cfg_s, "--count", "3"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("fetched 3 tokens"),
        "{}",
        text(&out.stdout)
    );

    // 3. Two sessions spend the three tokens: verify (one), summarize (session and
    //    request).
    let (a, out, b) = timed(|| confide(&["verify", "--config", cfg_s]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    windows.push((a, b));
    let (a, out, b) = timed(summarize);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("0 tokens left in the wallet"),
        "the person is told to refill: {}",
        text(&out.stderr)
    );
    windows.push((a, b));

    // 4. The emptied wallet: the next request fails again and fetches nothing.
    let (a, out, b) = timed(summarize);
    assert_wallet_empty(&out);
    windows.push((a, b));

    let issued = issued();
    let sessions: Vec<OffsetDateTime> = opened()[opened_before..].to_vec();
    assert_eq!(
        sessions.len(),
        2,
        "verify and summarize each opened one session"
    );
    assert_eq!(
        issued.len(),
        issued_before + 3,
        "tokens were fetched only by the refill"
    );
    // Every issuance for this device lies within the refill step, which ended before the
    // first session's command started.
    for i in &issued[issued_before..] {
        assert!(
            refill_start <= *i && *i <= refill_end,
            "issuance at {i} outside the refill step"
        );
    }
    for s in &sessions {
        // The clocks agree: each session the gateway opened lies within the device
        // command that set it up ...
        let (start, _) = windows
            .iter()
            .find(|(a, b)| a <= s && s <= b)
            .unwrap_or_else(|| panic!("session at {s} in no device command"));
        // ... and no issuance at all happened between that command's start and the
        // session's opening.
        for i in &issued {
            assert!(
                !(start <= i && i <= s),
                "an issuance at {i} lies in the setup window [{start}, {s}] of a session"
            );
        }
    }
    // And the failing commands' windows hold no issuance either.
    for (a, b) in [windows[0], windows[3]] {
        assert!(issued.iter().all(|i| !(a <= *i && *i <= b)));
    }
}
