//! `confide bench`: measure, print one table, each row against a baseline measured in
//! the same run.
//!
//! Rows today (the embedded engine):
//! - time to first token and decode tokens/s of the engine (`Engine::generate`: prompt
//!   rendering, scheduler, sampler chain, UTF-8 assembly, channel to the async reader)
//!   against llama.cpp's own minimal loop (`raw_greedy_loop`) on the same model file,
//!   the same prompt ids and the same thread count;
//! - total tokens/s with 4 and 8 requests at once against one request alone, on the
//!   same engine (continuous batching).
//!
//! Every figure is a median over repeats after a warm-up; p99 is the largest of the
//! repeats when there are fewer than 100. Nothing is estimated.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use confide_engine::features::{self, ChatLine, Limits, SummarizeRequest};
use confide_engine::{
    EmbeddedEngine, Engine, GenerateParams, LoadOptions, StreamEvent, raw_greedy_loop,
};
use futures::StreamExt;
use serde::Serialize;
use zeroize::Zeroizing;

/// `confide bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Fewer repeats and shorter generations (a few minutes on 2 cores).
    #[arg(long)]
    quick: bool,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Model: `quality`, `fast`, `tiny` or a GGUF file.
    #[arg(long, value_name = "NAME|PATH", value_parser = super::engine::parse_model, default_value = "fast")]
    model: PathBuf,
    /// CPU threads for both the engine and the baseline (0: every core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Also write the JSON results (with the machine description) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One measured row.
#[derive(Debug, Serialize)]
struct Row {
    what: String,
    unit: &'static str,
    baseline_name: String,
    baseline_median: f64,
    baseline_p99: f64,
    value_median: f64,
    value_p99: f64,
    /// value / baseline (for times, lower is better; for rates, higher).
    ratio: f64,
    repeats: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    date: String,
    machine: String,
    model: String,
    model_sha256: String,
    threads: usize,
    prompt_tokens: usize,
    generated_tokens: u32,
    rows: Vec<Row>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p99(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64) * 0.99).ceil() as usize;
    v[i.saturating_sub(1).min(v.len() - 1)]
}

fn row(
    what: &str,
    unit: &'static str,
    baseline_name: &str,
    mut base: Vec<f64>,
    mut val: Vec<f64>,
) -> Row {
    let (bm, vm) = (median(&mut base), median(&mut val));
    Row {
        what: what.into(),
        unit,
        baseline_name: baseline_name.into(),
        baseline_median: bm,
        baseline_p99: p99(&mut base),
        value_median: vm,
        value_p99: p99(&mut val),
        ratio: vm / bm,
        repeats: val.len(),
    }
}

/// A real, 12-message planning chat (prompt of a few hundred tokens).
fn bench_prompt() -> anyhow::Result<Vec<confide_engine::ChatMessage>> {
    let texts = [
        ("Ana", "Are we still on for the team dinner on Thursday?"),
        (
            "Joel",
            "Yes, I booked a table for six at the Italian place near the station.",
        ),
        (
            "Sam",
            "Great. Can someone pick up the cake from the bakery on the way?",
        ),
        ("Ana", "I can do that, I finish work at five."),
        ("Joel", "The booking is at 19:30, deposit of £30 is paid."),
        ("Sam", "I'll send everyone £5 for the deposit tonight."),
        ("Ana", "Do we need to tell them about Priya's nut allergy?"),
        (
            "Joel",
            "Good point, I'll call the restaurant tomorrow morning.",
        ),
        ("Sam", "Should we invite Marco too? He's back from Lisbon."),
        (
            "Ana",
            "Yes! That makes seven, Joel can you change the booking?",
        ),
        ("Joel", "Done, table for seven at 19:30."),
        ("Sam", "Perfect. See you all Thursday."),
    ];
    let start = time::OffsetDateTime::from_unix_timestamp(1_796_000_000)?;
    let req = SummarizeRequest {
        messages: texts
            .iter()
            .enumerate()
            .map(|(i, (s, t))| ChatLine {
                sender: Zeroizing::new((*s).into()),
                time: start + time::Duration::minutes(i as i64),
                text: Zeroizing::new((*t).into()),
            })
            .collect(),
    };
    Ok(features::summarize_prompt(&req, &Limits::default())?)
}

/// One generation through the engine: (time to first token, decode tokens/s, tokens).
async fn one(
    engine: &EmbeddedEngine,
    messages: Vec<confide_engine::ChatMessage>,
    params: GenerateParams,
) -> anyhow::Result<(Duration, f64, u32)> {
    let t = Instant::now();
    let mut s = engine.generate(messages, params).await?;
    let mut first = None;
    let mut n = 0;
    while let Some(ev) = s.next().await {
        match ev? {
            StreamEvent::Text(_) => {
                first.get_or_insert_with(|| t.elapsed());
            }
            StreamEvent::Done(d) => n = d.completion_tokens.unwrap_or(0),
        }
    }
    let first = first.context("the engine produced no text")?;
    let rest = t.elapsed().saturating_sub(first).as_secs_f64().max(1e-9);
    Ok((first, f64::from(n.saturating_sub(1)) / rest, n))
}

