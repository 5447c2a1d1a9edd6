//! The real RIM re-signed by a test CA (passed through the explicit-root API), so that the
//! chain checks NVIDIA's genuine certificates cannot exercise are reached one at a time:
//! CA basic constraints, path length, key usage, unknown critical extensions.
//!
//! The SignatureValue is computed over a canonical SignedInfo written out *by hand* here
//! (the start tag gains the four namespace declarations in scope, sorted, and empty elements
//! become start/end pairs, C14N 1.1 §2.3), so the positive case is also an independent check
//! of the canonicaliser against NVIDIA's SignedInfo.
#![allow(clippy::unwrap_used)]

use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use der::asn1::{BitString, GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Any, Encode};
use p384::ecdsa::signature::Signer as _;
use p384::ecdsa::{Signature, SigningKey};
use x509_cert::Certificate;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

use confide_rim::{RimError, RimVerifier};

const GOOD: &str = include_str!("../testdata/NV_GPU_DRIVER_GH100_550.144.03.xml");
const T0: u64 = 1_748_736_000;
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

fn key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 48]).unwrap()
}

#[derive(Clone, Copy)]
struct Profile {
    /// Some((ca, path_len)) adds basicConstraints (critical).
    bc: Option<(bool, Option<u8>)>,
    /// keyUsage (critical).
    ku: Option<KeyUsages>,
    /// Add an unknown critical extension.
    unknown_critical: bool,
}

const CA: Profile = Profile {
    bc: Some((true, None)),
    ku: Some(KeyUsages::KeyCertSign),
    unknown_critical: false,
};
const LEAF: Profile = Profile {
    bc: Some((false, None)),
    ku: Some(KeyUsages::DigitalSignature),
    unknown_critical: false,
};

fn cert(
    subject: &str,
    issuer: &str,
    subject_key: &SigningKey,
    issuer_key: &SigningKey,
    p: Profile,
) -> Vec<u8> {
    let alg = AlgorithmIdentifierOwned {
        oid: ECDSA_SHA384,
        parameters: None,
    };
    let mut exts = Vec::new();
    if let Some((ca, path_len_constraint)) = p.bc {
        let v = BasicConstraints {
            ca,
            path_len_constraint,
        };
        exts.push(Extension {
            extn_id: ObjectIdentifier::new_unwrap("2.5.29.19"),
            critical: true,
            extn_value: OctetString::new(v.to_der().unwrap()).unwrap(),
        });
    }
    if let Some(ku) = p.ku {
        exts.push(Extension {
            extn_id: ObjectIdentifier::new_unwrap("2.5.29.15"),
            critical: true,
            extn_value: OctetString::new(KeyUsage(ku.into()).to_der().unwrap()).unwrap(),
        });
    }
    if p.unknown_critical {
        exts.push(Extension {
            extn_id: ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.1"),
            critical: true,
            extn_value: OctetString::new(vec![0x05, 0x00]).unwrap(),
        });
    }
    let point = subject_key.verifying_key().to_encoded_point(false);
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&[1]).unwrap(),
        signature: alg.clone(),
        issuer: Name::from_str(issuer).unwrap(),
        validity: Validity {
            // 2024-01-01 .. 2030-01-01
            not_before: Time::GeneralTime(
                GeneralizedTime::from_unix_duration(Duration::from_secs(1_704_067_200)).unwrap(),
            ),
            not_after: Time::GeneralTime(
                GeneralizedTime::from_unix_duration(Duration::from_secs(1_893_456_000)).unwrap(),
            ),
        },
        subject: Name::from_str(subject).unwrap(),
        subject_public_key_info: SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap("1.2.840.10045.2.1"),
                parameters: Some(Any::from(&ObjectIdentifier::new_unwrap("1.3.132.0.34"))),
            },
            subject_public_key: BitString::from_bytes(point.as_bytes()).unwrap(),
        },
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(exts),
    };
    let sig: Signature = issuer_key.sign(&tbs.to_der().unwrap());
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg,
        signature: BitString::from_bytes(sig.to_der().as_bytes()).unwrap(),
    }
    .to_der()
    .unwrap()
}

