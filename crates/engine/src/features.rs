//! The two product features and their prompts: `summarize` and `suggest`.
//!
//! Data minimisation: each request type carries exactly what its feature needs and
//! rejects any other field (`deny_unknown_fields`), and every field has a size limit
//! checked before anything reaches the model. Errors name the field and the sizes,
//! never the content.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::{ChatMessage, EngineError, GenerateParams, Role};

/// Per-request size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most messages in one `summarize` request.
    pub max_messages: usize,
    /// Longest sender name, bytes.
    pub max_sender_bytes: usize,
    /// Longest message text, bytes.
    pub max_text_bytes: usize,
    /// Largest `summarize` request (all senders and texts), bytes.
    pub max_total_bytes: usize,
    /// Longest `suggest` draft, bytes.
    pub max_draft_bytes: usize,
}

impl Default for Limits {
    /// Sized for a 8k-token context: 24 KiB of chat is about 6k tokens of English.
    fn default() -> Self {
        Self {
            max_messages: 200,
            max_sender_bytes: 64,
            max_text_bytes: 4096,
            max_total_bytes: 24 * 1024,
            max_draft_bytes: 4096,
        }
    }
}

/// One chat message to summarise.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatLine {
    /// Display name of who wrote it.
    pub sender: Zeroizing<String>,
    /// When it was sent (RFC 3339 on the wire).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// What was written.
    pub text: Zeroizing<String>,
}

impl std::fmt::Debug for ChatLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatLine")
            .field("sender", &format_args!("<{} bytes>", self.sender.len()))
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .finish_non_exhaustive()
    }
}

/// `summarize`: the messages the person selected.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummarizeRequest {
    /// Messages in chronological order.
    pub messages: Vec<ChatLine>,
}

/// The tone a suggestion should take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tone {
    /// Warm and casual.
    Friendly,
    /// Polite and professional.
    Formal,
    /// As short as possible.
    Concise,
    /// Expressing regret.
    Apologetic,
    /// Energetic and positive.
    Enthusiastic,
}

impl Tone {
    /// Every tone, for help texts.
    pub const ALL: [Tone; 5] = [
        Self::Friendly,
        Self::Formal,
        Self::Concise,
        Self::Apologetic,
        Self::Enthusiastic,
    ];

    /// The tone's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Friendly => "friendly",
            Self::Formal => "formal",
            Self::Concise => "concise",
            Self::Apologetic => "apologetic",
            Self::Enthusiastic => "enthusiastic",
        }
    }

    fn instruction(self) -> &'static str {
        match self {
            Self::Friendly => "warmer and more friendly",
            Self::Formal => "more formal and polite",
            Self::Concise => "as short as possible",
            Self::Apologetic => "more apologetic",
            Self::Enthusiastic => "more enthusiastic and upbeat",
        }
    }
}

impl std::str::FromStr for Tone {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or(EngineError::InvalidParameter {
                name: "tone",
                reason: "must be one of friendly, formal, concise, apologetic, enthusiastic",
            })
    }
}

/// `suggest`: a draft to rewrite in a tone.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestRequest {
    /// The person's draft.
    pub draft: Zeroizing<String>,
    /// The wanted tone.
    pub tone: Tone,
}

impl std::fmt::Debug for SuggestRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuggestRequest")
            .field("draft", &format_args!("<{} bytes>", self.draft.len()))
            .field("tone", &self.tone)
            .finish()
    }
}

fn check_text(
    field: &'static str,
    s: &str,
    max: usize,
    allow_newlines: bool,
) -> Result<(), EngineError> {
    if s.len() > max {
        return Err(EngineError::FieldTooLong {
            field,
            len: s.len(),
            max,
        });
    }
    if s.trim().is_empty() {
        return Err(EngineError::EmptyField { field });
    }
    if s.chars()
        .any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\t')))
    {
        return Err(EngineError::ControlCharacters { field });
    }
    Ok(())
}

