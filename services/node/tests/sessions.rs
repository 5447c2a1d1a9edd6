//! The node's session service on real loopback sockets with the real model: a verified
//! session streams a summary; every tampered node fails the client's RA-TLS checks
//! before the client can send any application data; replayed records kill the session.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use confide_attest::{AttestRequest, Binding, Evidence};
use confide_attest_sim::{SimulatedAttester, SimulatedVendor};
use confide_engine::{EmbeddedEngine, Engine, LoadOptions};
use confide_node::adapters::EvidenceAttester;
use confide_node::ledger::ReleaseChoice;
use confide_node::{
    BundleSource, EngineChoice, NodeOptions, NodePlatform, NodeService, ReleaseFacts,
    ServiceSettings,
};
use confide_ratls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use confide_ratls::rustls::sign::CertifiedKey;
use confide_ratls::{
    ExternalError, ManualClock, NodeCertResolver, NodeCredential, RatlsError,
    verify_certificate_signature,
};
use confide_session::SessionError;
use confide_session::receipt::ReceiptBody;

const MEASUREMENT: [u8; 48] = [0x5a; 48];
/// The configuration digest the test nodes bind and the test releases list.
const CONFIG: [u8; 32] = [3; 32];

struct World {
    vendor_dir: tempfile::TempDir,
    engine: Arc<dyn Engine>,
    model_digest: [u8; 32],
}

async fn world() -> World {
    let vendor_dir = tempfile::tempdir().unwrap();
    SimulatedVendor::load_or_create(&vendor_dir.path().join("v")).unwrap();
    let engine = EmbeddedEngine::open(&model_path(), LoadOptions::default())
        .await
        .unwrap();
    let model_digest = engine.info().sha256.unwrap();
    World {
        vendor_dir,
        engine: Arc::new(engine),
        model_digest,
    }
}

impl World {
    fn vendor(&self) -> SimulatedVendor {
        SimulatedVendor::load(&self.vendor_dir.path().join("v")).unwrap()
    }
    fn root(&self) -> Vec<u8> {
        self.vendor().root_der().to_vec()
    }
    fn attester(&self, measurement: [u8; 48], model_digest: [u8; 32]) -> EvidenceAttester {
        EvidenceAttester::new(
            Arc::new(SimulatedAttester::new(self.vendor(), measurement)),
            Binding {
                model_digest,
                config_digest: CONFIG,
            },
        )
    }
}

/// Serves a NodeService with `tls` on loopback; returns its URL.
async fn serve(
    w: &World,
    resolver: Arc<NodeCertResolver>,
    clock: Arc<ManualClock>,
) -> (String, Arc<NodeService>) {
    let svc = NodeService::new(
        resolver,
        clock,
        Arc::clone(&w.engine),
        ServiceSettings {
            idle_timeout: Duration::from_secs(2),
            max_tokens: 48,
            ..ServiceSettings::default()
        },
        "simulated",
        1,
        ReleaseFacts {
            measurement: MEASUREMENT.to_vec(),
            model_digest: Some(w.model_digest.to_vec()),
            config_digest: Some(CONFIG.to_vec()),
        },
    );
    let app = svc.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), svc)
}

/// A credential from `attester` stapling the bundle of `ledger` entry `index`, valid from
/// now for `lifetime`.
fn credential(
    attester: &dyn confide_ratls::Attester,
    ledger: &Ledger,
    index: u64,
    lifetime: Duration,
) -> NodeCredential {
    let bundle = confide_node::ledger::build_bundle(&ledger.entries, index, &ledger.note)
        .unwrap()
        .encode()
        .unwrap();
    NodeCredential::issue(attester, None, &bundle, tls_now(), lifetime).unwrap()
}

async fn node_with(
    w: &World,
    attester: &dyn confide_ratls::Attester,
    ledger: &Ledger,
    index: u64,
) -> (String, Arc<NodeService>) {
    let cred = credential(attester, ledger, index, Duration::from_secs(3600));
    let clock = ManualClock::new(tls_now());
    serve(w, Arc::new(NodeCertResolver::new(&cred)), clock).await
}

