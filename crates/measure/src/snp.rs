//! The SEV-SNP launch digest: what the PSP will put in the attestation report's
//! MEASUREMENT field for a guest launched from these parts (SEV-SNP ABI spec 56860,
//! §8.17 SNP_LAUNCH_UPDATE, page-info digest chain).
//!
//! The launch measures, in order: the OVMF image page by page (or, when given, a digest
//! of it computed earlier: the "OVMF hash" a VMM vendor publishes for a firmware they
//! ship), each section of OVMF's SEV metadata (zero pages, the secrets and CPUID pages,
//! and the page holding the kernel/initrd/command-line hashes table when a kernel is
//! booted directly), then one VMSA page per vCPU, whose contents depend on the vCPU
//! model (its CPUID signature), the VMM's register defaults and the guest's SEV
//! features. The chain itself is the `sev` crate's.

use std::path::{Path, PathBuf};

use sev::measurement::{
    snp::{SnpMeasurementArgs, calc_snp_ovmf_hash, snp_calc_launch_digest},
    vcpu_types::CpuType,
    vmsa::{GuestFeatures, VMMType},
};

use crate::Error;
use crate::ovmf::{MAX_OVMF_LEN, OvmfLayout};

/// Most vCPUs accepted: each adds a 4 KiB VMSA page to the computation. KVM's own limit
/// on x86 is 4096.
pub const MAX_VCPUS: u32 = 4096;

/// A SEV-SNP launch digest (SHA-384).
pub type LaunchDigest = [u8; 48];

/// The guest's vCPU model, as QEMU names it (`-cpu EPYC-v4`). Its CPUID family, model
/// and stepping are in every VMSA, so the model is part of the measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VcpuType {
    /// EPYC
    Epyc,
    /// EPYC-v1
    EpycV1,
    /// EPYC-v2
    EpycV2,
    /// EPYC-IBPB
    EpycIbpb,
    /// EPYC-v3
    EpycV3,
    /// EPYC-v4
    EpycV4,
    /// EPYC-Rome
    EpycRome,
    /// EPYC-Rome-v1
    EpycRomeV1,
    /// EPYC-Rome-v2
    EpycRomeV2,
    /// EPYC-Rome-v3
    EpycRomeV3,
    /// EPYC-Milan
    EpycMilan,
    /// EPYC-Milan-v1
    EpycMilanV1,
    /// EPYC-Milan-v2
    EpycMilanV2,
    /// EPYC-Genoa
    EpycGenoa,
    /// EPYC-Genoa-v1
    EpycGenoaV1,
    /// EPYC-Turin
    EpycTurin,
    /// EPYC-Turin-v1
    EpycTurinV1,
    /// EPYC-Turin-v2
    EpycTurinV2,
}

const VCPU_NAMES: [(VcpuType, &str, CpuType); 18] = [
    (VcpuType::Epyc, "EPYC", CpuType::Epyc),
    (VcpuType::EpycV1, "EPYC-v1", CpuType::EpycV1),
    (VcpuType::EpycV2, "EPYC-v2", CpuType::EpycV2),
    (VcpuType::EpycIbpb, "EPYC-IBPB", CpuType::EpycIBPB),
    (VcpuType::EpycV3, "EPYC-v3", CpuType::EpycV3),
    (VcpuType::EpycV4, "EPYC-v4", CpuType::EpycV4),
    (VcpuType::EpycRome, "EPYC-Rome", CpuType::EpycRome),
    (VcpuType::EpycRomeV1, "EPYC-Rome-v1", CpuType::EpycRomeV1),
    (VcpuType::EpycRomeV2, "EPYC-Rome-v2", CpuType::EpycRomeV2),
    (VcpuType::EpycRomeV3, "EPYC-Rome-v3", CpuType::EpycRomeV3),
    (VcpuType::EpycMilan, "EPYC-Milan", CpuType::EpycMilan),
    (VcpuType::EpycMilanV1, "EPYC-Milan-v1", CpuType::EpycMilanV1),
    (VcpuType::EpycMilanV2, "EPYC-Milan-v2", CpuType::EpycMilanV2),
    (VcpuType::EpycGenoa, "EPYC-Genoa", CpuType::EpycGenoa),
    (VcpuType::EpycGenoaV1, "EPYC-Genoa-v1", CpuType::EpycGenoaV1),
    (VcpuType::EpycTurin, "EPYC-Turin", CpuType::EpycTurin),
    (VcpuType::EpycTurinV1, "EPYC-Turin-v1", CpuType::EpycTurinV1),
    (VcpuType::EpycTurinV2, "EPYC-Turin-v2", CpuType::EpycTurinV2),
];

