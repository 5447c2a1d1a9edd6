//! Node-side attester over Linux configfs-tsm, for SEV-SNP and TDX guests.
//!
//! Implements the protocol of the kernel's `Documentation/ABI/testing/configfs-tsm`
//! (`/sys/kernel/config/tsm/report`):
//!
//! 1. `mkdir report/<entry>` (the kernel creates the attribute files);
//! 2. write the 64 bytes of REPORT_DATA to `inblob` (and `privlevel` if configured);
//! 3. read `generation`, `provider` (`sev_guest` / `tdx_guest`), `outblob` (the SNP report or
//!    TDX quote) and, for SNP, `auxblob` (the host-provided certificate table, GHCB spec
//!    §4.1.8.1 "certificate table": GUID, offset, length entries, zero-terminated);
//! 4. read `generation` again: if another writer changed the entry in between, the outblob
//!    may answer someone else's inblob, so the attempt fails ([`TsmError::Raced`]);
//! 5. `rmdir` the entry.
//!
//! This crate does file I/O by design: it is the node's hardware boundary. Tests run it
//! against a fake configfs tree with an emulated kernel (see `tests/`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use confide_attest::{AttestRequest, Attester, Evidence, Platform, PlatformError};

/// Default configfs-tsm report directory.
pub const DEFAULT_ROOT: &str = "/sys/kernel/config/tsm/report";

/// GHCB certificate-table GUIDs (AMD GHCB spec, "SNP Extended Guest Request").
pub const GUID_VCEK: &str = "63da758d-e664-4564-adc5-f4b93be8accd";
/// VLEK.
pub const GUID_VLEK: &str = "a8074bc2-a25a-483e-aae6-39c045a0b8a1";
/// ASK (or ASVK).
pub const GUID_ASK: &str = "4ab7b379-bbac-4fe4-a02f-05aef327c782";
/// ARK.
pub const GUID_ARK: &str = "c0b406a4-a803-4952-9743-3fb6014cd0ae";

