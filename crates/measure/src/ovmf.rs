//! The parts of an OVMF image an SEV-SNP launch measurement depends on, read from its
//! bytes with every offset checked.
//!
//! edk2 puts a GUID-tagged table just below the image's last 32 bytes (the reset vector),
//! read backwards from a footer entry (`OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm`).
//! Three entries matter here: the SEV metadata (an offset from the end of the image to
//! the list of pages the launch measures beyond the firmware itself:
//! `OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm`), the SEV-ES reset block (the AP reset
//! address in each vCPU's VMSA) and the hashes-table location (where QEMU writes the
//! kernel, initrd and command line hashes). [`OvmfLayout::parse`] reads them with the
//! same rules as the `sev` crate, but refuses anything out of bounds or ambiguous with a
//! named error, so that only well-formed images reach that crate.

use crate::Error;

/// The largest firmware image accepted (real OVMF builds are 2 to 4 MiB).
pub const MAX_OVMF_LEN: usize = 64 * 1024 * 1024;

const PAGE: usize = 4096;
/// Bytes after the footer entry: the reset vector and its padding.
const FOOTER_GAP: usize = 32;
/// A table entry's trailer: u16 length (of the whole entry) and a GUID.
const ENTRY_HEADER: usize = 2 + 16;
/// "ASEV", size, version, item count.
const METADATA_HEADER: usize = 16;
/// GPA, length and type, each a UINT32.
const METADATA_ITEM: usize = 12;

/// A GUID in the mixed-endian byte order EFI stores (first three fields little-endian).
const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

const FOOTER_GUID: [u8; 16] = guid(
    0x96b5_82de,
    0x1fb2,
    0x45f7,
    [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
);
const SEV_METADATA_GUID: [u8; 16] = guid(
    0xdc88_6566,
    0x984a,
    0x4798,
    [0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc],
);
const SEV_ES_RESET_BLOCK_GUID: [u8; 16] = guid(
    0x00f7_71de,
    0x1a7e,
    0x4fcb,
    [0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e],
);
const SEV_HASH_TABLE_GUID: [u8; 16] = guid(
    0x7255_371f,
    0x3a3b,
    0x4b04,
    [0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54],
);

/// What a page range listed in the SEV metadata holds at launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SectionKind {
    /// Zeroed memory the firmware uses before it can validate pages itself.
    SecMemory,
    /// The page the PSP fills with the guest's secrets (VMPCKs).
    Secrets,
    /// The page the PSP fills with checked CPUID values.
    Cpuid,
    /// The SVSM calling area.
    SvsmCaa,
    /// The page QEMU fills with the kernel, initrd and command line hashes.
    KernelHashes,
}

impl SectionKind {
    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => SectionKind::SecMemory,
            2 => SectionKind::Secrets,
            3 => SectionKind::Cpuid,
            4 => SectionKind::SvsmCaa,
            0x10 => SectionKind::KernelHashes,
            _ => return None,
        })
    }
}

/// One page range from the SEV metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Section {
    /// Guest physical address.
    pub gpa: u32,
    /// Length in bytes.
    pub size: u32,
    /// What it holds.
    pub kind: SectionKind,
}

/// The measurement-relevant structure of an OVMF image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvmfLayout {
    /// The image's length (it is mapped to end at 4 GiB).
    pub len: usize,
    /// The page ranges the SEV metadata lists, in order.
    pub sections: Vec<Section>,
    /// The SEV-ES AP reset address.
    pub reset_eip: u32,
    /// Where QEMU writes the kernel hashes table, if this OVMF supports direct boot.
    pub hashes_table_gpa: Option<u32>,
}

