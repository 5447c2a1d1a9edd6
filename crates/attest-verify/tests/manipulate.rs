//! One-field tampering of real and simulated evidence: every case must fail closed with the
//! specific typed error that names what was wrong.
//!
//! Real fixtures (SEV-SNP Milan, TDX v4, H100 SPDM) cannot be re-signed, so tampering a signed
//! field of them reaches the signature check. To reach the checks *behind* the signature
//! (debug bit, TCB vs VCEK, chip id, REPORT_DATA, HOST_DATA, freshness...), the simulated
//! vendor re-signs the tampered report, exactly as a compromised-but-genuine firmware would.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use confide_attest::{
    Binding, Error, GpuEvidence, Platform, ReportDataCheck, SnpGeneration, SnpTcbFloor,
    TrustPolicy, UnixTime,
};
use confide_attest_sim::tdx::{self as simtdx, CollateralFields, TdQuoteFields};
use confide_attest_sim::{ReportFields, SimulatedTdxVendor, SimulatedVendor, TdMeasurements};
use confide_attest_verify::{
    CcMode, Evidence, GpuExpectations, NvidiaError, SnpError, TdxError, Verifiers,
};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/");
/// 2025-06-01T00:00:00Z: inside the Milan VCEK's and the NVIDIA chain's validity.
const T0: UnixTime = UnixTime(1_748_736_000);
/// 2025-06-20T00:00:00Z: inside the TDX collateral window.
const T_TDX: UnixTime = UnixTime(1_750_377_600);

fn read(p: &str) -> Vec<u8> {
    std::fs::read(format!("{TESTDATA}{p}")).unwrap()
}

/// Change exactly one thing.
fn manipulate(mut bytes: Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    f(&mut bytes);
    bytes
}

fn snp_fixture() -> Evidence {
    let report =
        confide_attest::input::decode_hex_or_binary(&read("sev-snp/report_milan.hex")).unwrap();
    let mut certs = vec![read("sev-snp/vcek_milan.der")];
    certs.extend(
        confide_attest::input::decode_certificates(&read("sev-snp/cert_chain_milan")).unwrap(),
    );
    Evidence {
        platform: Platform::SevSnp,
        report,
        certs,
        collateral: vec![],
        binding: None,
        gpu: None,
    }
}

fn tdx_fixture() -> Evidence {
    Evidence {
        platform: Platform::Tdx,
        report: read("tdx/tdx_quote"),
        certs: vec![],
        collateral: read("tdx/tdx_quote_collateral.json"),
        binding: None,
        gpu: None,
    }
}

fn gpu_fixture() -> GpuEvidence {
    let spdm =
        confide_attest::input::decode_hex_or_binary(&read("nvidia/hopperAttestationReport.txt"))
            .unwrap();
    let certs =
        confide_attest::input::decode_certificates(&read("nvidia/hopperCertChain.txt")).unwrap();
    GpuEvidence { spdm, certs }
}

/// The second real H100 exchange (attestation SDK, driver r580, feature flag SPT).
fn gpu_fixture_sdk() -> GpuEvidence {
    let spdm = confide_attest::input::decode_hex_or_binary(&read(
        "nvidia/rim/hopperAttestationReport.txt",
    ))
    .unwrap();
    let certs = confide_attest::input::decode_certificates(&read("nvidia/rim/hopperCertChain.txt"))
        .unwrap();
    GpuEvidence { spdm, certs }
}

fn nonce_of(spdm: &[u8]) -> [u8; 32] {
    confide_attest_nvidia::parse_spdm(spdm)
        .unwrap()
        .request_nonce
}

/// One PEM certificate from testdata, as DER.
fn pem(p: &str) -> Vec<u8> {
    let mut v = confide_attest::input::decode_certificates(&read(p)).unwrap();
    assert_eq!(v.len(), 1, "{p}");
    v.remove(0)
}

/// The real Milan report presented with its VCEK alone.
fn snp_vcek_only() -> Evidence {
    snp_with(|e| e.certs.truncate(1))
}

/// The real Milan report with another chain (for the Genoa and Turin paths: no Genoa or
/// Turin report is public, so their chains meet the Milan report and fail where they must).
fn snp_chain(certs: Vec<Vec<u8>>) -> Evidence {
    snp_with(|e| e.certs = certs)
}

/// Reference values equal to every measurement block of a verified exchange.
fn reference_from(spdm: &[u8]) -> std::collections::BTreeMap<u32, Vec<[u8; 48]>> {
    confide_attest_nvidia::parse_spdm(spdm)
        .unwrap()
        .blocks
        .iter()
        .map(|b| {
            (
                u32::from(b.index),
                vec![b.value.as_slice().try_into().unwrap()],
            )
        })
        .collect()
}

fn gpu_expected(
    g: GpuEvidence,
    expect: &GpuExpectations,
    policy: &TrustPolicy,
) -> Result<(), Error> {
    let n = nonce_of(&g.spdm);
    Verifiers::uncached()
        .verify_gpu_expected(&g.spdm, &g.certs, Some(&n), expect, T0, policy)
        .map(|_| ())
}

fn gpu_nonce() -> [u8; 32] {
    confide_attest_nvidia::parse_spdm(&gpu_fixture().spdm)
        .unwrap()
        .request_nonce
}

fn vendor() -> &'static SimulatedVendor {
    static V: OnceLock<SimulatedVendor> = OnceLock::new();
    V.get_or_init(|| SimulatedVendor::generate(&mut rand::rngs::OsRng, T0).unwrap())
}

fn other_vendor() -> &'static SimulatedVendor {
    static V: OnceLock<SimulatedVendor> = OnceLock::new();
    V.get_or_init(|| SimulatedVendor::generate(&mut rand::rngs::OsRng, T0).unwrap())
}

/// The production policy with the Milan TCB floor lowered to the real Milan fixture's TCB
/// (boot loader 3, TEE 0, SNP 8, microcode 115). The fixture was signed in 2023, before the
/// firmware that AMD-SB-3019 requires, so production refuses it (case "snp: production TCB
/// floor"); every other case needs it accepted up to the one thing it tampers with.
fn fixture_policy() -> TrustPolicy {
    let mut p = TrustPolicy::production();
    p.sev_snp.tcb_floors.insert(
        SnpGeneration::Milan,
        SnpTcbFloor {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
            fmc: None,
        },
    );
    p
}

fn sim_policy() -> TrustPolicy {
    let mut p = TrustPolicy::production().with_simulated_root(vendor().root_der().to_vec());
    // The real H100 report these cases bind comes from driver r550, whose signed report
    // states no CC mode. The default policy refuses that (see
    // `gpu_cc_mode_is_judged_by_the_policy`); these cases are about other fields.
    p.gpu_cc_modes.push(confide_attest::GpuCcMode::Unstated);
    p
}

const BINDING: Binding = Binding {
    model_digest: [0x11; 32],
    config_digest: [0x22; 32],
};

/// REPORT_DATA for the simulated node with the real GPU evidence attached.
fn sim_rd(gpu: &GpuEvidence) -> [u8; 64] {
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&gpu_nonce());
    rd[32..].copy_from_slice(&gpu.digest());
    rd
}

/// Simulated evidence (with the real H100 evidence bound), after `tweak` on the signed
/// report bytes and a re-signature by `signer`.
fn sim_evidence_with(
    rd: [u8; 64],
    gpu: Option<GpuEvidence>,
    time: UnixTime,
    signer: &SimulatedVendor,
    tweak: impl FnOnce(&mut Vec<u8>),
) -> Evidence {
    let v = vendor();
    let mut report = v
        .report(&ReportFields {
            report_data: rd,
            measurement: confide_attest_sim::measure_binary(b"confide-node"),
            host_data: confide_attest::binding_digest(
                &BINDING.model_digest,
                &BINDING.config_digest,
            ),
            debug: false,
            now: time,
        })
        .unwrap();
    tweak(&mut report);
    signer.sign_report(&mut report).unwrap();
    Evidence {
        platform: Platform::Simulated,
        report,
        certs: v.chain(),
        collateral: vec![],
        binding: Some(BINDING),
        gpu,
    }
}

fn sim_evidence(tweak: impl FnOnce(&mut Vec<u8>)) -> (Evidence, [u8; 64]) {
    let gpu = gpu_fixture();
    let rd = sim_rd(&gpu);
    (sim_evidence_with(rd, Some(gpu), T0, vendor(), tweak), rd)
}

fn run(
    ev: &Evidence,
    check: ReportDataCheck<'_>,
    now: UnixTime,
    policy: &TrustPolicy,
) -> Result<(), Error> {
    // Also push every case through the wire encoding, as a client receives it.
    let ev = Evidence::decode(&ev.encode())?;
    Verifiers::uncached()
        .verify(&ev, check, now, policy)
        .map(|_| ())
}

fn snp_err(e: &Error) -> Option<&SnpError> {
    e.platform_source::<SnpError>()
}
fn tdx_err(e: &Error) -> Option<&TdxError> {
    e.platform_source::<TdxError>()
}
fn nv_err(e: &Error) -> Option<&NvidiaError> {
    e.platform_source::<NvidiaError>()
}

type Case = (
    &'static str,
    Box<dyn Fn() -> Result<(), Error>>,
    Box<dyn Fn(&Error) -> bool>,
);

macro_rules! case {
    ($cases:ident, $name:literal, $run:expr, $pat:pat) => {
        $cases.push((
            $name,
            Box::new(move || $run),
            Box::new(|e: &Error| matches!(e, $pat)),
        ));
    };
    ($cases:ident, $name:literal, $run:expr, $f:ident, $pat:pat) => {
        $cases.push((
            $name,
            Box::new(move || $run),
            Box::new(|e: &Error| matches!($f(e), Some($pat))),
        ));
    };
}

fn snp_with(f: impl FnOnce(&mut Evidence)) -> Evidence {
    let mut e = snp_fixture();
    f(&mut e);
    e
}

