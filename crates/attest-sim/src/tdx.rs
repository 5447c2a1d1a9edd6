//! Simulated Intel TDX: DCAP quote v4 and its collateral under a locally generated
//! "simulated Intel" PKI. **No protection at all**; see the crate docs.
//!
//! What is simulated, and how it matches Intel's formats byte for byte:
//!
//! - PKI (Intel "PCK Certificate and CRL Profile"): a self-signed ECDSA P-256 root (as the
//!   Intel SGX Root CA) issues a PCK Platform CA, which issues the PCK leaf carrying the SGX
//!   extension `1.2.840.113741.1.13.1` (PPID, TCB with 16 components + PCESVN + CPUSVN, PCE-ID,
//!   FMSPC, SGX type, platform instance id, configuration); the root also issues the TCB
//!   signing certificate that signs TCB Info and QE Identity. Root CA CRL (by the root) and
//!   PCK CRL (by the PCK CA) are ordinary X.509 v2 CRLs.
//! - Quote (Intel TDX DCAP Quoting Library API, "Quote Format" v4): 48-byte header (version 4,
//!   key type 2, TEE type 0x81, Intel's QE vendor id), 584-byte TD report body, then the
//!   signature data: ECDSA P-256 signature over header||body by the attestation key, the raw
//!   attestation public key, and certification data type 6 (QE report, its PCK signature, QE
//!   authentication data, certification data type 5 = PEM PCK chain leaf..root). The QE report
//!   binds SHA-256(attestation key || QE auth data) in its REPORTDATA, as the real QE does.
//! - Collateral: TCB Info v3 (`id: "TDX"`) and QE Identity v2 (`id: "TD_QE"`) JSON signed by
//!   the TCB signing key (raw r||s, as Intel's PCS serves them), with their issuer chains and
//!   both CRLs, in the `QuoteCollateralV3` JSON form `confide-attest-tdx` reads.
//!
//! TD report fields: REPORTDATA = caller's; MRTD and RTMR0..3 = what the attester is configured
//! with (see [`TdMeasurements`]); MRCONFIGID = `binding_digest(model, config)` then 16 zero
//! bytes (the real TDX binding field); MROWNER = [`SIMULATED_TDX_MR_OWNER`];
//! MROWNERCONFIG[0..8] = creation time (little-endian seconds; the rest zero), signed like every
//! other body field — the TDX counterpart of the simulated SNP report's IMAGE_ID.
//! TD_ATTRIBUTES = SEPT_VE_DISABLE (bit 28), plus DEBUG (bit 0) only when asked for.

use std::path::Path;

use confide_attest::{
    AttestRequest, Attester, Evidence, Platform, PlatformError, UnixTime, binding_digest,
};
pub use confide_attest_tdx::SIMULATED_TDX_MR_OWNER;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use sha2::{Digest, Sha256, Sha384};

use crate::{SimError, pem_certificate};

/// FMSPC of the simulated platform ("CFSIM" then 0x00: no real FMSPC starts with ASCII).
pub const SIM_TDX_FMSPC: [u8; 6] = *b"CFSIM\0";
/// CPUSVN the simulated PCK certifies (= the 16 SGX TCB components), shaped like a real
/// Sapphire Rapids platform's.
pub const SIM_CPU_SVN: [u8; 16] = [2, 2, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0];
/// PCESVN the simulated PCK certifies.
pub const SIM_PCE_SVN: u16 = 11;
/// TEE_TCB_SVN of the simulated TDX module: ISVSVN 3, module version 1 (TCB Info identity
/// `TDX_01`), late microcode SVN 2.
pub const SIM_TEE_TCB_SVN: [u8; 16] = [3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// ISVSVN of the simulated TD quoting enclave.
pub const SIM_QE_ISVSVN: u16 = 4;
/// ISVPRODID of Intel's TD QE.
const QE_ISVPRODID: u16 = 2;
/// TCB evaluation data number written into the simulated collateral.
const TCB_EVAL_NUMBER: u32 = 17;
/// How long simulated TCB Info / QE Identity / CRLs stay valid: 30 days, Intel's cadence.
pub const SIM_COLLATERAL_VALIDITY_SECS: u64 = 30 * 86_400;
/// Collateral is dated this far in the past, so a verifier whose clock lags the node's
/// still sees an issue date that is not in the future.
const COLLATERAL_BACKDATE_SECS: u64 = 3_600;

const HEADER_LEN: usize = 48;
const TD_REPORT_LEN: usize = 584;
/// Header and TD report body: the bytes the attestation key signs.
pub const SIGNED_LEN: usize = HEADER_LEN + TD_REPORT_LEN;
const QE_REPORT_LEN: usize = 384;

// Offsets inside the TD report body (TDX Module ABI, TDREPORT/TDINFO as carried by quote v4).
const TD_TEE_TCB_SVN: usize = 0;
const TD_MR_SEAM: usize = 16;
const TD_TD_ATTRIBUTES: usize = 120;
const TD_XFAM: usize = 128;
const TD_MR_TD: usize = 136;
const TD_MR_CONFIG_ID: usize = 184;
const TD_MR_OWNER: usize = 232;
const TD_MR_OWNER_CONFIG: usize = 280;
const TD_RTMR0: usize = 328;
const TD_REPORT_DATA: usize = 520;

/// Offset of REPORTDATA in a quote v4 (header + body offset).
pub const QUOTE_REPORT_DATA: usize = HEADER_LEN + TD_REPORT_DATA;
/// Offset of TD_ATTRIBUTES in a quote v4.
pub const QUOTE_TD_ATTRIBUTES: usize = HEADER_LEN + TD_TD_ATTRIBUTES;
/// Offset of MRTD in a quote v4.
pub const QUOTE_MR_TD: usize = HEADER_LEN + TD_MR_TD;
/// Offset of MRCONFIGID in a quote v4.
pub const QUOTE_MR_CONFIG_ID: usize = HEADER_LEN + TD_MR_CONFIG_ID;
/// Offset of MROWNER in a quote v4.
pub const QUOTE_MR_OWNER: usize = HEADER_LEN + TD_MR_OWNER;
/// Offset of MROWNERCONFIG (creation time) in a quote v4.
pub const QUOTE_MR_OWNER_CONFIG: usize = HEADER_LEN + TD_MR_OWNER_CONFIG;
/// Offset of the quote signature (r||s) in a quote v4.
pub const QUOTE_SIGNATURE: usize = SIGNED_LEN + 4;
/// Offset of the QE report in a quote v4 (after signature, key, cert type 6 and its size).
pub const QUOTE_QE_REPORT: usize = QUOTE_SIGNATURE + 64 + 64 + 2 + 4;
/// Offset of the QE report signature in a quote v4.
pub const QUOTE_QE_REPORT_SIGNATURE: usize = QUOTE_QE_REPORT + QE_REPORT_LEN;

const ORG: &str = "Confide Simulated Vendor (NOT A TEE)";
const ROOT_CN: &str = "SIMULATED Intel SGX Root CA";
const PCK_CA_CN: &str = "SIMULATED Intel SGX PCK Platform CA";
const PCK_CN: &str = "SIMULATED Intel SGX PCK Certificate";
const TCB_CN: &str = "SIMULATED Intel SGX TCB Signing";

/// MRTD and RTMR0..3 of the simulated TD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdMeasurements {
    /// MRTD (build-time measurement of the TD).
    pub mr_td: [u8; 48],
    /// RTMR0..RTMR3 (run-time measurement registers).
    pub rtmr: [[u8; 48]; 4],
}

