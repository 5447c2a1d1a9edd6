//! Stapled bundle and ledger entry decoders: never panic; accepted values re-encode to
//! the same bytes; verification of arbitrary bundles fails cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;

const LEDGER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = confide_release::LedgerEntry::decode(data) {
        assert_eq!(e.encode().ok().as_deref(), Some(data));
    }
    // Behind the magic and the release v3 kind byte (0x04), so random input reaches the
    // per-platform pins (policy presence, RTMR count, GPU reference lists) at once; an
    // accepted release must also yield its pins without panicking.
    let mut v3 = b"confide-ledger-entry/v1\n\x04".to_vec();
    v3.extend_from_slice(data);
    if let Ok(e) = confide_release::LedgerEntry::decode(&v3) {
        assert_eq!(e.encode().ok().as_deref(), Some(&v3[..]));
        if let confide_release::LedgerEntry::Release(m) = &e {
            assert!(!m.pins().is_empty());
        }
    }
    if let Ok(b) = confide_release::Bundle::decode(data) {
        assert_eq!(b.encode().ok().as_deref(), Some(data));
        if let Ok(trust) = confide_release::LedgerTrust::new(LEDGER, &[] as &[&str], 0) {
            let _ = confide_release::verify_bundle(&b, &trust, None, None);
        }
    }
});
