//! Chat input: the messages a person chooses to summarise, read from a file they exported.
//!
//! Two formats are understood, both detected from the content ([`ChatFormat::detect`]):
//!
//! - **JSON**: a list of `{"sender", "time", "text"}` objects, or the same list under a
//!   `"messages"` key (the shape of the node's summarise request). `time` is RFC 3339
//!   (`2026-11-21T09:14:03Z`) or a wall-clock time without offset (`2026-11-21T09:14:03`,
//!   `2026-11-21 09:14`), which is read in [`ParseOptions::offset`].
//! - **WhatsApp's "Export chat" text**, in the iOS form `[21/11/2026, 09:14:03] Alice: text`
//!   and the Android form `21/11/2026, 09:14 - Alice: text`, with 12-hour clocks
//!   (`9:14 PM`, also with the narrow no-break space newer exports use), two- or
//!   four-digit years, `/`, `.` or `-` as date separator, day-first or month-first dates
//!   (decided from the whole file: a first field above 12 means day-first, a second field
//!   above 12 means month-first, day-first otherwise), messages that continue over several
//!   lines, and the lines WhatsApp adds that nobody wrote: the encryption notice, group
//!   events, `<attached: …>` / `<Media omitted>` placeholders, deleted-message notices and
//!   the U+200E marks iOS puts in front of them. Those are skipped and counted in
//!   [`Skipped`], never sent.
//!
//! Only the selected range ([`Selection`]: `--last N`, `--since TIME`) is sent, and it must
//! fit the node's request limits ([`Limits`], the same numbers the node enforces), so an
//! over-long request fails here, before anything leaves the device, with an error that
//! says how to narrow the range.
//!
//! This module does no I/O: callers pass the file's bytes, the current time and the offset
//! to read local times in. Errors name a line (or a message index for JSON) and sizes,
//! never any content of the chat.

use std::fmt;

use time::{
    Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset,
    format_description::well_known::Rfc3339,
};
use zeroize::Zeroizing;

/// Where in the input something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A 1-based line of a text export (the line a message starts on).
    Line(usize),
    /// A 0-based index into a JSON message list.
    Message(usize),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Message(i) => write!(f, "message #{i}"),
        }
    }
}

/// Why a chat file was rejected. Carries positions and sizes only, never chat content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// The file is larger than [`Limits::max_input_bytes`].
    #[error("the chat file is {len} bytes, more than the {max} bytes accepted")]
    InputTooLarge {
        /// Size of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The file is not UTF-8 text.
    #[error("the chat file is not UTF-8 text (invalid bytes on line {line})")]
    NotUtf8 {
        /// Line of the first invalid byte.
        line: usize,
    },
    /// JSON that does not parse, or does not have the message-list shape.
    #[error(
        "the chat file is not a valid JSON message list ({kind} at line {line}, column {column}); \
         expected [{{\"sender\": …, \"time\": …, \"text\": …}}, …]"
    )]
    Json {
        /// `syntax error`, `unexpected end of file` or `wrong structure`.
        kind: &'static str,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A JSON message whose `time` is neither RFC 3339 nor `YYYY-MM-DD[ T]HH:MM[:SS]`.
    #[error("{at}: the time is not RFC 3339 (2026-11-21T09:14:03Z) or YYYY-MM-DD HH:MM[:SS]")]
    InvalidJsonTime {
        /// Which message.
        at: Position,
    },
    /// The first line with content is not the start of a WhatsApp message.
    #[error(
        "line {line} does not start a message: expected a WhatsApp export \
         (\"[21/11/2026, 09:14:03] Name: text\" or \"21/11/2026, 09:14 - Name: text\") or a JSON list"
    )]
    UnrecognisedLine {
        /// 1-based line.
        line: usize,
    },
    /// A message header whose date or time does not exist (31/02, 25:00, …).
    #[error("line {line}: the message's date or time is not valid ({order} dates)")]
    InvalidTimestamp {
        /// 1-based line.
        line: usize,
        /// The date order the file was read with.
        order: DateOrder,
    },
    /// The file holds no message anyone wrote.
    #[error("the chat file holds no messages (only {skipped} system or media lines)")]
    NoMessages {
        /// How many lines were skipped as system/media lines.
        skipped: usize,
    },
    /// More messages than [`Limits::max_parsed_messages`].
    #[error("the chat file holds more than {max} messages; export a shorter chat")]
    TooManyMessages {
        /// The limit.
        max: usize,
    },
    /// A sender name that is empty or longer than [`Limits::max_sender_bytes`].
    #[error("{at}: the sender name is {len} bytes (must be 1 to {max})")]
    BadSender {
        /// Which message.
        at: Position,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A message longer than [`Limits::max_text_bytes`] in the selected range.
    #[error(
        "{at}: the message is {len} bytes, more than the {max} a request may carry; \
         choose a range without it (--since / --last)"
    )]
    MessageTooLong {
        /// Which message.
        at: Position,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The selection matched no message.
    #[error("no message of the {total} in the chat matches the selection (--since / --last)")]
    NothingSelected {
        /// Messages in the chat.
        total: usize,
    },
    /// The selection is larger than one request may be.
    #[error(
        "the selection is {count} messages and {bytes} bytes; one request takes at most \
         {max_messages} messages and {max_bytes} bytes: narrow it with --last N or --since TIME"
    )]
    SelectionTooLarge {
        /// Messages selected.
        count: usize,
        /// Their total size (senders and texts).
        bytes: usize,
        /// Message limit.
        max_messages: usize,
        /// Size limit.
        max_bytes: usize,
    },
    /// `--last 0`.
    #[error("--last must be at least 1")]
    ZeroLast,
    /// A `--since` value that is not a time.
    #[error(
        "--since must be a date or time (2026-11-21, 2026-11-21 09:14, RFC 3339) \
         or an age (90m, 12h, 7d)"
    )]
    InvalidSince,
}

