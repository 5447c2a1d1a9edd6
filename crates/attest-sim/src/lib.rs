//! Simulated TEE platform: SEV-SNP-format evidence signed by a local simulated vendor chain.
//!
//! **This provides no protection at all.** It exists so that the whole system (node, RA-TLS,
//! client policy) runs, with the real verifier code path, on machines without a TEE.
//!
//! What it produces is byte-compatible with AMD's formats:
//! - a simulated ARK (RSA, self-signed, RSA-PSS/SHA-384) signs a simulated ASK, which signs a
//!   simulated VCEK certificate (ECDSA P-384 key) carrying AMD's VCEK extensions (blSPL,
//!   teeSPL, snpSPL, ucodeSPL, hwID) — see `confide-attest-snp` for what is checked;
//! - reports are ATTESTATION_REPORT version 3 (ABI spec 56860 Table 23, Milan CPUID), signed
//!   by the VCEK with ECDSA P-384/SHA-384 over bytes 0x000..0x2A0, exactly as firmware does.
//!
//! Fields: MEASUREMENT = what the node passes (by convention [`measure_binary`] of the node
//! executable), HOST_DATA = `binding_digest(model, config)`, REPORT_DATA = caller's,
//! FAMILY_ID = [`SIMULATED_FAMILY_ID`], IMAGE_ID[0..8] = creation time (LE seconds).
//!
//! Clients accept it only if their policy pins this vendor's root (`roots.simulated`) and sets
//! `allow_simulated = true`. Every tool that uses it prints [`SIMULATED_WARNING`].
//!
//! The [`tdx`] module is the Intel TDX twin (`simulated-tdx`): DCAP quote v4 and collateral
//! under a simulated Intel root, verified by `confide-attest-tdx` under `roots.simulated_tdx`.
//! The [`gpu`] module is the NVIDIA Hopper twin: an SPDM 1.1 GET_MEASUREMENTS exchange under a
//! simulated NVIDIA device root, verified by `confide-attest-nvidia` under
//! `roots.simulated_gpu`, accepted only inside simulated CPU evidence.

use std::path::Path;

use confide_attest::{
    AttestRequest, Attester, Evidence, Platform, PlatformError, UnixTime, binding_digest,
};
pub use confide_attest_snp::SIMULATED_FAMILY_ID;
use der::asn1::{BitString, OctetString, UtcTime};
use der::{Decode, Encode};
use p384::ecdsa::signature::Signer as _;
use rand_core::{CryptoRng, RngCore};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use sha2::{Digest, Sha384};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate};

pub mod gpu;
pub mod tdx;
pub use gpu::{SimulatedGpu, SimulatedGpuVendor};
pub use tdx::{SimulatedTdxAttester, SimulatedTdxVendor, TdMeasurements};

/// Printed by every tool that produces or accepts simulated evidence.
pub const SIMULATED_WARNING: &str = "WARNING: SIMULATED ATTESTATION. This evidence comes from a locally generated \
'simulated vendor', not from TEE hardware: it proves nothing about confidentiality. \
Use only for development and tests.";

/// The guest POLICY of a simulated launch without debug (ABI spec 56860 §4.3: bit 16 SMT
/// allowed, bit 17 reserved, must be one): what a release for the simulated platform pins.
pub const GUEST_POLICY: u64 = (1 << 16) | (1 << 17);

/// TCB the simulated firmware reports (and its VCEK certifies).
pub const SIM_TCB: SimTcb = SimTcb {
    bootloader: 4,
    tee: 0,
    snp: 22,
    microcode: 213,
};

/// A legacy (Milan/Genoa) TCB_VERSION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimTcb {
    /// Boot loader SPL.
    pub bootloader: u8,
    /// PSP OS SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub microcode: u8,
}

impl SimTcb {
    /// Legacy TCB_VERSION encoding: byte 0 bootloader, 1 tee, 6 snp, 7 microcode.
    pub fn to_bytes(self) -> [u8; 8] {
        [
            self.bootloader,
            self.tee,
            0,
            0,
            0,
            0,
            self.snp,
            self.microcode,
        ]
    }
}

