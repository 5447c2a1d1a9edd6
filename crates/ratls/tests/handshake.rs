//! Real TLS 1.3 handshakes in memory between a node and a verifying client.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use confide_ratls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use confide_ratls::rustls::server::{ClientHello, ResolvesServerCert};
use confide_ratls::rustls::sign::CertifiedKey;
use confide_ratls::rustls::{self, ClientConnection, ServerConfig, ServerConnection};
use confide_ratls::*;

/// Moves bytes both ways until neither side has anything to say.
fn pump(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<(), rustls::Error> {
    for _ in 0..20 {
        let mut progressed = false;
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            progressed = true;
            let mut rd = &buf[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
                server.process_new_packets()?;
            }
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            progressed = true;
            let mut rd = &buf[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
                client.process_new_packets()?;
            }
        }
        if !progressed {
            break;
        }
    }
    Ok(())
}

struct Setup {
    world: World,
    attester: TestAttester,
    entry: TestEntry,
    gpu: Option<GpuEvidence>,
    issue_at: u64,
    verify_at: u64,
}

impl Setup {
    fn new() -> Self {
        let world = World::new();
        let attester = TestAttester::new(&world.vendor);
        let entry = TestEntry::matching(&attester);
        Self {
            world,
            attester,
            entry,
            gpu: None,
            issue_at: T0,
            verify_at: T0 + 60,
        }
    }

    fn credential(&self) -> NodeCredential {
        NodeCredential::issue(
            &self.attester,
            self.gpu.as_ref(),
            &self.entry.bundle(&self.world.ledger),
            at(self.issue_at),
            WINDOW,
        )
        .unwrap()
    }
}

/// Runs a handshake of a client using `verifier` against a server config.
fn handshake_with(
    verifier: NodeVerifier,
    server_config: Arc<ServerConfig>,
    verify_at: u64,
) -> (
    Result<(), rustls::Error>,
    ClientConnection,
    PeerVerification,
) {
    let clock = ManualClock::new(at(verify_at));
    let (mut client, outcome) = client_connection(verifier, None, clock).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    let r = pump(&mut client, &mut server);
    (r, client, outcome)
}

fn run(setup: &Setup, verifier: NodeVerifier) -> Result<VerifiedNode, Arc<RatlsError>> {
    let cred = setup.credential();
    let config = server_config(
        Arc::new(NodeCertResolver::new(&cred)),
        ManualClock::new(at(setup.verify_at)),
    )
    .unwrap();
    let (r, client, outcome) = handshake_with(verifier, config, setup.verify_at);
    match r {
        Ok(()) => {
            assert!(!client.is_handshaking());
            let peer = client.peer_certificates().unwrap()[0].clone();
            Ok(outcome
                .take_verified(&peer)
                .expect("handshake done but no VerifiedNode"))
        }
        Err(e) => {
            let typed = RatlsError::from_rustls(&e).map(|t| t.to_string());
            let recorded = outcome.error().expect("failure without a recorded cause");
            if let Some(t) = typed {
                assert_eq!(t, recorded.to_string());
            }
            assert!(
                outcome
                    .take_verified(&CertificateDer::from(vec![0u8]))
                    .is_none()
            );
            Err(recorded)
        }
    }
}

#[test]
fn attested_handshake_yields_verified_node() {
    let s = Setup::new();
    let node = run(&s, s.world.verifier()).unwrap();
    assert_eq!(node.platform(), "simulated");
    assert_eq!(node.measurement(), &measurement(1)[..]);
    assert_eq!(node.model_digest(), Some(&model(2)[..]));
    assert_eq!(node.config_digest(), Some(&model(3)[..]));
    assert_eq!(node.ledger_index(), 7);
    assert_eq!(node.checkpoint().size, 8);
    assert!(!node.gpu_attested());
    assert_eq!(node.verified_at(), at(T0 + 60));
}

#[test]
fn evidence_not_binding_the_key_fails() {
    let mut s = Setup::new();
    s.attester.report_data_override = Some([0x5a; 64]);
    let e = run(&s, s.world.verifier()).unwrap_err();
    assert!(
        matches!(
            *e,
            RatlsError::ReportDataMismatch(ReportDataHalf::CertificateKey)
        ),
        "{e}"
    );
}

