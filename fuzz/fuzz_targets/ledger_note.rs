//! C2SP signed-note, checkpoint and vkey parsers: never panic; accepted notes and
//! checkpoints re-encode to the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = confide_note::Note::parse(s) {
        assert_eq!(n.encode(), s);
    }
    if let Ok(c) = confide_note::Checkpoint::parse(s) {
        assert_eq!(c.to_text(), s);
    }
    let _ = confide_note::VerifierKey::parse(s);
    let _ = confide_release::StoredCheckpoint::parse(s);
});
