//! The platform-neutral evidence container and the REPORT_DATA layout.
//!
//! # Wire format (version 1)
//!
//! All integers big-endian. Every length is bounded; no trailing bytes are allowed.
//!
//! ```text
//! magic          4   "CFEV"
//! format         1   0x01
//! platform       1   1 = sev-snp, 2 = tdx, 4 = simulated (SNP format),
//!                    5 = simulated-tdx (TDX quote format)   (3 = nvidia is GPU-only)
//! flags          1   bit0: model/config digests present; bit1: GPU evidence present
//! report         u32 len + bytes        (<= 64 KiB) SNP report / TDX quote
//! certs          u8 count (<= 8) + count * (u32 len + DER) (<= 16 KiB each), leaf first
//! collateral     u32 len + bytes        (<= 512 KiB) TDX / simulated-TDX collateral JSON;
//!                                       empty otherwise
//! [bit0] model_digest 32, config_digest 32
//! [bit1] gpu: u32 len + SPDM request||response (<= 64 KiB),
//!             u8 count (<= 8) + count * (u32 len + DER), leaf first
//! ```
//!
//! # REPORT_DATA (64 bytes) — what the node asks the hardware to sign
//!
//! ```text
//! REPORT_DATA[0..32]  = SHA-256(key binding)
//! REPORT_DATA[32..64] = SHA-256(GpuEvidence::encode())  when GPU evidence is attached
//!                     = 32 zero bytes                     otherwise
//! ```
//!
//! The key binding is what the caller passes to [`report_data`]. For a node's RA-TLS
//! certificate it is `confide_ratls::report_data`'s preimage: a label, the certificate's
//! notBefore and notAfter, then the DER SubjectPublicKeyInfo of its key, so the evidence
//! binds the certificate's validity as well as its key (ADR 0602). This crate checks the
//! 64 bytes as given and never needs to know which.
//!
//! The GPU SPDM GET_MEASUREMENTS nonce is `REPORT_DATA[0..32]` as well, so the GPU report is
//! as fresh as the TLS key and bound to it; the CPU report then binds the GPU report's digest,
//! so one verification covers CPU and GPU.
//!
//! # Model/config binding
//!
//! SNP `HOST_DATA` (32 bytes) and TDX `MRCONFIGID` (48 bytes, first 32; rest zero) hold
//! [`binding_digest`]`(model, config)` = SHA-256(model_digest || config_digest). Both fields are
//! set by the host at launch and covered by the hardware signature; the two digests travel in
//! clear in the container and the verifier recomputes the binding (ADR 0201).

use sha2::{Digest, Sha256};

use crate::Error;

/// Which TEE produced a piece of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Platform {
    /// AMD SEV-SNP confidential VM.
    SevSnp,
    /// Intel TDX trust domain.
    Tdx,
    /// NVIDIA Hopper GPU in confidential-computing mode (GPU evidence only).
    Nvidia,
    /// Simulated SEV-SNP: SEV-SNP report format under a locally generated "simulated AMD"
    /// root. NOT a TEE.
    Simulated,
    /// Simulated Intel TDX: a DCAP quote v4 and its collateral under a locally generated
    /// "simulated Intel" root. NOT a TEE.
    SimulatedTdx,
}

