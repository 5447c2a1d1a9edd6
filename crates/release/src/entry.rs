//! The canonical ledger entry encoding (see `docs/adr/0101-ledger-entry-and-bundle-encoding.md`
//! and `docs/adr/0203-release-pins.md`).
//!
//! ```text
//! entry        = MAGIC kind body
//! MAGIC        = "confide-ledger-entry/v1\n"          ; 24 bytes, the format version
//! kind         = 0x04 (release v3) / 0x02 (key-config) / 0x05 (revocation);
//!                0x01 and 0x03 (releases v1, v2) are retired
//! release      = platform:u8 measurement:u8-len-bytes
//!                snp_policy:(0x00 / 0x01 u64)                 ; SEV-SNP guest POLICY
//!                rtmr_count:u8 rtmr:48*rtmr_count             ; TDX RTMR0..2[3]
//!                gpu_count:u8 gpu_pin*gpu_count               ; GPU reference values
//!                model_digest:32 config_digest:32
//!                source_revision:u16-len-utf8 build_recipe_digest:32
//!                not_before:u64 not_after:u64 notes:u16-len-utf8
//! gpu_pin      = index:u8 alt_count:u8 (value:u8-len-bytes)*alt_count ; indices ascending
//! key-config   = key_config:u16-len-bytes not_before:u64 not_after:u64
//! revocation   = index:u64 reason:u16-len-utf8                ; an earlier release's leaf index
//! ```
//! Integers are big-endian (RFC 8446 §3 presentation language conventions). Every
//! field has exactly one encoding, decoding consumes every byte, and the decoder
//! re-encodes and compares, so a manifest has exactly one leaf hash.
//!
//! Release v1 (kind 0x01) had no configuration digest, so a client could not tell a
//! node running the released binary with an operator-chosen configuration (another
//! upstream URL, say) from the released one. Release v2 (kind 0x03) pinned one 48-byte
//! value per platform: for TDX that is MRTD alone, which says nothing about the kernel,
//! initrd and command line (measured into RTMR0..2), and for SEV-SNP it left the guest
//! policy (debug, migration agent, SMT) to whatever the host chose. Both are rejected
//! with [`Error::RetiredEntryFormat`] rather than parsed.

use serde::{Deserialize, Serialize};

use crate::Error;

const MAGIC: &[u8] = b"confide-ledger-entry/v1\n";
/// The retired release format without a configuration digest.
const KIND_RELEASE_V1: u8 = 0x01;
/// The retired release format that pinned MRTD alone on TDX and no SEV-SNP guest policy.
const KIND_RELEASE_V2: u8 = 0x03;
const KIND_RELEASE: u8 = 0x04;
const KIND_KEY_CONFIG: u8 = 0x02;
const KIND_REVOCATION: u8 = 0x05;
/// Longest revocation reason (bytes).
pub const MAX_REASON: usize = 1024;

/// Longest source revision (bytes).
pub const MAX_SOURCE_REVISION: usize = 256;
/// Longest notes field (bytes).
pub const MAX_NOTES: usize = 4096;
/// Longest OHTTP key configuration list (bytes).
pub const MAX_KEY_CONFIG: usize = 8192;
/// Longest encoded entry (bytes); also the limit inside a [`crate::Bundle`].
pub const MAX_ENTRY_LEN: usize = 16 * 1024;
/// Size of one TDX measurement register (SHA-384).
pub const TDX_REGISTER_LEN: usize = 48;
/// Most GPU measurement indices a release may pin (SPDM indices are one byte).
pub const MAX_GPU_PINS: usize = 128;
/// Most accepted values per GPU measurement index (NVIDIA RIMs list a few alternatives).
pub const MAX_GPU_ALTERNATIVES: usize = 8;
/// Longest GPU measurement value (bytes; Hopper uses SHA-384, 48).
pub const MAX_GPU_MEASUREMENT: usize = 64;

/// The TEE platform a release runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Platform {
    /// AMD SEV-SNP: `measurement` is the report's 48-byte MEASUREMENT (SHA-384), and
    /// `snp_policy` the guest POLICY the launch must have used.
    SevSnp,
    /// Intel TDX: `measurement` is the quote's 48-byte MRTD (SHA-384), and `rtmrs`
    /// RTMR0..2 (firmware configuration, kernel and command line, initrd), RTMR3 optional.
    Tdx,
    /// The simulated SEV-SNP twin (SEV-SNP-format reports under a local root): as SEV-SNP.
    Simulated,
    /// The simulated TDX twin (DCAP quotes under a local root): as TDX.
    SimulatedTdx,
}

