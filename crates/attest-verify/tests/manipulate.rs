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
    Binding, Error, GpuEvidence, Platform, ReportDataCheck, TrustPolicy, UnixTime,
};
use confide_attest_sim::{ReportFields, SimulatedVendor};
use confide_attest_verify::{Evidence, NvidiaError, SnpError, TdxError, Verifiers};

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

fn sim_policy() -> TrustPolicy {
    TrustPolicy::production().with_simulated_root(vendor().root_der().to_vec())
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
    let p = TrustPolicy::production();
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
}

#[test]
fn every_one_field_tamper_fails_closed_with_its_typed_error() {
    let prod = TrustPolicy::production;
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
        "snp: missing ASK",
        run(&snp_with(|e| e.certs.truncate(1)), unchecked, T0, &prod()),
        snp_err,
        SnpError::MissingCertificates
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
            &sim_policy()
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
        "gpu: trailing byte",
        gpu_only(
            manipulate(g().spdm, |s| s.push(0)),
            g().certs,
            n,
            T0,
            &prod()
        ),
        nv_err,
        NvidiaError::TrailingBytes(1)
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
