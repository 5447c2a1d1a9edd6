//! The one error type of this crate.
//!
//! Every variant names the check that failed. None carries certificate,
//! evidence or key bytes: the peer's data may be attacker-chosen and logs must
//! stay free of it (house rule 3). The verifier traits' own errors are kept as
//! typed sources ([`ExternalError`]) so a caller can downcast to the
//! attestation or ledger crate's error type.

use std::fmt;

/// An error reported by a pluggable component (attester, evidence verifier,
/// inclusion verifier). Kept boxed so the concrete, typed cause from the
/// component's crate stays retrievable with [`ExternalError::downcast_ref`].
pub struct ExternalError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl ExternalError {
    /// Wraps a component's error.
    pub fn new<E: std::error::Error + Send + Sync + 'static>(err: E) -> Self {
        Self(Box::new(err))
    }

    /// The component's typed error, if it is an `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

impl fmt::Debug for ExternalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ExternalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ExternalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

/// Which half of the 64-byte REPORT_DATA failed to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportDataHalf {
    /// Bytes 0..32: SHA-256 of the certificate's SubjectPublicKeyInfo and bound validity.
    CertificateKey,
    /// Bytes 32..64: SHA-256 of the GPU evidence, or zeros without a GPU.
    GpuEvidence,
}

impl fmt::Display for ReportDataHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CertificateKey => "certificate key digest",
            Self::GpuEvidence => "GPU evidence digest",
        })
    }
}

