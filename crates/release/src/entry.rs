//! The canonical ledger entry encoding (see `docs/adr/0101-ledger-entry-encoding.md`).
//!
//! ```text
//! entry        = MAGIC kind body
//! MAGIC        = "confide-ledger-entry/v1\n"          ; 24 bytes, the format version
//! kind         = 0x03 (release v2) / 0x02 (key-config); 0x01 (release v1) is retired
//! release      = platform:u8 measurement:u8-len-bytes model_digest:32 config_digest:32
//!                source_revision:u16-len-utf8 build_recipe_digest:32
//!                not_before:u64 not_after:u64 notes:u16-len-utf8
//! key-config   = key_config:u16-len-bytes not_before:u64 not_after:u64
//! ```
//! Integers are big-endian (RFC 8446 §3 presentation language conventions). Every
//! field has exactly one encoding, decoding consumes every byte, and the decoder
//! re-encodes and compares, so a manifest has exactly one leaf hash.
//!
//! Release v1 (kind 0x01) had no configuration digest, so a client could not tell a
//! node running the released binary with an operator-chosen configuration (another
//! upstream URL, say) from the released one. v1 entries are rejected with
//! [`Error::RetiredEntryFormat`] rather than parsed (see `docs/adr/0201-evidence-binding.md`).

use serde::{Deserialize, Serialize};

use crate::Error;

const MAGIC: &[u8] = b"confide-ledger-entry/v1\n";
/// The retired release format without a configuration digest.
const KIND_RELEASE_V1: u8 = 0x01;
const KIND_RELEASE: u8 = 0x03;
const KIND_KEY_CONFIG: u8 = 0x02;

/// Longest source revision (bytes).
pub const MAX_SOURCE_REVISION: usize = 256;
/// Longest notes field (bytes).
pub const MAX_NOTES: usize = 4096;
/// Longest OHTTP key configuration list (bytes).
pub const MAX_KEY_CONFIG: usize = 8192;
/// Longest encoded entry (bytes); also the limit inside a [`crate::Bundle`].
pub const MAX_ENTRY_LEN: usize = 16 * 1024;

/// The TEE platform a release runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Platform {
    /// AMD SEV-SNP: `measurement` is the report's 48-byte MEASUREMENT (SHA-384).
    SevSnp,
    /// Intel TDX: `measurement` is the quote's 48-byte MRTD (SHA-384).
    Tdx,
    /// The simulated platform (SEV-SNP-format reports under a local root): 48 bytes.
    Simulated,
}

impl Platform {
    /// The measurement length this platform defines.
    pub fn measurement_len(self) -> usize {
        match self {
            Platform::SevSnp | Platform::Tdx | Platform::Simulated => 48,
        }
    }

    /// The serde / human name.
    pub fn name(self) -> &'static str {
        match self {
            Platform::SevSnp => "sev-snp",
            Platform::Tdx => "tdx",
            Platform::Simulated => "simulated",
        }
    }

    fn byte(self) -> u8 {
        match self {
            Platform::SevSnp => 1,
            Platform::Tdx => 2,
            Platform::Simulated => 3,
        }
    }

    fn from_byte(b: u8) -> Result<Self, Error> {
        match b {
            1 => Ok(Platform::SevSnp),
            2 => Ok(Platform::Tdx),
            3 => Ok(Platform::Simulated),
            _ => Err(Error::InvalidField {
                field: "platform",
                reason: "unknown platform",
            }),
        }
    }
}

/// A node release that may serve requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseManifest {
    /// TEE platform.
    pub platform: Platform,
    /// Launch measurement, [`Platform::measurement_len`] bytes (hex in documents).
    #[serde(with = "hex_vec")]
    pub measurement: Vec<u8>,
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
pub enum LedgerEntry {
    /// A node release.
    Release(ReleaseManifest),
    /// A gateway OHTTP key configuration.
    KeyConfig(KeyConfigEntry),
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
            KIND_RELEASE_V1 => {
                return Err(Error::RetiredEntryFormat(
                    "release v1 (no config digest); republish the release with config_digest",
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