/// `concurrent` generations at once: total generated tokens per second.
async fn batch_rate(
    engine: &Arc<EmbeddedEngine>,
    messages: &[confide_engine::ChatMessage],
    params: GenerateParams,
    concurrent: usize,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrent {
        let e = Arc::clone(engine);
        let m = messages.to_vec();
        tasks.push(tokio::spawn(async move { one(&e, m, params).await }));
    }
    let mut tokens = 0u64;
    for task in tasks {
        tokens += u64::from(task.await??.2);
    }
    Ok(tokens as f64 / t.elapsed().as_secs_f64())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    format!("{cpu}, {cores} cores available, {}", std::env::consts::ARCH)
}

/// Run `confide bench`.
pub async fn run(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let threads = if a.threads == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    } else {
        a.threads
    };
    let (repeats, tokens) = if a.quick { (3, 32) } else { (7, 96) };
    let params = GenerateParams {
        max_tokens: tokens,
        // No repeat penalty: the raw loop has none, so both sides do the same work.
        repeat_penalty: 1.0,
        ..GenerateParams::default()
    };
    let mut opts = LoadOptions {
        threads,
        parallel: 8,
        ..LoadOptions::default()
    };
    opts.context_tokens = LoadOptions::DEFAULT_CONTEXT_TOKENS;
    let engine = Arc::new(
        EmbeddedEngine::open(&a.model, opts)
            .await
            .with_context(|| format!("cannot load {}", a.model.display()))?,
    );
    let messages = bench_prompt()?;
    let prompt = engine.prompt_ids(&messages, &params)?;
    eprintln!(
        "bench: {} ({} prompt tokens, {tokens} generated, {threads} threads, {repeats} repeats after a warm-up)",
        engine.info().name,
        prompt.len()
    );

    // Engine against llama.cpp's raw loop, alternating so that load drifts hit both.
    let path = a.model.clone();
    let raw = |p: Vec<u32>| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || raw_greedy_loop(&path, threads, &p, tokens as usize))
    };
    raw(prompt.to_vec()).await??;
    one(&engine, messages.clone(), params).await?;
    let (mut raw_ttft, mut raw_tps, mut eng_ttft, mut eng_tps) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut generated = 0;
    for _ in 0..repeats {
        let r = raw(prompt.to_vec()).await??;
        raw_ttft.push(r.first_token.as_secs_f64() * 1e3);
        raw_tps.push(r.tokens_per_second);
        let (ttft, tps, n) = one(&engine, messages.clone(), params).await?;
        eng_ttft.push(ttft.as_secs_f64() * 1e3);
        eng_tps.push(tps);
        generated = n;
    }
    let mut rows = vec![
        row(
            "engine time to first token",
            "ms",
            "llama.cpp raw loop",
            raw_ttft,
            eng_ttft,
        ),
        row(
            "engine decode tokens/s",
            "tokens/s",
            "llama.cpp raw loop",
            raw_tps,
            eng_tps,
        ),
    ];

    // Concurrency: total generated tokens/s at 4 and 8 requests against 1, alternating.
    // A short prompt whose answer runs to the token limit, so that the rows show
    // decoding, which is what batching speeds up (prefill on a CPU is compute-bound
    // either way) and every request does the same work.
    let conc_repeats = if a.quick { 2 } else { 3 };
    let messages = vec![confide_engine::ChatMessage::new(
        confide_engine::Role::User,
        "Count from 1 to 500 in words, one number per line.",
    )];
    let params = GenerateParams {
        max_tokens: tokens * 2,
        ..params
    };
    let short = engine.prompt_ids(&messages, &params)?.len();
    let mut single = Vec::new();
    let mut four = Vec::new();
    let mut eight = Vec::new();
    batch_rate(&engine, &messages, params, 1).await?;
    for _ in 0..conc_repeats {
        single.push(batch_rate(&engine, &messages, params, 1).await?);
        four.push(batch_rate(&engine, &messages, params, 4).await?);
        eight.push(batch_rate(&engine, &messages, params, 8).await?);
    }
    rows.push(row(
        &format!("total tokens/s, 4 requests at once ({short}-token prompt)"),
        "tokens/s",
        "1 request",
        single.clone(),
        four,
    ));
    rows.push(row(
        &format!("total tokens/s, 8 requests at once ({short}-token prompt)"),
        "tokens/s",
        "1 request",
        single,
        eight,
    ));

    let report = Report {
        date: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        machine: machine(),
        model: engine.info().name.clone(),
        model_sha256: engine.info().sha256_hex().unwrap_or_default(),
        threads,
        prompt_tokens: prompt.len(),
        generated_tokens: generated,
        rows,
    };
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(out) = &a.out {
        std::fs::write(out, format!("{json}\n"))
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    if a.json {
        println!("{json}");
    } else {
        println!(
            "{} on {} ({} threads; {} prompt tokens, {} generated)",
            report.model, report.machine, threads, report.prompt_tokens, generated
        );
        println!("| what | baseline | baseline median (p99) | median (p99) | ratio |");
        println!("|---|---|---|---|---|");
        for r in &report.rows {
            println!(
                "| {} | {} | {:.1} {} ({:.1}) | {:.1} {} ({:.1}) | {:.2}x |",
                r.what,
                r.baseline_name,
                r.baseline_median,
                r.unit,
                r.baseline_p99,
                r.value_median,
                r.unit,
                r.value_p99,
                r.ratio
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
