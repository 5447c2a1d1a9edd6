//! `confide evidence ...` end to end, on the real fixtures as they are.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

const T: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/");

fn confide(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_confide"))
        .args(args)
        .output()
        .unwrap()
}

fn f(p: &str) -> String {
    format!("{T}{p}")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Rejections are one line starting with `error:` and a non-zero exit.
fn assert_rejected(o: &Output, needle: &str) {
    assert!(!o.status.success(), "accepted: {}", stdout(o));
    let e = stderr(o);
    // The simulated-platform warning may precede the one error line.
    let lines: Vec<&str> = e
        .lines()
        .filter(|l| !l.starts_with("WARNING: SIMULATED ATTESTATION"))
        .collect();
    assert_eq!(lines.len(), 1, "{e}");
    assert!(lines[0].starts_with("error: "), "{e}");
    assert!(lines[0].contains(needle), "{e}");
}

#[test]
fn sev_snp_fixture_verifies_from_hex_der_and_pem_bundle() {
    let o = confide(&[
        "evidence",
        "verify",
        "--platform",
        "sev-snp",
        "--evidence",
        &f("sev-snp/report_milan.hex"),
        "--certs",
        &f("sev-snp/vcek_milan.der"),
        "--certs",
        &f("sev-snp/cert_chain_milan"),
        "--at",
        "2025-06-01T00:00:00Z",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("verified: sev-snp"), "{out}");
    assert!(out.contains("measurement: 7a1e5c266c01"), "{out}");
}

#[test]
fn sev_snp_wrong_nonce_and_time_rejected() {
    let base = [
        "evidence",
        "verify",
        "--platform",
        "sev-snp",
        "--evidence",
        &f("sev-snp/report_milan.hex"),
        "--certs",
        &f("sev-snp/vcek_milan.der"),
        "--certs",
        &f("sev-snp/cert_chain_milan"),
    ];
    let mut a = base.to_vec();
    a.extend(["--at", "2025-06-01T00:00:00Z", "--nonce", "00112233"]);
    assert_rejected(&confide(&a), "REPORT_DATA");
    let mut a = base.to_vec();
    a.extend(["--at", "2014-01-01T00:00:00Z"]);
    assert_rejected(&confide(&a), "not yet valid");
}

#[test]
fn tdx_fixture_verifies_in_window_and_reports_expiry_today() {
    let args = |at: Option<&'static str>| {
        let mut v = vec![
            "evidence".to_string(),
            "verify".into(),
            "--platform".into(),
            "tdx".into(),
            "--evidence".into(),
            f("tdx/tdx_quote"),
            "--collateral".into(),
            f("tdx/tdx_quote_collateral.json"),
            "--json".into(),
        ];
        if let Some(at) = at {
            v.extend(["--at".to_string(), at.to_string()]);
        }
        v
    };
    let a = args(Some("2025-06-20T00:00:00Z"));
    let o = confide(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["platform"], "tdx");
    assert_eq!(j["measurement"].as_str().unwrap().len(), 480);
    assert!(j["tcb"].as_str().unwrap().contains("UpToDate"));
    let a = args(None);
    assert_rejected(
        &confide(&a.iter().map(String::as_str).collect::<Vec<_>>()),
        "CRL",
    );
}

#[test]
fn nvidia_fixture_verifies_with_its_nonce() {
    let o = confide(&[
        "evidence",
        "verify",
        "--platform",
        "nvidia",
        "--evidence",
        &f("nvidia/hopperAttestationReport.txt"),
        "--certs",
        &f("nvidia/hopperCertChain.txt"),
        "--nonce",
        "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("measurement[2]: 8048dfd18fe229bf"));
    let o = confide(&[
        "evidence",
        "verify",
        "--platform",
        "nvidia",
        "--evidence",
        &f("nvidia/hopperAttestationReport.txt"),
        "--certs",
        &f("nvidia/hopperCertChain.txt"),
        "--nonce",
        &"00".repeat(32),
    ]);
    assert_rejected(&o, "nonce");
}

#[test]
fn simulated_roundtrip_needs_the_named_root_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let vendor = dir.path().join("vendor");
    let ev = dir.path().join("ev.bin");
    let (vd, evp) = (vendor.to_str().unwrap(), ev.to_str().unwrap());
    let rd = "ab".repeat(32) + &"00".repeat(32);
    let o = confide(&[
        "evidence",
        "simulate",
        "--vendor-dir",
        vd,
        "--out",
        evp,
        "--report-data",
        &rd,
        "--model-digest",
        &"11".repeat(32),
        "--config-digest",
        &"22".repeat(32),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("SIMULATED"));

    // Production policy: rejected.
    let o = confide(&[
        "evidence",
        "verify",
        "--platform",
        "simulated",
        "--evidence",
        evp,
        "--nonce",
        &rd,
    ]);
    assert_rejected(&o, "simulated evidence is not allowed");

    // Naming the simulated vendor's root: accepted, with a loud warning.
    let o = confide(&[
        "evidence",
        "verify",
        "--platform",
        "simulated",
        "--evidence",
        evp,
        "--nonce",
        &rd,
        "--simulated-vendor",
        vd,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("WARNING: SIMULATED ATTESTATION"));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["simulated"], true);
    assert_eq!(j["model_digest"], "11".repeat(32));

    // Same via a policy file printed by `confide evidence policy`.
    let o = confide(&["evidence", "policy", "--simulated-vendor", vd]);
    assert!(o.status.success());
    let pol = dir.path().join("policy.toml");
    std::fs::write(&pol, &o.stdout).unwrap();
    let o = confide(&[
        "evidence",
        "verify",
        "--platform",
        "simulated",
        "--evidence",
        evp,
        "--nonce",
        &rd,
        "--policy",
        pol.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Claimed as real SEV-SNP: the container says simulated, so it is refused.
    let o = confide(&[
        "evidence",
        "verify",
        "--platform",
        "sev-snp",
        "--evidence",
        evp,
    ]);
    assert_rejected(&o, "not sev-snp");
}
