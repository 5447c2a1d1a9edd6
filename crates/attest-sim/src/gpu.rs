//! Simulated NVIDIA Hopper GPU: an SPDM 1.1 GET_MEASUREMENTS exchange signed by a device key
//! under a locally generated "simulated NVIDIA" device PKI. **No GPU and no protection at
//! all**; see the crate docs.
//!
//! What is simulated, and how it matches a real H100 in CC mode byte for byte (compare
//! `testdata/nvidia/rim/hopperAttestationReport.txt` and `hopperCertChain.txt`):
//!
//! - Device PKI, ECDSA P-384 / ecdsa-with-SHA384 throughout, five certificates as NVIDIA's
//!   (leaf first): device certificate `GH100 A01 GSP FMC LF` (KeyUsage critical
//!   digitalSignature only, no BasicConstraints, SubjectAltName otherName
//!   `1.3.6.1.4.1.412.274.1` = UTF8String `<vendor>:GH100:<16 hex digits>`, and the TCG DICE
//!   extension `2.23.133.5.4.1` holding version 1, a P-384 SubjectPublicKeyInfo and the FMC
//!   firmware id as SHA-384 FWID), issued by `GH100 A01 GSP BROM` (CA, KeyUsage keyCertSign),
//!   issued by `GH100 Provisioner ICA 1`, issued by `GH100 Identity`, issued by the
//!   self-signed `Device Identity CA` root (CAs: BasicConstraints CA critical, KeyUsage
//!   keyCertSign + cRLSign critical). Device certificates never expire (notAfter
//!   9999-12-31T23:59:59Z, as NVIDIA's). Every subject's Organization is
//!   [`SIMULATED_GPU_ORGANIZATION`] instead of `NVIDIA Corporation`: the verifier reads it on
//!   the device certificate to pick the simulated root (`confide-attest-nvidia` module docs).
//!   NVIDIA's CRL and OCSP pointers are left out: nothing serves them for a simulated PKI.
//! - GET_MEASUREMENTS request (DSP0274 v1.1 §10.11, Table 40): version 0x11, code 0xE0,
//!   Param1 = 0x01 (signature requested), Param2 = 0xFF (all blocks), the caller's 32-byte
//!   nonce, SlotIDParam 0 — the 37 bytes NVIDIA's tools send.
//! - MEASUREMENTS response (Table 44): version 0x11, code 0x60, Param1 = Param2 = 0,
//!   NumberOfBlocks, 24-bit MeasurementRecordLength, then one block per measurement (Table 45:
//!   index, MeasurementSpecification 0x01 = DMTF, size 51, DMTF value type 0x01, size 48,
//!   SHA-384 digest), a random 32-byte responder nonce, OpaqueData, and the 96-byte ECDSA
//!   P-384/SHA-384 signature (r || s) over request || response-without-signature (L1/L2).
//! - OpaqueData: NVIDIA's TLV list (u16 type, u16 length, value, little-endian) in the order
//!   and with the values an H100 on driver r580 sends (VBIOS version, board id, chip SKU,
//!   project, driver version, GPU info, MSR counters, CPR info, NVDEC0 status, FWID (equal to
//!   the device certificate's FWID, as on hardware), protected-PCIe status), then
//!   opaque-data version 1 and the feature flag: 0 = SPT by default, see
//!   [`SimulatedGpu::with_cc_mode`]. With [`CcMode::Unstated`] the last two fields are left
//!   out, as driver r550 does.
//!
//! What it cannot prove: anything. There is no GPU, no firmware that measured itself, no
//! confidential-computing mode and no hardware key; the measurements are whatever the caller
//! chose. It exists so that the verifier, the REPORT_DATA/nonce binding and the reference-value
//! checks run end to end on machines without an H100.

use std::collections::BTreeMap;
use std::path::Path;

use confide_attest::{GpuAttester, GpuEvidence, PlatformError, UnixTime, gpu_nonce};
pub use confide_attest_nvidia::{CcMode, SIMULATED_GPU_ORGANIZATION};
use confide_attest_nvidia::{
    GET_MEASUREMENTS, MEASUREMENTS, OPAQUE_DATA_VERSION, OPAQUE_FEATURE_FLAG, SPDM_1_1,
};
use p384::ecdsa::signature::Signer as _;
use p384::pkcs8::DecodePrivateKey as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha384};

use crate::{SimError, pem_certificate};

/// Number of measurement blocks in the reference set (an H100 reports 64).
pub const SIM_GPU_BLOCKS: u8 = 64;

/// SPDM GET_MEASUREMENTS Param2: all measurement blocks (DSP0274 Table 41).
const ALL_BLOCKS: u8 = 0xFF;
/// MeasurementSpecification bit 0: DMTF measurement specification.
const SPEC_DMTF: u8 = 0x01;
/// DMTFSpecMeasurementValueType 0x01 (mutable firmware, digest form): what an H100 sends.
const VALUE_TYPE: u8 = 0x01;

