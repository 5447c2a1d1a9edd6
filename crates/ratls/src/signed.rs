//! Signatures by the attested certificate key over data other than the TLS handshake:
//! the node's processing receipts (`confide_session::receipt`).
//!
//! The key that signs is the one REPORT_DATA binds, so a signature that verifies under a
//! certificate that passes every RA-TLS check was made inside the attested TEE. A session
//! signs with the credential its handshake presented ([`CredentialSnapshot`]): the node
//! refreshes its certificate while sessions are open, and a receipt signed with a newer
//! key would not verify against the certificate the device checked.
//!
//! ECDSA P-256 with SHA-256, ASN.1 DER signatures, the same algorithm as the handshake's
//! CertificateVerify (RFC 8446 §4.2.3 `ecdsa_secp256r1_sha256`).

use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::sign::CertifiedKey;
use x509_cert::Certificate;
use x509_cert::der::Decode;

use crate::cmw::NodeCollection;
use crate::error::RatlsError;
use crate::node::NodeCertResolver;
use crate::verify::{NodeVerifier, VerifiedNode};

const SCHEME: SignatureScheme = SignatureScheme::ECDSA_NISTP256_SHA256;

/// One credential, fixed: what a session's handshake presented, kept to sign for that
/// session. Holds the signing key in process memory only; `Debug` shows nothing of it.
#[derive(Clone)]
pub struct CredentialSnapshot {
    certified: Arc<CertifiedKey>,
    /// The certificate's notAfter (Unix seconds): a receipt signed later would not verify
    /// offline, so the session must end by then.
    not_after: u64,
    /// The ledger bundle the certificate staples (its release's ledger index is what the
    /// session's receipts must name). Shared: every session's copy is the same bytes.
    ledger_bundle: Arc<[u8]>,
}

impl std::fmt::Debug for CredentialSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialSnapshot(<signing key>)")
    }
}

impl CredentialSnapshot {
    /// Read validity and stapled bundle from the certificate (once per credential).
    pub(crate) fn of(certified: Arc<CertifiedKey>) -> Self {
        // Node credentials are certificates this crate built; a key that is not (a test's
        // deliberately broken one) simply has no validity or bundle to report.
        let parsed = certified
            .cert
            .first()
            .and_then(|c| Certificate::from_der(c.as_ref()).ok());
        let not_after = parsed.as_ref().map_or(0, |c| {
            c.tbs_certificate()
                .validity()
                .not_after
                .to_unix_duration()
                .as_secs()
        });
        let ledger_bundle = parsed
            .as_ref()
            .and_then(|c| {
                c.tbs_certificate()
                    .extensions()
                    .into_iter()
                    .flatten()
                    .find(|e| e.extn_id == crate::verify::CMW_OID)
                    .and_then(|e| {
                        NodeCollection::from_extension_value(e.extn_value.as_bytes()).ok()
                    })
            })
            .map(|c| Arc::from(c.ledger_bundle))
            .unwrap_or_else(|| Arc::from(Vec::new()));
        CredentialSnapshot {
            certified,
            not_after,
            ledger_bundle,
        }
    }

    /// The certificate's notAfter, Unix seconds (0 if it cannot be read).
    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// The ledger bundle the certificate staples (empty if it has none).
    pub fn ledger_bundle(&self) -> &[u8] {
        &self.ledger_bundle
    }

    /// A resolver that always serves this credential (for one session's TLS config).
    pub fn resolver(&self) -> Arc<NodeCertResolver> {
        Arc::new(NodeCertResolver::fixed(self.clone()))
    }

    pub(crate) fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.certified)
    }

    /// The certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        // Node credentials always hold exactly one certificate.
        &self.certified.cert[0]
    }

    /// Sign `message` with the certificate key (ECDSA P-256, SHA-256, DER signature).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, RatlsError> {
        self.certified
            .key
            .choose_scheme(&[SCHEME])
            .ok_or(RatlsError::KeyGeneration)?
            .sign(message)
            .map_err(|_| RatlsError::SigningFailed)
    }
}

/// The validity period of a certificate, `(notBefore, notAfter)` in Unix seconds.
pub fn certificate_validity(certificate: &CertificateDer<'_>) -> Result<(u64, u64), RatlsError> {
    let cert = Certificate::from_der(certificate.as_ref())
        .map_err(|_| RatlsError::MalformedCertificate)?;
    let v = cert.tbs_certificate().validity();
    Ok((
        v.not_before.to_unix_duration().as_secs(),
        v.not_after.to_unix_duration().as_secs(),
    ))
}

/// Verify `signature` over `message` with the key of `certificate`. Checks the signature
/// only: the certificate itself must be verified separately (in a session, the handshake
/// did; offline, [`NodeVerifier::verify_signed`] does both).
pub fn verify_certificate_signature(
    certificate: &CertificateDer<'_>,
    message: &[u8],
    signature: &[u8],
) -> Result<(), RatlsError> {
    let cert = Certificate::from_der(certificate.as_ref())
        .map_err(|_| RatlsError::MalformedCertificate)?;
    let public_key = cert
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .as_bytes()
        .ok_or(RatlsError::MalformedCertificate)?;
    let provider = crate::config::provider();
    let algs = provider
        .signature_verification_algorithms
        .mapping
        .iter()
        .find(|(s, _)| *s == SCHEME)
        .map(|(_, algs)| *algs)
        .ok_or(RatlsError::SignatureInvalid)?;
    // The certificate's key must be of the one algorithm nodes use; any other key type
    // simply fails every candidate.
    if algs
        .iter()
        .any(|alg| alg.verify_signature(public_key, message, signature).is_ok())
    {
        Ok(())
    } else {
        Err(RatlsError::SignatureInvalid)
    }
}

impl NodeVerifier {
    /// Offline verification of something a node signed (a receipt): `certificate` passes
    /// every certificate-level RA-TLS check as of `at` (validity, evidence and its binding
    /// to the key, ledger bundle, release listing), and `signature` over `message` verifies
    /// with its key. The signature stands in for the handshake's: the resulting
    /// [`VerifiedNode`] says that key signed `message`, not that a session took place.
    pub fn verify_signed(
        &self,
        certificate: &CertificateDer<'_>,
        message: &[u8],
        signature: &[u8],
        at: UnixTime,
    ) -> Result<VerifiedNode, RatlsError> {
        let checked = self.check_certificate_at(certificate, at)?;
        verify_certificate_signature(certificate, message, signature)?;
        Ok(checked)
    }
}
