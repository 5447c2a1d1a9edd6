//! The embedded engine with the real SmolLM2 model: real output, determinism, limits,
//! digest checks and fail-closed loading.
#![allow(clippy::unwrap_used)]

mod common;

use confide_engine::features::{self, ChatLine, Limits, SuggestRequest, SummarizeRequest, Tone};
use confide_engine::{
    ChatMessage, EmbeddedEngine, Engine, EngineError, FinishReason, GenerateParams, LoadOptions,
    Role,
};
use zeroize::Zeroizing;

fn line(sender: &str, minute: i64, text: &str) -> ChatLine {
    ChatLine {
        sender: Zeroizing::new(sender.into()),
        time: time::OffsetDateTime::from_unix_timestamp(1_750_000_000 + minute * 60).unwrap(),
        text: Zeroizing::new(text.into()),
    }
}

#[tokio::test]
async fn summary_is_about_the_chat() {
    let engine = common::engine();
    let req = SummarizeRequest {
        messages: vec![
            line(
                "Alice",
                0,
                "Are we still doing the picnic at the lake on Saturday?",
            ),
            line("Bob", 1, "Yes! I'll bring sandwiches and a blanket."),
            line(
                "Alice",
                2,
                "Great, I'll bring lemonade. Let's meet at 11 at the lake.",
            ),
            line("Bob", 3, "Perfect, see you at the picnic."),
        ],
    };
    let msgs = features::summarize_prompt(&req, &Limits::default()).unwrap();
    let stream = engine
        .generate(msgs, features::feature_params(64))
        .await
        .unwrap();
    let (text, done) = stream.collect_text().await.unwrap();
    let lower = text.to_lowercase();
    assert!(
        ["picnic", "lake", "sandwich", "lemonade"]
            .iter()
            .any(|w| lower.contains(w)),
        "summary does not mention the chat: {:?}",
        text.as_str()
    );
    assert!(done.completion_tokens.unwrap() > 3);
    assert!(done.prompt_tokens.unwrap() > 50);
}

/// Plumbing only: the tiny model writes fluent text but not a faithful rewrite (that is
/// held to account with the default model in `crates/sdk/tests/quality.rs`).
#[tokio::test]
async fn suggest_generates_a_bounded_answer() {
    let engine = common::engine();
    let req = SuggestRequest {
        draft: Zeroizing::new("cant come to the meeting tmrw, sick".into()),
        tone: Tone::Formal,
    };
    let msgs = features::suggest_prompt(&req, &Limits::default()).unwrap();
    let (text, done) = engine
        .generate(msgs, features::feature_params(64))
        .await
        .unwrap()
        .collect_text()
        .await
        .unwrap();
    assert!(!text.trim().is_empty());
    let n = done.completion_tokens.unwrap();
    assert!((1..=64).contains(&n), "{n} tokens");
    assert!(done.prompt_tokens.unwrap() > 20);
}

#[tokio::test]
async fn greedy_and_seeded_sampling_are_deterministic() {
    // An engine of its own: requests batched with other tests' requests may differ in
    // the last bits of their logits (docs/adr/0502), which can change a sampled token.
    let engine = std::sync::Arc::new(
        EmbeddedEngine::load(&common::model_path(), &LoadOptions::default()).unwrap(),
    );
    let msgs = || {
        vec![ChatMessage::new(
            Role::User,
            "Name three colours of the rainbow.",
        )]
    };
    let greedy = GenerateParams {
        max_tokens: 24,
        ..GenerateParams::default()
    };
    let run = |p: GenerateParams| {
        let engine = engine.clone();
        async move {
            engine
                .generate(msgs(), p)
                .await
                .unwrap()
                .collect_text()
                .await
                .unwrap()
        }
    };
    let (a, da) = run(greedy).await;
    let (b, db) = run(greedy).await;
    assert!(!a.is_empty());
    assert_eq!(a, b);
    assert_eq!(da, db);

    let sampled = GenerateParams {
        temperature: 0.9,
        top_p: Some(0.95),
        seed: 42,
        ..greedy
    };
    let (c, _) = run(sampled).await;
    let (d, _) = run(sampled).await;
    assert_eq!(c, d, "same seed, same output");
}

#[tokio::test]
async fn max_tokens_bounds_the_output() {
    let engine = common::engine();
    let msgs = vec![ChatMessage::new(
        Role::User,
        "Tell me a long story about a dragon.",
    )];
    let p = GenerateParams {
        max_tokens: 5,
        ..GenerateParams::default()
    };
    let (_, done) = engine
        .generate(msgs, p)
        .await
        .unwrap()
        .collect_text()
        .await
        .unwrap();
    assert_eq!(done.finish_reason, FinishReason::Length);
    assert_eq!(done.completion_tokens, Some(5));
}

