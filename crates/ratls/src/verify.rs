//! Client side: the checks that turn a peer certificate into a [`VerifiedNode`].
//!
//! The rustls verifiers ([`RaTlsServerVerifier`] for device-to-node,
//! [`RaTlsClientVerifier`] for the node-to-node mutual case) run
//! [`NodeVerifier::check_certificate`] when rustls hands them the certificate,
//! and still verify the TLS 1.3 CertificateVerify signature with the
//! certificate key (RFC 8446 section 4.4.3) through rustls' own
//! `verify_tls13_signature`. Only when both succeeded, on the same certificate,
//! does a [`VerifiedNode`] exist; the connection owner takes it from the
//! [`PeerVerification`] handle after the handshake.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};

use crate::cmw::NodeCollection;
use crate::error::{RatlsError, ReportDataHalf, into_rustls};
use crate::report_data::{BoundValidity, report_data};
use crate::traits::{
    CheckpointRef, EvidenceClaims, EvidenceVerifier, GpuEvidenceVerifier, InclusionVerifier,
    LedgerEntryClaims,
};

/// id-pe-cmw (see [`crate::cmw::ID_PE_CMW`]).
pub(crate) const CMW_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.35");

/// Extensions a node may mark critical (key usage, basic constraints, subject
/// alternative name, extended key usage); any other critical extension is
/// refused (RFC 5280 section 4.2).
const KNOWN_CRITICAL: [ObjectIdentifier; 4] = [
    ObjectIdentifier::new_unwrap("2.5.29.15"),
    ObjectIdentifier::new_unwrap("2.5.29.19"),
    ObjectIdentifier::new_unwrap("2.5.29.17"),
    ObjectIdentifier::new_unwrap("2.5.29.37"),
];

/// The client's freshness and hardware policy for nodes.
#[derive(Debug, Clone, Copy)]
pub struct NodePolicy {
    /// Longest accepted certificate lifetime, and oldest accepted evidence.
    pub freshness_window: Duration,
    /// Tolerated clock difference between node and client.
    pub clock_skew: Duration,
    /// Oldest accepted certificate: `now - notBefore`, with the notBefore the evidence
    /// binds into REPORT_DATA ([`crate::report_data()`]). Defaults to the freshness
    /// window.
    pub max_certificate_age: Duration,
    /// Whether GPU evidence must be present.
    pub require_gpu: bool,
    /// Whether a node that states [`UNATTESTED_MODEL_DIGEST`] (it serves a model it could
    /// not measure) may be accepted. Off by default: then the model is whatever the
    /// operator's upstream serves, not something the release names.
    pub allow_unattested_model: bool,
}

/// The model digest a node binds and its release lists when the node cannot measure the
/// model it serves (an OpenAI-compatible upstream whose weights it cannot read, and no
/// `--upstream-model-file`). All zeros: SHA-256 of real weights is never that, so the
/// value cannot be confused with a measurement, and the release says so in the open.
pub const UNATTESTED_MODEL_DIGEST: [u8; 32] = [0; 32];

impl NodePolicy {
    /// A policy with `freshness_window` (also the maximum certificate age), 60 s skew
    /// and no GPU requirement.
    pub fn new(freshness_window: Duration) -> Self {
        Self {
            freshness_window,
            clock_skew: Duration::from_secs(60),
            max_certificate_age: freshness_window,
            require_gpu: false,
            allow_unattested_model: false,
        }
    }
}

/// Proof that a peer passed every RA-TLS check: certificate parsed, validity
/// and freshness held, evidence verified and bound to the certificate key, the
/// ledger bundle verified, evidence and ledger entry agree, and a signature
/// verified with that same certificate key: the TLS 1.3 handshake's
/// CertificateVerify, or, from [`NodeVerifier::verify_signed`], a signature over
/// data the node signed later (a processing receipt).
///
/// Private fields; only this crate's verifiers construct it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNode {
    platform: String,
    measurement: Vec<u8>,
    model_digest: Option<Vec<u8>>,
    config_digest: Option<Vec<u8>>,
    ledger_index: u64,
    checkpoint: CheckpointRef,
    gpu_attested: bool,
    certificate_sha256: [u8; 32],
    verified_at: UnixTime,
}

