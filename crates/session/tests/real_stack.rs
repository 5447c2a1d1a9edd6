//! The session engines over the real attestation and ledger code (see `real/mod.rs`).
#![allow(clippy::unwrap_used)]

mod real;

use std::sync::Arc;

use confide_ratls::RatlsError;
use confide_session::{ClientEngine, Frame, FrameKind, SessionError, SessionLimits};
use real::*;

/// Runs a session; on success exchanges one request and one response.
fn session(ledger: &Ledger, attester: &SimAttester, bundle_index: u64) -> Result<(), SessionError> {
    let mut s = node(attester, &ledger.bundle(bundle_index));
    let mut c =
        ClientEngine::new(ledger.verifier(), SessionLimits::default(), at(T0 + 60)).unwrap();
    assert!(matches!(
        c.send(&Frame::new(FrameKind::Request, b"too early".to_vec())),
        Err(SessionError::NotEstablished)
    ));
    let r = pump(&mut c, &mut s);
    if r.is_err() {
        assert!(s.recv().is_none() && !c.is_established());
        return r;
    }
    let node = c.verified_node().unwrap();
    assert_eq!(node.platform(), "simulated");
    assert_eq!(node.measurement(), &MEASUREMENT[..]);
    assert_eq!(node.model_digest(), Some(&MODEL[..]));
    assert_eq!(node.config_digest(), Some(&CONFIG[..]));
    assert_eq!(node.ledger_index(), bundle_index);
    assert_eq!(node.checkpoint().origin, ORIGIN);
    c.send(&Frame::new(FrameKind::Request, b"summarise".to_vec()))
        .unwrap();
    pump(&mut c, &mut s)?;
    assert_eq!(s.recv().unwrap().payload(), b"summarise");
    s.send(&Frame::new(FrameKind::Response, b"summary".to_vec()))
        .unwrap();
    pump(&mut c, &mut s)?;
    assert_eq!(c.recv().unwrap().payload(), b"summary");
    Ok(())
}