// NVIDIA OpaqueData field ids (`OPAQUE_FIELD_ID_*`, NVIDIA's verifier sources and the test
// data): the ones an H100 on driver r580 sends, in its order.
const OPAQUE_VBIOS_VERSION: u16 = 6;
const OPAQUE_BOARD_ID: u16 = 14;
const OPAQUE_CHIP_SKU: u16 = 15;
const OPAQUE_CHIP_SKU_MOD: u16 = 16;
const OPAQUE_PROJECT: u16 = 17;
const OPAQUE_PROJECT_SKU: u16 = 18;
const OPAQUE_PROJECT_SKU_MOD: u16 = 19;
const OPAQUE_DRIVER_VERSION: u16 = 3;
const OPAQUE_GPU_INFO: u16 = 4;
const OPAQUE_MSRSCNT: u16 = 12;
const OPAQUE_CPRINFO: u16 = 13;
const OPAQUE_NVDEC0_STATUS: u16 = 11;
const OPAQUE_FWID: u16 = 20;
const OPAQUE_PROTECTED_PCIE_STATUS: u16 = 21;

/// Measurement counters per block (MSRSCNT, 64 little-endian u32), as the r580 H100 sends.
const MSRSCNT: [u32; 64] = [
    0, 1, 4, 1, 1, 1, 1, 1, 0, 1, 0, 130, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 1, 1, 1, 0, 1, 1,
    1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0,
];

/// Driver version the simulated GPU reports (NUL-terminated, as NVIDIA's).
pub const SIM_GPU_DRIVER_VERSION: &[u8] = b"580.159.03\0";

// Certificate names, shaped like NVIDIA's (hopperCertChain.txt), Organization replaced.
const ROOT_CN: &str = "Simulated Device Identity CA";
const IDENTITY_CN: &str = "Simulated GH100 Identity";
const PROVISIONER_CN: &str = "Simulated GH100 Provisioner ICA 1";
const BROM_CN: &str = "GH100 A01 GSP BROM";
const DEVICE_CN: &str = "GH100 A01 GSP FMC LF";
/// NVIDIA's SubjectAltName otherName OID on device certificates (arc 1.3.6.1.4.1.412 is
/// NVIDIA's); the value names vendor, chip and device id.
const OID_NVIDIA_DEVICE_NAME: [u64; 9] = [1, 3, 6, 1, 4, 1, 412, 274, 1];
/// TCG DICE TcbInfo (`tcg-dice-TcbInfo`), where NVIDIA puts the FMC firmware id.
const OID_TCG_DICE_TCB_INFO: [u64; 6] = [2, 23, 133, 5, 4, 1];
/// notAfter of every simulated certificate, as NVIDIA's: 9999-12-31T23:59:59Z.
const NOT_AFTER: i64 = 253_402_300_799;

/// A P-384 key as PKCS#8 (what is persisted); rcgen for certificates, p384 for SPDM.
#[derive(Clone)]
struct P384Key {
    pkcs8: Vec<u8>,
}

impl P384Key {
    fn generate() -> Result<Self, SimError> {
        let kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .map_err(|_| SimError::Crypto("P-384 keygen"))?;
        Ok(P384Key {
            pkcs8: kp.serialize_der(),
        })
    }

    fn rcgen(&self) -> Result<KeyPair, SimError> {
        KeyPair::from_pkcs8_der_and_sign_algo(
            &self.pkcs8.as_slice().into(),
            &rcgen::PKCS_ECDSA_P384_SHA384,
        )
        .map_err(|_| SimError::Inconsistent("key is not a P-384 PKCS#8 key"))
    }

    fn signing(&self) -> Result<p384::ecdsa::SigningKey, SimError> {
        p384::ecdsa::SigningKey::from_pkcs8_der(&self.pkcs8)
            .map_err(|_| SimError::Inconsistent("key is not a P-384 PKCS#8 key"))
    }

    /// SEC1 uncompressed public point (0x04 || x || y), as certificates carry it.
    fn public_point(&self) -> Result<Vec<u8>, SimError> {
        Ok(self
            .signing()?
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec())
    }
}

fn dn(cn: &str, serial: Option<&str>) -> Result<DistinguishedName, SimError> {
    let mut d = DistinguishedName::new();
    // NVIDIA's lower certificates list serialNumber, C, O, CN in that order.
    if let Some(s) = serial {
        let ps = rcgen::string::PrintableString::try_from(s).map_err(|_| SimError::Encoding)?;
        d.push(
            DnType::CustomDnType(vec![2, 5, 4, 5]),
            DnValue::PrintableString(ps),
        );
        d.push(DnType::CountryName, "US");
    }
    d.push(DnType::OrganizationName, SIMULATED_GPU_ORGANIZATION);
    d.push(DnType::CommonName, cn);
    Ok(d)
}