#[test]
fn evidence_from_another_vendor_fails_with_typed_cause() {
    let s = Setup::new();
    let mut other = World::new();
    other.vendor = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let verifier = NodeVerifier::new(
        NodePolicy::new(WINDOW),
        Arc::new(TestEvidenceVerifier {
            vendor: other.vendor.verifying_key(),
        }),
        Arc::new(TestInclusionVerifier {
            ledger: s.world.ledger.verifying_key(),
        }),
    );
    let e = run(&s, verifier).unwrap_err();
    let RatlsError::EvidenceRejected(inner) = &*e else {
        panic!("{e}")
    };
    assert!(matches!(
        inner.downcast_ref::<TestVerifyError>(),
        Some(TestVerifyError::BadSignature)
    ));
}

#[test]
fn bundle_from_another_ledger_fails() {
    let mut s = Setup::new();
    s.world.ledger = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    // Bundle signed by key 8, verifier trusts key 3.
    let verifier = World::new().verifier();
    let e = run(&s, verifier).unwrap_err();
    assert!(matches!(*e, RatlsError::InclusionRejected(_)), "{e}");
}

#[test]
fn unlisted_measurement_fails() {
    let mut s = Setup::new();
    // The node runs measurement 0x66 but can only staple the entry for 0x01.
    s.attester.measurement = measurement(0x66);
    let e = run(&s, s.world.verifier()).unwrap_err();
    assert!(matches!(*e, RatlsError::MeasurementNotListed { .. }), "{e}");
}

#[test]
fn model_digest_mismatch_fails() {
    let mut s = Setup::new();
    s.attester.model_digest = Some(model(0x77));
    let e = run(&s, s.world.verifier()).unwrap_err();
    assert!(matches!(*e, RatlsError::ModelDigestMismatch), "{e}");
    s.attester.model_digest = None;
    let e = run(&s, s.world.verifier()).unwrap_err();
    assert!(matches!(*e, RatlsError::ModelDigestNotAttested), "{e}");
}

#[test]
fn unattested_model_is_refused_unless_the_policy_allows_it() {
    // A node in front of an upstream it cannot measure binds, and its release lists,
    // the all-zero "not attested" digest: evidence and release agree, yet by default the
    // client refuses, because nobody vouches for the model.
    let mut s = Setup::new();
    s.attester.model_digest = Some(UNATTESTED_MODEL_DIGEST.to_vec());
    s.entry = TestEntry::matching(&s.attester);
    let e = run(&s, s.world.verifier()).unwrap_err();
    assert!(matches!(*e, RatlsError::ModelNotAttested), "{e}");
    assert!(
        e.to_string().starts_with("model digest not attested"),
        "{e}"
    );

    let mut policy = NodePolicy::new(WINDOW);
    policy.allow_unattested_model = true;
    let allowing = NodeVerifier::new(
        policy,
        Arc::new(TestEvidenceVerifier {
            vendor: s.world.vendor.verifying_key(),
        }),
        Arc::new(TestInclusionVerifier {
            ledger: s.world.ledger.verifying_key(),
        }),
    );
    let node = run(&s, allowing).unwrap();
    assert_eq!(node.model_digest(), Some(&UNATTESTED_MODEL_DIGEST[..]));
}

#[test]
fn config_digest_differing_from_the_ledger_entry_fails() {
    // The released binary and model, run with a configuration the release does not
    // list (another upstream URL, other limits): the handshake fails, so no
    // application data is ever sent.
    let mut s = Setup::new();
    s.attester.config_digest = Some(model(0x78));
    let e = run(&s, s.world.verifier()).unwrap_err();
    assert!(matches!(*e, RatlsError::ConfigDigestMismatch), "{e}");
    s.attester.config_digest = None;
    let e = run(&s, s.world.verifier()).unwrap_err();
    assert!(matches!(*e, RatlsError::ConfigDigestNotAttested), "{e}");
}

#[test]
fn platform_mismatch_fails() {
    let mut s = Setup::new();
    s.entry.platform = "sev-snp".into();
    let e = run(&s, s.world.verifier()).unwrap_err();
    assert!(matches!(*e, RatlsError::PlatformMismatch), "{e}");
}

