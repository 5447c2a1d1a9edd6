//! `confide bench`: measure, print one table, each row against a baseline measured in
//! the same run.
//!
//! Rows today (the embedded engine):
//! - time to first token and decode tokens/s of the engine (`Engine::generate`: prompt
//!   rendering, scheduler, sampler chain, UTF-8 assembly, channel to the async reader)
//!   against llama.cpp's own minimal loop (`raw_greedy_loop`) on the same model file,
//!   the same prompt ids and the same thread count;
//! - total tokens/s with 4 and 8 requests at once against one request alone, on the
//!   same engine (continuous batching); and what batching can give at all on this CPU:
//!   llama.cpp's raw loop with 4 sequences per batch against 1 (`raw_batched_loop`),
//!   the same loop with 16 sequences (how far batching goes on this CPU at all), and
//!   the engine's 4 requests against the 4-sequence loop;
//! - the cost of the traffic shape (docs/sessions.md): bytes on the wire of a streamed
//!   answer's text and the time until its first text leaves the node, as the node sends
//!   them (padded units on the default tick) against one unpadded record per piece as
//!   soon as it is ready (before issue 13). Both are laid out from the pieces and
//!   times of the same real generations of this run, with the session's own
//!   `padded_len`; the `End` unit (2 KiB padded, about 800 B unpadded) is not counted.
//!
//! - the private path: time to the first line of a real summary of the bundled WhatsApp
//!   sample through `confide up`'s parties (token, OHTTP through the relay, gateway,
//!   RA-TLS to the node), on a new session (full verification first) and on an
//!   established one, against the same summary asked of the same model in-process
//!   (both wait for the first whole line, as the node sends whole sentences only);
//! - peak resident memory of every party of that run, against the model file's size;
//! - the protocol parts ([`components`]): attestation verification per platform, cold
//!   and cached, against one bare P-384 signature check; ledger appends against a raw
//!   `write` + `fdatasync` and inclusion proofs against raw SHA-256; Privacy Pass
//!   issuance and redemption against one Ed25519 signature, and the double-spend store.
//!
//! Every figure is a median over repeats after a warm-up; p99 is the largest of the
//! repeats when there are fewer than 100. Nothing is estimated.

mod components;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use confide_engine::features::{self, ChatLine, Limits, SummarizeRequest};
use confide_engine::{
    EmbeddedEngine, Engine, GenerateParams, LoadOptions, StreamEvent, raw_batched_loop,
    raw_greedy_loop,
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
    /// Skip the parts that need no model (attestation, ledger, tokens).
    #[arg(long)]
    engine_only: bool,
    /// Two repeats of the smallest work everywhere: shows every row works, measures
    /// nothing worth publishing (for tests).
    #[arg(long, hide = true)]
    smoke: bool,
}

/// How much work each part does.
struct Plan {
    repeats: usize,
    tokens: u32,
    lengths: &'static [usize],
    /// Repeats of each chat-length row (the longest chat's prefill dominates the run).
    length_repeats: usize,
    concurrency_repeats: usize,
    effort: components::Effort,
}

impl Plan {
    fn new(a: &BenchArgs) -> Self {
        if a.smoke {
            Plan {
                repeats: 2,
                tokens: 8,
                lengths: &[2],
                length_repeats: 2,
                concurrency_repeats: 2,
                effort: components::Effort {
                    rounds: 2,
                    iters: 2,
                },
            }
        } else if a.quick {
            Plan {
                repeats: 3,
                tokens: 32,
                lengths: &[2, 4],
                // Keeps `--quick` under 5 minutes on 2 cores with the fast model.
                length_repeats: 2,
                concurrency_repeats: 2,
                effort: components::Effort {
                    rounds: 5,
                    iters: 100,
                },
            }
        } else {
            Plan {
                repeats: 7,
                tokens: 96,
                lengths: &[2, 4, 8],
                length_repeats: 3,
                concurrency_repeats: 3,
                effort: components::Effort {
                    rounds: 11,
                    iters: 500,
                },
            }
        }
    }
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
    /// Prompt tokens of the request the row measures, where that is the variable.
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens: Option<usize>,
}

/// Peak resident memory of one party of the private-path run.
#[derive(Debug, Serialize)]
struct PartyMemory {
    party: String,
    peak_rss_mib: f64,
    /// Peak RSS over the model file's size.
    ratio_to_model_file: f64,
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
    memory: Vec<PartyMemory>,
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
        prompt_tokens: None,
    }
}

