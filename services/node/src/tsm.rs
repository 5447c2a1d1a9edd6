//! Evidence from real hardware through Linux configfs-tsm
//! (`Documentation/ABI/testing/configfs-tsm` in the kernel tree).
//!
//! One report: `mkdir /sys/kernel/config/tsm/report/<name>`, write the 64 bytes of
//! REPORT_DATA to `inblob`, read `provider` (`sev_guest` or `tdx_guest`), `outblob` (the
//! SEV-SNP ATTESTATION_REPORT or the TDX quote) and, for SEV-SNP, `auxblob` (the
//! certificate table the host supplied: GUID-tagged VCEK, ASK, ARK), then `rmdir`.
//!
//! The report directory is in configfs (kernel memory), not on a disk; REPORT_DATA is
//! a public key digest, not request content.

use std::path::PathBuf;

use confide_attest::{AttestRequest, Evidence, Platform, PlatformError};

/// The configfs-tsm report directory.
pub const TSM_REPORT_DIR: &str = "/sys/kernel/config/tsm/report";

// SEV-SNP extended guest request certificate table GUIDs (SEV-SNP GHCB spec 56421, 4.1.8.1).
const VCEK_GUID: [u8; 16] = guid("63da758d-e664-4564-adc5-f4b93be8accd");
const VLEK_GUID: [u8; 16] = guid("a8074bc2-a25a-483e-aae6-39c045a0b8a1");
const ASK_GUID: [u8; 16] = guid("4ab7b379-bbac-4fe4-a02f-05aef327c782");
const ARK_GUID: [u8; 16] = guid("c0b406a4-a803-4952-9743-3fb6014cd0ae");

/// Parses a GUID string into its mixed-endian binary form (RFC 4122 / EFI_GUID layout:
/// the first three fields little-endian).
const fn guid(s: &str) -> [u8; 16] {
    let b = s.as_bytes();
    let mut hex = [0u8; 16];
    let mut i = 0;
    let mut j = 0;
    while i < b.len() {
        if b[i] != b'-' {
            let v = match b[i] {
                b'0'..=b'9' => b[i] - b'0',
                b'a'..=b'f' => b[i] - b'a' + 10,
                _ => 0,
            };
            hex[j / 2] |= if j % 2 == 0 { v << 4 } else { v };
            j += 1;
        }
        i += 1;
    }
    [
        hex[3], hex[2], hex[1], hex[0], hex[5], hex[4], hex[7], hex[6], hex[8], hex[9], hex[10],
        hex[11], hex[12], hex[13], hex[14], hex[15],
    ]
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
enum TsmError {
    #[error("configfs-tsm: {0}")]
    Io(&'static str),
    #[error("configfs-tsm provider is not {0}")]
    Provider(&'static str),
    #[error("configfs-tsm certificate table is malformed")]
    CertTable,
}

/// Attester over configfs-tsm for SEV-SNP or TDX guests.
#[derive(Debug, Clone)]
pub struct ConfigfsTsmAttester {
    platform: Platform,
    root: PathBuf,
}

impl ConfigfsTsmAttester {
    /// An attester for `platform` (`SevSnp` or `Tdx`) using [`TSM_REPORT_DIR`].
    pub fn new(platform: Platform) -> Self {
        Self {
            platform,
            root: PathBuf::from(TSM_REPORT_DIR),
        }
    }

    fn expected_provider(&self) -> &'static str {
        match self.platform {
            Platform::Tdx => "tdx_guest",
            _ => "sev_guest",
        }
    }
}

/// Splits an SEV-SNP certificate table into (VCEK or VLEK, ASK, ARK) DER blobs.
fn snp_certs(aux: &[u8]) -> Result<Vec<Vec<u8>>, TsmError> {
    let mut vek = None;
    let mut ask = None;
    let mut ark = None;
    for entry in aux.chunks(24) {
        let [g @ .., o0, o1, o2, o3, l0, l1, l2, l3] = entry else {
            return Err(TsmError::CertTable);
        };
        if g.iter().all(|&b| b == 0) {
            break;
        }
        let off = u32::from_le_bytes([*o0, *o1, *o2, *o3]) as usize;
        let len = u32::from_le_bytes([*l0, *l1, *l2, *l3]) as usize;
        let der = aux
            .get(off..off.checked_add(len).ok_or(TsmError::CertTable)?)
            .ok_or(TsmError::CertTable)?
            .to_vec();
        let guid: [u8; 16] = g.try_into().map_err(|_| TsmError::CertTable)?;
        match guid {
            VCEK_GUID | VLEK_GUID => vek = Some(der),
            ASK_GUID => ask = Some(der),
            ARK_GUID => ark = Some(der),
            _ => {}
        }
    }
    Ok([vek, ask, ark].into_iter().flatten().collect())
}

impl confide_attest::Attester for ConfigfsTsmAttester {
    fn platform(&self) -> Platform {
        self.platform
    }

    fn attest(&self, req: &AttestRequest) -> Result<Evidence, PlatformError> {
        let dir = self.root.join(format!(
            "confide-{}",
            hex::encode(rand::random::<[u8; 8]>())
        ));
        std::fs::create_dir(&dir).map_err(|_| TsmError::Io("cannot create a report entry"))?;
        let result = (|| -> Result<Evidence, TsmError> {
            std::fs::write(dir.join("inblob"), req.report_data)
                .map_err(|_| TsmError::Io("cannot write inblob"))?;
            let provider = std::fs::read_to_string(dir.join("provider"))
                .map_err(|_| TsmError::Io("cannot read provider"))?;
            if provider.trim() != self.expected_provider() {
                return Err(TsmError::Provider(self.expected_provider()));
            }
            let report = std::fs::read(dir.join("outblob"))
                .map_err(|_| TsmError::Io("cannot read outblob"))?;
            let certs = if self.platform == Platform::SevSnp {
                match std::fs::read(dir.join("auxblob")) {
                    Ok(aux) => snp_certs(&aux)?,
                    Err(_) => Vec::new(),
                }
            } else {
                Vec::new()
            };
            Ok(Evidence {
                platform: self.platform,
                report,
                certs,
                collateral: Vec::new(),
                binding: req.binding,
                gpu: req.gpu.clone(),
            })
        })();
        let _ = std::fs::remove_dir(&dir);
        Ok(result?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_layout_is_efi_mixed_endian() {
        assert_eq!(hex::encode(VCEK_GUID), "8d75da6364e66445adc5f4b93be8accd");
    }

    #[test]
    fn cert_table_parses_and_refuses_out_of_range() {
        let mut aux = Vec::new();
        let body_off = 24 * 3;
        for (g, off, len) in [(VCEK_GUID, body_off, 2u32), (ASK_GUID, body_off + 2, 1)] {
            aux.extend_from_slice(&g);
            aux.extend_from_slice(&(off as u32).to_le_bytes());
            aux.extend_from_slice(&len.to_le_bytes());
        }
        aux.extend_from_slice(&[0u8; 24]);
        aux.extend_from_slice(&[0x30, 0x01, 0x30]);
        assert_eq!(snp_certs(&aux).unwrap(), vec![vec![0x30, 0x01], vec![0x30]]);
        aux[20] = 0xff; // ASK length beyond the blob
        assert!(snp_certs(&aux).is_err());
    }
}