impl VerifiedNode {
    /// Platform name (as in the ledger entry).
    pub fn platform(&self) -> &str {
        &self.platform
    }
    /// The attested measurement, equal to the ledger entry's.
    pub fn measurement(&self) -> &[u8] {
        &self.measurement
    }
    /// The attested model digest, equal to the ledger entry's.
    pub fn model_digest(&self) -> Option<&[u8]> {
        self.model_digest.as_deref()
    }
    /// The attested node configuration digest, equal to the ledger entry's.
    pub fn config_digest(&self) -> Option<&[u8]> {
        self.config_digest.as_deref()
    }
    /// The ledger leaf index of the release.
    pub fn ledger_index(&self) -> u64 {
        self.ledger_index
    }
    /// The checkpoint the release was proven under.
    pub fn checkpoint(&self) -> &CheckpointRef {
        &self.checkpoint
    }
    /// Whether GPU evidence was verified and bound.
    pub fn gpu_attested(&self) -> bool {
        self.gpu_attested
    }
    /// SHA-256 of the peer's certificate DER.
    pub fn certificate_sha256(&self) -> &[u8; 32] {
        &self.certificate_sha256
    }
    /// The time the checks ran at.
    pub fn verified_at(&self) -> UnixTime {
        self.verified_at
    }
}

/// Result of the certificate checks, before the handshake signature.
#[derive(Debug, Clone)]
struct CheckedCertificate {
    node: VerifiedNode,
}

/// The verifiers and policy a client applies to node certificates.
#[derive(Debug, Clone)]
pub struct NodeVerifier {
    policy: NodePolicy,
    evidence: Arc<dyn EvidenceVerifier>,
    inclusion: Arc<dyn InclusionVerifier>,
    gpu: Option<Arc<dyn GpuEvidenceVerifier>>,
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

impl NodeVerifier {
    /// A verifier using `evidence` for CPU evidence and `inclusion` for the ledger bundle.
    pub fn new(
        policy: NodePolicy,
        evidence: Arc<dyn EvidenceVerifier>,
        inclusion: Arc<dyn InclusionVerifier>,
    ) -> Self {
        Self {
            policy,
            evidence,
            inclusion,
            gpu: None,
        }
    }

