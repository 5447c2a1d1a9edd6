//! Property tests for the parsers that face the network and for the tokenizer.
#![allow(clippy::unwrap_used)]

mod common;

use confide_engine::features::{self, Limits, SuggestRequest, SummarizeRequest};
use confide_engine::openai::{ChatCompletionRequest, SseParser};
use confide_engine::{EngineError, Utf8Decoder};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// However an SSE body is cut into network reads, the events are the same, and
    /// arbitrary bytes never panic the parser.
    #[test]
    fn sse_parser_is_chunking_invariant(body in proptest::collection::vec(any::<u8>(), 0..512),
                                        cut in any::<prop::sample::Index>()) {
        let mut whole = SseParser::new();
        let a = whole.push(&body);
        let at = cut.index(body.len() + 1);
        let mut split = SseParser::new();
        let b = split.push(&body[..at]).and_then(|mut x| {
            x.extend(split.push(&body[at..])?);
            Ok(x)
        });
        match (a, b) {
            (Ok(a), Ok(b)) => {
                let a: Vec<Vec<u8>> = a.iter().map(|e| e.to_vec()).collect();
                let b: Vec<Vec<u8>> = b.iter().map(|e| e.to_vec()).collect();
                prop_assert_eq!(a, b);
            }
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "chunking changed the outcome"),
        }
    }

    /// Request parsers and prompt builders return errors, never panic, on any input.
    #[test]
    fn request_parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = serde_json::from_slice::<ChatCompletionRequest>(&body);
        if let Ok(req) = serde_json::from_slice::<SummarizeRequest>(&body) {
            let _ = features::summarize_prompt(&req, &Limits::default());
        }
        if let Ok(req) = serde_json::from_slice::<SuggestRequest>(&body) {
            let _ = features::suggest_prompt(&req, &Limits::default());
        }
    }

    /// Feeding a UTF-8 string's bytes in any split gives the string back.
    #[test]
    fn utf8_decoder_reassembles(s in "\\PC{0,64}", cut in any::<prop::sample::Index>()) {
        let bytes = s.as_bytes();
        let at = cut.index(bytes.len() + 1);
        let mut d = Utf8Decoder::new();
        let mut out = d.push(&bytes[..at]).to_string();
        out.push_str(&d.push(&bytes[at..]));
        out.push_str(&d.finish());
        prop_assert_eq!(out, s);
    }

    /// The real SmolLM2 tokenizer: decode(encode(s)) == s for any text it can
    /// represent, and a typed error otherwise.
    #[test]
    fn smollm2_tokenizer_round_trips(s in "\\PC{0,48}|[ a-z0-9\\n\\t.,'!?]{0,64}") {
        let engine = common::engine();
        let tok = engine.tokenizer();
        match tok.encode(&s) {
            Ok(ids) => {
                let back = tok.decode(&ids);
                prop_assert_eq!(back.as_str(), s.as_str());
            }
            Err(e) => prop_assert!(matches!(e, EngineError::UnrepresentableText)),
        }
    }
}