#[test]
fn stale_evidence_and_expired_certificates_fail() {
    // Evidence collected two windows before the certificate was issued.
    let mut s = Setup::new();
    s.attester.collected_at = T0 - 2 * WINDOW.as_secs();
    let e = run(&s, s.world.verifier()).unwrap_err();
    assert!(matches!(*e, RatlsError::StaleEvidence), "{e}");

    // Evidence claiming a future time.
    let mut s = Setup::new();
    s.attester.collected_at = T0 + 10 * 3600;
    let e = run(&s, s.world.verifier()).unwrap_err();
    assert!(matches!(*e, RatlsError::EvidenceFromFuture), "{e}");

    // A certificate past its notAfter.
    let mut s = Setup::new();
    s.verify_at = T0 + WINDOW.as_secs() + 1;
    let e = run(&s, s.world.verifier()).unwrap_err();
    assert!(matches!(*e, RatlsError::CertificateExpired), "{e}");

    // A certificate from the future (beyond skew).
    let mut s = Setup::new();
    s.verify_at = T0 - 3600;
    let e = run(&s, s.world.verifier()).unwrap_err();
    assert!(matches!(*e, RatlsError::CertificateNotYetValid), "{e}");
}

#[test]
fn certificate_lifetime_longer_than_window_fails() {
    let s = Setup::new();
    let cred = NodeCredential::issue(
        &s.attester,
        None,
        &s.entry.bundle(&s.world.ledger),
        at(T0),
        WINDOW * 2,
    )
    .unwrap();
    let config = server_config(
        Arc::new(NodeCertResolver::new(&cred)),
        ManualClock::new(at(T0)),
    )
    .unwrap();
    let (r, _, outcome) = handshake_with(s.world.verifier(), config, T0 + 60);
    assert!(r.is_err());
    assert!(matches!(
        *outcome.error().unwrap(),
        RatlsError::CertificateLifetimeTooLong
    ));
}

#[test]
fn ledger_entry_validity_enforced() {
    let mut s = Setup::new();
    s.entry.valid_until = T0 - 1;
    let e = run(&s, s.world.verifier()).unwrap_err();
    assert!(matches!(*e, RatlsError::LedgerEntryExpired), "{e}");
    let mut s = Setup::new();
    s.entry.valid_from = T0 + 3600;
    let e = run(&s, s.world.verifier()).unwrap_err();
    assert!(matches!(*e, RatlsError::LedgerEntryNotYetValid), "{e}");
}

/// Serves a fixed certificate chain with a fixed key, whether or not they match.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);
impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

fn attacker_config(cert: CertificateDer<'static>, key: &rcgen::KeyPair) -> Arc<ServerConfig> {
    let der = key.serialize_der();
    let signing = rustls::crypto::ring::sign::any_ecdsa_type(&PrivateKeyDer::Pkcs8(
        PrivatePkcs8KeyDer::from(der.as_slice()),
    ))
    .unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(FixedCert(Arc::new(CertifiedKey::new(
            vec![cert],
            signing,
        )))));
    Arc::new(config)
}

/// The id-pe-cmw extension value of a genuine node certificate.
fn cmw_extension(cert: &CertificateDer<'_>) -> Vec<u8> {
    use x509_cert::der::Decode;
    let c = x509_cert::Certificate::from_der(cert.as_ref()).unwrap();
    let oid = x509_cert::der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.35");
    c.tbs_certificate()
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id == oid)
        .unwrap()
        .extn_value
        .as_bytes()
        .to_vec()
}

#[test]
fn swapped_certificate_with_copied_extension_fails() {
    // A man in the middle (for example the gateway) copies the genuine node's
    // evidence and bundle into a certificate for a key it holds.
    let s = Setup::new();
    let genuine = s.credential();
    let ext = cmw_extension(genuine.certificate());
    let mitm_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![NODE_SERVER_NAME.to_owned()]).unwrap();
    params.not_before = time::OffsetDateTime::from_unix_timestamp(T0 as i64).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp((T0 + 600) as i64).unwrap();
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            &cmw::ID_PE_CMW,
            ext,
        ));
    let forged = params.self_signed(&mitm_key).unwrap().der().clone();
    let (r, _, outcome) = handshake_with(
        s.world.verifier(),
        attacker_config(forged, &mitm_key),
        T0 + 60,
    );
    let e = r.unwrap_err();
    assert!(matches!(
        RatlsError::from_rustls(&e),
        Some(RatlsError::ReportDataMismatch(
            ReportDataHalf::CertificateKey
        ))
    ));
    assert!(matches!(
        *outcome.error().unwrap(),
        RatlsError::ReportDataMismatch(ReportDataHalf::CertificateKey)
    ));
}