impl Platform {
    /// Canonical lowercase name used in policies and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Platform::SevSnp => "sev-snp",
            Platform::Tdx => "tdx",
            Platform::Nvidia => "nvidia",
            Platform::Simulated => "simulated",
            Platform::SimulatedTdx => "simulated-tdx",
        }
    }

    /// True for the simulated platforms: evidence that proves nothing about confidentiality.
    /// Every tool that shows or accepts such evidence must say so.
    pub fn is_simulated(self) -> bool {
        matches!(self, Platform::Simulated | Platform::SimulatedTdx)
    }

    /// The hardware platform whose report format this platform's evidence uses (a simulated
    /// platform produces its twin's format byte for byte; REPORT_DATA sits where it does on
    /// the twin). `None` for GPU-only evidence, which has no CPU report.
    pub fn report_format(self) -> Option<Platform> {
        match self {
            Platform::SevSnp | Platform::Simulated => Some(Platform::SevSnp),
            Platform::Tdx | Platform::SimulatedTdx => Some(Platform::Tdx),
            Platform::Nvidia => None,
        }
    }

    /// Container tag byte.
    pub fn tag(self) -> u8 {
        match self {
            Platform::SevSnp => 1,
            Platform::Tdx => 2,
            Platform::Nvidia => 3,
            Platform::Simulated => 4,
            Platform::SimulatedTdx => 5,
        }
    }

    /// Inverse of [`Platform::tag`].
    pub fn from_tag(tag: u8) -> Result<Self, Error> {
        match tag {
            1 => Ok(Platform::SevSnp),
            2 => Ok(Platform::Tdx),
            3 => Ok(Platform::Nvidia),
            4 => Ok(Platform::Simulated),
            5 => Ok(Platform::SimulatedTdx),
            t => Err(Error::UnknownPlatformTag(t)),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "sev-snp" | "snp" => Ok(Platform::SevSnp),
            "tdx" => Ok(Platform::Tdx),
            "nvidia" => Ok(Platform::Nvidia),
            "simulated" => Ok(Platform::Simulated),
            "simulated-tdx" => Ok(Platform::SimulatedTdx),
            _ => Err(Error::UnknownPlatformName),
        }
    }
}

/// GPU evidence: the SPDM GET_MEASUREMENTS request+response and the device certificate chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuEvidence {
    /// SPDM request followed by the signed response, exactly as exchanged.
    pub spdm: Vec<u8>,
    /// Device certificate chain, DER, leaf first (root may be omitted; the policy pins it).
    pub certs: Vec<Vec<u8>>,
}

impl GpuEvidence {
    /// Canonical encoding (the GPU part of the container wire format).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.spdm.len() + 64);
        put_blob(&mut out, &self.spdm);
        put_certs(&mut out, &self.certs);
        out
    }

    /// SHA-256 of [`GpuEvidence::encode`]: the value bound in `REPORT_DATA[32..64]`.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }
}

/// Model and configuration digests a node is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// SHA-256 of the model file.
    pub model_digest: [u8; 32],
    /// SHA-256 of the node configuration.
    pub config_digest: [u8; 32],
}

/// SHA-256(model_digest || config_digest): the value placed in SNP HOST_DATA / TDX MRCONFIGID.
pub fn binding_digest(model_digest: &[u8; 32], config_digest: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(model_digest);
    h.update(config_digest);
    h.finalize().into()
}

/// Build the 64-byte REPORT_DATA a node asks the hardware to sign (layout in module docs).
pub fn report_data(tls_spki_der: &[u8], gpu: Option<&GpuEvidence>) -> [u8; 64] {
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&Sha256::digest(tls_spki_der));
    if let Some(g) = gpu {
        rd[32..].copy_from_slice(&g.digest());
    }
    rd
}

/// The nonce a node must send in the GPU's SPDM GET_MEASUREMENTS request.
pub fn gpu_nonce(tls_spki_der: &[u8]) -> [u8; 32] {
    Sha256::digest(tls_spki_der).into()
}

/// One piece of attestation evidence, as carried in the RA-TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// Platform that claims to have produced `report`.
    pub platform: Platform,
    /// SEV-SNP attestation report (1184 bytes) or TDX quote.
    pub report: Vec<u8>,
    /// Endorsement chain, DER, leaf first (VCEK/VLEK[, ASK[, ARK]]). Empty for TDX (the
    /// PCK chain is inside the quote).
    pub certs: Vec<Vec<u8>>,
    /// TDX collateral (dcap-qvl `QuoteCollateralV3` JSON); empty for other platforms.
    pub collateral: Vec<u8>,
    /// Model/config digests bound through HOST_DATA / MRCONFIGID.
    pub binding: Option<Binding>,
    /// GPU evidence bound through REPORT_DATA[32..64].
    pub gpu: Option<GpuEvidence>,
}

