//! Processing receipts: what a node signs with its attested certificate key at the end of
//! each answer, so a person (or an auditor they hand it to) can check later, offline,
//! which attested release processed a request.
//!
//! A receipt names the release (ledger index, platform, measurement, model and
//! configuration digests), the certificate whose key signed it, the time, and SHA-256
//! digests of the request and of the answer. The digests reveal nothing about the
//! content without the content; with it, they prove that this request got this answer.
//!
//! The signed body is canonical text, one field per line in a fixed order, lowercase hex,
//! so the node and the device produce and check the same bytes with no encoding
//! ambiguity ([`ReceiptBody::encode`], strict [`ReceiptBody::parse`]):
//!
//! ```text
//! confide-receipt/v1
//! request <hex SHA-256 of the request frame's payload>
//! response <hex SHA-256 over the answer's stream chunks, see ResponseDigest>
//! ledger-index <decimal>
//! platform <name>
//! measurement <hex>
//! model <hex, or ->
//! config <hex, or ->
//! certificate <hex SHA-256 of the signing certificate's DER>
//! time <Unix seconds>
//! ```
//!
//! No I/O and no signing here: the node signs with
//! [`confide_ratls::CredentialSnapshot::sign`], the device verifies with
//! [`confide_ratls::verify_certificate_signature`] (in a session) or
//! [`confide_ratls::NodeVerifier::verify_signed`] (offline).

use sha2::{Digest, Sha256};

/// First line of every receipt body; a new layout gets a new version line.
pub const RECEIPT_VERSION_LINE: &str = "confide-receipt/v1";

/// Why a receipt body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The body is not a `confide-receipt/v1` body.
    #[error("not a confide-receipt/v1 body")]
    UnknownVersion,
    /// A line is missing, out of order, or not the field expected there.
    #[error("receipt line {line} should be the `{field}` field")]
    Field {
        /// 1-based line number.
        line: usize,
        /// The field expected.
        field: &'static str,
    },
    /// A field's value is malformed (not lowercase hex of the right length, not a number).
    #[error("receipt field `{0}` is malformed")]
    Value(&'static str),
    /// Bytes after the last field.
    #[error("receipt has content after its last field")]
    Trailing,
}

/// The signed content of a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptBody {
    /// SHA-256 of the request frame's payload.
    pub request_sha256: [u8; 32],
    /// [`ResponseDigest`] of the answer.
    pub response_sha256: [u8; 32],
    /// Ledger leaf index of the release.
    pub ledger_index: u64,
    /// Platform name, as in the ledger entry.
    pub platform: String,
    /// The attested measurement.
    pub measurement: Vec<u8>,
    /// The attested model digest, if the release lists one.
    pub model_digest: Option<Vec<u8>>,
    /// The attested configuration digest, if the release lists one.
    pub config_digest: Option<Vec<u8>>,
    /// SHA-256 of the signing certificate's DER.
    pub certificate_sha256: [u8; 32],
    /// When the answer ended (Unix seconds).
    pub time: u64,
}

/// SHA-256 of a request frame's payload, as a receipt names it.
pub fn request_digest(payload: &[u8]) -> [u8; 32] {
    Sha256::digest(payload).into()
}

/// The digest of an answer: SHA-256 over each stream chunk's payload, each preceded by
/// its length as a big-endian `u32`, so that where the chunks split is part of what is
/// signed (the same text cut differently gives another digest).
#[derive(Debug, Clone, Default)]
pub struct ResponseDigest(Sha256);

impl ResponseDigest {
    /// An empty answer's digest, to be extended chunk by chunk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one chunk payload.
    pub fn update(&mut self, chunk: &[u8]) {
        // Frame payloads are bounded far below 4 GiB (`SessionLimits`); a longer one
        // saturates rather than wrapping, which still changes the digest.
        let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        self.0.update(len.to_be_bytes());
        self.0.update(chunk);
    }

    /// The digest.
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

fn opt_hex(v: &Option<Vec<u8>>) -> String {
    v.as_ref().map_or_else(|| "-".to_owned(), hex::encode)
}

fn parse_hex(field: &'static str, s: &str) -> Result<Vec<u8>, ReceiptError> {
    // Canonical: lowercase only, so one receipt has one encoding.
    if s.is_empty() || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReceiptError::Value(field));
    }
    hex::decode(s).map_err(|_| ReceiptError::Value(field))
}

fn parse_32(field: &'static str, s: &str) -> Result<[u8; 32], ReceiptError> {
    parse_hex(field, s)?
        .try_into()
        .map_err(|_| ReceiptError::Value(field))
}

fn parse_u64(field: &'static str, s: &str) -> Result<u64, ReceiptError> {
    // Canonical decimal: no sign, no leading zeros (except "0").
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(ReceiptError::Value(field));
    }
    s.parse().map_err(|_| ReceiptError::Value(field))
}