impl OvmfLayout {
    /// Read the footer table and SEV metadata of an OVMF image.
    pub fn parse(data: &[u8]) -> Result<Self, Error> {
        let len = data.len();
        if len == 0 || !len.is_multiple_of(PAGE) || len > MAX_OVMF_LEN {
            return Err(Error::OvmfSize { len });
        }
        let entries = footer_entries(data)?;
        let find = |g: &[u8; 16]| entries.iter().find(|(eg, _)| eg == g).map(|(_, d)| *d);

        let reset = find(&SEV_ES_RESET_BLOCK_GUID).ok_or(Error::OvmfMissingEntry(
            "SEV-ES reset block (00f771de-1a7e-4fcb-890e-68c77e2fb44e)",
        ))?;
        let reset_eip = le_u32(reset, 0).ok_or(Error::OvmfTable("SEV-ES reset block too short"))?;
        let hashes_table_gpa = match find(&SEV_HASH_TABLE_GUID) {
            None => None,
            Some(d) => Some(le_u32(d, 0).ok_or(Error::OvmfTable("hashes-table entry too short"))?),
        };
        let meta = find(&SEV_METADATA_GUID).ok_or(Error::OvmfMissingEntry(
            "SEV metadata (dc886566-984a-4798-a75e-5585a7bf67cc)",
        ))?;
        let offset = le_u32(meta, 0).ok_or(Error::OvmfTable("SEV metadata entry too short"))?;
        let sections = metadata_sections(data, offset)?;
        Ok(OvmfLayout {
            len,
            sections,
            reset_eip,
            hashes_table_gpa,
        })
    }

    /// Whether the SEV metadata lists a page for the kernel hashes table.
    pub fn has_kernel_hashes(&self) -> bool {
        self.sections
            .iter()
            .any(|s| s.kind == SectionKind::KernelHashes)
    }
}

/// A footer table entry: its GUID and data.
pub(crate) type Entry<'a> = ([u8; 16], &'a [u8]);

/// The footer table's entries, (GUID, data), from the end of the image towards its start.
pub(crate) fn footer_entries(data: &[u8]) -> Result<Vec<Entry<'_>>, Error> {
    let footer_end = data
        .len()
        .checked_sub(FOOTER_GAP)
        .filter(|&e| e >= ENTRY_HEADER)
        .ok_or(Error::OvmfTable("image too short for a footer"))?;
    let footer_start = footer_end - ENTRY_HEADER;
    let (footer_len, footer_guid) = entry_header(&data[footer_start..footer_end]);
    if footer_guid != FOOTER_GUID {
        return Err(Error::OvmfTable(
            "no footer GUID 96b582de-1fb2-45f7-baea-a366c55a082d (not an SEV-capable OVMF)",
        ));
    }
    let table_len = usize::from(footer_len)
        .checked_sub(ENTRY_HEADER)
        .ok_or(Error::OvmfTable(
            "footer length shorter than its own header",
        ))?;
    let table_start = footer_start.checked_sub(table_len).ok_or(Error::OvmfTable(
        "table extends before the start of the image",
    ))?;
    let table = &data[table_start..footer_start];

    let mut out: Vec<Entry<'_>> = Vec::new();
    let mut end = table.len();
    while end >= ENTRY_HEADER {
        let (entry_len, g) = entry_header(&table[end - ENTRY_HEADER..end]);
        let entry_len = usize::from(entry_len);
        if entry_len < ENTRY_HEADER {
            return Err(Error::OvmfTable("entry length shorter than its own header"));
        }
        // The `sev` crate (like QEMU) stops at an entry that would run past the table's
        // start; the remaining bytes are not entries.
        let Some(start) = end.checked_sub(entry_len) else {
            break;
        };
        if out.iter().any(|(eg, _)| *eg == g) {
            // Two entries with one GUID: which one a tool reads is a matter of
            // implementation, so the measurement would be ambiguous.
            return Err(Error::OvmfTable("a GUID appears twice"));
        }
        out.push((g, &table[start..end - ENTRY_HEADER]));
        end = start;
    }
    Ok(out)
}

