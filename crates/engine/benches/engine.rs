//! Embedded engine benchmark: tokens/s and time to first token, each against a
//! baseline measured in the same run.
//!
//! Baseline: candle's raw decode loop on the same weights and prompt ids (one prefill
//! forward, then one forward per token, argmax), without our layers. Engine: the full
//! `Engine::generate` path (prompt rendering and tokenization, sampler, repeat penalty,
//! UTF-8 assembly, the blocking-thread hand-off and the channel to the async reader).
//! A ratio near 1.0 means our layers cost nothing next to the model.
//!
//! Run: `scripts/fetch-model && cargo bench -p confide-engine --bench engine`
//! (`CONFIDE_MODEL` overrides the model path; `BENCH_RUNS` the repetitions, default 5).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use confide_engine::features::{self, ChatLine, Limits, SummarizeRequest};
use confide_engine::{
    EmbeddedEngine, Engine, GenerateParams, LoadOptions, StreamEvent, raw_greedy_loop,
};
use futures::StreamExt;
use zeroize::Zeroizing;

const TOKENS: u32 = 64;

fn model_path() -> PathBuf {
    let path = std::env::var_os("CONFIDE_MODEL").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../models/SmolLM2-135M-Instruct.Q4_1.gguf"
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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let engine = EmbeddedEngine::load(&model_path(), &LoadOptions::default()).unwrap();
    let names = ["Alice", "Bob", "Carol"];
    let texts = [
        "Are we still on for the team dinner on Thursday?",
        "Yes, I booked a table for six at the Italian place near the station.",
        "Great. Can someone pick up the cake from the bakery on the way?",
        "I can do that, I finish work at five.",
        "Perfect. Let's meet at seven then, and don't forget the card for Dan.",
        "I'll bring the card, everyone please sign it tomorrow at lunch.",
    ];
    let req = SummarizeRequest {
        messages: texts
            .iter()
            .enumerate()
            .map(|(i, t)| ChatLine {
                sender: Zeroizing::new(names[i % 3].to_owned()),
                time: time::OffsetDateTime::from_unix_timestamp(1_750_000_000 + i as i64 * 90)
                    .unwrap(),
                text: Zeroizing::new((*t).to_owned()),
            })
            .collect(),
    };
    let messages = features::summarize_prompt(&req, &Limits::default()).unwrap();
    // Repeat penalty off and greedy: the same arithmetic as the baseline's argmax, so
    // the comparison isolates our layers. The engine may stop at end-of-turn before
    // `TOKENS`, so rates are computed from the tokens each side actually produced.
    let params = GenerateParams {
        max_tokens: TOKENS,
        repeat_penalty: 1.0,
        ..GenerateParams::default()
    };
    let prompt = engine.prompt_ids(&messages, &params).unwrap();

    // Warm up caches and allocator once.
    raw_greedy_loop(&engine, &prompt, 4).unwrap();

    let mut base_ttft = Vec::new();
    let mut base_tps = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        raw_greedy_loop(&engine, &prompt, 1).unwrap();
        let first = t.elapsed();
        base_ttft.push(first);
        let t = Instant::now();
        let out = raw_greedy_loop(&engine, &prompt, TOKENS as usize).unwrap();
        // Decode rate: tokens after the first over the time after the first.
        let decode = t.elapsed().saturating_sub(first);
        base_tps.push((out.len() - 1) as f64 / decode.as_secs_f64());
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut eng_ttft = Vec::new();
    let mut eng_tps = Vec::new();
    let mut produced = 0;
    for _ in 0..runs {
        let (ttft, tps, n) = rt.block_on(async {
            let t = Instant::now();
            let mut s = engine.generate(messages.clone(), params).await.unwrap();
            let mut ttft = None;
            let mut n = 0;
            while let Some(ev) = s.next().await {
                match ev.unwrap() {
                    StreamEvent::Text(_) => {
                        ttft.get_or_insert_with(|| t.elapsed());
                    }
                    StreamEvent::Done(d) => n = d.completion_tokens.unwrap(),
                }
            }
            let ttft = ttft.unwrap();
            let decode = t.elapsed().saturating_sub(ttft);
            (
                ttft,
                f64::from(n.saturating_sub(1)) / decode.as_secs_f64(),
                n,
            )
        });
        eng_ttft.push(ttft);
        eng_tps.push(tps);
        produced = n;
    }

    let mid = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (bt, et) = (median(base_ttft), median(eng_ttft));
    let (bs, es) = (mid(&mut base_tps), mid(&mut eng_tps));
    println!(
        "embedded engine, {} ({} prompt tokens, {} generated, median of {runs} runs)",
        engine.info().name,
        prompt.len(),
        produced
    );
    println!("| metric | raw candle loop | engine | engine / raw |");
    println!("|---|---|---|---|");
    println!(
        "| time to first token | {:.1} ms | {:.1} ms | {:.3} |",
        bt.as_secs_f64() * 1e3,
        et.as_secs_f64() * 1e3,
        et.as_secs_f64() / bt.as_secs_f64()
    );
    println!("| decode tokens/s | {bs:.1} | {es:.1} | {:.3} |", es / bs);
}