#[tokio::test]
async fn bad_requests_are_typed_errors_before_any_work() {
    let engine = common::engine();
    let user = || vec![ChatMessage::new(Role::User, "hi")];
    let err = engine
        .generate(Vec::new(), GenerateParams::default())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::EmptyConversation));
    for (p, name) in [
        (
            GenerateParams {
                temperature: 3.0,
                ..GenerateParams::default()
            },
            "temperature",
        ),
        (
            GenerateParams {
                temperature: f32::NAN,
                ..GenerateParams::default()
            },
            "temperature",
        ),
        (
            GenerateParams {
                max_tokens: 0,
                ..GenerateParams::default()
            },
            "max_tokens",
        ),
        (
            GenerateParams {
                max_tokens: 100_000,
                ..GenerateParams::default()
            },
            "max_tokens",
        ),
        (
            GenerateParams {
                top_p: Some(0.0),
                ..GenerateParams::default()
            },
            "top_p",
        ),
    ] {
        let err = engine.generate(user(), p).await.unwrap_err();
        assert!(
            matches!(err, EngineError::InvalidParameter { name: n, .. } if n == name),
            "{err:?}"
        );
        assert!(err.is_client_error());
    }
    // 6,000 words are more than 4,096 tokens: with max_tokens 4096 that overflows 8192.
    let long = vec![ChatMessage::new(Role::User, "apple ".repeat(6000))];
    let err = engine
        .generate(
            long,
            GenerateParams {
                max_tokens: 4096,
                ..GenerateParams::default()
            },
        )
        .await
        .unwrap_err();
    match err {
        EngineError::ContextOverflow {
            prompt_tokens,
            max_tokens: 4096,
            context: 8192,
        } => assert!(prompt_tokens > 4096),
        other => panic!("expected ContextOverflow, got {other:?}"),
    }
    assert_eq!(engine.active_generations(), 0);
}

#[test]
fn reports_the_model_digest_and_refuses_a_wrong_one() {
    let engine = common::engine();
    let info = engine.info();
    assert_eq!(
        info.sha256_hex().unwrap(),
        confide_engine::models::TINY.sha256
    );
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.context_length, Some(8192));

    let mut wrong = [0u8; 32];
    wrong[0] = 1;
    let err = EmbeddedEngine::load(
        &common::model_path(),
        &LoadOptions {
            expected_sha256: Some(wrong),
            ..LoadOptions::default()
        },
    )
    .unwrap_err();
    match err {
        EngineError::ModelDigestMismatch { expected, actual } => {
            assert_eq!(expected, hex::encode(wrong));
            assert_eq!(actual, confide_engine::models::TINY.sha256);
        }
        other => panic!("expected ModelDigestMismatch, got {other:?}"),
    }
}

/// Asking for a GPU that cannot be used fails at load with a typed error that says which
/// of the causes it is: without the `cuda` feature, the build; with it, a device ordinal
/// no machine has (so the test holds on a GPU machine too).
#[test]
fn unusable_gpu_is_a_typed_error_naming_the_cause() {
    let err = EmbeddedEngine::load(
        &common::model_path(),
        &LoadOptions {
            backend: confide_engine::Backend::Cuda(999),
            ..LoadOptions::default()
        },
    )
    .unwrap_err();
    let EngineError::GpuUnavailable(why) = &err else {
        panic!("expected GpuUnavailable, got {err:?}");
    };
    assert_eq!(err.kind(), "gpu_unavailable");
    if cfg!(feature = "cuda") {
        assert!(
            why.contains("CUDA device 999 does not exist") || why.contains("finds no device"),
            "{why}"
        );
    } else {
        assert!(why.contains("`cuda` feature"), "{why}");
    }
}

#[test]
fn broken_model_files_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.gguf");
    assert!(matches!(
        EmbeddedEngine::load(&missing, &LoadOptions::default()),
        Err(EngineError::ModelIo {
            kind: std::io::ErrorKind::NotFound,
            ..
        })
    ));
    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"this is not a gguf file at all").unwrap();
    assert!(matches!(
        EmbeddedEngine::load(&garbage, &LoadOptions::default()),
        Err(EngineError::InvalidModel(_))
    ));
    // The real file cut short: header and metadata parse, tensor data is missing.
    let real = std::fs::read(common::model_path()).unwrap();
    for cut in [16usize, 4096, 2 * 1024 * 1024, real.len() - 1] {
        let truncated = EmbeddedEngine::from_bytes(real[..cut].to_vec(), &LoadOptions::default());
        assert!(
            matches!(truncated, Err(EngineError::InvalidModel(_))),
            "cut at {cut}: {truncated:?}"
        );
    }
}
