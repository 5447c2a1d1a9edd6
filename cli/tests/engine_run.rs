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