#[test]
fn replayed_genuine_certificate_without_its_key_fails_the_signature_check() {
    // The attacker presents the genuine certificate byte for byte, so every
    // certificate-level check passes; only the TLS 1.3 CertificateVerify
    // signature, made with the attacker's key, can catch it.
    let s = Setup::new();
    let genuine = s.credential();
    let attacker_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let (r, client, outcome) = handshake_with(
        s.world.verifier(),
        attacker_config(genuine.certificate().clone(), &attacker_key),
        T0 + 60,
    );
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)
        ),
        "{e:?}"
    );
    assert!(matches!(
        *outcome.error().unwrap(),
        RatlsError::HandshakeSignatureInvalid
    ));
    assert!(client.is_handshaking());
    assert!(outcome.take_verified(genuine.certificate()).is_none());
}

#[test]
fn certificate_without_extension_fails() {
    let s = Setup::new();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![NODE_SERVER_NAME.to_owned()]).unwrap();
    params.not_before = time::OffsetDateTime::from_unix_timestamp(T0 as i64).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp((T0 + 600) as i64).unwrap();
    let plain = params.self_signed(&key).unwrap().der().clone();
    let (r, _, outcome) = handshake_with(s.world.verifier(), attacker_config(plain, &key), T0 + 60);
    assert!(r.is_err());
    assert!(matches!(
        *outcome.error().unwrap(),
        RatlsError::MissingCmwExtension
    ));
}

#[test]
fn gpu_evidence_is_bound_and_verified() {
    let mut s = Setup::new();
    let gpu = GpuEvidence {
        media_type: GPU_TYPE.into(),
        evidence: gpu_evidence(&s.world.gpu_vendor, b"H100 SPDM measurement report"),
    };
    s.gpu = Some(gpu.clone());

    // Without a GPU verifier the client refuses (fail closed).
    let e = run(&s, s.world.verifier()).unwrap_err();
    assert!(matches!(*e, RatlsError::GpuVerifierMissing), "{e}");

    let v = s.world.verifier().with_gpu_verifier(s.world.gpu_verifier());
    let node = run(&s, v.clone()).unwrap();
    assert!(node.gpu_attested());

    // CPU evidence that binds the key but names other GPU evidence than the
    // one stapled (a host swapping in a different GPU's report).
    struct GpuSwap<'a>(&'a TestAttester, [u8; 32]);
    impl Attester for GpuSwap<'_> {
        fn media_type(&self) -> &str {
            self.0.media_type()
        }
        fn attest(&self, rd: &[u8; 64]) -> Result<Vec<u8>, ExternalError> {
            let mut swapped = *rd;
            swapped[32..].copy_from_slice(&self.1);
            self.0.attest(&swapped)
        }
    }
    let other = gpu_evidence(&s.world.gpu_vendor, b"another GPU");
    let any = BoundValidity {
        not_before: 0,
        not_after: 0,
    };
    let other_half: [u8; 32] = report_data(b"", any, Some(&other))[32..]
        .try_into()
        .unwrap();
    let cred = NodeCredential::issue(
        &GpuSwap(&s.attester, other_half),
        Some(&gpu),
        &s.entry.bundle(&s.world.ledger),
        at(T0),
        WINDOW,
    )
    .unwrap();
    let config = server_config(
        Arc::new(NodeCertResolver::new(&cred)),
        ManualClock::new(at(T0)),
    )
    .unwrap();
    let (r, _, outcome) = handshake_with(v.clone(), config, T0 + 60);
    assert!(r.is_err());
    assert!(matches!(
        *outcome.error().unwrap(),
        RatlsError::ReportDataMismatch(ReportDataHalf::GpuEvidence)
    ));

    // GPU evidence signed by a wrong vendor.
    let mut s3 = Setup::new();
    s3.gpu = Some(GpuEvidence {
        media_type: GPU_TYPE.into(),
        evidence: gpu_evidence(&ed25519_dalek::SigningKey::from_bytes(&[7; 32]), b"fake"),
    });
    let e = run(&s3, v.clone()).unwrap_err();
    assert!(matches!(*e, RatlsError::GpuEvidenceRejected(_)), "{e}");

    // Policy requiring a GPU refuses a CPU-only node.
    let mut policy = NodePolicy::new(WINDOW);
    policy.require_gpu = true;
    let strict = NodeVerifier::new(
        policy,
        Arc::new(TestEvidenceVerifier {
            vendor: s.world.vendor.verifying_key(),
        }),
        Arc::new(TestInclusionVerifier {
            ledger: s.world.ledger.verifying_key(),
        }),
    );
    let e = run(&Setup::new(), strict).unwrap_err();
    assert!(matches!(*e, RatlsError::GpuEvidenceMissing), "{e}");
}

