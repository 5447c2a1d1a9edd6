#![allow(clippy::unwrap_used)]
//! Revocation entries (kind 0x05): one canonical encoding, read from documents, and
//! refused when the reason is empty, too long or holds control characters.

use confide_release::{Error, LedgerEntry, Revocation};

fn rev(reason: &str) -> LedgerEntry {
    LedgerEntry::Revocation(Revocation {
        index: 7,
        reason: reason.into(),
    })
}

#[test]
fn encodes_canonically_and_round_trips() {
    let e = rev("kernel CVE-2026-0001");
    let bytes = e.encode().unwrap();
    let magic = b"confide-ledger-entry/v1\n".len();
    assert_eq!(bytes[magic], 0x05, "kind byte");
    assert_eq!(&bytes[magic + 1..magic + 9], &7u64.to_be_bytes());
    assert_eq!(LedgerEntry::decode(&bytes).unwrap(), e);
    // Trailing or missing bytes are refused.
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(LedgerEntry::decode(&longer).is_err());
    assert!(LedgerEntry::decode(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn reads_from_toml_and_json() {
    let t = LedgerEntry::from_toml(
        "kind = \"revocation\"\nindex = 7\nreason = \"kernel CVE-2026-0001\"\n",
    )
    .unwrap();
    assert_eq!(t, rev("kernel CVE-2026-0001"));
    let j = LedgerEntry::from_json(
        r#"{"kind":"revocation","index":7,"reason":"kernel CVE-2026-0001"}"#,
    )
    .unwrap();
    assert_eq!(j, t);
}

#[test]
fn bad_reasons_are_refused() {
    for bad in ["", "  ", "line\u{7}bell", &"x".repeat(1025)] {
        assert!(
            matches!(
                rev(bad).encode(),
                Err(Error::InvalidField {
                    field: "reason",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
}
