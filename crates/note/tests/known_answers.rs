//! Known-answer tests against published vectors of the signed-note format, plus
//! cosignature and checkpoint encodings, round trips and negative cases.
#![allow(clippy::unwrap_used)]

use confide_note::{
    Checkpoint, Error, KeyType, MAX_NOTE_SIZE, Note, NoteSignature, SignerKey, VerifierKey,
    cosignature_message, key_id,
};
use confide_tlog::Hash;

// The example key and note of the Go reference implementation's documentation
// (golang.org/x/mod/sumdb/note), used as data.
const GO_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_SIG_LINE: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

// The example of the C2SP signed-note specification ("Verifier keys").
const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

#[test]
fn go_reference_key_and_signature_byte_for_byte() {
    let s = SignerKey::parse(GO_SKEY).unwrap();
    assert_eq!(s.verifier().to_vkey(), GO_VKEY);
    assert_eq!(s.to_skey().as_str(), GO_SKEY);
    // Ed25519 is deterministic: signing the same text reproduces the published line.
    let line = s.sign_note(GO_TEXT).unwrap().to_line();
    assert_eq!(line, GO_SIG_LINE);
    let encoded = format!("{GO_TEXT}\n{GO_SIG_LINE}");
    let note = Note::parse(&encoded).unwrap();
    assert_eq!(note.encode(), encoded);
    let v = VerifierKey::parse(GO_VKEY).unwrap();
    assert_eq!(v.verify(&note).unwrap(), None);
}

#[test]
fn spec_example_verifies() {
    let v = VerifierKey::parse(SPEC_VKEY).unwrap();
    assert_eq!(v.name(), "example.com/foo");
    assert_eq!(hex::encode(v.id()), "530d903a");
    let note = Note::parse(SPEC_NOTE).unwrap();
    assert_eq!(note.text(), "This is an example message.\n");
    v.verify(&note).unwrap();
}

#[test]
fn note_negative_cases_are_distinct() {
    let v = VerifierKey::parse(GO_VKEY).unwrap();
    // Tampered text: bad signature.
    let tampered = format!("{}\n{GO_SIG_LINE}", GO_TEXT.replace("answer", "ANSWER"));
    assert_eq!(
        v.verify(&Note::parse(&tampered).unwrap()),
        Err(Error::BadSignature("PeterNeumann".into()))
    );
    // Signed only by another key: unknown key.
    assert_eq!(
        v.verify(&Note::parse(SPEC_NOTE).unwrap()),
        Err(Error::UnknownKey("PeterNeumann".into()))
    );
    // Malformed notes.
    for bad in [
        GO_TEXT.to_string(),                                // no signatures
        format!("{GO_TEXT}\n"),                             // empty signature block
        format!("{GO_TEXT}\n{}", GO_SIG_LINE.trim_end()),   // no final newline
        format!("{GO_TEXT}\n- PeterNeumann AAAAAAAA\n"),    // hyphen, not em dash
        format!("{GO_TEXT}\n\u{2014} PeterNeumann !!!!\n"), // not base64
        format!("{GO_TEXT}\n\u{2014} PeterNeumann AAAA\n"), // too short
        format!("a\rb\n\n{GO_SIG_LINE}"),                   // control character
    ] {
        assert!(
            matches!(Note::parse(&bad), Err(Error::MalformedNote(_))),
            "{bad:?}"
        );
    }
    // Oversized input.
    let big = format!("{}\n\n{GO_SIG_LINE}", "a".repeat(MAX_NOTE_SIZE));
    assert!(matches!(Note::parse(&big), Err(Error::NoteTooLarge(_))));
    // Too many signature lines.
    let many = format!("{GO_TEXT}\n{}", GO_SIG_LINE.repeat(101));
    assert_eq!(Note::parse(&many), Err(Error::TooManySignatures));
}

#[test]
fn key_string_negative_cases() {
    assert_eq!(
        VerifierKey::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(Error::KeyIdMismatch)
    );
    assert_eq!(
        VerifierKey::parse("PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(Error::UnsupportedKeyType(2))
    );
    assert!(matches!(
        VerifierKey::parse("PeterNeumann"),
        Err(Error::MalformedKey(_))
    ));
    assert!(matches!(
        VerifierKey::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq"),
        Err(Error::MalformedKey(_))
    ));
    assert_eq!(
        SignerKey::from_seed("bad name", KeyType::Ed25519, &[0; 32]).unwrap_err(),
        Error::InvalidName
    );
    assert!(SignerKey::parse("PRIVATE+KEY+x+00000000+AAAA").is_err());
}

#[test]
fn cosignature_message_and_encoding() {
    // The message layout of C2SP tlog-cosignature "Ed25519 signed message".
    let cp =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    assert_eq!(
        cosignature_message(1679315147, cp),
        "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    );
    let w = SignerKey::from_seed("witness.example/w1", KeyType::CosignatureV1, &[9; 32]).unwrap();
    let v = w.verifier();
    // Key ID uses type byte 0x04.
    let pk: [u8; 32] = {
        let vk = v.to_vkey();
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(vk.rsplit('+').next().unwrap())
            .unwrap();
        assert_eq!(raw[0], 0x04);
        raw[1..].try_into().unwrap()
    };
    assert_eq!(
        v.id(),
        key_id("witness.example/w1", KeyType::CosignatureV1, &pk)
    );
    assert_eq!(VerifierKey::parse(&v.to_vkey()).unwrap(), v);

    let sig = w.cosign(cp, 1679315147).unwrap();
    let line = sig.to_line();
    // key ID (4) + timestamp (8) + Ed25519 (64) = 76 bytes = 104 base64 chars.
    assert_eq!(line.len(), "\u{2014} witness.example/w1 ".len() + 104 + 1);
    let mut note = Note::new(cp).unwrap();
    note.add_signature(NoteSignature::parse_line(&line).unwrap())
        .unwrap();
    assert_eq!(v.verify(&note).unwrap(), Some(1679315147));
    // Deterministic: the same inputs give the same line.
    assert_eq!(w.cosign(cp, 1679315147).unwrap().to_line(), line);

    // A cosignature over another checkpoint does not verify.
    let other = cp.replace("20852163", "20852164");
    let mut n2 = Note::new(&other).unwrap();
    n2.add_signature(sig.clone()).unwrap();
    assert_eq!(
        v.verify(&n2),
        Err(Error::BadSignature("witness.example/w1".into()))
    );
    // Type confusion: a note key cannot cosign, a cosigning key cannot sign notes.
    assert!(matches!(w.sign_note(cp), Err(Error::WrongKeyType(_))));
    let l = SignerKey::from_seed("example.com/log", KeyType::Ed25519, &[1; 32]).unwrap();
    assert!(matches!(l.cosign(cp, 1), Err(Error::WrongKeyType(_))));
    assert_eq!(w.cosign(cp, u64::MAX), Err(Error::TimestampOutOfRange));
}

#[test]
fn signed_checkpoint_round_trip() {
    let l = SignerKey::from_seed("confide.example/ledger", KeyType::Ed25519, &[3; 32]).unwrap();
    let cp = Checkpoint::new("confide.example/ledger", 5, Hash([1; 32])).unwrap();
    let mut n = Note::new(&cp.to_text()).unwrap();
    n.add_signature(l.sign_note(n.text()).unwrap()).unwrap();
    let parsed = Note::parse(&n.encode()).unwrap();
    l.verifier().verify(&parsed).unwrap();
    assert_eq!(Checkpoint::parse(parsed.text()).unwrap(), cp);
}
