//! The Confide node: the only place plaintext exists.
//!
//! A node runs inside a TEE (or, for development, on the loudly-labelled simulated
//! platform). It measures itself ([`measure`]), obtains evidence binding a fresh TLS key
//! and its model/configuration ([`adapters::EvidenceAttester`] over the simulated vendor
//! or `confide-attest-tsm`), staples its ledger inclusion bundle ([`ledger`]), and serves
//! RA-TLS sessions whose records reach it through the gateway ([`server`], the node side
//! of `docs/sessions.md`). Inside a session, application messages ([`frames`]) carry
//! `summarize` / `suggest` requests to the engine and stream generated text back.
//!
//! Operational discipline (DESIGN.md, "Operational discipline inside the node"):
//! - nothing leaves as a log line unless [`egress`] allows it (typed events, numbers,
//!   fixed kinds), at every level, and panics print a fixed line;
//! - the node refuses a writable working directory ([`node::check_cwd_read_only`]) and
//!   writes no request content anywhere; prompts and outputs live in zeroizing buffers;
//! - sessions expire when idle and their state is dropped; no debug or shell endpoints.
//!
//! [`node::Node::start`] ties it together; `confide node serve` is the binary entry.
//! See `docs/node.md`.

pub mod adapters;
pub mod egress;
pub mod frames;
pub mod gpu;
pub mod ledger;
pub mod measure;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod process;
pub mod server;

pub use confide_ratls::UNATTESTED_MODEL_DIGEST;
pub use gpu::{GpuChoice, SimFault};
pub use node::{BundleSource, EngineChoice, Measured, Node, NodeOptions, NodePlatform};
pub use peer::{PeerError, PeerNodeEngine};
pub use server::{
    DEFAULT_STREAM_TICK, END_MIN_BUCKET, MAX_STREAM_TICK, MIN_STREAM_TICK, NodeService,
    ReleaseFacts, SESSION_ID_HEADER, STREAM_MIN_BUCKET, ServiceSettings,
};

/// Everything that can go wrong in the node. Messages name what failed, never request
/// content or secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The working directory is writable and the development override is not set.
    #[error(
        "the working directory is writable: a node must not be able to store request data \
         (run it from a read-only directory, or pass --dev-allow-writable-cwd in development)"
    )]
    WritableCwd,
    /// Measuring the executable failed.
    #[error("measurement failed: {0}")]
    Measure(&'static str),
    /// A configuration value is unusable.
    #[error("invalid node configuration: {0}")]
    Config(&'static str),
    /// The platform attester failed or its report does not fit the node.
    #[error("attestation: {0}")]
    Attestation(&'static str),
    /// The node's GPU could not be opened through NVML (or is not in CC mode).
    #[error("GPU: {0}")]
    Gpu(#[source] confide_attest_nvml::NvmlAttestError),
    /// The simulated vendor directory could not be loaded or created.
    #[error("simulated vendor: {0}")]
    SimulatedVendor(#[source] confide_attest_sim::SimError),
    /// Reading the ledger or building the bundle failed.
    #[error("ledger: {0}")]
    Ledger(&'static str),
    /// No ledger entry lists this node.
    #[error("release not found in the ledger: {0}")]
    ReleaseNotFound(&'static str),
    /// The chosen release does not describe this node (names the register that differs).
    #[error("the release does not match this node: {0}")]
    ReleaseMismatch(#[source] confide_ratls::RatlsError),
    /// The engine could not be loaded.
    #[error("engine: {0}")]
    Engine(#[source] confide_engine::EngineError),
    /// Issuing the RA-TLS credential failed.
    #[error("RA-TLS credential: {0}")]
    Ratls(#[source] confide_ratls::RatlsError),
    /// Building the TLS configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(#[source] confide_ratls::rustls::Error),
    /// An application frame is malformed.
    #[error("application frame: {0}")]
    Frame(&'static str),
    /// An OpenAI-compatible upstream outside this TEE: plaintext would leave it.
    #[error(
        "upstream {0} is not on this machine: an OpenAI-compatible upstream must be a \
         loopback address (127.0.0.0/8, [::1]) or unix:/PATH; another machine must be an \
         attested node (--upstream-node)"
    )]
    UpstreamNotLocal(String),
    /// Another node (upstream or caller) could not be used.
    #[error(transparent)]
    Peer(#[from] crate::peer::PeerError),
}