/// How a platform's launch is measured: what a release for it must pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasurementScheme {
    /// One launch digest (MEASUREMENT) plus the guest policy.
    Snp,
    /// MRTD plus the runtime measurement registers RTMR0..2 (and RTMR3 where used).
    Tdx,
}

impl Platform {
    /// The measurement length this platform defines.
    pub fn measurement_len(self) -> usize {
        48
    }

    /// What a release for this platform pins.
    pub fn scheme(self) -> MeasurementScheme {
        match self {
            Platform::SevSnp | Platform::Simulated => MeasurementScheme::Snp,
            Platform::Tdx | Platform::SimulatedTdx => MeasurementScheme::Tdx,
        }
    }

    /// Whether this is a simulated platform (no hardware protection at all).
    pub fn is_simulated(self) -> bool {
        matches!(self, Platform::Simulated | Platform::SimulatedTdx)
    }

    /// The serde / human name.
    pub fn name(self) -> &'static str {
        match self {
            Platform::SevSnp => "sev-snp",
            Platform::Tdx => "tdx",
            Platform::Simulated => "simulated",
            Platform::SimulatedTdx => "simulated-tdx",
        }
    }

    fn byte(self) -> u8 {
        match self {
            Platform::SevSnp => 1,
            Platform::Tdx => 2,
            Platform::Simulated => 3,
            Platform::SimulatedTdx => 4,
        }
    }

    fn from_byte(b: u8) -> Result<Self, Error> {
        match b {
            1 => Ok(Platform::SevSnp),
            2 => Ok(Platform::Tdx),
            3 => Ok(Platform::Simulated),
            4 => Ok(Platform::SimulatedTdx),
            _ => Err(Error::InvalidField {
                field: "platform",
                reason: "unknown platform",
            }),
        }
    }
}

/// Reference values for a GPU's SPDM measurements: for each measurement index, the values
/// the release accepts (NVIDIA's reference integrity manifests list alternatives, for
/// example one per VBIOS build). Indices not listed are not compared: a RIM marks them
/// inactive because they vary per board.
pub type GpuReference = std::collections::BTreeMap<u8, Vec<Vec<u8>>>;

/// A node release that may serve requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseManifest {
    /// TEE platform.
    pub platform: Platform,
    /// Launch measurement, [`Platform::measurement_len`] bytes (hex in documents): SEV-SNP
    /// MEASUREMENT or TDX MRTD.
    #[serde(with = "hex_vec")]
    pub measurement: Vec<u8>,
    /// SEV-SNP guest POLICY (ABI spec 56860 §4.3) the launch must have used; required for
    /// SEV-SNP and the simulated twin, absent otherwise. Documents may write it in hex
    /// (`snp_policy = 0x30000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snp_policy: Option<u64>,
    /// TDX RTMR0, RTMR1, RTMR2 and, where the release uses it, RTMR3 (48 bytes each, hex in
    /// documents); required for TDX and its twin, absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "hex_list")]
    pub rtmrs: Vec<Vec<u8>>,
    /// Reference values for the GPU's SPDM measurements, by index (documents: a table
    /// from index to a list of hex values). Empty when the release runs without a GPU.
    #[serde(
        default,
        skip_serializing_if = "GpuReference::is_empty",
        with = "gpu_ref"
    )]
    pub gpu_reference: GpuReference,
    /// SHA-256 of the model weights (hex in documents).
    #[serde(with = "hex_32")]
    pub model_digest: [u8; 32],
    /// SHA-256 of the node's canonical configuration (upstream, limits, development
    /// switches), bound into the evidence next to the model digest (hex in documents).
    #[serde(with = "hex_32")]
    pub config_digest: [u8; 32],
    /// Source revision the node was built from (e.g. a git commit), 1..=256 bytes.
    pub source_revision: String,
    /// SHA-256 of the reproducible build recipe (hex in documents).
    #[serde(with = "hex_32")]
    pub build_recipe_digest: [u8; 32],
    /// Start of validity, unix seconds (documents: integer or RFC 3339).
    #[serde(with = "unix_time")]
    pub not_before: u64,
    /// End of validity, unix seconds (documents: integer or RFC 3339).
    #[serde(with = "unix_time")]
    pub not_after: u64,
    /// Free-form notes, at most 4096 bytes.
    #[serde(default)]
    pub notes: String,
}

