#![allow(clippy::unwrap_used)]
//! Each simulated platform end to end, with real processes: `confide up --platform
//! sim-tdx` runs the node on the TDX twin (DCAP v4 quotes and collateral under a simulated
//! Intel root, verified by the real TDX verifier); the test verifies and summarises
//! through relay and gateway, then shows that a release differing from the node in one
//! TDX register is refused with that register's name. With `--gpu`, on both twins, every
//! node also attests a simulated H100 (SPDM under a simulated NVIDIA root, verified by the
//! real NVIDIA verifier); nodes that behave like a hostile host's GPU are refused, each
//! with its own error.
//!
//! Model: `CONFIDE_MODEL` or `<repo>/models/SmolLM2-135M-Instruct.Q4_1.gguf`.

use std::path::{Path, PathBuf};

mod stack;
use stack::{Up, confide, model, sample_chat, summarize_last, text};

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
        if p.is_dir()
            && let Some(f) = find(&p, name)
        {
            return Some(f);
        }
    }
    None
}

#[test]
fn sim_tdx_end_to_end_and_one_register_off_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let sys = tmp.path().join("sys");
    let up = Up::start_on(&sys, 1, "sim-tdx");
    let cfg = up.config();
    let cfg_s = cfg.to_str().unwrap();

    // verify: the TDX twin, said loudly, with every register compared.
    let out = confide(&["verify", "--config", cfg_s, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["platform"], "simulated-tdx");
    assert_eq!(report["simulated"], true);
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true)
    );
    let measurement = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "measurement")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        measurement.contains("MRTD, RTMR0, RTMR1, RTMR2 compared"),
        "{measurement}"
    );

    // A private summary through relay, gateway and the TDX-twin node.
    let out = summarize_last(cfg_s, &sample_chat(), 3);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).trim().is_empty());

    // The published release pins MRTD and RTMR0..2.
    let release = std::fs::read_to_string(sys.join("node-1/release.toml")).unwrap();
    assert!(
        release.contains("platform = \"simulated-tdx\""),
        "{release}"
    );
    let start = release.find("rtmrs = [").unwrap();
    let line = &release[start..start + release[start..].find('\n').unwrap()];
    let rtmrs: Vec<String> = line
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert_eq!(rtmrs.len(), 3, "{line}");

    // Publish a release identical but for RTMR1, and start a node that must staple it.
    let mut bad = rtmrs.clone();
    bad[1] = format!(
        "{}{}",
        if bad[1].starts_with('0') { "1" } else { "0" },
        &bad[1][1..]
    );
    let bad_release = release
        .replace(
            line,
            &format!("rtmrs = [\"{}\", \"{}\", \"{}\"]", bad[0], bad[1], bad[2]),
        )
        .replace("notes = \"", "notes = \"RTMR1 differs: ");
    let bad_file = tmp.path().join("bad-release.toml");
    std::fs::write(&bad_file, bad_release).unwrap();
    let ledger = up.url("ledger");
    let key = find(&sys, "operator.key").expect("the ledger's operator key");
    let out = confide(&[
        "release",
        "publish",
        bad_file.to_str().unwrap(),
        "--ledger",
        &ledger,
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let published = text(&out.stdout);
    // "index N tree_size M leaf_hash H"
    let index = published.split_whitespace().nth(1).unwrap().to_owned();

    let out = confide(&[
        "node",
        "serve",
        "--dir",
        sys.join("node-1").to_str().unwrap(),
        "--platform",
        "simulated-tdx",
        "--model",
        model().to_str().unwrap(),
        "--sim-vendor",
        sys.join("sim-vendor").to_str().unwrap(),
        "--dev-allow-writable-cwd",
        "--max-tokens",
        "12",
        "--listen",
        "127.0.0.1:0",
        "--ledger",
        &ledger,
        "--release-index",
        &index,
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("RTMR1 is not the value the ledger entry lists"),
        "index {index}: {published}\n{err}"
    );
}

/// `confide verify --json` on a stack whose nodes attest a GPU: every check passes and the
/// report says what was established about the GPU.
fn verify_with_gpu(cfg: &str) {
    let out = confide(&["verify", "--config", cfg, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["passed"] == true), "{report}");
    let detail = |name: &str| {
        checks.iter().find(|c| c["check"] == name).unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let root = detail("hardware-root");
    assert!(
        root.contains("SIMULATED NVIDIA root") && root.contains("CC mode spt"),
        "{root}"
    );
    assert!(root.contains("64 measurement blocks"), "{root}");
    let measurement = detail("measurement");
    assert!(
        measurement.contains("gpu.1") && measurement.contains("gpu.64"),
        "{measurement}"
    );
}

#[test]
fn gpu_twin_end_to_end_on_both_cpu_twins() {
    for platform in ["sim-snp", "sim-tdx"] {
        let tmp = tempfile::tempdir().unwrap();
        let sys = tmp.path().join("sys");
        let up = Up::start_with(&sys, 1, platform, &["--gpu"]);
        let cfg = up.config();
        let cfg_s = cfg.to_str().unwrap();
        verify_with_gpu(cfg_s);
        let out = summarize_last(cfg_s, &sample_chat(), 3);
        assert!(out.status.success(), "{platform}: {}", text(&out.stderr));
        assert!(!text(&out.stdout).trim().is_empty());
        // The release pins the GPU's 64 measurement blocks, and the policy demands a GPU.
        let release = std::fs::read_to_string(sys.join("node-1/release.toml")).unwrap();
        let table = &release[release.find("[gpu_reference]").expect("gpu table")..];
        assert_eq!(table.lines().filter(|l| l.contains(" = [\"")).count(), 64);
        let policy = std::fs::read_to_string(sys.join("trust-policy.toml")).unwrap();
        assert!(policy.contains("require_gpu = true"), "{policy}");
        assert!(policy.contains("simulated_gpu = "), "{policy}");
    }
}

/// A node whose GPU side misbehaves after its honest start-up measurement (a hostile host)
/// is refused by the device before anything private is sent, each case with its own
/// typed error; and nothing reaches the node's engine.
#[test]
fn hostile_gpu_hosts_are_refused_each_with_its_own_error() {
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "sim-snp",
            "gpu-stale-nonce",
            &["SPDM request nonce does not match the expected nonce"],
        ),
        (
            "sim-tdx",
            "gpu-other-certificate",
            &["REPORT_DATA does not bind the GPU evidence digest"],
        ),
        (
            "sim-snp",
            "gpu-cc-off",
            &["GPU confidential-computing mode is unstated"],
        ),
        (
            "sim-tdx",
            "gpu-measurement:5",
            &["gpu.5 is not the value the ledger entry lists"],
        ),
    ];
    for (platform, fault, needles) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let sys = tmp.path().join("sys");
        let up = Up::start_with(&sys, 1, platform, &["--gpu", "--sim-fault", fault]);
        let cfg = up.config();
        let cfg_s = cfg.to_str().unwrap();
        let out = confide(&["verify", "--config", cfg_s]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{platform} {fault}: {err}");
        for n in needles {
            assert!(
                err.contains(n),
                "{platform} {fault}: expected {n:?} in {err}"
            );
        }
        let out = summarize_last(cfg_s, &sample_chat(), 3);
        assert_eq!(
            out.status.code(),
            Some(4),
            "{platform} {fault}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stdout).trim().is_empty());
        let log = std::fs::read_to_string(sys.join("logs/node-1.err.log")).unwrap_or_default();
        assert!(
            !log.contains("\"generation_started\""),
            "{platform} {fault}: {log}"
        );
    }
}