impl TdMeasurements {
    /// The node's measurement as MRTD, every RTMR zero (by convention MRTD =
    /// [`crate::measure_binary`] of the node executable).
    pub fn from_mr_td(mr_td: [u8; 48]) -> Self {
        TdMeasurements {
            mr_td,
            rtmr: [[0; 48]; 4],
        }
    }

    /// What a verifier reports as the measurement: MRTD || RTMR0 || .. || RTMR3 (240 bytes),
    /// the same layout as real TDX evidence. Publish this for a simulated-tdx release.
    pub fn claimed(&self) -> [u8; 240] {
        let mut m = [0u8; 240];
        m[..48].copy_from_slice(&self.mr_td);
        for (i, r) in self.rtmr.iter().enumerate() {
            m[48 * (i + 1)..48 * (i + 2)].copy_from_slice(r);
        }
        m
    }
}

/// Inputs of one simulated quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdQuoteFields {
    /// REPORTDATA.
    pub report_data: [u8; 64],
    /// MRTD and RTMRs.
    pub measurements: TdMeasurements,
    /// MRCONFIGID (by convention `binding_digest(model, config)` then zeros).
    pub mr_config_id: [u8; 48],
    /// Set TD_ATTRIBUTES.DEBUG.
    pub debug: bool,
    /// Creation time, signed into MROWNERCONFIG[0..8].
    pub now: UnixTime,
}

/// Dates and revocations of one simulated collateral set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollateralFields {
    /// TCB Info / QE Identity `issueDate` and CRL thisUpdate.
    pub issued: UnixTime,
    /// TCB Info / QE Identity `nextUpdate`.
    pub next_update: UnixTime,
    /// CRL nextUpdate (both CRLs).
    pub crl_next_update: UnixTime,
    /// List the PCK leaf in the PCK CRL.
    pub revoke_pck: bool,
}

impl CollateralFields {
    /// The collateral a node serves at `now`: dated an hour back (clock skew), valid 30 days.
    pub fn at(now: UnixTime) -> Self {
        let issued = UnixTime(now.0.saturating_sub(COLLATERAL_BACKDATE_SECS));
        let until = UnixTime(issued.0 + SIM_COLLATERAL_VALIDITY_SECS);
        CollateralFields {
            issued,
            next_update: until,
            crl_next_update: until,
            revoke_pck: false,
        }
    }
}

/// One simulated-Intel key: PKCS#8 (P-256), usable both for rcgen (certificates, CRLs) and
/// for ring's fixed-width r||s signatures (quote, QE report, collateral JSON).
struct Key {
    pkcs8: Vec<u8>,
}

impl Key {
    fn generate(rng: &SystemRandom) -> Result<Self, SimError> {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
            .map_err(|_| SimError::Crypto("P-256 keygen"))?;
        Ok(Key {
            pkcs8: doc.as_ref().to_vec(),
        })
    }

    fn rcgen(&self) -> Result<KeyPair, SimError> {
        KeyPair::try_from(self.pkcs8.as_slice())
            .map_err(|_| SimError::Inconsistent("key is not a P-256 PKCS#8 key"))
    }

