//! Ledger entries (release manifests, OHTTP key-config entries), stapled bundles and
//! client-side [`VerifiedInclusion`].
//!
//! This is the crate the rest of Confide codes against:
//!
//! - [`LedgerEntry`]: what the ledger logs. Either a [`ReleaseManifest`] (a node build
//!   that may serve: platform, measurement, model digest, source revision, build recipe
//!   digest, validity window, notes) or a [`KeyConfigEntry`] (a gateway's RFC 9458
//!   `application/ohttp-keys` with its validity) or a [`Revocation`] (an earlier release's
//!   leaf index and the reason it must no longer be used). [`LedgerEntry::encode`] is the one
//!   canonical byte encoding (so one manifest has one leaf hash, RFC 9162 §2.1.1) and
//!   [`LedgerEntry::decode`] rejects anything that is not exactly that encoding. For
//!   humans the same values read from TOML or JSON ([`LedgerEntry::from_toml`]).
//! - [`Bundle`]: what a node staples to its evidence: entry bytes, leaf index, RFC 9162
//!   §2.1.3 inclusion proof and the cosigned C2SP checkpoint note. Compact binary
//!   encoding with hard size limits ([`Bundle::MAX_ENCODED_LEN`]).
//! - [`LedgerTrust`] + [`verify_bundle`]: the client-side check. It returns a
//!   [`VerifiedInclusion`], which has private fields and exists only when the ledger's
//!   C2SP signed-note signature, a quorum of C2SP `cosignature/v1` witness
//!   cosignatures, the inclusion proof, and consistency with the last checkpoint the
//!   device stored (no fork, no rollback; RFC 9162 §2.1.4 consistency proof when the
//!   tree grew) all passed.
//!
//! No I/O: the caller passes every byte, key and stored checkpoint in.
//! Format details: `docs/ledger.md` and `docs/adr/0101-ledger-entry-encoding.md`.

mod bundle;
mod entry;
mod verify;

pub use bundle::Bundle;
pub use entry::{
    GpuReference, KeyConfigEntry, LedgerEntry, MeasurementScheme, Platform, ReleaseManifest,
    Revocation, TDX_REGISTER_LEN,
};
pub use verify::{
    LedgerTrust, StoredCheckpoint, VerifiedCheckpoint, VerifiedInclusion, verify_bundle,
    verify_checkpoint, verify_entry_under,
};

pub use confide_tlog::Hash;

