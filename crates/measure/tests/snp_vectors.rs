#![allow(clippy::unwrap_used)]
//! Every SEV-SNP launch-digest case in `testdata/sev-snp/measurement/VECTORS.md` (the
//! `sev` crate's own test cases: two edk2 OVMF builds, with and without a directly
//! booted kernel, one and four vCPUs, QEMU and EC2, guest features 0x1 and 0x21), read
//! from the table itself so that no case can be left out, plus the refusals our types
//! add in front of that crate.

use std::path::PathBuf;

use confide_measure::Error;
use confide_measure::snp::{SnpInputs, VcpuType, Vmm, launch_digest, ovmf_hash};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/sev-snp/measurement/"
);

/// The AmdSev file's OVMF hash as the `sev` tests give it (VECTORS.md abbreviates it as
/// 086e2e91...466b74); `computed_ovmf_hash_is_the_given_one` recomputes it.
const GIVEN_OVMF_HASH: &str = "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74";

struct Case {
    name: String,
    inputs: SnpInputs,
    hash_mode: String,
    expected: String,
}

/// `Some("x".into())` / `Some("x")` / `None` from the table.
fn option_str(cell: &str) -> Option<String> {
    if cell == "None" {
        return None;
    }
    let inner = cell
        .strip_prefix("Some(\"")
        .unwrap_or_else(|| panic!("cell {cell}"));
    Some(inner.split('"').next().unwrap().to_owned())
}

/// `CpuType::EpycV4` -> our model.
fn vcpu_type(cell: &str) -> VcpuType {
    let name = cell.strip_prefix("CpuType::").unwrap();
    // The `sev` variant names are QEMU's model names in camel case.
    let qemu = match name {
        "EpycV4" => "EPYC-v4",
        "EpycMilan" => "EPYC-Milan",
        "EpycGenoa" => "EPYC-Genoa",
        "Epyc" => "EPYC",
        other => panic!("add {other} to the test's table"),
    };
    qemu.parse().unwrap()
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(format!("{DIR}VECTORS.md")).unwrap();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("| test_")) {
        let c: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(c.len(), 11, "{line}");
        let features = c[4]
            .strip_prefix("GuestFeatures(0x")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap();
        let vmm = match c[9] {
            "None" => Vmm::Qemu, // the `sev` crate's default
            "Some(VMMType::QEMU)" => Vmm::Qemu,
            "Some(VMMType::EC2)" => Vmm::Ec2,
            other => panic!("vmm {other}"),
        };
        out.push(Case {
            name: c[0].to_owned(),
            inputs: SnpInputs {
                ovmf: PathBuf::from(format!("{DIR}{}", c[3])),
                ovmf_hash: None,
                kernel: option_str(c[5]).map(PathBuf::from),
                initrd: option_str(c[6]).map(PathBuf::from),
                cmdline: option_str(c[7]),
                vcpus: c[1].parse().unwrap(),
                vcpu_type: vcpu_type(c[2]),
                guest_features: u64::from_str_radix(features, 16).unwrap(),
                vmm,
            },
            hash_mode: c[8].to_owned(),
            expected: c[10].to_owned(),
        });
    }
    out
}

#[test]
fn every_vector_reproduces() {
    let cases = cases();
    assert_eq!(cases.len(), 14, "VECTORS.md lists 14 cases");
    for mut case in cases {
        match case.hash_mode.as_str() {
            "given" => case.inputs.ovmf_hash = Some(hex_48(GIVEN_OVMF_HASH)),
            "computed" => case.inputs.ovmf_hash = Some(ovmf_hash(&case.inputs.ovmf).unwrap()),
            "no" => {}
            other => panic!("{}: ovmf hash mode {other}", case.name),
        }
        let m = launch_digest(&case.inputs).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(hex::encode(m.launch_digest), case.expected, "{}", case.name);
    }
}

#[test]
fn computed_ovmf_hash_is_the_given_one() {
    let h = hex::encode(ovmf_hash(&PathBuf::from(format!("{DIR}ovmf_AmdSev_suffix.bin"))).unwrap());
    assert_eq!(h, GIVEN_OVMF_HASH);
    assert!(h.starts_with("086e2e91") && h.ends_with("466b74"));
}

fn hex_48(s: &str) -> [u8; 48] {
    confide_measure::parse_hex("test", s).unwrap()
}

