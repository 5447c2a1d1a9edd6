use time::macros::datetime;

use super::*;

const IOS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/chat-whatsapp.txt"
));
const ANDROID: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/chat-whatsapp-android.txt"
));
const JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/chat.json"
));

fn parse_str(s: &str) -> Result<Chat, ChatError> {
    parse(s.as_bytes(), &ParseOptions::default())
}

fn texts(c: &Chat) -> Vec<(String, String)> {
    c.messages
        .iter()
        .map(|m| (m.sender.to_string(), m.text.to_string()))
        .collect()
}

#[test]
fn ios_sample_export() {
    let c = parse_str(IOS).unwrap();
    assert_eq!(c.format, ChatFormat::WhatsApp);
    assert_eq!(c.date_order, DateOrder::DayFirst);
    // 3 system lines (encryption, created, added), 2 media (photo, sticker), 1 deleted.
    assert_eq!(
        c.skipped,
        Skipped {
            system: 3,
            media: 2,
            deleted: 1
        }
    );
    assert_eq!(c.messages.len(), 15);
    let first = &c.messages[0];
    assert_eq!(first.sender.as_str(), "Priya");
    assert_eq!(first.time, datetime!(2026-11-14 18:05:03 UTC));
    assert_eq!(first.position, Position::Line(4));
    // A multi-line message keeps its lines.
    let list = c
        .messages
        .iter()
        .find(|m| m.text.starts_with("Perfect. Things"))
        .unwrap();
    assert_eq!(
        list.text.as_str(),
        "Perfect. Things we need to decide:\n1. when we do the first clear-out\n2. whether we keep the old shed or take it down\n3. what goes in over winter"
    );
    assert_eq!(list.position, Position::Line(8));
    // No U+200E survives, and no placeholder text is sent.
    for m in &c.messages {
        assert!(!m.text.contains('\u{200e}'));
        assert!(!m.text.contains("<attached"));
        assert!(!m.text.contains("omitted"));
        assert!(!m.text.contains("deleted"));
    }
    assert_eq!(
        c.messages.last().unwrap().text.as_str(),
        "Paid ✅ Reference PLOT17-H1"
    );
}

#[test]
fn android_sample_export_is_month_first_12_hour() {
    let c = parse_str(ANDROID).unwrap();
    assert_eq!(c.date_order, DateOrder::MonthFirst);
    assert_eq!(
        c.skipped,
        Skipped {
            system: 2,
            media: 1,
            deleted: 0
        }
    );
    let t = texts(&c);
    assert_eq!(t.len(), 4);
    assert_eq!(t[0].0, "Dana");
    assert_eq!(c.messages[0].time, datetime!(2026-11-20 20:01 UTC));
    assert_eq!(
        t[2].1,
        "Piranesi from me too.\nAlso can we move the meeting to the 13th? I'm away on the 6th."
    );
}

#[test]
fn json_sample_and_envelope() {
    let c = parse_str(JSON).unwrap();
    assert_eq!(c.format, ChatFormat::Json);
    assert_eq!(c.messages.len(), 7);
    assert_eq!(c.messages[4].position, Position::Message(4));
    assert!(c.messages[4].text.contains('\n'));
    let env = r#"{"messages":[{"sender":"A","time":"2026-11-21 09:14","text":"hi"}]}"#;
    let c = parse_str(env).unwrap();
    assert_eq!(c.messages[0].time, datetime!(2026-11-21 09:14 UTC));
    let off = r#"[{"sender":"A","time":"2026-11-21T09:14:03+02:00","text":"hi"}]"#;
    assert_eq!(
        parse_str(off).unwrap().messages[0].time,
        datetime!(2026-11-21 07:14:03 UTC)
    );
}

