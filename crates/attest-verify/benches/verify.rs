//! Verification time per platform, cold (every certificate chain checked) and with the
//! chain cached, reported also as a ratio to a baseline measured in the same run: one bare
//! ECDSA P-384/SHA-384 verification of the SNP report (the irreducible cost of any check).
//!
//! `cargo bench -p confide-attest-verify --bench verify`
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use confide_attest::{Evidence, GpuEvidence, Platform, ReportDataCheck, TrustPolicy, UnixTime};
use confide_attest_sim::{ReportFields, SimulatedVendor};
use confide_attest_verify::Verifiers;
use criterion::Criterion;
use der::Decode;
use p384::ecdsa::signature::Verifier as _;

const T: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/");
const T0: UnixTime = UnixTime(1_748_736_000);
const T_TDX: UnixTime = UnixTime(1_750_377_600);

fn read(p: &str) -> Vec<u8> {
    std::fs::read(format!("{T}{p}")).unwrap()
}

struct Fixtures {
    snp: Evidence,
    tdx: Evidence,
    gpu: GpuEvidence,
    sim: Evidence,
    sim_policy: TrustPolicy,
    bare_key: p384::ecdsa::VerifyingKey,
    bare_sig: p384::ecdsa::Signature,
}

fn fixtures() -> Fixtures {
    let report =
        confide_attest::input::decode_hex_or_binary(&read("sev-snp/report_milan.hex")).unwrap();
    let vcek = read("sev-snp/vcek_milan.der");
    let mut certs = vec![vcek.clone()];
    certs.extend(
        confide_attest::input::decode_certificates(&read("sev-snp/cert_chain_milan")).unwrap(),
    );
    let cert = x509_cert::Certificate::from_der(&vcek).unwrap();
    let bare_key = p384::ecdsa::VerifyingKey::from_sec1_bytes(
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )
    .unwrap();
    // AMD stores R and S little-endian in 72-byte fields.
    let mut rs = [0u8; 96];
    for i in 0..48 {
        rs[47 - i] = report[0x2A0 + i];
        rs[95 - i] = report[0x2A0 + 72 + i];
    }
    let bare_sig = p384::ecdsa::Signature::from_slice(&rs).unwrap();
    let snp = Evidence {
        platform: Platform::SevSnp,
        report,
        certs,
        collateral: vec![],
        binding: None,
        gpu: None,
    };
    let tdx = Evidence {
        platform: Platform::Tdx,
        report: read("tdx/tdx_quote"),
        certs: vec![],
        collateral: read("tdx/tdx_quote_collateral.json"),
        binding: None,
        gpu: None,
    };
    let gpu = GpuEvidence {
        spdm: confide_attest::input::decode_hex_or_binary(&read(
            "nvidia/hopperAttestationReport.txt",
        ))
        .unwrap(),
        certs: confide_attest::input::decode_certificates(&read("nvidia/hopperCertChain.txt"))
            .unwrap(),
    };
    let vendor = SimulatedVendor::generate(&mut rand::rngs::OsRng, T0).unwrap();
    let sim_report = vendor
        .report(&ReportFields {
            report_data: [0; 64],
            measurement: [1; 48],
            host_data: confide_attest::binding_digest(&[2; 32], &[3; 32]),
            debug: false,
            now: T0,
        })
        .unwrap();
    let sim = Evidence {
        platform: Platform::Simulated,
        report: sim_report,
        certs: vendor.chain(),
        collateral: vec![],
        binding: Some(confide_attest::Binding {
            model_digest: [2; 32],
            config_digest: [3; 32],
        }),
        gpu: None,
    };
    let sim_policy = TrustPolicy::production().with_simulated_root(vendor.root_der().to_vec());
    Fixtures {
        snp,
        tdx,
        gpu,
        sim,
        sim_policy,
        bare_key,
        bare_sig,
    }
}

type Job<'a> = (&'static str, Box<dyn Fn() + 'a>);

fn jobs(f: &Fixtures) -> Vec<Job<'_>> {
    let prod = TrustPolicy::production();
    let cached = Verifiers::cached();
    let rd0 = [0u8; 64];
    let p1 = prod.clone();
    let p2 = prod.clone();
    let p3 = prod.clone();
    let p4 = prod.clone();
    let p5 = prod.clone();
    let cached = std::sync::Arc::new(cached);
    let (c1, c2, c3) = (cached.clone(), cached.clone(), cached.clone());
    vec![
        (
            "baseline: bare P-384 verify of the SNP report",
            Box::new(move || {
                f.bare_key
                    .verify(black_box(&f.snp.report[..0x2A0]), &f.bare_sig)
                    .unwrap()
            }),
        ),
        (
            "sev-snp cold",
            Box::new(move || {
                Verifiers::uncached()
                    .verify(black_box(&f.snp), ReportDataCheck::Unchecked, T0, &p1)
                    .unwrap();
            }),
        ),
        (
            "sev-snp cached chain",
            Box::new(move || {
                c1.verify(black_box(&f.snp), ReportDataCheck::Unchecked, T0, &p2)
                    .unwrap();
            }),
        ),
        (
            "tdx cold (collateral verified every time)",
            Box::new(move || {
                Verifiers::uncached()
                    .verify(black_box(&f.tdx), ReportDataCheck::Unchecked, T_TDX, &p3)
                    .unwrap();
            }),
        ),
        (
            "nvidia cold",
            Box::new(move || {
                Verifiers::uncached()
                    .verify_gpu_only(&f.gpu.spdm, &f.gpu.certs, None, T0, &p4)
                    .unwrap();
            }),
        ),
        (
            "nvidia cached chain",
            Box::new(move || {
                c2.verify_gpu_only(&f.gpu.spdm, &f.gpu.certs, None, T0, &p5)
                    .unwrap();
            }),
        ),
        (
            "simulated cold",
            Box::new(move || {
                Verifiers::uncached()
                    .verify(&f.sim, ReportDataCheck::Confide(&rd0), T0, &f.sim_policy)
                    .unwrap();
            }),
        ),
        (
            "simulated cached chain",
            Box::new(move || {
                c3.verify(&f.sim, ReportDataCheck::Confide(&rd0), T0, &f.sim_policy)
                    .unwrap();
            }),
        ),
    ]
}

/// Median of `n` timed runs (after a warm-up), in microseconds.
fn median_us(job: &dyn Fn(), n: usize) -> f64 {
    for _ in 0..3 {
        job();
    }
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            job();
            t.elapsed()
        })
        .collect();
    v.sort();
    v[n / 2].as_secs_f64() * 1e6
}

fn main() {
    let f = fixtures();
    let js = jobs(&f);

    // Ratio table, measured in this run on this machine.
    let n = std::env::var("CONFIDE_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(51);
    let times: Vec<(&str, f64)> = js
        .iter()
        .map(|(name, j)| (*name, median_us(j, n)))
        .collect();
    let base = times[0].1;
    println!("\n| case | median (µs) | × baseline |\n|---|---:|---:|");
    for (name, t) in &times {
        println!("| {name} | {t:.1} | {:.1} |", t / base);
    }
    println!();

    // Criterion statistics for the same jobs.
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut g = c.benchmark_group("attest");
    for (name, j) in &js {
        g.bench_function(*name, |b| b.iter(j));
    }
    g.finish();
    c.final_summary();
}