impl VcpuType {
    /// QEMU's name for the model.
    pub fn name(self) -> &'static str {
        VCPU_NAMES
            .iter()
            .find(|(t, _, _)| *t == self)
            .map_or("?", |(_, n, _)| n)
    }

    fn sev(self) -> CpuType {
        VCPU_NAMES
            .iter()
            .find(|(t, _, _)| *t == self)
            .map_or(CpuType::Epyc, |(_, _, c)| *c)
    }
}

impl std::str::FromStr for VcpuType {
    type Err = Error;
    /// QEMU's model name, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Error> {
        VCPU_NAMES
            .iter()
            .find(|(_, n, _)| n.eq_ignore_ascii_case(s))
            .map(|(t, _, _)| *t)
            .ok_or_else(|| Error::UnknownVcpuType(s.to_owned()))
    }
}

/// The VMM that launches the guest: each sets some VMSA registers differently, and EC2
/// measures the CPUID page last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Vmm {
    /// QEMU/KVM.
    Qemu,
    /// Amazon EC2.
    Ec2,
    /// libkrun.
    Krun,
}

impl Vmm {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Vmm::Qemu => "qemu",
            Vmm::Ec2 => "ec2",
            Vmm::Krun => "krun",
        }
    }

    fn sev(self) -> VMMType {
        match self {
            Vmm::Qemu => VMMType::QEMU,
            Vmm::Ec2 => VMMType::EC2,
            Vmm::Krun => VMMType::KRUN,
        }
    }
}

impl std::str::FromStr for Vmm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "qemu" => Ok(Vmm::Qemu),
            "ec2" => Ok(Vmm::Ec2),
            "krun" => Ok(Vmm::Krun),
            _ => Err(Error::UnknownVmm(s.to_owned())),
        }
    }
}

/// Bit 0 of SEV_FEATURES: SNPActive, which every SNP guest's VMSA has.
const SNP_ACTIVE: u64 = 1;
/// Bits 63:16 are reserved and must be zero (AMD APM vol. 2, table B-4).
const RESERVED_FEATURES: u64 = !0xffff;

/// Everything a SEV-SNP launch measurement depends on.
#[derive(Debug, Clone)]
pub struct SnpInputs {
    /// The OVMF image (the whole image, or, with [`SnpInputs::ovmf_hash`], at least the
    /// part that holds its footer table and SEV metadata).
    pub ovmf: PathBuf,
    /// A digest of the OVMF image computed earlier ([`ovmf_hash`]), used instead of
    /// hashing the file's pages.
    pub ovmf_hash: Option<LaunchDigest>,
    /// The directly booted kernel (QEMU `-kernel`); without one, OVMF boots from disk
    /// and nothing after the firmware is in the launch digest.
    pub kernel: Option<PathBuf>,
    /// The initrd (QEMU `-initrd`); only with a kernel.
    pub initrd: Option<PathBuf>,
    /// The kernel command line (QEMU `-append`); only with a kernel.
    pub cmdline: Option<String>,
    /// Number of vCPUs: one VMSA page each.
    pub vcpus: u32,
    /// The vCPU model.
    pub vcpu_type: VcpuType,
    /// The VMSA's SEV_FEATURES (QEMU/KVM: 0x1 = SNPActive; 0x21 adds DebugSwap, which
    /// recent KVM turns on by default).
    pub guest_features: u64,
    /// The VMM.
    pub vmm: Vmm,
}

/// A computed SEV-SNP launch measurement and what it was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpMeasurement {
    /// The expected MEASUREMENT.
    pub launch_digest: LaunchDigest,
    /// The firmware's structure as read.
    pub ovmf: OvmfLayout,
}

