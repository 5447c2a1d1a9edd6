//! Entry encoding known answers and round trips, bundle limits, and every negative
//! case of client-side verification, each with its own typed error.
#![allow(clippy::unwrap_used)]

use confide_note::{Checkpoint, KeyType, Note, SignerKey};
use confide_release::{
    Bundle, Error, KeyConfigEntry, LedgerEntry, LedgerTrust, Platform, ReleaseManifest,
    StoredCheckpoint, verify_bundle, verify_checkpoint,
};
use confide_tlog::{Hash, MemoryTree, consistency_proof, inclusion_proof, leaf_hash};

const ORIGIN: &str = "ledger.confide.test";

fn manifest(i: u64) -> ReleaseManifest {
    ReleaseManifest {
        platform: Platform::SevSnp,
        measurement: vec![0xAB; 48],
        snp_policy: Some(0x30000),
        rtmrs: Vec::new(),
        gpu_reference: Default::default(),
        model_digest: [0x11; 32],
        config_digest: [0x33; 32],
        source_revision: format!("git:{i:040x}"),
        build_recipe_digest: [0x22; 32],
        not_before: 1_700_000_000,
        not_after: 1_800_000_000,
        notes: "first release\nwith notes".into(),
    }
}

#[test]
fn entry_known_answer_and_round_trip() {
    let e = LedgerEntry::Release(manifest(1));
    let b = e.encode().unwrap();
    // Layout pinned: magic, kind 0x04, platform, measurement length; then the policy
    // presence byte and the big-endian policy, no RTMRs, no GPU pins. The leaf hash below
    // was computed independently (Python hashlib over the layout in entry.rs).
    assert!(b.starts_with(b"confide-ledger-entry/v1\n\x04\x01\x30"));
    assert_eq!(
        &b[24 + 3 + 48..24 + 3 + 48 + 11],
        &[1, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0]
    );
    assert_eq!(
        b.len(),
        24 + 1 + 1 + 1 + 48 + 9 + 1 + 1 + 32 + 32 + 2 + 44 + 32 + 8 + 8 + 2 + 24
    );
    assert_eq!(
        hex::encode(leaf_hash(&b).0),
        hex::encode(e.leaf_hash().unwrap().0)
    );
    assert_eq!(format!("{:?}", e.leaf_hash().unwrap()), LEAF_HASH_V3);
    assert_eq!(LedgerEntry::decode(&b).unwrap(), e);

    let k = LedgerEntry::KeyConfig(KeyConfigEntry {
        key_config: vec![0, 0x29, 1, 2, 3],
        not_before: 5,
        not_after: 6,
    });
    let kb = k.encode().unwrap();
    assert_eq!(
        hex::encode(&kb),
        format!(
            "{}02{}{}{}",
            hex::encode(b"confide-ledger-entry/v1\n"),
            "00050029010203",
            "0000000000000005",
            "0000000000000006"
        )
    );
    assert_eq!(LedgerEntry::decode(&kb).unwrap(), k);
}

/// Leaf hash of `manifest(1)`, computed with Python's hashlib over the documented layout.
const LEAF_HASH_V3: &str = "118d757ce6f02c7d323c7601c72c23319e4ccd7978883ece6a9a5775cb6ccc3c";

fn tdx_manifest(rtmrs: usize) -> ReleaseManifest {
    ReleaseManifest {
        platform: Platform::Tdx,
        measurement: vec![0x0D; 48],
        snp_policy: None,
        rtmrs: (0..rtmrs).map(|i| vec![0xA0 + i as u8; 48]).collect(),
        gpu_reference: [
            (2u8, vec![vec![0x02; 48]]),
            (9, vec![vec![0x09; 48], vec![0x19; 48]]),
        ]
        .into_iter()
        .collect(),
        ..manifest(1)
    }
}

