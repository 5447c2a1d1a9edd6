//! Privacy Pass (RFC 9576 architecture, RFC 9577 HTTP authentication scheme, RFC 9578
//! issuance protocols) for Confide.
//!
//! Two token types are implemented:
//!
//! - `0x0001`, VOPRF(P-384, SHA-384) (RFC 9578 §5, built on RFC 9497): privately
//!   verifiable. The issuer and the gateway share the secret key, as Meta's Anonymous
//!   Credential Service does.
//! - `0x0002`, blind RSA 2048 with RSABSSA-SHA384-PSS-Deterministic (RFC 9578 §6, built
//!   on RFC 9474): publicly verifiable with the issuer's public key.
//!
//! The crate does no I/O: randomness, the current time and key material are passed in.
//! The double-spend store is a trait ([`SpentStore`]); its persistent backends (embedded
//! and Redis) live in `confide-token-store`, because they do I/O.
//!
//! Layout:
//! - [`wire`]: the RFC 9577/9578 byte formats (challenge, token, request, response) and the
//!   `PrivateToken` HTTP authentication scheme.
//! - [`voprf_token`] and [`rsa_token`]: both sides of each issuance protocol.
//! - [`keys`]: the issuer key set (with validity windows for rotation), the RFC 9578 §4
//!   issuer directory and the key set the gateway redeems against.
//! - [`redeem`]: the gateway's redemption path and the double-spend store trait.
//! - [`client`]: the client half that the SDK drives (no I/O here either).

pub mod client;
pub mod keys;
pub mod redeem;
pub mod rsa_token;
pub mod voprf_token;
pub mod wire;

mod rng;

pub use client::{IssuerPublicKey, PendingToken};
pub use keys::{IssuerDirectory, IssuerKeySet, KeyValidity, RedemptionKeys};
pub use redeem::{
    MemorySpentStore, Redeemed, Redeemer, SpendOutcome, SpentId, SpentStore, StoreFailure,
    VerifiedToken,
};
pub use wire::{Token, TokenChallenge, TokenRequest, TokenResponse, TokenType};

/// Size in bytes of a token nonce (RFC 9577 §2.2).
pub const NONCE_LEN: usize = 32;
/// Size in bytes of a token key id, SHA-256 of the encoded public key (RFC 9578 §5, §6).
pub const KEY_ID_LEN: usize = 32;
/// Size in bytes of a challenge digest, SHA-256 of the encoded `TokenChallenge`.
pub const DIGEST_LEN: usize = 32;

/// Every way a Privacy Pass operation in this crate can fail.
///
/// Messages name what was wrong, never the bytes involved: a token, a blinded element or
/// an account credential must not end up in a log line through an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token type is not one this party accepts (RFC 9577 §2.2).
    #[error("unsupported token type 0x{0:04x}")]
    WrongTokenType(u16),
    /// No key with this token key id is known to the verifier.
    #[error("unknown token key id")]
    UnknownKeyId,
    /// The key exists but its validity window has ended (rotation retired it).
    #[error("token key expired")]
    KeyExpired,
    /// The key exists but is not valid yet.
    #[error("token key not yet valid")]
    KeyNotYetValid,
    /// The authenticator does not verify under the key (RFC 9578 §5.4, §6.4).
    #[error("token authenticator does not verify")]
    BadAuthenticator,
    /// The token was issued for a different challenge than the one this gateway accepts.
    #[error("token challenge digest does not match the accepted challenge")]
    WrongChallenge,
    /// The token is shorter than its type requires.
    #[error("token truncated: {got} bytes, expected {expected}")]
    TruncatedToken {
        /// Bytes received.
        got: usize,
        /// Bytes the token type requires.
        expected: usize,
    },
    /// The token is longer than its type requires.
    #[error("token oversized: {got} bytes, expected {expected}")]
    OversizedToken {
        /// Bytes received.
        got: usize,
        /// Bytes the token type requires.
        expected: usize,
    },
    /// This token (its nonce under its key) has already been redeemed.
    #[error("token already redeemed")]
    Replayed,
    /// The `Authorization` header is not a well-formed `PrivateToken` credential.
    #[error("malformed PrivateToken authorization: {0}")]
    MalformedAuthorization(&'static str),
    /// A `TokenChallenge` could not be decoded or encoded (RFC 9577 §2.1).
    #[error("malformed token challenge: {0}")]
    MalformedChallenge(&'static str),
    /// A `TokenRequest` could not be decoded or is not for a key this issuer holds.
    #[error("malformed token request: {0}")]
    MalformedTokenRequest(&'static str),
    /// A `TokenResponse` could not be decoded or did not verify (client side).
    #[error("malformed token response: {0}")]
    MalformedTokenResponse(&'static str),
    /// A key could not be decoded or generated.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// The issuer directory is malformed or does not match the pinned configuration.
    #[error("issuer directory rejected: {0}")]
    Directory(&'static str),
    /// A key file (issuer key set, redemption keys) is malformed.
    #[error("key file rejected: {0}")]
    KeyFile(&'static str),
    /// A cryptographic operation failed for a reason other than bad input.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// The double-spend store could not answer; the token is refused (fail closed).
    #[error("double-spend store unavailable: {0}")]
    Store(StoreFailure),
}

impl Error {
    /// A short, stable name for the error kind, for metrics and logs (never content).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::WrongTokenType(_) => "wrong_token_type",
            Error::UnknownKeyId => "unknown_key_id",
            Error::KeyExpired => "key_expired",
            Error::KeyNotYetValid => "key_not_yet_valid",
            Error::BadAuthenticator => "bad_authenticator",
            Error::WrongChallenge => "wrong_challenge",
            Error::TruncatedToken { .. } => "truncated_token",
            Error::OversizedToken { .. } => "oversized_token",
            Error::Replayed => "replayed",
            Error::MalformedAuthorization(_) => "malformed_authorization",
            Error::MalformedChallenge(_) => "malformed_challenge",
            Error::MalformedTokenRequest(_) => "malformed_token_request",
            Error::MalformedTokenResponse(_) => "malformed_token_response",
            Error::InvalidKey(_) => "invalid_key",
            Error::Directory(_) => "directory",
            Error::KeyFile(_) => "key_file",
            Error::Crypto(_) => "crypto",
            Error::Store(_) => "store",
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