/// configfs-tsm failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TsmError {
    /// A configfs operation failed.
    #[error("configfs-tsm {op} {path}: {source}")]
    Io {
        /// Operation.
        op: &'static str,
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// `provider` names a TSM we do not support.
    #[error("unsupported TSM provider {0:?}")]
    UnsupportedProvider(String),
    /// `generation` is not a decimal number.
    #[error("configfs-tsm generation is not a number")]
    BadGeneration,
    /// Another writer changed the entry while we used it.
    #[error("configfs-tsm entry changed concurrently (generation {before} -> {after})")]
    Raced {
        /// Generation after our write.
        before: u64,
        /// Generation after our read.
        after: u64,
    },
    /// The kernel did not produce an outblob in time.
    #[error("configfs-tsm produced no report within {0:?}")]
    Timeout(Duration),
    /// The auxblob certificate table is malformed.
    #[error("SNP certificate table malformed: {0}")]
    CertTable(&'static str),
    /// No VCEK/VLEK available (neither in auxblob nor configured).
    #[error("no VCEK/VLEK certificate chain available for the SNP report")]
    NoCertificates,
}

/// Attester over configfs-tsm.
#[derive(Debug, Clone)]
pub struct TsmAttester {
    root: PathBuf,
    privlevel: Option<u8>,
    fallback_certs: Vec<Vec<u8>>,
    collateral: Vec<u8>,
    wait: Duration,
    platform: Platform,
}

impl TsmAttester {
    /// Open configfs-tsm at `root` (normally [`DEFAULT_ROOT`]); the provider is probed once.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, TsmError> {
        let root = root.into();
        let mut a = TsmAttester {
            root,
            privlevel: None,
            fallback_certs: Vec::new(),
            collateral: Vec::new(),
            wait: Duration::from_secs(5),
            platform: Platform::SevSnp,
        };
        // Probe the provider with a throwaway entry.
        let entry = a.new_entry()?;
        let provider_path = entry.join("provider");
        let provider = wait_for(&[&provider_path], a.wait).and_then(|()| read_trim(&provider_path));
        let _ = std::fs::remove_dir(&entry);
        a.platform = provider_platform(&provider?)?;
        Ok(a)
    }

    /// SNP: request the report at this VMPL (`privlevel`, 0..=3).
    pub fn with_privlevel(mut self, level: u8) -> Self {
        self.privlevel = Some(level);
        self
    }

    /// SNP: certificate chain (VEK, ASK, ARK; DER) to use when the host supplies no auxblob,
    /// e.g. fetched once from AMD KDS at provisioning.
    pub fn with_certs(mut self, certs: Vec<Vec<u8>>) -> Self {
        self.fallback_certs = certs;
        self
    }

    /// TDX: collateral JSON (from a PCCS) to carry with every quote.
    pub fn with_collateral(mut self, collateral: Vec<u8>) -> Self {
        self.collateral = collateral;
        self
    }

    /// How long to wait for the kernel's attributes (only emulated trees ever wait).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    fn new_entry(&self) -> Result<PathBuf, TsmError> {
        let name = format!(
            "confide-{}-{}",
            std::process::id(),
            hex::encode(rand::random::<[u8; 6]>())
        );
        let p = self.root.join(name);
        std::fs::create_dir(&p).map_err(|e| io("mkdir", &p, e))?;
        Ok(p)
    }

    /// Produce raw outblob (+ auxblob) for `report_data`.
    pub fn raw_report(
        &self,
        report_data: &[u8; 64],
    ) -> Result<(Vec<u8>, Option<Vec<u8>>), TsmError> {
        let entry = self.new_entry()?;
        let result = self.raw_in(&entry, report_data);
        // Best effort: configfs removes the entry's attributes with it.
        let _ = std::fs::remove_dir(&entry);
        result
    }

    fn raw_in(
        &self,
        entry: &Path,
        report_data: &[u8; 64],
    ) -> Result<(Vec<u8>, Option<Vec<u8>>), TsmError> {
        if let Some(level) = self.privlevel {
            let p = entry.join("privlevel");
            std::fs::write(&p, level.to_string()).map_err(|e| io("write", &p, e))?;
        }
        let inblob = entry.join("inblob");
        std::fs::write(&inblob, report_data).map_err(|e| io("write", &inblob, e))?;
        let outblob_path = entry.join("outblob");
        let generation_path = entry.join("generation");
        wait_for(&[&outblob_path, &generation_path], self.wait)?;
        let before = generation(&generation_path)?;
        let outblob = std::fs::read(&outblob_path).map_err(|e| io("read", &outblob_path, e))?;
        let aux_path = entry.join("auxblob");
        let auxblob = match std::fs::read(&aux_path) {
            Ok(b) if !b.is_empty() => Some(b),
            Ok(_) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("read", &aux_path, e)),
        };
        let after = generation(&generation_path)?;
        if before != after {
            return Err(TsmError::Raced { before, after });
        }
        Ok((outblob, auxblob))
    }
}

impl Attester for TsmAttester {
    fn platform(&self) -> Platform {
        self.platform
    }

    fn attest(&self, req: &AttestRequest) -> Result<Evidence, PlatformError> {
        let (report, aux) = self.raw_report(&req.report_data)?;
        let (certs, collateral) = match self.platform {
            Platform::SevSnp => {
                let certs = match aux {
                    Some(a) => parse_cert_table(&a)?,
                    None => self.fallback_certs.clone(),
                };
                if certs.is_empty() {
                    return Err(TsmError::NoCertificates.into());
                }
                (certs, Vec::new())
            }
            _ => (Vec::new(), self.collateral.clone()),
        };
        Ok(Evidence {
            platform: self.platform,
            report,
            certs,
            collateral,
            binding: req.binding,
            gpu: req.gpu.clone(),
        })
    }
}

