//! Chat exports (crates/sdk chat import): WhatsApp text exports and JSON message lists,
//! a file the person picked, so any bytes at all. Never panics, in every format and
//! date order. Properties: every message parsed lies inside the limits; a selection that
//! is accepted fits one request; `--since` values parse or fail with a typed error.
#![no_main]

use confide_sdk::chat::{self, ChatFormat, DateOrder, Limits, ParseOptions, Position, Selection};
use libfuzzer_sys::fuzz_target;
use time::{OffsetDateTime, UtcOffset};

fuzz_target!(|data: &[u8]| {
    let Some((&knob, body)) = data.split_first() else {
        return;
    };
    // Small limits so the fuzzer reaches every limit check.
    let limits = Limits {
        max_input_bytes: 1 << 16,
        max_parsed_messages: 64,
        max_sender_bytes: 16,
        max_text_bytes: 64,
        max_request_messages: 8,
        max_request_bytes: 256,
    };
    let format = match knob % 3 {
        0 => None,
        1 => Some(ChatFormat::Json),
        _ => Some(ChatFormat::WhatsApp),
    };
    let date_order = match (knob / 3) % 3 {
        0 => DateOrder::Auto,
        1 => DateOrder::DayFirst,
        _ => DateOrder::MonthFirst,
    };
    let offset =
        UtcOffset::from_whole_seconds(i32::from(knob as i8) * 900).unwrap_or(UtcOffset::UTC);
    for opts in [
        ParseOptions::default(),
        ParseOptions {
            format,
            date_order,
            offset,
            limits,
        },
    ] {
        let Ok(c) = chat::parse(body, &opts) else {
            continue;
        };
        assert!(!c.messages.is_empty());
        assert!(c.messages.len() <= opts.limits.max_parsed_messages);
        for m in &c.messages {
            assert!(m.sender.len() <= opts.limits.max_sender_bytes);
            if let Position::Line(n) = m.position {
                assert!(n >= 1 && n <= body.len() + 1);
            }
        }
        let last = usize::from(knob % 5);
        let sel = Selection {
            since: c.messages.first().map(|m| m.time),
            last: (last > 0).then_some(last),
        };
        if let Ok(picked) = c.select(&sel, &opts.limits) {
            assert!(!picked.is_empty());
            assert!(picked.len() <= opts.limits.max_request_messages);
            assert!(picked.len() <= last.max(1) || last == 0);
            let bytes: usize = picked.iter().map(|m| m.sender.len() + m.text.len()).sum();
            assert!(bytes <= opts.limits.max_request_bytes);
        }
    }
    if let Ok(s) = std::str::from_utf8(body) {
        let now = OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("time");
        let _ = chat::parse_since(s, now, offset);
    }
});
