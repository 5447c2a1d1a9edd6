//! RA-TLS for Confide: TLS 1.3 whose certificate carries TEE evidence binding
//! the certificate key, plus the stapled ledger bundle that lists the node's
//! measurement.
//!
//! Node side ([`NodeCredential`]): a fresh ECDSA P-256 key per certificate,
//! REPORT_DATA = SHA-256(label || validity || SPKI) || SHA-256(GPU evidence) or
//! zeros ([`report_data()`]: the certificate's validity is bound too), evidence from an [`Attester`], and a short-lived
//! self-signed certificate with the id-pe-cmw extension
//! (draft-ietf-rats-msg-wrap section 6.1) holding a CMW collection ([`cmw`]).
//! [`CertRefresher`] says when the next certificate is due.
//!
//! Client side ([`RaTlsServerVerifier`], and [`RaTlsClientVerifier`] for mutual
//! node-to-node TLS): parse the extension, verify the evidence and the ledger
//! bundle through [`EvidenceVerifier`] and [`InclusionVerifier`] with time
//! passed in, check that REPORT_DATA binds this very certificate key and its
//! validity (and that the certificate is no older than the policy allows), that
//! evidence and ledger entry agree on platform, every pinned register and the
//! model and configuration digests ([`match_release`]) and that the entry is valid now, and still verify the TLS 1.3
//! CertificateVerify signature with the certificate key. Only then does a
//! [`VerifiedNode`] exist ([`PeerVerification::take_verified`]).
//!
//! No I/O: bytes, keys and time come in as arguments. See `docs/ratls.md`.

mod cbor;
pub mod cmw;
mod config;
mod error;
mod node;
mod report_data;
mod signed;
mod traits;
mod verify;

pub use config::{
    ManualClock, client_connection, mutual_server_connection, provider, server_config,
};
pub use error::{ExternalError, RatlsError, ReportDataHalf};
pub use node::{CertRefresher, GpuEvidence, NODE_SERVER_NAME, NodeCertResolver, NodeCredential};
pub use report_data::{BoundValidity, report_data};
pub use signed::{CredentialSnapshot, certificate_validity, verify_certificate_signature};
pub use traits::{
    Attester, CheckpointRef, EvidenceClaims, EvidenceVerifier, GpuEvidenceVerifier,
    InclusionVerifier, LedgerEntryClaims, Pin, Register,
};
pub use verify::{
    NodePolicy, NodeVerifier, PeerVerification, RaTlsClientVerifier, RaTlsServerVerifier,
    UNATTESTED_MODEL_DIGEST, VerifiedNode, match_release,
};

/// Re-exported so callers name the same rustls types this crate uses.
pub use rustls;