/// Wait until every path exists. Real configfs creates all attributes at mkdir, so this
/// returns at once there; only emulated trees (tests) ever wait.
fn wait_for(paths: &[&Path], wait: Duration) -> Result<(), TsmError> {
    let deadline = Instant::now() + wait;
    while !paths.iter().all(|p| p.exists()) {
        if Instant::now() >= deadline {
            return Err(TsmError::Timeout(wait));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

fn io(op: &'static str, p: &Path, source: std::io::Error) -> TsmError {
    TsmError::Io {
        op,
        path: p.display().to_string(),
        source,
    }
}

fn read_trim(p: &Path) -> Result<String, TsmError> {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .map_err(|e| io("read", p, e))
}

fn generation(p: &Path) -> Result<u64, TsmError> {
    read_trim(p)?.parse().map_err(|_| TsmError::BadGeneration)
}

fn provider_platform(provider: &str) -> Result<Platform, TsmError> {
    match provider {
        "sev_guest" => Ok(Platform::SevSnp),
        "tdx_guest" => Ok(Platform::Tdx),
        other => Err(TsmError::UnsupportedProvider(
            other.chars().take(32).collect(),
        )),
    }
}

/// Binary form of a GUID string as stored in the table (RFC 4122 fields 1-3 little-endian).
pub fn guid_bytes(s: &str) -> [u8; 16] {
    let hexs: String = s.chars().filter(|c| *c != '-').collect();
    let mut b = [0u8; 16];
    if let Ok(v) = hex::decode(hexs)
        && v.len() == 16
    {
        b.copy_from_slice(&v);
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

/// Parse a GHCB certificate table into `[VEK, ASK, ARK]` (ARK omitted if absent).
pub fn parse_cert_table(table: &[u8]) -> Result<Vec<Vec<u8>>, TsmError> {
    let (mut vek, mut ask, mut ark) = (None, None, None);
    let mut pos = 0usize;
    loop {
        let e = table
            .get(pos..pos + 24)
            .ok_or(TsmError::CertTable("unterminated table"))?;
        if e.iter().all(|&b| b == 0) {
            break;
        }
        let guid = &e[..16];
        let off = u32::from_le_bytes([e[16], e[17], e[18], e[19]]) as usize;
        let len = u32::from_le_bytes([e[20], e[21], e[22], e[23]]) as usize;
        let end = off
            .checked_add(len)
            .ok_or(TsmError::CertTable("length overflow"))?;
        let der = table
            .get(off..end)
            .ok_or(TsmError::CertTable("entry outside the table"))?
            .to_vec();
        if guid == guid_bytes(GUID_VCEK) || guid == guid_bytes(GUID_VLEK) {
            vek = Some(der);
        } else if guid == guid_bytes(GUID_ASK) {
            ask = Some(der);
        } else if guid == guid_bytes(GUID_ARK) {
            ark = Some(der);
        }
        pos += 24;
    }
    let mut out = vec![
        vek.ok_or(TsmError::CertTable("no VCEK/VLEK entry"))?,
        ask.ok_or(TsmError::CertTable("no ASK entry"))?,
    ];
    out.extend(ark);
    Ok(out)
}

/// Build a GHCB certificate table (used by emulated kernels in tests and by tooling).
pub fn build_cert_table(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let header = (entries.len() + 1) * 24;
    let mut table = Vec::new();
    let mut blobs = Vec::new();
    for (guid, der) in entries {
        table.extend_from_slice(&guid_bytes(guid));
        let off = u32::try_from(header + blobs.len()).unwrap_or(u32::MAX);
        table.extend_from_slice(&off.to_le_bytes());
        table.extend_from_slice(&u32::try_from(der.len()).unwrap_or(u32::MAX).to_le_bytes());
        blobs.extend_from_slice(der);
    }
    table.extend_from_slice(&[0u8; 24]);
    table.extend_from_slice(&blobs);
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_layout_is_mixed_endian() {
        assert_eq!(
            hex::encode(guid_bytes(GUID_VCEK)),
            "8d75da6364e66445adc5f4b93be8accd"
        );
    }

    #[test]
    fn cert_table_roundtrip_and_bounds() {
        let t = build_cert_table(&[(GUID_ARK, b"ark"), (GUID_VCEK, b"vcek"), (GUID_ASK, b"ask")]);
        assert_eq!(
            parse_cert_table(&t).unwrap(),
            vec![b"vcek".to_vec(), b"ask".to_vec(), b"ark".to_vec()]
        );
        for n in 0..t.len() {
            let _ = parse_cert_table(&t[..n]);
        }
        assert!(matches!(
            parse_cert_table(&t[..30]),
            Err(TsmError::CertTable(_))
        ));
        let no_ask = build_cert_table(&[(GUID_VCEK, b"vcek")]);
        assert!(matches!(
            parse_cert_table(&no_ask),
            Err(TsmError::CertTable(_))
        ));
    }
}