#[test]
fn tdx_and_gpu_pins_round_trip_and_name_their_registers() {
    for n in [3, 4] {
        let m = tdx_manifest(n);
        let e = LedgerEntry::Release(m.clone());
        let b = e.encode().unwrap();
        assert_eq!(LedgerEntry::decode(&b).unwrap(), e);
        let names: Vec<String> = m.pins().into_iter().map(|(n, _)| n).collect();
        let mut want = vec!["MRTD", "RTMR0", "RTMR1", "RTMR2"];
        if n == 4 {
            want.push("RTMR3");
        }
        want.extend(["gpu.2", "gpu.9"]);
        assert_eq!(names, want);
        // Documents carry the same values.
        let json = e.to_json().unwrap();
        assert_eq!(LedgerEntry::from_document(&json).unwrap(), e);
    }
    let snp = manifest(1).pins();
    assert_eq!(snp[0].0, "MEASUREMENT");
    assert_eq!(
        snp[1],
        ("POLICY".into(), vec![0x30000u64.to_le_bytes().to_vec()])
    );
}

#[test]
fn each_platform_must_pin_what_it_measures() {
    let invalid = |m: ReleaseManifest, field: &str| match LedgerEntry::Release(m).encode() {
        Err(Error::InvalidField { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected invalid {field}, got {other:?}"),
    };
    invalid(
        ReleaseManifest {
            snp_policy: None,
            ..manifest(1)
        },
        "snp_policy",
    );
    invalid(
        ReleaseManifest {
            rtmrs: vec![vec![0; 48]; 3],
            ..manifest(1)
        },
        "rtmrs",
    );
    invalid(tdx_manifest(2), "rtmrs");
    invalid(tdx_manifest(5), "rtmrs");
    let mut short = tdx_manifest(3);
    short.rtmrs[1].pop();
    invalid(short, "rtmrs");
    invalid(
        ReleaseManifest {
            snp_policy: Some(0x30000),
            ..tdx_manifest(3)
        },
        "snp_policy",
    );
    let mut unsorted = tdx_manifest(3);
    unsorted
        .gpu_reference
        .insert(4, vec![vec![2; 48], vec![1; 48]]);
    invalid(unsorted, "gpu_reference");
    let mut empty = tdx_manifest(3);
    empty.gpu_reference.insert(4, vec![]);
    invalid(empty, "gpu_reference");
}

/// The v2 encoding (kind 0x03): what `confide release publish` wrote before release pins.
fn release_v2_bytes(m: &ReleaseManifest) -> Vec<u8> {
    let mut b = b"confide-ledger-entry/v1\n".to_vec();
    b.extend_from_slice(&[0x03, 0x01, 48]);
    b.extend_from_slice(&m.measurement);
    b.extend_from_slice(&m.model_digest);
    b.extend_from_slice(&m.config_digest);
    b.extend_from_slice(&(m.source_revision.len() as u16).to_be_bytes());
    b.extend_from_slice(m.source_revision.as_bytes());
    b.extend_from_slice(&m.build_recipe_digest);
    b.extend_from_slice(&m.not_before.to_be_bytes());
    b.extend_from_slice(&m.not_after.to_be_bytes());
    b.extend_from_slice(&(m.notes.len() as u16).to_be_bytes());
    b.extend_from_slice(m.notes.as_bytes());
    b
}

#[test]
fn retired_release_entries_are_rejected_with_a_typed_error() {
    // v2 (kind 0x03): one 48-byte value per platform, so MRTD alone on TDX.
    let v2 = release_v2_bytes(&manifest(1));
    match LedgerEntry::decode(&v2) {
        Err(Error::RetiredEntryFormat(why)) => assert!(why.contains("rtmrs"), "{why}"),
        other => panic!("{other:?}"),
    }
    // v1 (kind 0x01, no config digest): v2 less the config digest, with the old kind
    // byte. Neither may be misparsed as the current format.
    let mut v1 = v2[..24 + 1 + 1 + 1 + 48 + 32].to_vec();
    v1[24] = 0x01;
    v1.extend_from_slice(&v2[24 + 1 + 1 + 1 + 48 + 32 + 32..]);
    assert!(matches!(
        LedgerEntry::decode(&v1),
        Err(Error::RetiredEntryFormat(_))
    ));
}

#[test]
fn manifest_document_requires_config_digest() {
    let doc = format!(
        "platform = \"sev-snp\"\nsnp_policy = 0x30000\nmeasurement = \"{}\"\nmodel_digest = \"{}\"\n\
         source_revision = \"r1\"\nbuild_recipe_digest = \"{}\"\nnot_before = 1\nnot_after = 2\n",
        "ab".repeat(48),
        "11".repeat(32),
        "22".repeat(32)
    );
    assert!(matches!(
        LedgerEntry::from_toml(&doc),
        Err(Error::Document(_))
    ));
    let with = format!("{doc}config_digest = \"{}\"\n", "33".repeat(32));
    match LedgerEntry::from_toml(&with).unwrap() {
        LedgerEntry::Release(m) => assert_eq!(m.config_digest, [0x33; 32]),
        other => panic!("not a release: {other:?}"),
    }
}

#[test]
fn entry_decoder_rejects_non_canonical_and_malformed() {
    let b = LedgerEntry::Release(manifest(1)).encode().unwrap();
    let mut trailing = b.clone();
    trailing.push(0);
    assert_eq!(
        LedgerEntry::decode(&trailing),
        Err(Error::MalformedEntry("trailing bytes"))
    );
    assert_eq!(
        LedgerEntry::decode(&b[..b.len() - 1]),
        Err(Error::MalformedEntry("truncated"))
    );
    let mut magic = b.clone();
    magic[0] = b'C';
    assert!(matches!(
        LedgerEntry::decode(&magic),
        Err(Error::MalformedEntry(_))
    ));
    let mut platform = b.clone();
    platform[25] = 9;
    assert!(matches!(
        LedgerEntry::decode(&platform),
        Err(Error::InvalidField {
            field: "platform",
            ..
        })
    ));
    // A 47-byte measurement (length byte and data shortened consistently).
    let mut short = b[..26].to_vec();
    short.push(47);
    short.extend_from_slice(&b[27..27 + 47]);
    short.extend_from_slice(&b[27 + 48..]);
    assert!(matches!(
        LedgerEntry::decode(&short),
        Err(Error::MeasurementLength {
            want: 48,
            got: 47,
            ..
        })
    ));
    let mut kind = b.clone();
    kind[24] = 7;
    assert!(matches!(
        LedgerEntry::decode(&kind),
        Err(Error::MalformedEntry(_))
    ));
    assert!(LedgerEntry::decode(&vec![0u8; 20_000]).is_err());
    // Validity window reversed.
    let mut m = manifest(1);
    m.not_before = m.not_after + 1;
    assert!(matches!(
        LedgerEntry::Release(m).encode(),
        Err(Error::InvalidField {
            field: "not_after",
            ..
        })
    ));
}

#[test]
fn human_documents() {
    let toml = r#"
platform = "sev-snp"
snp_policy = 0x30000
measurement = "abababababababababababababababababababababababababababababababababababababababababababababababab"
model_digest = "1111111111111111111111111111111111111111111111111111111111111111"
config_digest = "3333333333333333333333333333333333333333333333333333333333333333"
source_revision = "git:0000000000000000000000000000000000000001"
build_recipe_digest = "2222222222222222222222222222222222222222222222222222222222222222"
not_before = "2023-11-14T22:13:20Z"
not_after = 1800000000
notes = "first release\nwith notes"
"#;
    let e = LedgerEntry::from_document(toml).unwrap();
    assert_eq!(e, LedgerEntry::Release(manifest(1)));
    let json = e.to_json().unwrap();
    assert!(json.contains("\"kind\": \"release\""));
    assert_eq!(LedgerEntry::from_document(&json).unwrap(), e);
    assert!(matches!(
        LedgerEntry::from_toml(&format!("{toml}\nextra = 1\n")),
        Err(Error::Document(_))
    ));
    assert!(matches!(
        LedgerEntry::from_toml(&toml.replace("sev-snp", "sgx")),
        Err(Error::Document(_))
    ));
    assert!(matches!(
        LedgerEntry::from_toml(&toml.replace("abab", "ab")),
        Err(Error::MeasurementLength { .. })
    ));
    let kc = LedgerEntry::from_document(
        r#"{"kind":"key-config","key_config":"0029","not_before":1,"not_after":2}"#,
    )
    .unwrap();
    assert!(matches!(kc, LedgerEntry::KeyConfig(_)));
}

/// A small log with a ledger key and three witnesses, as the ledger service runs it.
struct Log {
    ledger: SignerKey,
    witnesses: Vec<SignerKey>,
    tree: MemoryTree,
    entries: Vec<Vec<u8>>,
}

impl Log {
    fn new(n: u64) -> Self {
        let mut l = Self {
            ledger: SignerKey::from_seed(ORIGIN, KeyType::Ed25519, &[1; 32]).unwrap(),
            witnesses: (0..3u8)
                .map(|i| {
                    SignerKey::from_seed(
                        &format!("w{i}.test"),
                        KeyType::CosignatureV1,
                        &[10 + i; 32],
                    )
                    .unwrap()
                })
                .collect(),
            tree: MemoryTree::new(),
            entries: Vec::new(),
        };
        for i in 0..n {
            let b = LedgerEntry::Release(manifest(i)).encode().unwrap();
            l.tree.push(leaf_hash(&b));
            l.entries.push(b);
        }
        l
    }

    fn note(&self, size: u64, root: Hash, cosigners: usize) -> String {
        let cp = Checkpoint::new(ORIGIN, size, root).unwrap();
        let mut n = Note::new(&cp.to_text()).unwrap();
        n.add_signature(self.ledger.sign_note(n.text()).unwrap())
            .unwrap();
        for w in self.witnesses.iter().take(cosigners) {
            n.add_signature(w.cosign(&cp.to_text(), 1_750_000_000).unwrap())
                .unwrap();
        }
        n.encode()
    }

    fn checkpoint(&self, size: u64) -> String {
        self.note(size, self.tree.root_at(size).unwrap(), 3)
    }

    fn bundle(&self, index: u64, size: u64) -> Bundle {
        Bundle {
            entry: self.entries[index as usize].clone(),
            index,
            proof: inclusion_proof(&self.tree, index, size).unwrap(),
            checkpoint: self.checkpoint(size),
        }
    }

    fn trust(&self, quorum: usize) -> LedgerTrust {
        let w: Vec<String> = self
            .witnesses
            .iter()
            .map(|w| w.verifier().to_vkey())
            .collect();
        LedgerTrust::new(&self.ledger.verifier().to_vkey(), &w, quorum).unwrap()
    }
}

#[test]
fn good_bundle_verifies_and_round_trips() {
    let log = Log::new(21);
    let b = log.bundle(13, 21);
    let enc = b.encode().unwrap();
    assert!(enc.len() < Bundle::MAX_ENCODED_LEN);
    assert_eq!(Bundle::decode(&enc).unwrap(), b);
    let v = verify_bundle(&b, &log.trust(2), None, None).unwrap();
    assert_eq!(v.index(), 13);
    assert_eq!(v.entry(), &LedgerEntry::Release(manifest(13)));
    assert_eq!(v.checkpoint().size(), 21);
    assert_eq!(v.verified_checkpoint().cosigners().len(), 3);
    // The stored form round-trips.
    let stored = StoredCheckpoint::parse(&v.checkpoint().encode()).unwrap();
    assert_eq!(&stored, v.checkpoint());
}

#[test]
fn bundle_decoder_limits() {
    let log = Log::new(5);
    let enc = log.bundle(1, 5).encode().unwrap();
    assert_eq!(
        Bundle::decode(&enc[..enc.len() - 1]),
        Err(Error::MalformedBundle("truncated"))
    );
    let mut t = enc.clone();
    t.push(0);
    assert_eq!(
        Bundle::decode(&t),
        Err(Error::MalformedBundle("trailing bytes"))
    );
    assert!(matches!(
        Bundle::decode(&vec![0; Bundle::MAX_ENCODED_LEN + 1]),
        Err(Error::BundleTooLarge(_))
    ));
    let mut big_proof = log.bundle(1, 5);
    big_proof.proof = vec![Hash::default(); 65];
    assert!(matches!(
        big_proof.encode(),
        Err(Error::BundleTooLarge("proof"))
    ));
    let mut m = enc.clone();
    m[0] = b'X';
    assert!(matches!(Bundle::decode(&m), Err(Error::MalformedBundle(_))));
}

#[test]
fn negative_cases_each_have_their_own_error() {
    let log = Log::new(21);
    let trust = log.trust(2);
    let good = log.bundle(13, 21);

    // Wrong leaf: another entry under this index's proof.
    let mut b = good.clone();
    b.entry = log.entries[12].clone();
    assert_eq!(
        verify_bundle(&b, &trust, None, None).unwrap_err(),
        Error::NotIncluded
    );

    // Wrong index (inside the tree) and index outside the tree.
    let mut b = good.clone();
    b.index = 12;
    assert_eq!(
        verify_bundle(&b, &trust, None, None).unwrap_err(),
        Error::NotIncluded
    );
    b.index = 21;
    assert_eq!(
        verify_bundle(&b, &trust, None, None).unwrap_err(),
        Error::IndexOutOfRange {
            index: 21,
            size: 21
        }
    );

    // Truncated and padded proofs.
    let mut b = good.clone();
    b.proof.pop();
    assert!(matches!(
        verify_bundle(&b, &trust, None, None),
        Err(Error::TruncatedProof { .. })
    ));
    let mut b = good.clone();
    b.proof.push(Hash::default());
    assert!(matches!(
        verify_bundle(&b, &trust, None, None),
        Err(Error::PaddedProof { .. })
    ));

    // Wrong root: a checkpoint properly signed and cosigned, over another root.
    let mut b = good.clone();
    b.checkpoint = log.note(21, Hash([9; 32]), 3);
    assert_eq!(
        verify_bundle(&b, &trust, None, None).unwrap_err(),
        Error::NotIncluded
    );

    // Bad ledger signature: the checkpoint text altered after signing.
    let mut b = good.clone();
    let root_line = b.checkpoint.lines().nth(2).unwrap().to_owned();
    b.checkpoint = b.checkpoint.replacen("21\n", "22\n", 1);
    assert!(b.checkpoint.contains(&root_line));
    assert_eq!(
        verify_bundle(&b, &trust, None, None).unwrap_err(),
        Error::BadLedgerSignature
    );

    // Unknown key: a checkpoint signed only by another ledger key.
    let mut other = Log::new(21);
    other.ledger = SignerKey::from_seed(ORIGIN, KeyType::Ed25519, &[2; 32]).unwrap();
    let mut b = good.clone();
    b.checkpoint = other.checkpoint(21);
    assert_eq!(
        verify_bundle(&b, &trust, None, None).unwrap_err(),
        Error::UnknownLedgerKey
    );

    // Too few witness cosignatures.
    let mut b = good.clone();
    b.checkpoint = log.note(21, log.tree.root(), 1);
    assert_eq!(
        verify_bundle(&b, &trust, None, None).unwrap_err(),
        Error::TooFewCosignatures {
            valid: 1,
            required: 2
        }
    );

    // Malformed note text.
    let mut b = good.clone();
    b.checkpoint = "ledger.confide.test\n21\n".into();
    assert!(matches!(
        verify_bundle(&b, &trust, None, None),
        Err(Error::MalformedCheckpoint(_))
    ));

    // Forked checkpoint of the same size as the stored one.
    let stored = StoredCheckpoint::new(ORIGIN, 21, Hash([5; 32])).unwrap();
    assert_eq!(
        verify_bundle(&good, &trust, Some(&stored), None).unwrap_err(),
        Error::Fork { size: 21 }
    );

    // Rollback: smaller than stored.
    let stored = StoredCheckpoint::new(ORIGIN, 30, Hash([5; 32])).unwrap();
    assert_eq!(
        verify_bundle(&good, &trust, Some(&stored), None).unwrap_err(),
        Error::Rollback {
            stored: 30,
            got: 21
        }
    );

    // Grown tree: needs a consistency proof, which must be right.
    let stored = StoredCheckpoint::new(ORIGIN, 8, log.tree.root_at(8).unwrap()).unwrap();
    assert_eq!(
        verify_bundle(&good, &trust, Some(&stored), None).unwrap_err(),
        Error::ConsistencyProofRequired { from: 8, to: 21 }
    );
    let proof = consistency_proof(&log.tree, 8, 21).unwrap();
    let v = verify_bundle(&good, &trust, Some(&stored), Some(&proof)).unwrap();
    assert_eq!(v.checkpoint().size(), 21);
    let forked = StoredCheckpoint::new(ORIGIN, 8, Hash([6; 32])).unwrap();
    assert!(matches!(
        verify_bundle(&good, &trust, Some(&forked), Some(&proof)),
        Err(Error::Inconsistent(_))
    ));
    // Stored checkpoint of another log.
    let alien = StoredCheckpoint::new("other.log", 8, Hash([6; 32])).unwrap();
    assert_eq!(
        verify_bundle(&good, &trust, Some(&alien), Some(&proof)).unwrap_err(),
        Error::StoredOriginMismatch
    );

    // Tampered entry that no longer parses.
    let mut b = good.clone();
    b.entry.push(1);
    assert!(matches!(
        verify_bundle(&b, &trust, None, None),
        Err(Error::MalformedEntry(_))
    ));
}

#[test]
fn trust_configuration_is_validated() {
    let log = Log::new(1);
    let l = log.ledger.verifier().to_vkey();
    let w: Vec<String> = log
        .witnesses
        .iter()
        .map(|w| w.verifier().to_vkey())
        .collect();
    assert!(matches!(
        LedgerTrust::new(&l, &w, 4),
        Err(Error::QuorumTooLarge {
            quorum: 4,
            witnesses: 3
        })
    ));
    assert!(matches!(
        LedgerTrust::new(&w[0], &w[1..], 1),
        Err(Error::TrustKeyType(_))
    ));
    assert!(matches!(
        LedgerTrust::new(&l, &[w[0].clone(), w[0].clone()], 1),
        Err(Error::DuplicateWitness(_))
    ));
    assert!(matches!(
        LedgerTrust::new("nonsense", &w, 1),
        Err(Error::TrustKey(_))
    ));
    // verify_checkpoint on its own, as the monitor uses it.
    let t = LedgerTrust::new(&l, &w, 3).unwrap();
    let v = verify_checkpoint(&log.checkpoint(1), &t, None, None).unwrap();
    assert_eq!(v.checkpoint().size(), 1);
}

#[test]
fn newest_cosignature_time_is_verified_and_checked_for_age() {
    let log = Log::new(4);
    // Two witnesses cosign at different times; the newest counts.
    let cp = Checkpoint::new(ORIGIN, 4, log.tree.root_at(4).unwrap()).unwrap();
    let mut n = Note::new(&cp.to_text()).unwrap();
    n.add_signature(log.ledger.sign_note(n.text()).unwrap())
        .unwrap();
    n.add_signature(log.witnesses[0].cosign(&cp.to_text(), 1_000).unwrap())
        .unwrap();
    n.add_signature(log.witnesses[1].cosign(&cp.to_text(), 5_000).unwrap())
        .unwrap();
    let v = verify_checkpoint(&n.encode(), &log.trust(2), None, None).unwrap();
    assert_eq!(v.newest_cosignature(), Some(5_000));
    assert!(v.check_fresh(5_600, 600).is_ok());
    assert_eq!(
        v.check_fresh(5_601, 600),
        Err(Error::StaleCheckpoint {
            newest: Some(5_000),
            now: 5_601,
            max_age: 600
        })
    );

    // A cosignature line whose timestamp was altered does not verify, so it neither
    // counts towards the quorum nor makes the checkpoint look fresher.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let line = n.signatures()[2].to_line();
    let (head, sig) = line.trim_end().rsplit_once(' ').unwrap();
    let mut raw = b64.decode(sig).unwrap();
    // key ID (4 bytes), then the big-endian timestamp the witness signed.
    raw[4..12].copy_from_slice(&9_999u64.to_be_bytes());
    let forged = n
        .encode()
        .replacen(&line, &format!("{head} {}\n", b64.encode(&raw)), 1);
    let v = verify_checkpoint(&forged, &log.trust(1), None, None).unwrap();
    assert_eq!(v.newest_cosignature(), Some(1_000));

    // No trusted cosignature at all (quorum 0): never fresh.
    let mut bare = Note::new(&cp.to_text()).unwrap();
    bare.add_signature(log.ledger.sign_note(bare.text()).unwrap())
        .unwrap();
    let v = verify_checkpoint(&bare.encode(), &log.trust(0), None, None).unwrap();
    assert!(matches!(
        v.check_fresh(10, 1_000_000),
        Err(Error::StaleCheckpoint { newest: None, .. })
    ));
}

#[test]
fn release_age_counts_from_not_before() {
    let m = manifest(1); // not_before 1_700_000_000
    assert!(m.check_age(1_700_000_000 + 86_400, 86_400).is_ok());
    assert_eq!(
        m.check_age(1_700_000_000 + 86_401, 86_400),
        Err(Error::ReleaseTooOld {
            not_before: 1_700_000_000,
            now: 1_700_086_401,
            max_age: 86_400
        })
    );
}

/// Many entries under one checkpoint: `verify_entry_under` checks only the inclusion proof
/// against a checkpoint verified once (issue 13, finding 7: a device's ledger view used to
/// re-verify every signature once per entry). It yields exactly what `verify_bundle` yields,
/// and refuses a wrong index, a wrong entry and a wrong proof.
#[test]
fn entries_under_one_verified_checkpoint() {
    let ledger = SignerKey::from_seed("ledger.test", KeyType::Ed25519, &[1; 32]).unwrap();
    let witness = SignerKey::from_seed("w.test", KeyType::CosignatureV1, &[2; 32]).unwrap();
    let entries: Vec<Vec<u8>> = (0..5u8)
        .map(|i| {
            LedgerEntry::KeyConfig(confide_release::KeyConfigEntry {
                key_config: vec![i; 8],
                not_before: 1,
                not_after: 2,
            })
            .encode()
            .unwrap()
        })
        .collect();
    let mut tree = confide_tlog::MemoryTree::new();
    for e in &entries {
        tree.push(confide_tlog::leaf_hash(e));
    }
    let cp = confide_note::Checkpoint::new("ledger.test", 5, tree.root_at(5).unwrap()).unwrap();
    let mut note = confide_note::Note::new(&cp.to_text()).unwrap();
    note.add_signature(ledger.sign_note(note.text()).unwrap())
        .unwrap();
    note.add_signature(witness.cosign(&cp.to_text(), 1_750_000_000).unwrap())
        .unwrap();
    let note = note.encode();
    let trust = LedgerTrust::new(
        &ledger.verifier().to_vkey(),
        &[witness.verifier().to_vkey()],
        1,
    )
    .unwrap();
    let checked = confide_release::verify_checkpoint(&note, &trust, None, None).unwrap();
    for (i, e) in entries.iter().enumerate() {
        let i = i as u64;
        let proof = confide_tlog::inclusion_proof(&tree, i, 5).unwrap();
        let once = confide_release::verify_entry_under(&checked, e, i, &proof).unwrap();
        let each = verify_bundle(
            &Bundle {
                entry: e.clone(),
                index: i,
                proof: proof.clone(),
                checkpoint: note.clone(),
            },
            &trust,
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            (once.index(), once.leaf_hash()),
            (each.index(), each.leaf_hash())
        );
        assert_eq!(once.entry(), each.entry());
        assert_eq!(once.checkpoint(), each.checkpoint());
        let other = (i + 1) % 5;
        assert!(confide_release::verify_entry_under(&checked, e, other, &proof).is_err());
        assert!(
            confide_release::verify_entry_under(&checked, &entries[other as usize], i, &proof)
                .is_err()
        );
    }
    let proof = confide_tlog::inclusion_proof(&tree, 0, 5).unwrap();
    assert!(matches!(
        confide_release::verify_entry_under(&checked, &entries[0], 9, &proof),
        Err(confide_release::Error::IndexOutOfRange { index: 9, size: 5 })
    ));
}
