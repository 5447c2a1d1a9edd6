//! The llama.cpp engine's scheduler on the real (tiny) model: it matches llama.cpp's own
//! loop token for token, runs requests side by side, queues in order, refuses past its
//! queue with a typed error, and frees a sequence when its reader leaves.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use confide_engine::{
    ChatMessage, EmbeddedEngine, Engine, EngineError, FinishReason, GenerateParams, LoadOptions,
    Role, StreamEvent, raw_greedy_loop,
};
use futures::StreamExt;

fn ask(q: &str) -> Vec<ChatMessage> {
    vec![ChatMessage::new(Role::User, q)]
}

fn greedy(max_tokens: u32) -> GenerateParams {
    GenerateParams {
        max_tokens,
        repeat_penalty: 1.0,
        ..GenerateParams::default()
    }
}

fn engine_with(parallel: u32, queue: u32) -> Arc<EmbeddedEngine> {
    let opts = LoadOptions {
        parallel,
        queue,
        threads: 2,
        ..LoadOptions::default()
    };
    Arc::new(EmbeddedEngine::load(&common::model_path(), &opts).unwrap())
}

#[tokio::test]
async fn greedy_output_is_llama_cpp_s_own_token_for_token() {
    let engine = engine_with(1, 0);
    let msgs = ask("List the planets of the solar system.");
    let params = greedy(24);
    let prompt = engine.prompt_ids(&msgs, &params).unwrap();
    let raw = raw_greedy_loop(&common::model_path(), 2, &prompt, 24).unwrap();
    let (text, done) = engine
        .generate(msgs, params)
        .await
        .unwrap()
        .collect_text()
        .await
        .unwrap();
    // The engine stops at an end-of-turn token; the raw loop does not know about them.
    let n = done.completion_tokens.unwrap() as usize;
    let mut expected = Vec::new();
    for &id in &raw.ids[..n] {
        expected.extend_from_slice(engine.tokenizer().token_bytes(id));
    }
    assert_eq!(text.as_bytes(), expected.as_slice());
    assert!(n > 5, "only {n} tokens");
}

#[tokio::test]
async fn concurrent_requests_run_side_by_side_and_all_finish() {
    let engine = engine_with(4, 4);
    let mut tasks = Vec::new();
    for q in [
        "Name a colour.",
        "Count to five.",
        "What is the capital of France?",
        "Say hello in Spanish.",
        "Name a fruit.",
        "Name an animal.",
    ] {
        let e = Arc::clone(&engine);
        tasks.push(tokio::spawn(async move {
            e.generate(ask(q), greedy(16))
                .await
                .unwrap()
                .collect_text()
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        let (text, done) = t.await.unwrap();
        assert!(!text.is_empty());
        assert!(matches!(
            done.finish_reason,
            FinishReason::Stop | FinishReason::Length
        ));
    }
    // Every sequence is released once the streams are done.
    for _ in 0..100 {
        if engine.active_generations() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(engine.active_generations(), 0);
}

#[tokio::test]
async fn past_the_queue_the_engine_is_busy_and_a_dropped_stream_frees_its_place() {
    let engine = engine_with(1, 1);
    // One running, one waiting: the third is refused at once, with a typed error.
    let mut running = engine
        .generate(ask("Tell a long story."), greedy(400))
        .await
        .unwrap();
    assert!(matches!(
        running.next().await,
        Some(Ok(StreamEvent::Text(_)))
    ));
    let waiting = engine
        .generate(ask("Name a colour."), greedy(8))
        .await
        .unwrap();
    match engine.generate(ask("Name a fruit."), greedy(8)).await {
        Err(EngineError::Busy { limit: 2 }) => {}
        other => panic!("expected Busy, got {other:?}"),
    }
    // Leaving the running request frees the sequence: the waiting one completes.
    drop(running);
    let (text, _) = waiting.collect_text().await.unwrap();
    assert!(!text.is_empty());
    // And there is room again.
    let (text, _) = engine
        .generate(ask("Name a fruit."), greedy(8))
        .await
        .unwrap()
        .collect_text()
        .await
        .unwrap();
    assert!(!text.is_empty());
}

#[test]
fn settings_out_of_range_are_typed_errors() {
    let bad = LoadOptions {
        parallel: 0,
        ..LoadOptions::default()
    };
    assert!(matches!(
        EmbeddedEngine::load(&common::model_path(), &bad),
        Err(EngineError::InvalidParameter {
            name: "parallel",
            ..
        })
    ));
    let bad = LoadOptions {
        context_tokens: 100,
        ..LoadOptions::default()
    };
    assert!(matches!(
        EmbeddedEngine::load(&common::model_path(), &bad),
        Err(EngineError::InvalidParameter {
            name: "context_tokens",
            ..
        })
    ));
}
