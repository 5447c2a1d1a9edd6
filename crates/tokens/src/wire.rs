//! Privacy Pass wire formats.
//!
//! - `TokenChallenge` and `Token`: RFC 9577 §2.1 and §2.2.
//! - `TokenRequest` / `TokenResponse` for type 0x0001: RFC 9578 §5.1-5.3.
//! - `TokenRequest` / `TokenResponse` for type 0x0002: RFC 9578 §6.1-6.3.
//! - The `PrivateToken` HTTP authentication scheme credential: RFC 9577 §2.2.2.
//!
//! Every decoder checks lengths exactly: a short input and a long input are distinct
//! errors, and no trailing bytes are accepted.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::{DIGEST_LEN, Error, KEY_ID_LEN, NONCE_LEN, Result};

/// Ne for P-384: a compressed SEC1 point (RFC 9497 §4.4).
pub const VOPRF_ELEMENT_LEN: usize = 49;
/// Ns for P-384: a scalar (RFC 9497 §4.4).
pub const VOPRF_SCALAR_LEN: usize = 48;
/// Nk for token type 0x0001: the VOPRF output size, SHA-384 (RFC 9578 §5).
pub const VOPRF_AUTHENTICATOR_LEN: usize = 48;
/// Nk (and Nid) for token type 0x0002: the RSA modulus size in bytes (RFC 9578 §6).
pub const RSA_MODULUS_LEN: usize = 256;

/// Largest encoded `Authorization` value we parse, so a hostile header cannot make us
/// decode megabytes: a type 0x0002 token is 354 bytes, 472 in base64, plus the scheme.
pub const MAX_AUTHORIZATION_LEN: usize = 1024;

/// The Privacy Pass token types this crate speaks (RFC 9578 §8.2 registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenType {
    /// 0x0001: VOPRF(P-384, SHA-384), privately verifiable.
    Voprf,
    /// 0x0002: Blind RSA (2048-bit), publicly verifiable.
    BlindRsa,
}

impl TokenType {
    /// The registered code point.
    pub fn code(self) -> u16 {
        match self {
            TokenType::Voprf => 0x0001,
            TokenType::BlindRsa => 0x0002,
        }
    }

    /// The type for a code point, or [`Error::WrongTokenType`].
    pub fn from_code(code: u16) -> Result<Self> {
        match code {
            0x0001 => Ok(TokenType::Voprf),
            0x0002 => Ok(TokenType::BlindRsa),
            other => Err(Error::WrongTokenType(other)),
        }
    }

    /// Nk: the authenticator length for this type.
    pub fn authenticator_len(self) -> usize {
        match self {
            TokenType::Voprf => VOPRF_AUTHENTICATOR_LEN,
            TokenType::BlindRsa => RSA_MODULUS_LEN,
        }
    }

    /// Total encoded token length for this type.
    pub fn token_len(self) -> usize {
        2 + NONCE_LEN + DIGEST_LEN + KEY_ID_LEN + self.authenticator_len()
    }

    /// Length of the blinded message in a token request of this type.
    fn blinded_len(self) -> usize {
        match self {
            TokenType::Voprf => VOPRF_ELEMENT_LEN,
            TokenType::BlindRsa => RSA_MODULUS_LEN,
        }
    }

    /// Length of a token response of this type.
    pub fn response_len(self) -> usize {
        match self {
            // evaluate_msg[Ne] || evaluate_proof[Ns+Ns]
            TokenType::Voprf => VOPRF_ELEMENT_LEN + 2 * VOPRF_SCALAR_LEN,
            TokenType::BlindRsa => RSA_MODULUS_LEN,
        }
    }
}

/// RFC 9577 §2.1 `TokenChallenge`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenChallenge {
    token_type: u16,
    issuer_name: Vec<u8>,
    redemption_context: Vec<u8>,
    origin_info: Vec<u8>,
}

impl TokenChallenge {
    /// A challenge; `redemption_context` must be empty or 32 bytes (RFC 9577 §2.1).
    pub fn new(
        token_type: TokenType,
        issuer_name: &str,
        redemption_context: &[u8],
        origin_info: &str,
    ) -> Result<Self> {
        if issuer_name.is_empty() || issuer_name.len() > usize::from(u16::MAX) {
            return Err(Error::MalformedChallenge("issuer_name length"));
        }
        if !(redemption_context.is_empty() || redemption_context.len() == 32) {
            return Err(Error::MalformedChallenge(
                "redemption_context must be 0 or 32 bytes",
            ));
        }
        if origin_info.len() > usize::from(u16::MAX) {
            return Err(Error::MalformedChallenge("origin_info length"));
        }
        Ok(Self {
            token_type: token_type.code(),
            issuer_name: issuer_name.as_bytes().to_vec(),
            redemption_context: redemption_context.to_vec(),
            origin_info: origin_info.as_bytes().to_vec(),
        })
    }