fn ca_params(d: DistinguishedName, crl_sign: bool) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = d;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = if crl_sign {
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign]
    } else {
        vec![KeyUsagePurpose::KeyCertSign]
    };
    p.key_identifier_method = KeyIdMethod::Sha256;
    p.use_authority_key_identifier_extension = true;
    p
}

fn random_serial() -> Vec<u8> {
    let mut s: [u8; 16] = rand::random();
    // Positive and exactly 16 bytes long (RFC 5280 4.1.2.2).
    s[0] = (s[0] & 0x7f) | 0x01;
    s.to_vec()
}

/// Minimal DER TLV (definite length; contents here are well under 64 KiB).
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

/// The DICE TcbInfo extension value as NVIDIA encodes it on the device certificate:
/// SEQUENCE { INTEGER 1, SubjectPublicKeyInfo, SEQUENCE { OID sha384, OCTET STRING fwid } }.
fn fwid_extension(spki_der: &[u8], fwid: &[u8; 48]) -> Vec<u8> {
    // 2.16.840.1.101.3.4.2.2 (id-sha384).
    const SHA384_OID: [u8; 11] = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
    ];
    let mut digest = SHA384_OID.to_vec();
    digest.extend(tlv(0x04, fwid));
    let mut body = tlv(0x02, &[1]);
    body.extend_from_slice(spki_der);
    body.extend(tlv(0x30, &digest));
    tlv(0x30, &body)
}

/// A locally generated simulated NVIDIA device PKI with one GPU's device key.
#[derive(Clone)]
pub struct SimulatedGpuVendor {
    root_der: Vec<u8>,
    identity_der: Vec<u8>,
    provisioner_der: Vec<u8>,
    brom_der: Vec<u8>,
    device_der: Vec<u8>,
    device: P384Key,
    fwid: [u8; 48],
}

impl std::fmt::Debug for SimulatedGpuVendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedGpuVendor")
            .field("fwid", &hex::encode(&self.fwid[..8]))
            .field("device_key", &"opaque")
            .finish()
    }
}

const FILES: [&str; 8] = [
    "root.der",
    "identity.der",
    "provisioner.der",
    "brom.der",
    "device.der",
    "device.key",
    "fwid.hex",
    "README",
];