/// How a day-and-month date is ordered in a WhatsApp export (it follows the phone's locale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DateOrder {
    /// Decide from the file: day-first unless a second field above 12 proves month-first.
    #[default]
    Auto,
    /// `21/11/2026` (most locales).
    DayFirst,
    /// `11/21/2026` (United States).
    MonthFirst,
}

impl fmt::Display for DateOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DateOrder::Auto => "auto-detected",
            DateOrder::DayFirst => "day-first",
            DateOrder::MonthFirst => "month-first",
        })
    }
}

/// Size limits. The request limits default to the node's own (`confide-engine`'s
/// `features::Limits`: 200 messages, 64-byte senders, 4 KiB texts, 24 KiB in all), so a
/// request the node would refuse is refused on the device first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest chat file read at all.
    pub max_input_bytes: usize,
    /// Most messages parsed from one file.
    pub max_parsed_messages: usize,
    /// Longest sender name.
    pub max_sender_bytes: usize,
    /// Longest message text that can be sent.
    pub max_text_bytes: usize,
    /// Most messages in one request.
    pub max_request_messages: usize,
    /// Largest request (senders and texts), bytes.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 64 * 1024 * 1024,
            max_parsed_messages: 1_000_000,
            max_sender_bytes: 64,
            max_text_bytes: 4096,
            max_request_messages: 200,
            max_request_bytes: 24 * 1024,
        }
    }
}

/// Options for [`parse`].
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions {
    /// Format, or `None` to detect it.
    pub format: Option<ChatFormat>,
    /// Date order of WhatsApp exports.
    pub date_order: DateOrder,
    /// The offset local (offset-less) times are read in.
    pub offset: UtcOffset,
    /// Size limits.
    pub limits: Limits,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            format: None,
            date_order: DateOrder::Auto,
            offset: UtcOffset::UTC,
            limits: Limits::default(),
        }
    }
}

/// The two input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatFormat {
    /// A JSON message list.
    Json,
    /// WhatsApp's text export.
    WhatsApp,
}

impl ChatFormat {
    /// Guess the format: JSON starts with `{`, or with `[` followed by `{` or `]`
    /// (a WhatsApp iOS line starts with `[` followed by a digit).
    pub fn detect(text: &str) -> ChatFormat {
        let t = text.trim_start_matches(is_mark).trim_start();
        if t.starts_with('{') {
            return ChatFormat::Json;
        }
        if let Some(rest) = t.strip_prefix('[')
            && matches!(
                rest.trim_start().chars().next(),
                Some('{') | Some(']') | None
            )
        {
            return ChatFormat::Json;
        }
        ChatFormat::WhatsApp
    }
}