/// Everything that can be wrong with an entry, a bundle, a trust configuration or a
/// proof. Each failure the client must tell apart has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Entry bytes do not follow the canonical entry encoding.
    #[error("malformed ledger entry: {0}")]
    MalformedEntry(&'static str),
    /// Entry bytes use a format this version no longer accepts.
    #[error("retired ledger entry format: {0}")]
    RetiredEntryFormat(&'static str),
    /// Entry bytes parse but are not the canonical encoding of what they hold.
    #[error("ledger entry is not canonically encoded")]
    NonCanonicalEntry,
    /// An entry field is out of its allowed range.
    #[error("invalid ledger entry field {field}: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A measurement of the wrong length for its platform.
    #[error("measurement for {platform} must be {want} bytes, got {got}")]
    MeasurementLength {
        /// Platform name.
        platform: &'static str,
        /// Required length.
        want: usize,
        /// Given length.
        got: usize,
    },
    /// A human-readable manifest (TOML/JSON) could not be read.
    #[error("invalid manifest document: {0}")]
    Document(String),
    /// Bundle bytes do not follow the bundle encoding.
    #[error("malformed bundle: {0}")]
    MalformedBundle(&'static str),
    /// Bundle bytes exceed [`Bundle::MAX_ENCODED_LEN`] or a field exceeds its limit.
    #[error("bundle too large: {0}")]
    BundleTooLarge(&'static str),
    /// A key in the trust configuration is malformed.
    #[error("invalid trust key: {0}")]
    TrustKey(confide_note::Error),
    /// A key in the trust configuration has the wrong signature type.
    #[error("trust key {0} has the wrong signature type")]
    TrustKeyType(String),
    /// The same witness key is listed twice.
    #[error("witness key {0} listed twice")]
    DuplicateWitness(String),
    /// The quorum is larger than the number of witnesses.
    #[error("quorum {quorum} exceeds the {witnesses} configured witnesses")]
    QuorumTooLarge {
        /// Configured quorum.
        quorum: usize,
        /// Configured witnesses.
        witnesses: usize,
    },
    /// The checkpoint note or body is malformed.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(confide_note::Error),
    /// The checkpoint carries no signature by the trusted ledger key.
    #[error("checkpoint is not signed by the trusted ledger key")]
    UnknownLedgerKey,
    /// The ledger's signature on the checkpoint does not verify.
    #[error("ledger signature on the checkpoint does not verify")]
    BadLedgerSignature,
    /// The checkpoint's origin is not the trusted ledger's.
    #[error("checkpoint origin does not match the trusted ledger")]
    OriginMismatch,
    /// Fewer valid witness cosignatures than the quorum.
    #[error("{valid} valid witness cosignatures, {required} required")]
    TooFewCosignatures {
        /// Valid cosignatures by distinct trusted witnesses.
        valid: usize,
        /// The quorum.
        required: usize,
    },
    /// The entry index is not inside the checkpoint's tree.
    #[error("entry index {index} is outside the tree of size {size}")]
    IndexOutOfRange {
        /// Index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// The inclusion proof has too few hashes.
    #[error("inclusion proof truncated: {got} hashes, {want} required")]
    TruncatedProof {
        /// Given.
        got: usize,
        /// Required.
        want: usize,
    },
    /// The inclusion proof has too many hashes.
    #[error("inclusion proof padded: {got} hashes, {want} required")]
    PaddedProof {
        /// Given.
        got: usize,
        /// Required.
        want: usize,
    },
    /// The entry is not at that index under the checkpoint's root.
    #[error("inclusion proof does not lead to the checkpoint root")]
    NotIncluded,
    /// Same tree size as the stored checkpoint with another root: a split view.
    #[error("fork: checkpoint of size {size} has a different root than the stored one")]
    Fork {
        /// The size both checkpoints claim.
        size: u64,
    },
    /// The checkpoint is older (smaller) than the stored one.
    #[error("rollback: checkpoint size {got} is smaller than the stored size {stored}")]
    Rollback {
        /// Stored size.
        stored: u64,
        /// Offered size.
        got: u64,
    },
    /// The tree grew since the stored checkpoint but no consistency proof was given.
    #[error("a consistency proof from size {from} to {to} is required")]
    ConsistencyProofRequired {
        /// Stored size.
        from: u64,
        /// New size.
        to: u64,
    },
    /// The consistency proof does not link the stored checkpoint to the new one.
    #[error("checkpoint is not consistent with the stored one: {0}")]
    Inconsistent(confide_tlog::Error),
    /// The stored checkpoint is for another log.
    #[error("stored checkpoint belongs to another log")]
    StoredOriginMismatch,
    /// No trusted witness cosigned the checkpoint recently enough: the log may have been
    /// frozen for this device.
    #[error(
        "stale checkpoint: newest witness cosignature {} is older than the {max_age} s the policy allows (now {now})",
        newest.map_or_else(|| "(none)".to_owned(), |t| format!("at {t}"))
    )]
    StaleCheckpoint {
        /// Newest verified cosignature time, unix seconds.
        newest: Option<u64>,
        /// The time checked against.
        now: u64,
        /// The policy's limit, seconds.
        max_age: u64,
    },
    /// The release was published longer ago than the policy's maximum release age.
    #[error(
        "release too old: valid since {not_before}, more than the {max_age} s the policy allows (now {now})"
    )]
    ReleaseTooOld {
        /// The release's `not_before`.
        not_before: u64,
        /// The time checked against.
        now: u64,
        /// The policy's limit, seconds.
        max_age: u64,
    },
}
