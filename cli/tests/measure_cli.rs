#![allow(clippy::unwrap_used)]
//! `confide measure snp`: a public vector's launch digest from the command line, the
//! release manifest it prints read back and published to a real ledger (the `confide`
//! binary, on loopback), then revoked (`confide release revoke`) and listed with its
//! reason by `confide monitor`; the JSON form, `confide measure tdx`, and bad inputs
//! refused with their reason and a failing exit code.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use confide_release::{LedgerEntry, Platform};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/sev-snp/measurement/"
);
/// VECTORS.md, test_snp_default: AmdSev OVMF, empty kernel and initrd, this command line,
/// one EPYC-v4 vCPU, guest features 0x21, QEMU.
const DEFAULT_DIGEST: &str = "803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977";

fn confide(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_confide"))
        .args(args)
        .output()
        .unwrap()
}

fn ovmf() -> String {
    format!("{DIR}ovmf_AmdSev_suffix.bin")
}

fn vector_args(ovmf: &str) -> Vec<String> {
    [
        "measure",
        "snp",
        "--ovmf",
        ovmf,
        "--kernel",
        "/dev/null",
        "--initrd",
        "/dev/null",
        "--append",
        "console=ttyS0 loglevel=7",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--guest-features",
        "0x21",
    ]
    .map(String::from)
    .to_vec()
}

fn release_args() -> Vec<String> {
    let (m, c, b) = ("ab".repeat(32), "cd".repeat(32), "ef".repeat(32));
    [
        "--policy",
        "0x30000",
        "--model-digest",
        &m,
        "--config-digest",
        &c,
        "--source-revision",
        "git:measure-test",
        "--build-recipe-digest",
        &b,
        "--not-before",
        "2026-01-01T00:00:00Z",
        "--not-after",
        "1900000000",
    ]
    .map(String::from)
    .to_vec()
}

fn run(args: &[String]) -> Output {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    confide(&a)
}

#[test]
fn measurement_alone_matches_the_vector() {
    let out = run(&vector_args(&ovmf()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("measurement = \"{DEFAULT_DIGEST}\"")),
        "{text}"
    );
}

#[test]
fn json_names_the_inputs_and_the_firmware_sections() {
    let mut args = vector_args(&ovmf());
    args.extend(release_args());
    args.push("--json".into());
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["measurement"], DEFAULT_DIGEST);
    assert_eq!(v["inputs"]["vcpu_type"], "EPYC-v4");
    assert_eq!(v["inputs"]["guest_features"], "0x21");
    let kinds: Vec<&str> = v["ovmf"]["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"kernel-hashes"), "{kinds:?}");
    // The manifest in the JSON is itself a document `release publish` accepts.
    let doc = serde_json::to_string(&v["manifest"]).unwrap();
    let LedgerEntry::Release(m) = LedgerEntry::from_json(&doc).unwrap() else {
        panic!("not a release")
    };
    assert_eq!(hex::encode(&m.measurement), DEFAULT_DIGEST);
}

/// A child process killed and reaped on drop.
struct Proc(Child, std::sync::mpsc::Receiver<String>);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_manifest_publishes_to_a_real_ledger() {
    let mut args = vector_args(&ovmf());
    args.extend(release_args());
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let LedgerEntry::Release(m) = LedgerEntry::from_toml(&text).unwrap() else {
        panic!("not a release")
    };
    assert_eq!(m.platform, Platform::SevSnp);
    assert_eq!(hex::encode(&m.measurement), DEFAULT_DIGEST);
    assert_eq!(m.snp_policy, Some(0x30000));
    assert_eq!(m.not_before, 1_767_225_600);

