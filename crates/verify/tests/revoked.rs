#![allow(clippy::unwrap_used)]
//! A release revoked by a later entry of the device's verified view is refused by the
//! inclusion pipeline with its own error naming the index and the reason, while the
//! same bundle passes when nothing revokes it.

use std::sync::Arc;

use confide_note::{Checkpoint, KeyType, Note, SignerKey};
use confide_release::{Bundle, LedgerEntry, LedgerTrust, Platform, ReleaseManifest};
use confide_tlog::{Hash, MemoryTree, inclusion_proof, leaf_hash};
use confide_verify::{Error, InclusionPipeline, LogView};

const ORIGIN: &str = "ledger.revoked.test";

fn release(i: u8) -> Vec<u8> {
    LedgerEntry::Release(ReleaseManifest {
        platform: Platform::Simulated,
        measurement: vec![i; 48],
        snp_policy: Some(0x30000),
        rtmrs: Vec::new(),
        gpu_reference: Default::default(),
        model_digest: [i; 32],
        config_digest: [i; 32],
        source_revision: format!("r{i}"),
        build_recipe_digest: [i; 32],
        not_before: 1,
        not_after: 4_000_000_000,
        notes: String::new(),
    })
    .encode()
    .unwrap()
}

/// The device's view: the log's root at its size, and the revocations it holds.
struct View {
    size: u64,
    root: Hash,
    revoked: Option<(u64, String)>,
}

impl LogView for View {
    fn contains(&self, size: u64, root: &Hash) -> bool {
        size == self.size && *root == self.root
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn revocation(&self, index: u64) -> Option<String> {
        self.revoked
            .as_ref()
            .filter(|(i, _)| *i == index)
            .map(|(_, r)| r.clone())
    }
}

#[test]
fn revoked_release_is_refused_with_its_reason() {
    let ledger = SignerKey::from_seed(ORIGIN, KeyType::Ed25519, &[1; 32]).unwrap();
    let witness = SignerKey::from_seed("w.test", KeyType::CosignatureV1, &[2; 32]).unwrap();
    let entries = [release(0), release(1)];
    let mut tree = MemoryTree::new();
    for e in &entries {
        tree.push(leaf_hash(e));
    }
    let cp = Checkpoint::new(ORIGIN, 2, tree.root()).unwrap();
    let mut note = Note::new(&cp.to_text()).unwrap();
    note.add_signature(ledger.sign_note(note.text()).unwrap())
        .unwrap();
    note.add_signature(witness.cosign(&cp.to_text(), 1_750_000_000).unwrap())
        .unwrap();
    let bundle = Bundle {
        entry: entries[0].clone(),
        index: 0,
        proof: inclusion_proof(&tree, 0, 2).unwrap(),
        checkpoint: note.encode(),
    }
    .encode()
    .unwrap();
    let trust = LedgerTrust::new(
        &ledger.verifier().to_vkey(),
        &[witness.verifier().to_vkey()],
        1,
    )
    .unwrap();
    let pipeline = |revoked: Option<(u64, String)>| {
        InclusionPipeline::new(trust.clone(), None).with_view(Arc::new(View {
            size: 2,
            root: tree.root(),
            revoked,
        }))
    };

    assert!(pipeline(None).verify(&bundle).is_ok());
    assert!(
        pipeline(Some((1, "another release".into())))
            .verify(&bundle)
            .is_ok()
    );
    let err = pipeline(Some((0, "kernel CVE-2026-0001".into())))
        .verify(&bundle)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Revoked { index: 0, reason } if reason == "kernel CVE-2026-0001"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the release at ledger index 0 was revoked: kernel CVE-2026-0001"
    );
}

#[test]
fn release_older_than_the_policy_allows_is_refused_with_its_own_error() {
    use confide_ratls::InclusionVerifier as _;
    use confide_ratls::rustls::pki_types::UnixTime;
    let ledger = SignerKey::from_seed(ORIGIN, KeyType::Ed25519, &[1; 32]).unwrap();
    let witness = SignerKey::from_seed("w.test", KeyType::CosignatureV1, &[2; 32]).unwrap();
    let entry = release(0); // not_before = 1
    let mut tree = MemoryTree::new();
    tree.push(leaf_hash(&entry));
    let cp = Checkpoint::new(ORIGIN, 1, tree.root()).unwrap();
    let mut note = Note::new(&cp.to_text()).unwrap();
    note.add_signature(ledger.sign_note(note.text()).unwrap())
        .unwrap();
    note.add_signature(witness.cosign(&cp.to_text(), 100).unwrap())
        .unwrap();
    let bundle = Bundle {
        entry,
        index: 0,
        proof: inclusion_proof(&tree, 0, 1).unwrap(),
        checkpoint: note.encode(),
    }
    .encode()
    .unwrap();
    let trust = LedgerTrust::new(
        &ledger.verifier().to_vkey(),
        &[witness.verifier().to_vkey()],
        1,
    )
    .unwrap();
    let at = |secs: u64| UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
    let pipeline = InclusionPipeline::new(trust, None).with_max_release_age(Some(1_000));
    assert!(pipeline.verify_inclusion(&bundle, at(1_001)).is_ok());
    let err = pipeline.verify_inclusion(&bundle, at(1_002)).unwrap_err();
    assert!(
        err.to_string().contains("release too old: valid since 1"),
        "{err}"
    );
}