// The prompts were chosen by measurement on the bundled sample chats with the default
// model (Qwen2.5-Coder-1.5B-Instruct) under greedy decoding: a free-form "summarize in
// two or three sentences" lost most decisions, and asking for "every decision" before
// the chat made the model copy the chat line by line. What works: a short system
// prompt, the chat, and the task *after* the chat, as bullets of decisions with the
// names, dates and amounts copied. `crates/engine/tests/quality.rs` holds it to that.
const SUMMARIZE_SYSTEM: &str = "You are an assistant that summarizes group chats. You never copy \
the chat; you write a short summary of what was decided.";

const SUMMARIZE_TASK: &str = "\nSummarize the chat above in at most six short bullet points. Each \
bullet states one decision or agreement: what will happen, who does it, and the date, time or \
amount of money if the chat gives one. Copy names, dates, times and amounts exactly from the \
chat; never add any that are not in it. Write nothing after the bullets.";

/// Build the chat for `summarize`, enforcing `limits`.
///
/// Each message becomes a line `[YYYY-MM-DD HH:MM] sender: text`. A multi-line text
/// keeps its lines (lists carry decisions), each continuation indented by four spaces,
/// so a message cannot forge a line that looks like another message.
pub fn summarize_prompt(
    req: &SummarizeRequest,
    limits: &Limits,
) -> Result<Vec<ChatMessage>, EngineError> {
    if req.messages.is_empty() {
        return Err(EngineError::EmptyConversation);
    }
    if req.messages.len() > limits.max_messages {
        return Err(EngineError::TooManyMessages {
            count: req.messages.len(),
            max: limits.max_messages,
        });
    }
    let mut total = 0usize;
    for m in &req.messages {
        check_text("sender", &m.sender, limits.max_sender_bytes, false)?;
        check_text("text", &m.text, limits.max_text_bytes, true)?;
        total = total.saturating_add(m.sender.len() + m.text.len());
    }
    if total > limits.max_total_bytes {
        return Err(EngineError::RequestTooLarge {
            len: total,
            max: limits.max_total_bytes,
        });
    }
    let mut body = Zeroizing::new(String::with_capacity(total + 64 * req.messages.len()));
    body.push_str("Chat to summarize:\n\n");
    for m in &req.messages {
        let t = m.time.to_offset(time::UtcOffset::UTC);
        body.push_str(&format!(
            "[{:04}-{:02}-{:02} {:02}:{:02}] ",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ));
        body.push_str(m.sender.trim());
        body.push_str(": ");
        for c in m.text.trim().chars() {
            match c {
                '\n' => body.push_str("\n    "),
                '\t' | '\r' => body.push(' '),
                c => body.push(c),
            }
        }
        body.push('\n');
    }
    body.push_str(SUMMARIZE_TASK);
    Ok(vec![
        ChatMessage::new(Role::System, SUMMARIZE_SYSTEM),
        ChatMessage {
            role: Role::User,
            content: Zeroizing::new(std::mem::take(&mut *body)),
        },
    ])
}

const SUGGEST_SYSTEM: &str = "You are a text editor. You rewrite text in a requested tone. You \
keep the author's point of view: if the author writes about themselves (\"I\", or no subject at \
all), the rewrite is still written by the author about themselves. You keep every fact and \
request, and add none. You output only the rewritten text.";

/// Build the chat for `suggest`, enforcing `limits`.
///
/// Framed as editing a text by its author: asked to rewrite "a message", small models
/// tend to *answer* it ("Sorry to hear you are sick"); asked to edit a text keeping its
/// author's point of view, they keep "I" as "I".
pub fn suggest_prompt(
    req: &SuggestRequest,
    limits: &Limits,
) -> Result<Vec<ChatMessage>, EngineError> {
    check_text("draft", &req.draft, limits.max_draft_bytes, true)?;
    let task = Zeroizing::new(format!(
        "Rewrite the following text to be {}, written by the same author.\n\nText: {}",
        req.tone.instruction(),
        req.draft.trim()
    ));
    Ok(vec![
        ChatMessage::new(Role::System, SUGGEST_SYSTEM),
        ChatMessage::new(Role::User, task.as_str()),
    ])
}