#[test]
fn refresher_schedules_within_the_window() {
    let s = Setup::new();
    let r = CertRefresher::new(WINDOW);
    assert_eq!(r.lifetime(), WINDOW);
    let cred = NodeCredential::issue(
        &s.attester,
        None,
        &s.entry.bundle(&s.world.ledger),
        at(T0),
        r.lifetime(),
    )
    .unwrap();
    assert_eq!(cred.not_after(), at(T0 + 3600));
    assert_eq!(r.refresh_at(&cred), at(T0 + 2700));
    assert!(!r.is_due(&cred, at(T0)));
    assert!(!r.is_due(&cred, at(T0 + 2699)));
    assert!(r.is_due(&cred, at(T0 + 2700)));
    assert!(r.is_due(&cred, at(T0 - 10)));
    // Each credential has its own key.
    let again = NodeCredential::issue(
        &s.attester,
        None,
        &s.entry.bundle(&s.world.ledger),
        at(T0),
        r.lifetime(),
    )
    .unwrap();
    assert_ne!(again.certificate(), cred.certificate());
    assert!(NodeCredential::issue(&s.attester, None, b"", at(T0), Duration::ZERO).is_err());
}

#[test]
fn resolver_serves_the_refreshed_credential() {
    let s = Setup::new();
    let first = s.credential();
    let resolver = Arc::new(NodeCertResolver::new(&first));
    let mut later = Setup::new();
    later.issue_at = T0 + 2700;
    later.attester.collected_at = T0 + 2700;
    let second = later.credential();
    resolver.install(&second);
    let config = server_config(Arc::clone(&resolver), ManualClock::new(at(T0 + 2800))).unwrap();
    let (r, client, outcome) = handshake_with(s.world.verifier(), config, T0 + 3700);
    r.unwrap();
    assert_eq!(
        &client.peer_certificates().unwrap()[0],
        second.certificate()
    );
    assert!(outcome.take_verified(second.certificate()).is_some());
}

#[test]
fn mutual_ratls_between_nodes() {
    let s = Setup::new();
    let server_cred = s.credential();
    let client_cred = s.credential();
    let clock = ManualClock::new(at(T0 + 60));
    let (mut client, client_outcome) = client_connection(
        s.world.verifier(),
        Some(Arc::new(NodeCertResolver::new(&client_cred))),
        Arc::clone(&clock),
    )
    .unwrap();
    let (mut server, server_outcome) = mutual_server_connection(
        Arc::new(NodeCertResolver::new(&server_cred)),
        s.world.verifier(),
        Arc::clone(&clock),
    )
    .unwrap();
    pump(&mut client, &mut server).unwrap();
    assert!(!server.is_handshaking());
    let peer = server.peer_certificates().unwrap()[0].clone();
    assert_eq!(&peer, client_cred.certificate());
    assert!(server_outcome.take_verified(&peer).is_some());
    assert!(
        client_outcome
            .take_verified(server_cred.certificate())
            .is_some()
    );

    // A calling node with an unlisted measurement is refused by the server.
    let mut bad = Setup::new();
    bad.attester.measurement = measurement(0x99);
    let bad_cred = bad.credential();
    let (mut client, _) = client_connection(
        s.world.verifier(),
        Some(Arc::new(NodeCertResolver::new(&bad_cred))),
        Arc::clone(&clock),
    )
    .unwrap();
    let (mut server, server_outcome) = mutual_server_connection(
        Arc::new(NodeCertResolver::new(&server_cred)),
        s.world.verifier(),
        clock,
    )
    .unwrap();
    assert!(pump(&mut client, &mut server).is_err());
    assert!(matches!(
        *server_outcome.error().unwrap(),
        RatlsError::MeasurementNotListed { .. }
    ));

    // A caller without any certificate is refused too.
    let (mut client, _) =
        client_connection(s.world.verifier(), None, ManualClock::new(at(T0 + 60))).unwrap();
    let (mut server, _) = mutual_server_connection(
        Arc::new(NodeCertResolver::new(&server_cred)),
        s.world.verifier(),
        ManualClock::new(at(T0 + 60)),
    )
    .unwrap();
    assert!(pump(&mut client, &mut server).is_err());
    assert!(server.is_handshaking() || server.peer_certificates().is_none());
}

