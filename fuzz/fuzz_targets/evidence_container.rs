//! Evidence container and GHCB certificate table decoders: never panic; accepted
//! containers re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = confide_attest::Evidence::decode(data) {
        assert_eq!(e.encode(), data);
    }
    let _ = confide_attest_tsm::parse_cert_table(data);
    let _ = confide_attest::input::decode_certificates(data);
    let _ = confide_attest::input::decode_hex_or_binary(data);
});
