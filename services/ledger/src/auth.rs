//! Signed `POST /add` requests.
//!
//! Only holders of an operator key may append. The request carries
//!
//! ```text
//! Confide-Auth: <unix seconds> <key name> <base64(key ID || Ed25519 signature)>
//! ```
//!
//! where the signature is a C2SP signed-note Ed25519 signature (type 0x01) by the
//! operator key over the message
//!
//! ```text
//! confide-ledger-add/v1\n<origin>\n<unix seconds>\n<hex SHA-256 of the body>\n
//! ```
//!
//! Binding the origin stops a signed request being replayed to another ledger; the
//! timestamp (accepted within ±[`MAX_SKEW_SECS`]) bounds replay in time, and adds are
//! idempotent (a replayed entry gets its existing index), so a replay cannot grow
//! the log.

use confide_note::{Note, NoteSignature, SignerKey, VerifierKey};
use sha2::{Digest, Sha256};

/// The request header name.
pub const HEADER: &str = "confide-auth";
/// Largest accepted clock difference between operator and ledger.
pub const MAX_SKEW_SECS: u64 = 300;

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No or malformed header.
    #[error("missing or malformed Confide-Auth header")]
    Malformed,
    /// Timestamp outside the window.
    #[error("request timestamp outside the accepted window")]
    Stale,
    /// No operator key with that name and ID.
    #[error("unknown operator key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad operator signature")]
    BadSignature,
}

fn message(origin: &str, timestamp: u64, body: &[u8]) -> String {
    format!(
        "confide-ledger-add/v1\n{origin}\n{timestamp}\n{}\n",
        hex::encode(Sha256::digest(body))
    )
}

/// The header value for `body`, signed by `key` at `timestamp`.
pub fn sign(
    key: &SignerKey,
    origin: &str,
    timestamp: u64,
    body: &[u8],
) -> Result<String, confide_note::Error> {
    let sig = key.sign_note(&message(origin, timestamp, body))?;
    let line = sig.to_line();
    // "— <name> <b64>\n" -> "<name> <b64>"
    let rest = line
        .trim_end()
        .strip_prefix("\u{2014} ")
        .unwrap_or_default()
        .to_owned();
    Ok(format!("{timestamp} {rest}"))
}

/// Check a header value against the operator keys, at time `now`.
pub fn verify(
    header: &str,
    operators: &[VerifierKey],
    origin: &str,
    now: u64,
    body: &[u8],
) -> Result<(), AuthError> {
    let mut parts = header.trim().splitn(2, ' ');
    let ts: u64 = parts
        .next()
        .and_then(|t| t.parse().ok())
        .ok_or(AuthError::Malformed)?;
    let rest = parts.next().ok_or(AuthError::Malformed)?;
    if ts.abs_diff(now) > MAX_SKEW_SECS {
        return Err(AuthError::Stale);
    }
    let sig =
        NoteSignature::parse_line(&format!("\u{2014} {rest}")).map_err(|_| AuthError::Malformed)?;
    let mut note = Note::new(&message(origin, ts, body)).map_err(|_| AuthError::Malformed)?;
    note.add_signature(sig).map_err(|_| AuthError::Malformed)?;
    for k in operators {
        match k.verify(&note) {
            Ok(_) => return Ok(()),
            Err(confide_note::Error::UnknownKey(_)) => continue,
            Err(_) => return Err(AuthError::BadSignature),
        }
    }
    Err(AuthError::UnknownKey)
}

#[cfg(test)]
mod tests {
    use super::*;
    use confide_note::KeyType;

    #[test]
    fn sign_verify_and_rejections() {
        let k = SignerKey::from_seed("operator", KeyType::Ed25519, &[4; 32]).unwrap();
        let other = SignerKey::from_seed("operator", KeyType::Ed25519, &[5; 32]).unwrap();
        let ops = [k.verifier()];
        let h = sign(&k, "log.test", 1000, b"entry").unwrap();
        assert!(h.starts_with("1000 operator "));
        verify(&h, &ops, "log.test", 1100, b"entry").unwrap();
        assert_eq!(
            verify(&h, &ops, "log.test", 1100, b"other"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(&h, &ops, "log2.test", 1100, b"entry"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(&h, &ops, "log.test", 2000, b"entry"),
            Err(AuthError::Stale)
        );
        let h2 = sign(&other, "log.test", 1000, b"entry").unwrap();
        assert_eq!(
            verify(&h2, &ops, "log.test", 1000, b"entry"),
            Err(AuthError::UnknownKey)
        );
        assert_eq!(
            verify("garbage", &ops, "log.test", 1000, b"entry"),
            Err(AuthError::Malformed)
        );
    }
}
