//! Expected launch measurements from a confidential guest image's parts, as release
//! manifests ready for `confide release publish`.
//!
//! - [`snp`]: the AMD SEV-SNP launch digest (the attestation report's MEASUREMENT) from
//!   OVMF, its SEV metadata sections, the kernel, initrd and command line (QEMU's
//!   measured-direct-boot hashes table), the vCPU count and type, the guest features and
//!   the VMM. The page-by-page digest is the `sev` crate's
//!   (`sev::measurement::snp::snp_calc_launch_digest`); this crate puts its own types
//!   and errors in front of it and checks the firmware's structure first, so a malformed
//!   OVMF is refused with a named error instead of reaching code that would index out of
//!   bounds.
//! - [`tdx`]: TDX MRTD from the TDVF image's metadata (the TDX module's PAGE.ADD and
//!   MR.EXTEND records), and RTMR0..2 from firmware configuration, kernel, command line
//!   and initrd.
//! - [`manifest`]: a measurement plus the release's other fields into a validated
//!   [`confide_release::ReleaseManifest`], and that as the TOML `confide release publish`
//!   reads.
//!
//! I/O: the `sev` crate's API takes file paths and reads the files itself, so
//! [`snp::launch_digest`] reads the OVMF, kernel and initrd it is given (once to check,
//! once inside `sev`). Everything else here works on bytes and values passed in.

pub mod manifest;
pub mod ovmf;
pub mod snp;
pub mod tdx;

/// Everything that can be wrong with a measurement's inputs or its computation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input file could not be read.
    #[error("cannot read the {what} {path}: {reason}")]
    Read {
        /// Which input (OVMF, kernel, initrd).
        what: &'static str,
        /// Its path.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The firmware is not a whole number of 4 KiB pages (it is measured page by page).
    #[error("OVMF is {len} bytes, not a non-zero multiple of 4096")]
    OvmfSize {
        /// Its length.
        len: usize,
    },
    /// The OVMF footer GUID table (the structure at the end of the image that locates the
    /// SEV metadata and reset vector) is missing or malformed.
    #[error("OVMF footer table: {0}")]
    OvmfTable(&'static str),
    /// An entry the measurement needs is not in the OVMF footer table.
    #[error("OVMF footer table has no {0} entry")]
    OvmfMissingEntry(&'static str),
    /// The OVMF SEV metadata (the list of pages the launch measures) is malformed.
    #[error("OVMF SEV metadata: {0}")]
    OvmfMetadata(&'static str),
    /// The TDVF metadata (the sections the TDX module adds and measures) is malformed.
    #[error("TDVF metadata: {0}")]
    TdvfMetadata(&'static str),
    /// A kernel was given but this OVMF has no page for the kernel hashes table, so it
    /// cannot do measured direct boot.
    #[error("OVMF has no SNP kernel-hashes section: it cannot measure a directly booted kernel")]
    OvmfNoKernelHashes,
    /// An initrd or command line was given without a kernel: QEMU only measures them
    /// (in the hashes table) when it boots a kernel directly.
    #[error("{0} given without a kernel: it is measured only with a directly booted kernel")]
    WithoutKernel(&'static str),
    /// The kernel command line cannot be measured as given.
    #[error("kernel command line: {0}")]
    CommandLine(&'static str),
    /// vCPU count out of range.
    #[error("vCPU count {got} is outside 1..={max}")]
    Vcpus {
        /// Given.
        got: u32,
        /// Largest accepted.
        max: u32,
    },
    /// A vCPU model name this crate does not know.
    #[error("unknown vCPU type {0:?} (try EPYC-v4, EPYC-Milan, EPYC-Genoa, ...)")]
    UnknownVcpuType(String),
    /// A VMM name this crate does not know.
    #[error("unknown VMM {0:?} (qemu, ec2 or krun)")]
    UnknownVmm(String),
    /// SEV features (the VMSA's SEV_FEATURES) that no SNP launch can have.
    #[error("guest features {value:#x}: {reason}")]
    GuestFeatures {
        /// Given.
        value: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A hex digest argument is malformed.
    #[error("{field} must be {len} bytes of hex")]
    Hex {
        /// Which value.
        field: &'static str,
        /// Required length in bytes.
        len: usize,
    },
    /// The `sev` crate refused the inputs (after this crate's own checks passed).
    #[error("SEV-SNP launch digest: {0}")]
    Sev(String),
    /// The measurement and release fields do not make a valid release manifest.
    #[error("release manifest: {0}")]
    Manifest(#[from] confide_release::Error),
    /// The manifest could not be written as TOML.
    #[error("release manifest as TOML: {0}")]
    Toml(String),
}

/// Parse `len` bytes of hex (no prefix) for the value named `field`.
pub fn parse_hex<const N: usize>(field: &'static str, s: &str) -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s.trim(), &mut out).map_err(|_| Error::Hex { field, len: N })?;
    Ok(out)
}
