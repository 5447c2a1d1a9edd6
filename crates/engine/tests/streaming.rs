//! Streaming and cancellation with the real model. One test per binary on purpose: it
//! watches the engine's worker count, which other tests' generations would disturb.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use confide_engine::{ChatMessage, Engine, GenerateParams, Role, StreamEvent};
use futures::StreamExt;

#[tokio::test]
async fn first_token_arrives_before_generation_ends_and_drop_cancels() {
    let engine = common::engine();
    let msgs = || {
        vec![ChatMessage::new(
            Role::User,
            "Write a long essay about the history of bridges.",
        )]
    };
    let params = GenerateParams {
        max_tokens: 100,
        // Keeps the model from stopping early, so "still running" is meaningful.
        repeat_penalty: 1.3,
        ..GenerateParams::default()
    };

    // 1. Streaming: when the first piece arrives the worker is still generating, and
    //    more pieces follow.
    let started = Instant::now();
    let mut stream = engine.generate(msgs(), params).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    let ttft = started.elapsed();
    assert!(matches!(first, StreamEvent::Text(_)));
    assert_eq!(
        engine.active_generations(),
        1,
        "worker finished before first token"
    );
    let mut pieces = 1;
    let mut done = None;
    while let Some(ev) = stream.next().await {
        match ev.unwrap() {
            StreamEvent::Text(_) => pieces += 1,
            StreamEvent::Done(d) => done = Some(d),
        }
    }
    let total = started.elapsed();
    let done = done.unwrap();
    assert!(pieces > 10, "only {pieces} pieces");
    // The rest of the generation took real time after the first piece was in hand.
    assert!(
        total - ttft > Duration::from_millis(5 * pieces),
        "first token at {ttft:?}, end at {total:?}"
    );

    // 2. Cancellation: drop after the first piece; the worker exits long before the
    //    time a full generation took.
    let mut stream = engine.generate(msgs(), params).await.unwrap();
    let _ = stream.next().await.unwrap().unwrap();
    let started = Instant::now();
    drop(stream);
    // The full run needed `total - ttft` to decode its remaining tokens; a cancelled
    // worker must be gone well before that.
    let decode_time = total - ttft;
    while engine.active_generations() > 0 {
        assert!(
            started.elapsed() < decode_time / 2,
            "worker still running {:?} after drop",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "ttft {ttft:?}, full generation {total:?} ({} tokens), worker gone {:?} after drop",
        done.completion_tokens.unwrap(),
        started.elapsed()
    );
}
