//! The RATS Conceptual Message Wrapper carried in the node certificate.
//!
//! draft-ietf-rats-msg-wrap (now in the RFC Editor queue) defines:
//! - a CMW *record*: the CBOR array `[type, value, ? ind]` (section 3.1), where
//!   `type` is a media type string or CoAP content-format number, `value` the
//!   wrapped message as a byte string and `ind` a bitmap of conceptual-message
//!   kinds (1 reference values, 2 endorsements, 4 evidence, 8 attestation results,
//!   16 appraisal policy);
//! - a CMW *collection*: a CBOR map from labels to CMWs, with the optional
//!   `"__cmwc_t"` entry naming the collection type (section 3.3);
//! - the X.509 extension `id-pe-cmw` (1.3.6.1.5.5.7.1.35) whose `extnValue` is the
//!   DER of `CMW ::= CHOICE { json UTF8String, cbor OCTET STRING }` (section 6.1).
//!
//! Confide uses the CBOR choice and a collection with fixed labels:
//!
//! | label      | type (media type)            | ind | content                          |
//! |------------|------------------------------|-----|----------------------------------|
//! | `"cpu"`    | from the [`crate::Attester`] | 4   | CPU TEE evidence                 |
//! | `"gpu"`    | from the GPU attester        | 4   | GPU evidence (optional)          |
//! | `"ledger"` | [`LEDGER_BUNDLE_MEDIA_TYPE`] | 1   | stapled ledger bundle            |
//! | `"validity"` | [`VALIDITY_MEDIA_TYPE`]    | 4   | notBefore, notAfter the evidence binds (16 bytes) |
//!
//! The validity record repeats, in the clear, the certificate validity the
//! CPU evidence binds through REPORT_DATA ([`crate::report_data()`]), so a
//! verifier can check the binding with it and then tell a certificate whose
//! X.509 validity differs from the attested one apart from a foreign key
//! ([`RatlsError::ValidityMismatch`]).
//!
//! The ledger bundle is tagged "reference values": it is the logged statement
//! of what the node should measure as. See docs/ratls.md and ADR 0601.

use crate::cbor::{self, Item};
use crate::error::RatlsError;
use crate::report_data::BoundValidity;

/// `id-pe-cmw` as assigned by IANA in "SMI Security for PKIX Certificate Extension".
pub const ID_PE_CMW: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 1, 35];

/// The collection type (`__cmwc_t`) naming Confide's RA-TLS collection layout.
/// Version 2 added the `"validity"` record.
pub const COLLECTION_TYPE: &str = "tag:confide.invalid,2026:ratls-collection/2";

/// Media type of the stapled ledger bundle record.
pub const LEDGER_BUNDLE_MEDIA_TYPE: &str = "application/vnd.confide.ledger-bundle";

/// Media type of the bound-validity record.
pub const VALIDITY_MEDIA_TYPE: &str = "application/vnd.confide.certificate-validity";

/// Upper bound on the extension value; evidence plus certificate chains plus an
/// inclusion proof fit comfortably, and a hostile peer cannot make us parse more.
pub const MAX_CMW_LEN: usize = 256 * 1024;

/// CMW indicator bits (draft-ietf-rats-msg-wrap section 3.1 / IANA "CMW Indicators").
const IND_REFERENCE_VALUES: u64 = 1;
const IND_EVIDENCE: u64 = 4;

const LABEL_TYPE: &str = "__cmwc_t";
const LABEL_CPU: &str = "cpu";
const LABEL_GPU: &str = "gpu";
const LABEL_LEDGER: &str = "ledger";
const LABEL_VALIDITY: &str = "validity";

/// One wrapped conceptual message: its media type and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapped {
    /// The media type naming the format of `value`.
    pub media_type: String,
    /// The message bytes, opaque to this crate.
    pub value: Vec<u8>,
}

