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

/// The production policy as `confide evidence policy` prints it, with the Milan TCB floor
/// lowered to the real Milan fixture's TCB (boot loader 3, TEE 0, SNP 8, microcode 115): the
/// fixture was signed in 2023, before the firmware AMD-SB-3019 requires, so production refuses
/// it (`sev_snp_fixture_is_below_the_production_floor`).
fn fixture_policy(dir: &std::path::Path) -> String {
    let o = confide(&["evidence", "policy"]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    let head = "[sev_snp.tcb_floor.milan]\n";
    let cut = text.find(head).unwrap() + head.len();
    let end = text[cut..].find("\n[").map_or(text.len(), |i| cut + i + 1);
    let text = format!(
        "{}bootloader = 3\ntee = 0\nsnp = 8\nmicrocode = 115\n{}",
        &text[..cut],
        &text[end..]
    );
    let pol = dir.join("fixture-policy.toml");
    std::fs::write(&pol, text).unwrap();
    pol.to_str().unwrap().to_string()
}

/// Without a lowered floor, the production policy refuses the 2023 Milan report and names the
/// first component below AMD-SB-3019's floor.
#[test]
fn sev_snp_fixture_is_below_the_production_floor() {
    let o = confide(&[
        "evidence",
        "verify",
        "--platform",
        "sev-snp",
        "--evidence",
        &f("sev-snp/report_milan.hex"),
        "--certs",
        &f("sev-snp/vcek_milan.der"),
        "--at",
        "2025-06-01T00:00:00Z",
    ]);
    assert_rejected(&o, "REPORTED_TCB bootloader is 3, below the milan floor 4");
}

#[test]
fn sev_snp_fixture_verifies_from_hex_der_and_pem_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let pol = fixture_policy(dir.path());
    let o = confide(&[
        "evidence",
        "verify",
        "--policy",
        &pol,
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

/// The real Milan report with nothing but its VCEK: the bundled Milan ASK and ARK complete
/// the chain, and the output is the same as with the full chain.
#[test]
fn sev_snp_report_with_only_its_vcek_verifies() {
    let fdir = tempfile::tempdir().unwrap();
    let fpol = fixture_policy(fdir.path());
    let args = |extra: &[&str]| {
        let mut v = vec![
            "evidence".to_string(),
            "verify".into(),
            "--platform".into(),
            "sev-snp".into(),
            "--evidence".into(),
            f("sev-snp/report_milan.hex"),
            "--certs".into(),
            f("sev-snp/vcek_milan.der"),
            "--at".into(),
            "2025-06-01T00:00:00Z".into(),
        ];
        // `--policy` given in `extra` replaces the fixture policy (the last one wins).
        if !extra.contains(&"--policy") {
            v.extend(["--policy".to_string(), fpol.clone()]);
        }
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |a: Vec<String>| confide(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let o = run(args(&[]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("verified: sev-snp\n"), "{out}");
    assert!(out.contains("report version: 2\n"), "{out}");
    assert!(out.contains("measurement: 7a1e5c266c01"), "{out}");
    let full = run({
        let mut a = args(&[]);
        a.extend(["--certs".to_string(), f("sev-snp/cert_chain_milan")]);
        a
    });
    assert!(full.status.success(), "{}", stderr(&full));
    assert_eq!(stdout(&full), out);
    let o = run(args(&["--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["verified"], true);
    assert_eq!(j["platform"], "sev-snp");
    assert_eq!(j["simulated"], false);
    assert_eq!(j["chip_id"].as_str().unwrap().len(), 128);

    // A policy that pins no ASK needs the ASK in the evidence, and says so.
    let dir = tempfile::tempdir().unwrap();
    let pol = dir.path().join("policy.toml");
    let o = confide(&["evidence", "policy"]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    let cut = text.find("[roots.amd_ask]").unwrap();
    let end = text[cut..].find("\n[").map_or(text.len(), |i| cut + i);
    std::fs::write(
        &pol,
        format!("{}[roots.amd_ask]\n{}", &text[..cut], &text[end..]),
    )
    .unwrap();
    let o = run(args(&["--policy", pol.to_str().unwrap()]));
    assert_rejected(&o, "no pinned ASK signs the VCEK");
}

#[test]
fn sev_snp_wrong_nonce_and_time_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let pol = fixture_policy(dir.path());
    let base = [
        "evidence",
        "verify",
        "--policy",
        &pol,
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

/// The second real H100 exchange (NVIDIA's attestation SDK test data) verifies with its own
/// nonce and states SPT; bytes after a complete signed response are accepted and reported.
#[test]
fn nvidia_second_exchange_and_trailing_bytes() {
    let nonce = "5bb22e377702d4e1e8215a903ba094826b9ac7f731dee1fe8102958bf2840aca";
    let verify = |evidence: &str, json: bool| {
        let mut a = vec![
            "evidence",
            "verify",
            "--platform",
            "nvidia",
            "--evidence",
            evidence,
            "--certs",
        ];
        let certs = f("nvidia/rim/hopperCertChain.txt");
        a.push(&certs);
        a.extend(["--nonce", nonce]);
        if json {
            a.push("--json");
        }
        confide(&a)
    };
    let report = f("nvidia/rim/hopperAttestationReport.txt");
    let o = verify(&report, false);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("cc mode (signed feature flag): SPT\n"),
        "{out}"
    );
    assert!(!out.contains("ignored:"), "{out}");
    assert_eq!(out.matches("measurement[").count(), 64, "{out}");

    // The same exchange as NVML's 8 KiB buffer would hand it over: zero padding after it.
    let dir = tempfile::tempdir().unwrap();
    let padded = dir.path().join("padded.hex");
    let mut hex_text = std::fs::read_to_string(&report).unwrap().trim().to_string();
    let pad = 0x2000 - hex_text.len() / 2;
    hex_text.push_str(&"00".repeat(pad));
    std::fs::write(&padded, hex_text).unwrap();
    let o = verify(padded.to_str().unwrap(), false);
    assert!(o.status.success(), "{}", stderr(&o));
    let out2 = stdout(&o);
    assert!(
        out2.contains(&format!(
            "ignored: {pad} bytes after the signed SPDM response (not signed, not read)\n"
        )),
        "{out2}"
    );
    let o = verify(padded.to_str().unwrap(), true);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["ignored_trailing_bytes"], pad);
    assert_eq!(j["cc_mode"], "SPT");

    // Cut one byte off the signature instead: refused, and the error names the signature.
    let cut = dir.path().join("cut.hex");
    let text = std::fs::read_to_string(&report).unwrap();
    let text = text.trim();
    std::fs::write(&cut, &text[..text.len() - 2]).unwrap();
    assert_rejected(&verify(cut.to_str().unwrap(), false), "signature");
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
