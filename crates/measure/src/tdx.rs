//! Intel TDX: MRTD from the TDVF image, and RTMR0..2 from the firmware configuration,
//! kernel, command line and initrd.
//!
//! **MRTD** is the TDX module's build-time measurement (Intel TDX module ABI spec,
//! TDH.MEM.PAGE.ADD and TDH.MR.EXTEND): one SHA-384 over a sequence of 128-byte records.
//! Each page the VMM adds contributes `"MEM.PAGE.ADD"` (zero-padded to 16 bytes), the
//! page's GPA (u64 little-endian) and zeros; each 256-byte chunk it extends contributes
//! `"MR.EXTEND"`, the chunk's GPA and zeros, then the chunk itself. Which pages are added
//! and extended comes from the TDVF metadata (TDVF design guide §11: a footer-table
//! entry, GUID e47a6535-984a-4798-865e-4685a7bf8ec2, points at a `"TDVF"` descriptor
//! listing sections with their image offset, size, GPA, type and attributes; attribute
//! bit 0 = MR.EXTEND, bit 1 = PAGE.AUG, i.e. added later by the guest and not measured).
//! Pages are added and extended one at a time, section by section, in the order Linux
//! KVM's `KVM_TDX_INIT_MEM_REGION` uses (add a page, then extend its 16 chunks).
//!
//! **RTMRs** start at zero; each measurement extends one as
//! `RTMR = SHA-384(RTMR || SHA-384(data))`. The registers follow the TDVF mapping of
//! TPM PCRs (PCR 1 and 7 to RTMR0, 2 to 6 to RTMR1, 8 to 15 to RTMR2) and the td-shim
//! convention of measuring each component as a whole blob:
//! - RTMR0: each firmware-configuration blob, in the order given (the TD HOB, the
//!   configuration firmware volume with the secure-boot variables, ACPI tables, ...);
//! - RTMR1: the kernel image;
//! - RTMR2: the command line (its UTF-8 bytes, no terminator), then the initrd.
//!
//! TDVF's own direct boot measures the kernel by its PE/COFF Authenticode digest and
//! extends further EFI events (separators, boot-service actions) that depend on the
//! firmware build; those RTMRs are not this convention's. No public vectors for either
//! were found (see `docs/releases.md`); the tests check the properties instead.

use sha2::{Digest, Sha384};

use crate::Error;
use crate::ovmf::{MAX_OVMF_LEN, footer_entries, le_u32};

/// A 48-byte TDX measurement register.
pub type Register = [u8; 48];

const TDX_METADATA_GUID: [u8; 16] = [
    0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47, 0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2,
];
const PAGE: u64 = 4096;
const CHUNK: usize = 256;
const SECTION_LEN: usize = 32;
/// Attribute bit 0: the section's contents are measured (TDH.MR.EXTEND).
const ATTR_MR_EXTEND: u32 = 1;
/// Attribute bit 1: the guest accepts these pages later; the VMM does not add them.
const ATTR_PAGE_AUG: u32 = 2;
/// The largest number of sections accepted (real TDVF builds list fewer than 10).
const MAX_SECTIONS: usize = 64;
/// The largest memory a section may cover (the MRTD is one SHA-384 pass over it).
const MAX_SECTION_MEMORY: u64 = 1 << 32;

/// One section of the TDVF metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TdvfSection {
    /// Offset of its contents in the image.
    pub data_offset: u32,
    /// Length of its contents in the image.
    pub raw_size: u32,
    /// Guest physical address.
    pub gpa: u64,
    /// Length in guest memory (page multiple).
    pub memory_size: u64,
    /// Type: 0 BFV, 1 CFV, 2 TD HOB, 3 temporary memory, 4 permanent memory,
    /// 5 payload, 6 payload parameters.
    pub kind: u32,
    /// Attributes: bit 0 MR.EXTEND, bit 1 PAGE.AUG.
    pub attributes: u32,
}

