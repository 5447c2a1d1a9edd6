//! `match_release`: evidence registers against a ledger entry's pins, one failure at a
//! time, each naming the register or group that differs.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use confide_ratls::rustls::pki_types::UnixTime;
use confide_ratls::{
    CheckpointRef, EvidenceClaims, LedgerEntryClaims, Pin, RatlsError, Register, match_release,
};

fn reg(name: &str, byte: u8, must_be_pinned: bool) -> Register {
    Register {
        name: name.into(),
        value: vec![byte; 48],
        must_be_pinned,
    }
}

fn pin(name: &str, bytes: &[u8]) -> Pin {
    Pin {
        name: name.into(),
        accepted: bytes.iter().map(|b| vec![*b; 48]).collect(),
    }
}

/// TDX-shaped evidence with a GPU: MRTD, RTMR0..3 (RTMR3 optional), gpu.1 and gpu.2.
fn evidence() -> EvidenceClaims {
    EvidenceClaims {
        platform: "tdx".into(),
        measurement: vec![0; 240],
        registers: vec![
            reg("MRTD", 1, true),
            reg("RTMR0", 2, true),
            reg("RTMR1", 3, true),
            reg("RTMR2", 4, true),
            reg("RTMR3", 5, false),
            reg("gpu.1", 0x61, false),
            reg("gpu.2", 0x62, false),
        ],
        model_digest: Some(vec![7; 32]),
        config_digest: Some(vec![8; 32]),
        report_data: [0; 64],
        collected_at: None,
    }
}

fn entry() -> LedgerEntryClaims {
    LedgerEntryClaims {
        platform: "tdx".into(),
        measurement: vec![1; 48],
        pins: vec![
            pin("MRTD", &[1]),
            pin("RTMR0", &[2]),
            pin("RTMR1", &[3]),
            pin("RTMR2", &[4]),
            // Two accepted values, as a GPU reference manifest lists alternatives.
            pin("gpu.2", &[0x52, 0x62]),
        ],
        model_digest: Some(vec![7; 32]),
        config_digest: Some(vec![8; 32]),
        valid_from: UnixTime::since_unix_epoch(Duration::from_secs(0)),
        valid_until: None,
        index: 3,
        checkpoint: CheckpointRef {
            origin: "o".into(),
            size: 4,
            root_hash: [0; 32],
        },
    }
}

fn named(e: RatlsError) -> String {
    match e {
        RatlsError::MeasurementNotListed { register }
        | RatlsError::RegisterNotAttested { register }
        | RatlsError::RegisterNotPinned { register } => register,
        RatlsError::RegisterGroupNotPinned { group } => group,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn every_pinned_register_matches() {
    match_release(&evidence(), &entry()).unwrap();
    // RTMR3 pinned too, with the right value.
    let mut e = entry();
    e.pins.push(pin("RTMR3", &[5]));
    match_release(&evidence(), &e).unwrap();
}

#[test]
fn each_register_that_differs_is_named() {
    for (i, name) in ["MRTD", "RTMR0", "RTMR1", "RTMR2", "gpu.2"]
        .into_iter()
        .enumerate()
    {
        let mut ev = evidence();
        let r = ev.registers.iter_mut().find(|r| r.name == name).unwrap();
        r.value[47] ^= 1;
        let err = match_release(&ev, &entry()).unwrap_err();
        assert!(
            matches!(err, RatlsError::MeasurementNotListed { .. }),
            "{i}: {err:?}"
        );
        assert_eq!(named(err), name);
    }
    let mut e = entry();
    e.pins.push(pin("RTMR3", &[9]));
    assert_eq!(named(match_release(&evidence(), &e).unwrap_err()), "RTMR3");
}

#[test]
fn pins_and_registers_must_cover_each_other() {
    // A pinned register the evidence lacks.
    let mut ev = evidence();
    ev.registers.retain(|r| r.name != "RTMR2");
    let err = match_release(&ev, &entry()).unwrap_err();
    assert!(matches!(err, RatlsError::RegisterNotAttested { .. }));
    assert_eq!(named(err), "RTMR2");
    // A register every release must pin, left out.
    let mut e = entry();
    e.pins.retain(|p| p.name != "RTMR1");
    let err = match_release(&evidence(), &e).unwrap_err();
    assert!(matches!(err, RatlsError::RegisterNotPinned { .. }));
    assert_eq!(named(err), "RTMR1");
    // GPU measurements with no GPU reference in the release.
    let mut e = entry();
    e.pins.retain(|p| !p.name.starts_with("gpu."));
    let err = match_release(&evidence(), &e).unwrap_err();
    assert!(matches!(err, RatlsError::RegisterGroupNotPinned { .. }));
    assert_eq!(named(err), "gpu");
    // A GPU reference, and no GPU evidence at all.
    let mut ev = evidence();
    ev.registers.retain(|r| !r.name.starts_with("gpu."));
    assert!(matches!(
        match_release(&ev, &entry()).unwrap_err(),
        RatlsError::RegisterNotAttested { register } if register == "gpu.2"
    ));
    // An entry that pins nothing.
    let mut e = entry();
    e.pins.clear();
    assert!(matches!(
        match_release(&evidence(), &e).unwrap_err(),
        RatlsError::NothingPinned
    ));
}

#[test]
fn platform_and_digests_still_decide() {
    let mut e = entry();
    e.platform = "sev-snp".into();
    assert!(matches!(
        match_release(&evidence(), &e).unwrap_err(),
        RatlsError::PlatformMismatch
    ));
    let mut e = entry();
    e.model_digest = Some(vec![0; 32]);
    assert!(matches!(
        match_release(&evidence(), &e).unwrap_err(),
        RatlsError::ModelDigestMismatch
    ));
    let mut e = entry();
    e.config_digest = Some(vec![0; 32]);
    assert!(matches!(
        match_release(&evidence(), &e).unwrap_err(),
        RatlsError::ConfigDigestMismatch
    ));
}