    let tmp = tempfile::tempdir().unwrap();
    let manifest = tmp.path().join("release.toml");
    std::fs::write(&manifest, &text).unwrap();
    let ldir = tmp.path().join("ledger");
    let mut child = Command::new(env!("CARGO_BIN_EXE_confide"))
        .args([
            "ledger",
            "serve",
            "--dir",
            ldir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--origin",
            "measure.test",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let ledger = Proc(child, rx);
    let mut vkey = String::new();
    let url = loop {
        let l = ledger
            .1
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("ledger did not start");
        if let Some(k) = l.strip_prefix("ledger verifier key:") {
            vkey = k.trim().to_owned();
        }
        if let Some(u) = l.strip_prefix("ledger listening on") {
            break u.trim().to_owned();
        }
    };
    let key = ldir.join("operator.key");
    let out = confide(&[
        "release",
        "publish",
        manifest.to_str().unwrap(),
        "--ledger",
        &url,
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("index 0 tree_size 1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The operator revokes it; an empty reason is refused before anything is sent.
    let revoke = |reason: &str| {
        confide(&[
            "release",
            "revoke",
            "0",
            "--reason",
            reason,
            "--ledger",
            &url,
            "--key",
            key.to_str().unwrap(),
        ])
    };
    let out = revoke("");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reason"));
    let out = revoke("kernel CVE-2026-0001");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("index 1 tree_size 2"));

    // `confide monitor` lists the release, the revocation and its reason.
    let state = tmp.path().join("monitor.state");
    let out = confide(&[
        "monitor",
        "--ledger",
        &url,
        "--state",
        state.to_str().unwrap(),
        "--ledger-key",
        &vkey,
        // This ledger has no witnesses: the monitor trusts its key alone, which it
        // refuses unless told so explicitly.
        "--allow-no-witness-quorum",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "0\trelease\tsev-snp\tmeasurement {DEFAULT_DIGEST}"
        )),
        "{text}"
    );
    assert!(
        text.contains("1\trevocation\tof 0\treason \"kernel CVE-2026-0001\""),
        "{text}"
    );
    assert!(
        text.contains("1 releases, 0 key configs, 1 revocations"),
        "{text}"
    );
}

#[test]
fn bad_inputs_fail_with_their_reason() {
    let x64 = format!("{DIR}ovmf_OvmfX64_suffix.bin");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vector_args(&x64), "no SNP kernel-hashes section"),
        (
            vector_args(&format!("{DIR}VECTORS.md")),
            "not a non-zero multiple of 4096",
        ),
        (
            {
                let mut a = vector_args(&ovmf());
                a.extend([
                    "--policy".into(),
                    "0x30000".into(),
                    "--model-digest".into(),
                    "ab".repeat(32),
                ]);
                a
            },
            "a manifest needs --config-digest",
        ),
        (
            {
                let mut a = vector_args(&ovmf());
                a.extend(release_args().into_iter().skip(2));
                a
            },
            "needs --policy",
        ),
        (
            {
                let mut a = vector_args(&ovmf());
                a[13] = "EPYC-v9".into();
                a
            },
            "unknown vCPU type",
        ),
    ];
    for (args, needle) in cases {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn print_ovmf_hash_gives_the_firmware_digest_alone() {
    let out = confide(&["measure", "snp", "--ovmf", &ovmf(), "--print-ovmf-hash"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The OVMF hash the `sev` crate's tests give for this file (VECTORS.md: 086e2e91...466b74).
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74"
    );
}

/// A synthetic TDVF-shaped image (not a real firmware; `crates/measure/src/tdx.rs`
/// builds the same bytes and checks its MRTD record by record).
const TDVF: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/tdx/measurement/tdvf_synthetic.bin"
);

#[test]
fn tdx_manifest_pins_mrtd_and_each_input_moves_its_register() {
    let tmp = tempfile::tempdir().unwrap();
    let w = |name: &str, data: &[u8]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, data).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let (hob, kernel, kernel2, initrd) = (
        w("hob", b"td hob"),
        w("vmlinuz", b"kernel"),
        w("vmlinuz2", b"kernel 2"),
        w("initrd", b"initrd"),
    );
    let regs = |kernel: &str, append: &str| -> serde_json::Value {
        let out = confide(&[
            "measure",
            "tdx",
            "--tdvf",
            TDVF,
            "--firmware-config",
            &hob,
            "--kernel",
            kernel,
            "--initrd",
            &initrd,
            "--append",
            append,
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let a = regs(&kernel, "console=hvc0");
    assert_eq!(a, regs(&kernel, "console=hvc0"), "same inputs, same output");
    let b = regs(&kernel2, "console=hvc0");
    let c = regs(&kernel, "console=ttyS0");
    assert_eq!(a["mrtd"], b["mrtd"]);
    assert_eq!(a["rtmrs"][0], b["rtmrs"][0]);
    assert_ne!(a["rtmrs"][1], b["rtmrs"][1], "kernel is RTMR1");
    assert_eq!(a["rtmrs"][2], b["rtmrs"][2]);
    assert_eq!(a["rtmrs"][1], c["rtmrs"][1]);
    assert_ne!(a["rtmrs"][2], c["rtmrs"][2], "command line is RTMR2");

    let mut args: Vec<String> = [
        "measure",
        "tdx",
        "--tdvf",
        TDVF,
        "--firmware-config",
        &hob,
        "--kernel",
        &kernel,
        "--initrd",
        &initrd,
        "--append",
        "console=hvc0",
    ]
    .map(String::from)
    .to_vec();
    args.extend(release_args().into_iter().skip(2)); // no --policy on TDX
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let LedgerEntry::Release(m) =
        LedgerEntry::from_toml(&String::from_utf8(out.stdout).unwrap()).unwrap()
    else {
        panic!("not a release")
    };
    assert_eq!(m.platform, Platform::Tdx);
    assert_eq!(hex::encode(&m.measurement), a["mrtd"].as_str().unwrap());
    assert_eq!(hex::encode(&m.rtmrs[2]), a["rtmrs"][2].as_str().unwrap());
    assert!(m.pins().iter().any(|(n, _)| n == "RTMR1"));

    let out = confide(&[
        "measure",
        "tdx",
        "--tdvf",
        &format!("{DIR}ovmf_AmdSev_suffix.bin"),
        "--kernel",
        &kernel,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("TDVF metadata: TDVF section's contents lie outside the image")
    );
}