/// Read the TDVF metadata's sections, every offset checked.
pub fn tdvf_sections(image: &[u8]) -> Result<Vec<TdvfSection>, Error> {
    if image.is_empty() || !image.len().is_multiple_of(PAGE as usize) || image.len() > MAX_OVMF_LEN
    {
        return Err(Error::OvmfSize { len: image.len() });
    }
    let entries = footer_entries(image)?;
    let entry = entries
        .iter()
        .find(|(g, _)| *g == TDX_METADATA_GUID)
        .map(|(_, d)| *d)
        .ok_or(Error::OvmfMissingEntry(
            "TDX metadata (e47a6535-984a-4798-865e-4685a7bf8ec2)",
        ))?;
    let offset = le_u32(entry, 0).ok_or(Error::OvmfTable("TDX metadata entry too short"))?;
    let start = image
        .len()
        .checked_sub(offset as usize)
        .ok_or(Error::TdvfMetadata(
            "TDVF descriptor before the start of the image",
        ))?;
    let rest = &image[start..];
    if rest.get(0..4) != Some(b"TDVF".as_slice()) {
        return Err(Error::TdvfMetadata(
            "TDVF descriptor signature is not \"TDVF\"",
        ));
    }
    let length = le_u32(rest, 4).ok_or(Error::TdvfMetadata("TDVF descriptor truncated"))?;
    let version = le_u32(rest, 8).ok_or(Error::TdvfMetadata("TDVF descriptor truncated"))?;
    let count = le_u32(rest, 12).ok_or(Error::TdvfMetadata("TDVF descriptor truncated"))?;
    if version != 1 {
        return Err(Error::TdvfMetadata("TDVF descriptor version is not 1"));
    }
    let count = count as usize;
    if count == 0 || count > MAX_SECTIONS {
        return Err(Error::TdvfMetadata(
            "TDVF descriptor lists 0 or too many sections",
        ));
    }
    let body = rest
        .get(..length as usize)
        .and_then(|d| d.get(16..))
        .filter(|b| b.len() >= count * SECTION_LEN)
        .ok_or(Error::TdvfMetadata(
            "TDVF descriptor runs past the end of the image",
        ))?;
    let mut out = Vec::with_capacity(count);
    for s in body.chunks_exact(SECTION_LEN).take(count) {
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&s[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let sec = TdvfSection {
            data_offset: le_u32(s, 0).unwrap_or(0),
            raw_size: le_u32(s, 4).unwrap_or(0),
            gpa: u64_at(8),
            memory_size: u64_at(16),
            kind: le_u32(s, 24).unwrap_or(0),
            attributes: le_u32(s, 28).unwrap_or(0),
        };
        if sec.kind > 6 {
            return Err(Error::TdvfMetadata("unknown TDVF section type"));
        }
        if sec.attributes & !(ATTR_MR_EXTEND | ATTR_PAGE_AUG) != 0 {
            return Err(Error::TdvfMetadata("unknown TDVF section attribute"));
        }
        if !sec.gpa.is_multiple_of(PAGE) || !sec.memory_size.is_multiple_of(PAGE) {
            return Err(Error::TdvfMetadata("TDVF section is not page-aligned"));
        }
        if sec.memory_size > MAX_SECTION_MEMORY || sec.gpa.checked_add(sec.memory_size).is_none() {
            return Err(Error::TdvfMetadata("TDVF section too large"));
        }
        if u64::from(sec.raw_size) > sec.memory_size {
            return Err(Error::TdvfMetadata(
                "TDVF section's contents exceed its memory",
            ));
        }
        let end = (sec.data_offset as usize).checked_add(sec.raw_size as usize);
        if end.is_none_or(|e| e > image.len()) {
            return Err(Error::TdvfMetadata(
                "TDVF section's contents lie outside the image",
            ));
        }
        out.push(sec);
    }
    Ok(out)
}

fn record(tag: &[u8], gpa: u64) -> [u8; 128] {
    let mut r = [0u8; 128];
    r[..tag.len()].copy_from_slice(tag);
    r[16..24].copy_from_slice(&gpa.to_le_bytes());
    r
}

/// The MRTD a TD built from this TDVF image will have.
pub fn mrtd(image: &[u8]) -> Result<Register, Error> {
    let sections = tdvf_sections(image)?;
    let mut h = Sha384::new();
    let mut page = [0u8; PAGE as usize];
    for s in sections
        .iter()
        .filter(|s| s.attributes & ATTR_PAGE_AUG == 0)
    {
        let data = &image[s.data_offset as usize..(s.data_offset + s.raw_size) as usize];
        let mut off = 0u64;
        while off < s.memory_size {
            let gpa = s.gpa + off;
            h.update(record(b"MEM.PAGE.ADD", gpa));
            if s.attributes & ATTR_MR_EXTEND != 0 {
                // Memory beyond the section's contents is zero.
                page.fill(0);
                let from = (off as usize).min(data.len());
                let to = (off as usize + PAGE as usize).min(data.len());
                page[..to - from].copy_from_slice(&data[from..to]);
                for (i, chunk) in page.chunks_exact(CHUNK).enumerate() {
                    h.update(record(b"MR.EXTEND", gpa + (i * CHUNK) as u64));
                    h.update(chunk);
                }
            }
            off += PAGE;
        }
    }
    Ok(h.finalize().into())
}

/// `RTMR = SHA-384(RTMR || SHA-384(data))`.
pub fn extend(rtmr: &mut Register, data: &[u8]) {
    let digest = Sha384::digest(data);
    let mut h = Sha384::new();
    h.update(*rtmr);
    h.update(digest);
    *rtmr = h.finalize().into();
}

/// What RTMR0..2 are computed from.
#[derive(Debug, Clone, Default)]
pub struct TdxBoot<'a> {
    /// Firmware-configuration blobs, in the order the firmware measures them.
    pub firmware_config: Vec<&'a [u8]>,
    /// The kernel image.
    pub kernel: &'a [u8],
    /// The kernel command line.
    pub cmdline: Option<&'a str>,
    /// The initrd.
    pub initrd: Option<&'a [u8]>,
}

