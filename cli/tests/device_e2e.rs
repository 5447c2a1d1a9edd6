#![allow(clippy::unwrap_used)]
//! The device side end to end, with real processes: `confide up --nodes 2` starts the
//! ledger, three witnesses, the issuer, two simulated-TEE nodes running SmolLM2, the
//! gateway and the relay; the test then drives the `confide` CLI (verify, summarize a
//! WhatsApp export with a multi-line message, suggest), checks that every failure a user
//! can cause ends in one clear line and its exit code, and kills the node holding a live
//! SDK session to show the next request re-attests to the other node and succeeds.
//!
//! Model: `CONFIDE_MODEL` or `<repo>/models/SmolLM2-135M-Instruct.Q4_1.gguf`
//! (`scripts/fetch-model`).

use std::sync::Arc;

use confide_sdk::config::ClientConfig;
use confide_sdk::issuance::IssuerTokens;
use confide_sdk::{Client, Event};

mod stack;
use stack::{
    Up, answer_text, assert_clear_failure, confide, sample_chat, summarize_last, text, variant,
};

#[test]
fn device_end_to_end_through_every_party() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Up::start(&tmp.path().join("sys"), 2);
    let cfg = up.config();
    let cfg_s = cfg.to_str().unwrap();

    // verify: every check, as data.
    let out = confide(&["verify", "--config", cfg_s, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let names: Vec<&str> = checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for want in [
        "hardware-root",
        "key-binding",
        "measurement",
        "ledger-entry",
        "checkpoint",
        "witnesses",
        "freshness",
        "key-config",
        "token",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(checks.iter().all(|c| c["passed"] == true));
    assert_eq!(report["platform"], "simulated");
    assert_eq!(report["simulated"], true);
    assert!(report["cosigners"].as_array().unwrap().len() >= 2);
    assert_eq!(report["witness_quorum"], 2);

    // The CLI ends its session explicitly: the node dropped it at once (DELETE).
    let closed: usize = ["node-1", "node-2"]
        .iter()
        .map(|n| {
            std::fs::read_to_string(up.dir.join(format!("logs/{n}.err.log")))
                .unwrap_or_default()
                .matches("\"session_closed\"")
                .count()
        })
        .sum();
    assert!(closed >= 1, "no node logged session_closed");

    // verify --explain: plain words, and the simulated platform said loudly.
    let out = confide(&["verify", "--config", cfg_s, "--explain"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("SIMULATED"), "{s}");
    assert!(s.contains("transparency ledger"), "{s}");

    // summarize a WhatsApp (Android) export; --last 3 takes a multi-line message.
    let out = summarize_last(cfg_s, &sample_chat(), 3);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("summarising 3 of 4 messages"),
        "{}",
        text(&out.stderr)
    );
    assert!(!answer_text(&text(&out.stdout)).is_empty(), "empty summary");

    // suggest.
    let out = confide(&[
        "suggest",
        "--config",
        cfg_s,
        "--draft",
        "cant come tmrw sorry",
        "--tone",
        "formal",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !answer_text(&text(&out.stdout)).is_empty(),
        "empty suggestion"
    );

    // Every failure a user can cause: one clear line, a meaningful exit code.
    let missing = tmp.path().join("nope/client.toml");
    assert_clear_failure(
        &confide(&["verify", "--config", missing.to_str().unwrap()]),
        2,
        "cannot read configuration file",
    );
    let bad_chat = tmp.path().join("bad-chat.txt");
    std::fs::write(&bad_chat, "this is not a chat export\n").unwrap();
    assert_clear_failure(
        &confide(&[
            "summarize",
            "--config",
            cfg_s,
            "--chat",
            bad_chat.to_str().unwrap(),
        ]),
        2,
        "line 1 does not start a message",
    );
    let ledger_url = up.parties().iter().find(|p| p["name"] == "ledger").unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let down = variant(&up, tmp.path(), "down.toml", |t| {
        t.replace(&ledger_url, "http://127.0.0.1:9")
    });
    assert_clear_failure(
        &confide(&["verify", "--config", down.to_str().unwrap()]),
        3,
        "cannot reach the ledger",
    );
    let strict = tmp.path().join("strict-policy.toml");
    let mut policy = confide_attest::TrustPolicy::from_toml(
        &std::fs::read_to_string(up.dir.join("trust-policy.toml")).unwrap(),
    )
    .unwrap();
    policy.allow_simulated = false;
    policy.simulated_root = None;
    policy
        .allowed_platforms
        .retain(|p| *p != confide_attest::Platform::Simulated);
    std::fs::write(&strict, policy.to_toml()).unwrap();
    let rejecting = variant(&up, tmp.path(), "rejecting.toml", |t| {
        t.replace(
            "\"trust-policy.toml\"",
            &format!("\"{}\"", strict.display()),
        )
    });
    assert_clear_failure(
        &confide(&["verify", "--config", rejecting.to_str().unwrap()]),
        4,
        "verification failed at the hardware root check",
    );
    let wrong_account = tmp.path().join("wrong.secret");
    std::fs::write(&wrong_account, "not-a-real-credential\n").unwrap();
    let no_tokens = variant(&up, tmp.path(), "no-tokens.toml", |t| {
        t.replace(
            "\"account.secret\"",
            &format!("\"{}\"", wrong_account.display()),
        )
        .replace("\"tokens.json\"", "\"empty-wallet.json\"")
    });
    // The issuer refuses the account at the refill, a step of its own ...
    assert_clear_failure(
        &confide(&["wallet", "refill", "--config", no_tokens.to_str().unwrap()]),
        5,
        "no tokens available",
    );
    // ... and a request with the empty wallet fails without fetching (issue 13, finding 2).
    assert_clear_failure(
        &confide(&["verify", "--config", no_tokens.to_str().unwrap()]),
        5,
        "no tokens in the wallet",
    );

    // One SDK session; kill the node that holds it; the next request re-attests.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = ClientConfig::load(&cfg).unwrap();
        let tokens = Arc::new(IssuerTokens::new(&config).unwrap());
        let client = Client::new(config, tokens).unwrap();
        let before: Vec<usize> = ["node-1", "node-2"]
            .iter()
            .map(|n| up.sessions_opened(n))
            .collect();
        let first = client.verify().await.unwrap();
        let holder = ["node-1", "node-2"]
            .iter()
            .zip(&before)
            .find(|(n, b)| up.sessions_opened(n) > **b)
            .map(|(n, _)| *n)
            .expect("one node logged the new session");
        let pid = up.parties().iter().find(|p| p["name"] == holder).unwrap()["pid"]
            .as_i64()
            .unwrap();
        let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();

        let mut stream = client
            .suggest("see u at 5, bring the keys", "friendly", Some(8))
            .await
            .unwrap();
        let mut reattested = None;
        let mut answer = String::new();
        let mut ended = false;
        while let Some(ev) = stream.next().await {
            match ev.unwrap() {
                Event::Reattested(r) => reattested = Some(r),
                Event::Text(t) => answer.push_str(&t),
                Event::End { .. } => ended = true,
                _ => {}
            }
        }
        let again = reattested.expect("the client re-attested");
        assert_ne!(
            again.certificate_sha256, first.certificate_sha256,
            "a new node certificate was verified"
        );
        assert!(again.checks.iter().all(|c| c.passed));
        assert!(
            ended && !answer.trim().is_empty(),
            "answer after re-attestation"
        );

        // A caller that stops reading mid-answer must not break the next request: the
        // abandoned session (its TLS stream out of step) is forgotten, not reused.
        let mut partial = client
            .suggest("running late, start without me", "formal", Some(48))
            .await
            .unwrap();
        loop {
            match partial.next().await {
                Some(Ok(Event::Text(_))) => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("first answer failed: {e}"),
                None => panic!("first answer ended before any text"),
            }
        }
        drop(partial);
        let mut next = client
            .suggest("thanks for the lift", "friendly", Some(8))
            .await
            .unwrap();
        let (mut text_after, mut ended_after) = (String::new(), false);
        while let Some(ev) = next.next().await {
            match ev.unwrap() {
                Event::Text(t) => text_after.push_str(&t),
                Event::End { .. } => ended_after = true,
                _ => {}
            }
        }
        assert!(
            ended_after && !text_after.trim().is_empty(),
            "a request after an abandoned answer succeeds"
        );
    });

    // And the CLI keeps working with one node down.
    let out = confide(&["verify", "--config", cfg_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