impl ReleaseManifest {
    /// Check every field's range (what [`LedgerEntry::encode`] requires).
    pub fn validate(&self) -> Result<(), Error> {
        let want = self.platform.measurement_len();
        if self.measurement.len() != want {
            return Err(Error::MeasurementLength {
                platform: self.platform.name(),
                want,
                got: self.measurement.len(),
            });
        }
        self.validate_pins()?;
        if self.source_revision.is_empty() || self.source_revision.len() > MAX_SOURCE_REVISION {
            return Err(Error::InvalidField {
                field: "source_revision",
                reason: "must be 1 to 256 bytes",
            });
        }
        if self.source_revision.chars().any(char::is_control) {
            return Err(Error::InvalidField {
                field: "source_revision",
                reason: "control characters",
            });
        }
        check_notes(&self.notes)?;
        check_validity(self.not_before, self.not_after)
    }

    /// Whether `now` (unix seconds) lies inside the validity window (inclusive).
    pub fn is_valid_at(&self, now: u64) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Require the release to be at most `max_age` seconds old at `now` (unix seconds,
    /// passed in), counted from `not_before`: a device policy can insist on recent
    /// builds whatever validity window the operator chose.
    pub fn check_age(&self, now: u64, max_age: u64) -> Result<(), Error> {
        if now.saturating_sub(self.not_before) > max_age {
            return Err(Error::ReleaseTooOld {
                not_before: self.not_before,
                now,
                max_age,
            });
        }
        Ok(())
    }

    /// Each platform pins everything its launch measures: a release that left a register
    /// out would accept any kernel (TDX) or any guest policy (SEV-SNP).
    fn validate_pins(&self) -> Result<(), Error> {
        let missing = |field| Error::InvalidField {
            field,
            reason: "required for this platform",
        };
        let foreign = |field| Error::InvalidField {
            field,
            reason: "not measured on this platform",
        };
        match self.platform.scheme() {
            MeasurementScheme::Snp => {
                if self.snp_policy.is_none() {
                    return Err(missing("snp_policy"));
                }
                if !self.rtmrs.is_empty() {
                    return Err(foreign("rtmrs"));
                }
            }
            MeasurementScheme::Tdx => {
                if self.snp_policy.is_some() {
                    return Err(foreign("snp_policy"));
                }
                if !(3..=4).contains(&self.rtmrs.len()) {
                    return Err(Error::InvalidField {
                        field: "rtmrs",
                        reason: "must list RTMR0, RTMR1, RTMR2 and optionally RTMR3",
                    });
                }
                if self.rtmrs.iter().any(|r| r.len() != TDX_REGISTER_LEN) {
                    return Err(Error::InvalidField {
                        field: "rtmrs",
                        reason: "each register is 48 bytes",
                    });
                }
            }
        }
        if self.gpu_reference.len() > MAX_GPU_PINS {
            return Err(Error::InvalidField {
                field: "gpu_reference",
                reason: "more than 128 measurement indices",
            });
        }
        for values in self.gpu_reference.values() {
            if values.is_empty() || values.len() > MAX_GPU_ALTERNATIVES {
                return Err(Error::InvalidField {
                    field: "gpu_reference",
                    reason: "each index lists 1 to 8 values",
                });
            }
            if values
                .iter()
                .any(|v| v.is_empty() || v.len() > MAX_GPU_MEASUREMENT)
            {
                return Err(Error::InvalidField {
                    field: "gpu_reference",
                    reason: "each value is 1 to 64 bytes",
                });
            }
            // One encoding per manifest: alternatives are a set, kept sorted.
            if values.windows(2).any(|w| w[0] >= w[1]) {
                return Err(Error::InvalidField {
                    field: "gpu_reference",
                    reason: "values must be distinct and in ascending order",
                });
            }
        }
        Ok(())
    }

    /// The registers this release pins, by name, each with the values it accepts: the
    /// one list a verifier compares evidence against (see `confide-verify`). Names follow
    /// the vendors' specifications: `MEASUREMENT` and `POLICY` (SEV-SNP), `MRTD` and
    /// `RTMR0`..`RTMR3` (TDX), `gpu.N` for the GPU's SPDM measurement index N.
    pub fn pins(&self) -> Vec<(String, Vec<Vec<u8>>)> {
        let mut out = Vec::new();
        match self.platform.scheme() {
            MeasurementScheme::Snp => {
                out.push(("MEASUREMENT".to_owned(), vec![self.measurement.clone()]));
                if let Some(p) = self.snp_policy {
                    out.push(("POLICY".to_owned(), vec![p.to_le_bytes().to_vec()]));
                }
            }
            MeasurementScheme::Tdx => {
                out.push(("MRTD".to_owned(), vec![self.measurement.clone()]));
                for (i, r) in self.rtmrs.iter().enumerate() {
                    out.push((format!("RTMR{i}"), vec![r.clone()]));
                }
            }
        }
        for (index, values) in &self.gpu_reference {
            out.push((format!("gpu.{index}"), values.clone()));
        }
        out
    }
}

/// A gateway's OHTTP key configuration (RFC 9458 §3 `application/ohttp-keys`), logged
/// so that every device can check it is being given the same key (key consistency).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfigEntry {
    /// The `application/ohttp-keys` bytes as served (hex in documents).
    #[serde(with = "hex_vec")]
    pub key_config: Vec<u8>,
    /// Start of validity, unix seconds.
    #[serde(with = "unix_time")]
    pub not_before: u64,
    /// End of validity, unix seconds.
    #[serde(with = "unix_time")]
    pub not_after: u64,
}