    /// Adds a GPU evidence verifier (without one, certificates carrying GPU evidence are refused).
    pub fn with_gpu_verifier(mut self, gpu: Arc<dyn GpuEvidenceVerifier>) -> Self {
        self.gpu = Some(gpu);
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> &NodePolicy {
        &self.policy
    }

    /// Every certificate-level check as of `at` (for [`NodeVerifier::verify_signed`]).
    pub(crate) fn check_certificate_at(
        &self,
        end_entity: &CertificateDer<'_>,
        at: UnixTime,
    ) -> Result<VerifiedNode, RatlsError> {
        self.check_certificate(end_entity, &[], at).map(|c| c.node)
    }

    /// Every certificate-level check, in order of cost. The TLS signature is checked separately.
    fn check_certificate(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<CheckedCertificate, RatlsError> {
        if !intermediates.is_empty() {
            return Err(RatlsError::UnexpectedIntermediates);
        }
        let cert = Certificate::from_der(end_entity.as_ref())
            .map_err(|_| RatlsError::MalformedCertificate)?;
        let tbs = cert.tbs_certificate();
        let now_s = now.as_secs();
        let skew = secs(self.policy.clock_skew);

        // Validity (RFC 5280 section 4.1.2.5) and the freshness window.
        let validity = tbs.validity();
        let nb = validity.not_before.to_unix_duration().as_secs();
        let na = validity.not_after.to_unix_duration().as_secs();
        if now_s.saturating_add(skew) < nb {
            return Err(RatlsError::CertificateNotYetValid);
        }
        if now_s > na {
            return Err(RatlsError::CertificateExpired);
        }
        if na.saturating_sub(nb) > secs(self.policy.freshness_window) {
            return Err(RatlsError::CertificateLifetimeTooLong);
        }
        // The age, by the notBefore that the binding check below proves the evidence
        // attests (checked here first because it is cheap).
        if now_s.saturating_sub(nb) > secs(self.policy.max_certificate_age) {
            return Err(RatlsError::CertificateTooOld);
        }

        // Exactly one id-pe-cmw extension; no unknown critical extension.
        let mut cmw_value = None;
        for ext in tbs.extensions().map(|e| e.as_slice()).unwrap_or_default() {
            if ext.extn_id == CMW_OID {
                if cmw_value.is_some() {
                    return Err(RatlsError::DuplicateCmwExtension);
                }
                cmw_value = Some(ext.extn_value.as_bytes());
            } else if ext.critical && !KNOWN_CRITICAL.contains(&ext.extn_id) {
                return Err(RatlsError::UnknownCriticalExtension);
            }
        }
        let collection = NodeCollection::from_extension_value(
            cmw_value.ok_or(RatlsError::MissingCmwExtension)?,
        )?;

        // A separate GPU record needs a GPU verifier; check before any expensive work.
        if collection.gpu.is_some() && self.gpu.is_none() {
            return Err(RatlsError::GpuVerifierMissing);
        }

        // CPU evidence: signature chain and platform policy, by the platform verifier.
        let (claims, embedded_gpu) = self
            .evidence
            .verify_evidence_with_gpu(&collection.cpu.media_type, &collection.cpu.value, now)
            .map_err(RatlsError::EvidenceRejected)?;
        if collection.gpu.is_some() && embedded_gpu.is_some() {
            return Err(RatlsError::MalformedCmw("GPU evidence given twice"));
        }
        if collection.gpu.is_none() && embedded_gpu.is_none() && self.policy.require_gpu {
            return Err(RatlsError::GpuEvidenceMissing);
        }

        // Binding: REPORT_DATA must name exactly this certificate's SPKI, and the
        // GPU evidence (separate CMW record, or verified inside the CPU evidence).
        let spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|_| RatlsError::MalformedCertificate)?;
        // The binding is computed with the validity the collection says was bound: a
        // foreign key fails here, while a certificate whose own dates differ from the
        // attested ones fails just below, with its own error.
        let mut expected = report_data(
            &spki,
            collection.validity,
            collection.gpu.as_ref().map(|g| g.value.as_slice()),
        );
        if let Some(digest) = embedded_gpu {
            expected[32..].copy_from_slice(&digest);
        }
        if claims.report_data[..32] != expected[..32] {
            return Err(RatlsError::ReportDataMismatch(
                ReportDataHalf::CertificateKey,
            ));
        }
        if collection.validity
            != (BoundValidity {
                not_before: nb,
                not_after: na,
            })
        {
            return Err(RatlsError::ValidityMismatch);
        }
        if claims.report_data[32..] != expected[32..] {
            return Err(RatlsError::ReportDataMismatch(ReportDataHalf::GpuEvidence));
        }

        // Freshness of the evidence itself when the format carries a signed time;
        // otherwise the certificate lifetime bound above is what limits its age.
        if let Some(at) = claims.collected_at {
            let at = at.as_secs();
            if at > now_s.saturating_add(skew) {
                return Err(RatlsError::EvidenceFromFuture);
            }
            if now_s.saturating_sub(at) > secs(self.policy.freshness_window) {
                return Err(RatlsError::StaleEvidence);
            }
        }

        let gpu_attested = if let (Some(gpu), Some(verifier)) = (&collection.gpu, &self.gpu) {
            verifier
                .verify_gpu_evidence(&gpu.media_type, &gpu.value, now)
                .map_err(RatlsError::GpuEvidenceRejected)?;
            true
        } else {
            embedded_gpu.is_some()
        };

        // Ledger: inclusion proof, checkpoint, cosignatures, consistency.
        let entry = self
            .inclusion
            .verify_inclusion(&collection.ledger_bundle, now)
            .map_err(RatlsError::InclusionRejected)?;

        // The evidence must be exactly what the verified entry lists.
        match_release(&claims, &entry)?;
        // A release may say openly that its node does not know which model it serves;
        // whoever did not opt in to that refuses it.
        if entry.model_digest.as_deref() == Some(&UNATTESTED_MODEL_DIGEST[..])
            && !self.policy.allow_unattested_model
        {
            return Err(RatlsError::ModelNotAttested);
        }
        if now_s < entry.valid_from.as_secs() {
            return Err(RatlsError::LedgerEntryNotYetValid);
        }
        if entry
            .valid_until
            .is_some_and(|until| now_s > until.as_secs())
        {
            return Err(RatlsError::LedgerEntryExpired);
        }

        Ok(CheckedCertificate {
            node: VerifiedNode {
                platform: entry.platform,
                measurement: entry.measurement,
                model_digest: entry.model_digest,
                config_digest: entry.config_digest,
                ledger_index: entry.index,
                checkpoint: entry.checkpoint,
                gpu_attested,
                certificate_sha256: Sha256::digest(end_entity.as_ref()).into(),
                verified_at: now,
            },
        })
    }
}

/// Compare verified evidence with a verified ledger entry: the same platform, every
/// pinned register equal to one of its accepted values, every register a release must
/// pin pinned, every register group (a GPU) referenced, and the same model and
/// configuration digests. The first difference is the error, and it names the register.
///
/// The one comparison of the pipeline: the RA-TLS verifiers call it, and so can anyone
/// holding claims (an auditor comparing a quote with a release, say).
pub fn match_release(claims: &EvidenceClaims, entry: &LedgerEntryClaims) -> Result<(), RatlsError> {
    if claims.platform != entry.platform {
        return Err(RatlsError::PlatformMismatch);
    }
    if entry.pins.is_empty() {
        return Err(RatlsError::NothingPinned);
    }
    for pin in &entry.pins {
        let Some(reg) = claims.registers.iter().find(|r| r.name == pin.name) else {
            return Err(RatlsError::RegisterNotAttested {
                register: pin.name.clone(),
            });
        };
        if !pin.accepted.contains(&reg.value) {
            return Err(RatlsError::MeasurementNotListed {
                register: pin.name.clone(),
            });
        }
    }
    for reg in &claims.registers {
        let pinned = |name: &str| entry.pins.iter().any(|p| p.name == name);
        if reg.must_be_pinned && !pinned(&reg.name) {
            return Err(RatlsError::RegisterNotPinned {
                register: reg.name.clone(),
            });
        }
        if let Some((group, _)) = reg.name.split_once('.') {
            let referenced = entry
                .pins
                .iter()
                .any(|p| p.name.split_once('.').is_some_and(|(g, _)| g == group));
            if !referenced {
                return Err(RatlsError::RegisterGroupNotPinned {
                    group: group.to_owned(),
                });
            }
        }
    }
    match (&entry.model_digest, &claims.model_digest) {
        (None, None) => {}
        (Some(_), None) => return Err(RatlsError::ModelDigestNotAttested),
        (Some(a), Some(b)) if a == b => {}
        _ => return Err(RatlsError::ModelDigestMismatch),
    }
    // The configuration (upstream URL, limits, development switches) is part of what
    // the release approves: the released binary run with an operator-chosen
    // configuration is not the release.
    match (&entry.config_digest, &claims.config_digest) {
        (None, None) => {}
        (Some(_), None) => return Err(RatlsError::ConfigDigestNotAttested),
        (Some(a), Some(b)) if a == b => {}
        _ => return Err(RatlsError::ConfigDigestMismatch),
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Slot {
    /// Certificate-level checks passed for this certificate; signature pending.
    pending: Option<(CertificateDer<'static>, CheckedCertificate)>,
    /// Every check passed, signature included.
    verified: Option<VerifiedNode>,
    /// The first failure, typed.
    error: Option<Arc<RatlsError>>,
}

/// Per-connection handle to the outcome of the peer's RA-TLS verification.
///
/// One handle belongs to one connection; create a fresh verifier (and rustls
/// config) per connection so outcomes cannot mix.
#[derive(Debug, Clone, Default)]
pub struct PeerVerification {
    slot: Arc<Mutex<Slot>>,
}

impl PeerVerification {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the proof, if every check passed for `peer_certificate` (the
    /// certificate the finished rustls connection reports for its peer).
    pub fn take_verified(&self, peer_certificate: &CertificateDer<'_>) -> Option<VerifiedNode> {
        let mut slot = self.lock();
        let node = slot.verified.take()?;
        let digest: [u8; 32] = Sha256::digest(peer_certificate.as_ref()).into();
        (node.certificate_sha256 == digest).then_some(node)
    }

    /// The typed reason verification failed, if it did.
    pub fn error(&self) -> Option<Arc<RatlsError>> {
        self.lock().error.clone()
    }

    fn fail(&self, e: RatlsError) -> rustls::Error {
        let e = Arc::new(e);
        let mut slot = self.lock();
        slot.pending = None;
        slot.verified = None;
        slot.error.get_or_insert_with(|| Arc::clone(&e));
        into_rustls(e)
    }

    fn record_checked(&self, cert: &CertificateDer<'_>, checked: CheckedCertificate) {
        let mut slot = self.lock();
        slot.verified = None;
        slot.pending = Some((cert.clone().into_owned(), checked));
    }

    /// Verifies the CertificateVerify signature and, on success, promotes the pending result.
    fn verify_signature(
        &self,
        algorithms: &WebPkiSupportedAlgorithms,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let pending = self.lock().pending.take();
        let Some((checked_cert, checked)) = pending else {
            return Err(self.fail(RatlsError::SignatureCertificateMismatch));
        };
        if checked_cert.as_ref() != cert.as_ref() {
            return Err(self.fail(RatlsError::SignatureCertificateMismatch));
        }
        // rustls' webpki-backed check, restricted to the provider's TLS 1.3 schemes.
        match rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms) {
            Ok(valid) => {
                self.lock().verified = Some(checked.node);
                Ok(valid)
            }
            Err(e) => {
                // Keep rustls' own error (and alert) but record the typed cause.
                let _ = self.fail(RatlsError::HandshakeSignatureInvalid);
                Err(e)
            }
        }
    }
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    crate::config::provider().signature_verification_algorithms
}

/// What the server-side and client-side rustls verifiers share: the RA-TLS checks, the
/// outcome handle and the TLS 1.3 signature algorithms. The two rustls traits differ only
/// in their wrappers, so each delegates every decision here.
#[derive(Debug)]
struct PeerCheck {
    verifier: NodeVerifier,
    outcome: PeerVerification,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PeerCheck {
    fn new(verifier: NodeVerifier) -> (Self, PeerVerification) {
        let outcome = PeerVerification::default();
        (
            Self {
                verifier,
                outcome: outcome.clone(),
                algorithms: algorithms(),
            },
            outcome,
        )
    }

    /// Every certificate-level check; the caller turns `Ok` into its trait's assertion.
    fn check_certificate(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        match self
            .verifier
            .check_certificate(end_entity, intermediates, now)
        {
            Ok(checked) => {
                self.outcome.record_checked(end_entity, checked);
                Ok(())
            }
            Err(e) => Err(self.outcome.fail(e)),
        }
    }

    fn reject_tls12(&self) -> rustls::Error {
        self.outcome.fail(RatlsError::Tls12Rejected)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.outcome
            .verify_signature(&self.algorithms, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// rustls `ServerCertVerifier` for clients connecting to a node.
#[derive(Debug)]
pub struct RaTlsServerVerifier(PeerCheck);

impl RaTlsServerVerifier {
    /// A verifier for one connection, and the handle that will hold its outcome.
    pub fn new(verifier: NodeVerifier) -> (Arc<Self>, PeerVerification) {
        let (check, outcome) = PeerCheck::new(verifier);
        (Arc::new(Self(check)), outcome)
    }
}

impl ServerCertVerifier for RaTlsServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0
            .check_certificate(end_entity, intermediates, now)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(self.0.reject_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// rustls `ClientCertVerifier` for a node accepting another attested node (mutual RA-TLS).
#[derive(Debug)]
pub struct RaTlsClientVerifier(PeerCheck);

impl RaTlsClientVerifier {
    /// A verifier for one connection, and the handle that will hold its outcome.
    pub fn new(verifier: NodeVerifier) -> (Arc<Self>, PeerVerification) {
        let (check, outcome) = PeerCheck::new(verifier);
        (Arc::new(Self(check)), outcome)
    }
}

impl ClientCertVerifier for RaTlsClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Self-signed attested certificates have no CA to hint at.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .check_certificate(end_entity, intermediates, now)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(self.0.reject_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmw_oid_matches_the_arc_list() {
        let arcs: Vec<u64> = CMW_OID.arcs().map(u64::from).collect();
        assert_eq!(arcs, crate::cmw::ID_PE_CMW);
    }
}