fn tdx_with(f: impl FnOnce(&mut Evidence)) -> Evidence {
    let mut e = tdx_fixture();
    f(&mut e);
    e
}

fn gpu_only(
    spdm: Vec<u8>,
    certs: Vec<Vec<u8>>,
    nonce: [u8; 32],
    now: UnixTime,
    policy: &TrustPolicy,
) -> Result<(), Error> {
    Verifiers::uncached()
        .verify_gpu_only(&spdm, &certs, Some(&nonce), now, policy)
        .map(|_| ())
}

fn flip_last(b: &mut [u8]) {
    if let Some(x) = b.last_mut() {
        *x ^= 1;
    }
}

/// Change one base64 character inside the signature part of the `n`-th PEM certificate.
fn flip_in_pem(b: &mut [u8], n: usize) {
    let marker = b"-----END CERTIFICATE-----";
    let mut found = 0;
    let mut i = 0;
    while i + marker.len() <= b.len() {
        if &b[i..i + marker.len()] == marker {
            if found == n {
                // 10 characters before the END line: inside the signature value.
                let j = i - 10;
                b[j] = if b[j] == b'A' { b'B' } else { b'A' };
                return;
            }
            found += 1;
        }
        i += 1;
    }
    panic!("no PEM certificate {n}");
}

fn tamper_collateral(field: &str, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value =
        serde_json::from_slice(&read("tdx/tdx_quote_collateral.json")).unwrap();
    f(&mut v[field]);
    serde_json::to_vec(&v).unwrap()
}

fn flip_hex_string(v: &mut serde_json::Value) {
    let s = v.as_str().unwrap().to_string();
    let mut b = hex::decode(&s).unwrap();
    b[10] ^= 1;
    *v = serde_json::Value::String(hex::encode(b));
}

#[test]
fn baselines_verify() {
    let p = fixture_policy();
    run(&snp_fixture(), ReportDataCheck::Unchecked, T0, &p).unwrap();
    run(&tdx_fixture(), ReportDataCheck::Unchecked, T_TDX, &p).unwrap();
    let g = gpu_fixture();
    gpu_only(g.spdm, g.certs, gpu_nonce(), T0, &p).unwrap();
    let (ev, rd) = sim_evidence(|_| {});
    let v = Verifiers::uncached()
        .verify(
            &Evidence::decode(&ev.encode()).unwrap(),
            ReportDataCheck::Confide(&rd),
            T0,
            &sim_policy(),
        )
        .unwrap();
    assert!(v.is_simulated() && v.report_data_bound());
    assert_eq!(v.gpu_measurements().unwrap().len(), 64);
    assert_eq!(v.gpu_evidence_digest(), Some(gpu_fixture().digest()));
    assert_eq!(v.model_digest(), Some(BINDING.model_digest));
    assert_eq!(v.gpu_ignored_trailing_bytes(), Some(0));

    // The field shapes this suite also tampers with verify as they are.
    run(&snp_vcek_only(), ReportDataCheck::Unchecked, T0, &p).unwrap();
    let sdk = gpu_fixture_sdk();
    let n = nonce_of(&sdk.spdm);
    gpu_only(sdk.spdm.clone(), sdk.certs.clone(), n, T0, &p).unwrap();
    let expect = GpuExpectations {
        reference: reference_from(&sdk.spdm),
        cc_modes: vec![CcMode::Spt],
    };
    gpu_expected(sdk, &expect, &p).unwrap();
}

/// GPU evidence with bytes after its signature: accepted, the bytes ignored and counted,
/// both on its own and bound into (simulated) CPU evidence, whose REPORT_DATA covers them.
#[test]
fn gpu_trailing_bytes_accepted_and_reported() {
    let p = fixture_policy();
    for g in [gpu_fixture(), gpu_fixture_sdk()] {
        let n = nonce_of(&g.spdm);
        let mut long = g.spdm.clone();
        long.extend_from_slice(&[0u8; 64]);
        let v = Verifiers::uncached()
            .verify_gpu_only(&long, &g.certs, Some(&n), T0, &p)
            .unwrap();
        assert_eq!(v.ignored_trailing_bytes(), 64);
    }
    let mut g = gpu_fixture();
    g.spdm.extend_from_slice(&[0u8; 10]);
    let rd = sim_rd(&g);
    let ev = sim_evidence_with(rd, Some(g), T0, vendor(), |_| {});
    let v = Verifiers::uncached()
        .verify(
            &Evidence::decode(&ev.encode()).unwrap(),
            ReportDataCheck::Confide(&rd),
            T0,
            &sim_policy(),
        )
        .unwrap();
    assert_eq!(v.gpu_ignored_trailing_bytes(), Some(10));
}

