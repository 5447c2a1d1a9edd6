//! Real hardware evidence through the pipeline's register layout and the release
//! comparison: the Intel TDX v4 quote in `testdata/tdx` (verified by the real DCAP
//! verifier at a time inside its collateral window) and the AMD Milan report.
//!
//! A release listing the quote's registers is accepted; one that differs in any single
//! register is refused, naming that register.
#![allow(clippy::unwrap_used)]

use confide_attest::{Evidence, Platform, ReportDataCheck, TrustPolicy, UnixTime};
use confide_attest_verify::Verifiers;
use confide_ratls::{CheckpointRef, EvidenceClaims, RatlsError};
use confide_release::{Platform as LedgerPlatform, ReleaseManifest};
use confide_verify::{manifest_claims, match_release, registers};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/");
/// 2025-06-20T00:00:00Z: inside the TDX collateral window.
const T_TDX: UnixTime = UnixTime(1_750_377_600);
/// 2025-06-01: inside the Milan chain's validity.
const T_SNP: UnixTime = UnixTime(1_748_736_000);

fn read(p: &str) -> Vec<u8> {
    std::fs::read(format!("{TESTDATA}{p}")).unwrap()
}

fn tdx_quote() -> Evidence {
    Evidence {
        platform: Platform::Tdx,
        report: read("tdx/tdx_quote"),
        certs: vec![],
        collateral: read("tdx/tdx_quote_collateral.json"),
        binding: None,
        gpu: None,
    }
}

/// Verified by the real verifier, then turned into claims with the pipeline's layout.
/// (A foreign quote: no Confide REPORT_DATA or binding, so those are not checked here.)
fn verified_claims(ev: &Evidence, now: UnixTime) -> EvidenceClaims {
    let mut policy = TrustPolicy::production();
    policy.allowed_platforms = vec![ev.platform];
    // The Milan fixture (signed 2023) predates the firmware AMD-SB-3019 requires: lower the
    // Milan floor to its TCB so that the pins, not the floor, are what this test judges.
    policy.sev_snp.tcb_floors.insert(
        confide_attest::SnpGeneration::Milan,
        confide_attest::SnpTcbFloor {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
            fmc: None,
        },
    );
    let v = Verifiers::uncached()
        .verify(ev, ReportDataCheck::Unchecked, now, &policy)
        .unwrap();
    let regs = registers(ev.platform.name(), &ev.report, None).unwrap();
    EvidenceClaims {
        platform: v.platform().name().into(),
        measurement: v.measurement().to_vec(),
        registers: regs,
        model_digest: Some(vec![0x11; 32]),
        config_digest: Some(vec![0x33; 32]),
        report_data: *v.report_data(),
        collected_at: None,
    }
}

fn value<'a>(c: &'a EvidenceClaims, name: &str) -> &'a [u8] {
    &c.registers.iter().find(|r| r.name == name).unwrap().value
}

fn release(platform: LedgerPlatform, measurement: &[u8]) -> ReleaseManifest {
    ReleaseManifest {
        platform,
        measurement: measurement.to_vec(),
        snp_policy: None,
        rtmrs: Vec::new(),
        gpu_reference: Default::default(),
        model_digest: [0x11; 32],
        config_digest: [0x33; 32],
        source_revision: "test".into(),
        build_recipe_digest: [0x22; 32],
        not_before: 0,
        not_after: u64::MAX / 2,
        notes: String::new(),
    }
}

fn check(claims: &EvidenceClaims, m: &ReleaseManifest) -> Result<(), RatlsError> {
    m.validate().unwrap();
    let cp = CheckpointRef {
        origin: "o".into(),
        size: 1,
        root_hash: [0; 32],
    };
    match_release(claims, &manifest_claims(m, 0, cp))
}