/// A 12-message planning chat repeated `rounds` times (each round a few hundred
/// tokens), as the node's summarize prompt.
fn bench_prompt(rounds: usize) -> anyhow::Result<Vec<confide_engine::ChatMessage>> {
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
            .cycle()
            .take(texts.len() * rounds)
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

/// The traffic shape's cost on real generations: (bytes, time to first text) of the
/// answer's text as the node sends it, padded on the tick, and as one unpadded TLS record
/// per sentence piece the moment the sentence gate releases it.
async fn shape_rows(
    engine: &EmbeddedEngine,
    messages: &[confide_engine::ChatMessage],
    params: GenerateParams,
    repeats: usize,
) -> anyhow::Result<Vec<Row>> {
    // TLS 1.3 adds a 5-byte header, the content type and a 16-byte tag to each record.
    const RECORD: usize = 22;
    const FRAME: usize = confide_session::HEADER_LEN;
    let tick = confide_node::DEFAULT_STREAM_TICK.as_secs_f64();
    let (mut raw_bytes, mut pad_bytes, mut raw_first, mut pad_first) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeats {
        let t = Instant::now();
        let mut s = engine.generate(messages.to_vec(), params).await?;
        let mut gate = features::WholeSentences::default();
        // (seconds after the request, bytes) of each piece the node would send.
        let mut pieces: Vec<(f64, usize)> = Vec::new();
        let mut done_at = None;
        while let Some(ev) = s.next().await {
            let (out, done) = match ev? {
                StreamEvent::Text(x) => (gate.push(&x), false),
                StreamEvent::Done(c) => (gate.finish(c.finish_reason), true),
            };
            let at = t.elapsed().as_secs_f64();
            if !out.is_empty() {
                pieces.push((at, out.len()));
            }
            if done {
                done_at = Some(at);
            }
        }
        let done_at = done_at.context("the engine did not finish")?;
        let first = pieces.first().context("the engine produced no text")?.0;
        raw_bytes.push(
            pieces
                .iter()
                .map(|(_, n)| n + FRAME + RECORD)
                .sum::<usize>() as f64,
        );
        // One unit per tick until the tick after the end: the text of that tick in one
        // chunk frame plus the padding frame, padded to the stream bucket.
        let ticks = (done_at / tick).floor() as usize + 1;
        let mut bytes = 0;
        for k in 0..ticks {
            let (from, to) = (k as f64 * tick, (k + 1) as f64 * tick);
            let text: usize = pieces
                .iter()
                .filter(|(at, _)| *at >= from && *at < to)
                .map(|(_, n)| n)
                .sum();
            let frames = if text == 0 { 0 } else { text + FRAME };
            bytes += confide_session::padded_len(frames + FRAME, confide_node::STREAM_MIN_BUCKET)
                + RECORD;
        }
        pad_bytes.push(bytes as f64);
        raw_first.push(first * 1e3);
        pad_first.push(((first / tick).floor() + 1.0) * tick * 1e3);
    }
    let ms = confide_node::DEFAULT_STREAM_TICK.as_millis();
    Ok(vec![
        row(
            &format!("streamed text, bytes on the wire (padded units, {ms} ms tick)"),
            "bytes",
            "one unpadded record per piece",
            raw_bytes,
            pad_bytes,
        ),
        row(
            &format!("streamed text, time until the first text leaves ({ms} ms tick)"),
            "ms",
            "sent when the sentence is ready",
            raw_first,
            pad_first,
        ),
    ])
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
    if cfg!(debug_assertions) {
        eprintln!(
            "bench: note: a debug build (Confide's own crates unoptimised, dependencies and \
             llama.cpp optimised); for figures to publish use `cargo run --release -p confide -- bench`"
        );
    }
    let plan = Plan::new(&a);
    let (repeats, tokens) = (plan.repeats, plan.tokens);
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
    let messages = bench_prompt(1)?;
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

    rows.extend(shape_rows(&engine, &messages, params, repeats).await?);

    // Time to first token against chat length: the engine against the raw loop, one
    // request at a time. Both prefill the same ids; the plot in docs/performance.md
    // comes from these rows.
    let lengths = plan.lengths;
    let first_only = GenerateParams {
        max_tokens: 2,
        ..params
    };
    for &rounds in lengths {
        let chat = bench_prompt(rounds)?;
        let ids = engine.prompt_ids(&chat, &first_only)?;
        let (mut raw_t, mut eng_t) = (Vec::new(), Vec::new());
        for _ in 0..plan.length_repeats {
            let path = a.model.clone();
            let p = ids.to_vec();
            let r = tokio::task::spawn_blocking(move || raw_greedy_loop(&path, threads, &p, 1))
                .await??;
            raw_t.push(r.first_token.as_secs_f64() * 1e3);
            eng_t.push(
                one(&engine, chat.clone(), first_only)
                    .await?
                    .0
                    .as_secs_f64()
                    * 1e3,
            );
        }
        let mut r = row(
            &format!(
                "time to first token, {}-message chat ({} tokens)",
                12 * rounds,
                ids.len()
            ),
            "ms",
            "llama.cpp raw loop",
            raw_t,
            eng_t,
        );
        r.prompt_tokens = Some(ids.len());
        rows.push(r);
    }

    // Concurrency: total generated tokens/s at 4 and 8 requests against 1, alternating.
    // A short prompt whose answer runs to the token limit, so that the rows show
    // decoding, which is what batching speeds up (prefill on a CPU is compute-bound
    // either way) and every request does the same work.
    let conc_repeats = plan.concurrency_repeats;
    let messages = vec![confide_engine::ChatMessage::new(
        confide_engine::Role::User,
        "Count from 1 to 500 in words, one number per line.",
    )];
    let params = GenerateParams {
        max_tokens: tokens * 2,
        ..params
    };
    let short_ids = engine.prompt_ids(&messages, &params)?;
    let short = short_ids.len();
    // What batching can give at all on this machine: llama.cpp's own loop decoding 4
    // sequences per batch against 1, and the engine's 4 requests against that loop.
    // Without these rows a low ratio for the engine alone would not say whether the
    // scheduler or the matrix kernels on this CPU are the limit. (The raw loop needs no
    // warm-up of its own: it maps the same file the engine has just read.)
    let raw_batched = |n: usize| {
        let (path, p) = (a.model.clone(), short_ids.clone());
        let max = params.max_tokens as usize;
        tokio::task::spawn_blocking(move || raw_batched_loop(&path, threads, &p, max, n))
    };
    let (mut single, mut four, mut eight) = (Vec::new(), Vec::new(), Vec::new());
    let (mut raw1, mut raw4, mut raw16) = (Vec::new(), Vec::new(), Vec::new());
    batch_rate(&engine, &messages, params, 1).await?;
    for _ in 0..conc_repeats {
        single.push(batch_rate(&engine, &messages, params, 1).await?);
        four.push(batch_rate(&engine, &messages, params, 4).await?);
        eight.push(batch_rate(&engine, &messages, params, 8).await?);
        raw1.push(raw_batched(1).await??);
        raw4.push(raw_batched(4).await??);
        // The ceiling: a batch much wider than 4. Where decoding is compute-bound (a
        // few CPU cores), even this gains little, and no scheduler can beat it at 4.
        raw16.push(raw_batched(16).await??);
    }
    rows.push(row(
        &format!("total tokens/s, 4 requests at once ({short}-token prompt)"),
        "tokens/s",
        "1 request",
        single.clone(),
        four.clone(),
    ));
    rows.push(row(
        &format!("total tokens/s, 8 requests at once ({short}-token prompt)"),
        "tokens/s",
        "1 request",
        single,
        eight,
    ));
    rows.push(row(
        "llama.cpp raw loop, total tokens/s, 4 sequences per batch",
        "tokens/s",
        "llama.cpp raw loop, 1 sequence",
        raw1.clone(),
        raw4.clone(),
    ));
    rows.push(row(
        "llama.cpp raw loop, total tokens/s, 16 sequences per batch",
        "tokens/s",
        "llama.cpp raw loop, 1 sequence",
        raw1,
        raw16,
    ));
    rows.push(row(
        "engine, total tokens/s, 4 requests at once",
        "tokens/s",
        "llama.cpp raw loop, 4 sequences per batch",
        raw4,
        four,
    ));

    // The private path, on the parties of `confide up` (separate processes).
    let memory = private_path(&a, threads, &engine, repeats, &mut rows).await?;

    if !a.engine_only {
        eprintln!("bench: attestation, ledger and tokens");
        let effort = plan.effort;
        let repo = crate::cmd::source_tree()
            .context("cannot find the source tree (its testdata/): set CONFIDE_SOURCE_TREE")?;
        let parts = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Row>> {
            let mut v = components::attestation(&repo, effort)?;
            v.extend(components::ledger(effort)?);
            v.extend(components::tokens(effort)?);
            Ok(v)
        })
        .await??;
        rows.extend(parts);
    }

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
        memory,
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
        println!();
        println!("| party | peak RSS | / model file |");
        println!("|---|---|---|");
        for m in &report.memory {
            println!(
                "| {} | {:.1} MiB | {:.2}x |",
                m.party, m.peak_rss_mib, m.ratio_to_model_file
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Time until the first whole line of `stream`'s text.
async fn first_line_direct(
    engine: &EmbeddedEngine,
    messages: Vec<confide_engine::ChatMessage>,
    params: GenerateParams,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut s = engine.generate(messages, params).await?;
    let mut gate = features::WholeSentences::default();
    while let Some(ev) = s.next().await {
        match ev? {
            StreamEvent::Text(piece) => {
                if !gate.push(&piece).is_empty() {
                    return Ok(t.elapsed());
                }
            }
            StreamEvent::Done(d) => {
                if !gate.finish(d.finish_reason).is_empty() {
                    return Ok(t.elapsed());
                }
            }
        }
    }
    anyhow::bail!("the engine produced no text")
}

/// Time until the first text of a private summary, draining the rest of the answer.
async fn first_line_private(
    client: &confide_sdk::Client,
    chat: &confide_sdk::chat::Chat,
    max_tokens: u32,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut stream = client
        .summarize(
            chat,
            &confide_sdk::chat::Selection::default(),
            Some(max_tokens),
        )
        .await?;
    let mut first = None;
    while let Some(ev) = stream.next().await {
        if let confide_sdk::client::Event::Text(_) = ev? {
            first.get_or_insert_with(|| t.elapsed());
        }
    }
    first.context("the node sent no text")
}

/// Peak resident set of a process, from `/proc/PID/status` (`VmHWM`), in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

async fn private_path(
    a: &BenchArgs,
    threads: usize,
    engine: &EmbeddedEngine,
    repeats: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<Vec<PartyMemory>> {
    use super::up::{Stack, UpArgs, unix_now};
    let max_tokens = if a.smoke { 16 } else { 64 };
    let sample = crate::cmd::in_source_tree("examples/chat-whatsapp.txt");
    let bytes = Zeroizing::new(
        std::fs::read(&sample).with_context(|| format!("cannot read {}", sample.display()))?,
    );
    let chat = confide_sdk::chat::parse(&bytes, &confide_sdk::chat::ParseOptions::default())?;
    let direct_messages = features::summarize_prompt(
        &SummarizeRequest {
            messages: chat
                .messages
                .iter()
                .map(|m| ChatLine {
                    sender: m.sender.clone(),
                    time: m.time,
                    text: m.text.clone(),
                })
                .collect(),
        },
        &Limits::default(),
    )?;
    let params = features::feature_params(max_tokens);

    let tmp = tempfile::Builder::new()
        .prefix("confide-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    eprintln!("bench: starting the parties of `confide up` for the private path");
    let up = UpArgs {
        platform: super::up::SimPlatform::SimSnp,
        gpu: false,
        sim_fault: Vec::new(),
        model_node: None,
        dir: tmp.path().join("system"),
        nodes: 1,
        model: Some(a.model.clone()),
        max_tokens,
        tuning: super::engine::TuningArgs {
            threads,
            kv_tokens: LoadOptions::DEFAULT_CONTEXT_TOKENS,
            parallel: LoadOptions::DEFAULT_PARALLEL,
            queue: LoadOptions::DEFAULT_QUEUE,
        },
    };
    let stack = Stack::start(&up).await?;
    let measured = async {
        let cfg = confide_sdk::config::ClientConfig::load(&stack.client_config)?;
        confide_sdk::consent::Consent::record(&cfg.consent_state, true, unix_now())?;
        // Warm-up: the node's first request (the wallet was filled when the stack came up).
        let warm = super::client::connect(&stack.client_config)?;
        first_line_private(&warm, &chat, max_tokens).await?;
        first_line_direct(engine, direct_messages.clone(), params).await?;
        let (mut direct, mut new, mut established) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..repeats.clamp(2, 3) {
            direct.push(
                first_line_direct(engine, direct_messages.clone(), params)
                    .await?
                    .as_secs_f64()
                    * 1e3,
            );
            // A new client: verification, key config, token, RA-TLS handshake, then the
            // request.
            let fresh = super::client::connect(&stack.client_config)?;
            new.push(
                first_line_private(&fresh, &chat, max_tokens)
                    .await?
                    .as_secs_f64()
                    * 1e3,
            );
            // The same client again: the session is established.
            established.push(
                first_line_private(&fresh, &chat, max_tokens)
                    .await?
                    .as_secs_f64()
                    * 1e3,
            );
            fresh.close().await;
        }
        warm.close().await;
        rows.push(row(
            "private summary, first line, new session (full verification)",
            "ms",
            "same summary in-process",
            direct.clone(),
            new,
        ));
        rows.push(row(
            "private summary, first line, established session",
            "ms",
            "same summary in-process",
            direct,
            established,
        ));
        let model_mib = std::fs::metadata(&a.model)?.len() as f64 / (1024.0 * 1024.0);
        let mut memory = Vec::new();
        for p in &stack.parties {
            if let Some(mib) = peak_rss_mib(p.pid) {
                memory.push(PartyMemory {
                    party: p.name.clone(),
                    peak_rss_mib: mib,
                    ratio_to_model_file: mib / model_mib,
                });
            }
        }
        anyhow::Ok(memory)
    }
    .await;
    stack.stop().await;
    measured
}