impl KeyConfigEntry {
    /// Check every field's range.
    pub fn validate(&self) -> Result<(), Error> {
        if self.key_config.is_empty() || self.key_config.len() > MAX_KEY_CONFIG {
            return Err(Error::InvalidField {
                field: "key_config",
                reason: "must be 1 to 8192 bytes",
            });
        }
        check_validity(self.not_before, self.not_after)
    }

    /// Whether `now` (unix seconds) lies inside the validity window (inclusive).
    pub fn is_valid_at(&self, now: u64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// The withdrawal of an earlier release: devices refuse the release logged at `index`
/// from the moment they see this entry, whatever its `not_after`. Only an entry logged
/// after the release can revoke it (a log is append-only, so a revocation cannot be
/// placed before what it revokes); devices ignore any other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Leaf index of the revoked release.
    pub index: u64,
    /// Why (shown to users and auditors), 1 to 1024 bytes.
    pub reason: String,
}

impl Revocation {
    /// Check every field's range.
    pub fn validate(&self) -> Result<(), Error> {
        if self.reason.trim().is_empty() || self.reason.len() > MAX_REASON {
            return Err(Error::InvalidField {
                field: "reason",
                reason: "must be 1 to 1024 bytes",
            });
        }
        if self.reason.chars().any(char::is_control) {
            return Err(Error::InvalidField {
                field: "reason",
                reason: "control characters",
            });
        }
        Ok(())
    }
}

fn check_validity(nb: u64, na: u64) -> Result<(), Error> {
    if nb > na {
        return Err(Error::InvalidField {
            field: "not_after",
            reason: "earlier than not_before",
        });
    }
    Ok(())
}

fn check_notes(notes: &str) -> Result<(), Error> {
    if notes.len() > MAX_NOTES {
        return Err(Error::InvalidField {
            field: "notes",
            reason: "longer than 4096 bytes",
        });
    }
    if notes.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::InvalidField {
            field: "notes",
            reason: "control characters",
        });
    }
    Ok(())
}

/// One entry of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
// Entries are handled one at a time (decoded, checked, dropped), never stored in bulk, so
// the manifest's size costs nothing and boxing it would only add a pointer to every match.
#[allow(clippy::large_enum_variant)]
pub enum LedgerEntry {
    /// A node release.
    Release(ReleaseManifest),
    /// A gateway OHTTP key configuration.
    KeyConfig(KeyConfigEntry),
    /// The revocation of an earlier release.
    Revocation(Revocation),
}