    fn ring(&self) -> Result<EcdsaKeyPair, SimError> {
        EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &self.pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|_| SimError::Inconsistent("key is not a P-256 PKCS#8 key"))
    }

    /// ECDSA P-256/SHA-256 over `msg`, as 32-byte big-endian r || s (Intel's raw format).
    fn sign_raw(&self, msg: &[u8]) -> Result<[u8; 64], SimError> {
        let sig = self
            .ring()?
            .sign(&SystemRandom::new(), msg)
            .map_err(|_| SimError::Crypto("ECDSA P-256 signing"))?;
        sig.as_ref()
            .try_into()
            .map_err(|_| SimError::Crypto("ECDSA P-256 signature length"))
    }

    /// Uncompressed public point without the 0x04 prefix (x || y), as a quote carries it.
    fn raw_public(&self) -> Result<[u8; 64], SimError> {
        let kp = self.ring()?;
        kp.public_key()
            .as_ref()
            .get(1..65)
            .and_then(|s| s.try_into().ok())
            .ok_or(SimError::Crypto("P-256 public key"))
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    d.push(DnType::OrganizationName, ORG);
    d
}

fn odt(t: UnixTime) -> Result<time::OffsetDateTime, SimError> {
    let secs = i64::try_from(t.0).map_err(|_| SimError::Encoding)?;
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|_| SimError::Encoding)
}

fn rfc3339(t: UnixTime) -> Result<String, SimError> {
    odt(t)?
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|_| SimError::Encoding)
}

/// CA parameters (also what an [`Issuer`] needs: DN, key usages, key-id method).
fn ca_params(cn: &str, path_len: u8) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

fn leaf_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

fn random_serial(rng: &SystemRandom) -> Result<Vec<u8>, SimError> {
    let mut s = [0u8; 16];
    rng.fill(&mut s).map_err(|_| SimError::Crypto("rng"))?;
    // Positive and exactly 16 bytes long (RFC 5280 4.1.2.2).
    s[0] = (s[0] & 0x7f) | 0x01;
    Ok(s.to_vec())
}

/// Minimal DER writer for the SGX extension (X.690 8.1.3: definite lengths, short form below
/// 128, else long form). Only used on the extension's own contents, well under 64 KiB.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn der_oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &a in &arcs[2..] {
        let mut chunk = vec![(a & 0x7f) as u8];
        let mut v = a >> 7;
        while v > 0 {
            chunk.push(((v & 0x7f) as u8) | 0x80);
            v >>= 7;
        }
        chunk.reverse();
        body.extend(chunk);
    }
    tlv(0x06, &body)
}

fn der_uint(v: u16) -> Vec<u8> {
    let b = v.to_be_bytes();
    // Minimal two's-complement encoding of a non-negative integer.
    let mut content: Vec<u8> = if b[0] == 0 { vec![b[1]] } else { b.to_vec() };
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    tlv(0x02, &content)
}

const SGX_EXT: [u64; 8] = [1, 2, 840, 113741, 1, 13, 1, 0];

fn sgx_oid(sub: &[u64]) -> Vec<u8> {
    let mut arcs = SGX_EXT[..7].to_vec();
    arcs.extend_from_slice(sub);
    der_oid(&arcs)
}

fn pair(sub: &[u64], value: Vec<u8>) -> Vec<u8> {
    let mut c = sgx_oid(sub);
    c.extend(value);
    tlv(0x30, &c)
}

/// The Intel SGX PCK extension (PCK Certificate and CRL Profile, "Intel SGX Extensions"),
/// Platform CA flavour (SGX type Scalable, with platform instance id and configuration).
fn sgx_extension(ppid: &[u8; 16], instance: &[u8; 16]) -> Vec<u8> {
    let mut tcb = Vec::new();
    for (i, svn) in SIM_CPU_SVN.iter().enumerate() {
        tcb.extend(pair(&[2, i as u64 + 1], der_uint(u16::from(*svn))));
    }
    tcb.extend(pair(&[2, 17], der_uint(SIM_PCE_SVN)));
    tcb.extend(pair(&[2, 18], tlv(0x04, &SIM_CPU_SVN)));
    let mut config = Vec::new();
    config.extend(pair(&[7, 1], tlv(0x01, &[0x00]))); // dynamicPlatform FALSE
    config.extend(pair(&[7, 2], tlv(0x01, &[0xff]))); // cachedKeys TRUE
    config.extend(pair(&[7, 3], tlv(0x01, &[0xff]))); // smtEnabled TRUE
    let mut all = Vec::new();
    all.extend(pair(&[1], tlv(0x04, ppid)));
    all.extend(pair(&[2], tlv(0x30, &tcb)));
    all.extend(pair(&[3], tlv(0x04, &[0, 0]))); // PCE-ID 0000
    all.extend(pair(&[4], tlv(0x04, &SIM_TDX_FMSPC)));
    all.extend(pair(&[5], tlv(0x0a, &[1]))); // sgxType Scalable
    all.extend(pair(&[6], tlv(0x04, instance)));
    all.extend(pair(&[7], tlv(0x30, &config)));
    tlv(0x30, &all)
}

/// MRSIGNER of the simulated TD quoting enclave (not Intel's).
fn qe_mrsigner() -> [u8; 32] {
    Sha256::digest(b"Confide simulated TD quoting enclave signer").into()
}

