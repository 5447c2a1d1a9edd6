//! Oblivious HTTP (RFC 9458), Binary HTTP (RFC 9292) and chunked OHTTP
//! (draft-ietf-ohai-chunked-ohttp) for Confide. No I/O: randomness and keys are passed
//! in, bytes go in and out.
//!
//! - [`hpke`]: RFC 9180 base mode for DHKEM(X25519, HKDF-SHA256) with every standard
//!   KDF and AEAD (why our own glue: `docs/adr/0400-ohttp-hpke-backend.md`).
//! - [`keyconfig`]: key configurations and `application/ohttp-keys` (RFC 9458 §3),
//!   gateway key pairs with raw-key import.
//! - [`ohttp`]: request/response encapsulation (RFC 9458 §4) and the chunked variant.
//! - [`bhttp`]: the Binary HTTP codec, including an incremental response decoder.
//!
//! ```text
//! client                    relay                 gateway
//! ClientRequest::encapsulate ──ohttp-req──►  ──►  Server::decapsulate
//! ClientResponse::decapsulate ◄──ohttp-res── ◄──  ServerResponse::encapsulate
//! ```

pub mod bhttp;
pub mod hpke;
pub mod keyconfig;
pub mod ohttp;
mod varint;

pub use keyconfig::{KeyConfig, KeyPair, SymmetricSuite};
pub use ohttp::{
    CHUNKED_REQUEST_MEDIA_TYPE, CHUNKED_RESPONSE_MEDIA_TYPE, ChunkOpener, ChunkSealer,
    ChunkedClientResponse, ChunkedRequestSealer, ChunkedServerResponse, ClientRequest,
    ClientResponse, KEYS_MEDIA_TYPE, REQUEST_MEDIA_TYPE, RESPONSE_MEDIA_TYPE, Server,
    ServerResponse,
};

/// Everything that can go wrong in this crate. Variants name what was wrong, never the
/// content of a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended inside the named field.
    #[error("truncated message: {0}")]
    Truncated(&'static str),
    /// No key with this identifier (RFC 9458 §5.3, problem type `ohttp-key`).
    #[error("unknown key identifier {0}")]
    UnknownKeyId(u8),
    /// A KEM this crate does not implement, or not the key's KEM.
    #[error("unsupported KEM 0x{0:04x}")]
    UnsupportedKem(u16),
    /// An unknown KDF identifier.
    #[error("unsupported KDF 0x{0:04x}")]
    UnsupportedKdf(u16),
    /// An unknown AEAD identifier.
    #[error("unsupported AEAD 0x{0:04x}")]
    UnsupportedAead(u16),
    /// The key configuration does not offer the requested KDF/AEAD pair.
    #[error("KDF/AEAD pair not offered by the key configuration")]
    SuiteNotOffered,
    /// AEAD authentication failed: tampered, wrong key, or wrong context.
    #[error("decryption failed")]
    Decrypt,
    /// The peer's public key is of small order (RFC 9180 §7.1.4).
    #[error("invalid public key")]
    InvalidPublicKey,
    /// A length above a configured limit.
    #[error("message too large: {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The size seen.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A malformed key configuration or list.
    #[error("malformed key configuration: {0}")]
    KeyConfig(&'static str),
    /// A malformed Binary HTTP message.
    #[error("malformed binary HTTP message: {0}")]
    Bhttp(&'static str),
    /// A malformed chunked OHTTP message.
    #[error("malformed chunked message: {0}")]
    Chunk(&'static str),
    /// More messages than the nonce space allows (RFC 9180 §5.2).
    #[error("HPKE sequence number overflow")]
    SequenceOverflow,
    /// An internal length mismatch in a primitive (never caused by peer input).
    #[error("cryptographic parameter error: {0}")]
    Crypto(&'static str),
}

#[cfg(test)]
mod tests;