impl LedgerEntry {
    /// The canonical encoding (the bytes the ledger logs and hashes).
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = MAGIC.to_vec();
        match self {
            LedgerEntry::Release(m) => {
                m.validate()?;
                out.push(KIND_RELEASE);
                out.push(m.platform.byte());
                out.push(m.measurement.len() as u8);
                out.extend_from_slice(&m.measurement);
                match m.snp_policy {
                    None => out.push(0),
                    Some(p) => {
                        out.push(1);
                        out.extend_from_slice(&p.to_be_bytes());
                    }
                }
                // validate() bounded every count and length below 256.
                out.push(m.rtmrs.len() as u8);
                for r in &m.rtmrs {
                    out.extend_from_slice(r);
                }
                out.push(m.gpu_reference.len() as u8);
                for (index, values) in &m.gpu_reference {
                    out.push(*index);
                    out.push(values.len() as u8);
                    for v in values {
                        out.push(v.len() as u8);
                        out.extend_from_slice(v);
                    }
                }
                out.extend_from_slice(&m.model_digest);
                out.extend_from_slice(&m.config_digest);
                put_u16_bytes(&mut out, m.source_revision.as_bytes());
                out.extend_from_slice(&m.build_recipe_digest);
                out.extend_from_slice(&m.not_before.to_be_bytes());
                out.extend_from_slice(&m.not_after.to_be_bytes());
                put_u16_bytes(&mut out, m.notes.as_bytes());
            }
            LedgerEntry::KeyConfig(k) => {
                k.validate()?;
                out.push(KIND_KEY_CONFIG);
                put_u16_bytes(&mut out, &k.key_config);
                out.extend_from_slice(&k.not_before.to_be_bytes());
                out.extend_from_slice(&k.not_after.to_be_bytes());
            }
            LedgerEntry::Revocation(r) => {
                r.validate()?;
                out.push(KIND_REVOCATION);
                out.extend_from_slice(&r.index.to_be_bytes());
                put_u16_bytes(&mut out, r.reason.as_bytes());
            }
        }
        Ok(out)
    }

    /// Parse the canonical encoding; anything else is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(Error::InvalidField {
                field: "entry",
                reason: "longer than 16 KiB",
            });
        }
        let mut r = Reader(bytes);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(Error::MalformedEntry("not a confide ledger entry v1"));
        }
        let entry = match r.u8()? {
            KIND_RELEASE => {
                let platform = Platform::from_byte(r.u8()?)?;
                let mlen = usize::from(r.u8()?);
                let measurement = r.take(mlen)?.to_vec();
                let snp_policy = match r.u8()? {
                    0 => None,
                    1 => Some(r.u64()?),
                    _ => return Err(Error::MalformedEntry("snp_policy presence byte")),
                };
                let rtmrs = (0..r.u8()?)
                    .map(|_| r.take(TDX_REGISTER_LEN).map(<[u8]>::to_vec))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut gpu_reference = GpuReference::new();
                for _ in 0..r.u8()? {
                    let index = r.u8()?;
                    let values = (0..r.u8()?)
                        .map(|_| {
                            let n = usize::from(r.u8()?);
                            r.take(n).map(<[u8]>::to_vec)
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    if gpu_reference.insert(index, values).is_some() {
                        return Err(Error::MalformedEntry("GPU index listed twice"));
                    }
                }
                let model_digest = r.array32()?;
                let config_digest = r.array32()?;
                let source_revision = r.utf8_u16()?;
                let build_recipe_digest = r.array32()?;
                let not_before = r.u64()?;
                let not_after = r.u64()?;
                let notes = r.utf8_u16()?;
                let m = ReleaseManifest {
                    platform,
                    measurement,
                    snp_policy,
                    rtmrs,
                    gpu_reference,
                    model_digest,
                    config_digest,
                    source_revision,
                    build_recipe_digest,
                    not_before,
                    not_after,
                    notes,
                };
                m.validate()?;
                LedgerEntry::Release(m)
            }
            KIND_KEY_CONFIG => {
                let len = usize::from(r.u16()?);
                let key_config = r.take(len)?.to_vec();
                let k = KeyConfigEntry {
                    key_config,
                    not_before: r.u64()?,
                    not_after: r.u64()?,
                };
                k.validate()?;
                LedgerEntry::KeyConfig(k)
            }
            KIND_REVOCATION => {
                let r = Revocation {
                    index: r.u64()?,
                    reason: r.utf8_u16()?,
                };
                r.validate()?;
                LedgerEntry::Revocation(r)
            }
            KIND_RELEASE_V1 => {
                return Err(Error::RetiredEntryFormat(
                    "release v1 (no config digest); republish the release with config_digest",
                ));
            }
            KIND_RELEASE_V2 => {
                return Err(Error::RetiredEntryFormat(
                    "release v2 (TDX pinned MRTD alone, SEV-SNP no guest policy); republish the \
                     release with snp_policy (SEV-SNP) or rtmrs (TDX)",
                ));
            }
            _ => return Err(Error::MalformedEntry("unknown entry kind")),
        };
        if !r.0.is_empty() {
            return Err(Error::MalformedEntry("trailing bytes"));
        }
        // Belt and braces: the only accepted bytes are the canonical ones.
        if entry.encode()? != bytes {
            return Err(Error::NonCanonicalEntry);
        }
        Ok(entry)
    }

    /// The RFC 9162 leaf hash of the canonical encoding.
    pub fn leaf_hash(&self) -> Result<confide_tlog::Hash, Error> {
        Ok(confide_tlog::leaf_hash(&self.encode()?))
    }

    /// Read a TOML document. A document without `kind` is a release manifest (the
    /// `confide release publish` input); `kind = "key-config"` selects the other kind.
    pub fn from_toml(s: &str) -> Result<Self, Error> {
        let mut v: toml::Table = toml::from_str(s).map_err(|e| Error::Document(e.to_string()))?;
        v.entry("kind")
            .or_insert_with(|| toml::Value::String("release".into()));
        let e: Self = v
            .try_into()
            .map_err(|e: toml::de::Error| Error::Document(e.to_string()))?;
        e.validate()?;
        Ok(e)
    }

    /// Read a JSON document (same shape as [`LedgerEntry::from_toml`]).
    pub fn from_json(s: &str) -> Result<Self, Error> {
        let mut v: serde_json::Value =
            serde_json::from_str(s).map_err(|e| Error::Document(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.entry("kind")
                .or_insert_with(|| serde_json::Value::String("release".into()));
        }
        let e: Self = serde_json::from_value(v).map_err(|e| Error::Document(e.to_string()))?;
        e.validate()?;
        Ok(e)
    }

    /// Read a document, choosing JSON when it starts with `{`, TOML otherwise.
    pub fn from_document(s: &str) -> Result<Self, Error> {
        if s.trim_start().starts_with('{') {
            Self::from_json(s)
        } else {
            Self::from_toml(s)
        }
    }

    /// The JSON document form (hex digests, unix-second times).
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string_pretty(self).map_err(|e| Error::Document(e.to_string()))
    }

    fn validate(&self) -> Result<(), Error> {
        match self {
            LedgerEntry::Release(m) => m.validate(),
            LedgerEntry::KeyConfig(k) => k.validate(),
            LedgerEntry::Revocation(r) => r.validate(),
        }
    }
}