fn base() -> SnpInputs {
    SnpInputs {
        ovmf: PathBuf::from(format!("{DIR}ovmf_AmdSev_suffix.bin")),
        ovmf_hash: None,
        kernel: Some("/dev/null".into()),
        initrd: Some("/dev/null".into()),
        cmdline: Some("console=ttyS0".into()),
        vcpus: 2,
        vcpu_type: VcpuType::EpycMilan,
        guest_features: 0x1,
        vmm: Vmm::Qemu,
    }
}

#[test]
fn every_input_changes_the_digest() {
    let d = |i: &SnpInputs| launch_digest(i).unwrap().launch_digest;
    let reference = d(&base());
    assert_eq!(reference, d(&base()), "same inputs, same digest");

    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("vmlinuz");
    std::fs::write(&kernel, b"not the empty kernel").unwrap();

    let variants: Vec<(&str, SnpInputs)> = vec![
        (
            "kernel",
            SnpInputs {
                kernel: Some(kernel.clone()),
                ..base()
            },
        ),
        (
            "initrd",
            SnpInputs {
                initrd: Some(kernel),
                ..base()
            },
        ),
        (
            "cmdline",
            SnpInputs {
                cmdline: Some("console=ttyS1".into()),
                ..base()
            },
        ),
        (
            "no cmdline",
            SnpInputs {
                cmdline: None,
                ..base()
            },
        ),
        ("vcpus", SnpInputs { vcpus: 3, ..base() }),
        (
            "vcpu type",
            SnpInputs {
                vcpu_type: VcpuType::EpycGenoa,
                ..base()
            },
        ),
        (
            "features",
            SnpInputs {
                guest_features: 0x21,
                ..base()
            },
        ),
        (
            "vmm",
            SnpInputs {
                vmm: Vmm::Ec2,
                ..base()
            },
        ),
        (
            "ovmf hash",
            SnpInputs {
                ovmf_hash: Some([7; 48]),
                ..base()
            },
        ),
    ];
    for (what, v) in variants {
        assert_ne!(
            d(&v),
            reference,
            "changing the {what} must change the digest"
        );
    }
}

#[test]
fn inputs_no_launch_could_have_are_refused_by_name() {
    let err = |i: SnpInputs| launch_digest(&i).unwrap_err();
    assert!(matches!(
        err(SnpInputs { vcpus: 0, ..base() }),
        Error::Vcpus { got: 0, .. }
    ));
    assert!(matches!(
        err(SnpInputs {
            guest_features: 0x20,
            ..base()
        }),
        Error::GuestFeatures { .. }
    ));
    assert!(matches!(
        err(SnpInputs {
            guest_features: 1 << 40 | 1,
            ..base()
        }),
        Error::GuestFeatures { .. }
    ));
    assert!(matches!(
        err(SnpInputs {
            kernel: None,
            cmdline: None,
            ..base()
        }),
        Error::WithoutKernel("an initrd")
    ));
    assert!(matches!(
        err(SnpInputs {
            kernel: None,
            initrd: None,
            ..base()
        }),
        Error::WithoutKernel("a command line")
    ));
    assert!(matches!(
        err(SnpInputs {
            cmdline: Some(" console=ttyS0".into()),
            ..base()
        }),
        Error::CommandLine(_)
    ));
    // OvmfX64 has no kernel-hashes page: it cannot measure a directly booted kernel.
    assert!(matches!(
        err(SnpInputs {
            ovmf: format!("{DIR}ovmf_OvmfX64_suffix.bin").into(),
            ..base()
        }),
        Error::OvmfNoKernelHashes
    ));
    assert!(matches!(
        err(SnpInputs {
            ovmf: format!("{DIR}VECTORS.md").into(),
            ..base()
        }),
        Error::OvmfSize { .. }
    ));
    assert!(matches!(
        err(SnpInputs {
            kernel: Some(format!("{DIR}missing").into()),
            ..base()
        }),
        Error::Read { what: "kernel", .. }
    ));
    assert!(matches!(
        "EPYC-v9".parse::<VcpuType>(),
        Err(Error::UnknownVcpuType(_))
    ));
    assert_eq!(
        "epyc-milan".parse::<VcpuType>().unwrap().name(),
        "EPYC-Milan"
    );
    assert!(matches!("xen".parse::<Vmm>(), Err(Error::UnknownVmm(_))));
}