/// Errors of the simulated vendor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// Key generation or signing failed.
    #[error("simulated vendor crypto failure: {0}")]
    Crypto(&'static str),
    /// Certificate encoding failed.
    #[error("simulated vendor certificate encoding failed")]
    Encoding,
    /// Reading or writing the vendor directory failed.
    #[error("simulated vendor directory {path}: {source}")]
    Io {
        /// Which file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The directory's files do not form one consistent vendor.
    #[error("simulated vendor directory is inconsistent: {0}")]
    Inconsistent(&'static str),
    /// A report buffer is not 1184 bytes.
    #[error("report buffer must be 1184 bytes")]
    ReportLength,
    /// A TD quote buffer is too short to hold its signature.
    #[error("quote buffer is too short for a TD quote v4")]
    QuoteLength,
    /// A simulated GPU measurement uses index 0 or 0xFF (SPDM request operations, not block
    /// indices), or there are more than 254 blocks.
    #[error("simulated GPU measurement block index {0} is not a valid SPDM block index")]
    GpuMeasurementIndex(u8),
}

/// Measurement convention for simulated nodes: SHA-384 of the node executable's bytes.
pub fn measure_binary(bytes: &[u8]) -> [u8; 48] {
    Sha384::digest(bytes).into()
}

/// A locally generated simulated vendor: ARK, ASK and one chip's VCEK.
pub struct SimulatedVendor {
    ark_der: Vec<u8>,
    ask_der: Vec<u8>,
    vcek_der: Vec<u8>,
    vcek_key: p384::ecdsa::SigningKey,
    chip_id: [u8; 64],
}

impl std::fmt::Debug for SimulatedVendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedVendor")
            .field("chip_id", &hex::encode(&self.chip_id[..8]))
            .field("vcek_key", &"opaque")
            .finish()
    }
}

// RSASSA-PSS-params (RFC 8017 A.2.3): SHA-384, MGF1-SHA-384, saltLength 48 — what AMD uses.
const PSS_SHA384_PARAMS: [u8; 54] = [
    0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
    0x02, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
    0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
    0x00, 0xa2, 0x03, 0x02, 0x01, 0x30,
];

fn pss_alg() -> Result<AlgorithmIdentifierOwned, SimError> {
    Ok(AlgorithmIdentifierOwned {
        oid: der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10"),
        parameters: Some(der::Any::from_der(&PSS_SHA384_PARAMS).map_err(|_| SimError::Encoding)?),
    })
}

fn ext(oid: &str, value: Vec<u8>) -> Result<x509_cert::ext::Extension, SimError> {
    Ok(x509_cert::ext::Extension {
        extn_id: der::oid::ObjectIdentifier::new(oid).map_err(|_| SimError::Encoding)?,
        critical: false,
        extn_value: OctetString::new(value).map_err(|_| SimError::Encoding)?,
    })
}

#[allow(clippy::too_many_arguments)]
fn issue<R: RngCore + CryptoRng>(
    rng: &mut R,
    serial: u8,
    issuer: &str,
    subject: &str,
    spki_der: &[u8],
    signer: &rsa::RsaPrivateKey,
    now: UnixTime,
    extensions: Option<Vec<x509_cert::ext::Extension>>,
) -> Result<Vec<u8>, SimError> {
    use std::str::FromStr;
    let day = 86_400u64;
    let t = |secs: u64| -> Result<Time, SimError> {
        UtcTime::from_unix_duration(std::time::Duration::from_secs(secs))
            .map(Time::UtcTime)
            .map_err(|_| SimError::Encoding)
    };
    let tbs = TbsCertificate {
        version: x509_cert::Version::V3,
        serial_number: SerialNumber::new(&[serial]).map_err(|_| SimError::Encoding)?,
        signature: pss_alg()?,
        issuer: Name::from_str(issuer).map_err(|_| SimError::Encoding)?,
        // Valid from a day ago (clock skew) for 20 years (UTCTime reaches 2049).
        validity: Validity {
            not_before: t(now.0.saturating_sub(day))?,
            not_after: t(now.0 + 20 * 365 * day)?,
        },
        subject: Name::from_str(subject).map_err(|_| SimError::Encoding)?,
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(spki_der)
            .map_err(|_| SimError::Encoding)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions,
    };
    let tbs_der = tbs.to_der().map_err(|_| SimError::Encoding)?;
    let key = rsa::pss::BlindedSigningKey::<Sha384>::new(signer.clone());
    let sig = key
        .try_sign_with_rng(rng, &tbs_der)
        .map_err(|_| SimError::Crypto("RSA-PSS signing"))?;
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: pss_alg()?,
        signature: BitString::from_bytes(&sig.to_vec()).map_err(|_| SimError::Encoding)?,
    };
    cert.to_der().map_err(|_| SimError::Encoding)
}