fn put_u16_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Callers validated the length (all limits are below 2^16).
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::MalformedEntry("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u64(&mut self) -> Result<u64, Error> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn array32(&mut self) -> Result<[u8; 32], Error> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }
    fn utf8_u16(&mut self) -> Result<String, Error> {
        let n = usize::from(self.u16()?);
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| Error::MalformedEntry("string is not UTF-8"))
    }
}

mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s.trim()).map_err(serde::de::Error::custom)
    }
}

mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| hex::decode(s.trim()).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// GPU references in documents: `{ "2" = ["hex", ...], ... }` (TOML keys are strings).
/// Values are sorted and deduplicated on reading, so one set has one encoding.
mod gpu_ref {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::GpuReference;

    pub fn serialize<S: Serializer>(v: &GpuReference, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(v.iter().map(|(k, vals)| {
            (
                k.to_string(),
                vals.iter().map(hex::encode).collect::<Vec<_>>(),
            )
        }))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<GpuReference, D::Error> {
        let raw = BTreeMap::<String, Vec<String>>::deserialize(d)?;
        let mut out = GpuReference::new();
        for (k, vals) in raw {
            let index: u8 = k
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom("GPU measurement index must be 0..=255"))?;
            let mut decoded = vals
                .iter()
                .map(|s| hex::decode(s.trim()).map_err(serde::de::Error::custom))
                .collect::<Result<Vec<_>, _>>()?;
            decoded.sort();
            decoded.dedup();
            if out.insert(index, decoded).is_some() {
                return Err(serde::de::Error::custom(
                    "GPU measurement index listed twice",
                ));
            }
        }
        Ok(out)
    }
}

mod hex_32 {
    use serde::{Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        super::hex_vec::serialize(v, s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let v = super::hex_vec::deserialize(d)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("a SHA-256 digest must be 32 bytes"))
    }
}

mod unix_time {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Unix(u64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*v)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Either::deserialize(d)? {
            Either::Unix(u) => Ok(u),
            Either::Text(t) => {
                let dt =
                    time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339)
                        .map_err(serde::de::Error::custom)?;
                u64::try_from(dt.unix_timestamp())
                    .map_err(|_| serde::de::Error::custom("time before 1970"))
            }
        }
    }
}