    /// Decode the RFC 9577 §2.1 encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader(bytes);
        let token_type = r.u16().ok_or(Error::MalformedChallenge("truncated"))?;
        let n = r.u16().ok_or(Error::MalformedChallenge("truncated"))?;
        let issuer_name = r
            .take(usize::from(n))
            .ok_or(Error::MalformedChallenge("truncated"))?;
        let n = r.u8().ok_or(Error::MalformedChallenge("truncated"))?;
        let redemption_context = r
            .take(usize::from(n))
            .ok_or(Error::MalformedChallenge("truncated"))?;
        let n = r.u16().ok_or(Error::MalformedChallenge("truncated"))?;
        let origin_info = r
            .take(usize::from(n))
            .ok_or(Error::MalformedChallenge("truncated"))?;
        if !r.0.is_empty() {
            return Err(Error::MalformedChallenge("trailing bytes"));
        }
        if !(redemption_context.is_empty() || redemption_context.len() == 32) {
            return Err(Error::MalformedChallenge(
                "redemption_context must be 0 or 32 bytes",
            ));
        }
        Ok(Self {
            token_type,
            issuer_name: issuer_name.to_vec(),
            redemption_context: redemption_context.to_vec(),
            origin_info: origin_info.to_vec(),
        })
    }

    /// The RFC 9577 §2.1 encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            7 + self.issuer_name.len() + self.redemption_context.len() + self.origin_info.len(),
        );
        out.extend_from_slice(&self.token_type.to_be_bytes());
        // Lengths were bounded at construction or decoding.
        out.extend_from_slice(&(self.issuer_name.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.issuer_name);
        out.push(self.redemption_context.len() as u8);
        out.extend_from_slice(&self.redemption_context);
        out.extend_from_slice(&(self.origin_info.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.origin_info);
        out
    }

    /// SHA-256 of the encoding: the `challenge_digest` a token commits to.
    pub fn digest(&self) -> [u8; DIGEST_LEN] {
        Sha256::digest(self.encode()).into()
    }

    /// The token type code the challenge is for.
    pub fn token_type(&self) -> u16 {
        self.token_type
    }
}

/// RFC 9577 §2.2 `Token`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    token_type: TokenType,
    nonce: [u8; NONCE_LEN],
    challenge_digest: [u8; DIGEST_LEN],
    token_key_id: [u8; KEY_ID_LEN],
    authenticator: Vec<u8>,
}

// Tokens are bearer credentials: never print one.
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("token_type", &self.token_type)
            .finish_non_exhaustive()
    }
}

impl Token {
    pub(crate) fn new(
        token_type: TokenType,
        nonce: [u8; NONCE_LEN],
        challenge_digest: [u8; DIGEST_LEN],
        token_key_id: [u8; KEY_ID_LEN],
        authenticator: Vec<u8>,
    ) -> Self {
        Self {
            token_type,
            nonce,
            challenge_digest,
            token_key_id,
            authenticator,
        }
    }

