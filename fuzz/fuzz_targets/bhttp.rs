//! Binary HTTP (RFC 9292) decoders on their own, with properties the OHTTP targets do not
//! check: whatever decodes re-encodes to a message that decodes to the same value, and
//! the streaming response decoder's result does not depend on how the bytes were split
//! (chunked OHTTP hands it arbitrary pieces). Never panics.
#![no_main]

use confide_ohttp::bhttp::{Request, Response, ResponseStream, StreamEvent};
use libfuzzer_sys::fuzz_target;

/// Head, content and trailers of a streamed response, with content pieces joined: the
/// split of the content into `Data` events may legitimately follow the input split.
#[derive(Debug, PartialEq, Eq)]
struct Merged {
    head: Vec<StreamEvent>,
    content: Vec<u8>,
    end: Vec<StreamEvent>,
}

fn run_stream(data: &[u8], split: usize) -> Option<Merged> {
    let mut stream = ResponseStream::new(1 << 16);
    let mut events = Vec::new();
    for piece in data.chunks(split) {
        events.extend(stream.push(piece).ok()?);
    }
    events.extend(stream.finish().ok()?);
    let mut merged = Merged {
        head: Vec::new(),
        content: Vec::new(),
        end: Vec::new(),
    };
    for e in events {
        match e {
            StreamEvent::Data(d) => merged.content.extend_from_slice(&d),
            StreamEvent::End(_) => merged.end.push(e),
            _ => merged.head.push(e),
        }
    }
    Some(merged)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Request::decode(data) {
        assert_eq!(Request::decode(&r.encode()).ok(), Some(r));
    }
    if let Ok(r) = Response::decode(data) {
        assert_eq!(Response::decode(&r.encode()).ok(), Some(r));
    }
    // The same bytes whole and in pieces of 1..=16: the outcome (accepted or not, and
    // what was accepted) must agree. Only below the buffer limit, where a whole push
    // cannot trip a limit that pieces would not.
    if data.len() > 1 << 16 {
        return;
    }
    let split = data.first().map_or(1, |b| usize::from(*b % 16) + 1);
    let whole = run_stream(data, data.len().max(1));
    let pieces = run_stream(data, split);
    assert_eq!(whole, pieces);
});