#[test]
fn only_tls13_and_ephemeral_groups_are_offered() {
    let p = provider();
    assert!(
        p.cipher_suites
            .iter()
            .all(|s| s.version() == &rustls::version::TLS13)
    );
    let names: Vec<_> = p.kx_groups.iter().map(|g| g.name()).collect();
    assert_eq!(
        names,
        vec![rustls::NamedGroup::X25519, rustls::NamedGroup::secp256r1]
    );
}

#[test]
fn gpu_evidence_embedded_in_cpu_evidence_is_bound() {
    // Formats like the confide-attest container carry GPU evidence inside the
    // CPU evidence; the verifier reports the digest it verified.
    struct Embedding<'a>(&'a TestAttester, [u8; 32]);
    impl Attester for Embedding<'_> {
        fn media_type(&self) -> &str {
            self.0.media_type()
        }
        fn attest(&self, rd: &[u8; 64]) -> Result<Vec<u8>, ExternalError> {
            let mut with_gpu = *rd;
            with_gpu[32..].copy_from_slice(&self.1);
            self.0.attest(&with_gpu)
        }
    }
    let s = Setup::new();
    let digest = [0x3c; 32];
    let cred = NodeCredential::issue(
        &Embedding(&s.attester, digest),
        None,
        &s.entry.bundle(&s.world.ledger),
        at(T0),
        WINDOW,
    )
    .unwrap();
    let verifier = |reported: Option<[u8; 32]>, require_gpu: bool| {
        let mut policy = NodePolicy::new(WINDOW);
        policy.require_gpu = require_gpu;
        NodeVerifier::new(
            policy,
            Arc::new(EmbeddedGpuVerifier {
                inner: TestEvidenceVerifier {
                    vendor: s.world.vendor.verifying_key(),
                },
                digest: reported,
            }),
            Arc::new(TestInclusionVerifier {
                ledger: s.world.ledger.verifying_key(),
            }),
        )
    };
    let config = || {
        server_config(
            Arc::new(NodeCertResolver::new(&cred)),
            ManualClock::new(at(T0)),
        )
        .unwrap()
    };
    let (r, client, outcome) = handshake_with(verifier(Some(digest), true), config(), T0 + 60);
    r.unwrap();
    let peer = client.peer_certificates().unwrap()[0].clone();
    assert!(outcome.take_verified(&peer).unwrap().gpu_attested());

    // A verifier that vouches for no embedded GPU evidence: the GPU half fails.
    let (r, _, outcome) = handshake_with(verifier(None, false), config(), T0 + 60);
    assert!(r.is_err());
    assert!(matches!(
        *outcome.error().unwrap(),
        RatlsError::ReportDataMismatch(ReportDataHalf::GpuEvidence)
    ));
    // A different embedded digest fails too.
    let (r, _, _) = handshake_with(verifier(Some([0x3d; 32]), false), config(), T0 + 60);
    assert!(r.is_err());
}