const ARK_NAME: &str = "CN=SIMULATED ARK,O=Confide Simulated Vendor (NOT A TEE)";
const ASK_NAME: &str = "CN=SIMULATED ASK,O=Confide Simulated Vendor (NOT A TEE)";
const VCEK_NAME: &str = "CN=SIMULATED VCEK,O=Confide Simulated Vendor (NOT A TEE)";

impl SimulatedVendor {
    /// Generate a fresh vendor in memory (RSA-2048 ARK/ASK, P-384 VCEK, random CHIP_ID).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R, now: UnixTime) -> Result<Self, SimError> {
        // RSA-2048 rather than AMD's 4096: the verifier does not depend on the size, and
        // generation stays fast enough for tests that create a vendor per run.
        let ark_key =
            rsa::RsaPrivateKey::new(rng, 2048).map_err(|_| SimError::Crypto("RSA keygen"))?;
        let ask_key =
            rsa::RsaPrivateKey::new(rng, 2048).map_err(|_| SimError::Crypto("RSA keygen"))?;
        let vcek_key = p384::ecdsa::SigningKey::random(rng);
        let mut chip_id = [0u8; 64];
        rng.fill_bytes(&mut chip_id);

        let spki = |k: &rsa::RsaPrivateKey| {
            k.to_public_key()
                .to_public_key_der()
                .map(|d| d.as_bytes().to_vec())
                .map_err(|_| SimError::Encoding)
        };
        let ark_der = issue(
            rng,
            1,
            ARK_NAME,
            ARK_NAME,
            &spki(&ark_key)?,
            &ark_key,
            now,
            None,
        )?;
        let ask_der = issue(
            rng,
            2,
            ARK_NAME,
            ASK_NAME,
            &spki(&ask_key)?,
            &ark_key,
            now,
            None,
        )?;
        let vcek_spki = vcek_key
            .verifying_key()
            .to_public_key_der()
            .map_err(|_| SimError::Encoding)?;
        let int = |v: u8| v.to_der().map_err(|_| SimError::Encoding);
        let hwid = OctetString::new(chip_id.to_vec())
            .and_then(|o| o.to_der())
            .map_err(|_| SimError::Encoding)?;
        let exts = vec![
            ext("1.3.6.1.4.1.3704.1.3.1", int(SIM_TCB.bootloader)?)?,
            ext("1.3.6.1.4.1.3704.1.3.2", int(SIM_TCB.tee)?)?,
            ext("1.3.6.1.4.1.3704.1.3.3", int(SIM_TCB.snp)?)?,
            ext("1.3.6.1.4.1.3704.1.3.8", int(SIM_TCB.microcode)?)?,
            ext("1.3.6.1.4.1.3704.1.4", hwid)?,
        ];
        let vcek_der = issue(
            rng,
            3,
            ASK_NAME,
            VCEK_NAME,
            vcek_spki.as_bytes(),
            &ask_key,
            now,
            Some(exts),
        )?;
        Ok(SimulatedVendor {
            ark_der,
            ask_der,
            vcek_der,
            vcek_key,
            chip_id,
        })
    }

    /// Load the vendor persisted in `dir`, or create one there on first use.
    ///
    /// Creation writes into a fresh sibling directory and renames it into place, so a
    /// crash never leaves a half-written vendor and two racing creators agree on one.
    pub fn load_or_create(dir: &Path) -> Result<Self, SimError> {
        if dir.join("vcek.der").exists() {
            return Self::load(dir);
        }
        let now = UnixTime::from_system_time(std::time::SystemTime::now());
        let v = Self::generate(&mut rand::rngs::OsRng, now)?;
        let key_der = v.vcek_key.to_pkcs8_der().map_err(|_| SimError::Encoding)?;
        let chip_id = hex::encode(v.chip_id);
        let files: [(&str, &[u8]); 5] = [
            ("ark.der", &v.ark_der),
            ("ask.der", &v.ask_der),
            ("vcek.der", &v.vcek_der),
            ("vcek.key", key_der.as_bytes()),
            ("chip_id.hex", chip_id.as_bytes()),
        ];
        if install_vendor_dir(dir, "vcek.der", &files)? {
            Ok(v)
        } else {
            // Another process won the race; use its vendor.
            Self::load(dir)
        }
    }

    /// Load a vendor from `dir` (see [`SimulatedVendor::load_or_create`]).
    pub fn load(dir: &Path) -> Result<Self, SimError> {
        let read = |name: &str| read_vendor_file(dir, name);
        let ark_der = read("ark.der")?;
        let ask_der = read("ask.der")?;
        let vcek_der = read("vcek.der")?;
        let vcek_key = p384::ecdsa::SigningKey::from_pkcs8_der(&read("vcek.key")?)
            .map_err(|_| SimError::Inconsistent("vcek.key is not a P-384 PKCS#8 key"))?;
        let chip_hex = read("chip_id.hex")?;
        let chip = hex::decode(chip_hex.trim_ascii())
            .map_err(|_| SimError::Inconsistent("chip_id.hex is not hex"))?;
        let chip_id: [u8; 64] = chip
            .try_into()
            .map_err(|_| SimError::Inconsistent("chip_id.hex is not 64 bytes"))?;
        let cert = Certificate::from_der(&vcek_der)
            .map_err(|_| SimError::Inconsistent("vcek.der does not parse"))?;
        let pk = cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        if pk != vcek_key.verifying_key().to_encoded_point(false).as_bytes() {
            return Err(SimError::Inconsistent("vcek.key does not match vcek.der"));
        }
        Ok(SimulatedVendor {
            ark_der,
            ask_der,
            vcek_der,
            vcek_key,
            chip_id,
        })
    }

    /// The simulated root (ARK), DER. Pin this in a policy's `roots.simulated`.
    pub fn root_der(&self) -> &[u8] {
        &self.ark_der
    }

    /// The simulated root as PEM.
    pub fn root_pem(&self) -> String {
        pem_certificate(&self.ark_der)
    }

    /// Chain as carried in evidence: VCEK, ASK, ARK (DER).
    pub fn chain(&self) -> Vec<Vec<u8>> {
        vec![
            self.vcek_der.clone(),
            self.ask_der.clone(),
            self.ark_der.clone(),
        ]
    }

    /// The simulated chip's CHIP_ID.
    pub fn chip_id(&self) -> [u8; 64] {
        self.chip_id
    }

    /// Build and sign an ATTESTATION_REPORT (version 3).
    pub fn report(&self, f: &ReportFields) -> Result<Vec<u8>, SimError> {
        let mut r = vec![0u8; confide_attest_snp::REPORT_LEN];
        let tcb = SIM_TCB.to_bytes();
        // Guest POLICY: bit 16 SMT allowed, bit 17 reserved-must-be-one, bit 19 DEBUG.
        let policy: u64 = GUEST_POLICY | if f.debug { 1 << 19 } else { 0 };
        r[0x00..0x04].copy_from_slice(&3u32.to_le_bytes());
        r[0x08..0x10].copy_from_slice(&policy.to_le_bytes());
        r[0x10..0x20].copy_from_slice(&SIMULATED_FAMILY_ID);
        r[0x20..0x28].copy_from_slice(&f.now.0.to_le_bytes());
        r[0x34..0x38].copy_from_slice(&1u32.to_le_bytes()); // ECDSA P-384 with SHA-384
        r[0x38..0x40].copy_from_slice(&tcb); // CURRENT_TCB
        r[0x50..0x90].copy_from_slice(&f.report_data);
        r[0x90..0xC0].copy_from_slice(&f.measurement);
        r[0xC0..0xE0].copy_from_slice(&f.host_data);
        r[0x140..0x160].copy_from_slice(&Sha384::digest(f.report_data)[..32]); // REPORT_ID
        r[0x180..0x188].copy_from_slice(&tcb); // REPORTED_TCB
        r[0x188] = 0x19; // CPUID family (Zen 3, as Milan)
        r[0x189] = 0x01; // model
        r[0x18A] = 0x01; // stepping
        r[0x1A0..0x1E0].copy_from_slice(&self.chip_id);
        r[0x1E0..0x1E8].copy_from_slice(&tcb); // COMMITTED_TCB
        r[0x1E8..0x1EB].copy_from_slice(&[0x0B, 0x37, 0x01]); // current build/minor/major
        r[0x1EC..0x1EF].copy_from_slice(&[0x0B, 0x37, 0x01]); // committed
        r[0x1F0..0x1F8].copy_from_slice(&tcb); // LAUNCH_TCB
        self.sign_report(&mut r)?;
        Ok(r)
    }

    /// (Re-)sign bytes 0x000..0x2A0 of a report in place, as firmware would.
    ///
    /// Public so that tests can change one field of a report and still present a valid
    /// signature, reaching the check *behind* the signature.
    pub fn sign_report(&self, report: &mut [u8]) -> Result<(), SimError> {
        if report.len() != confide_attest_snp::REPORT_LEN {
            return Err(SimError::ReportLength);
        }
        let sig: p384::ecdsa::Signature = self.vcek_key.sign(&report[..0x2A0]);
        let bytes = sig.to_bytes();
        // AMD signature format: R and S little-endian, each zero-extended to 72 bytes.
        let (rr, ss) = bytes.split_at(48);
        let out = &mut report[0x2A0..];
        out.fill(0);
        for (i, b) in rr.iter().rev().enumerate() {
            out[i] = *b;
        }
        for (i, b) in ss.iter().rev().enumerate() {
            out[72 + i] = *b;
        }
        Ok(())
    }
}