/// Holds generated text back until a line or a sentence ends, so that an answer cut
/// at `max_tokens` ends on a whole sentence: the unfinished tail is dropped, never sent.
/// A boundary is a newline, or `.`, `!`, `?` followed by white space.
#[derive(Default)]
pub struct WholeSentences {
    held: Zeroizing<String>,
    released_any: bool,
}

impl WholeSentences {
    /// Add generated text; returns what may be sent now (possibly empty).
    pub fn push(&mut self, text: &str) -> Zeroizing<String> {
        self.held.push_str(text);
        let mut cut = None;
        let mut prev: Option<char> = None;
        for (i, c) in self.held.char_indices() {
            if c == '\n' {
                cut = Some(i + 1);
            } else if c.is_whitespace() && matches!(prev, Some('.' | '!' | '?')) {
                cut = Some(i);
            }
            prev = Some(c);
        }
        match cut {
            Some(at) => {
                self.released_any = true;
                let rest = Zeroizing::new(self.held[at..].to_owned());
                self.held.truncate(at);
                Zeroizing::new(std::mem::replace(&mut *self.held, rest.to_string()))
            }
            None => Zeroizing::new(String::new()),
        }
    }

    /// The generation ended: what remains to be sent. After a stop everything held is
    /// sent; after the length limit the unfinished tail is dropped, unless nothing was
    /// sent at all, in which case the tail is sent with an ellipsis that marks the cut.
    pub fn finish(&mut self, reason: crate::FinishReason) -> Zeroizing<String> {
        let held = Zeroizing::new(std::mem::take(&mut *self.held));
        match reason {
            crate::FinishReason::Length if self.released_any => Zeroizing::new(String::new()),
            crate::FinishReason::Length if !held.trim().is_empty() => {
                Zeroizing::new(format!("{}…", held.trim_end()))
            }
            _ => held,
        }
    }
}