#[test]
fn real_tdx_quote_against_a_release_register_by_register() {
    let c = verified_claims(&tdx_quote(), T_TDX);
    // The layout agrees with the verifier's own MRTD‖RTMR0..3.
    let names: Vec<&str> = c.registers.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["MRTD", "RTMR0", "RTMR1", "RTMR2", "RTMR3"]);
    let joined: Vec<u8> = c.registers.iter().flat_map(|r| r.value.clone()).collect();
    assert_eq!(joined, c.measurement);

    let mut good = release(LedgerPlatform::Tdx, value(&c, "MRTD"));
    good.rtmrs = ["RTMR0", "RTMR1", "RTMR2"]
        .iter()
        .map(|n| value(&c, n).to_vec())
        .collect();
    check(&c, &good).unwrap();
    // RTMR3 pinned as well.
    let mut with3 = good.clone();
    with3.rtmrs.push(value(&c, "RTMR3").to_vec());
    check(&c, &with3).unwrap();

    // Any single register changed: refused, and the error names it.
    for (i, name) in ["MRTD", "RTMR0", "RTMR1", "RTMR2", "RTMR3"]
        .iter()
        .enumerate()
    {
        let mut bad = with3.clone();
        if i == 0 {
            bad.measurement[0] ^= 1;
        } else {
            bad.rtmrs[i - 1][47] ^= 1;
        }
        match check(&c, &bad) {
            Err(RatlsError::MeasurementNotListed { register }) => assert_eq!(register, *name),
            other => panic!("{name}: {other:?}"),
        }
    }
    // A release for another platform.
    let mut snp = release(LedgerPlatform::SevSnp, value(&c, "MRTD"));
    snp.snp_policy = Some(0x30000);
    assert!(matches!(check(&c, &snp), Err(RatlsError::PlatformMismatch)));
}

#[test]
fn real_tdx_quote_fields_sit_where_the_layout_says() {
    // Independently of the pipeline: MRTD is 48 bytes at quote offset 184 (header 48 +
    // TD report body offset 136), REPORTDATA at 568.
    let ev = tdx_quote();
    let c = verified_claims(&ev, T_TDX);
    assert_eq!(value(&c, "MRTD"), &ev.report[184..232]);
    assert_eq!(&c.report_data[..], &ev.report[568..632]);
    assert_eq!(
        confide_verify::signed_report_data(&ev).unwrap(),
        c.report_data
    );
    // A quote cut short inside RTMR2 has no registers, with a typed error.
    match registers("tdx", &ev.report[..500], None) {
        Err(confide_verify::Error::ShortReport { field, .. }) => assert_eq!(field, "RTMR2"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn real_milan_report_pins_measurement_and_guest_policy() {
    let report =
        confide_attest::input::decode_hex_or_binary(&read("sev-snp/report_milan.hex")).unwrap();
    let mut certs = vec![read("sev-snp/vcek_milan.der")];
    certs.extend(
        confide_attest::input::decode_certificates(&read("sev-snp/cert_chain_milan")).unwrap(),
    );
    let ev = Evidence {
        platform: Platform::SevSnp,
        report,
        certs,
        collateral: vec![],
        binding: None,
        gpu: None,
    };
    let c = verified_claims(&ev, T_SNP);
    let policy = u64::from_le_bytes(value(&c, "POLICY").try_into().unwrap());
    let mut good = release(LedgerPlatform::SevSnp, value(&c, "MEASUREMENT"));
    good.snp_policy = Some(policy);
    check(&c, &good).unwrap();
    // The same measurement under another guest policy (say, debug allowed: bit 19).
    let mut other = good.clone();
    other.snp_policy = Some(policy ^ (1 << 19));
    match check(&c, &other) {
        Err(RatlsError::MeasurementNotListed { register }) => assert_eq!(register, "POLICY"),
        other => panic!("{other:?}"),
    }
    let mut m = good.clone();
    m.measurement[5] ^= 1;
    match check(&c, &m) {
        Err(RatlsError::MeasurementNotListed { register }) => assert_eq!(register, "MEASUREMENT"),
        other => panic!("{other:?}"),
    }
}
