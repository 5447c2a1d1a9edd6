//! SPDM GET_MEASUREMENTS request+response parser: never panics; accepted input is
//! consistent (signature inside the input, signed length before it, ignored trailing bytes
//! exactly what follows the signature).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = confide_attest_nvidia::parse_spdm(data) {
        assert!(
            m.signed_len + confide_attest_nvidia::SIGNATURE_LEN + m.trailing_bytes == data.len()
        );
    }
    // With a valid request prefix, so the response parser is reached quickly.
    let mut v = vec![0x11, 0xE0, 0x01, 0xFF];
    v.extend_from_slice(&[0u8; 33]);
    v.extend_from_slice(&[0x11, 0x60]);
    v.extend_from_slice(data);
    let _ = confide_attest_nvidia::parse_spdm(&v);
});
