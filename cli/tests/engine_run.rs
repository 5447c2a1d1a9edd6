//! `confide engine run` and `confide engine info` with the real model.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

fn model_path() -> PathBuf {
    let path = std::env::var_os("CONFIDE_MODEL").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../models/SmolLM2-135M-Instruct.Q4_1.gguf"
            ))
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "model file {} is missing: run scripts/fetch-model (or set CONFIDE_MODEL)",
        path.display()
    );
    path
}

fn confide(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_confide"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn info_prints_the_model_digest() {
    let model = model_path();
    let out = confide(&["engine", "info", "--model", model.to_str().unwrap()]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(confide_engine::models::TINY.sha256));
    assert!(stdout.contains("llama"));
}

#[test]
fn run_summarizes_a_chat_file() {
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("chat.json");
    std::fs::write(
        &chat,
        r#"{"messages":[
            {"sender":"Ana","time":"2025-03-01T09:00:00Z","text":"The concert tickets for Friday are sold out."},
            {"sender":"Leo","time":"2025-03-01T09:02:00Z","text":"Then let's go to the cinema instead, the 8pm show."}
        ]}"#,
    )
    .unwrap();
    let model = model_path();
    let out = confide(&[
        "engine",
        "run",
        "--model",
        model.to_str().unwrap(),
        "--summarize",
        chat.to_str().unwrap(),
        "--max-tokens",
        "40",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap().to_lowercase();
    assert!(
        ["concert", "cinema", "ticket", "movie"]
            .iter()
            .any(|w| text.contains(w)),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("[finish: "));
}

#[test]
fn run_rejects_bad_input_with_one_error_line() {
    let model = model_path();
    let m = model.to_str().unwrap();
    let out = confide(&[
        "engine",
        "run",
        "--model",
        m,
        "--suggest",
        "hi",
        "--tone",
        "rude",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: invalid parameter tone"), "{err}");

    // A summarize file with a field the schema does not carry is refused.
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("chat.json");
    std::fs::write(
        &chat,
        r#"{"messages":[{"sender":"A","time":"2025-03-01T09:00:00Z","text":"hi","phone":"+1 555"}]}"#,
    )
    .unwrap();
    let out = confide(&[
        "engine",
        "run",
        "--model",
        m,
        "--summarize",
        chat.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("is not a summarize request"), "{err}");
    assert!(!err.contains("555"), "error echoes the content: {err}");

    // Limits: a draft over 4 KiB.
    let long = "a".repeat(5000);
    let out = confide(&[
        "engine",
        "run",
        "--model",
        m,
        "--suggest",
        &long,
        "--tone",
        "formal",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("draft is 5000 bytes, the limit is 4096"),
        "{err}"
    );
}

/// `confide bench --json` on the tiny model with the least work (`--smoke`): every row is
/// there, measured (finite, positive medians and ratios), the JSON names the model and
/// machine, and every party of the private path reports its memory. Plumbing only:
/// no figure is compared with a time (rule: tests never assert wall-clock times).
#[test]
fn bench_prints_every_row_with_its_baseline() {
    let model = model_path();
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("run.json");
    let out = confide(&[
        "bench",
        "--smoke",
        "--json",
        "--threads",
        "2",
        "--model",
        model.to_str().unwrap(),
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(printed, written);
    assert_eq!(
        printed["model_sha256"].as_str().unwrap(),
        confide_engine::models::TINY.sha256
    );
    assert!(!printed["machine"].as_str().unwrap().is_empty());
    let rows = printed["rows"].as_array().unwrap();
    let whats: Vec<&str> = rows.iter().map(|r| r["what"].as_str().unwrap()).collect();
    for expected in [
        "engine time to first token",
        "engine decode tokens/s",
        "time to first token, 24-message chat",
        "total tokens/s, 4 requests at once",
        "total tokens/s, 8 requests at once",
        "llama.cpp raw loop, total tokens/s, 4 sequences per batch",
        "llama.cpp raw loop, total tokens/s, 16 sequences per batch",
        "engine, total tokens/s, 4 requests at once",
        "private summary, first line, new session",
        "private summary, first line, established session",
        "verify sev-snp, cold",
        "verify sev-snp, chain cached",
        "verify tdx, cold",
        "verify nvidia hopper, cold",
        "verify simulated, chain cached",
        "ledger durable appends, one entry per fsync",
        "ledger durable appends, 64 entries per fsync",
        "inclusion proof verification",
        "token issuance, type 0x0001",
        "token redemption check, type 0x0002",
        "double-spend check, embedded redb store",
    ] {
        assert!(
            whats.iter().any(|w| w.starts_with(expected)),
            "no row {expected:?} in {whats:?}"
        );
    }
    for r in rows {
        for key in [
            "baseline_median",
            "baseline_p99",
            "value_median",
            "value_p99",
            "ratio",
        ] {
            let v = r[key].as_f64().unwrap();
            assert!(v.is_finite() && v > 0.0, "{key} = {v} in {r}");
        }
        assert!(r["repeats"].as_u64().unwrap() >= 2);
        assert!(!r["baseline_name"].as_str().unwrap().is_empty());
    }
    let parties: Vec<&str> = printed["memory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["party"].as_str().unwrap())
        .collect();
    for p in [
        "ledger",
        "issuer",
        "node-1",
        "gateway",
        "relay",
        "witness-1",
    ] {
        assert!(
            parties.contains(&p),
            "no memory figure for {p}: {parties:?}"
        );
    }
}