/// The good RIM with KeyInfo replaced by `chain` and SignedInfo re-signed by `signer`.
fn resign(chain: &[Vec<u8>], signer: &SigningKey) -> Vec<u8> {
    let si_start = GOOD.find("<ds:SignedInfo>").unwrap();
    let si_end = GOOD.find("</ds:SignedInfo>").unwrap() + "</ds:SignedInfo>".len();
    let si = &GOOD[si_start..si_end];
    // Empty-element tags become start/end pairs ("/>" occurs in no attribute value here).
    let mut expanded = String::new();
    let mut rest = si;
    while let Some(p) = rest.find("/>") {
        let head = &rest[..p];
        let name = head[head.rfind('<').unwrap() + 1..]
            .split_whitespace()
            .next()
            .unwrap();
        expanded.push_str(head);
        expanded.push_str(&format!("></{name}>"));
        rest = &rest[p + 2..];
    }
    expanded.push_str(rest);
    // The apex renders every namespace in scope, sorted by prefix, default first.
    let canonical = expanded.replacen(
        "<ds:SignedInfo>",
        "<ds:SignedInfo xmlns=\"http://standards.iso.org/iso/19770/-2/2015/schema.xsd\" \
         xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" \
         xmlns:ns0=\"http://standards.iso.org/iso/19770/-2/2015/schema.xsd\" \
         xmlns:ns2=\"http://www.w3.org/2001/04/xmlenc#sha384\">",
        1,
    );
    let sig: Signature = signer.sign(canonical.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD;
    let sv_start = GOOD.find("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len();
    let sv_end = GOOD.find("</ds:SignatureValue>").unwrap();
    let ki_start = GOOD.find("<ds:X509Data>").unwrap() + "<ds:X509Data>".len();
    let ki_end = GOOD.find("</ds:X509Data>").unwrap();
    let certs: String = chain
        .iter()
        .map(|c| format!("<ds:X509Certificate>{}</ds:X509Certificate>", b64.encode(c)))
        .collect();
    format!(
        "{}{}{}{}{}",
        &GOOD[..sv_start],
        b64.encode(sig.to_bytes()),
        &GOOD[sv_end..ki_start],
        certs,
        &GOOD[ki_end..]
    )
    .into_bytes()
}

struct Keys {
    root: SigningKey,
    ca: SigningKey,
    leaf: SigningKey,
}

fn keys() -> Keys {
    Keys {
        root: key(1),
        ca: key(2),
        leaf: key(3),
    }
}

fn root_der(k: &Keys) -> Vec<u8> {
    cert("CN=Test RIM Root", "CN=Test RIM Root", &k.root, &k.root, CA)
}

/// leaf ← CA ← root, with the two profiles given.
fn chain(k: &Keys, ca: Profile, leaf: Profile) -> Vec<Vec<u8>> {
    vec![
        cert("CN=Test RIM Signer", "CN=Test RIM CA", &k.leaf, &k.ca, leaf),
        cert("CN=Test RIM CA", "CN=Test RIM Root", &k.ca, &k.root, ca),
        root_der(k),
    ]
}

fn verify(k: &Keys, certs: &[Vec<u8>]) -> Result<confide_rim::VerifiedRim, RimError> {
    RimVerifier::with_root(root_der(k))
        .unwrap()
        .verify(&resign(certs, &k.leaf), T0)
}

#[test]
fn resigned_by_a_test_ca_verifies_with_that_root_only() {
    let k = keys();
    let certs = chain(&k, CA, LEAF);
    let rim = verify(&k, &certs).unwrap();
    assert_eq!(rim.signer_subject(), "CN=Test RIM Signer");
    assert_eq!(rim.version(), "550.144.03");
    // The pinned NVIDIA root does not know this chain.
    assert_eq!(
        confide_rim::verify_rim(&resign(&certs, &k.leaf), T0),
        Err(RimError::UntrustedRoot)
    );
}

#[test]
fn issuer_that_is_not_a_ca() {
    let k = keys();
    let no_bc = Profile { bc: None, ..CA };
    assert_eq!(verify(&k, &chain(&k, no_bc, LEAF)), Err(RimError::NotCa(1)));
    let not_ca = Profile {
        bc: Some((false, None)),
        ..CA
    };
    assert_eq!(
        verify(&k, &chain(&k, not_ca, LEAF)),
        Err(RimError::NotCa(1))
    );
}

#[test]
fn issuer_without_key_cert_sign() {
    let k = keys();
    let ku = Profile {
        ku: Some(KeyUsages::DigitalSignature),
        ..CA
    };
    assert_eq!(verify(&k, &chain(&k, ku, LEAF)), Err(RimError::KeyUsage(1)));
}

#[test]
fn signer_without_digital_signature_or_that_is_a_ca() {
    let k = keys();
    let ku = Profile {
        ku: Some(KeyUsages::KeyCertSign),
        ..LEAF
    };
    assert_eq!(verify(&k, &chain(&k, CA, ku)), Err(RimError::KeyUsage(0)));
    let ca_leaf = Profile {
        bc: Some((true, None)),
        ..LEAF
    };
    assert_eq!(verify(&k, &chain(&k, CA, ca_leaf)), Err(RimError::LeafIsCa));
}

#[test]
fn unknown_critical_extension() {
    let k = keys();
    let odd = Profile {
        unknown_critical: true,
        ..LEAF
    };
    assert_eq!(
        verify(&k, &chain(&k, CA, odd)),
        Err(RimError::UnknownCriticalExtension {
            index: 0,
            oid: "1.3.6.1.4.1.99999.1".into()
        })
    );
}

#[test]
fn path_length_constraint() {
    // leaf ← CA2 ← CA(pathLen 0) ← root: CA may not have a CA below it.
    let k = keys();
    let ca2 = key(4);
    let certs = vec![
        cert("CN=Test RIM Signer", "CN=Test RIM CA2", &k.leaf, &ca2, LEAF),
        cert("CN=Test RIM CA2", "CN=Test RIM CA", &ca2, &k.ca, CA),
        cert(
            "CN=Test RIM CA",
            "CN=Test RIM Root",
            &k.ca,
            &k.root,
            Profile {
                bc: Some((true, Some(0))),
                ..CA
            },
        ),
        root_der(&k),
    ];
    assert_eq!(verify(&k, &certs), Err(RimError::PathLength(2)));
    // With pathLen 1 it is fine.
    let certs = vec![
        certs[0].clone(),
        certs[1].clone(),
        cert(
            "CN=Test RIM CA",
            "CN=Test RIM Root",
            &k.ca,
            &k.root,
            Profile {
                bc: Some((true, Some(1))),
                ..CA
            },
        ),
        root_der(&k),
    ];
    verify(&k, &certs).unwrap();
}

#[test]
fn broken_links() {
    let k = keys();
    // The CA certificate signed by a key other than the root's.
    let mut certs = chain(&k, CA, LEAF);
    certs[1] = cert("CN=Test RIM CA", "CN=Test RIM Root", &k.ca, &key(9), CA);
    assert_eq!(verify(&k, &certs), Err(RimError::UntrustedRoot));
    // The leaf signed by a key other than the CA's.
    let mut certs = chain(&k, CA, LEAF);
    certs[0] = cert(
        "CN=Test RIM Signer",
        "CN=Test RIM CA",
        &k.leaf,
        &key(9),
        LEAF,
    );
    assert_eq!(verify(&k, &certs), Err(RimError::ChainSignature(0)));
    // The leaf naming another issuer than the next certificate.
    let mut certs = chain(&k, CA, LEAF);
    certs[0] = cert(
        "CN=Test RIM Signer",
        "CN=Someone Else",
        &k.leaf,
        &k.ca,
        LEAF,
    );
    assert_eq!(verify(&k, &certs), Err(RimError::IssuerMismatch(0)));
}