impl SimulatedGpuVendor {
    /// Generate a fresh simulated NVIDIA PKI and device in memory; certificates valid from a
    /// day before `now` to 9999-12-31 (as NVIDIA's).
    pub fn generate(now: UnixTime) -> Result<Self, SimError> {
        let enc = |_| SimError::Encoding;
        let not_before = i64::try_from(now.0.saturating_sub(86_400))
            .ok()
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .ok_or(SimError::Encoding)?;
        let not_after =
            time::OffsetDateTime::from_unix_timestamp(NOT_AFTER).map_err(|_| SimError::Encoding)?;
        let dated = |mut p: CertificateParams| {
            p.not_before = not_before;
            p.not_after = not_after;
            p.serial_number = Some(SerialNumber::from_slice(&random_serial()));
            p
        };
        let (root, identity, provisioner, brom, device) = (
            P384Key::generate()?,
            P384Key::generate()?,
            P384Key::generate()?,
            P384Key::generate()?,
            P384Key::generate()?,
        );
        let brom_serial = hex::encode_upper(rand::random::<[u8; 9]>());
        let device_serial = hex::encode_upper(rand::random::<[u8; 20]>());
        let device_id = hex::encode_upper(rand::random::<[u8; 8]>());
        let fwid: [u8; 48] = Sha384::digest(rand::random::<[u8; 32]>()).into();

        let root_params = || -> Result<_, SimError> { Ok(ca_params(dn(ROOT_CN, None)?, true)) };
        let root_kp = root.rcgen()?;
        let root_der = dated(root_params()?)
            .self_signed(&root_kp)
            .map_err(enc)?
            .der()
            .to_vec();
        let root_issuer = Issuer::new(root_params()?, root_kp);

        let identity_params =
            || -> Result<_, SimError> { Ok(ca_params(dn(IDENTITY_CN, None)?, true)) };
        let identity_kp = identity.rcgen()?;
        let identity_der = dated(identity_params()?)
            .signed_by(&identity_kp, &root_issuer)
            .map_err(enc)?
            .der()
            .to_vec();
        let identity_issuer = Issuer::new(identity_params()?, identity_kp);

        let prov_params =
            || -> Result<_, SimError> { Ok(ca_params(dn(PROVISIONER_CN, None)?, true)) };
        let prov_kp = provisioner.rcgen()?;
        let provisioner_der = dated(prov_params()?)
            .signed_by(&prov_kp, &identity_issuer)
            .map_err(enc)?
            .der()
            .to_vec();
        let prov_issuer = Issuer::new(prov_params()?, prov_kp);

        let brom_params =
            || -> Result<_, SimError> { Ok(ca_params(dn(BROM_CN, Some(&brom_serial))?, false)) };
        let brom_kp = brom.rcgen()?;
        let brom_spki = rcgen::PublicKeyData::subject_public_key_info(&brom_kp);
        let brom_der = dated(brom_params()?)
            .signed_by(&brom_kp, &prov_issuer)
            .map_err(enc)?
            .der()
            .to_vec();
        let brom_issuer = Issuer::new(brom_params()?, brom_kp);

        let mut dev = CertificateParams::default();
        dev.distinguished_name = dn(DEVICE_CN, Some(&device_serial))?;
        dev.is_ca = IsCa::NoCa;
        dev.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        dev.key_identifier_method = KeyIdMethod::Sha256;
        dev.use_authority_key_identifier_extension = true;
        dev.subject_alt_names = vec![SanType::OtherName((
            OID_NVIDIA_DEVICE_NAME.to_vec(),
            format!("CONFIDE-SIMULATED:GH100:{device_id}").into(),
        ))];
        dev.custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &OID_TCG_DICE_TCB_INFO,
                fwid_extension(&brom_spki, &fwid),
            ));
        let device_der = dated(dev)
            .signed_by(&device.rcgen()?, &brom_issuer)
            .map_err(enc)?
            .der()
            .to_vec();

        Ok(SimulatedGpuVendor {
            root_der,
            identity_der,
            provisioner_der,
            brom_der,
            device_der,
            device,
            fwid,
        })
    }

    /// Load the simulated NVIDIA persisted in `dir`, or create one there on first use
    /// (atomic: written to a sibling directory, then renamed into place). Only the device key
    /// is kept; the CA keys are not needed after generation and are not written.
    pub fn load_or_create(dir: &Path) -> Result<Self, SimError> {
        if dir.join("device.der").exists() {
            return Self::load(dir);
        }
        let now = UnixTime::from_system_time(std::time::SystemTime::now());
        let v = Self::generate(now)?;
        let readme = "Confide SIMULATED NVIDIA GPU vendor. NOT A GPU: these keys prove nothing.\n";
        let fwid_hex = hex::encode(v.fwid);
        let contents: [&[u8]; 8] = [
            &v.root_der,
            &v.identity_der,
            &v.provisioner_der,
            &v.brom_der,
            &v.device_der,
            &v.device.pkcs8,
            fwid_hex.as_bytes(),
            readme.as_bytes(),
        ];
        let files: Vec<(&str, &[u8])> = FILES.iter().copied().zip(contents).collect();
        if crate::install_vendor_dir(dir, "device.der", &files)? {
            Ok(v)
        } else {
            // Another process won the race; use its vendor.
            Self::load(dir)
        }
    }

    /// Load a simulated NVIDIA from `dir` (see [`Self::load_or_create`]).
    pub fn load(dir: &Path) -> Result<Self, SimError> {
        let read = |name: &str| crate::read_vendor_file(dir, name);
        let device = P384Key {
            pkcs8: read("device.key")?,
        };
        let fwid = hex::decode(read("fwid.hex")?.trim_ascii())
            .ok()
            .and_then(|b| <[u8; 48]>::try_from(b).ok())
            .ok_or(SimError::Inconsistent("fwid.hex is not 48 hex bytes"))?;
        let v = SimulatedGpuVendor {
            root_der: read("root.der")?,
            identity_der: read("identity.der")?,
            provisioner_der: read("provisioner.der")?,
            brom_der: read("brom.der")?,
            device_der: read("device.der")?,
            device,
            fwid,
        };
        // The device certificate must certify the device key, or every report would fail.
        let point = v.device.public_point()?;
        if !v
            .device_der
            .windows(point.len())
            .any(|w| w == point.as_slice())
        {
            return Err(SimError::Inconsistent(
                "device.key does not match device.der",
            ));
        }
        Ok(v)
    }

    /// The simulated NVIDIA root, DER. Pin it as the policy's `roots.simulated_gpu`
    /// (`TrustPolicy::with_simulated_gpu_root`).
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The simulated NVIDIA root as PEM.
    pub fn root_pem(&self) -> String {
        pem_certificate(&self.root_der)
    }

    /// The device chain as GPU evidence carries it: DER, device certificate first, root last
    /// (as NVIDIA's driver returns it).
    pub fn chain(&self) -> Vec<Vec<u8>> {
        vec![
            self.device_der.clone(),
            self.brom_der.clone(),
            self.provisioner_der.clone(),
            self.identity_der.clone(),
            self.root_der.clone(),
        ]
    }

    /// The FMC firmware id certified by the device certificate (and echoed in OpaqueData).
    pub fn fwid(&self) -> [u8; 48] {
        self.fwid
    }

    /// Sign `msg` (request || response-without-signature) with the device key: ECDSA
    /// P-384/SHA-384, r || s. Public so tests can re-sign a tampered exchange.
    pub fn sign_spdm(&self, msg: &[u8]) -> Result<[u8; 96], SimError> {
        let sig: p384::ecdsa::Signature = self
            .device
            .signing()?
            .try_sign(msg)
            .map_err(|_| SimError::Crypto("ECDSA P-384 signing"))?;
        sig.to_bytes()
            .as_slice()
            .try_into()
            .map_err(|_| SimError::Crypto("ECDSA P-384 signature length"))
    }
}

