//! The RA-TLS certificate a node presents, as the client reads it:
//!
//! - The id-pe-cmw extension value (DER OCTET STRING around a CBOR collection): accepted
//!   values re-encode to bytes that decode to the same collection.
//! - Whole certificates: arbitrary DER, and real self-signed certificates (fixed key)
//!   whose CMW extension carries the fuzz input, through every certificate-level check
//!   the client runs (`verify_signed`, with the real evidence and ledger pipelines under
//!   the production policy). Nothing the fuzzer writes can carry a genuine hardware
//!   signature or a logged release, so no input may ever yield a verified node.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use confide_ratls::cmw::NodeCollection;
use confide_ratls::rustls::pki_types::{CertificateDer, UnixTime};
use confide_ratls::{NodePolicy, NodeVerifier};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_790_000_000;
/// id-pe-cmw (draft-ietf-rats-msg-wrap), as crates/ratls uses it.
const ID_PE_CMW: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 35];

struct Fixture {
    key: rcgen::KeyPair,
    verifier: NodeVerifier,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let trust = confide_release::LedgerTrust::new(
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            &[] as &[&str],
            0,
        )
        .expect("ledger trust");
        Fixture {
            key: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key"),
            verifier: NodeVerifier::new(
                NodePolicy::new(Duration::from_secs(3600)),
                Arc::new(confide_verify::EvidencePipeline::new(
                    confide_attest::TrustPolicy::production(),
                )),
                Arc::new(confide_verify::InclusionPipeline::new(trust, None)),
            ),
        }
    })
}

/// DER OCTET STRING header for `n` content bytes.
fn octet_string(content: &[u8]) -> Vec<u8> {
    let n = content.len();
    let mut out = vec![0x04];
    if n < 0x80 {
        out.push(n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn certificate_with(ext_value: Vec<u8>) -> Option<CertificateDer<'static>> {
    let f = fixture();
    let mut params =
        rcgen::CertificateParams::new(vec![confide_ratls::NODE_SERVER_NAME.into()]).ok()?;
    params.not_before = time::OffsetDateTime::from_unix_timestamp(NOW as i64 - 60).ok()?;
    params.not_after = time::OffsetDateTime::from_unix_timestamp(NOW as i64 + 600).ok()?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            ID_PE_CMW, ext_value,
        ));
    Some(params.self_signed(&f.key).ok()?.der().clone())
}

fuzz_target!(|data: &[u8]| {
    let now = UnixTime::since_unix_epoch(Duration::from_secs(NOW));
    if let Ok(c) = NodeCollection::from_extension_value(data) {
        assert_eq!(
            NodeCollection::from_extension_value(&c.to_extension_value()).ok(),
            Some(c)
        );
    }
    if let Ok(c) = NodeCollection::from_cbor(data) {
        assert_eq!(NodeCollection::from_cbor(&c.to_cbor()).ok(), Some(c));
    }

    // Arbitrary DER as the certificate.
    let der = CertificateDer::from(data.to_vec());
    let _ = confide_ratls::certificate_validity(&der);
    let _ = confide_ratls::verify_certificate_signature(&der, b"message", data);
    assert!(
        fixture()
            .verifier
            .verify_signed(&der, b"m", &[0; 64], now)
            .is_err()
    );

    // A well-formed certificate around the input, as the raw extension value and
    // wrapped in an OCTET STRING so the CBOR decoder is reached at once. Kept below the
    // size where certificate generation would dominate the run.
    if data.len() > 4096 {
        return;
    }
    for ext in [data.to_vec(), octet_string(data)] {
        if let Some(cert) = certificate_with(ext) {
            let r = fixture().verifier.verify_signed(&cert, b"m", &[0; 64], now);
            assert!(r.is_err(), "a fuzzed certificate verified");
        }
    }
});
