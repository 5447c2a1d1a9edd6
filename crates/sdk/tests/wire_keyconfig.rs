//! Key consistency: the SDK uses a gateway key configuration only if a verified ledger
//! inclusion (a real log: RFC 9162 tree, signed and cosigned C2SP checkpoint) contains
//! it and is valid now.
#![allow(clippy::unwrap_used)]

use confide_note::{Checkpoint, KeyType, Note, SignerKey};
use confide_ohttp::{KeyConfig, KeyPair, SymmetricSuite};
use confide_release::{
    Bundle, KeyConfigEntry, LedgerEntry, LedgerTrust, VerifiedInclusion, verify_bundle,
};
use confide_sdk::wire::{WireError, check_logged, logged_key_configs};
use confide_tlog::{MemoryTree, inclusion_proof, leaf_hash};

const ORIGIN: &str = "ledger.confide.test";

fn key(id: u8, seed: u8) -> KeyConfig {
    KeyPair::from_secret_bytes(id, &[seed; 32], SymmetricSuite::defaults())
        .unwrap()
        .config()
        .clone()
}

/// Log `entries` and return the verified inclusion of each.
fn logged(entries: &[LedgerEntry]) -> Vec<VerifiedInclusion> {
    let ledger = SignerKey::from_seed(ORIGIN, KeyType::Ed25519, &[1; 32]).unwrap();
    let witness = SignerKey::from_seed("w0.test", KeyType::CosignatureV1, &[10; 32]).unwrap();
    let mut tree = MemoryTree::new();
    let encoded: Vec<Vec<u8>> = entries.iter().map(|e| e.encode().unwrap()).collect();
    for b in &encoded {
        tree.push(leaf_hash(b));
    }
    let size = encoded.len() as u64;
    let cp = Checkpoint::new(ORIGIN, size, tree.root_at(size).unwrap()).unwrap();
    let mut note = Note::new(&cp.to_text()).unwrap();
    note.add_signature(ledger.sign_note(note.text()).unwrap())
        .unwrap();
    note.add_signature(witness.cosign(&cp.to_text(), 1_750_000_000).unwrap())
        .unwrap();
    let checkpoint = note.encode();
    let trust = LedgerTrust::new(
        &ledger.verifier().to_vkey(),
        &[witness.verifier().to_vkey()],
        1,
    )
    .unwrap();
    (0..size)
        .map(|i| {
            let bundle = Bundle {
                entry: encoded[i as usize].clone(),
                index: i,
                proof: inclusion_proof(&tree, i, size).unwrap(),
                checkpoint: checkpoint.clone(),
            };
            verify_bundle(&bundle, &trust, None, None).unwrap()
        })
        .collect()
}

fn entry(configs: &[KeyConfig], not_before: u64, not_after: u64) -> LedgerEntry {
    LedgerEntry::KeyConfig(KeyConfigEntry {
        key_config: KeyConfig::encode_list(configs),
        not_before,
        not_after,
    })
}

const NOW: u64 = 1_760_000_000;

#[test]
fn a_logged_key_is_accepted_and_an_unlogged_one_refused() {
    let good = key(1, 5);
    let personal = key(1, 6); // same id, different key: a targeted key
    let inclusions = logged(&[entry(std::slice::from_ref(&good), NOW - 10, NOW + 3600)]);
    let ok = check_logged(std::slice::from_ref(&good), &inclusions, NOW).unwrap();
    assert_eq!(ok.config(), &good);
    assert_eq!(ok.ledger_index(), 0);
    assert!(matches!(
        check_logged(std::slice::from_ref(&personal), &inclusions, NOW),
        Err(WireError::KeyConfigNotLogged)
    ));
    // The gateway's first preference is unlogged: the logged second one is chosen.
    let ok = check_logged(&[personal, good.clone()], &inclusions, NOW).unwrap();
    assert_eq!(ok.config(), &good);
}