/// One simulated H100: a device of a [`SimulatedGpuVendor`], its measurements and CC mode.
#[derive(Debug, Clone)]
pub struct SimulatedGpu {
    vendor: SimulatedGpuVendor,
    measurements: BTreeMap<u8, [u8; 48]>,
    feature_flag: Option<u16>,
}

impl SimulatedGpu {
    /// A simulated GPU reporting `measurements` (SPDM block index, from 1, to SHA-384 value)
    /// in CC mode SPT.
    pub fn new(vendor: SimulatedGpuVendor, measurements: BTreeMap<u8, [u8; 48]>) -> Self {
        SimulatedGpu {
            vendor,
            measurements,
            feature_flag: Some(0),
        }
    }

    /// A simulated GPU reporting [`Self::reference_measurements`] in CC mode SPT.
    pub fn with_reference_measurements(vendor: SimulatedGpuVendor) -> Self {
        Self::new(vendor, Self::reference_measurements())
    }

    /// The fixed default measurement set: blocks 1..=64, block `i` =
    /// SHA-384("Confide simulated GH100 measurement block " || i).
    pub fn reference_measurements() -> BTreeMap<u8, [u8; 48]> {
        (1..=SIM_GPU_BLOCKS)
            .map(|i| {
                let mut h = Sha384::new();
                h.update(b"Confide simulated GH100 measurement block ");
                h.update([i]);
                (i, h.finalize().into())
            })
            .collect()
    }

    /// [`Self::reference_measurements`] in the form a release pins and
    /// `GpuExpectations::reference` takes (one accepted value per block).
    pub fn reference() -> BTreeMap<u32, Vec<[u8; 48]>> {
        Self::reference_measurements()
            .into_iter()
            .map(|(i, v)| (u32::from(i), vec![v]))
            .collect()
    }

    /// State `mode` in the signed feature flag: SPT = 0, MPT = 1, PPCIE = 2; with
    /// [`CcMode::Unstated`] the report carries neither the opaque-data version nor the flag
    /// (driver r550's layout).
    pub fn with_cc_mode(mut self, mode: CcMode) -> Self {
        self.feature_flag = match mode {
            CcMode::Unstated => None,
            CcMode::Spt => Some(0),
            CcMode::Mpt => Some(1),
            CcMode::Ppcie => Some(2),
        };
        self
    }

    /// Set the raw feature-flag value (e.g. one NVIDIA does not define), or none.
    pub fn with_feature_flag(mut self, value: Option<u16>) -> Self {
        self.feature_flag = value;
        self
    }

    /// Report `value` for block `index` (added if absent).
    pub fn with_measurement(mut self, index: u8, value: [u8; 48]) -> Self {
        self.measurements.insert(index, value);
        self
    }

    /// The vendor.
    pub fn vendor(&self) -> &SimulatedGpuVendor {
        &self.vendor
    }

    /// The measurements this GPU reports.
    pub fn measurements(&self) -> &BTreeMap<u8, [u8; 48]> {
        &self.measurements
    }

