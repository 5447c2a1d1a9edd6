#![allow(clippy::unwrap_used)]
//! The release lifecycle across processes: `confide up` (ledger, three witnesses, issuer,
//! a simulated-TEE node, gateway, relay). A trust policy with a maximum release age, or a
//! maximum age for the newest witness cosignature, refuses the node with its own error
//! once the release or the checkpoint is older than that. Then the operator revokes the
//! node's release with `confide release revoke`; from then on the device refuses the
//! node during the handshake, `confide verify --explain` gives the reason, the node
//! starts no generation, and `confide monitor` lists the revocation.
//!
//! Model: `CONFIDE_MODEL` or `<repo>/models/SmolLM2-135M-Instruct.Q4_1.gguf`.

use std::time::{Duration, Instant};

use confide_attest::TrustPolicy;

mod stack;
use stack::{Up, confide, sample_chat, summarize_last, text, variant};

const REASON: &str = "kernel CVE-2026-0001: rebuild with the fixed kernel";

#[test]
fn revoked_release_is_refused_before_any_request() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Up::start(&tmp.path().join("sys"), 1);
    let cfg = up.config();
    let cfg_s = cfg.to_str().unwrap();
    let out = confide(&["verify", "--config", cfg_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Freshness: the same system under stricter policies, once a second has passed
    // since the release's not_before and the checkpoint's cosignatures.
    std::thread::sleep(Duration::from_secs(2));
    for (name, edit, needle) in [
        (
            "old-release",
            "max_release_age_secs = 1\n",
            "release too old",
        ),
        (
            "stale-checkpoint",
            "max_cosignature_age_secs = 1\n",
            "stale checkpoint: newest witness cosignature at",
        ),
    ] {
        let text_policy = std::fs::read_to_string(up.dir.join("trust-policy.toml")).unwrap();
        let strict = tmp.path().join(format!("{name}-policy.toml"));
        // The ledger table is the document's last; the limits go into it.
        assert!(text_policy.contains("[ledger]"));
        std::fs::write(&strict, format!("{text_policy}{edit}")).unwrap();
        let cfg = variant(&up, tmp.path(), &format!("{name}.toml"), |t| {
            t.replace(
                "\"trust-policy.toml\"",
                &format!("\"{}\"", strict.display()),
            )
        });
        let out = confide(&["verify", "--config", cfg.to_str().unwrap(), "--explain"]);
        assert!(!out.status.success(), "{name}: accepted");
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(said.contains(needle), "{name}: {said}");
    }

    // Find the node's release in the log, as an auditor would.
    let policy =
        TrustPolicy::from_toml(&std::fs::read_to_string(up.dir.join("trust-policy.toml")).unwrap())
            .unwrap();
    let ledger = up.url("ledger");
    let monitor = || {
        let state = tmp.path().join("monitor.state");
        let mut args = vec![
            "monitor".to_owned(),
            "--ledger".into(),
            ledger.clone(),
            "--state".into(),
            state.to_str().unwrap().into(),
            "--ledger-key".into(),
            policy.ledger.log_vkey.clone(),
            "--quorum".into(),
            policy.ledger.witness_quorum.to_string(),
        ];
        for w in &policy.ledger.witness_vkeys {
            args.extend(["--witness-key".into(), w.clone()]);
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = confide(&a);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let listing = monitor();
    let index = listing
        .lines()
        .find(|l| l.split('\t').nth(1) == Some("release"))
        .and_then(|l| l.split('\t').next())
        .unwrap_or_else(|| panic!("no release in {listing}"))
        .to_owned();

    let key = up.dir.join("ledger/operator.key");
    let out = confide(&[
        "release",
        "revoke",
        &index,
        "--reason",
        REASON,
        "--ledger",
        &ledger,
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The revocation reaches devices with the next cosigned checkpoint.
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let out = confide(&["verify", "--config", cfg_s, "--explain"]);
        if !out.status.success() {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "the device still accepts the release"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let said = format!("{}{}", text(&refused.stdout), text(&refused.stderr));
    assert!(
        said.contains(&format!(
            "the release at ledger index {index} was revoked: {REASON}"
        )),
        "{said}"
    );

    // No application data: the request fails in the handshake, and the node starts no
    // generation for it (its allow-listed log counts `generation_started`).
    let generations = || {
        std::fs::read_to_string(up.dir.join("logs/node-1.err.log"))
            .unwrap_or_default()
            .matches("\"generation_started\"")
            .count()
    };
    let before = generations();
    let out = summarize_last(cfg_s, &sample_chat(), 1);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("revoked"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(generations(), before);

    let listing = monitor();
    assert!(
        listing.contains(&format!("revocation\tof {index}\treason {REASON:?}")),
        "{listing}"
    );
}
