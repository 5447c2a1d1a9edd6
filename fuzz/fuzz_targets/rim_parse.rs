//! NVIDIA RIM verifier (XML parsing, signature profile, SWID tag, C14N 1.1, chain): never
//! panics on any input; the good RIM with arbitrary bytes spliced into its Payload reaches
//! the canonicaliser and digest check rather than dying in the XML parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// 2025-06-01T00:00:00Z, inside the good RIM's chain validity.
const NOW: u64 = 1_748_736_000;
const GOOD: &str = include_str!("../../crates/rim/testdata/NV_GPU_DRIVER_GH100_550.144.03.xml");

fuzz_target!(|data: &[u8]| {
    let verifier = confide_rim::RimVerifier::nvidia();
    let _ = verifier.verify(data, NOW);
    if let Ok(text) = std::str::from_utf8(data) {
        let spliced = GOOD.replacen("    </ns0:Payload>", &format!("{text}</ns0:Payload>"), 1);
        // The good document changed: it must never verify unless the splice was empty or
        // canonically nothing (a comment, say).
        if let Ok(rim) = verifier.verify(spliced.as_bytes(), NOW) {
            assert_eq!(rim.version(), "550.144.03");
        }
    }
});
