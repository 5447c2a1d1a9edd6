//! The certificate extension parser faces the network: arbitrary and mutated
//! inputs must be refused with an error, never a panic, and whatever is accepted
//! must re-encode to exactly the bytes given (one encoding per collection).
#![allow(clippy::unwrap_used)]

use confide_ratls::cmw::{NodeCollection, Wrapped};
use proptest::prelude::*;

fn sample() -> NodeCollection {
    NodeCollection {
        cpu: Wrapped {
            media_type: "application/vnd.confide.evidence".into(),
            value: (0..=255u8).cycle().take(1500).collect(),
        },
        gpu: Some(Wrapped {
            media_type: "application/vnd.confide.gpu".into(),
            value: vec![0x55; 200],
        }),
        ledger_bundle: vec![0xaa; 700],
        validity: confide_ratls::BoundValidity {
            not_before: 1_790_000_000,
            not_after: 1_790_003_600,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = NodeCollection::from_extension_value(&bytes);
        let _ = NodeCollection::from_cbor(&bytes);
    }

    #[test]
    fn mutations_are_refused_or_canonical(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut ext = sample().to_extension_value();
        for (pos, val) in flips {
            let i = pos % ext.len();
            ext[i] = val;
        }
        if let Ok(c) = NodeCollection::from_extension_value(&ext) {
            prop_assert_eq!(c.to_extension_value(), ext);
        }
    }
}