fn cause(r: Result<(), SessionError>) -> Arc<RatlsError> {
    match r {
        Err(SessionError::Verification(c)) => c,
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

#[test]
fn simulated_node_with_logged_release_is_accepted() {
    let ledger = Ledger::new(&[release([0x01; 48], MODEL), release(MEASUREMENT, MODEL)]);
    session(&ledger, &honest_attester(), 1).unwrap();
}

#[test]
fn unlisted_measurement_is_refused() {
    // The log lists only another build; the node staples the nearest entry it has.
    let ledger = Ledger::new(&[release([0x01; 48], MODEL)]);
    let c = cause(session(&ledger, &honest_attester(), 0));
    assert!(matches!(*c, RatlsError::MeasurementNotListed { .. }), "{c}");
}

#[test]
fn model_digest_differing_from_the_logged_one_is_refused() {
    let ledger = Ledger::new(&[release(MEASUREMENT, [0x99; 32])]);
    let c = cause(session(&ledger, &honest_attester(), 0));
    assert!(matches!(*c, RatlsError::ModelDigestMismatch), "{c}");
}

#[test]
fn config_digest_differing_from_the_logged_one_is_refused() {
    // The released binary and model under an operator-chosen configuration (say
    // `--upstream http://attacker/`): HOST_DATA binds another config digest.
    let ledger = Ledger::new(&[release(MEASUREMENT, MODEL)]);
    let mut a = honest_attester();
    a.binding.config_digest = [0x99; 32];
    let c = cause(session(&ledger, &a, 0));
    assert!(matches!(*c, RatlsError::ConfigDigestMismatch), "{c}");
}

#[test]
fn evidence_not_binding_the_tls_key_is_refused() {
    let ledger = Ledger::new(&[release(MEASUREMENT, MODEL)]);
    let mut a = honest_attester();
    // Another key's digest, no GPU: only the certificate-key binding can catch it.
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&[0x17; 32]);
    a.report_data = Some(rd);
    let c = cause(session(&ledger, &a, 0));
    assert!(
        matches!(
            *c,
            RatlsError::ReportDataMismatch(confide_ratls::ReportDataHalf::CertificateKey)
        ),
        "{c}"
    );
}

#[test]
fn stale_evidence_is_refused() {
    let ledger = Ledger::new(&[release(MEASUREMENT, MODEL)]);
    let mut a = honest_attester();
    a.signed_at = T0 - 2 * WINDOW.as_secs();
    let c = cause(session(&ledger, &a, 0));
    // The attestation policy's own freshness check fires first (typed cause inside).
    let RatlsError::EvidenceRejected(inner) = &*c else {
        panic!("{c}")
    };
    assert!(
        matches!(
            inner.downcast_ref::<confide_verify::Error>(),
            Some(confide_verify::Error::Evidence(
                confide_attest::Error::Stale { .. }
            ))
        ),
        "{inner}"
    );
}

#[test]
fn tampered_ledger_bundle_is_refused() {
    let ledger = Ledger::new(&[release(MEASUREMENT, MODEL)]);
    // A bundle cosigned by too few witnesses for the client's quorum of 2.
    let mut weak = Ledger::new(&[release(MEASUREMENT, MODEL)]);
    weak.witnesses.truncate(1);
    let mut s = node(&honest_attester(), &weak.bundle(0));
    let mut c =
        ClientEngine::new(ledger.verifier(), SessionLimits::default(), at(T0 + 60)).unwrap();
    let c = cause(pump(&mut c, &mut s));
    let RatlsError::InclusionRejected(inner) = &*c else {
        panic!("{c}")
    };
    assert!(
        matches!(
            inner.downcast_ref::<confide_verify::Error>(),
            Some(confide_verify::Error::Ledger(
                confide_release::Error::TooFewCosignatures { .. }
            ))
        ),
        "{inner}"
    );
}

#[test]
fn certificate_swapped_by_the_gateway_is_refused() {
    // The gateway terminates TLS itself, presenting the genuine node's evidence
    // and bundle copied into a certificate for a key it holds.
    use confide_ratls::rustls;
    use x509_cert::der::Decode;

    let ledger = Ledger::new(&[release(MEASUREMENT, MODEL)]);
    let genuine = confide_ratls::NodeCredential::issue(
        &honest_attester(),
        None,
        &ledger.bundle(0),
        at(T0),
        WINDOW,
    )
    .unwrap();
    let cert = x509_cert::Certificate::from_der(genuine.certificate().as_ref()).unwrap();
    let oid = x509_cert::der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.35");
    let ext = cert
        .tbs_certificate()
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id == oid)
        .unwrap()
        .extn_value
        .as_bytes()
        .to_vec();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec![confide_ratls::NODE_SERVER_NAME.to_owned()]).unwrap();
    params.not_before = time::OffsetDateTime::from_unix_timestamp(T0 as i64).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp((T0 + 600) as i64).unwrap();
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            &confide_ratls::cmw::ID_PE_CMW,
            ext,
        ));
    let forged = params.self_signed(&key).unwrap().der().clone();
    let pkcs8 = key.serialize_der();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(confide_ratls::provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![forged],
            rustls::pki_types::PrivateKeyDer::Pkcs8(pkcs8.into()),
        )
        .unwrap();
    let mut gateway = confide_session::ServerEngine::new(
        Arc::new(config),
        confide_ratls::ManualClock::new(at(T0)),
        SessionLimits::default(),
    )
    .unwrap();
    let mut c =
        ClientEngine::new(ledger.verifier(), SessionLimits::default(), at(T0 + 60)).unwrap();
    let err = cause(pump(&mut c, &mut gateway));
    assert!(
        matches!(
            *err,
            RatlsError::ReportDataMismatch(confide_ratls::ReportDataHalf::CertificateKey)
        ),
        "{err}"
    );
    assert!(gateway.recv().is_none());
}