/// Everything that can go wrong issuing or verifying an RA-TLS certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RatlsError {
    // ---- node side ----
    /// The node's key pair could not be generated.
    #[error("node key generation failed")]
    KeyGeneration,
    /// The self-signed certificate could not be built or signed.
    #[error("certificate generation failed")]
    CertificateGeneration,
    /// The requested certificate lifetime is zero or does not fit the calendar.
    #[error("invalid certificate lifetime")]
    InvalidLifetime,
    /// The platform attester failed to produce evidence.
    #[error("attester failed: {0}")]
    Attestation(#[source] ExternalError),
    /// Signing with the certificate key failed.
    #[error("signing with the certificate key failed")]
    SigningFailed,
    /// A signature by the certificate key (over a receipt) does not verify.
    #[error("the signature does not verify with the certificate key")]
    SignatureInvalid,

    // ---- certificate structure ----
    /// The certificate is not valid DER X.509.
    #[error("certificate is not well-formed X.509")]
    MalformedCertificate,
    /// The peer sent a chain; an RA-TLS node presents exactly one self-signed certificate.
    #[error("peer sent intermediate certificates; RA-TLS expects a single certificate")]
    UnexpectedIntermediates,
    /// No id-pe-cmw extension.
    #[error("certificate has no id-pe-cmw extension")]
    MissingCmwExtension,
    /// More than one id-pe-cmw extension (ambiguous; refused).
    #[error("certificate has more than one id-pe-cmw extension")]
    DuplicateCmwExtension,
    /// A critical extension this verifier does not understand (RFC 5280 section 4.2).
    #[error("certificate has an unrecognised critical extension")]
    UnknownCriticalExtension,
    /// The CMW collection inside the extension is malformed.
    #[error("malformed CMW collection: {0}")]
    MalformedCmw(&'static str),
    /// The extension exceeds the size limit.
    #[error("CMW extension exceeds {limit} bytes")]
    CmwTooLarge {
        /// The limit in bytes.
        limit: usize,
    },

    // ---- validity and freshness (time is passed in) ----
    /// rustls supplied no time and none was configured.
    #[error("no verification time available")]
    NoTime,
    /// now < notBefore - skew.
    #[error("certificate not yet valid")]
    CertificateNotYetValid,
    /// now > notAfter.
    #[error("certificate expired")]
    CertificateExpired,
    /// notAfter - notBefore exceeds the policy's freshness window.
    #[error("certificate lifetime exceeds the freshness window")]
    CertificateLifetimeTooLong,
    /// now - notBefore exceeds the policy's maximum certificate age. The notBefore
    /// judged is the one the evidence binds (REPORT_DATA), not only the node's word.
    #[error("certificate is older than the policy's maximum certificate age")]
    CertificateTooOld,
    /// The certificate's X.509 validity differs from the validity its evidence binds.
    #[error("certificate validity differs from the validity its evidence binds")]
    ValidityMismatch,
    /// The evidence's collection time is older than the policy allows.
    #[error("evidence is stale")]
    StaleEvidence,
    /// The evidence claims to be collected in the future.
    #[error("evidence collection time is in the future")]
    EvidenceFromFuture,

    // ---- binding ----
    /// REPORT_DATA does not bind this certificate (or its GPU evidence).
    #[error("evidence REPORT_DATA does not bind the {0}")]
    ReportDataMismatch(ReportDataHalf),
    /// GPU evidence is present but no GPU verifier is configured.
    #[error("GPU evidence present but no GPU verifier is configured")]
    GpuVerifierMissing,
    /// The policy requires GPU evidence but the certificate has none.
    #[error("GPU evidence required but absent")]
    GpuEvidenceMissing,

    // ---- external verifiers ----
    /// The evidence verifier rejected the CPU evidence.
    #[error("evidence rejected: {0}")]
    EvidenceRejected(#[source] ExternalError),
    /// The GPU evidence verifier rejected the GPU evidence.
    #[error("GPU evidence rejected: {0}")]
    GpuEvidenceRejected(#[source] ExternalError),
    /// The ledger bundle did not verify (inclusion proof, checkpoint, cosignatures, consistency).
    #[error("ledger bundle rejected: {0}")]
    InclusionRejected(#[source] ExternalError),

    // ---- evidence against ledger entry ----
    /// The platform in the evidence differs from the ledger entry's.
    #[error("evidence platform differs from the ledger entry")]
    PlatformMismatch,
    /// A measured register differs from every value the verified ledger entry pins for it.
    #[error("{register} is not the value the ledger entry lists")]
    MeasurementNotListed {
        /// The register (`MEASUREMENT`, `POLICY`, `MRTD`, `RTMR1`, `gpu.5`, ...).
        register: String,
    },
    /// The ledger entry pins a register the evidence does not carry.
    #[error("the ledger entry pins {register}, which the evidence does not attest")]
    RegisterNotAttested {
        /// The register.
        register: String,
    },
    /// The evidence carries a register that a release must pin, and this one does not.
    #[error("the ledger entry does not pin {register}")]
    RegisterNotPinned {
        /// The register.
        register: String,
    },
    /// The evidence carries a group of registers (a GPU's measurements) that the ledger
    /// entry pins nothing of.
    #[error("the evidence carries {group} measurements the ledger entry has no reference for")]
    RegisterGroupNotPinned {
        /// The group (`gpu`).
        group: String,
    },
    /// The ledger entry pins no register at all.
    #[error("the ledger entry pins no measurement")]
    NothingPinned,
    /// The model digest in the evidence differs from the ledger entry's.
    #[error("model digest differs from the ledger entry")]
    ModelDigestMismatch,
    /// The ledger entry names a model digest but the evidence attests none.
    #[error("ledger entry names a model digest the evidence does not attest")]
    ModelDigestNotAttested,
    /// The release says its node serves a model it did not measure (an OpenAI-compatible
    /// upstream whose weights the node cannot read: [`crate::UNATTESTED_MODEL_DIGEST`]),
    /// and the policy does not allow that.
    #[error(
        "model digest not attested: the node serves a model it did not measure, and the \
         policy does not allow that (allow_unattested_model)"
    )]
    ModelNotAttested,
    /// The node configuration digest in the evidence differs from the ledger entry's.
    #[error("configuration digest differs from the ledger entry")]
    ConfigDigestMismatch,
    /// The ledger entry names a configuration digest but the evidence attests none.
    #[error("ledger entry names a configuration digest the evidence does not attest")]
    ConfigDigestNotAttested,
    /// The ledger entry's validity has not started.
    #[error("ledger entry not yet valid")]
    LedgerEntryNotYetValid,
    /// The ledger entry's validity has ended.
    #[error("ledger entry expired")]
    LedgerEntryExpired,

    // ---- TLS ----
    /// TLS 1.2 signatures are refused: RA-TLS here is TLS 1.3 only.
    #[error("TLS 1.2 is not accepted")]
    Tls12Rejected,
    /// The TLS 1.3 CertificateVerify signature did not verify with the certificate key.
    #[error("handshake signature does not verify with the certificate key")]
    HandshakeSignatureInvalid,
    /// The handshake signature was checked against a certificate other than the verified one.
    #[error("handshake signature certificate differs from the verified certificate")]
    SignatureCertificateMismatch,
}

impl RatlsError {
    /// Finds the typed cause inside a rustls error produced by this crate's verifiers.
    pub fn from_rustls(err: &rustls::Error) -> Option<&RatlsError> {
        match err {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
                other.0.downcast_ref::<RatlsError>()
            }
            _ => None,
        }
    }
}

/// Wraps a [`RatlsError`] as `InvalidCertificate(Other(..))` so rustls sends a
/// `bad_certificate`-class alert and the caller can still recover the cause.
pub(crate) fn into_rustls(err: std::sync::Arc<RatlsError>) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(err)))
}