    /// The signed SPDM exchange (request || response) for `nonce`.
    pub fn spdm(&self, nonce: &[u8; 32]) -> Result<Vec<u8>, SimError> {
        // --- GET_MEASUREMENTS request (37 bytes) ---
        let mut out = Vec::with_capacity(4200);
        out.extend_from_slice(&[SPDM_1_1, GET_MEASUREMENTS, 0x01, ALL_BLOCKS]);
        out.extend_from_slice(nonce);
        out.push(0); // SlotIDParam

        // --- MEASUREMENTS response ---
        let mut record = Vec::with_capacity(self.measurements.len() * 55);
        for (&index, value) in &self.measurements {
            // Index 0 and 0xFF are request operations, not block indices (Table 41).
            if index == 0 || index == ALL_BLOCKS {
                return Err(SimError::GpuMeasurementIndex(index));
            }
            record.extend_from_slice(&[index, SPEC_DMTF]);
            record.extend_from_slice(&(3u16 + 48).to_le_bytes());
            record.push(VALUE_TYPE);
            record.extend_from_slice(&48u16.to_le_bytes());
            record.extend_from_slice(value);
        }
        let blocks = u8::try_from(self.measurements.len())
            .map_err(|_| SimError::GpuMeasurementIndex(ALL_BLOCKS))?;
        let record_len = u32::try_from(record.len()).map_err(|_| SimError::Encoding)?;
        out.extend_from_slice(&[SPDM_1_1, MEASUREMENTS, 0, 0, blocks]);
        out.extend_from_slice(&record_len.to_le_bytes()[..3]);
        out.extend_from_slice(&record);
        out.extend_from_slice(&rand::random::<[u8; 32]>());
        let opaque = self.opaque_data();
        let opaque_len = u16::try_from(opaque.len()).map_err(|_| SimError::Encoding)?;
        out.extend_from_slice(&opaque_len.to_le_bytes());
        out.extend_from_slice(&opaque);
        let sig = self.vendor.sign_spdm(&out)?;
        out.extend_from_slice(&sig);
        Ok(out)
    }

    /// GPU evidence for `nonce`: the signed exchange and the device chain.
    pub fn evidence(&self, nonce: &[u8; 32]) -> Result<GpuEvidence, SimError> {
        Ok(GpuEvidence {
            spdm: self.spdm(nonce)?,
            certs: self.vendor.chain(),
        })
    }

    /// GPU evidence for a node whose RA-TLS key has DER SubjectPublicKeyInfo `tls_spki_der`:
    /// the nonce is `confide_attest::gpu_nonce(spki)` = REPORT_DATA[0..32]. The node then
    /// asks the CPU to sign `confide_attest::report_data(spki, Some(&evidence))`.
    pub fn evidence_for_key(&self, tls_spki_der: &[u8]) -> Result<GpuEvidence, SimError> {
        self.evidence(&gpu_nonce(tls_spki_der))
    }

    fn opaque_data(&self) -> Vec<u8> {
        let msrscnt: Vec<u8> = MSRSCNT.iter().flat_map(|c| c.to_le_bytes()).collect();
        let fwid = self.vendor.fwid;
        let mut fields: Vec<(u16, &[u8])> = vec![
            (
                OPAQUE_VBIOS_VERSION,
                &[0x00, 0x74, 0x00, 0x96, 0x20, 0, 0, 0],
            ),
            (OPAQUE_BOARD_ID, &[0xa1, 0x04, 0, 0]),
            (OPAQUE_CHIP_SKU, b"862\0\0\0\0\0\0"),
            (OPAQUE_CHIP_SKU_MOD, b"0\0\0\0\0"),
            (OPAQUE_PROJECT, b"1010\0"),
            (OPAQUE_PROJECT_SKU, b"0205\0"),
            (OPAQUE_PROJECT_SKU_MOD, &[0, 0]),
            (OPAQUE_DRIVER_VERSION, SIM_GPU_DRIVER_VERSION),
            (OPAQUE_GPU_INFO, &[0x80, 0x01, 0, 0, 0, 0, 0, 0]),
            (OPAQUE_MSRSCNT, &msrscnt),
            (OPAQUE_CPRINFO, &[0x00, 0xc0, 0x01, 0x00]),
            (OPAQUE_NVDEC0_STATUS, &[0x55]),
            (OPAQUE_FWID, &fwid),
            (OPAQUE_PROTECTED_PCIE_STATUS, &[0x55]),
        ];
        let flag = self.feature_flag.map(u16::to_le_bytes);
        if let Some(flag) = &flag {
            fields.push((OPAQUE_DATA_VERSION, &[1, 0]));
            fields.push((OPAQUE_FEATURE_FLAG, flag));
        }
        let mut out = Vec::with_capacity(512);
        for (id, value) in fields {
            out.extend_from_slice(&id.to_le_bytes());
            // Every value above is at most 256 bytes.
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
            out.extend_from_slice(value);
        }
        out
    }
}

