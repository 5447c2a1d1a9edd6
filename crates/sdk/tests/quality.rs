//! Summary quality with the default model (`quality`: Qwen2.5-Coder-1.5B-Instruct Q4_K_M)
//! under greedy decoding, on the example chats as a device reads them (WhatsApp exports
//! and JSON through the SDK's parser, then the node's prompt).
//!
//! Each chat lists the facts a summary must state: every decision, with who does it and
//! the amounts and dates. And the summary must invent nothing: every number it writes
//! (amounts, dates, times) and every weekday it names must appear in the chat. The test
//! fails when the model leaves a decision out or makes a figure up.
//!
//! Model: `scripts/fetch-model quality` (or `CONFIDE_QUALITY_MODEL=PATH`).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use confide_engine::features::{self, ChatLine, Limits, SuggestRequest, SummarizeRequest, Tone};
use confide_engine::{EmbeddedEngine, Engine, FinishReason, LoadOptions, models};
use confide_sdk::chat::{self, ParseOptions};

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn engine() -> Arc<EmbeddedEngine> {
    static ENGINE: OnceLock<Arc<EmbeddedEngine>> = OnceLock::new();
    Arc::clone(ENGINE.get_or_init(|| {
        let path = std::env::var_os("CONFIDE_QUALITY_MODEL").map_or_else(
            || models::QUALITY.path_in(&repo().join("models")),
            PathBuf::from,
        );
        assert!(
            path.is_file(),
            "model file {} is missing: run scripts/fetch-model quality",
            path.display()
        );
        // One sequence: the tests' requests run one after another, each exactly as it
        // would alone (batched requests can differ in the last bits of their logits).
        let opts = LoadOptions {
            expected_sha256: Some(models::QUALITY.digest()),
            parallel: 1,
            ..LoadOptions::default()
        };
        Arc::new(EmbeddedEngine::load(&path, &opts).unwrap())
    }))
}

/// The chat as the SDK parses it, and its full text (for the invention check).
fn read_chat(name: &str) -> (SummarizeRequest, String) {
    let bytes = std::fs::read(repo().join("examples").join(name)).unwrap();
    let parsed = chat::parse(&bytes, &ParseOptions::default()).unwrap();
    let messages: Vec<ChatLine> = parsed
        .messages
        .iter()
        .map(|m| ChatLine {
            sender: m.sender.clone(),
            time: m.time,
            text: m.text.clone(),
        })
        .collect();
    let mut all = String::new();
    for m in &messages {
        let t = m.time;
        all.push_str(&format!(
            "{} {} {} {}:{:02} {} {}\n",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            m.sender.as_str(),
            m.text.as_str()
        ));
    }
    (SummarizeRequest { messages }, all)
}

async fn summarize(req: &SummarizeRequest) -> String {
    let msgs = features::summarize_prompt(req, &Limits::default()).unwrap();
    let (text, done) = engine()
        .generate(msgs, features::feature_params(256))
        .await
        .unwrap()
        .collect_text()
        .await
        .unwrap();
    assert_eq!(
        done.finish_reason,
        FinishReason::Stop,
        "summary hit the length limit: {:?}",
        text.as_str()
    );
    text.to_string()
}