/// RTMR0, RTMR1 and RTMR2 for this boot.
pub fn rtmrs(boot: &TdxBoot<'_>) -> Result<[Register; 3], Error> {
    let mut r = [[0u8; 48]; 3];
    for blob in &boot.firmware_config {
        extend(&mut r[0], blob);
    }
    extend(&mut r[1], boot.kernel);
    if let Some(c) = boot.cmdline {
        if c.contains('\0') {
            return Err(Error::CommandLine("contains a NUL byte"));
        }
        extend(&mut r[2], c.as_bytes());
    }
    if let Some(i) = boot.initrd {
        extend(&mut r[2], i);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A minimal TDVF-shaped image: one page of BFV (measured), one TD HOB page (added,
    /// not extended), one PAGE.AUG section (neither), the metadata and the footer table.
    fn image(bfv: u8) -> Vec<u8> {
        let mut img = vec![0u8; 3 * 4096];
        img[..4096].fill(bfv);
        let desc_at = 4096 + 1024;
        let mut d = Vec::new();
        d.extend_from_slice(b"TDVF");
        d.extend_from_slice(&(16u32 + 3 * 32).to_le_bytes());
        d.extend_from_slice(&1u32.to_le_bytes());
        d.extend_from_slice(&3u32.to_le_bytes());
        for (off, raw, gpa, mem, kind, attr) in [
            (0u32, 4096u32, 0xffff_f000u64, 4096u64, 0u32, 1u32),
            (0, 0, 0x80_0000, 4096, 2, 0),
            (0, 0, 0x90_0000, 8192, 4, 2),
        ] {
            d.extend_from_slice(&off.to_le_bytes());
            d.extend_from_slice(&raw.to_le_bytes());
            d.extend_from_slice(&gpa.to_le_bytes());
            d.extend_from_slice(&mem.to_le_bytes());
            d.extend_from_slice(&kind.to_le_bytes());
            d.extend_from_slice(&attr.to_le_bytes());
        }
        img[desc_at..desc_at + d.len()].copy_from_slice(&d);
        let len = img.len();
        // Footer table: [metadata entry][footer entry] ending 32 bytes before the end.
        let footer_end = len - 32;
        let meta_entry_len = 4 + 18;
        let footer_start = footer_end - 18;
        let meta_start = footer_start - meta_entry_len;
        let offset = (len - desc_at) as u32;
        img[meta_start..meta_start + 4].copy_from_slice(&offset.to_le_bytes());
        img[meta_start + 4..meta_start + 6].copy_from_slice(&(meta_entry_len as u16).to_le_bytes());
        img[meta_start + 6..meta_start + 22].copy_from_slice(&TDX_METADATA_GUID);
        img[footer_start..footer_start + 2]
            .copy_from_slice(&((18 + meta_entry_len) as u16).to_le_bytes());
        img[footer_start + 2..footer_end].copy_from_slice(&[
            0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45, 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a,
            0x08, 0x2d,
        ]);
        img
    }

    #[test]
    fn the_cli_fixture_is_this_image() {
        let f = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/tdx/measurement/tdvf_synthetic.bin"
        ))
        .unwrap();
        assert_eq!(f, image(1));
    }

    #[test]
    fn sections_are_read() {
        let s = tdvf_sections(&image(1)).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].gpa, 0xffff_f000);
        assert_eq!(s[1].kind, 2);
    }

    #[test]
    fn mrtd_follows_the_measured_contents_only() {
        let a = mrtd(&image(1)).unwrap();
        assert_eq!(a, mrtd(&image(1)).unwrap());
        // The measured (MR.EXTEND) section's bytes change MRTD.
        assert_ne!(a, mrtd(&image(2)).unwrap());
        // Bytes outside every section do not.
        let mut other = image(1);
        other[2 * 4096 + 7] ^= 0xff;
        assert_eq!(a, mrtd(&other).unwrap());
        // Independent recomputation of the record sequence for this layout.
        let mut h = Sha384::new();
        h.update(record(b"MEM.PAGE.ADD", 0xffff_f000));
        for i in 0..16u64 {
            h.update(record(b"MR.EXTEND", 0xffff_f000 + i * 256));
            h.update([1u8; 256]);
        }
        h.update(record(b"MEM.PAGE.ADD", 0x80_0000));
        let want: Register = h.finalize().into();
        assert_eq!(a, want);
    }

    #[test]
    fn damaged_metadata_is_refused_never_a_panic() {
        let good = image(1);
        // The descriptor and the footer table: every byte of each.
        let len = good.len();
        for i in (4096 + 1024..4096 + 1024 + 112).chain(len - 80..len - 32) {
            for v in [0x00, 0xff, 0x80] {
                let mut bad = good.clone();
                bad[i] = v;
                let _ = mrtd(&bad);
            }
        }
        assert!(matches!(mrtd(&[0u8; 4096]), Err(Error::OvmfTable(_))));
        assert!(matches!(mrtd(&good[..100]), Err(Error::OvmfSize { .. })));
    }

    #[test]
    fn each_input_changes_its_register_and_no_other() {
        let cfg = [b"td-hob".as_slice(), b"cfv"];
        let base = TdxBoot {
            firmware_config: cfg.to_vec(),
            kernel: b"kernel",
            cmdline: Some("console=hvc0"),
            initrd: Some(b"initrd"),
        };
        let r = rtmrs(&base).unwrap();
        assert_eq!(r, rtmrs(&base).unwrap(), "same inputs, same registers");
        let changed = |b: TdxBoot<'_>| -> Vec<usize> {
            let n = rtmrs(&b).unwrap();
            (0..3).filter(|&i| n[i] != r[i]).collect()
        };
        assert_eq!(
            changed(TdxBoot {
                firmware_config: vec![b"td-hob", b"cfv2"],
                ..base.clone()
            }),
            [0]
        );
        assert_eq!(
            changed(TdxBoot {
                firmware_config: vec![b"cfv", b"td-hob"],
                ..base.clone()
            }),
            [0],
            "order matters"
        );
        assert_eq!(
            changed(TdxBoot {
                kernel: b"kernel2",
                ..base.clone()
            }),
            [1]
        );
        assert_eq!(
            changed(TdxBoot {
                cmdline: Some("console=ttyS0"),
                ..base.clone()
            }),
            [2]
        );
        assert_eq!(
            changed(TdxBoot {
                cmdline: None,
                ..base.clone()
            }),
            [2]
        );
        assert_eq!(
            changed(TdxBoot {
                initrd: Some(b"initrd2"),
                ..base.clone()
            }),
            [2]
        );
        assert!(matches!(
            rtmrs(&TdxBoot {
                cmdline: Some("a\0b"),
                ..base
            }),
            Err(Error::CommandLine(_))
        ));
    }
}