/// The simulated GPU answers the node's GPU attestation requests as NVML does for a real one.
impl GpuAttester for SimulatedGpu {
    fn gpu_evidence(&self, nonce: &[u8; 32]) -> Result<GpuEvidence, PlatformError> {
        Ok(self.evidence(nonce)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use confide_attest::TrustPolicy;
    use confide_attest_nvidia::{GpuExpectations, NvidiaError, NvidiaVerifier, parse_spdm};

    const NOW: UnixTime = UnixTime(1_750_000_000);

    fn vendor() -> SimulatedGpuVendor {
        SimulatedGpuVendor::generate(NOW).unwrap()
    }

    fn policy(v: &SimulatedGpuVendor) -> TrustPolicy {
        TrustPolicy::production().with_simulated_gpu_root(v.root_der().to_vec())
    }

    /// Same layout as the real r580 exchange: request bytes, response header, block shape,
    /// OpaqueData field ids in order and length, signature found by the real parser.
    #[test]
    fn layout_matches_the_real_h100_exchange() {
        let real_hex = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/nvidia/rim/hopperAttestationReport.txt"
        ))
        .unwrap();
        let real = confide_attest::input::decode_hex_or_binary(&real_hex).unwrap();
        let r = parse_spdm(&real).unwrap();
        let gpu = SimulatedGpu::with_reference_measurements(vendor());
        let sim = gpu.spdm(&r.request_nonce).unwrap();
        let s = parse_spdm(&sim).unwrap();
        // Same length; identical request; identical response header (version, code, params,
        // 64 blocks, record length 3520).
        assert_eq!(sim.len(), real.len());
        assert_eq!(sim[..37], real[..37]);
        assert_eq!(sim[37..45], real[37..45]);
        assert_eq!(s.blocks.len(), r.blocks.len());
        for (a, b) in s.blocks.iter().zip(&r.blocks) {
            assert_eq!(
                (a.index, a.spec, a.value_type),
                (b.index, b.spec, b.value_type)
            );
            assert_eq!(a.value.len(), b.value.len());
        }
        let ids = |m: &confide_attest_nvidia::SpdmMeasurements| {
            m.opaque_fields()
                .unwrap()
                .into_iter()
                .map(|f| (f.id, f.value.len()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&s), ids(&r));
        assert_eq!(s.cc_mode(), Ok(CcMode::Spt));
        let fields = s.opaque_fields().unwrap();
        let fw = fields.iter().find(|f| f.id == OPAQUE_FWID).unwrap();
        assert_eq!(fw.value, gpu.vendor().fwid());
        assert_eq!(s.signed_len, r.signed_len);
        assert_eq!(s.trailing_bytes, 0);
    }

    /// The real verifier accepts the twin under the pinned simulated root, says it is
    /// simulated, and refuses it without allow_simulated or without the root.
    #[test]
    fn verifies_only_under_the_pinned_simulated_root() {
        let v = vendor();
        let gpu = SimulatedGpu::with_reference_measurements(v.clone());
        let nonce = [7u8; 32];
        let ev = gpu.evidence(&nonce).unwrap();
        let p = policy(&v);
        for verifier in [NvidiaVerifier::new(), NvidiaVerifier::with_cache()] {
            let ok = verifier
                .verify(&ev.spdm, &ev.certs, Some(&nonce), &p, NOW)
                .unwrap();
            assert!(ok.is_simulated());
            ok.check(&GpuExpectations {
                reference: SimulatedGpu::reference(),
                cc_modes: vec![CcMode::Spt],
            })
            .unwrap();
        }
        // The chain without its root is completed by the pinned root.
        NvidiaVerifier::new()
            .verify(&ev.spdm, &ev.certs[..4], Some(&nonce), &p, NOW)
            .unwrap();
        let mut off = p.clone();
        off.allow_simulated = false;
        assert_eq!(
            NvidiaVerifier::new().verify(&ev.spdm, &ev.certs, None, &off, NOW),
            Err(NvidiaError::SimulatedNotAllowed)
        );
        let mut no_root = p.clone();
        no_root.simulated_gpu_root = None;
        assert_eq!(
            NvidiaVerifier::new().verify(&ev.spdm, &ev.certs, None, &no_root, NOW),
            Err(NvidiaError::NoPinnedSimulatedRoot)
        );
        // Another simulated NVIDIA's root: the chain does not end there.
        let other = policy(&vendor());
        assert_eq!(
            NvidiaVerifier::new().verify(&ev.spdm, &ev.certs, None, &other, NOW),
            Err(NvidiaError::UntrustedRoot)
        );
        // Wrong nonce.
        assert_eq!(
            NvidiaVerifier::new().verify(&ev.spdm, &ev.certs, Some(&[8; 32]), &p, NOW),
            Err(NvidiaError::NonceMismatch)
        );
    }

    /// The marker decides the root, both ways: a real chain is never checked against the
    /// simulated root (even if that "root" is NVIDIA's own), and the simulated root cannot
    /// stand in for NVIDIA's.
    #[test]
    fn real_and_simulated_never_cross() {
        let v = vendor();
        let ev = SimulatedGpu::with_reference_measurements(v.clone())
            .evidence(&[1; 32])
            .unwrap();
        // Simulated chain, the simulated root pinned as if it were NVIDIA's: the marker
        // still sends it to the (unpinned) simulated root.
        let mut swapped = TrustPolicy::production();
        swapped.nvidia_root = Some(v.root_der().to_vec());
        assert_eq!(
            NvidiaVerifier::new().verify(&ev.spdm, &ev.certs, None, &swapped, NOW),
            Err(NvidiaError::SimulatedNotAllowed)
        );
        swapped.allow_simulated = true;
        assert_eq!(
            NvidiaVerifier::new().verify(&ev.spdm, &ev.certs, None, &swapped, NOW),
            Err(NvidiaError::NoPinnedSimulatedRoot)
        );
        // Real chain with NVIDIA's root pinned as the simulated one and the real root gone:
        // no marker, so only the real root counts.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/nvidia/");
        let spdm = confide_attest::input::decode_hex_or_binary(
            &std::fs::read(format!("{dir}hopperAttestationReport.txt")).unwrap(),
        )
        .unwrap();
        let certs = confide_attest::input::decode_certificates(
            &std::fs::read(format!("{dir}hopperCertChain.txt")).unwrap(),
        )
        .unwrap();
        let mut p = TrustPolicy::production();
        let nv = p.nvidia_root.take().unwrap();
        let p = p.with_simulated_gpu_root(nv.clone());
        assert_eq!(
            NvidiaVerifier::new().verify(&spdm, &certs, None, &p, NOW),
            Err(NvidiaError::NoPinnedRoot)
        );
        // And the real exchange is still real under the real root, simulation allowed or not.
        let mut both = p.clone();
        both.nvidia_root = Some(nv);
        let ok = NvidiaVerifier::new()
            .verify(&spdm, &certs, None, &both, NOW)
            .unwrap();
        assert!(!ok.is_simulated());
    }

    #[test]
    fn cc_mode_and_measurements_are_the_callers() {
        let v = vendor();
        let p = policy(&v);
        let verify = |g: &SimulatedGpu| {
            let ev = g.evidence(&[3; 32]).unwrap();
            NvidiaVerifier::new()
                .verify(&ev.spdm, &ev.certs, Some(&[3; 32]), &p, NOW)
                .unwrap()
        };
        let base = SimulatedGpu::with_reference_measurements(v.clone());
        for (mode, want) in [
            (CcMode::Spt, CcMode::Spt),
            (CcMode::Mpt, CcMode::Mpt),
            (CcMode::Ppcie, CcMode::Ppcie),
            (CcMode::Unstated, CcMode::Unstated),
        ] {
            assert_eq!(verify(&base.clone().with_cc_mode(mode)).cc_mode(), Ok(want));
        }
        assert_eq!(
            verify(&base.clone().with_feature_flag(Some(3))).cc_mode(),
            Err(NvidiaError::UnknownFeatureFlag(3))
        );
        let expect = GpuExpectations {
            reference: SimulatedGpu::reference(),
            cc_modes: vec![CcMode::Spt],
        };
        assert_eq!(
            verify(&base.clone().with_cc_mode(CcMode::Ppcie)).check(&expect),
            Err(NvidiaError::CcModeNotAccepted(CcMode::Ppcie))
        );
        assert_eq!(
            verify(&base.clone().with_measurement(17, [0xAB; 48])).check(&expect),
            Err(NvidiaError::MeasurementMismatch(17))
        );
        let mut fewer = SimulatedGpu::reference_measurements();
        fewer.remove(&64);
        assert_eq!(
            verify(&SimulatedGpu::new(v.clone(), fewer)).check(&expect),
            Err(NvidiaError::MeasurementMissing(64))
        );
        assert!(matches!(
            base.clone().with_measurement(0, [0; 48]).spdm(&[0; 32]),
            Err(SimError::GpuMeasurementIndex(0))
        ));
    }

    #[test]
    fn load_or_create_persists_one_vendor() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("simgpu");
        let a = SimulatedGpuVendor::load_or_create(&dir).unwrap();
        let b = SimulatedGpuVendor::load_or_create(&dir).unwrap();
        assert_eq!(a.root_der(), b.root_der());
        assert_eq!(a.chain(), b.chain());
        assert_eq!(a.fwid(), b.fwid());
        assert!(a.root_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
        // b's key signs what a's chain certifies.
        let ev = SimulatedGpu::with_reference_measurements(b)
            .evidence(&[5; 32])
            .unwrap();
        let now = UnixTime::from_system_time(std::time::SystemTime::now());
        NvidiaVerifier::new()
            .verify(&ev.spdm, &a.chain(), Some(&[5; 32]), &policy(&a), now)
            .unwrap();
        // A device key that does not match the certificate is refused on load.
        let other = vendor();
        std::fs::remove_file(dir.join("device.key")).unwrap();
        std::fs::write(dir.join("device.key"), &other.device.pkcs8).unwrap();
        assert!(matches!(
            SimulatedGpuVendor::load(&dir),
            Err(SimError::Inconsistent(_))
        ));
    }
}