/// Digit runs of `s` (`£23.75` gives 23 and 75).
fn numbers(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .map(|t| t.trim_start_matches('0').to_owned())
        .map(|t| if t.is_empty() { "0".into() } else { t })
        .collect()
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Every number and weekday of the summary must come from the chat.
fn assert_invents_nothing(summary: &str, chat: &str) {
    let known = numbers(chat);
    for n in numbers(summary) {
        assert!(
            known.contains(&n),
            "the summary states {n}, which is not in the chat: {summary:?}"
        );
    }
    let (s, c) = (summary.to_lowercase(), chat.to_lowercase());
    for day in WEEKDAYS {
        assert!(
            !s.contains(day) || c.contains(day) || c.contains(&day[..3]),
            "the summary names {day}, which the chat does not: {summary:?}"
        );
    }
}

/// Each fact is a list of alternatives; one must appear (case-insensitive).
fn assert_states(summary: &str, facts: &[&[&str]]) {
    let s = summary.to_lowercase();
    for alternatives in facts {
        assert!(
            alternatives.iter().any(|a| s.contains(&a.to_lowercase())),
            "the summary misses {alternatives:?}: {summary:?}"
        );
    }
}

/// The line that mentions `topic` names `who` (attribution).
fn assert_attributed(summary: &str, topic: &str, who: &str) {
    let s = summary.to_lowercase();
    let line = s
        .lines()
        .find(|l| l.contains(topic))
        .unwrap_or_else(|| panic!("no line about {topic}: {summary:?}"));
    assert!(
        line.contains(who),
        "{topic} is not attributed to {who}: {summary:?}"
    );
}

#[tokio::test]
async fn whatsapp_sample_decisions_are_all_there_and_nothing_is_invented() {
    let (req, all) = read_chat("chat-whatsapp.txt");
    let summary = summarize(&req).await;
    assert_states(
        &summary,
        &[
            &["£42"],
            &["tomasz"],
            &["£14"],
            &["5 dec", "saturday"],
            &["9am", "9 am", "from 9", "9:00", "at 9"],
            &["shed"],
            &["felt"],
            &["rhubarb"],
            &["thursday"],
            &["garlic"],
        ],
    );
    assert_attributed(&summary, "£42", "tomasz");
    assert_attributed(&summary, "garlic", "tomasz");
    assert_attributed(&summary, "rhubarb", "hélène");
    assert_invents_nothing(&summary, &all);
}

#[tokio::test]
async fn multi_line_moving_chat_keeps_who_does_what() {
    let (req, all) = read_chat("chat-moving-day.txt");
    let summary = summarize(&req).await;
    assert_states(
        &summary,
        &[
            &["12 dec", "saturday"],
            &["dev"],
            &["drive", "driving", "driver"],
            &["box"],
            &["£24", "£96"],
            &["kitchen"],
        ],
    );
    assert_attributed(&summary, "kitchen", "sam");
    assert_invents_nothing(&summary, &all);
}

#[tokio::test]
async fn json_offsite_chat_states_its_decisions() {
    let (req, all) = read_chat("chat.json");
    let summary = summarize(&req).await;
    assert_states(&summary, &[&["boathouse"]]);
    assert_invents_nothing(&summary, &all);
}

#[tokio::test]
async fn suggest_keeps_the_author_and_the_meaning() {
    let req = SuggestRequest {
        draft: zeroize::Zeroizing::new(
            "cant come to the meeting tmrw, sick. can u send me the notes after".into(),
        ),
        tone: Tone::Formal,
    };
    let msgs = features::suggest_prompt(&req, &Limits::default()).unwrap();
    let (text, done) = engine()
        .generate(msgs, features::feature_params(120))
        .await
        .unwrap()
        .collect_text()
        .await
        .unwrap();
    assert_eq!(done.finish_reason, FinishReason::Stop);
    let lower = text.to_lowercase();
    // Still the author speaking, about the same meeting and the same request.
    assert!(
        lower.contains("i am unable")
            || lower.contains("i will not")
            || lower.contains("i'm unable")
            || lower.contains("i cannot")
            || lower.contains("i can't")
            || lower.contains("i won't"),
        "the rewrite no longer speaks as the author: {:?}",
        text.as_str()
    );
    assert!(
        lower.contains("meeting") && lower.contains("notes"),
        "{:?}",
        text.as_str()
    );
    // Only the rewrite: no preamble, no quotes around it.
    assert!(
        !lower.starts_with("sure") && !lower.starts_with("here"),
        "{:?}",
        text.as_str()
    );
    assert!(!text.starts_with('"'), "{:?}", text.as_str());
}