/// A locally generated simulated Intel: root, PCK Platform CA, PCK leaf, TCB signer and the
/// quoting enclave's attestation key.
pub struct SimulatedTdxVendor {
    root: Key,
    pck_ca: Key,
    pck: Key,
    tcb: Key,
    attestation: Key,
    root_der: Vec<u8>,
    pck_ca_der: Vec<u8>,
    pck_der: Vec<u8>,
    tcb_der: Vec<u8>,
    pck_serial: Vec<u8>,
    ppid: [u8; 16],
}

impl std::fmt::Debug for SimulatedTdxVendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedTdxVendor")
            .field("ppid", &hex::encode(self.ppid))
            .field("keys", &"opaque")
            .finish()
    }
}

const FILES: [&str; 12] = [
    "root.der",
    "root.key",
    "pck_ca.der",
    "pck_ca.key",
    "pck.der",
    "pck.key",
    "tcb.der",
    "tcb.key",
    "attestation.key",
    "pck_serial.hex",
    "ppid.hex",
    "README",
];

impl SimulatedTdxVendor {
    /// Generate a fresh simulated Intel in memory; certificates valid from a day before `now`
    /// for 20 years.
    pub fn generate(now: UnixTime) -> Result<Self, SimError> {
        let rng = SystemRandom::new();
        let (root, pck_ca, pck, tcb, attestation) = (
            Key::generate(&rng)?,
            Key::generate(&rng)?,
            Key::generate(&rng)?,
            Key::generate(&rng)?,
            Key::generate(&rng)?,
        );
        let mut ppid = [0u8; 16];
        let mut instance = [0u8; 16];
        rng.fill(&mut ppid).map_err(|_| SimError::Crypto("rng"))?;
        rng.fill(&mut instance)
            .map_err(|_| SimError::Crypto("rng"))?;
        let not_before = odt(UnixTime(now.0.saturating_sub(86_400)))?;
        let not_after = odt(UnixTime(now.0 + 20 * 365 * 86_400))?;
        let dated = |mut p: CertificateParams, serial: Vec<u8>| {
            p.not_before = not_before;
            p.not_after = not_after;
            p.serial_number = Some(SerialNumber::from_slice(&serial));
            p
        };
        let enc = |_| SimError::Encoding;

        let root_kp = root.rcgen()?;
        let root_params = dated(ca_params(ROOT_CN, 1), random_serial(&rng)?);
        let root_der = root_params
            .self_signed(&root_kp)
            .map_err(enc)?
            .der()
            .to_vec();
        let root_issuer = Issuer::new(ca_params(ROOT_CN, 1), root_kp);

        let pck_ca_kp = pck_ca.rcgen()?;
        let pck_ca_der = dated(ca_params(PCK_CA_CN, 0), random_serial(&rng)?)
            .signed_by(&pck_ca_kp, &root_issuer)
            .map_err(enc)?
            .der()
            .to_vec();
        let pck_ca_issuer = Issuer::new(ca_params(PCK_CA_CN, 0), pck_ca_kp);

        let pck_serial = random_serial(&rng)?;
        let mut pck_params = dated(leaf_params(PCK_CN), pck_serial.clone());
        pck_params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &SGX_EXT[..7],
                sgx_extension(&ppid, &instance),
            ));
        let pck_der = pck_params
            .signed_by(&pck.rcgen()?, &pck_ca_issuer)
            .map_err(enc)?
            .der()
            .to_vec();

        let tcb_der = dated(leaf_params(TCB_CN), random_serial(&rng)?)
            .signed_by(&tcb.rcgen()?, &root_issuer)
            .map_err(enc)?
            .der()
            .to_vec();

        Ok(SimulatedTdxVendor {
            root,
            pck_ca,
            pck,
            tcb,
            attestation,
            root_der,
            pck_ca_der,
            pck_der,
            tcb_der,
            pck_serial,
            ppid,
        })
    }

    /// Load the simulated Intel persisted in `dir`, or create one there on first use (atomic:
    /// written to a sibling directory, then renamed into place).
    pub fn load_or_create(dir: &Path) -> Result<Self, SimError> {
        if dir.join("pck.der").exists() {
            return Self::load(dir);
        }
        let now = UnixTime::from_system_time(std::time::SystemTime::now());
        let v = Self::generate(now)?;
        let readme = "Confide SIMULATED Intel TDX vendor. NOT A TEE: these keys prove nothing.\n";
        let (serial_hex, ppid_hex) = (hex::encode(&v.pck_serial), hex::encode(v.ppid));
        let contents: [&[u8]; 12] = [
            &v.root_der,
            &v.root.pkcs8,
            &v.pck_ca_der,
            &v.pck_ca.pkcs8,
            &v.pck_der,
            &v.pck.pkcs8,
            &v.tcb_der,
            &v.tcb.pkcs8,
            &v.attestation.pkcs8,
            serial_hex.as_bytes(),
            ppid_hex.as_bytes(),
            readme.as_bytes(),
        ];
        let files: Vec<(&str, &[u8])> = FILES.iter().copied().zip(contents).collect();
        if crate::install_vendor_dir(dir, "pck.der", &files)? {
            Ok(v)
        } else {
            // Another process won the race; use its vendor.
            Self::load(dir)
        }
    }

    /// Load a simulated Intel from `dir` (see [`Self::load_or_create`]).
    pub fn load(dir: &Path) -> Result<Self, SimError> {
        let read = |name: &str| crate::read_vendor_file(dir, name);
        let key = |name: &str| -> Result<Key, SimError> {
            let k = Key { pkcs8: read(name)? };
            k.ring()?;
            Ok(k)
        };
        let hexfile = |name: &str| -> Result<Vec<u8>, SimError> {
            hex::decode(read(name)?.trim_ascii())
                .map_err(|_| SimError::Inconsistent("a .hex file is not hex"))
        };
        let v = SimulatedTdxVendor {
            root: key("root.key")?,
            pck_ca: key("pck_ca.key")?,
            pck: key("pck.key")?,
            tcb: key("tcb.key")?,
            attestation: key("attestation.key")?,
            root_der: read("root.der")?,
            pck_ca_der: read("pck_ca.der")?,
            pck_der: read("pck.der")?,
            tcb_der: read("tcb.der")?,
            pck_serial: hexfile("pck_serial.hex")?,
            ppid: hexfile("ppid.hex")?
                .try_into()
                .map_err(|_| SimError::Inconsistent("ppid.hex is not 16 bytes"))?,
        };
        // Each certificate must certify its key, or every quote would fail to verify.
        for (der, k, what) in [
            (&v.root_der, &v.root, "root.key does not match root.der"),
            (
                &v.pck_ca_der,
                &v.pck_ca,
                "pck_ca.key does not match pck_ca.der",
            ),
            (&v.pck_der, &v.pck, "pck.key does not match pck.der"),
            (&v.tcb_der, &v.tcb, "tcb.key does not match tcb.der"),
        ] {
            let mut point = vec![0x04];
            point.extend_from_slice(&k.raw_public()?);
            if !der.windows(point.len()).any(|w| w == point.as_slice()) {
                return Err(SimError::Inconsistent(what));
            }
        }
        Ok(v)
    }

    /// The simulated Intel root, DER. Pin it as the policy's `roots.simulated_tdx`
    /// (`TrustPolicy::with_simulated_tdx_root`).
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The simulated Intel root as PEM.
    pub fn root_pem(&self) -> String {
        pem_certificate(&self.root_der)
    }

    /// PCK chain as the quote carries it (certification data type 5): PEM leaf, CA, root.
    pub fn pck_chain_pem(&self) -> String {
        [&self.pck_der, &self.pck_ca_der, &self.root_der]
            .iter()
            .map(|d| pem_certificate(d))
            .collect()
    }

    /// The simulated platform's PPID (what the verifier reports as the chip id).
    pub fn ppid(&self) -> [u8; 16] {
        self.ppid
    }

    /// Build and sign a TD quote v4.
    pub fn quote(&self, f: &TdQuoteFields) -> Result<Vec<u8>, SimError> {
        let ak = self.attestation.raw_public()?;
        // --- header (48) ---
        let mut q = Vec::with_capacity(SIGNED_LEN + 4096);
        q.extend_from_slice(&4u16.to_le_bytes()); // version
        q.extend_from_slice(&confide_attest_tdx::ATT_KEY_ECDSA_P256.to_le_bytes());
        q.extend_from_slice(&confide_attest_tdx::TEE_TYPE_TDX.to_le_bytes());
        q.extend_from_slice(&SIM_QE_ISVSVN.to_le_bytes()); // QE_SVN
        q.extend_from_slice(&SIM_PCE_SVN.to_le_bytes()); // PCE_SVN
        q.extend_from_slice(&confide_attest_tdx::INTEL_QE_VENDOR_ID);
        // User data: the first 16 bytes are the platform identifier the QGL links to the PCK.
        let mut user = [0u8; 20];
        user[..16].copy_from_slice(&Sha256::digest(self.ppid)[..16]);
        q.extend_from_slice(&user);
        // --- TD report body (584) ---
        let mut td = [0u8; TD_REPORT_LEN];
        td[TD_TEE_TCB_SVN..TD_TEE_TCB_SVN + 16].copy_from_slice(&SIM_TEE_TCB_SVN);
        let mr_seam: [u8; 48] = Sha384::digest(b"Confide simulated TDX module").into();
        td[TD_MR_SEAM..TD_MR_SEAM + 48].copy_from_slice(&mr_seam);
        // MRSIGNER_SEAM and SEAMATTRIBUTES stay zero: Intel-signed module, as TCB Info expects.
        let attributes: u64 = (1 << 28) | u64::from(f.debug); // SEPT_VE_DISABLE, DEBUG
        td[TD_TD_ATTRIBUTES..TD_TD_ATTRIBUTES + 8].copy_from_slice(&attributes.to_le_bytes());
        // XFAM: x87, SSE, AVX, AVX-512 state, PKRU, AMX — a typical Linux TD.
        td[TD_XFAM..TD_XFAM + 8].copy_from_slice(&0x0006_02e7u64.to_le_bytes());
        td[TD_MR_TD..TD_MR_TD + 48].copy_from_slice(&f.measurements.mr_td);
        td[TD_MR_CONFIG_ID..TD_MR_CONFIG_ID + 48].copy_from_slice(&f.mr_config_id);
        td[TD_MR_OWNER..TD_MR_OWNER + 48].copy_from_slice(&SIMULATED_TDX_MR_OWNER);
        td[TD_MR_OWNER_CONFIG..TD_MR_OWNER_CONFIG + 8].copy_from_slice(&f.now.0.to_le_bytes());
        for (i, r) in f.measurements.rtmr.iter().enumerate() {
            td[TD_RTMR0 + 48 * i..TD_RTMR0 + 48 * (i + 1)].copy_from_slice(r);
        }
        td[TD_REPORT_DATA..TD_REPORT_DATA + 64].copy_from_slice(&f.report_data);
        q.extend_from_slice(&td);
        // --- signature data ---
        // QE authentication data: 32 bytes, as Intel's QE emits (0x00..0x1f).
        let qe_auth: Vec<u8> = (0u8..32).collect();
        let mut qe = [0u8; QE_REPORT_LEN];
        qe[..16].copy_from_slice(&SIM_CPU_SVN);
        // MISCSELECT 0; ATTRIBUTES: INIT | MODE64BIT | PROVISIONKEY, XFRM 0xe7 (no DEBUG).
        qe[48] = 0x15;
        qe[56] = 0xe7;
        let mr_enclave: [u8; 32] = Sha256::digest(b"Confide simulated TD quoting enclave").into();
        qe[64..96].copy_from_slice(&mr_enclave);
        qe[128..160].copy_from_slice(&qe_mrsigner());
        qe[256..258].copy_from_slice(&QE_ISVPRODID.to_le_bytes());
        qe[258..260].copy_from_slice(&SIM_QE_ISVSVN.to_le_bytes());
        // QE REPORTDATA = SHA-256(attestation key || QE auth data) || 32 zero bytes.
        let mut h = Sha256::new();
        h.update(ak);
        h.update(&qe_auth);
        qe[320..352].copy_from_slice(&h.finalize());
        let qe_sig = self.pck.sign_raw(&qe)?;
        let chain = self.pck_chain_pem();
        let mut cert6 = Vec::new();
        cert6.extend_from_slice(&qe);
        cert6.extend_from_slice(&qe_sig);
        cert6.extend_from_slice(&(qe_auth.len() as u16).to_le_bytes());
        cert6.extend_from_slice(&qe_auth);
        cert6.extend_from_slice(&5u16.to_le_bytes()); // PCK cert chain
        cert6.extend_from_slice(&len32(chain.len())?.to_le_bytes());
        cert6.extend_from_slice(chain.as_bytes());
        let mut sig_data = Vec::new();
        sig_data.extend_from_slice(&[0u8; 64]); // quote signature, filled by sign_quote
        sig_data.extend_from_slice(&ak);
        sig_data.extend_from_slice(&6u16.to_le_bytes()); // QE report certification data
        sig_data.extend_from_slice(&len32(cert6.len())?.to_le_bytes());
        sig_data.extend_from_slice(&cert6);
        q.extend_from_slice(&len32(sig_data.len())?.to_le_bytes());
        q.extend_from_slice(&sig_data);
        self.sign_quote(&mut q)?;
        Ok(q)
    }

    /// (Re-)sign header || TD report body of a quote in place with the attestation key.
    ///
    /// Public so that tests can change one field of a quote and still present a valid
    /// signature, reaching the check *behind* the signature.
    pub fn sign_quote(&self, quote: &mut [u8]) -> Result<(), SimError> {
        if quote.len() < QUOTE_SIGNATURE + 64 {
            return Err(SimError::QuoteLength);
        }
        let sig = self.attestation.sign_raw(&quote[..SIGNED_LEN])?;
        quote[QUOTE_SIGNATURE..QUOTE_SIGNATURE + 64].copy_from_slice(&sig);
        Ok(())
    }

    /// Collateral valid at `now` (see [`CollateralFields::at`]), as `QuoteCollateralV3` JSON.
    pub fn collateral(&self, now: UnixTime) -> Result<Vec<u8>, SimError> {
        self.collateral_with(&CollateralFields::at(now))
    }

    /// Collateral with explicit dates and revocations, as `QuoteCollateralV3` JSON.
    pub fn collateral_with(&self, f: &CollateralFields) -> Result<Vec<u8>, SimError> {
        let issued = rfc3339(f.issued)?;
        let next = rfc3339(f.next_update)?;
        let tcb_info = self.tcb_info_json(&issued, &next);
        let qe_identity = self.qe_identity_json(&issued, &next);
        let enc = |_| SimError::Encoding;
        let crl = |issuer: Issuer<'_, KeyPair>, revoked: Vec<RevokedCertParams>| {
            CertificateRevocationListParams {
                this_update: odt(f.issued)?,
                next_update: odt(f.crl_next_update)?,
                crl_number: SerialNumber::from_slice(&[1]),
                issuing_distribution_point: None,
                revoked_certs: revoked,
                key_identifier_method: KeyIdMethod::Sha256,
            }
            .signed_by(&issuer)
            .map(|c| c.der().to_vec())
            .map_err(enc)
        };
        let root_ca_crl = crl(
            Issuer::new(ca_params(ROOT_CN, 1), self.root.rcgen()?),
            Vec::new(),
        )?;
        let revoked = if f.revoke_pck {
            vec![RevokedCertParams {
                serial_number: SerialNumber::from_slice(&self.pck_serial),
                revocation_time: odt(f.issued)?,
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            }]
        } else {
            Vec::new()
        };
        let pck_crl = crl(
            Issuer::new(ca_params(PCK_CA_CN, 0), self.pck_ca.rcgen()?),
            revoked,
        )?;
        let tcb_chain = pem_certificate(&self.tcb_der) + &pem_certificate(&self.root_der);
        let c = confide_attest_tdx::Collateral {
            pck_crl_issuer_chain: pem_certificate(&self.pck_ca_der)
                + &pem_certificate(&self.root_der),
            root_ca_crl,
            pck_crl,
            tcb_info_issuer_chain: tcb_chain.clone(),
            tcb_info_signature: self.tcb.sign_raw(tcb_info.as_bytes())?.to_vec(),
            tcb_info,
            qe_identity_issuer_chain: tcb_chain,
            qe_identity_signature: self.tcb.sign_raw(qe_identity.as_bytes())?.to_vec(),
            qe_identity,
            pck_certificate_chain: None,
        };
        serde_json::to_vec(&c).map_err(|_| SimError::Encoding)
    }

    /// Sign a TCB Info or QE Identity JSON body with the TCB signing key (raw r||s), as the
    /// PCS does. Public for tests that change collateral content and re-sign it.
    pub fn sign_collateral_body(&self, json: &str) -> Result<Vec<u8>, SimError> {
        Ok(self.tcb.sign_raw(json.as_bytes())?.to_vec())
    }

    /// TCB Info v3 for the simulated FMSPC: an UpToDate level at the simulated SVNs and an
    /// OutOfDate level below it (one SVN lower TDX late-microcode), as Intel publishes them.
    fn tcb_info_json(&self, issued: &str, next: &str) -> String {
        let comps = |svns: &[u8]| {
            svns.iter()
                .map(|s| format!("{{\"svn\":{s}}}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut old_tdx = SIM_TEE_TCB_SVN;
        old_tdx[2] -= 1;
        let level = |tdx: &[u8], date: &str, status: &str, adv: &str| {
            format!(
                "{{\"tcb\":{{\"sgxtcbcomponents\":[{}],\"pcesvn\":{},\"tdxtcbcomponents\":[{}]}},\
                 \"tcbDate\":\"{date}\",\"tcbStatus\":\"{status}\"{adv}}}",
                comps(&SIM_CPU_SVN),
                SIM_PCE_SVN,
                comps(tdx)
            )
        };
        let zeros48 = "0".repeat(96);
        format!(
            "{{\"id\":\"TDX\",\"version\":3,\"issueDate\":\"{issued}\",\"nextUpdate\":\"{next}\",\
             \"fmspc\":\"{}\",\"pceId\":\"0000\",\"tcbType\":0,\"tcbEvaluationDataNumber\":{TCB_EVAL_NUMBER},\
             \"tdxModule\":{{\"mrsigner\":\"{zeros48}\",\"attributes\":\"0000000000000000\",\
             \"attributesMask\":\"FFFFFFFFFFFFFFFF\"}},\
             \"tdxModuleIdentities\":[{{\"id\":\"TDX_01\",\"mrsigner\":\"{zeros48}\",\
             \"attributes\":\"0000000000000000\",\"attributesMask\":\"FFFFFFFFFFFFFFFF\",\
             \"tcbLevels\":[{{\"tcb\":{{\"isvsvn\":{}}},\"tcbDate\":\"2024-03-13T00:00:00Z\",\
             \"tcbStatus\":\"UpToDate\"}}]}}],\
             \"tcbLevels\":[{},{}]}}",
            hex::encode_upper(SIM_TDX_FMSPC),
            SIM_TEE_TCB_SVN[0],
            level(&SIM_TEE_TCB_SVN, "2024-03-13T00:00:00Z", "UpToDate", ""),
            level(
                &old_tdx,
                "2023-08-09T00:00:00Z",
                "OutOfDate",
                ",\"advisoryIDs\":[\"SIMULATED-SA-00001\"]"
            ),
        )
    }

    /// QE Identity v2 for the simulated TD QE.
    fn qe_identity_json(&self, issued: &str, next: &str) -> String {
        format!(
            "{{\"id\":\"TD_QE\",\"version\":2,\"issueDate\":\"{issued}\",\"nextUpdate\":\"{next}\",\
             \"tcbEvaluationDataNumber\":{TCB_EVAL_NUMBER},\"miscselect\":\"00000000\",\
             \"miscselectMask\":\"FFFFFFFF\",\"attributes\":\"11000000000000000000000000000000\",\
             \"attributesMask\":\"FBFFFFFFFFFFFFFF0000000000000000\",\"mrsigner\":\"{}\",\
             \"isvprodid\":{QE_ISVPRODID},\"tcbLevels\":[{{\"tcb\":{{\"isvsvn\":{SIM_QE_ISVSVN}}},\
             \"tcbDate\":\"2024-03-13T00:00:00Z\",\"tcbStatus\":\"UpToDate\"}}]}}",
            hex::encode_upper(qe_mrsigner()),
        )
    }
}

fn len32(n: usize) -> Result<u32, SimError> {
    u32::try_from(n).map_err(|_| SimError::Encoding)
}

/// The node-side simulated TDX attester: a simulated Intel plus the TD's measurements.
pub struct SimulatedTdxAttester {
    vendor: SimulatedTdxVendor,
    measurements: TdMeasurements,
}

impl SimulatedTdxAttester {
    /// `measurements` are MRTD and RTMR0..3 of the simulated TD; a node normally passes
    /// `TdMeasurements::from_mr_td(measure_binary(current exe))`.
    pub fn new(vendor: SimulatedTdxVendor, measurements: TdMeasurements) -> Self {
        SimulatedTdxAttester {
            vendor,
            measurements,
        }
    }

    /// The simulated Intel.
    pub fn vendor(&self) -> &SimulatedTdxVendor {
        &self.vendor
    }

    /// The TD's measurements.
    pub fn measurements(&self) -> &TdMeasurements {
        &self.measurements
    }
}

impl Attester for SimulatedTdxAttester {
    fn platform(&self) -> Platform {
        Platform::SimulatedTdx
    }

    fn attest(&self, req: &AttestRequest) -> Result<Evidence, PlatformError> {
        let mut mr_config_id = [0u8; 48];
        if let Some(b) = req.binding {
            mr_config_id[..32].copy_from_slice(&binding_digest(&b.model_digest, &b.config_digest));
        }
        let report = self.vendor.quote(&TdQuoteFields {
            report_data: req.report_data,
            measurements: self.measurements,
            mr_config_id,
            debug: false,
            now: req.now,
        })?;
        Ok(Evidence {
            platform: Platform::SimulatedTdx,
            report,
            certs: Vec::new(),
            collateral: self.vendor.collateral(req.now)?,
            binding: req.binding,
            gpu: req.gpu.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confide_attest::{Tcb, TrustPolicy, verify_with};
    use confide_attest_tdx::TdxVerifier;

    #[test]
    fn simulated_quote_verifies_through_the_real_tdx_verifier_only_when_pinned() {
        // load_or_create dates its certificates from the real clock.
        let now = UnixTime::from_system_time(std::time::SystemTime::now());
        let dir = tempfile::tempdir().unwrap();
        let vdir = dir.path().join("simtdx");
        let vendor = SimulatedTdxVendor::load_or_create(&vdir).unwrap();
        let again = SimulatedTdxVendor::load_or_create(&vdir).unwrap();
        assert_eq!(again.root_der(), vendor.root_der());
        assert_eq!(again.ppid(), vendor.ppid());
        let root = vendor.root_der().to_vec();

        let mut m = TdMeasurements::from_mr_td(crate::measure_binary(b"node binary"));
        m.rtmr[0] = [0xa0; 48];
        m.rtmr[2] = [0xa2; 48];
        let att = SimulatedTdxAttester::new(vendor, m);
        let (rd, ev) = crate::test_support::attest_fixed(&att, now);
        assert_eq!(ev.platform, Platform::SimulatedTdx);

        let err = verify_with(
            &TdxVerifier::new(),
            None,
            &ev,
            &rd,
            now,
            &TrustPolicy::production(),
        )
        .unwrap_err();
        assert!(matches!(err, confide_attest::Error::SimulatedNotAllowed));

        let policy = TrustPolicy::production().with_simulated_tdx_root(root);
        let v = verify_with(&TdxVerifier::new(), None, &ev, &rd, now, &policy).unwrap();
        assert!(v.is_simulated());
        assert_eq!(v.platform(), Platform::SimulatedTdx);
        assert_eq!(v.measurement(), &m.claimed()[..]);
        assert_eq!(v.model_digest(), Some([1; 32]));
        assert_eq!(v.config_digest(), Some([2; 32]));
        assert_eq!(v.signed_time(), Some(now.0));
        assert_eq!(v.report_version(), 4);
        assert_eq!(v.chip_id(), &att.vendor().ppid()[..]);
        match v.tcb() {
            Tcb::Tdx {
                status,
                tee_tcb_svn,
                ..
            } => {
                assert_eq!(status, "UpToDate");
                assert_eq!(tee_tcb_svn, &SIM_TEE_TCB_SVN);
            }
            other => panic!("unexpected tcb {other:?}"),
        }
        assert_eq!(TrustPolicy::from_toml(&policy.to_toml()).unwrap(), policy);
    }

    #[test]
    fn quote_layout_matches_quote_v4() {
        let now = UnixTime(1_780_000_000);
        let v = SimulatedTdxVendor::generate(now).unwrap();
        let q = v
            .quote(&TdQuoteFields {
                report_data: [7; 64],
                measurements: TdMeasurements::from_mr_td([9; 48]),
                mr_config_id: [3; 48],
                debug: false,
                now,
            })
            .unwrap();
        let parsed = confide_attest_tdx::parse_quote(&q).unwrap();
        let td = parsed.report.as_td10().unwrap();
        assert_eq!(td.report_data, [7; 64]);
        assert_eq!(td.mr_td, [9; 48]);
        assert_eq!(td.mr_config_id, [3; 48]);
        assert_eq!(td.mr_owner, SIMULATED_TDX_MR_OWNER);
        assert_eq!(&td.mr_owner_config[..8], &now.0.to_le_bytes());
        assert_eq!(q[QUOTE_REPORT_DATA..QUOTE_REPORT_DATA + 64], [7; 64]);
        assert_eq!(q[QUOTE_MR_TD..QUOTE_MR_TD + 48], [9; 48]);
        assert_eq!(q[QUOTE_MR_CONFIG_ID], 3);
        // Declared signature-data length covers exactly the rest of the quote.
        let declared = u32::from_le_bytes(q[SIGNED_LEN..SIGNED_LEN + 4].try_into().unwrap());
        assert_eq!(declared as usize, q.len() - SIGNED_LEN - 4);
        let certs = confide_attest::input::pem_certificates(&v.pck_chain_pem()).unwrap();
        assert_eq!(certs.len(), 3);
        assert_eq!(certs[2], v.root_der());
        let root = confide_attest::input::pem_certificates(&v.root_pem()).unwrap();
        assert_eq!(root, vec![v.root_der().to_vec()]);
    }
}