/// Inputs of one simulated report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFields {
    /// REPORT_DATA.
    pub report_data: [u8; 64],
    /// MEASUREMENT (by convention [`measure_binary`] of the node executable).
    pub measurement: [u8; 48],
    /// HOST_DATA (by convention `binding_digest(model, config)`).
    pub host_data: [u8; 32],
    /// Set the DEBUG policy bit.
    pub debug: bool,
    /// Creation time, signed into IMAGE_ID.
    pub now: UnixTime,
}

/// One DER certificate as PEM (RFC 7468), 64-character lines.
pub(crate) fn pem_certificate(der: &[u8]) -> String {
    use std::fmt::Write as _;
    let b64 = base64_lite::encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        let _ = writeln!(s, "{}", String::from_utf8_lossy(line));
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

/// Install a simulated vendor's `files` as `dir`, atomically: they are written into a
/// fresh sibling directory that is then renamed into place, so a crash never leaves a
/// half-written vendor and two racing creators agree on one. Returns `false` when another
/// process installed `dir` first (its `marker` file exists): the caller loads that one.
pub(crate) fn install_vendor_dir(
    dir: &Path,
    marker: &str,
    files: &[(&str, &[u8])],
) -> Result<bool, SimError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("vendor"),
        hex::encode(rand::random::<[u8; 8]>())
    ));
    std::fs::create_dir(&tmp).map_err(|e| io_error(&tmp, e))?;
    for (name, bytes) in files {
        let p = tmp.join(name);
        write_private(&p, bytes).map_err(|e| io_error(&p, e))?;
    }
    match std::fs::rename(&tmp, dir) {
        Ok(()) => Ok(true),
        Err(_) if dir.join(marker).exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(false)
        }
        Err(e) => Err(io_error(dir, e)),
    }
}