    /// Decode a token, checking its type and exact length.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let code = match bytes {
            [a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => {
                return Err(Error::TruncatedToken {
                    got: bytes.len(),
                    expected: 2,
                });
            }
        };
        let token_type = TokenType::from_code(code)?;
        let expected = token_type.token_len();
        if bytes.len() < expected {
            return Err(Error::TruncatedToken {
                got: bytes.len(),
                expected,
            });
        }
        if bytes.len() > expected {
            return Err(Error::OversizedToken {
                got: bytes.len(),
                expected,
            });
        }
        let mut r = Reader(&bytes[2..]);
        let nonce = r.array::<NONCE_LEN>();
        let challenge_digest = r.array::<DIGEST_LEN>();
        let token_key_id = r.array::<KEY_ID_LEN>();
        match (nonce, challenge_digest, token_key_id) {
            (Some(nonce), Some(challenge_digest), Some(token_key_id)) => Ok(Self {
                token_type,
                nonce,
                challenge_digest,
                token_key_id,
                authenticator: r.0.to_vec(),
            }),
            _ => Err(Error::TruncatedToken {
                got: bytes.len(),
                expected,
            }),
        }
    }

    /// The RFC 9577 §2.2 encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.authenticator_input();
        out.extend_from_slice(&self.authenticator);
        out
    }

    /// `token_authenticator_input`: everything but the authenticator (RFC 9578 §5.3).
    pub fn authenticator_input(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.token_type.token_len());
        out.extend_from_slice(&self.token_type.code().to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.challenge_digest);
        out.extend_from_slice(&self.token_key_id);
        out
    }

    /// The token type.
    pub fn token_type(&self) -> TokenType {
        self.token_type
    }
    /// The client-chosen nonce.
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }
    /// The digest of the challenge the token was issued for.
    pub fn challenge_digest(&self) -> &[u8; DIGEST_LEN] {
        &self.challenge_digest
    }
    /// The id of the issuer key.
    pub fn token_key_id(&self) -> &[u8; KEY_ID_LEN] {
        &self.token_key_id
    }
    /// The authenticator (VOPRF output or RSA signature).
    pub fn authenticator(&self) -> &[u8] {
        &self.authenticator
    }

    /// The `Authorization` header value: `PrivateToken token="<base64url>"`
    /// (RFC 9577 §2.2.2). Padding is kept, which RFC 9577 §2.2.2 allows and a quoted
    /// string carries safely.
    pub fn to_authorization(&self) -> String {
        format!("PrivateToken token=\"{}\"", URL_SAFE.encode(self.encode()))
    }

    /// Parse an `Authorization` header value carrying a `PrivateToken` credential
    /// (RFC 9577 §2.2.2). The scheme is case-insensitive; the `token` parameter may be a
    /// token68-style bare value or a quoted string, base64url with or without padding.
    pub fn from_authorization(value: &str) -> Result<Self> {
        if value.len() > MAX_AUTHORIZATION_LEN {
            return Err(Error::OversizedToken {
                got: value.len(),
                expected: MAX_AUTHORIZATION_LEN,
            });
        }
        let value = value.trim();
        let (scheme, params) = value
            .split_once([' ', '\t'])
            .ok_or(Error::MalformedAuthorization("missing credentials"))?;
        if !scheme.eq_ignore_ascii_case("PrivateToken") {
            return Err(Error::MalformedAuthorization("scheme is not PrivateToken"));
        }
        let mut token_b64: Option<&str> = None;
        for param in params.split(',') {
            let param = param.trim();
            if param.is_empty() {
                continue;
            }
            let (name, val) = param
                .split_once('=')
                .ok_or(Error::MalformedAuthorization("parameter without value"))?;
            if name.trim().eq_ignore_ascii_case("token") {
                if token_b64.is_some() {
                    return Err(Error::MalformedAuthorization("duplicate token parameter"));
                }
                let val = val.trim();
                let val = match val.strip_prefix('"') {
                    Some(rest) => rest
                        .strip_suffix('"')
                        .ok_or(Error::MalformedAuthorization("unterminated quoted string"))?,
                    None => val,
                };
                token_b64 = Some(val);
            }
        }
        let b64 = token_b64.ok_or(Error::MalformedAuthorization("no token parameter"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(b64.trim_end_matches('='))
            .map_err(|_| Error::MalformedAuthorization("token is not base64url"))?;
        Self::decode(&bytes)
    }
}

/// A token request (RFC 9578 §5.1 for 0x0001, §6.1 for 0x0002). Both share one layout:
/// `token_type`, `truncated_token_key_id`, `blinded_msg`.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRequest {
    token_type: TokenType,
    truncated_token_key_id: u8,
    blinded_msg: Vec<u8>,
}

// Blinded elements must not be logged (they link issuance to redemption only with the
// client's secret, but there is no reason to keep them anywhere).
impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("token_type", &self.token_type)
            .finish_non_exhaustive()
    }
}

impl TokenRequest {
    pub(crate) fn new(
        token_type: TokenType,
        truncated_token_key_id: u8,
        blinded_msg: Vec<u8>,
    ) -> Self {
        Self {
            token_type,
            truncated_token_key_id,
            blinded_msg,
        }
    }

    /// Decode a request body of media type `application/private-token-request`.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let code = match bytes {
            [a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => return Err(Error::MalformedTokenRequest("shorter than a token type")),
        };
        let token_type = TokenType::from_code(code)?;
        let expected = 3 + token_type.blinded_len();
        if bytes.len() != expected {
            return Err(Error::MalformedTokenRequest(
                "wrong length for the token type",
            ));
        }
        Ok(Self {
            token_type,
            truncated_token_key_id: bytes[2],
            blinded_msg: bytes[3..].to_vec(),
        })
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + self.blinded_msg.len());
        out.extend_from_slice(&self.token_type.code().to_be_bytes());
        out.push(self.truncated_token_key_id);
        out.extend_from_slice(&self.blinded_msg);
        out
    }

    /// The token type requested.
    pub fn token_type(&self) -> TokenType {
        self.token_type
    }
    /// The last byte of the key id the client used.
    pub fn truncated_token_key_id(&self) -> u8 {
        self.truncated_token_key_id
    }
    pub(crate) fn blinded_msg(&self) -> &[u8] {
        &self.blinded_msg
    }
}