#[test]
fn expired_or_not_yet_valid_entries_do_not_count() {
    let k = key(2, 7);
    let inclusions = logged(&[
        entry(std::slice::from_ref(&k), NOW - 7200, NOW - 3600),
        entry(std::slice::from_ref(&k), NOW + 60, NOW + 7200),
    ]);
    assert!(matches!(
        check_logged(std::slice::from_ref(&k), &inclusions, NOW),
        Err(WireError::KeyConfigNotLogged)
    ));
    assert!(check_logged(&[k], &inclusions, NOW + 61).is_ok());
}

#[test]
fn rotation_document_with_two_keys_covers_both() {
    let (cur, prev) = (key(9, 1), key(8, 2));
    let inclusions = logged(&[entry(&[cur.clone(), prev.clone()], NOW - 10, NOW + 10)]);
    assert_eq!(
        check_logged(std::slice::from_ref(&prev), &inclusions, NOW)
            .unwrap()
            .config(),
        &prev
    );
    assert_eq!(
        check_logged(std::slice::from_ref(&cur), &inclusions, NOW)
            .unwrap()
            .config(),
        &cur
    );
}

#[test]
fn key_configs_come_from_the_ledger_newest_first_and_only_valid_ones() {
    let (old, new, expired) = (key(1, 1), key(2, 2), key(3, 3));
    let inclusions = logged(&[
        entry(std::slice::from_ref(&expired), NOW - 7200, NOW - 3600),
        entry(std::slice::from_ref(&old), NOW - 100, NOW + 100),
        entry(&[new.clone(), old.clone()], NOW - 10, NOW + 100),
    ]);
    // Newest entry first, each key once, the expired entry ignored.
    assert_eq!(logged_key_configs(&inclusions, NOW), vec![new.clone(), old]);
    // What the device then uses is the newest logged key, with its ledger index.
    let chosen = check_logged(&logged_key_configs(&inclusions, NOW), &inclusions, NOW).unwrap();
    assert_eq!(chosen.config(), &new);
    // With nothing valid logged, nothing is offered, and the check refuses.
    assert!(logged_key_configs(&inclusions, NOW + 1000).is_empty());
    assert!(matches!(
        check_logged(
            &logged_key_configs(&inclusions, NOW + 1000),
            &inclusions,
            NOW + 1000
        ),
        Err(WireError::KeyConfigNotLogged)
    ));
}

/// After a rotation only the newest valid entry's key is used (issue 13, finding 5): a key
/// source that keeps offering the previous key first, or only, cannot keep a device on it
/// past the rotation overlap, so devices cannot be split into groups by key.
#[test]
fn the_newest_logged_key_wins_and_old_keys_end_with_the_overlap() {
    use confide_sdk::wire::KEY_ROTATION_OVERLAP_SECS;
    let (old, new) = (key(1, 1), key(2, 2));
    let rotated_at = NOW - 10;
    let inclusions = logged(&[
        entry(std::slice::from_ref(&old), NOW - 7200, NOW + 7200),
        entry(std::slice::from_ref(&new), rotated_at, NOW + 7200),
    ]);
    // Old key offered first: the newest logged key is still the one chosen.
    let chosen = check_logged(&[old.clone(), new.clone()], &inclusions, NOW).unwrap();
    assert_eq!(chosen.config(), &new);
    assert_eq!(chosen.ledger_index(), 1);
    // Only the old key offered, inside the overlap (a lagging mirror): accepted.
    let chosen = check_logged(std::slice::from_ref(&old), &inclusions, NOW).unwrap();
    assert_eq!((chosen.config(), chosen.ledger_index()), (&old, 0));
    assert_eq!(
        logged_key_configs(&inclusions, NOW),
        vec![new.clone(), old.clone()]
    );
    // After the overlap: refused, naming the newer entry; the ledger offers only the new key.
    let after = rotated_at + KEY_ROTATION_OVERLAP_SECS;
    assert!(matches!(
        check_logged(std::slice::from_ref(&old), &inclusions, after),
        Err(WireError::KeyConfigSuperseded { newest: 1 })
    ));
    assert_eq!(logged_key_configs(&inclusions, after), vec![new.clone()]);
    assert_eq!(
        check_logged(&[old, new.clone()], &inclusions, after)
            .unwrap()
            .config(),
        &new
    );
}