fn entry_header(b: &[u8]) -> (u16, [u8; 16]) {
    let mut g = [0u8; 16];
    g.copy_from_slice(&b[2..18]);
    (u16::from_le_bytes([b[0], b[1]]), g)
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn metadata_sections(data: &[u8], offset_from_end: u32) -> Result<Vec<Section>, Error> {
    // edk2 stores the offset as a signed 32-bit value; a negative one, read as u32, is
    // larger than any accepted image and fails the bound below.
    let start = data
        .len()
        .checked_sub(offset_from_end as usize)
        .ok_or(Error::OvmfMetadata(
            "offset points before the start of the image",
        ))?;
    let header = data
        .get(start..start + METADATA_HEADER)
        .ok_or(Error::OvmfMetadata("header runs past the end of the image"))?;
    if &header[0..4] != b"ASEV" {
        return Err(Error::OvmfMetadata("signature is not \"ASEV\""));
    }
    let size = le_u32(header, 4).unwrap_or(0) as usize;
    let version = le_u32(header, 8).unwrap_or(0);
    let count = le_u32(header, 12).unwrap_or(0) as usize;
    if version != 1 {
        return Err(Error::OvmfMetadata("version is not 1"));
    }
    let body = data
        .get(start..)
        .and_then(|rest| rest.get(..size))
        .and_then(|whole| whole.get(METADATA_HEADER..))
        .ok_or(Error::OvmfMetadata("size runs past the end of the image"))?;
    if count
        .checked_mul(METADATA_ITEM)
        .is_none_or(|need| need > body.len())
    {
        return Err(Error::OvmfMetadata("more items than its size holds"));
    }
    let mut sections = Vec::with_capacity(count);
    for item in body.chunks_exact(METADATA_ITEM).take(count) {
        let gpa = le_u32(item, 0).unwrap_or(0);
        let size = le_u32(item, 4).unwrap_or(0);
        // The type is a UINT32; a tool that read only its low byte would mistake 0x101
        // for 1, so the whole value must be a known type.
        let kind = SectionKind::from_u32(le_u32(item, 8).unwrap_or(0))
            .ok_or(Error::OvmfMetadata("unknown section type"))?;
        match kind {
            SectionKind::SecMemory | SectionKind::SvsmCaa
                if !(size as usize).is_multiple_of(PAGE) =>
            {
                return Err(Error::OvmfMetadata(
                    "a zeroed section is not a whole number of pages",
                ));
            }
            SectionKind::KernelHashes if size as usize != PAGE => {
                return Err(Error::OvmfMetadata(
                    "the kernel-hashes section is not exactly one page",
                ));
            }
            _ => {}
        }
        if !(gpa as usize).is_multiple_of(PAGE) {
            return Err(Error::OvmfMetadata("a section is not page-aligned"));
        }
        sections.push(Section { gpa, size, kind });
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../testdata/sev-snp/measurement/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn amdsev_build_has_the_direct_boot_page() {
        let l = OvmfLayout::parse(&fixture("ovmf_AmdSev_suffix.bin")).unwrap();
        assert!(l.has_kernel_hashes(), "{l:?}");
        assert!(l.hashes_table_gpa.is_some());
        assert!(l.sections.iter().any(|s| s.kind == SectionKind::Secrets));
        assert!(l.sections.iter().any(|s| s.kind == SectionKind::Cpuid));
    }

    #[test]
    fn ovmfx64_build_cannot_direct_boot() {
        let l = OvmfLayout::parse(&fixture("ovmf_OvmfX64_suffix.bin")).unwrap();
        assert!(!l.has_kernel_hashes(), "{l:?}");
    }

    #[test]
    fn damaged_images_are_refused_by_name() {
        let good = fixture("ovmf_AmdSev_suffix.bin");
        assert!(matches!(
            OvmfLayout::parse(&good[..4000]),
            Err(Error::OvmfSize { len: 4000 })
        ));
        assert!(matches!(
            OvmfLayout::parse(&[0u8; 4096]),
            Err(Error::OvmfTable(_))
        ));
        // Every single-byte change in the table and metadata region either still parses
        // or is refused: never a panic.
        for i in 0..good.len() {
            for v in [0x00, 0xff, 0x7f, 0x80] {
                let mut bad = good.clone();
                bad[i] = v;
                let _ = OvmfLayout::parse(&bad);
            }
        }
        // Footer length claiming more table than the image holds.
        let mut bad = good.clone();
        let at = good.len() - 32 - 18;
        bad[at..at + 2].copy_from_slice(&0xffffu16.to_le_bytes());
        assert!(matches!(OvmfLayout::parse(&bad), Err(Error::OvmfTable(_))));
    }
}