/// A token response body (`application/private-token-response`), RFC 9578 §5.2 / §6.2.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenResponse {
    bytes: Vec<u8>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl TokenResponse {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }
    /// Take a response body for a request of `token_type`, checking its length.
    pub fn decode(token_type: TokenType, bytes: &[u8]) -> Result<Self> {
        if bytes.len() != token_type.response_len() {
            return Err(Error::MalformedTokenResponse(
                "wrong length for the token type",
            ));
        }
        Ok(Self {
            bytes: bytes.to_vec(),
        })
    }
    /// The encoding.
    pub fn encode(&self) -> &[u8] {
        &self.bytes
    }
}

/// A forward-only cursor over bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: TokenType) -> Token {
        Token::new(t, [1; 32], [2; 32], [3; 32], vec![4; t.authenticator_len()])
    }

    #[test]
    fn token_round_trips_through_authorization() {
        for t in [TokenType::Voprf, TokenType::BlindRsa] {
            let tok = sample(t);
            let parsed = Token::from_authorization(&tok.to_authorization()).unwrap();
            assert_eq!(parsed, tok);
            // Unquoted, unpadded, odd case scheme, extra parameter.
            let b64 = URL_SAFE_NO_PAD.encode(tok.encode());
            let v = format!("privatetoken  foo=\"x\", token={b64}");
            assert_eq!(Token::from_authorization(&v).unwrap(), tok);
        }
    }

    #[test]
    fn token_length_errors_are_distinct() {
        let enc = sample(TokenType::Voprf).encode();
        assert_eq!(
            Token::decode(&enc[..enc.len() - 1]).unwrap_err(),
            Error::TruncatedToken {
                got: enc.len() - 1,
                expected: enc.len()
            }
        );
        let mut long = enc.clone();
        long.push(0);
        assert_eq!(
            Token::decode(&long).unwrap_err(),
            Error::OversizedToken {
                got: enc.len() + 1,
                expected: enc.len()
            }
        );
        let mut other = enc;
        other[1] = 7;
        assert_eq!(Token::decode(&other).unwrap_err(), Error::WrongTokenType(7));
        assert!(matches!(
            Token::decode(&[0]).unwrap_err(),
            Error::TruncatedToken { .. }
        ));
    }

    #[test]
    fn authorization_errors() {
        for (v, want) in [
            ("Bearer abc", "scheme is not PrivateToken"),
            ("PrivateToken", "missing credentials"),
            ("PrivateToken foo=bar", "no token parameter"),
            ("PrivateToken token=\"AAAA", "unterminated quoted string"),
            ("PrivateToken token=!!", "token is not base64url"),
            ("PrivateToken token", "parameter without value"),
        ] {
            assert_eq!(
                Token::from_authorization(v).unwrap_err(),
                Error::MalformedAuthorization(want),
                "{v}"
            );
        }
        let huge = format!("PrivateToken token={}", "A".repeat(2000));
        assert!(matches!(
            Token::from_authorization(&huge).unwrap_err(),
            Error::OversizedToken { .. }
        ));
    }

    #[test]
    fn challenge_round_trip_and_checks() {
        let c = TokenChallenge::new(TokenType::BlindRsa, "issuer.example", &[], "origin.example")
            .unwrap();
        assert_eq!(TokenChallenge::decode(&c.encode()).unwrap(), c);
        let mut enc = c.encode();
        enc.push(0);
        assert_eq!(
            TokenChallenge::decode(&enc).unwrap_err(),
            Error::MalformedChallenge("trailing bytes")
        );
        assert!(TokenChallenge::new(TokenType::Voprf, "i", &[0; 5], "").is_err());
    }

    #[test]
    fn token_request_lengths() {
        let req = TokenRequest::new(TokenType::Voprf, 9, vec![2; VOPRF_ELEMENT_LEN]);
        assert_eq!(TokenRequest::decode(&req.encode()).unwrap(), req);
        let enc = req.encode();
        assert!(matches!(
            TokenRequest::decode(&enc[..10]),
            Err(Error::MalformedTokenRequest(_))
        ));
        assert!(matches!(
            TokenRequest::decode(&[0]),
            Err(Error::MalformedTokenRequest(_))
        ));
        assert_eq!(
            TokenRequest::decode(&[0, 3, 0]).unwrap_err(),
            Error::WrongTokenType(3)
        );
    }
}