/// Compute the launch digest a guest launched from `inputs` will report.
///
/// Reads the files named in `inputs` (the `sev` crate's API takes paths).
pub fn launch_digest(inputs: &SnpInputs) -> Result<SnpMeasurement, Error> {
    check_inputs(inputs)?;
    let ovmf_bytes = read(&inputs.ovmf, "OVMF image")?;
    let ovmf = OvmfLayout::parse(&ovmf_bytes)?;
    if inputs.kernel.is_some() {
        if !ovmf.has_kernel_hashes() {
            return Err(Error::OvmfNoKernelHashes);
        }
        if ovmf.hashes_table_gpa.is_none() {
            return Err(Error::OvmfMissingEntry(
                "hashes table (7255371f-3a3b-4b04-927b-1da6efa8d454)",
            ));
        }
    }
    drop(ovmf_bytes);
    // `sev` reads the kernel and initrd itself; check they can be read first so that a
    // missing file is named as such.
    for (what, path) in [("kernel", &inputs.kernel), ("initrd", &inputs.initrd)] {
        if let Some(p) = path {
            std::fs::metadata(p).map_err(|e| read_error(what, p, &e))?;
        }
    }
    let hash_hex = inputs.ovmf_hash.map(hex::encode);
    let args = SnpMeasurementArgs {
        vcpus: inputs.vcpus,
        vcpu_type: inputs.vcpu_type.sev(),
        ovmf_file: inputs.ovmf.clone(),
        guest_features: GuestFeatures(inputs.guest_features),
        kernel_file: inputs.kernel.clone(),
        initrd_file: inputs.initrd.clone(),
        append: inputs.cmdline.as_deref(),
        ovmf_hash_str: hash_hex.as_deref(),
        vmm_type: Some(inputs.vmm.sev()),
    };
    let digest = snp_calc_launch_digest(args).map_err(|e| Error::Sev(e.to_string()))?;
    let launch_digest = crate::parse_hex("launch digest", &digest.get_hex_ld())?;
    Ok(SnpMeasurement {
        launch_digest,
        ovmf,
    })
}

/// The digest of an OVMF image's pages alone: the starting point of every launch digest
/// with this firmware, which [`SnpInputs::ovmf_hash`] can carry instead of the image.
pub fn ovmf_hash(ovmf: &Path) -> Result<LaunchDigest, Error> {
    let bytes = read(ovmf, "OVMF image")?;
    OvmfLayout::parse(&bytes)?;
    drop(bytes);
    let digest = calc_snp_ovmf_hash(ovmf.to_path_buf()).map_err(|e| Error::Sev(e.to_string()))?;
    crate::parse_hex("OVMF hash", &digest.get_hex_ld())
}

/// The checks that need no file: each refers to a way the `sev` crate would silently
/// compute a digest no real launch produces.
fn check_inputs(i: &SnpInputs) -> Result<(), Error> {
    if i.vcpus == 0 || i.vcpus > MAX_VCPUS {
        return Err(Error::Vcpus {
            got: i.vcpus,
            max: MAX_VCPUS,
        });
    }
    if i.guest_features & SNP_ACTIVE == 0 {
        return Err(Error::GuestFeatures {
            value: i.guest_features,
            reason: "bit 0 (SNPActive) is clear",
        });
    }
    if i.guest_features & RESERVED_FEATURES != 0 {
        return Err(Error::GuestFeatures {
            value: i.guest_features,
            reason: "reserved bits 63:16 are set",
        });
    }
    if i.kernel.is_none() {
        // `sev` ignores both without a kernel; QEMU does not measure them either.
        if i.initrd.is_some() {
            return Err(Error::WithoutKernel("an initrd"));
        }
        if i.cmdline.is_some() {
            return Err(Error::WithoutKernel("a command line"));
        }
    }
    if let Some(c) = &i.cmdline {
        // QEMU hashes the command line exactly as given plus its NUL; `sev` trims it
        // first. Refusing what the two would hash differently keeps them in agreement.
        if c.trim() != c {
            return Err(Error::CommandLine(
                "leading or trailing whitespace (QEMU and this tool would hash it differently)",
            ));
        }
        if c.contains('\0') {
            return Err(Error::CommandLine("contains a NUL byte"));
        }
    }
    Ok(())
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, Error> {
    let len = std::fs::metadata(path)
        .map_err(|e| read_error(what, path, &e))?
        .len();
    if len > MAX_OVMF_LEN as u64 {
        return Err(Error::OvmfSize {
            len: usize::try_from(len).unwrap_or(usize::MAX),
        });
    }
    std::fs::read(path).map_err(|e| read_error(what, path, &e))
}

fn read_error(what: &'static str, path: &Path, e: &std::io::Error) -> Error {
    Error::Read {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}