const MAGIC: &[u8; 4] = b"CFEV";
const FORMAT: u8 = 1;
const MAX_REPORT: usize = 64 * 1024;
const MAX_CERT: usize = 16 * 1024;
const MAX_CERTS: usize = 8;
const MAX_COLLATERAL: usize = 512 * 1024;
const FLAG_BINDING: u8 = 1;
const FLAG_GPU: u8 = 2;

fn put_blob(out: &mut Vec<u8>, b: &[u8]) {
    // Lengths are bounded far below u32::MAX by the decoder; an encoder given a larger
    // blob would produce a container the decoder rejects, which is the safe direction.
    let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
}

fn put_certs(out: &mut Vec<u8>, certs: &[Vec<u8>]) {
    out.push(u8::try_from(certs.len()).unwrap_or(u8::MAX));
    for c in certs {
        put_blob(out, c);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Error> {
        if self.buf.len() < n {
            return Err(Error::Truncated(field));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, Error> {
        Ok(self.take(1, field)?[0])
    }
    fn blob(&mut self, field: &'static str, limit: usize) -> Result<&'a [u8], Error> {
        let l = self.take(4, field)?;
        let len = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
        if len > limit {
            return Err(Error::FieldTooLong { field, len, limit });
        }
        self.take(len, field)
    }
    fn certs(&mut self, field: &'static str) -> Result<Vec<Vec<u8>>, Error> {
        let n = self.u8(field)? as usize;
        if n > MAX_CERTS {
            return Err(Error::FieldTooLong {
                field,
                len: n,
                limit: MAX_CERTS,
            });
        }
        (0..n)
            .map(|_| self.blob(field, MAX_CERT).map(<[u8]>::to_vec))
            .collect()
    }
    fn array32(&mut self, field: &'static str) -> Result<[u8; 32], Error> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32, field)?);
        Ok(a)
    }
}

impl Evidence {
    /// Serialize to the container wire format.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.report.len() + self.collateral.len() + 4096);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.push(self.platform.tag());
        let mut flags = 0;
        if self.binding.is_some() {
            flags |= FLAG_BINDING;
        }
        if self.gpu.is_some() {
            flags |= FLAG_GPU;
        }
        out.push(flags);
        put_blob(&mut out, &self.report);
        put_certs(&mut out, &self.certs);
        put_blob(&mut out, &self.collateral);
        if let Some(b) = &self.binding {
            out.extend_from_slice(&b.model_digest);
            out.extend_from_slice(&b.config_digest);
        }
        if let Some(g) = &self.gpu {
            out.extend_from_slice(&g.encode());
        }
        out
    }

    /// Parse the container wire format; every length is bounded and no bytes may remain.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader { buf: bytes };
        if r.take(4, "magic")? != MAGIC {
            return Err(Error::BadMagic);
        }
        let format = r.u8("format")?;
        if format != FORMAT {
            return Err(Error::UnsupportedFormat(format));
        }
        let platform = Platform::from_tag(r.u8("platform")?)?;
        if platform == Platform::Nvidia {
            return Err(Error::GpuAsCpuPlatform);
        }
        let flags = r.u8("flags")?;
        if flags & !(FLAG_BINDING | FLAG_GPU) != 0 {
            return Err(Error::ReservedFlags(flags));
        }
        let report = r.blob("report", MAX_REPORT)?.to_vec();
        let certs = r.certs("certs")?;
        let collateral = r.blob("collateral", MAX_COLLATERAL)?.to_vec();
        let binding = if flags & FLAG_BINDING != 0 {
            Some(Binding {
                model_digest: r.array32("model_digest")?,
                config_digest: r.array32("config_digest")?,
            })
        } else {
            None
        };
        let gpu = if flags & FLAG_GPU != 0 {
            Some(GpuEvidence {
                spdm: r.blob("gpu spdm", MAX_REPORT)?.to_vec(),
                certs: r.certs("gpu certs")?,
            })
        } else {
            None
        };
        if !r.buf.is_empty() {
            return Err(Error::TrailingBytes(r.buf.len()));
        }
        Ok(Evidence {
            platform,
            report,
            certs,
            collateral,
            binding,
            gpu,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Evidence {
        Evidence {
            platform: Platform::Tdx,
            report: vec![1, 2, 3],
            certs: vec![vec![4; 10], vec![5; 3]],
            collateral: b"{}".to_vec(),
            binding: Some(Binding {
                model_digest: [7; 32],
                config_digest: [8; 32],
            }),
            gpu: Some(GpuEvidence {
                spdm: vec![9; 50],
                certs: vec![vec![1; 5]],
            }),
        }
    }

    #[test]
    fn roundtrip() {
        let e = sample();
        assert_eq!(Evidence::decode(&e.encode()).unwrap(), e);
        let mut plain = sample();
        plain.binding = None;
        plain.gpu = None;
        assert_eq!(Evidence::decode(&plain.encode()).unwrap(), plain);
    }

    #[test]
    fn every_truncation_fails_closed() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(
                Evidence::decode(&bytes[..n]).is_err(),
                "prefix {n} accepted"
            );
        }
    }

    #[test]
    fn trailing_and_flags_and_magic() {
        let mut b = sample().encode();
        b.push(0);
        assert!(matches!(Evidence::decode(&b), Err(Error::TrailingBytes(1))));
        let mut b = sample().encode();
        b[6] |= 0x80;
        assert!(matches!(Evidence::decode(&b), Err(Error::ReservedFlags(_))));
        let mut b = sample().encode();
        b[0] = b'X';
        assert!(matches!(Evidence::decode(&b), Err(Error::BadMagic)));
        let mut b = sample().encode();
        b[5] = 3;
        assert!(matches!(Evidence::decode(&b), Err(Error::GpuAsCpuPlatform)));
    }

    #[test]
    fn platform_names_tags_and_formats() {
        for p in [
            Platform::SevSnp,
            Platform::Tdx,
            Platform::Nvidia,
            Platform::Simulated,
            Platform::SimulatedTdx,
        ] {
            assert_eq!(Platform::from_tag(p.tag()).unwrap(), p);
            assert_eq!(p.name().parse::<Platform>().unwrap(), p);
        }
        assert_eq!(Platform::SimulatedTdx.name(), "simulated-tdx");
        assert_eq!(Platform::SimulatedTdx.tag(), 5);
        assert!(Platform::Simulated.is_simulated() && Platform::SimulatedTdx.is_simulated());
        assert!(!Platform::Tdx.is_simulated() && !Platform::SevSnp.is_simulated());
        assert_eq!(Platform::SimulatedTdx.report_format(), Some(Platform::Tdx));
        assert_eq!(Platform::Simulated.report_format(), Some(Platform::SevSnp));
        assert_eq!(Platform::Nvidia.report_format(), None);
        assert!(matches!(
            Platform::from_tag(6),
            Err(Error::UnknownPlatformTag(6))
        ));
    }

    #[test]
    fn report_data_layout() {
        let spki = b"spki";
        let g = sample().gpu.unwrap();
        let rd = report_data(spki, Some(&g));
        assert_eq!(&rd[..32], &Sha256::digest(spki)[..]);
        assert_eq!(rd[32..], g.digest());
        assert_eq!(report_data(spki, None)[32..], [0u8; 32]);
        assert_eq!(gpu_nonce(spki), rd[..32]);
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Evidence::decode(&bytes);
        }
    }
}
