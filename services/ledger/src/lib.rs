//! The transparency ledger service: sequencer, durable storage, tiles, witness collection.
//!
//! - [`store`]: the write-ahead entries file (length + checksum records, `fsync`ed
//!   before any acknowledgement) and crash recovery.
//! - [`auth`]: the signed `POST /add` request format (operator Ed25519 key).
//! - [`server`]: the HTTP service — `POST /add`, `GET /checkpoint`, and the C2SP
//!   `tlog-tiles` static layout — with a sequencer task that batches concurrent adds,
//!   appends them durably, signs a C2SP `tlog-checkpoint`, collects C2SP
//!   `tlog-cosignature` cosignatures from witnesses over the C2SP `tlog-witness`
//!   protocol, persists the cosigned checkpoint atomically, and only then acknowledges.
//! - [`client`]: what clients, nodes and monitors use: fetch the checkpoint and tiles,
//!   build RFC 9162 inclusion and consistency proofs from tiles, build stapleable
//!   [`confide_release::Bundle`]s, submit signed adds.
//! - [`mirror`]: write a checked static copy of the tiles and checkpoint for any static
//!   web server, CDN or object store (`confide ledger export`).
//!
//! See `docs/ledger.md` for the operator's view and the on-disk format.

pub mod auth;
pub mod client;
pub mod mirror;
pub mod server;
pub mod store;

/// Errors of the ledger service and client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing the ledger directory failed.
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    /// The entries file is damaged beyond a torn final record.
    #[error("entries file is corrupt: {0}")]
    Corrupt(String),
    /// The stored checkpoint does not match the stored entries.
    #[error("stored checkpoint does not match the entries file: {0}")]
    CheckpointMismatch(String),
    /// A key file or key string is invalid.
    #[error("key: {0}")]
    Key(#[from] confide_note::Error),
    /// A Merkle computation failed.
    #[error("merkle: {0}")]
    Tlog(#[from] confide_tlog::Error),
    /// A tile was malformed.
    #[error("tiles: {0}")]
    Tiles(#[from] confide_tiles::Error),
    /// An entry or bundle was invalid.
    #[error("release: {0}")]
    Release(#[from] confide_release::Error),
    /// An HTTP request failed.
    #[error("http: {0}")]
    Http(String),
    /// The server answered with an error status.
    #[error("ledger answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Response body (a problem document, never request content).
        body: String,
    },
    /// The ledger's response was not what the protocol says.
    #[error("unexpected response: {0}")]
    Protocol(&'static str),
    /// The sequencer stopped (storage failure) and the ledger no longer accepts adds.
    #[error("the ledger stopped accepting entries after a storage failure")]
    Stopped,
    /// Mirroring: the ledger serves a smaller tree than the mirror already holds.
    #[error(
        "the ledger's checkpoint (size {ledger}) is older than the mirrored one (size {mirrored})"
    )]
    MirrorRollback {
        /// Size the mirror holds.
        mirrored: u64,
        /// Size the ledger serves now.
        ledger: u64,
    },
    /// Mirroring: the ledger's tree does not extend what the mirror published.
    #[error("the ledger does not extend the mirrored log: {0}")]
    MirrorFork(String),
    /// Mirroring: tiles and checkpoint disagree.
    #[error("the ledger's tiles do not match its checkpoint: {0}")]
    TileMismatch(String),
    /// Serving failed.
    #[error("server: {0}")]
    Serve(String),
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        // reqwest errors name the URL, never the body.
        Error::Http(e.to_string())
    }
}