#[test]
fn every_one_field_tamper_fails_closed_with_its_typed_error() {
    let prod = fixture_policy;
    let mut cases: Vec<Case> = Vec::new();

    // ---------------- SEV-SNP, real Milan report ----------------
    let unchecked = ReportDataCheck::Unchecked;
    case!(
        cases,
        "snp: signature byte",
        run(&snp_with(|e| e.report[0x2A0] ^= 1), unchecked, T0, &prod()),
        snp_err,
        SnpError::ReportSignature
    );
    case!(
        cases,
        "snp: measurement byte",
        run(&snp_with(|e| e.report[0x90] ^= 1), unchecked, T0, &prod()),
        snp_err,
        SnpError::ReportSignature
    );
    case!(
        cases,
        "snp: REPORT_DATA byte",
        run(&snp_with(|e| e.report[0x50] ^= 1), unchecked, T0, &prod()),
        snp_err,
        SnpError::ReportSignature
    );
    case!(
        cases,
        "snp: version 1",
        run(&snp_with(|e| e.report[0] = 1), unchecked, T0, &prod()),
        snp_err,
        SnpError::UnsupportedVersion(1)
    );
    case!(
        cases,
        "snp: version 6",
        run(&snp_with(|e| e.report[0] = 6), unchecked, T0, &prod()),
        snp_err,
        SnpError::UnsupportedVersion(6)
    );
    case!(
        cases,
        "snp: signature algorithm",
        run(&snp_with(|e| e.report[0x34] = 2), unchecked, T0, &prod()),
        snp_err,
        SnpError::UnsupportedSignatureAlgorithm(2)
    );
    case!(
        cases,
        "snp: reserved byte",
        run(&snp_with(|e| e.report[0x4C] = 1), unchecked, T0, &prod()),
        snp_err,
        SnpError::NonCanonical
    );
    case!(
        cases,
        "snp: truncated report",
        run(
            &snp_with(|e| {
                e.report.pop();
            }),
            unchecked,
            T0,
            &prod()
        ),
        snp_err,
        SnpError::ReportLength(1183)
    );
    case!(
        cases,
        "snp: VCEK signature byte",
        run(
            &snp_with(|e| flip_last(&mut e.certs[0])),
            unchecked,
            T0,
            &prod()
        ),
        snp_err,
        SnpError::VekNotSignedByAsk
    );
    case!(
        cases,
        "snp: VCEK DER garbage",
        run(&snp_with(|e| e.certs[0][1] ^= 0xFF), unchecked, T0, &prod()),
        snp_err,
        SnpError::BadCertificate(_)
    );
    case!(
        cases,
        "snp: ASK signature byte",
        run(
            &snp_with(|e| flip_last(&mut e.certs[1])),
            unchecked,
            T0,
            &prod()
        ),
        snp_err,
        SnpError::AskNotSignedByPinnedArk
    );
    case!(
        cases,
        "snp: ARK replaced by unpinned root",
        run(
            &snp_with(|e| e.certs[2] = vendor().root_der().to_vec()),
            unchecked,
            T0,
            &prod()
        ),
        snp_err,
        SnpError::UntrustedArk
    );
    case!(
        cases,
        "snp: no certificates",
        run(&snp_with(|e| e.certs.clear()), unchecked, T0, &prod()),
        snp_err,
        SnpError::MissingCertificates
    );
    case!(
        cases,
        "snp: four certificates",
        run(
            &snp_with(|e| e.certs.push(e.certs[2].clone())),
            unchecked,
            T0,
            &prod()
        ),
        snp_err,
        SnpError::MissingCertificates
    );

    // ---- SEV-SNP, VCEK alone: pinned Milan ASK and ARK complete the chain ----
    case!(
        cases,
        "snp/vcek-only: signature byte",
        run(
            &snp_with(|e| {
                e.certs.truncate(1);
                e.report[0x2A0] ^= 1;
            }),
            unchecked,
            T0,
            &prod()
        ),
        snp_err,
        SnpError::ReportSignature
    );
    case!(
        cases,
        "snp/vcek-only: VCEK signature byte",
        run(
            &snp_with(|e| {
                e.certs.truncate(1);
                flip_last(&mut e.certs[0]);
            }),
            unchecked,
            T0,
            &prod()
        ),
        snp_err,
        SnpError::NoPinnedAskSignsVek
    );
    case!(
        cases,
        "snp/vcek-only: no ASK pinned",
        run(&snp_vcek_only(), unchecked, T0, &{
            let mut p = prod();
            p.amd_asks.clear();
            p
        }),
        snp_err,
        SnpError::NoPinnedAskSignsVek
    );
    case!(
        cases,
        "snp/vcek-only: Milan ARK unpinned",
        run(&snp_vcek_only(), unchecked, T0, &{
            let mut p = prod();
            p.amd_arks.remove("milan");
            p
        }),
        snp_err,
        SnpError::NoPinnedAskSignsVek
    );
    case!(
        cases,
        "snp/vcek-only: time before validity",
        run(
            &snp_vcek_only(),
            unchecked,
            UnixTime(1_420_070_400),
            &prod()
        ),
        snp_err,
        SnpError::CertificateNotYetValid(_)
    );
    case!(
        cases,
        "snp/vcek-only: SIGNING_KEY says VLEK (ASVK not pinned)",
        run(
            &snp_with(|e| {
                e.certs.truncate(1);
                e.report[0x48] |= 1 << 2;
            }),
            unchecked,
            T0,
            &prod()
        ),
        snp_err,
        SnpError::AsvkRequired
    );

    // ---- SEV-SNP, Genoa path: the Genoa ASK verifies under the pinned Genoa ARK ----
    case!(
        cases,
        "snp/genoa: Genoa ASK does not sign the Milan VCEK",
        run(
            &snp_chain(vec![
                read("sev-snp/vcek_milan.der"),
                pem("sev-snp/genoa_ask.pem")
            ]),
            unchecked,
            T0,
            &prod()
        ),
        snp_err,
        SnpError::VekNotSignedByAsk
    );
    case!(
        cases,
        "snp/genoa: Genoa ARK unpinned",
        run(
            &snp_chain(vec![
                read("sev-snp/vcek_milan.der"),
                pem("sev-snp/genoa_ask.pem")
            ]),
            unchecked,
            T0,
            &{
                let mut p = prod();
                p.amd_arks.remove("genoa");
                p
            }
        ),
        snp_err,
        SnpError::AskNotSignedByPinnedArk
    );
    case!(
        cases,
        "snp/genoa: Genoa ASK presented under the Milan ARK",
        run(
            &snp_chain(vec![
                read("sev-snp/vcek_milan.der"),
                pem("sev-snp/genoa_ask.pem"),
                pem("sev-snp/milan_ark.pem")
            ]),
            unchecked,
            T0,
            &prod()
        ),
        snp_err,
        SnpError::AskNotSignedByPinnedArk
    );
    case!(
        cases,
        "snp/genoa: Genoa ASK signature byte",
        run(
            &snp_chain(vec![read("sev-snp/vcek_milan.der"), {
                let mut a = pem("sev-snp/genoa_ask.pem");
                flip_last(&mut a);
                a
            }]),
            unchecked,
            T0,
            &prod()
        ),
        snp_err,
        SnpError::AskNotSignedByPinnedArk
    );

    // ---- SEV-SNP, Turin path: the real Turin VCEK chains through the Turin ASK/ARK ----
    case!(
        cases,
        "snp/turin: Turin VCEK alone (pinned Turin ASK/ARK) did not sign the report",
        run(
            &snp_chain(vec![read("sev-snp/vcek_turin.der")]),
            unchecked,
            T0,
            &prod()
        ),
        snp_err,
        SnpError::ReportSignature
    );
    case!(
        cases,
        "snp/turin: full Turin chain did not sign the report",
        run(
            &snp_chain(vec![
                read("sev-snp/vcek_turin.der"),
                pem("sev-snp/turin_ask.pem"),
                pem("sev-snp/turin_ark.pem")
            ]),
            unchecked,
            T0,
            &prod()
        ),
        snp_err,
        SnpError::ReportSignature
    );
    case!(
        cases,
        "snp/turin: Turin VCEK under the Milan ASK",
        run(
            &snp_chain(vec![
                read("sev-snp/vcek_turin.der"),
                pem("sev-snp/milan_ask.pem")
            ]),
            unchecked,
            T0,
            &prod()
        ),
        snp_err,
        SnpError::VekNotSignedByAsk
    );
    case!(
        cases,
        "snp/turin: Turin ARK unpinned, ASK supplied",
        run(
            &snp_chain(vec![
                read("sev-snp/vcek_turin.der"),
                pem("sev-snp/turin_ask.pem")
            ]),
            unchecked,
            T0,
            &{
                let mut p = prod();
                p.amd_arks.remove("turin");
                p
            }
        ),
        snp_err,
        SnpError::AskNotSignedByPinnedArk
    );
    case!(
        cases,
        "snp/turin: Turin ARK unpinned, VCEK alone",
        run(
            &snp_chain(vec![read("sev-snp/vcek_turin.der")]),
            unchecked,
            T0,
            &{
                let mut p = prod();
                p.amd_arks.remove("turin");
                p
            }
        ),
        snp_err,
        SnpError::NoPinnedAskSignsVek
    );
    case!(
        cases,
        "snp/turin: Turin VCEK expired",
        run(
            &snp_chain(vec![read("sev-snp/vcek_turin.der")]),
            unchecked,
            UnixTime(2_000_000_000),
            &prod()
        ),
        snp_err,
        SnpError::CertificateExpired(_)
    );
    case!(
        cases,
        "snp: time after validity",
        run(
            &snp_fixture(),
            unchecked,
            UnixTime(4_102_444_800 + 40 * 31_536_000),
            &prod()
        ),
        snp_err,
        SnpError::CertificateExpired(_)
    );
    case!(
        cases,
        "snp: time before validity",
        run(&snp_fixture(), unchecked, UnixTime(1_420_070_400), &prod()),
        snp_err,
        SnpError::CertificateNotYetValid(_)
    );
    case!(
        cases,
        "snp: policy minimum TCB",
        run(&snp_fixture(), unchecked, T0, &{
            let mut p = prod();
            p.sev_snp.min_tcb.snp = 255;
            p
        }),
        snp_err,
        SnpError::TcbBelowMinimum("snp")
    );
    case!(
        cases,
        "snp: production TCB floor (fixture predates AMD-SB-3019)",
        run(&snp_fixture(), unchecked, T0, &TrustPolicy::production()),
        snp_err,
        SnpError::TcbBelowFloor {
            generation: SnpGeneration::Milan,
            component: "bootloader",
            have: 3,
            floor: 4
        }
    );
    case!(
        cases,
        "snp: generation floor above the fixture's SNP SPL",
        run(&snp_fixture(), unchecked, T0, &{
            let mut p = prod();
            p.sev_snp
                .tcb_floors
                .get_mut(&SnpGeneration::Milan)
                .unwrap()
                .snp = 24;
            p
        }),
        snp_err,
        SnpError::TcbBelowFloor {
            component: "snp",
            have: 8,
            floor: 24,
            ..
        }
    );
    case!(
        cases,
        "snp: no floor for the chain's generation",
        run(&snp_fixture(), unchecked, T0, &{
            let mut p = prod();
            p.sev_snp.tcb_floors.clear();
            p
        }),
        snp_err,
        SnpError::NoTcbFloor(SnpGeneration::Milan)
    );
    case!(
        cases,
        "snp: guest policy allows SMT, policy requires it off",
        run(&snp_fixture(), unchecked, T0, &{
            let mut p = prod();
            p.sev_snp.require_smt_disabled = true;
            p
        }),
        snp_err,
        SnpError::SmtAllowed
    );
    case!(
        cases,
        "snp: guest policy ABI below the minimum",
        run(&snp_fixture(), unchecked, T0, &{
            let mut p = prod();
            p.sev_snp.min_guest_abi = (1, 51);
            p
        }),
        snp_err,
        SnpError::GuestAbiBelowMinimum {
            major: 0,
            minor: 0,
            min_major: 1,
            min_minor: 51
        }
    );
    case!(
        cases,
        "snp: wrong nonce",
        run(
            &snp_fixture(),
            ReportDataCheck::Prefix(&[0xAB; 32]),
            T0,
            &prod()
        ),
        Error::ReportDataMismatch
    );
    case!(
        cases,
        "snp: platform not allowed",
        run(&snp_fixture(), unchecked, T0, &{
            let mut p = prod();
            p.allowed_platforms = vec![Platform::Tdx];
            p
        }),
        Error::PlatformNotAllowed(Platform::SevSnp)
    );
    case!(
        cases,
        "snp: real report tagged simulated",
        run(
            &snp_with(|e| e.platform = Platform::Simulated),
            unchecked,
            T0,
            &fixture_policy().with_simulated_root(vendor().root_der().to_vec())
        ),
        Error::PlatformMismatch { .. }
    );

    // ---------------- simulated vendor: checks behind the signature ----------------
    let (ok_ev, rd) = sim_evidence(|_| {});
    let sp = sim_policy;
    let rd2 = rd;
    case!(
        cases,
        "sim: debug policy bit",
        {
            let (e, _) = sim_evidence(|r| r[0x0A] |= 1 << 3);
            run(&e, ReportDataCheck::Confide(&rd2), T0, &sp())
        },
        Error::DebugNotAllowed
    );
    case!(
        cases,
        "sim: VMPL 1",
        {
            let (e, _) = sim_evidence(|r| r[0x30] = 1);
            run(&e, ReportDataCheck::Confide(&rd2), T0, &sp())
        },
        snp_err,
        SnpError::VmplNotZero(1)
    );
    case!(
        cases,
        "sim: VMPL 3",
        {
            let (e, _) = sim_evidence(|r| r[0x30] = 3);
            run(&e, ReportDataCheck::Confide(&rd2), T0, &sp())
        },
        snp_err,
        SnpError::VmplNotZero(3)
    );
    case!(
        cases,
        "sim: MIGRATE_MA policy bit",
        {
            let (e, _) = sim_evidence(|r| r[0x0A] |= 1 << 2);
            run(&e, ReportDataCheck::Confide(&rd2), T0, &sp())
        },
        snp_err,
        SnpError::MigrationAgentAllowed
    );
    case!(
        cases,
        "sim: SMT allowed, policy requires it off",
        {
            let (e, _) = sim_evidence(|_| {});
            run(&e, ReportDataCheck::Confide(&rd2), T0, &{
                let mut p = sp();
                p.sev_snp.require_smt_disabled = true;
                p
            })
        },
        snp_err,
        SnpError::SmtAllowed
    );
    case!(
        cases,
        "sim: REPORTED_TCB vs VCEK",
        {
            let (e, _) = sim_evidence(|r| r[0x186] += 1);
            run(&e, ReportDataCheck::Confide(&rd2), T0, &sp())
        },
        snp_err,
        SnpError::TcbExtensionMismatch("snpSPL")
    );
    case!(
        cases,
        "sim: CHIP_ID",
        {
            let (e, _) = sim_evidence(|r| r[0x1A0] ^= 1);
            run(&e, ReportDataCheck::Confide(&rd2), T0, &sp())
        },
        snp_err,
        SnpError::ChipIdMismatch
    );
    case!(
        cases,
        "sim: REPORT_DATA (key binding)",
        {
            let (e, _) = sim_evidence(|r| r[0x50] ^= 1);
            run(&e, ReportDataCheck::Confide(&rd2), T0, &sp())
        },
        Error::ReportDataMismatch
    );
    case!(
        cases,
        "sim: HOST_DATA (model/config binding)",
        {
            let (e, _) = sim_evidence(|r| r[0xC0] ^= 1);
            run(&e, ReportDataCheck::Confide(&rd2), T0, &sp())
        },
        Error::BindingMismatch
    );
    case!(
        cases,
        "sim: FAMILY_ID marker",
        {
            let (e, _) = sim_evidence(|r| r[0x10] ^= 1);
            run(&e, ReportDataCheck::Confide(&rd2), T0, &sp())
        },
        snp_err,
        SnpError::SimulatedMarkerMissing
    );
    case!(
        cases,
        "sim: MASK_CHIP_KEY",
        {
            let (e, _) = sim_evidence(|r| r[0x48] |= 2);
            run(&e, ReportDataCheck::Confide(&rd2), T0, &sp())
        },
        snp_err,
        SnpError::Unsigned
    );
    case!(
        cases,
        "sim: signed by another vendor",
        {
            let g = gpu_fixture();
            let e = sim_evidence_with(rd2, Some(g), T0, other_vendor(), |_| {});
            run(&e, ReportDataCheck::Confide(&rd2), T0, &sp())
        },
        snp_err,
        SnpError::ReportSignature
    );
    let ok1 = ok_ev.clone();
    case!(
        cases,
        "sim: stale (time outside freshness window)",
        run(
            &ok1,
            ReportDataCheck::Confide(&rd2),
            UnixTime(T0.0 + 3_600),
            &sp()
        ),
        Error::Stale { .. }
    );
    let ok2 = ok_ev.clone();
    case!(
        cases,
        "sim: signed time in the future",
        run(
            &ok2,
            ReportDataCheck::Confide(&rd2),
            UnixTime(T0.0 - 3_600),
            &sp()
        ),
        Error::FromFuture(_)
    );
    let ok3 = ok_ev.clone();
    case!(
        cases,
        "sim: policy does not allow simulated",
        run(&ok3, ReportDataCheck::Confide(&rd2), T0, &prod()),
        Error::SimulatedNotAllowed
    );
    let ok4 = ok_ev.clone();
    case!(
        cases,
        "sim: tagged as real sev-snp",
        run(
            &Evidence {
                platform: Platform::SevSnp,
                ..ok4.clone()
            },
            ReportDataCheck::Confide(&rd2),
            T0,
            &sp()
        ),
        Error::PlatformMismatch { .. }
    );
    let ok5 = ok_ev.clone();
    case!(
        cases,
        "sim: model digest in container",
        run(
            &Evidence {
                binding: Some(Binding {
                    model_digest: [0x99; 32],
                    ..BINDING
                }),
                ..ok5.clone()
            },
            ReportDataCheck::Confide(&rd2),
            T0,
            &sp()
        ),
        Error::BindingMismatch
    );
    let ok6 = ok_ev.clone();
    case!(
        cases,
        "sim: GPU evidence stripped",
        run(
            &Evidence {
                gpu: None,
                ..ok6.clone()
            },
            ReportDataCheck::Confide(&rd2),
            T0,
            &sp()
        ),
        Error::GpuBindingMismatch
    );
    case!(
        cases,
        "sim+gpu: GPU nonce not the TLS key hash",
        {
            let g = gpu_fixture();
            let mut r = sim_rd(&g);
            r[0] ^= 1;
            let e = sim_evidence_with(r, Some(g), T0, vendor(), |_| {});
            run(&e, ReportDataCheck::Confide(&r), T0, &sp())
        },
        nv_err,
        NvidiaError::NonceMismatch
    );
    case!(
        cases,
        "sim+gpu: SPDM measurement tampered (bound)",
        {
            let mut g = gpu_fixture();
            g.spdm[52] ^= 1;
            let r = sim_rd(&g);
            let e = sim_evidence_with(r, Some(g), T0, vendor(), |_| {});
            run(&e, ReportDataCheck::Confide(&r), T0, &sp())
        },
        nv_err,
        NvidiaError::Signature
    );
    case!(
        cases,
        "sim+gpu: trailing bytes changed after binding",
        {
            let mut g = gpu_fixture();
            g.spdm.extend_from_slice(&[0; 8]);
            let r = sim_rd(&g);
            let mut e = sim_evidence_with(r, Some(g), T0, vendor(), |_| {});
            if let Some(g) = e.gpu.as_mut() {
                *g.spdm.last_mut().unwrap() = 1;
            }
            run(&e, ReportDataCheck::Confide(&r), T0, &sp())
        },
        Error::GpuBindingMismatch
    );
    case!(
        cases,
        "sim: policy requires GPU",
        {
            let mut r = [0u8; 64];
            r[..32].copy_from_slice(&[7; 32]);
            let e = sim_evidence_with(r, None, T0, vendor(), |_| {});
            run(&e, ReportDataCheck::Confide(&r), T0, &{
                let mut p = sp();
                p.require_gpu = true;
                p
            })
        },
        Error::GpuEvidenceMissing
    );

    // ---------------- NVIDIA H100, real SPDM ----------------
    let n = gpu_nonce();
    let g = gpu_fixture;
    case!(
        cases,
        "gpu: signature byte",
        gpu_only(
            manipulate(g().spdm, |s| flip_last(s)),
            g().certs,
            n,
            T0,
            &prod()
        ),
        nv_err,
        NvidiaError::Signature
    );
    case!(
        cases,
        "gpu: measurement block",
        gpu_only(
            manipulate(g().spdm, |s| s[52] ^= 1),
            g().certs,
            n,
            T0,
            &prod()
        ),
        nv_err,
        NvidiaError::Signature
    );
    case!(
        cases,
        "gpu: nonce",
        gpu_only(g().spdm, g().certs, [0; 32], T0, &prod()),
        nv_err,
        NvidiaError::NonceMismatch
    );
    case!(
        cases,
        "gpu: request code",
        gpu_only(
            manipulate(g().spdm, |s| s[1] = 0xE1),
            g().certs,
            n,
            T0,
            &prod()
        ),
        nv_err,
        NvidiaError::RequestCode(0xE1)
    );
    case!(
        cases,
        "gpu: SPDM version",
        gpu_only(
            manipulate(g().spdm, |s| s[0] = 0x12),
            g().certs,
            n,
            T0,
            &prod()
        ),
        nv_err,
        NvidiaError::RequestVersion(0x12)
    );
    case!(
        cases,
        "gpu: signature not requested",
        gpu_only(
            manipulate(g().spdm, |s| s[2] = 0),
            g().certs,
            n,
            T0,
            &prod()
        ),
        nv_err,
        NvidiaError::SignatureNotRequested
    );
    case!(
        cases,
        "gpu: response code",
        gpu_only(
            manipulate(g().spdm, |s| s[38] = 0x61),
            g().certs,
            n,
            T0,
            &prod()
        ),
        nv_err,
        NvidiaError::ResponseCode(0x61)
    );
    case!(
        cases,
        "gpu: block count",
        gpu_only(
            manipulate(g().spdm, |s| s[41] -= 1),
            g().certs,
            n,
            T0,
            &prod()
        ),
        nv_err,
        NvidiaError::MeasurementRecord(_)
    );
    case!(
        cases,
        "gpu: signature cut by one byte",
        gpu_only(
            manipulate(g().spdm, |s| {
                s.pop();
            }),
            g().certs,
            n,
            T0,
            &prod()
        ),
        nv_err,
        NvidiaError::Truncated("signature")
    );
    case!(
        cases,
        "gpu: signature cut by one byte, one trailing byte added",
        gpu_only(
            manipulate(g().spdm, |s| {
                s.pop();
                s.push(0);
            }),
            g().certs,
            n,
            T0,
            &prod()
        ),
        nv_err,
        NvidiaError::Signature
    );
    case!(
        cases,
        "gpu: trailing bytes, then a measurement byte",
        gpu_only(
            manipulate(g().spdm, |s| {
                s.extend_from_slice(&[0; 16]);
                s[52] ^= 1;
            }),
            g().certs,
            n,
            T0,
            &prod()
        ),
        nv_err,
        NvidiaError::Signature
    );
    case!(
        cases,
        "gpu: response cut inside OpaqueData",
        gpu_only(
            manipulate(g().spdm, |s| s.truncate(s.len() - 97)),
            g().certs,
            n,
            T0,
            &prod()
        ),
        nv_err,
        NvidiaError::Truncated(_)
    );

    // ---- NVIDIA: reference values and CC mode ----
    let sdk = gpu_fixture_sdk;
    fn expect_sdk() -> GpuExpectations {
        GpuExpectations {
            reference: reference_from(&gpu_fixture_sdk().spdm),
            cc_modes: vec![CcMode::Spt],
        }
    }
    case!(
        cases,
        "gpu/ref: measurement block 7 differs from its reference",
        gpu_expected(
            sdk(),
            &{
                let mut e = expect_sdk();
                e.reference.get_mut(&7).unwrap()[0][0] ^= 1;
                e
            },
            &prod()
        ),
        nv_err,
        NvidiaError::MeasurementMismatch(7)
    );
    case!(
        cases,
        "gpu/ref: another GPU's report against these references",
        gpu_expected(
            g(),
            &GpuExpectations {
                cc_modes: vec![],
                ..expect_sdk()
            },
            &prod()
        ),
        nv_err,
        NvidiaError::MeasurementMismatch(_)
    );
    case!(
        cases,
        "gpu/ref: reference for a block the report lacks",
        gpu_expected(
            sdk(),
            &{
                let mut e = expect_sdk();
                e.reference.insert(65, vec![[0; 48]]);
                e
            },
            &prod()
        ),
        nv_err,
        NvidiaError::MeasurementMissing(65)
    );
    case!(
        cases,
        "gpu/cc: report predates the feature flag, a stated CC mode demanded",
        gpu_expected(
            g(),
            &GpuExpectations {
                reference: Default::default(),
                cc_modes: vec![CcMode::Spt, CcMode::Mpt],
            },
            &prod()
        ),
        nv_err,
        NvidiaError::CcModeNotAccepted(CcMode::Unstated)
    );
    case!(
        cases,
        "gpu/cc: SPT report, only MPT accepted",
        gpu_expected(
            sdk(),
            &GpuExpectations {
                cc_modes: vec![CcMode::Mpt],
                ..expect_sdk()
            },
            &prod()
        ),
        nv_err,
        NvidiaError::CcModeNotAccepted(CcMode::Spt)
    );
    case!(
        cases,
        "gpu/cc: signed feature flag SPT -> PPCIE",
        gpu_expected(
            {
                let mut e = sdk();
                let m = confide_attest_nvidia::parse_spdm(&e.spdm).unwrap();
                e.spdm[m.signed_len - 2] = 2;
                e
            },
            &expect_sdk(),
            &prod()
        ),
        nv_err,
        NvidiaError::Signature
    );
    case!(
        cases,
        "gpu/sdk: the other GPU's device chain",
        gpu_only(sdk().spdm, g().certs, nonce_of(&sdk().spdm), T0, &prod()),
        nv_err,
        NvidiaError::Signature
    );
    case!(
        cases,
        "gpu/sdk: nonce of the other exchange",
        gpu_only(sdk().spdm, sdk().certs, n, T0, &prod()),
        nv_err,
        NvidiaError::NonceMismatch
    );
    case!(
        cases,
        "gpu: leaf certificate",
        gpu_only(
            g().spdm,
            {
                let mut c = g().certs;
                flip_last(&mut c[0]);
                c
            },
            n,
            T0,
            &prod()
        ),
        nv_err,
        NvidiaError::ChainSignature(0)
    );
    case!(
        cases,
        "gpu: intermediate certificate",
        gpu_only(
            g().spdm,
            {
                let mut c = g().certs;
                flip_last(&mut c[2]);
                c
            },
            n,
            T0,
            &prod()
        ),
        nv_err,
        NvidiaError::ChainSignature(2)
    );
    case!(
        cases,
        "gpu: root not pinned",
        gpu_only(g().spdm, g().certs, n, T0, &{
            let mut p = prod();
            p.nvidia_root = Some(vendor().root_der().to_vec());
            p
        }),
        nv_err,
        NvidiaError::UntrustedRoot
    );
    case!(
        cases,
        "gpu: time before validity",
        gpu_only(g().spdm, g().certs, n, UnixTime(1_500_000_000), &prod()),
        nv_err,
        NvidiaError::CertificateNotYetValid(_)
    );

    // ---------------- TDX, real v4 quote with collateral ----------------
    let tp = prod;
    case!(
        cases,
        "tdx: quote header version",
        run(&tdx_with(|e| e.report[0] = 3), unchecked, T_TDX, &tp()),
        tdx_err,
        TdxError::UnsupportedVersion(3)
    );
    case!(
        cases,
        "tdx: TEE type",
        run(&tdx_with(|e| e.report[4] = 0), unchecked, T_TDX, &tp()),
        tdx_err,
        TdxError::NotTdx(0) | TdxError::Parse
    );
    case!(
        cases,
        "tdx: attestation key type",
        run(&tdx_with(|e| e.report[2] = 3), unchecked, T_TDX, &tp()),
        tdx_err,
        TdxError::UnsupportedKeyType(3)
    );
    case!(
        cases,
        "tdx: QE vendor id",
        run(&tdx_with(|e| e.report[12] ^= 1), unchecked, T_TDX, &tp()),
        tdx_err,
        TdxError::UnknownQeVendor
    );
    case!(
        cases,
        "tdx: REPORTDATA",
        run(&tdx_with(|e| e.report[568] ^= 1), unchecked, T_TDX, &tp()),
        tdx_err,
        TdxError::QuoteSignature
    );
    case!(
        cases,
        "tdx: MRTD",
        run(&tdx_with(|e| e.report[184] ^= 1), unchecked, T_TDX, &tp()),
        tdx_err,
        TdxError::QuoteSignature
    );
    case!(
        cases,
        "tdx: quote signature",
        run(&tdx_with(|e| e.report[640] ^= 1), unchecked, T_TDX, &tp()),
        tdx_err,
        TdxError::QuoteSignature
    );
    case!(
        cases,
        "tdx: REPORTDATA nonce",
        run(
            &tdx_fixture(),
            ReportDataCheck::Prefix(&[0; 16]),
            T_TDX,
            &tp()
        ),
        Error::ReportDataMismatch
    );
    case!(
        cases,
        "tdx: TCB Info signature",
        run(
            &tdx_with(|e| e.collateral = tamper_collateral("tcb_info_signature", flip_hex_string)),
            unchecked,
            T_TDX,
            &tp()
        ),
        tdx_err,
        TdxError::TcbInfoSignature
    );
    case!(
        cases,
        "tdx: QE Identity signature",
        run(
            &tdx_with(
                |e| e.collateral = tamper_collateral("qe_identity_signature", flip_hex_string)
            ),
            unchecked,
            T_TDX,
            &tp()
        ),
        tdx_err,
        TdxError::QeIdentitySignature
    );
    case!(
        cases,
        "tdx: collateral nextUpdate date",
        run(
            &tdx_with(|e| e.collateral = tamper_collateral("tcb_info", |v| {
                let s = v.as_str().unwrap().replacen(
                    "\"nextUpdate\":\"2025-07",
                    "\"nextUpdate\":\"2035-07",
                    1,
                );
                *v = serde_json::Value::String(s);
            })),
            unchecked,
            T_TDX,
            &tp()
        ),
        tdx_err,
        TdxError::TcbInfoSignature
    );
    case!(
        cases,
        "tdx: collateral malformed",
        run(
            &tdx_with(|e| e.collateral.truncate(100)),
            unchecked,
            T_TDX,
            &tp()
        ),
        tdx_err,
        TdxError::CollateralMalformed
    );
    case!(
        cases,
        "tdx: time today (expired collateral)",
        run(&tdx_fixture(), unchecked, UnixTime(1_790_000_000), &tp()),
        tdx_err,
        TdxError::CrlExpired
            | TdxError::TcbInfoExpired
            | TdxError::QeIdentityExpired
            | TdxError::CertificateExpired
    );
    case!(
        cases,
        "tdx: TCB status not accepted",
        run(&tdx_fixture(), unchecked, T_TDX, &{
            let mut p = tp();
            p.tdx.accepted_tcb_statuses = vec!["OutOfDate".into()];
            p
        }),
        tdx_err,
        TdxError::TcbStatusNotAccepted(_)
    );
    case!(
        cases,
        "tdx: Intel root not pinned",
        run(&tdx_fixture(), unchecked, T_TDX, &{
            let mut p = tp();
            p.intel_root = p.nvidia_root.clone();
            p
        }),
        tdx_err,
        TdxError::UntrustedChain | TdxError::CrlInvalid | TdxError::CertificateChain
    );

    case!(
        cases,
        "tdx: PCK certificate in the quote",
        run(
            &tdx_with(|e| flip_in_pem(&mut e.report, 0)),
            unchecked,
            T_TDX,
            &tp()
        ),
        tdx_err,
        TdxError::CertificateChain
    );
    case!(
        cases,
        "tdx: TCB Info signing certificate",
        run(
            &tdx_with(
                |e| e.collateral = tamper_collateral("tcb_info_issuer_chain", |v| {
                    let mut b = v.as_str().unwrap().as_bytes().to_vec();
                    flip_in_pem(&mut b, 0);
                    *v = serde_json::Value::String(String::from_utf8(b).unwrap());
                })
            ),
            unchecked,
            T_TDX,
            &tp()
        ),
        tdx_err,
        TdxError::CertificateChain
    );

    // ---------------- container ----------------
    case!(
        cases,
        "container: magic",
        Evidence::decode(&manipulate(snp_fixture().encode(), |b| b[0] = b'X')).map(|_| ()),
        Error::BadMagic
    );
    case!(
        cases,
        "container: GPU-only platform tag",
        Evidence::decode(&manipulate(snp_fixture().encode(), |b| b[5] = 3)).map(|_| ()),
        Error::GpuAsCpuPlatform
    );

    let mut failures = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for (name, f, expect) in &cases {
        match f() {
            Ok(()) => failures.push(format!("{name}: ACCEPTED")),
            Err(e) if expect(&e) => {
                let kind = match e.source_kind() {
                    Some(k) => k,
                    None => format!("{e:?}")
                        .split(['(', ' ', '{'])
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                };
                kinds.insert(kind);
            }
            Err(e) => failures.push(format!("{name}: wrong error {e:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    eprintln!(
        "{} tamper cases, {} distinct error kinds: {kinds:?}",
        cases.len(),
        kinds.len()
    );
    assert!(
        kinds.len() >= 30,
        "only {} distinct kinds: {kinds:?}",
        kinds.len()
    );
}

trait SourceKind {
    fn source_kind(&self) -> Option<String>;
}

impl SourceKind for Error {
    /// "Snp::ReportSignature"-style name of the leaf error variant, if any.
    fn source_kind(&self) -> Option<String> {
        let variant = |d: String| {
            d.split(['(', ' ', '{'])
                .next()
                .unwrap_or_default()
                .to_string()
        };
        if let Some(e) = snp_err(self) {
            return Some(format!("snp::{}", variant(format!("{e:?}"))));
        }
        if let Some(e) = tdx_err(self) {
            return Some(format!("tdx::{}", variant(format!("{e:?}"))));
        }
        nv_err(self).map(|e| format!("nvidia::{}", variant(format!("{e:?}"))))
    }
}

// ---------------- simulated TDX (the real TDX verifier under a simulated Intel root) ----------------

fn tdx_vendor() -> &'static SimulatedTdxVendor {
    static V: OnceLock<SimulatedTdxVendor> = OnceLock::new();
    V.get_or_init(|| SimulatedTdxVendor::generate(T0).unwrap())
}

fn other_tdx_vendor() -> &'static SimulatedTdxVendor {
    static V: OnceLock<SimulatedTdxVendor> = OnceLock::new();
    V.get_or_init(|| SimulatedTdxVendor::generate(T0).unwrap())
}

fn sim_tdx_policy() -> TrustPolicy {
    let mut p = TrustPolicy::production().with_simulated_tdx_root(tdx_vendor().root_der().to_vec());
    // As in `sim_policy`: the bound real H100 report (driver r550) states no CC mode.
    p.gpu_cc_modes.push(confide_attest::GpuCcMode::Unstated);
    p
}

fn sim_tdx_measurements() -> TdMeasurements {
    let mut m = TdMeasurements::from_mr_td(confide_attest_sim::measure_binary(b"confide-node"));
    m.rtmr[1] = [0x51; 48];
    m
}

/// A simulated TDX quote (REPORT_DATA binding the real H100 evidence) made at `time` by
/// `quoter`, after `tweak` on the quote bytes; re-signed by the attestation key when `resign`.
fn sim_tdx_quote(
    quoter: &SimulatedTdxVendor,
    time: UnixTime,
    resign: bool,
    tweak: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut cfg = [0u8; 48];
    cfg[..32].copy_from_slice(&confide_attest::binding_digest(
        &BINDING.model_digest,
        &BINDING.config_digest,
    ));
    let mut q = quoter
        .quote(&TdQuoteFields {
            report_data: sim_rd(&gpu_fixture()),
            measurements: sim_tdx_measurements(),
            mr_config_id: cfg,
            debug: false,
            now: time,
        })
        .unwrap();
    tweak(&mut q);
    if resign {
        quoter.sign_quote(&mut q).unwrap();
    }
    q
}

fn sim_tdx_evidence(quote: Vec<u8>, collateral: Vec<u8>) -> Evidence {
    Evidence {
        platform: Platform::SimulatedTdx,
        report: quote,
        certs: vec![],
        collateral,
        binding: Some(BINDING),
        gpu: Some(gpu_fixture()),
    }
}

/// Simulated TDX evidence at T0 with one change to the quote (`resign`: behind the signature).
fn sim_tdx(resign: bool, tweak: impl FnOnce(&mut Vec<u8>)) -> Evidence {
    sim_tdx_evidence(
        sim_tdx_quote(tdx_vendor(), T0, resign, tweak),
        tdx_vendor().collateral(T0).unwrap(),
    )
}

/// Simulated TDX evidence at T0 with collateral made from `fields`.
fn sim_tdx_coll(f: impl FnOnce(&mut CollateralFields)) -> Evidence {
    let mut fields = CollateralFields::at(T0);
    f(&mut fields);
    sim_tdx_evidence(
        sim_tdx_quote(tdx_vendor(), T0, false, |_| {}),
        tdx_vendor().collateral_with(&fields).unwrap(),
    )
}

/// Simulated TDX evidence at T0 with one collateral JSON field changed (`resign`: the TCB
/// signing key re-signs the changed TCB Info / QE Identity body).
fn sim_tdx_json(field: &'static str, resign: bool, f: impl FnOnce(&mut String)) -> Evidence {
    let mut v: serde_json::Value =
        serde_json::from_slice(&tdx_vendor().collateral(T0).unwrap()).unwrap();
    let mut body = v[field].as_str().unwrap().to_string();
    f(&mut body);
    if resign {
        let sig = tdx_vendor().sign_collateral_body(&body).unwrap();
        v[format!("{field}_signature")] = serde_json::Value::String(hex::encode(sig));
    }
    v[field] = serde_json::Value::String(body);
    let mut ev = sim_tdx(false, |_| {});
    ev.collateral = serde_json::to_vec(&v).unwrap();
    ev
}

fn sim_tdx_run(ev: &Evidence, now: UnixTime, policy: &TrustPolicy) -> Result<(), Error> {
    run(
        ev,
        ReportDataCheck::Confide(&sim_rd(&gpu_fixture())),
        now,
        policy,
    )
}

#[test]
fn simulated_tdx_verifies_through_the_real_tdx_verifier() {
    let ev = Evidence::decode(&sim_tdx(false, |_| {}).encode()).unwrap();
    let v = Verifiers::uncached()
        .verify(
            &ev,
            ReportDataCheck::Confide(&sim_rd(&gpu_fixture())),
            T0,
            &sim_tdx_policy(),
        )
        .unwrap();
    assert!(v.is_simulated() && v.report_data_bound());
    assert_eq!(v.platform(), Platform::SimulatedTdx);
    assert_eq!(v.measurement(), &sim_tdx_measurements().claimed()[..]);
    assert_eq!(v.measurement().len(), 240);
    assert_eq!(v.model_digest(), Some(BINDING.model_digest));
    assert_eq!(v.signed_time(), Some(T0.0));
    assert_eq!(v.gpu_evidence_digest(), Some(gpu_fixture().digest()));
    assert_eq!(v.chip_id(), &tdx_vendor().ppid()[..]);

    // The real Intel fixture is untouched by a simulated TDX root being pinned too: it
    // verifies as real TDX under the Intel root.
    let mut both = sim_tdx_policy();
    both.intel_root = TrustPolicy::production().intel_root;
    let real = Verifiers::uncached()
        .verify(&tdx_fixture(), ReportDataCheck::Unchecked, T_TDX, &both)
        .unwrap();
    assert_eq!(real.platform(), Platform::Tdx);
    assert!(!real.is_simulated());
    assert_eq!(real.signed_time(), None);
}

#[test]
fn simulated_tdx_one_field_tamper_fails_closed_with_its_typed_error() {
    let p = sim_tdx_policy;
    let mut cases: Vec<Case> = Vec::new();

    // ---- the quote, without re-signing: the attestation key's signature ----
    case!(
        cases,
        "sim-tdx: quote signature byte",
        sim_tdx_run(
            &sim_tdx(false, |q| q[simtdx::QUOTE_SIGNATURE + 5] ^= 1),
            T0,
            &p()
        ),
        tdx_err,
        TdxError::QuoteSignature
    );
    case!(
        cases,
        "sim-tdx: MRTD byte",
        sim_tdx_run(&sim_tdx(false, |q| q[simtdx::QUOTE_MR_TD] ^= 1), T0, &p()),
        tdx_err,
        TdxError::QuoteSignature
    );
    // ---- QE report (signed by the PCK) and its binding of the attestation key ----
    case!(
        cases,
        "sim-tdx: QE report signature byte",
        sim_tdx_run(
            &sim_tdx(false, |q| q[simtdx::QUOTE_QE_REPORT_SIGNATURE + 3] ^= 1),
            T0,
            &p()
        ),
        tdx_err,
        TdxError::QeReportSignature
    );
    case!(
        cases,
        "sim-tdx: QE report ISVSVN",
        sim_tdx_run(
            &sim_tdx(false, |q| q[simtdx::QUOTE_QE_REPORT + 258] ^= 1),
            T0,
            &p()
        ),
        tdx_err,
        TdxError::QeReportSignature
    );
    case!(
        cases,
        "sim-tdx: attestation key byte (QE report no longer binds it)",
        sim_tdx_run(
            &sim_tdx(false, |q| q[simtdx::QUOTE_SIGNATURE + 64] ^= 1),
            T0,
            &p()
        ),
        tdx_err,
        TdxError::QeReportBinding
    );
    // ---- PCK chain ----
    case!(
        cases,
        "sim-tdx: PCK certificate signature",
        sim_tdx_run(&sim_tdx(false, |q| flip_in_pem(q, 0)), T0, &p()),
        tdx_err,
        TdxError::CertificateChain
    );
    case!(
        cases,
        // Every simulated Intel uses the same names, so the other vendor's PCK CA chains by
        // name to the pinned root and fails on its signature, as a forged Intel chain would.
        "sim-tdx: PCK chain of another simulated Intel",
        sim_tdx_run(
            &sim_tdx_evidence(
                sim_tdx_quote(other_tdx_vendor(), T0, false, |_| {}),
                tdx_vendor().collateral(T0).unwrap()
            ),
            T0,
            &p()
        ),
        tdx_err,
        TdxError::CertificateChain
    );
    case!(
        cases,
        "sim-tdx: PCK revoked in the PCK CRL",
        sim_tdx_run(&sim_tdx_coll(|f| f.revoke_pck = true), T0, &p()),
        tdx_err,
        TdxError::CertificateRevoked
    );
    // ---- collateral: TCB Info, QE Identity, dates ----
    case!(
        cases,
        "sim-tdx: TCB Info signature",
        sim_tdx_run(
            &{
                let mut ev = sim_tdx(false, |_| {});
                let mut v: serde_json::Value = serde_json::from_slice(&ev.collateral).unwrap();
                flip_hex_string(&mut v["tcb_info_signature"]);
                ev.collateral = serde_json::to_vec(&v).unwrap();
                ev
            },
            T0,
            &p()
        ),
        tdx_err,
        TdxError::TcbInfoSignature
    );
    case!(
        cases,
        "sim-tdx: TCB Info body (status) not re-signed",
        sim_tdx_run(
            &sim_tdx_json("tcb_info", false, |b| *b =
                b.replace("OutOfDate", "UpToDate")),
            T0,
            &p()
        ),
        tdx_err,
        TdxError::TcbInfoSignature
    );
    case!(
        cases,
        "sim-tdx: TCB Info for another FMSPC (re-signed)",
        sim_tdx_run(
            &sim_tdx_json("tcb_info", true, |b| *b =
                b.replace("434653494D00", "B0C06F000000")),
            T0,
            &p()
        ),
        tdx_err,
        TdxError::FmspcMismatch
    );
    case!(
        cases,
        "sim-tdx: QE Identity body not re-signed",
        sim_tdx_run(
            &sim_tdx_json("qe_identity", false, |b| *b =
                b.replace("\"isvprodid\":2", "\"isvprodid\":3")),
            T0,
            &p()
        ),
        tdx_err,
        TdxError::QeIdentitySignature
    );
    case!(
        cases,
        "sim-tdx: QE Identity for another QE MRSIGNER (re-signed)",
        sim_tdx_run(
            &sim_tdx_json("qe_identity", true, |b| {
                let i = b.find("\"mrsigner\":\"").unwrap() + 12;
                b.replace_range(i..i + 64, &"00".repeat(32));
            }),
            T0,
            &p()
        ),
        tdx_err,
        TdxError::QeIdentityMismatch
    );
    case!(
        cases,
        "sim-tdx: TCB Info / QE Identity expired",
        sim_tdx_run(
            &sim_tdx_coll(|f| f.next_update = UnixTime(T0.0 + 60)),
            UnixTime(T0.0 + 120),
            &{
                let mut pol = p();
                pol.freshness_secs = 3600;
                pol
            }
        ),
        tdx_err,
        TdxError::TcbInfoExpired
    );
    case!(
        cases,
        "sim-tdx: collateral issued in the future",
        sim_tdx_run(&sim_tdx_coll(|f| f.issued = UnixTime(T0.0 + 600)), T0, &p()),
        tdx_err,
        TdxError::TcbInfoExpired
    );
    case!(
        cases,
        "sim-tdx: CRLs expired",
        sim_tdx_run(
            &sim_tdx_coll(|f| f.crl_next_update = UnixTime(T0.0 + 60)),
            UnixTime(T0.0 + 120),
            &{
                let mut pol = p();
                pol.freshness_secs = 3600;
                pol
            }
        ),
        tdx_err,
        TdxError::CrlExpired
    );
    // ---- fields behind the signature (re-signed by the simulated QE) ----
    case!(
        cases,
        "sim-tdx: REPORTDATA (re-signed)",
        sim_tdx_run(
            &sim_tdx(true, |q| q[simtdx::QUOTE_REPORT_DATA] ^= 1),
            T0,
            &p()
        ),
        Error::ReportDataMismatch
    );
    case!(
        cases,
        "sim-tdx: TD_ATTRIBUTES.DEBUG (re-signed)",
        sim_tdx_run(
            &sim_tdx(true, |q| q[simtdx::QUOTE_TD_ATTRIBUTES] |= 1),
            T0,
            &p()
        ),
        Error::DebugNotAllowed
    );
    case!(
        cases,
        "sim-tdx: MRCONFIGID (re-signed)",
        sim_tdx_run(
            &sim_tdx(true, |q| q[simtdx::QUOTE_MR_CONFIG_ID] ^= 1),
            T0,
            &p()
        ),
        Error::BindingMismatch
    );
    case!(
        cases,
        "sim-tdx: MROWNER marker (re-signed)",
        sim_tdx_run(&sim_tdx(true, |q| q[simtdx::QUOTE_MR_OWNER] ^= 1), T0, &p()),
        tdx_err,
        TdxError::SimulatedMarkerMissing
    );
    case!(
        cases,
        "sim-tdx: MROWNERCONFIG beyond the time field (re-signed)",
        sim_tdx_run(
            &sim_tdx(true, |q| q[simtdx::QUOTE_MR_OWNER_CONFIG + 8] = 1),
            T0,
            &p()
        ),
        tdx_err,
        TdxError::SimulatedTimeMalformed
    );
    case!(
        cases,
        "sim-tdx: TEE_TCB_SVN below the UpToDate level (re-signed)",
        sim_tdx_run(&sim_tdx(true, |q| q[48 + 2] -= 1), T0, &p()),
        tdx_err,
        TdxError::TcbStatusNotAccepted(_)
    );
    case!(
        cases,
        "sim-tdx: signed time stale",
        sim_tdx_run(
            &sim_tdx_evidence(
                sim_tdx_quote(tdx_vendor(), UnixTime(T0.0 - 1000), false, |_| {}),
                tdx_vendor().collateral(T0).unwrap()
            ),
            T0,
            &p()
        ),
        Error::Stale { .. }
    );
    // ---- policy: simulated allowed, simulated TDX root pinned ----
    case!(
        cases,
        "sim-tdx: production policy (simulated not allowed)",
        sim_tdx_run(&sim_tdx(false, |_| {}), T0, &TrustPolicy::production()),
        Error::SimulatedNotAllowed
    );
    case!(
        cases,
        "sim-tdx: only the simulated SNP root pinned",
        sim_tdx_run(&sim_tdx(false, |_| {}), T0, &{
            let mut pol = sim_policy();
            pol.allowed_platforms.push(Platform::SimulatedTdx);
            pol
        }),
        tdx_err,
        TdxError::NoSimulatedRoot
    );
    case!(
        cases,
        "sim-tdx: allow_simulated off with the root pinned",
        sim_tdx_run(&sim_tdx(false, |_| {}), T0, &{
            let mut pol = p();
            pol.allow_simulated = false;
            pol
        }),
        Error::SimulatedNotAllowed
    );
    case!(
        cases,
        // The root CRL in the collateral does not verify under the pinned root.
        "sim-tdx: another simulated Intel's root pinned",
        sim_tdx_run(
            &sim_tdx(false, |_| {}),
            T0,
            &TrustPolicy::production()
                .with_simulated_tdx_root(other_tdx_vendor().root_der().to_vec())
        ),
        tdx_err,
        TdxError::CrlInvalid
    );
    // ---- container tag vs root: neither kind passes under the other's anchor ----
    case!(
        cases,
        "sim-tdx: simulated quote tagged tdx (Intel root)",
        sim_tdx_run(
            &{
                let mut ev = sim_tdx(false, |_| {});
                ev.platform = Platform::Tdx;
                ev
            },
            T0,
            &p()
        ),
        tdx_err,
        TdxError::CrlInvalid
    );
    case!(
        cases,
        "sim-tdx: real Intel quote tagged simulated-tdx",
        run(
            &tdx_with(|e| e.platform = Platform::SimulatedTdx),
            ReportDataCheck::Unchecked,
            T_TDX,
            &p()
        ),
        tdx_err,
        TdxError::CrlInvalid
    );

    let mut failures = Vec::new();
    for (name, f, expect) in &cases {
        match f() {
            Ok(()) => failures.push(format!("{name}: ACCEPTED")),
            Err(e) if expect(&e) => {}
            Err(e) => failures.push(format!("{name}: wrong error {e:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(cases.len() >= 25, "only {} cases", cases.len());
}

// ---- simulated GPU twin inside simulated SEV-SNP evidence ----

fn gpu_vendor() -> &'static confide_attest_sim::SimulatedGpuVendor {
    static V: OnceLock<confide_attest_sim::SimulatedGpuVendor> = OnceLock::new();
    V.get_or_init(|| confide_attest_sim::SimulatedGpuVendor::generate(T0).unwrap())
}

fn sim_gpu() -> confide_attest_sim::SimulatedGpu {
    confide_attest_sim::SimulatedGpu::with_reference_measurements(gpu_vendor().clone())
}

/// Simulated SNP and simulated GPU roots pinned.
fn sim_gpu_policy() -> TrustPolicy {
    sim_policy().with_simulated_gpu_root(gpu_vendor().root_der().to_vec())
}

/// The RA-TLS key of the simulated node (any DER SPKI bytes: only their hash is used).
const NODE_SPKI: &[u8] = b"simulated node SubjectPublicKeyInfo";

/// Simulated SNP evidence binding simulated GPU evidence made for `gpu_spki`, REPORT_DATA
/// computed as a node does for `NODE_SPKI`, and that REPORT_DATA.
fn sim_with_sim_gpu(
    gpu: &confide_attest_sim::SimulatedGpu,
    gpu_spki: &[u8],
) -> (Evidence, [u8; 64]) {
    let g = gpu.evidence_for_key(gpu_spki).unwrap();
    let rd = confide_attest::report_data(NODE_SPKI, Some(&g));
    (sim_evidence_with(rd, Some(g), T0, vendor(), |_| {}), rd)
}

#[test]
fn simulated_gpu_in_simulated_snp_round_trip() {
    let (ev, rd) = sim_with_sim_gpu(&sim_gpu(), NODE_SPKI);
    let v = Verifiers::uncached()
        .verify(
            &Evidence::decode(&ev.encode()).unwrap(),
            ReportDataCheck::Confide(&rd),
            T0,
            &sim_gpu_policy(),
        )
        .unwrap();
    assert!(v.is_simulated() && v.gpu_simulated());
    assert_eq!(v.platform(), Platform::Simulated);
    assert_eq!(v.gpu_measurements().unwrap().len(), 64);
    assert_eq!(
        v.gpu_evidence_digest(),
        Some(ev.gpu.as_ref().unwrap().digest())
    );
    // The client's side: REPORT_DATA from the container and the certificate key.
    assert_eq!(
        confide_attest_verify::expected_report_data(&ev.encode(), NODE_SPKI).unwrap(),
        rd
    );
    // Real GPU evidence in the same simulated CPU is still not simulated GPU evidence.
    let (real, real_rd) = sim_evidence(|_| {});
    let rv = Verifiers::uncached()
        .verify(
            &real,
            ReportDataCheck::Confide(&real_rd),
            T0,
            &sim_gpu_policy(),
        )
        .unwrap();
    assert!(rv.is_simulated() && !rv.gpu_simulated());
}

#[test]
fn simulated_gpu_reference_values_and_cc_mode() {
    let reference = confide_attest_sim::SimulatedGpu::reference();
    let expect = GpuExpectations {
        reference: reference.clone(),
        cc_modes: vec![CcMode::Spt],
    };
    let p = sim_gpu_policy();
    let check = |gpu: confide_attest_sim::SimulatedGpu| {
        let g = gpu.evidence(&[9; 32]).unwrap();
        Verifiers::uncached()
            .verify_gpu_expected(&g.spdm, &g.certs, Some(&[9; 32]), &expect, T0, &p)
            .map(|v| assert!(v.is_simulated()))
    };
    check(sim_gpu()).unwrap();
    let e = check(sim_gpu().with_measurement(5, [0x55; 48])).unwrap_err();
    assert_eq!(nv_err(&e), Some(&NvidiaError::MeasurementMismatch(5)));
    let e = check(sim_gpu().with_cc_mode(CcMode::Mpt)).unwrap_err();
    assert_eq!(
        nv_err(&e),
        Some(&NvidiaError::CcModeNotAccepted(CcMode::Mpt))
    );
    let e = check(sim_gpu().with_cc_mode(CcMode::Unstated)).unwrap_err();
    assert_eq!(
        nv_err(&e),
        Some(&NvidiaError::CcModeNotAccepted(CcMode::Unstated))
    );
}

#[test]
fn manipulated_simulated_gpu_fails_closed() {
    let mut cases: Vec<Case> = Vec::new();
    case!(
        cases,
        "simgpu: stale nonce (GPU evidence made for another key)",
        {
            let (e, rd) = sim_with_sim_gpu(&sim_gpu(), b"another key");
            run(&e, ReportDataCheck::Confide(&rd), T0, &sim_gpu_policy())
        },
        nv_err,
        NvidiaError::NonceMismatch
    );
    case!(
        cases,
        "simgpu: simulated GPU root not pinned",
        {
            let (e, rd) = sim_with_sim_gpu(&sim_gpu(), NODE_SPKI);
            run(&e, ReportDataCheck::Confide(&rd), T0, &sim_policy())
        },
        nv_err,
        NvidiaError::NoPinnedSimulatedRoot
    );
    case!(
        cases,
        "simgpu: another simulated NVIDIA's root pinned",
        {
            let (e, rd) = sim_with_sim_gpu(&sim_gpu(), NODE_SPKI);
            let other = confide_attest_sim::SimulatedGpuVendor::generate(T0).unwrap();
            let p = sim_policy().with_simulated_gpu_root(other.root_der().to_vec());
            run(&e, ReportDataCheck::Confide(&rd), T0, &p)
        },
        nv_err,
        NvidiaError::UntrustedRoot
    );
    case!(
        cases,
        "simgpu: allow_simulated false",
        {
            let (e, rd) = sim_with_sim_gpu(&sim_gpu(), NODE_SPKI);
            let mut p = sim_gpu_policy();
            p.allow_simulated = false;
            run(&e, ReportDataCheck::Confide(&rd), T0, &p)
        },
        Error::SimulatedNotAllowed
    );
    case!(
        cases,
        "simgpu: allow_simulated false, GPU alone",
        {
            let g = sim_gpu().evidence(&[2; 32]).unwrap();
            let mut p = sim_gpu_policy();
            p.allow_simulated = false;
            gpu_only(g.spdm, g.certs, [2; 32], T0, &p)
        },
        nv_err,
        NvidiaError::SimulatedNotAllowed
    );
    case!(
        cases,
        "simgpu: SPDM measurement tampered after signing (bound)",
        {
            let mut g = sim_gpu().evidence_for_key(NODE_SPKI).unwrap();
            g.spdm[52] ^= 1;
            let rd = confide_attest::report_data(NODE_SPKI, Some(&g));
            let e = sim_evidence_with(rd, Some(g), T0, vendor(), |_| {});
            run(&e, ReportDataCheck::Confide(&rd), T0, &sim_gpu_policy())
        },
        nv_err,
        NvidiaError::Signature
    );
    case!(
        cases,
        "simgpu: device certificate swapped for another simulated GPU's",
        {
            let other = confide_attest_sim::SimulatedGpuVendor::generate(T0).unwrap();
            let mut g = sim_gpu().evidence_for_key(NODE_SPKI).unwrap();
            g.certs[0] = other.chain()[0].clone();
            let rd = confide_attest::report_data(NODE_SPKI, Some(&g));
            let e = sim_evidence_with(rd, Some(g), T0, vendor(), |_| {});
            run(&e, ReportDataCheck::Confide(&rd), T0, &sim_gpu_policy())
        },
        nv_err,
        NvidiaError::ChainSignature(0)
    );
    case!(
        cases,
        "simgpu: GPU evidence replaced after the CPU bound it",
        {
            let (mut e, rd) = sim_with_sim_gpu(&sim_gpu(), NODE_SPKI);
            e.gpu = Some(sim_gpu().evidence_for_key(NODE_SPKI).unwrap());
            run(&e, ReportDataCheck::Confide(&rd), T0, &sim_gpu_policy())
        },
        Error::GpuBindingMismatch
    );
    let mut failures = Vec::new();
    for (name, f, ok) in &cases {
        match f() {
            Ok(()) => failures.push(format!("{name}: accepted")),
            Err(e) if !ok(&e) => failures.push(format!("{name}: wrong error {e:?}")),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A simulated GPU inside a hardware CPU report is refused with its own typed error. No real
/// SEV-SNP report can bind a fresh GPU digest (the fixtures' REPORT_DATA is fixed), so the
/// hardware CPU is stood in for by the real SNP verifier run on a simulated report whose
/// claims are then labelled `sev-snp`: everything after the CPU leaf is the real judge and
/// the real NVIDIA verifier.
#[test]
fn simulated_gpu_refused_inside_hardware_cpu() {
    struct AsHardware(confide_attest_snp::SnpVerifier);
    impl confide_attest::PlatformVerifier for AsHardware {
        fn handles(&self, p: Platform) -> bool {
            p == Platform::SevSnp
        }
        fn verify_platform(
            &self,
            evidence: &Evidence,
            policy: &TrustPolicy,
            now: UnixTime,
        ) -> Result<confide_attest::PlatformClaims, confide_attest::PlatformError> {
            let mut sim = evidence.clone();
            sim.platform = Platform::Simulated;
            let mut c = self.0.verify_platform(&sim, policy, now)?;
            c.platform = Platform::SevSnp;
            c.signed_time = None;
            Ok(c)
        }
    }
    let (mut ev, rd) = sim_with_sim_gpu(&sim_gpu(), NODE_SPKI);
    ev.platform = Platform::SevSnp;
    let nvidia = confide_attest_verify::NvidiaVerifier::new();
    let judge = |policy: &TrustPolicy| {
        confide_attest::verify_with(
            &AsHardware(confide_attest_snp::SnpVerifier::new()),
            Some(&nvidia),
            &ev,
            &rd,
            T0,
            policy,
        )
    };
    let p = sim_gpu_policy();
    assert!(matches!(
        judge(&p),
        Err(Error::SimulatedGpuWithHardwareCpu(Platform::SevSnp))
    ));
    // With the real GPU evidence instead, the same stand-in is accepted: the refusal is
    // about the simulated GPU, not the stand-in.
    let (mut real, real_rd) = sim_evidence(|_| {});
    real.platform = Platform::SevSnp;
    let v = confide_attest::verify_with(
        &AsHardware(confide_attest_snp::SnpVerifier::new()),
        Some(&nvidia),
        &real,
        &real_rd,
        T0,
        &p,
    )
    .unwrap();
    assert!(!v.is_simulated());
}

/// The GPU's CC mode is the policy's to judge: by default only CC on (SPT, MPT, PPCIE); a
/// report that states no mode (a GPU with CC off, or an old driver) is refused with its own
/// error, as is a mode the policy leaves out.
#[test]
fn gpu_cc_mode_is_judged_by_the_policy() {
    use confide_attest::GpuCcMode;
    let on_only = || {
        let mut p = sim_gpu_policy();
        p.gpu_cc_modes = GpuCcMode::ON.to_vec();
        p
    };
    let verify = |gpu: confide_attest_sim::SimulatedGpu, policy: &TrustPolicy| {
        let (ev, rd) = sim_with_sim_gpu(&gpu, NODE_SPKI);
        Verifiers::uncached().verify(
            &Evidence::decode(&ev.encode()).unwrap(),
            ReportDataCheck::Confide(&rd),
            T0,
            policy,
        )
    };
    let v = verify(sim_gpu(), &on_only()).unwrap();
    assert_eq!(v.gpu_cc_mode(), Some(GpuCcMode::Spt));
    assert!(matches!(
        verify(sim_gpu().with_cc_mode(CcMode::Unstated), &on_only()),
        Err(Error::GpuCcModeNotAccepted(GpuCcMode::Unstated))
    ));
    let mut spt_only = on_only();
    spt_only.gpu_cc_modes = vec![GpuCcMode::Spt];
    assert!(matches!(
        verify(sim_gpu().with_cc_mode(CcMode::Mpt), &spt_only),
        Err(Error::GpuCcModeNotAccepted(GpuCcMode::Mpt))
    ));
    // The real r550 report (no CC mode stated) inside simulated CPU evidence, default policy.
    let (ev, rd) = sim_evidence(|_| {});
    let mut p = sim_policy();
    p.gpu_cc_modes = GpuCcMode::ON.to_vec();
    assert!(matches!(
        run(&ev, ReportDataCheck::Confide(&rd), T0, &p),
        Err(Error::GpuCcModeNotAccepted(GpuCcMode::Unstated))
    ));
    // A feature flag NVIDIA does not define is refused by the GPU verifier itself.
    let e = verify(sim_gpu().with_feature_flag(Some(7)), &on_only()).unwrap_err();
    assert_eq!(nv_err(&e), Some(&NvidiaError::UnknownFeatureFlag(7)));
}