/// Generation parameters suited to the features: greedy, bounded, mild repeat penalty.
pub fn feature_params(max_tokens: u32) -> GenerateParams {
    GenerateParams {
        max_tokens,
        ..GenerateParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sender: &str, text: &str) -> ChatLine {
        ChatLine {
            sender: Zeroizing::new(sender.into()),
            time: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            text: Zeroizing::new(text.into()),
        }
    }

    #[test]
    fn summarize_renders_lines() {
        let req = SummarizeRequest {
            messages: vec![
                line("Alice", "Lunch at noon?\nAt the cafe"),
                line("Bob", "Yes"),
            ],
        };
        let msgs = summarize_prompt(&req, &Limits::default()).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].role, Role::System);
        assert_eq!(
            msgs[1].content.as_str(),
            format!(
                "Chat to summarize:\n\n[2023-11-14 22:13] Alice: Lunch at noon?\n    At the cafe\n[2023-11-14 22:13] Bob: Yes\n{SUMMARIZE_TASK}"
            )
        );
    }

    #[test]
    fn summarize_limits_are_typed_errors() {
        let limits = Limits {
            max_messages: 2,
            max_sender_bytes: 5,
            max_text_bytes: 10,
            max_total_bytes: 15,
            max_draft_bytes: 10,
        };
        let req = |v: Vec<ChatLine>| SummarizeRequest { messages: v };
        assert!(matches!(
            summarize_prompt(&req(vec![]), &limits),
            Err(EngineError::EmptyConversation)
        ));
        assert!(matches!(
            summarize_prompt(&req(vec![line("a", "b"); 3]), &limits),
            Err(EngineError::TooManyMessages { count: 3, max: 2 })
        ));
        assert!(matches!(
            summarize_prompt(&req(vec![line("abcdef", "b")]), &limits),
            Err(EngineError::FieldTooLong {
                field: "sender",
                len: 6,
                max: 5
            })
        ));
        assert!(matches!(
            summarize_prompt(&req(vec![line("a", "0123456789x")]), &limits),
            Err(EngineError::FieldTooLong { field: "text", .. })
        ));
        assert!(matches!(
            summarize_prompt(&req(vec![line("a", "  ")]), &limits),
            Err(EngineError::EmptyField { field: "text" })
        ));
        assert!(matches!(
            summarize_prompt(&req(vec![line("a\nb", "x")]), &limits),
            Err(EngineError::ControlCharacters { field: "sender" })
        ));
        assert!(matches!(
            summarize_prompt(&req(vec![line("abcd", "0123456789"); 2]), &limits),
            Err(EngineError::RequestTooLarge { len: 28, max: 15 })
        ));
    }

    #[test]
    fn schema_rejects_unknown_fields_and_tones() {
        let ok = r#"{"messages":[{"sender":"A","time":"2025-01-02T03:04:05Z","text":"hi"}]}"#;
        assert!(serde_json::from_str::<SummarizeRequest>(ok).is_ok());
        let extra = r#"{"messages":[{"sender":"A","time":"2025-01-02T03:04:05Z","text":"hi","phone":"1"}]}"#;
        assert!(serde_json::from_str::<SummarizeRequest>(extra).is_err());
        let bad_time = r#"{"messages":[{"sender":"A","time":"yesterday","text":"hi"}]}"#;
        assert!(serde_json::from_str::<SummarizeRequest>(bad_time).is_err());
        assert!(serde_json::from_str::<SuggestRequest>(r#"{"draft":"x","tone":"formal"}"#).is_ok());
        assert!(serde_json::from_str::<SuggestRequest>(r#"{"draft":"x","tone":"rude"}"#).is_err());
        assert!(
            serde_json::from_str::<SuggestRequest>(r#"{"draft":"x","tone":"formal","to":"b"}"#)
                .is_err()
        );
        assert!("rude".parse::<Tone>().is_err());
        assert_eq!("concise".parse::<Tone>().unwrap(), Tone::Concise);
    }

    #[test]
    fn suggest_checks_the_draft() {
        let limits = Limits::default();
        let req = SuggestRequest {
            draft: Zeroizing::new("x".repeat(limits.max_draft_bytes + 1)),
            tone: Tone::Formal,
        };
        assert!(matches!(
            suggest_prompt(&req, &limits),
            Err(EngineError::FieldTooLong { field: "draft", .. })
        ));
        let req = SuggestRequest {
            draft: Zeroizing::new("see you tmrw".into()),
            tone: Tone::Formal,
        };
        let msgs = suggest_prompt(&req, &limits).unwrap();
        assert!(msgs[1].content.contains("more formal and polite"));
        assert!(msgs[1].content.ends_with("Text: see you tmrw"));
    }

    #[test]
    fn whole_sentences_drop_a_cut_tail_and_keep_a_finished_one() {
        use crate::FinishReason;
        let mut g = WholeSentences::default();
        let mut out = String::new();
        for piece in [
            "- Rent £42",
            " paid.\n- Clear",
            "-out Sat. 5 Dec",
            " from 9am",
            "\n- Keep the",
        ] {
            out.push_str(&g.push(piece));
        }
        assert_eq!(out, "- Rent £42 paid.\n- Clear-out Sat. 5 Dec from 9am\n");
        assert_eq!(g.finish(FinishReason::Length).as_str(), "");

        let mut g = WholeSentences::default();
        assert_eq!(g.push("Done. Bye").as_str(), "Done.");
        assert_eq!(g.finish(FinishReason::Stop).as_str(), " Bye");

        let mut g = WholeSentences::default();
        assert_eq!(g.push("£14.50 each and").as_str(), "");
        assert_eq!(g.finish(FinishReason::Length).as_str(), "£14.50 each and…");
    }
}