/// The collection a node certificate carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCollection {
    /// CPU TEE evidence whose REPORT_DATA binds the certificate key.
    pub cpu: Wrapped,
    /// GPU evidence, bound into the CPU evidence's REPORT_DATA.
    pub gpu: Option<Wrapped>,
    /// The stapled ledger bundle (entry + inclusion proof + cosigned checkpoint).
    pub ledger_bundle: Vec<u8>,
    /// The certificate validity the CPU evidence binds.
    pub validity: BoundValidity,
}

fn record<'a>(media_type: &'a str, value: &'a [u8], ind: u64) -> Item<'a> {
    Item::Array(vec![
        Item::Text(media_type),
        Item::Bytes(value),
        Item::Uint(ind),
    ])
}

impl NodeCollection {
    /// The deterministic CBOR encoding of the collection.
    pub fn to_cbor(&self) -> Vec<u8> {
        let validity = self.validity.encode();
        let mut entries = vec![
            (Item::Text(LABEL_TYPE), Item::Text(COLLECTION_TYPE)),
            (
                Item::Text(LABEL_CPU),
                record(&self.cpu.media_type, &self.cpu.value, IND_EVIDENCE),
            ),
            (
                Item::Text(LABEL_LEDGER),
                record(
                    LEDGER_BUNDLE_MEDIA_TYPE,
                    &self.ledger_bundle,
                    IND_REFERENCE_VALUES,
                ),
            ),
            (
                Item::Text(LABEL_VALIDITY),
                record(VALIDITY_MEDIA_TYPE, &validity, IND_EVIDENCE),
            ),
        ];
        if let Some(gpu) = &self.gpu {
            entries.push((
                Item::Text(LABEL_GPU),
                record(&gpu.media_type, &gpu.value, IND_EVIDENCE),
            ));
        }
        let mut out = Vec::new();
        cbor::encode(&Item::Map(entries), &mut out);
        out
    }

    /// Parses the CBOR collection, refusing unknown labels, missing records,
    /// wrong indicators and a wrong or missing collection type.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, RatlsError> {
        let bad = RatlsError::MalformedCmw;
        let Item::Map(entries) = cbor::decode(bytes).map_err(|e| bad(e.describe()))? else {
            return Err(bad("collection is not a CBOR map"));
        };
        let mut ctype = None;
        let mut cpu = None;
        let mut gpu = None;
        let mut ledger = None;
        let mut validity = None;
        for (k, v) in entries {
            // The decoder already refused duplicate keys.
            match k {
                Item::Text(LABEL_TYPE) => ctype = Some(v),
                Item::Text(LABEL_CPU) => cpu = Some(parse_record(v, IND_EVIDENCE)?),
                Item::Text(LABEL_GPU) => gpu = Some(parse_record(v, IND_EVIDENCE)?),
                Item::Text(LABEL_LEDGER) => ledger = Some(parse_record(v, IND_REFERENCE_VALUES)?),
                Item::Text(LABEL_VALIDITY) => validity = Some(parse_record(v, IND_EVIDENCE)?),
                _ => return Err(bad("unknown collection label")),
            }
        }
        match ctype {
            Some(Item::Text(COLLECTION_TYPE)) => {}
            Some(_) => return Err(bad("unexpected collection type")),
            None => return Err(bad("collection type missing")),
        }
        let cpu = cpu.ok_or(bad("cpu evidence record missing"))?;
        let ledger = ledger.ok_or(bad("ledger bundle record missing"))?;
        if ledger.media_type != LEDGER_BUNDLE_MEDIA_TYPE {
            return Err(bad("ledger bundle record has the wrong media type"));
        }
        let validity = validity.ok_or(bad("validity record missing"))?;
        if validity.media_type != VALIDITY_MEDIA_TYPE {
            return Err(bad("validity record has the wrong media type"));
        }
        let validity =
            BoundValidity::decode(&validity.value).ok_or(bad("validity record is not 16 bytes"))?;
        Ok(Self {
            cpu,
            gpu,
            ledger_bundle: ledger.value,
            validity,
        })
    }

    /// The `extnValue` of the id-pe-cmw extension: DER `OCTET STRING` (the
    /// `cbor` alternative of the CMW CHOICE) holding the CBOR collection.
    pub fn to_extension_value(&self) -> Vec<u8> {
        der_octet_string(&self.to_cbor())
    }

    /// Parses an id-pe-cmw `extnValue`. The `json` alternative (UTF8String) is
    /// refused: Confide nodes always emit CBOR.
    pub fn from_extension_value(ext: &[u8]) -> Result<Self, RatlsError> {
        if ext.len() > MAX_CMW_LEN {
            return Err(RatlsError::CmwTooLarge { limit: MAX_CMW_LEN });
        }
        let inner = parse_der_octet_string(ext)?;
        Self::from_cbor(inner)
    }
}