/// A certificate for `key` whose X.509 validity is `x509`, carrying evidence over
/// REPORT_DATA bound to `attested` and a validity record saying `recorded` (what a node
/// whose own code misstates its certificate's dates would present).
fn certificate_with_validity(
    s: &Setup,
    key: &rcgen::KeyPair,
    x509: BoundValidity,
    attested: BoundValidity,
    recorded: BoundValidity,
) -> CertificateDer<'static> {
    use rcgen::PublicKeyData as _;
    let spki = key.subject_public_key_info();
    let evidence = s
        .attester
        .attest(&report_data(&spki, attested, None))
        .unwrap();
    let collection = cmw::NodeCollection {
        cpu: cmw::Wrapped {
            media_type: s.attester.media_type().to_owned(),
            value: evidence,
        },
        gpu: None,
        ledger_bundle: s.entry.bundle(&s.world.ledger),
        validity: recorded,
    };
    let odt = |t: u64| time::OffsetDateTime::from_unix_timestamp(t as i64).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![NODE_SERVER_NAME.to_owned()]).unwrap();
    params.not_before = odt(x509.not_before);
    params.not_after = odt(x509.not_after);
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            &cmw::ID_PE_CMW,
            collection.to_extension_value(),
        ));
    params.self_signed(key).unwrap().der().clone()
}

/// Issue 13, finding 6: the certificate's validity is bound into REPORT_DATA, and a
/// certificate whose X.509 dates differ from the attested ones is refused.
#[test]
fn certificate_validity_differing_from_the_bound_one_fails() {
    let s = Setup::new();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let bound = BoundValidity {
        not_before: T0,
        not_after: T0 + 600,
    };
    let handshake = |cert: CertificateDer<'static>| {
        let (r, _, outcome) =
            handshake_with(s.world.verifier(), attacker_config(cert, &key), T0 + 60);
        (r.is_ok(), outcome.error().map(|e| e.to_string()))
    };
    // Control: the same construction with consistent dates is accepted, so each refusal
    // below is caused by the dates alone.
    let ok = certificate_with_validity(&s, &key, bound, bound, bound);
    assert_eq!(handshake(ok), (true, None));

    // The evidence binds [T0, T0+600], the certificate says it lives until T0+3600:
    // a longer life than attested.
    let later = BoundValidity {
        not_after: T0 + 3600,
        ..bound
    };
    let cert = certificate_with_validity(&s, &key, later, bound, bound);
    let (r, _, outcome) = handshake_with(s.world.verifier(), attacker_config(cert, &key), T0 + 60);
    assert!(r.is_err());
    assert!(matches!(
        *outcome.error().unwrap(),
        RatlsError::ValidityMismatch
    ));
    // A notBefore moved forward (to look newer than attested).
    let newer = BoundValidity {
        not_before: T0 + 30,
        ..bound
    };
    let cert = certificate_with_validity(&s, &key, newer, bound, bound);
    let (r, _, outcome) = handshake_with(s.world.verifier(), attacker_config(cert, &key), T0 + 60);
    assert!(r.is_err());
    assert!(matches!(
        *outcome.error().unwrap(),
        RatlsError::ValidityMismatch
    ));
    // The validity record rewritten to match the new dates: the evidence no longer
    // binds what the record claims, so the binding itself fails.
    let cert = certificate_with_validity(&s, &key, newer, bound, newer);
    let (r, _, outcome) = handshake_with(s.world.verifier(), attacker_config(cert, &key), T0 + 60);
    assert!(r.is_err());
    assert!(matches!(
        *outcome.error().unwrap(),
        RatlsError::ReportDataMismatch(ReportDataHalf::CertificateKey)
    ));
}

/// The client's maximum certificate age, judged from the attested notBefore.
#[test]
fn certificate_older_than_the_policy_allows_fails() {
    let mut s = Setup::new();
    let mut policy = NodePolicy::new(WINDOW);
    policy.max_certificate_age = Duration::from_secs(600);
    let verifier = || {
        NodeVerifier::new(
            policy,
            Arc::new(TestEvidenceVerifier {
                vendor: s.world.vendor.verifying_key(),
            }),
            Arc::new(TestInclusionVerifier {
                ledger: s.world.ledger.verifying_key(),
            }),
        )
    };
    // Ten minutes old: accepted.
    s.verify_at = T0 + 600;
    run(&s, verifier()).unwrap();
    // Older, though well within its notAfter and the freshness window: refused.
    s.verify_at = T0 + 601;
    let e = run(&s, verifier()).unwrap_err();
    assert!(matches!(*e, RatlsError::CertificateTooOld), "{e}");
    // The default maximum age is the freshness window.
    assert_eq!(NodePolicy::new(WINDOW).max_certificate_age, WINDOW);
}