impl ReceiptBody {
    /// The canonical body (the bytes that are signed).
    pub fn encode(&self) -> String {
        format!(
            "{RECEIPT_VERSION_LINE}\nrequest {}\nresponse {}\nledger-index {}\nplatform {}\n\
             measurement {}\nmodel {}\nconfig {}\ncertificate {}\ntime {}\n",
            hex::encode(self.request_sha256),
            hex::encode(self.response_sha256),
            self.ledger_index,
            self.platform,
            hex::encode(&self.measurement),
            opt_hex(&self.model_digest),
            opt_hex(&self.config_digest),
            hex::encode(self.certificate_sha256),
            self.time,
        )
    }

    /// Parse a canonical body; anything else (another order, extra spaces or lines,
    /// uppercase hex, a missing final newline) is refused, so `parse(b).encode() == b`.
    pub fn parse(text: &str) -> Result<ReceiptBody, ReceiptError> {
        let body = text.strip_suffix('\n').ok_or(ReceiptError::Trailing)?;
        let mut lines = body.split('\n');
        if lines.next() != Some(RECEIPT_VERSION_LINE) {
            return Err(ReceiptError::UnknownVersion);
        }
        let mut n = 1;
        let mut field = |name: &'static str| -> Result<&str, ReceiptError> {
            n += 1;
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .ok_or(ReceiptError::Field {
                    line: n,
                    field: name,
                })
        };
        let request_sha256 = parse_32("request", field("request")?)?;
        let response_sha256 = parse_32("response", field("response")?)?;
        let ledger_index = parse_u64("ledger-index", field("ledger-index")?)?;
        let platform = field("platform")?;
        if platform.is_empty()
            || !platform
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ReceiptError::Value("platform"));
        }
        let platform = platform.to_owned();
        let measurement = parse_hex("measurement", field("measurement")?)?;
        let opt = |name: &'static str, v: &str| -> Result<Option<Vec<u8>>, ReceiptError> {
            if v == "-" {
                Ok(None)
            } else {
                parse_hex(name, v).map(Some)
            }
        };
        let model_digest = opt("model", field("model")?)?;
        let config_digest = opt("config", field("config")?)?;
        let certificate_sha256 = parse_32("certificate", field("certificate")?)?;
        let time = parse_u64("time", field("time")?)?;
        if lines.next().is_some() {
            return Err(ReceiptError::Trailing);
        }
        Ok(ReceiptBody {
            request_sha256,
            response_sha256,
            ledger_index,
            platform,
            measurement,
            model_digest,
            config_digest,
            certificate_sha256,
            time,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn body() -> ReceiptBody {
        ReceiptBody {
            request_sha256: [1; 32],
            response_sha256: [2; 32],
            ledger_index: 7,
            platform: "simulated".into(),
            measurement: vec![3; 48],
            model_digest: Some(vec![4; 32]),
            config_digest: None,
            certificate_sha256: [5; 32],
            time: 1_796_000_000,
        }
    }

    #[test]
    fn canonical_round_trip() {
        let b = body();
        let text = b.encode();
        assert_eq!(ReceiptBody::parse(&text).unwrap(), b);
        assert!(text.contains("\nconfig -\n"));
    }

    #[test]
    fn every_one_byte_change_is_refused_or_changes_the_body() {
        let text = body().encode();
        let b = text.as_bytes();
        for i in 0..b.len() {
            for flip in [1u8, 0x20, 0x80] {
                let mut m = b.to_vec();
                m[i] ^= flip;
                let Ok(s) = std::str::from_utf8(&m) else {
                    continue;
                };
                if let Ok(parsed) = ReceiptBody::parse(s) {
                    assert_ne!(
                        parsed,
                        body(),
                        "byte {i} ^ {flip:#x} parsed to the same body"
                    );
                    assert_eq!(parsed.encode(), s, "non-canonical form accepted");
                }
            }
        }
    }

    #[test]
    fn non_canonical_forms_are_refused() {
        let text = body().encode();
        for (bad, want) in [
            (
                text.replace("confide-receipt/v1", "confide-receipt/v2"),
                ReceiptError::UnknownVersion,
            ),
            (text.trim_end().to_owned(), ReceiptError::Trailing),
            (format!("{text}extra 1\n"), ReceiptError::Trailing),
            (
                text.replace("ledger-index 7", "ledger-index 07"),
                ReceiptError::Value("ledger-index"),
            ),
            (
                text.replace(&"05".repeat(32), &"0A".repeat(32)),
                ReceiptError::Value("certificate"),
            ),
            (
                text.replace("platform simulated", "platform  simulated"),
                ReceiptError::Value("platform"),
            ),
            (
                text.replace("\nmodel ", "\nmodels "),
                ReceiptError::Field {
                    line: 7,
                    field: "model",
                },
            ),
        ] {
            assert_eq!(ReceiptBody::parse(&bad), Err(want), "{bad}");
        }
    }

    #[test]
    fn chunk_boundaries_are_part_of_the_response_digest() {
        let mut a = ResponseDigest::new();
        a.update(b"ab");
        a.update(b"c");
        let mut b = ResponseDigest::new();
        b.update(b"a");
        b.update(b"bc");
        assert_ne!(a.finish(), b.finish());
    }
}