/// Read one file of a persisted vendor.
pub(crate) fn read_vendor_file(dir: &Path, name: &str) -> Result<Vec<u8>, SimError> {
    let p = dir.join(name);
    std::fs::read(&p).map_err(|e| io_error(&p, e))
}

fn io_error(path: &Path, source: std::io::Error) -> SimError {
    SimError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(crate) fn write_private(p: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let mut f = o.open(p)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// The node-side simulated attester: a vendor plus the node's measurement.
pub struct SimulatedAttester {
    vendor: SimulatedVendor,
    measurement: [u8; 48],
}

impl SimulatedAttester {
    /// `measurement` is normally [`measure_binary`] of `std::env::current_exe()`'s bytes.
    pub fn new(vendor: SimulatedVendor, measurement: [u8; 48]) -> Self {
        SimulatedAttester {
            vendor,
            measurement,
        }
    }

    /// The vendor.
    pub fn vendor(&self) -> &SimulatedVendor {
        &self.vendor
    }
}

impl Attester for SimulatedAttester {
    fn platform(&self) -> Platform {
        Platform::Simulated
    }

    fn attest(&self, req: &AttestRequest) -> Result<Evidence, PlatformError> {
        let host_data = req
            .binding
            .map(|b| binding_digest(&b.model_digest, &b.config_digest))
            .unwrap_or([0; 32]);
        let report = self.vendor.report(&ReportFields {
            report_data: req.report_data,
            measurement: self.measurement,
            host_data,
            debug: false,
            now: req.now,
        })?;
        Ok(Evidence {
            platform: Platform::Simulated,
            report,
            certs: self.vendor.chain(),
            collateral: Vec::new(),
            binding: req.binding,
            gpu: req.gpu.clone(),
        })
    }
}

mod base64_lite {
    /// Standard base64 with padding (RFC 4648 §4), for PEM output.
    pub fn encode(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
        for c in data.chunks(3) {
            let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= c.len() {
                    s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use confide_attest::{AttestRequest, Attester, Binding, Evidence, UnixTime, report_data};

    /// The request both simulated CPU platforms' tests attest: report data over the
    /// key `b"spki"`, model digest all 1s, config digest all 2s, no GPU. Returns the
    /// report data and the evidence as a verifier would decode it off the wire.
    pub(crate) fn attest_fixed(att: &impl Attester, now: UnixTime) -> ([u8; 64], Evidence) {
        let rd = report_data(b"spki", None);
        let binding = Binding {
            model_digest: [1; 32],
            config_digest: [2; 32],
        };
        let ev = att
            .attest(&AttestRequest {
                report_data: rd,
                binding: Some(binding),
                gpu: None,
                now,
            })
            .unwrap();
        (rd, Evidence::decode(&ev.encode()).unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confide_attest::{TrustPolicy, verify_with};
    use confide_attest_snp::SnpVerifier;

    const NOW: UnixTime = UnixTime(1_780_000_000);

    #[test]
    fn simulated_evidence_verifies_through_the_snp_path_only_when_pinned() {
        // load_or_create dates its certificates from the real clock.
        let now = UnixTime::from_system_time(std::time::SystemTime::now());
        let dir = tempfile::tempdir().unwrap();
        let vdir = dir.path().join("vendor");
        let vendor = SimulatedVendor::load_or_create(&vdir).unwrap();
        // Second load reads the same vendor back.
        let again = SimulatedVendor::load_or_create(&vdir).unwrap();
        assert_eq!(again.root_der(), vendor.root_der());
        assert_eq!(again.chip_id(), vendor.chip_id());

        let root = vendor.root_der().to_vec();
        let att = SimulatedAttester::new(vendor, measure_binary(b"node binary"));
        let (rd, ev) = crate::test_support::attest_fixed(&att, now);

        let production = TrustPolicy::production();
        let err = verify_with(&SnpVerifier::new(), None, &ev, &rd, now, &production).unwrap_err();
        assert!(matches!(err, confide_attest::Error::SimulatedNotAllowed));

        let policy = TrustPolicy::production().with_simulated_root(root);
        let v = verify_with(&SnpVerifier::new(), None, &ev, &rd, now, &policy).unwrap();
        assert!(v.is_simulated());
        assert_eq!(v.model_digest(), Some([1; 32]));
        assert_eq!(v.config_digest(), Some([2; 32]));
        assert_eq!(v.measurement(), &measure_binary(b"node binary")[..]);
        assert_eq!(v.signed_time(), Some(now.0));
        assert_eq!(v.report_version(), 3);

        // The policy round-trips through TOML with the simulated root named.
        let p2 = TrustPolicy::from_toml(&policy.to_toml()).unwrap();
        assert_eq!(p2, policy);
    }

    #[test]
    fn root_pem_parses_back() {
        let v = SimulatedVendor::generate(&mut rand::rngs::OsRng, NOW).unwrap();
        let certs = confide_attest::input::pem_certificates(&v.root_pem()).unwrap();
        assert_eq!(certs, vec![v.root_der().to_vec()]);
    }
}