fn parse_record(item: Item<'_>, want_ind: u64) -> Result<Wrapped, RatlsError> {
    let bad = RatlsError::MalformedCmw;
    let Item::Array(parts) = item else {
        return Err(bad("record is not a CBOR array"));
    };
    match parts.as_slice() {
        [Item::Text(t), Item::Bytes(v), Item::Uint(ind)] => {
            if *ind != want_ind {
                return Err(bad("record indicator does not match its label"));
            }
            if t.is_empty() || !t.is_ascii() {
                return Err(bad("record media type is not a non-empty ASCII string"));
            }
            Ok(Wrapped {
                media_type: (*t).to_owned(),
                value: v.to_vec(),
            })
        }
        _ => Err(bad("record is not [media-type, bytes, indicator]")),
    }
}

/// DER OCTET STRING (X.690 section 8.7, definite length in the shortest form).
fn der_octet_string(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x04];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn parse_der_octet_string(input: &[u8]) -> Result<&[u8], RatlsError> {
    let bad = RatlsError::MalformedCmw;
    let (&tag, rest) = input.split_first().ok_or(bad("empty extension value"))?;
    if tag != 0x04 {
        return Err(bad("CMW extension is not the CBOR (OCTET STRING) choice"));
    }
    let (&first, rest) = rest.split_first().ok_or(bad("extension length missing"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return Err(bad("extension length form unsupported"));
        }
        let (len_bytes, rest) = rest
            .split_at_checked(count)
            .ok_or(bad("extension length truncated"))?;
        if len_bytes[0] == 0 {
            return Err(bad("extension length not minimal"));
        }
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if len < 0x80 {
            return Err(bad("extension length not minimal"));
        }
        (len, rest)
    };
    if rest.len() != len {
        return Err(bad("extension length does not match its content"));
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(gpu: bool) -> NodeCollection {
        NodeCollection {
            cpu: Wrapped {
                media_type: "application/vnd.example.evidence".into(),
                value: vec![7; 1200],
            },
            gpu: gpu.then(|| Wrapped {
                media_type: "application/vnd.example.gpu".into(),
                value: vec![8; 10],
            }),
            ledger_bundle: vec![9; 300],
            validity: BoundValidity {
                not_before: 1_000,
                not_after: 1_600,
            },
        }
    }

    #[test]
    fn round_trips_with_and_without_gpu() {
        for g in [false, true] {
            let c = sample(g);
            let ext = c.to_extension_value();
            assert_eq!(NodeCollection::from_extension_value(&ext).unwrap(), c);
        }
    }

    #[test]
    fn encoding_is_canonical_and_labelled() {
        let cbor = sample(false).to_cbor();
        // map(4), then keys sorted by encoding: "cpu" (63..), "ledger" (66..),
        // "__cmwc_t" (68 5f..), "validity" (68 76..).
        assert_eq!(cbor[0], 0xa4);
        assert_eq!(&cbor[1..5], b"\x63cpu");
        let item = crate::cbor::decode(&cbor).unwrap();
        let Item::Map(entries) = item else { panic!() };
        let keys: Vec<_> = entries.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys,
            vec![
                Item::Text("cpu"),
                Item::Text("ledger"),
                Item::Text("__cmwc_t"),
                Item::Text("validity")
            ]
        );
    }

    #[test]
    fn refuses_tampered_collections() {
        let good = sample(true);
        // Unknown label.
        let mut out = Vec::new();
        crate::cbor::encode(
            &Item::Map(vec![
                (Item::Text(LABEL_TYPE), Item::Text(COLLECTION_TYPE)),
                (Item::Text("cpu"), record("a/b", b"x", IND_EVIDENCE)),
                (
                    Item::Text("ledger"),
                    record(LEDGER_BUNDLE_MEDIA_TYPE, b"y", 1),
                ),
                (Item::Text("extra"), record("a/b", b"z", IND_EVIDENCE)),
            ]),
            &mut out,
        );
        assert!(matches!(
            NodeCollection::from_cbor(&out),
            Err(RatlsError::MalformedCmw("unknown collection label"))
        ));
        // Wrong indicator on the evidence record.
        let mut out = Vec::new();
        crate::cbor::encode(
            &Item::Map(vec![
                (Item::Text(LABEL_TYPE), Item::Text(COLLECTION_TYPE)),
                (Item::Text("cpu"), record("a/b", b"x", 8)),
                (
                    Item::Text("ledger"),
                    record(LEDGER_BUNDLE_MEDIA_TYPE, b"y", 1),
                ),
            ]),
            &mut out,
        );
        assert!(NodeCollection::from_cbor(&out).is_err());
        // Missing ledger record.
        let mut out = Vec::new();
        crate::cbor::encode(
            &Item::Map(vec![
                (Item::Text(LABEL_TYPE), Item::Text(COLLECTION_TYPE)),
                (Item::Text("cpu"), record("a/b", b"x", IND_EVIDENCE)),
            ]),
            &mut out,
        );
        assert!(matches!(
            NodeCollection::from_cbor(&out),
            Err(RatlsError::MalformedCmw("ledger bundle record missing"))
        ));
        // Missing or malformed validity record.
        let validity_map = |v: Option<Item<'static>>| {
            let mut entries = vec![
                (Item::Text(LABEL_TYPE), Item::Text(COLLECTION_TYPE)),
                (Item::Text("cpu"), record("a/b", b"x", IND_EVIDENCE)),
                (
                    Item::Text("ledger"),
                    record(LEDGER_BUNDLE_MEDIA_TYPE, b"y", 1),
                ),
            ];
            if let Some(v) = v {
                entries.push((Item::Text(LABEL_VALIDITY), v));
            }
            let mut out = Vec::new();
            crate::cbor::encode(&Item::Map(entries), &mut out);
            NodeCollection::from_cbor(&out)
        };
        assert!(matches!(
            validity_map(None),
            Err(RatlsError::MalformedCmw("validity record missing"))
        ));
        assert!(matches!(
            validity_map(Some(record(VALIDITY_MEDIA_TYPE, &[0; 15], IND_EVIDENCE))),
            Err(RatlsError::MalformedCmw("validity record is not 16 bytes"))
        ));
        assert!(matches!(
            validity_map(Some(record("a/b", &[0; 16], IND_EVIDENCE))),
            Err(RatlsError::MalformedCmw(
                "validity record has the wrong media type"
            ))
        ));
        assert!(validity_map(Some(record(VALIDITY_MEDIA_TYPE, &[0; 16], IND_EVIDENCE))).is_ok());
        // JSON choice (UTF8String) refused.
        assert!(NodeCollection::from_extension_value(b"\x0c\x02[]").is_err());
        // Truncation at every boundary of the extension value.
        let ext = good.to_extension_value();
        for cut in 0..ext.len() {
            assert!(NodeCollection::from_extension_value(&ext[..cut]).is_err());
        }
    }

    #[test]
    fn der_octet_string_lengths() {
        for n in [0usize, 1, 127, 128, 255, 256, 65_535, 65_536] {
            let content = vec![0xaa; n];
            let enc = der_octet_string(&content);
            assert_eq!(parse_der_octet_string(&enc).unwrap(), &content[..]);
        }
        assert_eq!(der_octet_string(&[0; 128])[..3], [0x04, 0x81, 0x80]);
        // Non-minimal long form for a short length is refused.
        assert!(parse_der_octet_string(&[0x04, 0x81, 0x01, 0x00]).is_err());
    }
}