fn ratls_error(e: &SessionError) -> &RatlsError {
    match e {
        SessionError::Verification(r) => r,
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

/// The client must refuse to send application data after a failed handshake.
fn assert_no_app_data(c: &mut Client) {
    assert!(!c.engine.is_established());
    assert!(c.engine.send(&summarize(8).to_frame().unwrap()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_session_streams_and_replays_fail_closed() {
    let w = world().await;
    let ledger = Ledger::new(&[
        release(&[0x11; 48], w.model_digest, CONFIG), // another release
        release(&MEASUREMENT, w.model_digest, CONFIG),
    ]);
    let att = w.attester(MEASUREMENT, w.model_digest);
    let (url, svc) = node_with(&w, &att, &ledger, 1).await;

    let mut c = Client::new(&url, verifier(&w.root(), &ledger, 3600));
    c.open().await.unwrap();
    assert!(c.engine.is_established());
    let node = c.engine.verified_node().unwrap().clone();
    assert_eq!(node.measurement(), &MEASUREMENT[..]);
    assert_eq!(node.ledger_index(), 1);
    assert_eq!(node.model_digest(), Some(&w.model_digest[..]));

    let a = c.request(&summarize(24)).await.unwrap();
    assert!(a.end.error.is_none(), "{:?}", a.end);
    // Text leaves on the node's tick (docs/sessions.md, "Traffic shape"): a short
    // answer generated within one tick is one chunk.
    assert!(
        a.chunks >= 1,
        "expected a streamed answer, got {} chunks",
        a.chunks
    );
    assert!(!a.text.trim().is_empty());
    assert!(a.first_chunk.unwrap() < a.end_at);

    // The receipt: signed by the key of the certificate this session verified, naming
    // this request, this answer and this release.
    let receipt = a.end.receipt.clone().expect("a receipt with the answer");
    let body = ReceiptBody::parse(&receipt.body).unwrap();
    assert_eq!(body.request_sha256, a.request_sha256);
    assert_eq!(body.response_sha256, a.response_sha256);
    assert_eq!(body.ledger_index, 1);
    assert_eq!(body.measurement, MEASUREMENT.to_vec());
    assert_eq!(body.model_digest.as_deref(), Some(&w.model_digest[..]));
    assert_eq!(&body.certificate_sha256, node.certificate_sha256());
    let cert = c.engine.peer_certificate().unwrap().clone();
    let sig = hex::decode(&receipt.signature).unwrap();
    verify_certificate_signature(&cert, receipt.body.as_bytes(), &sig).unwrap();
    // The device's own check (confide_sdk::receipt::check_in_session) accepts exactly
    // this receipt, and refuses it when any one thing differs.
    {
        use confide_sdk::receipt::{Expected, ReceiptError, check_in_session};
        let now = tls_now().as_secs();
        let expected = |request, response, verified_at, now| Expected {
            request_sha256: request,
            response_sha256: response,
            node: &node,
            verified_at,
            now,
        };
        let check = |e: &Expected<'_>, body: &str, sig: &str| check_in_session(body, sig, &cert, e);
        let good = expected(a.request_sha256, a.response_sha256, now, now);
        check(&good, &receipt.body, &receipt.signature).unwrap();
        let mismatch = |r: Result<_, ReceiptError>| match r {
            Err(ReceiptError::Mismatch { field, .. }) => field,
            other => panic!("expected a mismatch, got {other:?}"),
        };
        assert_eq!(
            mismatch(check(
                &expected([0; 32], a.response_sha256, now, now),
                &receipt.body,
                &receipt.signature
            )),
            "request digest"
        );
        assert_eq!(
            mismatch(check(
                &expected(a.request_sha256, [0; 32], now, now),
                &receipt.body,
                &receipt.signature
            )),
            "answer digest"
        );
        // A receipt from long before this session, or from the future.
        assert!(matches!(
            check(
                &expected(a.request_sha256, a.response_sha256, now + 3600, now + 3600),
                &receipt.body,
                &receipt.signature
            ),
            Err(ReceiptError::Time)
        ));
        assert!(matches!(
            check(
                &expected(a.request_sha256, a.response_sha256, now - 7200, now - 3600),
                &receipt.body,
                &receipt.signature
            ),
            Err(ReceiptError::Time)
        ));
        // A changed signature, or a body not canonical.
        let mut bad_sig = receipt.signature.clone();
        bad_sig.replace_range(20..22, if &bad_sig[20..22] == "00" { "11" } else { "00" });
        assert!(matches!(
            check(&good, &receipt.body, &bad_sig),
            Err(ReceiptError::BadSignature)
        ));
        assert!(matches!(
            check(
                &good,
                &receipt.body.replace("time ", "time  "),
                &receipt.signature
            ),
            Err(ReceiptError::Malformed(_))
        ));
    }
    let forged = receipt.body.replace("ledger-index 1", "ledger-index 0");
    assert!(matches!(
        verify_certificate_signature(&cert, forged.as_bytes(), &sig),
        Err(RatlsError::SignatureInvalid)
    ));

    // The node refreshes its certificate mid-session: this session's receipts are still
    // signed with the key its handshake presented.
    let fresh = credential(
        &w.attester(MEASUREMENT, w.model_digest),
        &ledger,
        1,
        Duration::from_secs(3600),
    );
    svc.resolver().install(&fresh);
    // ...and the node now staples another entry (say, the release logged again): this
    // session's receipts still name the index its certificate staples.
    svc.set_release_index(0);
    let b = c.request(&summarize(8)).await.unwrap();
    let r2 = b.end.receipt.clone().unwrap();
    let body2 = ReceiptBody::parse(&r2.body).unwrap();
    assert_eq!(&body2.certificate_sha256, node.certificate_sha256());
    assert_eq!(body2.ledger_index, 1, "the session's own stapled release");
    verify_certificate_signature(
        &cert,
        r2.body.as_bytes(),
        &hex::decode(&r2.signature).unwrap(),
    )
    .unwrap();
    assert_eq!(body2.response_sha256, b.response_sha256);

    // Replaying the request's records in the same session: the AEAD sequence number
    // no longer matches (RFC 8446 5.3), the node answers with an alert and forgets
    // the session; no second generation runs.
    let (status, alert) = c.post_raw(c.sent[0].clone()).await;
    assert_eq!(status, 200);
    // At most one encrypted alert record (5-byte header, 2-byte alert, content type,
    // 16-byte tag): no chunk of a second answer.
    assert!(
        alert.len() <= 24,
        "the node must not answer a replay with application data ({} bytes)",
        alert.len()
    );
    let (status, _) = c.post_raw(c.sent[0].clone()).await;
    assert_eq!(status, 404, "session must be gone after a replay");

    // Replaying a whole recorded session (ClientHello, then Finished + request) into
    // a new session id: the node picks fresh keys, the old records do not decrypt.
    let mut r = Client::new(&url, verifier(&w.root(), &ledger, 3600));
    r.hello = c.hello.clone();
    let resp = r
        .http
        .post(format!("{url}/sessions"))
        .header(confide_node::SESSION_ID_HEADER, &r.id)
        .body(c.hello.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let before = svc.session_count();
    let (status, _) = r.post_raw(c.sent[0].clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        svc.session_count(),
        before - 1,
        "replayed session must be dropped"
    );

    // Idle sessions expire.
    let mut idle = Client::new(&url, verifier(&w.root(), &ledger, 3600));
    idle.open().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2600)).await;
    svc.expire_idle();
    let (status, _) = idle.post_raw(vec![23, 3, 3, 0, 1, 0]).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_measurement_fails_before_app_data() {
    let w = world().await;
    let ledger = Ledger::new(&[release(&MEASUREMENT, w.model_digest, CONFIG)]);
    // The node runs another binary than the ledger lists, but staples the listed entry.
    let att = w.attester([0x66; 48], w.model_digest);
    let (url, _) = node_with(&w, &att, &ledger, 0).await;
    let mut c = Client::new(&url, verifier(&w.root(), &ledger, 3600));
    let e = c.open().await.unwrap_err();
    assert!(
        matches!(ratls_error(&e), RatlsError::MeasurementNotListed { .. }),
        "{e:?}"
    );
    assert_no_app_data(&mut c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_digest_differing_from_the_ledger_fails() {
    let w = world().await;
    let ledger = Ledger::new(&[release(&MEASUREMENT, w.model_digest, CONFIG)]);
    let att = w.attester(MEASUREMENT, [0x99; 32]);
    let (url, _) = node_with(&w, &att, &ledger, 0).await;
    let mut c = Client::new(&url, verifier(&w.root(), &ledger, 3600));
    let e = c.open().await.unwrap_err();
    assert!(
        matches!(ratls_error(&e), RatlsError::ModelDigestMismatch),
        "{e:?}"
    );
    assert_no_app_data(&mut c);
}

/// Node options as `confide node serve` builds them, differing only in `max_tokens`.
fn node_options(max_tokens: u32) -> NodeOptions {
    NodeOptions {
        dir: std::path::PathBuf::from("/nonexistent"),
        platform: NodePlatform::Simulated,
        engine: EngineChoice::Embedded(model_path(), confide_engine::LoadOptions::default()),
        bundle: BundleSource::Ledger {
            url: "http://127.0.0.1:9/".into(),
            choice: ReleaseChoice::Auto,
        },
        sim_vendor: None,
        gpu: confide_node::GpuChoice::None,
        sim_faults: Vec::new(),
        dev_allow_writable_cwd: false,
        cert_lifetime: Duration::from_secs(3600),
        settings: ServiceSettings {
            max_tokens,
            ..ServiceSettings::default()
        },
        peer_policy: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_running_another_configuration_than_logged_fails() {
    // The released binary and model, but started with a configuration the release
    // does not list (more tokens per response; an operator-chosen upstream URL is the
    // same case). HOST_DATA binds the running configuration's digest, so the client
    // refuses the node before sending anything.
    let w = world().await;
    let logged = confide_node::node::config_digest(&node_options(48)).unwrap();
    let running = confide_node::node::config_digest(&node_options(4096)).unwrap();
    assert_ne!(logged, running);
    let ledger = Ledger::new(&[release(&MEASUREMENT, w.model_digest, logged)]);
    let att = EvidenceAttester::new(
        Arc::new(SimulatedAttester::new(w.vendor(), MEASUREMENT)),
        Binding {
            model_digest: w.model_digest,
            config_digest: running,
        },
    );
    let (url, _) = node_with(&w, &att, &ledger, 0).await;
    let mut c = Client::new(&url, verifier(&w.root(), &ledger, 3600));
    let e = c.open().await.unwrap_err();
    assert!(
        matches!(ratls_error(&e), RatlsError::ConfigDigestMismatch),
        "{e:?}"
    );
    assert_no_app_data(&mut c);
}

/// Evidence whose REPORT_DATA names some other key than the certificate's.
struct WrongKeyAttester(EvidenceAttester);
impl confide_ratls::Attester for WrongKeyAttester {
    fn media_type(&self) -> &str {
        self.0.media_type()
    }
    fn attest(&self, _rd: &[u8; 64]) -> Result<Vec<u8>, ExternalError> {
        let other = confide_attest::report_data(b"some other SubjectPublicKeyInfo", None);
        self.0.attest(&other)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_not_binding_the_tls_key_fails() {
    let w = world().await;
    let ledger = Ledger::new(&[release(&MEASUREMENT, w.model_digest, CONFIG)]);
    let att = WrongKeyAttester(w.attester(MEASUREMENT, w.model_digest));
    let (url, _) = node_with(&w, &att, &ledger, 0).await;
    let mut c = Client::new(&url, verifier(&w.root(), &ledger, 3600));
    let e = c.open().await.unwrap_err();
    assert!(
        matches!(ratls_error(&e), RatlsError::ReportDataMismatch(_)),
        "{e:?}"
    );
    assert_no_app_data(&mut c);
}

/// Evidence produced two hours ago (signed time in the simulated report).
struct StaleAttester(SimulatedAttester, Binding);
impl confide_ratls::Attester for StaleAttester {
    fn media_type(&self) -> &str {
        confide_node::adapters::EVIDENCE_MEDIA_TYPE
    }
    fn attest(&self, rd: &[u8; 64]) -> Result<Vec<u8>, ExternalError> {
        let ev: Evidence = confide_attest::Attester::attest(
            &self.0,
            &AttestRequest {
                report_data: *rd,
                binding: Some(self.1),
                gpu: None,
                now: confide_attest::UnixTime(now_secs() - 7200),
            },
        )
        .unwrap();
        Ok(ev.encode())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_evidence_fails() {
    let w = world().await;
    let ledger = Ledger::new(&[release(&MEASUREMENT, w.model_digest, CONFIG)]);
    let att = StaleAttester(
        SimulatedAttester::new(w.vendor(), MEASUREMENT),
        Binding {
            model_digest: w.model_digest,
            config_digest: CONFIG,
        },
    );
    let (url, _) = node_with(&w, &att, &ledger, 0).await;
    // Policy: evidence older than 10 minutes is stale.
    let mut c = Client::new(&url, verifier(&w.root(), &ledger, 600));
    let e = c.open().await.unwrap_err();
    match ratls_error(&e) {
        RatlsError::EvidenceRejected(x) => assert!(
            matches!(
                x.downcast_ref::<confide_verify::Error>(),
                Some(confide_verify::Error::Evidence(
                    confide_attest::Error::Stale { .. }
                ))
            ),
            "{x:?}"
        ),
        other => panic!("expected stale evidence, got {other:?}"),
    }
    assert_no_app_data(&mut c);
}

/// A gateway in the middle presenting the node's genuine certificate with its own key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_swapped_by_the_gateway_fails() {
    let w = world().await;
    let ledger = Ledger::new(&[release(&MEASUREMENT, w.model_digest, CONFIG)]);
    let att = w.attester(MEASUREMENT, w.model_digest);
    let genuine = credential(&att, &ledger, 0, Duration::from_secs(3600));
    let mitm_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let der = mitm_key.serialize_der();
    let signer = confide_ratls::rustls::crypto::ring::sign::any_ecdsa_type(&PrivateKeyDer::Pkcs8(
        PrivatePkcs8KeyDer::from(der.as_slice()),
    ))
    .unwrap();
    let swapped = Arc::new(CertifiedKey::new(
        vec![genuine.certificate().clone()],
        signer,
    ));
    let clock = ManualClock::new(tls_now());
    let (url, _) = serve(
        &w,
        Arc::new(NodeCertResolver::from_certified_key(swapped)),
        clock,
    )
    .await;
    let mut c = Client::new(&url, verifier(&w.root(), &ledger, 3600));
    let e = c.open().await.unwrap_err();
    // Every evidence and ledger check passes for the genuine certificate; the TLS 1.3
    // CertificateVerify signature by a key that is not the certificate's does not.
    match &e {
        SessionError::Verification(r) => {
            assert!(
                matches!(**r, RatlsError::HandshakeSignatureInvalid),
                "{r:?}"
            )
        }
        SessionError::Tls(_) => {}
        other => panic!("expected a signature failure, got {other:?}"),
    }
    assert_no_app_data(&mut c);
}

/// A session lives no longer than the certificate its handshake presented: after notAfter
/// the node ends it (`session-unknown`, so a device re-attests) instead of signing
/// receipts that could not be verified offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_with_its_certificate() {
    let w = world().await;
    let ledger = Ledger::new(&[release(&MEASUREMENT, w.model_digest, CONFIG)]);
    let att = w.attester(MEASUREMENT, w.model_digest);
    let cred = credential(&att, &ledger, 0, Duration::from_secs(2));
    let (url, svc) = serve(
        &w,
        Arc::new(NodeCertResolver::new(&cred)),
        ManualClock::new(tls_now()),
    )
    .await;
    let mut c = Client::new(&url, verifier(&w.root(), &ledger, 3600));
    c.open().await.unwrap();
    assert_eq!(svc.session_count(), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = c.post_raw(vec![23, 3, 3, 0, 1, 0]).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("session-unknown"));
    assert_eq!(svc.session_count(), 0);
}