/// One message someone wrote. Content is zeroized on drop and hidden from `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// Display name of the sender, as the export shows it.
    pub sender: Zeroizing<String>,
    /// When it was sent.
    pub time: OffsetDateTime,
    /// What was written; lines of a multi-line message are joined with `\n`.
    pub text: Zeroizing<String>,
    /// Where it starts in the input.
    pub position: Position,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("sender", &format_args!("<{} bytes>", self.sender.len()))
            .field("time", &self.time)
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .field("position", &self.position)
            .finish()
    }
}

/// What was left out of a WhatsApp export because nobody wrote it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Encryption notices, group events, security-code changes.
    pub system: usize,
    /// Attachments and "omitted" placeholders with no text.
    pub media: usize,
    /// "This message was deleted" notices.
    pub deleted: usize,
}

impl Skipped {
    /// All skipped lines.
    pub fn total(&self) -> usize {
        self.system + self.media + self.deleted
    }
}

/// A parsed chat.
#[derive(Debug, Clone)]
pub struct Chat {
    /// The format it was read as.
    pub format: ChatFormat,
    /// Date order used (WhatsApp only; `Auto` for JSON).
    pub date_order: DateOrder,
    /// Every message, in file order.
    pub messages: Vec<Message>,
    /// What was skipped.
    pub skipped: Skipped,
    /// What the export says about the chat itself (its name, its id, its AI setting).
    pub facts: ChatFacts,
}

/// What an export says about the chat as a whole, gathered from WhatsApp's own system
/// lines or the JSON envelope. Used to recognise a chat the person protected
/// ([`crate::protect`]); never sent anywhere. Names are hidden from `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChatFacts {
    /// Chat names the export shows, in file order, without repeats: `created group "…"`,
    /// `changed the subject … to "…"`, and the chat name iOS puts in front of every
    /// system line.
    pub subjects: Vec<Zeroizing<String>>,
    /// The id a JSON export carries in its envelope (`{"chat_id": …, "messages": […]}`).
    pub chat_id: Option<Zeroizing<String>>,
    /// WhatsApp's Advanced Chat Privacy as the export's system lines show it: `Some(true)`
    /// if any line turned it on (an "off" line does not undo that: such a line can be
    /// forged inside a multi-line message), `Some(false)` if the only such lines turned
    /// it off, `None` when there are none.
    pub advanced_chat_privacy: Option<bool>,
}

impl fmt::Debug for ChatFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatFacts")
            .field("subjects", &self.subjects.len())
            .field("chat_id", &self.chat_id.as_ref().map(|_| "<set>"))
            .field("advanced_chat_privacy", &self.advanced_chat_privacy)
            .finish()
    }
}

/// The system lines WhatsApp writes when someone changes a chat's Advanced Chat Privacy
/// setting, matched case-insensitively anywhere in the line, with the state each one
/// leaves. The setting (April 2025) "prevents others from exporting chats, auto-downloading
/// media and using messages for AI features"; the line reads "<name> turned on advanced
/// chat privacy" (or "You turned …"), then an explanation. Only English exports are
/// covered; add another language's wording here (from a real export of that language),
/// and nothing else needs to change.
pub const ADVANCED_CHAT_PRIVACY_LINES: &[(&str, bool)] = &[
    ("turned on advanced chat privacy", true),
    ("turned off advanced chat privacy", false),
];

/// The Advanced Chat Privacy state a system line's event text sets, if it is such a line.
/// Only WhatsApp's own words count: a group name (quoted in rename lines, or the iOS
/// `Chat name: ` prefix, which callers strip first) that happens to contain the phrase
/// does not.
pub fn advanced_chat_privacy_line(event: &str) -> Option<bool> {
    if event.contains(" changed the subject ") || event.contains(" created group ") {
        return None;
    }
    let lower = event.to_lowercase();
    ADVANCED_CHAT_PRIVACY_LINES.iter().find_map(|(phrase, on)| {
        let at = lower.find(phrase)?;
        (!lower[..at].contains(['"', '\u{201c}', '\u{201d}'])).then_some(*on)
    })
}

/// The quoted strings of `s` (`"…"` or `“…”`), in order.
fn quoted(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find(['"', '\u{201c}']) {
        let close = if rest[open..].starts_with('"') {
            '"'
        } else {
            '\u{201d}'
        };
        let start = open + rest[open..].chars().next().map_or(1, char::len_utf8);
        let Some(len) = rest[start..].find(close) else {
            break;
        };
        out.push(&rest[start..start + len]);
        rest = &rest[start + len + close.len_utf8()..];
    }
    out
}