#[test]
fn json_local_times_use_the_offset() {
    let opts = ParseOptions {
        offset: UtcOffset::from_hms(1, 0, 0).unwrap(),
        ..ParseOptions::default()
    };
    let c = parse(
        br#"[{"sender":"A","time":"2026-11-21T09:14:03","text":"hi"}]"#,
        &opts,
    )
    .unwrap();
    assert_eq!(c.messages[0].time, datetime!(2026-11-21 08:14:03 UTC));
}

#[test]
fn json_errors_are_positioned_and_content_free() {
    let secret = "CANARY-7f3a";
    // Wrong type for text: serde_json would quote the value; we must not.
    let bad = format!(r#"[{{"sender":"A","time":"2026-11-21T09:14:03Z","text":["{secret}"]}}]"#);
    let e = parse_str(&bad).unwrap_err();
    assert!(
        matches!(
            e,
            ChatError::Json {
                kind: "wrong structure",
                line: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.to_string().contains(secret));
    // Unknown field (a phone number must not ride along).
    let e =
        parse_str(r#"[{"sender":"A","time":"2026-11-21","text":"x","phone":"+44"}]"#).unwrap_err();
    assert!(matches!(e, ChatError::Json { .. }));
    assert!(!e.to_string().contains("+44"));
    // Syntax error, with line.
    let e = parse_str("[\n{\"sender\": \"A\",\n oops }]").unwrap_err();
    assert!(
        matches!(
            e,
            ChatError::Json {
                kind: "syntax error",
                line: 3,
                ..
            }
        ),
        "{e:?}"
    );
    let e = parse_str("[{\"sender\": \"A\"").unwrap_err();
    assert!(
        matches!(
            e,
            ChatError::Json {
                kind: "unexpected end of file",
                ..
            }
        ),
        "{e:?}"
    );
    // Bad time names the message.
    let e = parse_str(&format!(
        r#"[{{"sender":"A","time":"2026-11-21T09:14:03Z","text":"a"}},{{"sender":"B","time":"{secret}","text":"b"}}]"#
    ))
    .unwrap_err();
    assert_eq!(
        e,
        ChatError::InvalidJsonTime {
            at: Position::Message(1)
        }
    );
    assert!(!e.to_string().contains(secret));
    assert_eq!(
        parse_str(r#"[{"sender":"A","time":"2026-02-30","text":"a"}]"#).unwrap_err(),
        ChatError::InvalidJsonTime {
            at: Position::Message(0)
        }
    );
    // Empty list.
    assert_eq!(
        parse_str("[]").unwrap_err(),
        ChatError::NoMessages { skipped: 0 }
    );
    // Empty or over-long sender.
    assert!(matches!(
        parse_str(r#"[{"sender":" \u200e ","time":"2026-11-21","text":"a"}]"#).unwrap_err(),
        ChatError::BadSender {
            at: Position::Message(0),
            len: 0,
            max: 64
        }
    ));
    let long = format!(
        r#"[{{"sender":"{}","time":"2026-11-21","text":"a"}}]"#,
        "x".repeat(65)
    );
    assert!(matches!(
        parse_str(&long).unwrap_err(),
        ChatError::BadSender { len: 65, .. }
    ));
}

#[test]
fn header_forms() {
    let cases: &[(&str, OffsetDateTime)] = &[
        (
            "[21/11/2026, 09:14:03] A: x",
            datetime!(2026-11-21 09:14:03 UTC),
        ),
        ("21/11/2026, 09:14 - A: x", datetime!(2026-11-21 09:14 UTC)),
        ("21/11/26, 9:14 pm - A: x", datetime!(2026-11-21 21:14 UTC)),
        (
            "[21/11/26, 12:05:00\u{202f}AM] A: x",
            datetime!(2026-11-21 00:05 UTC),
        ),
        (
            "[21.11.26, 12:05:00 PM] A: x",
            datetime!(2026-11-21 12:05 UTC),
        ),
        ("21-11-2026 09:14 - A: x", datetime!(2026-11-21 09:14 UTC)),
        (
            "[2026-11-21, 09:14:03] A: x",
            datetime!(2026-11-21 09:14:03 UTC),
        ),
        (
            "\u{200e}[21/11/2026, 09:14:03] A: x",
            datetime!(2026-11-21 09:14:03 UTC),
        ),
        (
            "[21/11/2026, 9:14:03 p.m.] A: x",
            datetime!(2026-11-21 21:14:03 UTC),
        ),
    ];
    for (line, want) in cases {
        let c = parse_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!(c.messages.len(), 1, "{line:?}");
        assert_eq!(c.messages[0].time, *want, "{line:?}");
        assert_eq!(c.messages[0].sender.as_str(), "A");
        assert_eq!(c.messages[0].text.as_str(), "x");
    }
}

#[test]
fn crlf_and_bom_and_sender_with_colon_and_phone() {
    let s = "\u{feff}[21/11/2026, 09:14:03] +44 7700 900123: hi: there\r\nsecond line\r\n";
    let c = parse_str(s).unwrap();
    assert_eq!(c.messages[0].sender.as_str(), "+44 7700 900123");
    assert_eq!(c.messages[0].text.as_str(), "hi: there\nsecond line");
}

#[test]
fn date_order_detection_and_override() {
    // Every date ambiguous: day-first by default.
    let amb = "[01/02/2026, 10:00:00] A: x\n";
    assert_eq!(
        parse_str(amb).unwrap().messages[0].time,
        datetime!(2026-02-01 10:00 UTC)
    );
    let opts = ParseOptions {
        date_order: DateOrder::MonthFirst,
        ..ParseOptions::default()
    };
    assert_eq!(
        parse(amb.as_bytes(), &opts).unwrap().messages[0].time,
        datetime!(2026-01-02 10:00 UTC)
    );
    // One unambiguous line decides the whole file.
    let us = "[01/02/2026, 10:00:00] A: x\n[01/13/2026, 10:00:00] A: y\n";
    let c = parse_str(us).unwrap();
    assert_eq!(c.date_order, DateOrder::MonthFirst);
    assert_eq!(c.messages[0].time, datetime!(2026-01-02 10:00 UTC));
    // Contradictory lines: the file is day-first and the month-13 line is invalid.
    let mixed = "[13/01/2026, 10:00:00] A: x\n[01/13/2026, 10:00:00] A: y\n";
    assert_eq!(
        parse_str(mixed).unwrap_err(),
        ChatError::InvalidTimestamp {
            line: 2,
            order: DateOrder::DayFirst
        }
    );
    assert_eq!(
        parse_str("[31/02/2026, 10:00:00] A: x").unwrap_err(),
        ChatError::InvalidTimestamp {
            line: 1,
            order: DateOrder::DayFirst
        }
    );
}

#[test]
fn malformed_whatsapp_files() {
    let e = parse_str("hello there\n[21/11/2026, 09:14:03] A: x").unwrap_err();
    assert_eq!(e, ChatError::UnrecognisedLine { line: 1 });
    // Leading blank lines are fine; the line number is the first non-blank one.
    assert_eq!(
        parse_str("\n\n  \nnot a chat").unwrap_err(),
        ChatError::UnrecognisedLine { line: 4 }
    );
    // A bad clock is not a header at all.
    assert_eq!(
        parse_str("[21/11/2026, 25:14:03] A: x").unwrap_err(),
        ChatError::UnrecognisedLine { line: 1 }
    );
    assert_eq!(
        parse_str("[21/11/2026, 13:14:03 PM] A: x").unwrap_err(),
        ChatError::UnrecognisedLine { line: 1 }
    );
    // Only system lines.
    let sys = "21/11/2026, 09:14 - Messages and calls are end-to-end encrypted.\n21/11/2026, 09:15 - A left\n";
    assert_eq!(
        parse_str(sys).unwrap_err(),
        ChatError::NoMessages { skipped: 2 }
    );
    assert_eq!(
        parse_str("").unwrap_err(),
        ChatError::NoMessages { skipped: 0 }
    );
}

#[test]
fn not_utf8_names_the_line() {
    let mut b = b"[21/11/2026, 09:14:03] A: x\n[21/11/2026, 09:14:04] B: ".to_vec();
    b.push(0xff);
    assert_eq!(
        parse(&b, &ParseOptions::default()).unwrap_err(),
        ChatError::NotUtf8 { line: 2 }
    );
}

#[test]
fn input_size_limit() {
    let opts = ParseOptions {
        limits: Limits {
            max_input_bytes: 10,
            ..Limits::default()
        },
        ..ParseOptions::default()
    };
    assert_eq!(
        parse(b"[21/11/2026, 09:14:03] A: x", &opts).unwrap_err(),
        ChatError::InputTooLarge { len: 27, max: 10 }
    );
    let opts = ParseOptions {
        limits: Limits {
            max_parsed_messages: 2,
            ..Limits::default()
        },
        ..ParseOptions::default()
    };
    let three =
        "[21/11/2026, 09:14:03] A: x\n[21/11/2026, 09:14:03] A: y\n[21/11/2026, 09:14:03] A: z\n";
    assert_eq!(
        parse(three.as_bytes(), &opts).unwrap_err(),
        ChatError::TooManyMessages { max: 2 }
    );
}

#[test]
fn control_characters_are_neutralised_and_edit_marker_dropped() {
    let s = "[21/11/2026, 09:14:03] A: a\u{7}b\tc <This message was edited>\n";
    let c = parse_str(s).unwrap();
    assert_eq!(c.messages[0].text.as_str(), "a b\tc");
}

#[test]
fn system_phrases_with_colons_are_not_messages() {
    let s = "21/11/2026, 09:14 - Ana changed the subject from \"Plans: summer\" to \"Plans: autumn\"\n\
             21/11/2026, 09:15 - Ana: ok\n\
             [21/11/2026, 09:16:00] Team: Messages and calls are end-to-end encrypted.\n";
    let c = parse_str(s).unwrap();
    assert_eq!(texts(&c), vec![("Ana".into(), "ok".into())]);
    assert_eq!(c.skipped.system, 2);
}

#[test]
fn media_with_caption_keeps_the_caption() {
    let s = "[21/11/2026, 09:14:03] A: \u{200e}<attached: 00000001-PHOTO.jpg>\nlook at this\n";
    let c = parse_str(s).unwrap();
    assert_eq!(c.messages[0].text.as_str(), "look at this");
    assert_eq!(c.skipped.media, 0);
}

#[test]
fn debug_hides_content() {
    let c = parse_str("[21/11/2026, 09:14:03] Alice: CANARY-secret").unwrap();
    let d = format!("{:?}", c);
    assert!(!d.contains("CANARY"));
    assert!(!d.contains("Alice"));
}

fn chat_of(n: usize, text_len: usize) -> Chat {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "[21/11/2026, 09:{:02}:{:02}] P{}: {}\n",
            i / 60,
            i % 60,
            i % 3,
            "w".repeat(text_len)
        ));
    }
    parse_str(&s).unwrap()
}

#[test]
fn selection_last_and_since() {
    let c = chat_of(10, 5);
    let all = c.select(&Selection::default(), &Limits::default()).unwrap();
    assert_eq!(all.len(), 10);
    let last3 = c
        .select(
            &Selection {
                last: Some(3),
                since: None,
            },
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(
        last3.iter().map(|m| m.position).collect::<Vec<_>>(),
        vec![Position::Line(8), Position::Line(9), Position::Line(10)]
    );
    let since = c
        .select(
            &Selection {
                last: None,
                since: Some(datetime!(2026-11-21 09:00:07 UTC)),
            },
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(since.len(), 3);
    let both = c
        .select(
            &Selection {
                last: Some(2),
                since: Some(datetime!(2026-11-21 09:00:02 UTC)),
            },
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(both[0].position, Position::Line(9));
    assert_eq!(
        c.select(
            &Selection {
                last: Some(0),
                since: None
            },
            &Limits::default()
        )
        .unwrap_err(),
        ChatError::ZeroLast
    );
    assert_eq!(
        c.select(
            &Selection {
                last: None,
                since: Some(datetime!(2027-01-01 0:00 UTC))
            },
            &Limits::default()
        )
        .unwrap_err(),
        ChatError::NothingSelected { total: 10 }
    );
}

#[test]
fn selection_must_fit_one_request() {
    let c = chat_of(201, 1);
    let e = c
        .select(&Selection::default(), &Limits::default())
        .unwrap_err();
    assert!(matches!(
        e,
        ChatError::SelectionTooLarge {
            count: 201,
            max_messages: 200,
            ..
        }
    ));
    assert!(e.to_string().contains("--last"));
    assert!(
        c.select(
            &Selection {
                last: Some(200),
                since: None
            },
            &Limits::default()
        )
        .is_ok()
    );
    let big = chat_of(10, 3000);
    assert!(matches!(
        big.select(&Selection::default(), &Limits::default())
            .unwrap_err(),
        ChatError::SelectionTooLarge { count: 10, .. }
    ));
    let huge = chat_of(2, 5000);
    assert_eq!(
        huge.select(&Selection::default(), &Limits::default())
            .unwrap_err(),
        ChatError::MessageTooLong {
            at: Position::Line(1),
            len: 5000,
            max: 4096
        }
    );
}

#[test]
fn since_values() {
    let now = datetime!(2026-11-21 12:00 UTC);
    let utc = UtcOffset::UTC;
    assert_eq!(
        parse_since("2026-11-21", now, utc).unwrap(),
        datetime!(2026-11-21 0:00 UTC)
    );
    assert_eq!(
        parse_since("2026-11-21 09:14", now, utc).unwrap(),
        datetime!(2026-11-21 09:14 UTC)
    );
    assert_eq!(
        parse_since(
            "2026-11-21T09:14:03",
            now,
            UtcOffset::from_hms(-5, 0, 0).unwrap()
        )
        .unwrap(),
        datetime!(2026-11-21 14:14:03 UTC)
    );
    assert_eq!(
        parse_since("2026-11-21T09:14:03Z", now, utc).unwrap(),
        datetime!(2026-11-21 09:14:03 UTC)
    );
    assert_eq!(
        parse_since("90m", now, utc).unwrap(),
        datetime!(2026-11-21 10:30 UTC)
    );
    assert_eq!(
        parse_since("12h", now, utc).unwrap(),
        datetime!(2026-11-21 0:00 UTC)
    );
    assert_eq!(
        parse_since("7d", now, utc).unwrap(),
        datetime!(2026-11-14 12:00 UTC)
    );
    for bad in [
        "",
        "d",
        "7y",
        "yesterday",
        "2026-13-01",
        "2026-11-21 9",
        "99999999999999999999d",
        "-3h",
    ] {
        assert_eq!(
            parse_since(bad, now, utc).unwrap_err(),
            ChatError::InvalidSince,
            "{bad:?}"
        );
    }
}

#[test]
fn format_detection() {
    assert_eq!(ChatFormat::detect("  [ {\"a\":1} ]"), ChatFormat::Json);
    assert_eq!(ChatFormat::detect("[]"), ChatFormat::Json);
    assert_eq!(ChatFormat::detect("{\"messages\":[]}"), ChatFormat::Json);
    assert_eq!(
        ChatFormat::detect("[21/11/2026, 09:14:03] A: x"),
        ChatFormat::WhatsApp
    );
    assert_eq!(
        ChatFormat::detect("21/11/2026, 09:14 - A: x"),
        ChatFormat::WhatsApp
    );
}
