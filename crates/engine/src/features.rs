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
            Self::Friendly => "more friendly and approachable while maintaining its main points",
            Self::Formal => "more formal and polite while retaining its essential content",
            Self::Concise => "more concise while preserving its core meaning",
            Self::Apologetic => "more apologetic and sincere while keeping its main points",
            Self::Enthusiastic => "more enthusiastic and upbeat while keeping its main points",
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

const SUMMARIZE_SYSTEM: &str = "You summarize chat conversations. Write a short summary of the \
conversation in two or three sentences: who took part, what they talked about and what they \
decided. Use only facts from the conversation.";

/// Build the chat for `summarize`, enforcing `limits`.
///
/// Each message becomes one line `[YYYY-MM-DD HH:MM] sender: text`; newlines inside a
/// text are folded to spaces so a message cannot forge further lines.
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
    body.push_str("Summarize this conversation:\n\n");
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
            body.push(if c == '\n' || c == '\t' { ' ' } else { c });
        }
        body.push('\n');
    }
    Ok(vec![
        ChatMessage::new(Role::System, SUMMARIZE_SYSTEM),
        ChatMessage {
            role: Role::User,
            content: Zeroizing::new(std::mem::take(&mut *body)),
        },
    ])
}

/// Build the chat for `suggest`, enforcing `limits`.
///
/// The system prompt follows the phrasing of the text-rewriting data SmolLM2-Instruct
/// was tuned on ("You're an AI assistant for text re-writing. Rewrite the input text to
/// make it more ..."), with the draft alone as the user turn: small models follow that
/// form far better than a free-form instruction.
pub fn suggest_prompt(
    req: &SuggestRequest,
    limits: &Limits,
) -> Result<Vec<ChatMessage>, EngineError> {
    check_text("draft", &req.draft, limits.max_draft_bytes, true)?;
    let system = format!(
        "You're an AI assistant for text re-writing. Rewrite the input text to make it {}.",
        req.tone.instruction()
    );
    Ok(vec![
        ChatMessage::new(Role::System, system),
        ChatMessage::new(Role::User, req.draft.trim()),
    ])
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
            "Summarize this conversation:\n\n[2023-11-14 22:13] Alice: Lunch at noon? At the cafe\n[2023-11-14 22:13] Bob: Yes\n"
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
        assert!(msgs[0].content.contains("more formal and polite"));
        assert_eq!(msgs[1].content.as_str(), "see you tmrw");
    }
}