/// The group name a `created group "…"` / `changed the subject [from "…"] to "…"` line
/// sets: the last quoted name on the line.
fn subject_line(event: &str) -> Option<&str> {
    let i = event
        .find(" changed the subject ")
        .or_else(|| event.find(" created group "))?;
    quoted(&event[i..])
        .into_iter()
        .last()
        .filter(|n| !n.trim().is_empty())
}

/// Split an iOS system line into the chat name WhatsApp puts first and the event text
/// (`Allotment Crew: \u{200e}Priya created group …`); Android lines are all event.
fn split_system_line(line: &str) -> (Option<&str>, &str) {
    match line.split_once(": \u{200e}") {
        Some((name, event)) if !name.trim().is_empty() => (Some(name), event),
        _ => (None, line.trim_start_matches('\u{200e}')),
    }
}

/// Which messages to send.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection {
    /// Only messages at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Of those, only the last N.
    pub last: Option<usize>,
}

/// Parse a chat file's bytes.
pub fn parse(bytes: &[u8], opts: &ParseOptions) -> Result<Chat, ChatError> {
    if bytes.len() > opts.limits.max_input_bytes {
        return Err(ChatError::InputTooLarge {
            len: bytes.len(),
            max: opts.limits.max_input_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ChatError::NotUtf8 {
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let format = opts.format.unwrap_or_else(|| ChatFormat::detect(text));
    let chat = match format {
        ChatFormat::Json => parse_json(text, opts)?,
        ChatFormat::WhatsApp => parse_whatsapp(text, opts)?,
    };
    if chat.messages.is_empty() {
        return Err(ChatError::NoMessages {
            skipped: chat.skipped.total(),
        });
    }
    Ok(chat)
}

impl Chat {
    /// Apply a selection and check the result fits one request.
    ///
    /// `--since` filters first, then `--last` keeps the newest N of what remains (in file
    /// order, which is the order the chat was written in).
    pub fn select(&self, sel: &Selection, limits: &Limits) -> Result<Vec<Message>, ChatError> {
        if sel.last == Some(0) {
            return Err(ChatError::ZeroLast);
        }
        let mut picked: Vec<&Message> = self
            .messages
            .iter()
            .filter(|m| sel.since.is_none_or(|s| m.time >= s))
            .collect();
        if let Some(n) = sel.last
            && picked.len() > n
        {
            picked.drain(..picked.len() - n);
        }
        if picked.is_empty() {
            return Err(ChatError::NothingSelected {
                total: self.messages.len(),
            });
        }
        let mut bytes = 0usize;
        for m in &picked {
            if m.text.len() > limits.max_text_bytes {
                return Err(ChatError::MessageTooLong {
                    at: m.position,
                    len: m.text.len(),
                    max: limits.max_text_bytes,
                });
            }
            bytes = bytes.saturating_add(m.sender.len() + m.text.len());
        }
        if picked.len() > limits.max_request_messages || bytes > limits.max_request_bytes {
            return Err(ChatError::SelectionTooLarge {
                count: picked.len(),
                bytes,
                max_messages: limits.max_request_messages,
                max_bytes: limits.max_request_bytes,
            });
        }
        Ok(picked.into_iter().cloned().collect())
    }
}

/// Parse a `--since` value: a date (`2026-11-21`, midnight), a date and time
/// (`2026-11-21 09:14[:SS]`, `T` also accepted) read in `offset`, RFC 3339, or an age
/// counted back from `now` (`90m`, `12h`, `7d`).
pub fn parse_since(
    s: &str,
    now: OffsetDateTime,
    offset: UtcOffset,
) -> Result<OffsetDateTime, ChatError> {
    let s = s.trim();
    if let Some((num, unit)) = s
        .char_indices()
        .last()
        .map(|(i, c)| (&s[..i], c))
        .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        let n: i64 = num.parse().map_err(|_| ChatError::InvalidSince)?;
        let secs = match unit {
            'm' => n.checked_mul(60),
            'h' => n.checked_mul(3600),
            'd' => n.checked_mul(86_400),
            _ => None,
        }
        .ok_or(ChatError::InvalidSince)?;
        return now
            .checked_sub(Duration::seconds(secs))
            .ok_or(ChatError::InvalidSince);
    }
    parse_iso_time(s, offset).ok_or(ChatError::InvalidSince)
}

/// RFC 3339, or `YYYY-MM-DD[( |T)HH:MM[:SS]]` in `offset`.
fn parse_iso_time(s: &str, offset: UtcOffset) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let (date_s, time_s) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut d = date_s.split('-');
    let y: i32 = digits(d.next()?, 4, 4)?;
    let mo: u8 = digits(d.next()?, 1, 2)?;
    let da: u8 = digits(d.next()?, 1, 2)?;
    if d.next().is_some() {
        return None;
    }
    let date = Date::from_calendar_date(y, Month::try_from(mo).ok()?, da).ok()?;
    let time = match time_s {
        None => Time::MIDNIGHT,
        Some(t) => {
            let mut p = t.split(':');
            let h: u8 = digits(p.next()?, 1, 2)?;
            let mi: u8 = digits(p.next()?, 2, 2)?;
            let sec: u8 = match p.next() {
                Some(x) => digits(x, 2, 2)?,
                None => 0,
            };
            if p.next().is_some() {
                return None;
            }
            Time::from_hms(h, mi, sec).ok()?
        }
    };
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

/// Parse an all-ASCII-digit field of `min..=max` digits.
fn digits<T: std::str::FromStr>(s: &str, min: usize, max: usize) -> Option<T> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

// ---------------------------------------------------------------------------------------
// JSON

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonMessage {
    sender: String,
    time: String,
    text: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEnvelope {
    #[serde(default)]
    chat_id: Option<String>,
    messages: Vec<JsonMessage>,
}

fn json_error(e: &serde_json::Error) -> ChatError {
    // serde_json's messages can quote the offending value (chat content): keep only the
    // category and the position.
    let kind = match e.classify() {
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Eof => "unexpected end of file",
        serde_json::error::Category::Data | serde_json::error::Category::Io => "wrong structure",
    };
    ChatError::Json {
        kind,
        line: e.line(),
        column: e.column(),
    }
}

fn parse_json(text: &str, opts: &ParseOptions) -> Result<Chat, ChatError> {
    let mut facts = ChatFacts::default();
    let raw: Vec<JsonMessage> = if text.trim_start().starts_with('{') {
        let env = serde_json::from_str::<JsonEnvelope>(text).map_err(|e| json_error(&e))?;
        facts.chat_id = env
            .chat_id
            .filter(|id| !id.trim().is_empty())
            .map(Zeroizing::new);
        env.messages
    } else {
        serde_json::from_str(text).map_err(|e| json_error(&e))?
    };
    if raw.len() > opts.limits.max_parsed_messages {
        return Err(ChatError::TooManyMessages {
            max: opts.limits.max_parsed_messages,
        });
    }
    let mut messages = Vec::with_capacity(raw.len());
    for (i, m) in raw.into_iter().enumerate() {
        let at = Position::Message(i);
        let time =
            parse_iso_time(m.time.trim(), opts.offset).ok_or(ChatError::InvalidJsonTime { at })?;
        let sender = Zeroizing::new(m.sender);
        let text = Zeroizing::new(m.text);
        messages.push(finish_message(&sender, time, &text, at, &opts.limits)?);
    }
    Ok(Chat {
        format: ChatFormat::Json,
        date_order: DateOrder::Auto,
        messages,
        skipped: Skipped::default(),
        facts,
    })
}

/// Normalise one message: strip direction marks and surrounding blank space, turn control
/// characters other than newline and tab into spaces (the node refuses them), check the
/// sender's size.
fn finish_message(
    sender: &str,
    time: OffsetDateTime,
    text: &str,
    at: Position,
    limits: &Limits,
) -> Result<Message, ChatError> {
    let sender = clean(sender, false);
    if sender.is_empty() || sender.len() > limits.max_sender_bytes {
        return Err(ChatError::BadSender {
            at,
            len: sender.len(),
            max: limits.max_sender_bytes,
        });
    }
    Ok(Message {
        sender,
        time,
        text: clean(text, true),
        position: at,
    })
}

fn clean(s: &str, keep_newlines: bool) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(s.len()));
    for c in s.chars() {
        if is_mark(c) {
            continue;
        }
        if c.is_control() && !(keep_newlines && (c == '\n' || c == '\t')) {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    let trimmed = out.trim();
    if trimmed.len() != out.len() {
        let t = Zeroizing::new(trimmed.to_owned());
        return t;
    }
    out
}

/// Invisible direction and format marks WhatsApp and editors add: LRM/RLM, the
/// embedding/override/isolate controls, and the byte-order mark.
fn is_mark(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

// ---------------------------------------------------------------------------------------
// WhatsApp export

/// A message header, before the date order is known.
struct Header<'a> {
    /// First and second date fields and the year, as written.
    a: u8,
    b: u8,
    year: i32,
    /// Year-first dates (`2026-11-21`) are unambiguous.
    year_first: bool,
    time: Time,
    /// Everything after the header: `Sender: text` or a system line.
    rest: &'a str,
    /// iOS puts U+200E in front of the text of system and media lines.
    marked: bool,
}

/// Recognise `[DATE, TIME] rest` (iOS) or `DATE, TIME - rest` (Android).
fn parse_header(line: &str) -> Option<Header<'_>> {
    let l = line.trim_start_matches(is_mark);
    let (stamp, rest) = if let Some(inner) = l.strip_prefix('[') {
        let close = inner.find(']')?;
        let rest = inner[close + 1..].strip_prefix(' ')?;
        (&inner[..close], rest)
    } else {
        // Android: the stamp ends at the first " - ".
        let dash = l.find(" - ")?;
        if dash > 40 {
            return None;
        }
        (&l[..dash], &l[dash + 3..])
    };
    let (date_s, time_s) = split_date_time(stamp)?;
    let (a, b, year, year_first) = parse_date_fields(date_s)?;
    let time = parse_clock(time_s)?;
    let marked = rest
        .split_once(": ")
        .is_some_and(|(_, t)| t.starts_with(is_mark))
        || rest.starts_with(is_mark);
    Some(Header {
        a,
        b,
        year,
        year_first,
        time,
        rest,
        marked,
    })
}

/// `21/11/2026, 09:14:03` or `21/11/2026 09:14`.
fn split_date_time(stamp: &str) -> Option<(&str, &str)> {
    let stamp = stamp.trim();
    let i = stamp.find([',', ' '])?;
    let date = &stamp[..i];
    let time = stamp[i..].trim_start_matches([',', ' ']);
    Some((date, time))
}

fn parse_date_fields(s: &str) -> Option<(u8, u8, i32, bool)> {
    let sep = s.chars().find(|c| matches!(c, '/' | '.' | '-'))?;
    let mut it = s.split(sep);
    let f1 = it.next()?;
    let f2 = it.next()?;
    let f3 = it.next()?.trim_end_matches('.');
    if it.next().is_some() {
        return None;
    }
    if f1.len() == 4 {
        let year: i32 = digits(f1, 4, 4)?;
        return Some((digits(f2, 1, 2)?, digits(f3, 1, 2)?, year, true));
    }
    let a: u8 = digits(f1, 1, 2)?;
    let b: u8 = digits(f2, 1, 2)?;
    let year: i32 = match f3.len() {
        2 => 2000 + digits::<i32>(f3, 2, 2)?,
        4 => digits(f3, 4, 4)?,
        _ => return None,
    };
    Some((a, b, year, false))
}

/// `09:14`, `09:14:03`, `9:14 PM`, `9:14\u{202f}pm`, `9:14 p.m.`.
fn parse_clock(s: &str) -> Option<Time> {
    let s = s.trim();
    let (clock, meridiem) = match s.find([' ', '\u{202f}', '\u{a0}']) {
        Some(i) => {
            let m: String = s[i..]
                .chars()
                .filter(|c| c.is_ascii_alphabetic())
                .map(|c| c.to_ascii_lowercase())
                .collect();
            let pm = match m.as_str() {
                "am" => false,
                "pm" => true,
                _ => return None,
            };
            (&s[..i], Some(pm))
        }
        None => (s, None),
    };
    let mut p = clock.split(':');
    let mut h: u8 = digits(p.next()?, 1, 2)?;
    let m: u8 = digits(p.next()?, 2, 2)?;
    let sec: u8 = match p.next() {
        Some(x) => digits(x, 2, 2)?,
        None => 0,
    };
    if p.next().is_some() {
        return None;
    }
    if let Some(pm) = meridiem {
        if !(1..=12).contains(&h) {
            return None;
        }
        h = match (h, pm) {
            (12, false) => 0,
            (12, true) => 12,
            (h, true) => h + 12,
            (h, false) => h,
        };
    }
    Time::from_hms(h, m, sec).ok()
}

/// Phrases of the lines WhatsApp itself writes (English exports). A line without a
/// `Sender: ` part is a system line whatever it says; these catch system lines whose text
/// happens to contain ": " (a group subject, for instance).
const SYSTEM_PHRASES: &[&str] = &[
    "Messages and calls are end-to-end encrypted",
    "Messages to this group are now secured with end-to-end encryption",
    " changed the subject from ",
    " changed the subject to ",
    " changed the group description",
    " changed this group's icon",
    " changed their phone number",
    " created group ",
    " joined using this group's invite link",
    "Your security code with ",
    "Disappearing messages",
    " pinned a message",
];

/// The notice iOS writes as if the chat itself had sent it (`Chat name: ‎Messages and …`).
const ENCRYPTION_NOTICES: &[&str] = &[
    "Messages and calls are end-to-end encrypted",
    "Messages to this group are now secured with end-to-end encryption",
];

/// Whole-text placeholders for media (a message that is only one of these is skipped).
fn is_media_placeholder(t: &str) -> bool {
    let t = t.trim();
    (t.starts_with("<attached: ") && t.ends_with('>'))
        || t == "<Media omitted>"
        || t.ends_with(" (file attached)")
        || t.ends_with(" omitted")
            && [
                "image",
                "video",
                "audio",
                "sticker",
                "GIF",
                "document",
                "Contact card",
            ]
            .iter()
            .any(|k| t.starts_with(k))
        || t == "null"
}

fn is_deleted_notice(t: &str) -> bool {
    matches!(
        t.trim(),
        "This message was deleted" | "You deleted this message" | "This message was deleted."
    )
}

/// One message being assembled from its header line and continuation lines.
struct Pending {
    line: usize,
    stamp: (u8, u8, i32, bool, Time),
    kind: PendingKind,
}

enum PendingKind {
    Message {
        sender_end: usize,
        raw: Zeroizing<String>,
    },
    /// WhatsApp's own line; its first line is kept to read chat facts from.
    System(Zeroizing<String>),
}

fn parse_whatsapp(text: &str, opts: &ParseOptions) -> Result<Chat, ChatError> {
    // Pass 1: decide the date order from every header (the locale is the same throughout).
    let mut order = opts.date_order;
    if order == DateOrder::Auto {
        let mut day_first = false;
        let mut month_first = false;
        for line in text.lines() {
            if let Some(h) = parse_header(line)
                && !h.year_first
            {
                day_first |= h.a > 12;
                month_first |= h.b > 12;
            }
        }
        order = if month_first && !day_first {
            DateOrder::MonthFirst
        } else {
            DateOrder::DayFirst
        };
    }

    // Pass 2: assemble messages.
    let mut messages = Vec::new();
    let mut skipped = Skipped::default();
    let mut facts = ChatFacts::default();
    let mut pending: Option<Pending> = None;
    for (idx, line) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        match parse_header(line) {
            Some(h) => {
                if let Some(p) = pending.take() {
                    flush(p, order, opts, &mut messages, &mut skipped, &mut facts)?;
                }
                pending = Some(start(h, lineno));
            }
            None => match pending.as_mut() {
                Some(Pending {
                    kind: PendingKind::Message { raw, .. },
                    ..
                }) => {
                    raw.push('\n');
                    raw.push_str(line);
                }
                Some(Pending {
                    kind: PendingKind::System(_),
                    ..
                }) => {}
                None => {
                    if !line.trim_matches(is_mark).trim().is_empty() {
                        return Err(ChatError::UnrecognisedLine { line: lineno });
                    }
                }
            },
        }
        if messages.len() > opts.limits.max_parsed_messages {
            return Err(ChatError::TooManyMessages {
                max: opts.limits.max_parsed_messages,
            });
        }
    }
    if let Some(p) = pending.take() {
        flush(p, order, opts, &mut messages, &mut skipped, &mut facts)?;
    }
    if messages.len() > opts.limits.max_parsed_messages {
        return Err(ChatError::TooManyMessages {
            max: opts.limits.max_parsed_messages,
        });
    }
    Ok(Chat {
        format: ChatFormat::WhatsApp,
        date_order: order,
        messages,
        skipped,
        facts,
    })
}

fn start(h: Header<'_>, line: usize) -> Pending {
    let stamp = (h.a, h.b, h.year, h.year_first, h.time);
    let rest = h.rest.trim_start_matches(is_mark);
    let split = rest.split_once(": ");
    let head = split.map_or(rest, |(s, _)| s);
    let text = split.map(|(_, t)| t.trim_start_matches(is_mark));
    let placeholder = text.is_some_and(|t| is_media_placeholder(t) || is_deleted_notice(t));
    // A line without "Sender: " is WhatsApp's own; so is an iOS line whose text starts with
    // U+200E unless it is a media/deleted placeholder (those are counted separately); so is
    // a line naming a known group event before any ": " (a subject may contain ": ").
    let system = split.is_none()
        || (h.marked && !placeholder)
        || SYSTEM_PHRASES.iter().any(|p| head.contains(p))
        || advanced_chat_privacy_line(head).is_some()
        || text.is_some_and(|t| ENCRYPTION_NOTICES.iter().any(|p| t.starts_with(p)));
    let kind = match split {
        Some((sender, _)) if !system => PendingKind::Message {
            sender_end: sender.len(),
            raw: Zeroizing::new(rest.to_owned()),
        },
        _ => PendingKind::System(Zeroizing::new(rest.to_owned())),
    };
    Pending { line, stamp, kind }
}

fn flush(
    p: Pending,
    order: DateOrder,
    opts: &ParseOptions,
    out: &mut Vec<Message>,
    skipped: &mut Skipped,
    facts: &mut ChatFacts,
) -> Result<(), ChatError> {
    let (a, b, year, year_first, clock) = p.stamp;
    let (day, month) = if year_first || order == DateOrder::MonthFirst {
        (b, a)
    } else {
        (a, b)
    };
    let date = Month::try_from(month)
        .ok()
        .and_then(|m| Date::from_calendar_date(year, m, day).ok())
        .ok_or(ChatError::InvalidTimestamp {
            line: p.line,
            order,
        })?;
    let time = PrimitiveDateTime::new(date, clock).assume_offset(opts.offset);
    let (sender_end, raw) = match p.kind {
        PendingKind::System(line) => {
            skipped.system += 1;
            let (chat_name, event) = split_system_line(&line);
            let mut add = |name: &str| {
                if !facts.subjects.iter().any(|s| s.as_str() == name) {
                    facts.subjects.push(Zeroizing::new(name.to_owned()));
                }
            };
            if let Some(name) = chat_name {
                add(name);
            }
            if let Some(on) = advanced_chat_privacy_line(event) {
                // Any "on" protects (fail closed): an "off" line can also be typed into a
                // message that continues on a line shaped like an export header.
                facts.advanced_chat_privacy = Some(facts.advanced_chat_privacy == Some(true) || on);
            } else if let Some(name) = subject_line(event) {
                add(name);
            }
            return Ok(());
        }
        PendingKind::Message { sender_end, raw } => (sender_end, raw),
    };
    let sender = &raw[..sender_end];
    let body = &raw[sender_end + 2..];
    // Drop placeholder lines and the "edited" marker; keep whatever text is left.
    let mut text = Zeroizing::new(String::with_capacity(body.len()));
    let mut media = false;
    for l in body.split('\n') {
        let bare = l.trim_matches(is_mark);
        if is_media_placeholder(bare) {
            media = true;
            continue;
        }
        let bare = bare
            .trim_end()
            .strip_suffix("<This message was edited>")
            .map_or(bare, str::trim_end);
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(bare);
    }
    if is_deleted_notice(text.trim_matches(is_mark)) {
        skipped.deleted += 1;
        return Ok(());
    }
    let msg = finish_message(sender, time, &text, Position::Line(p.line), &opts.limits)?;
    if msg.text.is_empty() {
        if media {
            skipped.media += 1;
        } else {
            // An empty message cannot be summarised; WhatsApp never exports one, so this
            // is a line that merely looked like a header. Count it as a system line.
            skipped.system += 1;
        }
        return Ok(());
    }
    out.push(msg);
    Ok(())
}

#[cfg(test)]
mod tests;
