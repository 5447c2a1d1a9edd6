#![allow(clippy::unwrap_used)]
//! `confide release gpu-reference`: NVIDIA's signed RIMs (real files, in
//! `crates/rim/testdata`) into a release manifest's `[gpu_reference]` table, and each bad
//! RIM refused with its own message and a failing exit code.

use std::process::{Command, Output};

use confide_release::LedgerEntry;

fn confide(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_confide"))
        .args(args)
        .output()
        .unwrap()
}

fn rim(name: &str) -> String {
    format!(
        "{}/../crates/rim/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Inside the signing chain's validity.
const AT: &str = "2025-06-01T00:00:00Z";

#[test]
fn driver_and_vbios_rims_become_a_manifest_table() {
    let driver = rim("NV_GPU_DRIVER_GH100_550.144.03.xml");
    let vbios = rim("NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml");
    let out = confide(&["release", "gpu-reference", &driver, &vbios, "--at", AT]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("verified driver RIM GH100 550.144.03"),
        "{err}"
    );
    assert!(
        err.contains("verified VBIOS RIM GH100 96.00.5E.00.01"),
        "{err}"
    );

    // The table drops into a manifest and the manifest is a valid release.
    let manifest = format!(
        "platform = \"tdx\"\nmeasurement = \"{m}\"\nrtmrs = [\"{m}\", \"{m}\", \"{m}\"]\n\
         model_digest = \"{d}\"\nconfig_digest = \"{d}\"\nsource_revision = \"r\"\n\
         build_recipe_digest = \"{d}\"\nnot_before = 1\nnot_after = 2\n{table}",
        m = "ab".repeat(48),
        d = "cd".repeat(32),
    );
    let LedgerEntry::Release(m) = LedgerEntry::from_toml(&manifest).unwrap() else {
        panic!("not a release")
    };
    // The driver RIM's index 7 (0-based) is SPDM block 8, with the value the RIM lists.
    assert_eq!(
        hex::encode(&m.gpu_reference[&8][0]),
        "4a5e4b3d501fe31f91bd8b6f2921b58437704a504dbedba971440e840c938c805612689ae3ac04b1009515a179063d49"
    );
    assert!(m.gpu_reference.len() > 20, "{:?}", m.gpu_reference.keys());
    assert!(m.pins().iter().any(|(n, _)| n == "gpu.8"));
}

#[test]
fn each_bad_rim_is_refused_with_its_reason() {
    for (file, at, needle) in [
        (
            "incorrect_signature_driver_rim.xml",
            AT,
            "SignatureValue does not verify",
        ),
        ("incorrect_cert_chain_driver_rim.xml", AT, "issuer"),
        ("NV_GPU_DRIVER_GH100_570.124.03_expired.xml", AT, "expired"),
        (
            "NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml",
            AT,
            "digest",
        ),
        // The good RIM, judged before its signing certificate existed.
        (
            "NV_GPU_DRIVER_GH100_550.144.03.xml",
            "2000-01-01T00:00:00Z",
            "is not valid before",
        ),
    ] {
        let out = confide(&["release", "gpu-reference", &rim(file), "--at", at]);
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(!out.status.success(), "{file} accepted");
        assert!(out.stdout.is_empty(), "{file}: printed a table");
        assert!(err.contains(&needle.to_lowercase()), "{file}: {err}");
    }
    // Two driver RIMs are not one GPU's driver and VBIOS.
    let d = rim("NV_GPU_DRIVER_GH100_550.144.03.xml");
    let out = confide(&["release", "gpu-reference", &d, &d, "--at", AT]);
    assert!(!out.status.success());
}
