//! Real NVIDIA RIMs (from NVIDIA's attestation SDK test data, see testdata/README.md): the
//! good one verifies and yields its reference values; each negative fixture fails with the
//! error that names what is really wrong with it; and one-thing-at-a-time manipulations of
//! the good file each fail closed with their own variant (or, where canonicalisation says the
//! change is not one, still verify).
#![allow(clippy::unwrap_used)]

use confide_rim::{GpuReference, Mismatch, RimError, RimKind, RimVerifier, compare, verify_rim};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/");
/// 2025-06-01T00:00:00Z: inside the good driver RIM's and both measurement_mismatch RIMs'
/// chains.
const T0: u64 = 1_748_736_000;
/// 2025-01-01T12:00:00Z: inside the one-day window of the "expired" RIM's signer.
const T_EXPIRED_WINDOW: u64 = 1_735_732_800;
/// Signing certificate of the good RIM: 2024-12-30T16:56:50Z .. 2026-12-30T16:56:50Z.
const GOOD_NOT_BEFORE: u64 = 1_735_577_810;
const GOOD_NOT_AFTER: u64 = 1_798_649_810;

const GOOD: &str = "NV_GPU_DRIVER_GH100_550.144.03.xml";
const VBIOS: &str = "NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml";

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{TESTDATA}{name}")).unwrap()
}

fn good() -> String {
    String::from_utf8(read(GOOD)).unwrap()
}

/// Change exactly one thing in the good RIM (the `from` text must occur exactly once).
fn manipulate(from: &str, to: &str) -> Vec<u8> {
    let g = good();
    assert_eq!(g.matches(from).count(), 1, "{from:?} must occur once");
    g.replacen(from, to, 1).into_bytes()
}

fn h(s: &str) -> [u8; 48] {
    let mut out = [0u8; 48];
    hex::decode_to_slice(s, &mut out).unwrap();
    out
}

// ---------------------------------------------------------------- the good RIM

#[test]
fn good_driver_rim_verifies_and_yields_its_reference_values() {
    let rim = verify_rim(&read(GOOD), T0).unwrap();
    assert_eq!(rim.kind(), RimKind::Driver);
    assert_eq!(rim.product(), "GH100");
    assert_eq!(rim.version(), "550.144.03");
    assert_eq!(
        rim.tag_id(),
        "8aa5c875798aecff29b7e3ca2e564ccbda4d47c37276f44f927ffc2ca17d84b1ec3198c69854bbe1556270c1feb493cd"
    );
    assert!(rim.signer_subject().contains("CN=HCC RIM L4 Signer"));
    assert!(rim.signer_subject().contains("O=NVIDIA Corporation"));
    // The leaf is the shortest-lived certificate of the chain.
    assert_eq!(rim.valid_from(), GOOD_NOT_BEFORE);
    assert_eq!(rim.valid_until(), GOOD_NOT_AFTER);
    // The document digest is the signed DigestValue.
    use base64::Engine as _;
    let dv = base64::engine::general_purpose::STANDARD
        .decode("BqNofyPEyR5BQcx1pnATUpWbyeH2cdjeSv3KP13zEoDiST2XE4Y10j0KtdKh2SYx")
        .unwrap();
    assert_eq!(rim.document_digest().as_slice(), dv.as_slice());

    let r = rim.reference();
    // Active indices only: 7 and 21..=40; 0..=6, 8..=20 and 41..=63 are active="False".
    let expected: Vec<u32> = std::iter::once(7).chain(21..=40).collect();
    assert_eq!(r.keys().copied().collect::<Vec<_>>(), expected);
    assert_eq!(
        r[&7],
        vec![h(
            "4a5e4b3d501fe31f91bd8b6f2921b58437704a504dbedba971440e840c938c805612689ae3ac04b1009515a179063d49"
        )]
    );
    // alternatives="2": Hash0 and Hash1 in order.
    assert_eq!(
        r[&32],
        vec![
            h(
                "9f976e82fa30fcc6f82bce2c942ad4707c3df6b76e6295ce4c95cf9bb62a08392571e9fb787f19b31bf0f3f04ba887a6"
            ),
            h(
                "ec056c2b9e3a568261d0092b8aa1dadb19377382174ba5503a3059cabd2dd1ea82bef1b905ab8a3769832092ddefd30d"
            ),
        ]
    );
    assert_eq!(r[&35].len(), 4);
    assert_eq!(r[&36].len(), 3);
    assert_eq!(
        r[&40],
        vec![h(
            "d2f9efe925fefc0ce3ef99b4d4da4abe83b0b09c79ea09994c393e0ee747221ca98b4231ae0d84811a5a13936bda600a"
        )]
    );
}

#[test]
fn good_rim_outside_its_chain_validity() {
    assert_eq!(
        verify_rim(&read(GOOD), GOOD_NOT_AFTER + 1),
        Err(RimError::CertificateExpired {
            index: 0,
            not_after: GOOD_NOT_AFTER
        })
    );
    assert_eq!(
        verify_rim(&read(GOOD), GOOD_NOT_BEFORE - 1),
        Err(RimError::CertificateNotYetValid {
            index: 0,
            not_before: GOOD_NOT_BEFORE
        })
    );
    // The boundaries themselves are inside (RFC 5280 §4.1.2.5: inclusive).
    verify_rim(&read(GOOD), GOOD_NOT_BEFORE).unwrap();
    verify_rim(&read(GOOD), GOOD_NOT_AFTER).unwrap();
}

// ---------------------------------------------------------------- NVIDIA's negative fixtures

#[test]
fn incorrect_signature_fixture_fails_the_signature() {
    // One base64 character of SignatureValue differs from the good RIM.
    assert_eq!(
        verify_rim(&read("incorrect_signature_driver_rim.xml"), T0),
        Err(RimError::SignatureInvalid)
    );
}

#[test]
fn incorrect_cert_chain_fixture_fails_the_chain() {
    // Its leaf names "NVIDIA Reference Value L3 GH100 001 Debug Only" as issuer, but the next
    // certificate is a self-signed "NVIDIA CoRIM L1 Root CA Debug Only": the chain is broken
    // (and would not reach the pinned root anyway).
    assert_eq!(
        verify_rim(&read("incorrect_cert_chain_driver_rim.xml"), T0),
        Err(RimError::IssuerMismatch(0))
    );
}

#[test]
fn expired_fixture_fails_on_its_signing_certificate() {
    // Its "RIM L4 Signer" is valid 2025-01-01T00:00:00Z .. 2025-01-02T00:00:00Z.
    assert_eq!(
        verify_rim(&read("NV_GPU_DRIVER_GH100_570.124.03_expired.xml"), T0),
        Err(RimError::CertificateExpired {
            index: 0,
            not_after: 1_735_776_000
        })
    );
    // Inside that day the chain is fine, and what remains is that its content was edited
    // after signing (its SignedInfo signature is genuine, its DigestValue no longer matches).
    assert_eq!(
        verify_rim(
            &read("NV_GPU_DRIVER_GH100_570.124.03_expired.xml"),
            T_EXPIRED_WINDOW
        ),
        Err(RimError::DigestMismatch)
    );
}

#[test]
fn driver_measurement_mismatch_fixture_was_edited_after_signing() {
    // NVIDIA's SDK test turns RIM signature verification off for this file because its
    // version was edited; a verifier that checks the digest must refuse it.
    assert_eq!(
        verify_rim(
            &read("NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml"),
            T0
        ),
        Err(RimError::DigestMismatch)
    );
}

/// The SDK's hopper report: SPDM GET_MEASUREMENTS request || response.
fn hopper_measurements() -> Vec<(u32, Vec<u8>)> {
    let hex_text = read("hopperAttestationReport.txt");
    let bytes = hex::decode(String::from_utf8(hex_text).unwrap().trim()).unwrap();
    let spdm = confide_attest_nvidia::parse_spdm(&bytes).unwrap();
    // The SPDM index is 1-based on the wire; NVIDIA's RIM index is that minus one.
    spdm.blocks
        .into_iter()
        .map(|b| (u32::from(b.index) - 1, b.value))
        .collect()
}

#[test]
fn vbios_measurement_mismatch_fixture_verifies_but_differs_from_the_hopper_report() {
    let rim = verify_rim(&read(VBIOS), T0).unwrap();
    assert_eq!(rim.kind(), RimKind::Vbios);
    assert_eq!(rim.version(), "96.00.5E.00.01");
    let measured = hopper_measurements();
    let mismatches = compare(
        rim.reference(),
        measured.iter().map(|(i, v)| (*i, v.as_slice())),
    );
    // Nine of its twelve active indices equal the report's (which also proves the index
    // numbering, RIM index = SPDM index - 1); FSP measurements 1 and 2 and index 11 do not.
    assert_eq!(
        mismatches,
        vec![
            Mismatch::Differs(1),
            Mismatch::Differs(2),
            Mismatch::Differs(11)
        ]
    );
}

#[test]
fn good_driver_rim_is_for_another_driver_than_the_hopper_report() {
    // The report is from driver 535.86.09 (the SDK asks for that RIM for it); the good RIM
    // is 550.144.03. What both releases share matches (GSP indices 32..=38, the
    // alternatives at 23 and 24, the all-zero index 28); the rest differs.
    let rim = verify_rim(&read(GOOD), T0).unwrap();
    let measured = hopper_measurements();
    let mismatches = compare(
        rim.reference(),
        measured.iter().map(|(i, v)| (*i, v.as_slice())),
    );
    let differs: Vec<Mismatch> = [7, 21, 22, 25, 26, 27, 29, 30, 31, 39, 40]
        .into_iter()
        .map(Mismatch::Differs)
        .collect();
    assert_eq!(mismatches, differs);
    // An index the device did not report is a mismatch too.
    let fewer = measured.iter().filter(|(i, _)| *i != 32);
    assert!(
        compare(rim.reference(), fewer.map(|(i, v)| (*i, v.as_slice())))
            .contains(&Mismatch::Missing(32))
    );
}

#[test]
fn merge_driver_and_vbios() {
    let driver = verify_rim(&read(GOOD), T0).unwrap();
    let vbios = verify_rim(&read(VBIOS), T0).unwrap();
    let merged = GpuReference::merge(&driver, &vbios).unwrap();
    assert_eq!(merged.product(), "GH100");
    assert_eq!(merged.driver_version(), "550.144.03");
    assert_eq!(merged.vbios_version(), "96.00.5E.00.01");
    assert_eq!(merged.driver_digest(), driver.document_digest());
    assert_eq!(merged.vbios_digest(), vbios.document_digest());
    // The two RIMs constrain disjoint indices: the merge is their union.
    assert_eq!(
        merged.reference().len(),
        driver.reference().len() + vbios.reference().len()
    );
    for (i, alts) in driver.reference().iter().chain(vbios.reference()) {
        assert_eq!(&merged.reference()[i], alts);
    }
    // Kinds must be one of each, in order.
    assert_eq!(
        GpuReference::merge(&vbios, &driver),
        Err(RimError::MergeKinds)
    );
    assert_eq!(
        GpuReference::merge(&driver, &driver),
        Err(RimError::MergeKinds)
    );
}

// ---------------------------------------------------------------- roots

#[test]
fn explicit_root_api() {
    // The testdata copy of the SDK's rim_root.crt, passed explicitly, behaves as the pin.
    let pem = String::from_utf8(read("../roots/nvidia-corim-root.pem")).unwrap();
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    RimVerifier::with_root(der)
        .unwrap()
        .verify(&read(GOOD), T0)
        .unwrap();

    // Another root (here the RIM's own intermediate CA): the chain does not end there.
    let g = good();
    let certs: Vec<&str> = g
        .split("<ds:X509Certificate>")
        .skip(1)
        .map(|s| s.split("</ds:X509Certificate>").next().unwrap())
        .collect();
    let ca = base64::engine::general_purpose::STANDARD
        .decode(certs[2].split_whitespace().collect::<String>())
        .unwrap();
    assert_eq!(
        RimVerifier::with_root(ca).unwrap().verify(&read(GOOD), T0),
        Err(RimError::UntrustedRoot)
    );
    assert_eq!(
        RimVerifier::with_root(b"not a certificate".to_vec()).unwrap_err(),
        RimError::RootCertificate
    );
}

// ---------------------------------------------------------------- one-field manipulations

#[test]
fn flipped_measurement_byte_breaks_the_digest() {
    let bytes = manipulate("ns2:Hash0=\"4a5e4b3d", "ns2:Hash0=\"4a5e4b3e");
    assert_eq!(verify_rim(&bytes, T0), Err(RimError::DigestMismatch));
}

#[test]
fn inactive_made_active_breaks_the_digest() {
    let bytes = manipulate(
        "index=\"8\" active=\"False\"",
        "index=\"8\" active=\"True\"",
    );
    assert_eq!(verify_rim(&bytes, T0), Err(RimError::DigestMismatch));
}

#[test]
fn changed_version_breaks_the_digest() {
    let bytes = manipulate(
        "colloquialVersion=\"550.144.03\"",
        "colloquialVersion=\"550.144.04\"",
    );
    assert_eq!(verify_rim(&bytes, T0), Err(RimError::DigestMismatch));
}

#[test]
fn changed_digest_value_no_longer_matches_the_document() {
    // A DigestValue made to match an edited document would still need a new signature;
    // here the DigestValue alone changes (the document no longer matches it).
    let bytes = manipulate("BqNofyPEyR5BQcx1", "BqNofyPEyR5BQcx2");
    assert_eq!(verify_rim(&bytes, T0), Err(RimError::DigestMismatch));
}

#[test]
fn changed_signature_value_fails_the_signature() {
    let bytes = manipulate("TM4DnjO+vWfG", "TM4DnjO+vWfH");
    assert_eq!(verify_rim(&bytes, T0), Err(RimError::SignatureInvalid));
}

#[test]
fn short_signature_value_is_refused() {
    let bytes = manipulate("TM4DnjO+vWfG", "");
    assert_eq!(verify_rim(&bytes, T0), Err(RimError::SignatureLength(87)));
}

#[test]
fn removed_signature_is_missing() {
    let g = good();
    let start = g.find("<ds:Signature").unwrap();
    let end = g.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let bytes = format!("{}{}", &g[..start], &g[end..]).into_bytes();
    assert_eq!(verify_rim(&bytes, T0), Err(RimError::MissingSignature));
}

#[test]
fn second_signature_is_refused() {
    let g = good();
    let start = g.find("<ds:Signature").unwrap();
    let end = g.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let sig = &g[start..end];
    // Anywhere: beside the first, or wrapped inside the Payload.
    let beside = format!("{}{sig}{}", &g[..end], &g[end..]).into_bytes();
    assert_eq!(
        verify_rim(&beside, T0),
        Err(RimError::MultipleSignatures(2))
    );
    let wrapped = g.replacen("</ns0:Payload>", &format!("{sig}</ns0:Payload>"), 1);
    assert_eq!(
        verify_rim(wrapped.as_bytes(), T0),
        Err(RimError::MultipleSignatures(2))
    );
}

#[test]
fn signature_moved_inside_the_payload_is_not_enveloped() {
    let g = good();
    let start = g.find("<ds:Signature").unwrap();
    let end = g.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let sig = &g[start..end];
    let without = format!("{}{}", &g[..start], &g[end..]);
    let moved = without.replacen("</ns0:Payload>", &format!("{sig}</ns0:Payload>"), 1);
    assert_eq!(
        verify_rim(moved.as_bytes(), T0),
        Err(RimError::SignatureNotEnveloped)
    );
}

#[test]
fn unknown_algorithms_are_typed_errors() {
    let rsa = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
    assert_eq!(
        verify_rim(
            &manipulate("http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384", rsa),
            T0
        ),
        Err(RimError::UnsupportedSignatureMethod(rsa.into()))
    );
    let exc = "http://www.w3.org/2001/10/xml-exc-c14n#";
    assert_eq!(
        verify_rim(
            &manipulate(
                "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2006/12/xml-c14n11\"/>",
                &format!("<ds:CanonicalizationMethod Algorithm=\"{exc}\"/>")
            ),
            T0
        ),
        Err(RimError::UnsupportedCanonicalization(exc.into()))
    );
    let sha256 = "http://www.w3.org/2001/04/xmlenc#sha256";
    assert_eq!(
        verify_rim(
            &manipulate(
                "http://www.w3.org/2001/04/xmldsig-more#sha384\"",
                &format!("{sha256}\"")
            ),
            T0
        ),
        Err(RimError::UnsupportedDigestMethod(sha256.into()))
    );
    let xpath = "http://www.w3.org/TR/1999/REC-xpath-19991116";
    assert_eq!(
        verify_rim(
            &manipulate(
                "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
                xpath
            ),
            T0
        ),
        Err(RimError::UnsupportedTransform(xpath.into()))
    );
    // Both known transforms, but in the wrong order.
    let reordered = manipulate(
        "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/><ds:Transform Algorithm=\"http://www.w3.org/2006/12/xml-c14n11\"/>",
        "<ds:Transform Algorithm=\"http://www.w3.org/2006/12/xml-c14n11\"/><ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
    );
    assert_eq!(verify_rim(&reordered, T0), Err(RimError::TransformChain));
}

#[test]
fn reference_must_be_the_whole_document() {
    assert_eq!(
        verify_rim(
            &manipulate("<ds:Reference URI=\"\">", "<ds:Reference URI=\"#p\">"),
            T0
        ),
        Err(RimError::ReferenceUri("#p".into()))
    );
    assert_eq!(
        verify_rim(&manipulate("<ds:Reference URI=\"\">", "<ds:Reference>"), T0),
        Err(RimError::ReferenceUri("(absent)".into()))
    );
}

#[test]
fn root_in_keyinfo_is_optional_but_the_leaf_is_not_replaceable() {
    // KeyInfo is outside SignedInfo: dropping the trailing root certificate changes nothing.
    let g = good();
    let last = g.rfind("<ds:X509Certificate>").unwrap();
    let end = g.rfind("</ds:X509Certificate>").unwrap() + "</ds:X509Certificate>".len();
    let bytes = format!("{}{}", &g[..last], &g[end..]).into_bytes();
    verify_rim(&bytes, T0).unwrap();

    // Swapping in another NVIDIA RIM's (validly chained) leaf: the signature is not its.
    let other = String::from_utf8(read(VBIOS)).unwrap();
    let leaf = |s: &str| {
        s.split("<ds:X509Certificate>")
            .nth(1)
            .unwrap()
            .split("</ds:X509Certificate>")
            .next()
            .unwrap()
            .to_string()
    };
    let swapped = g.replacen(&leaf(&g), &leaf(&other), 1);
    assert_eq!(
        verify_rim(swapped.as_bytes(), T0),
        Err(RimError::SignatureInvalid)
    );
}

#[test]
fn canonically_equal_documents_still_verify() {
    // Comments are outside the C14N 1.1 (without comments) node-set...
    verify_rim(
        &manipulate("    </ns0:Payload>", "    <!-- a comment --></ns0:Payload>"),
        T0,
    )
    .unwrap();
    // ...attribute order and quoting are not significant...
    verify_rim(
        &manipulate(
            "<ns0:Entity name=\"NVIDIA Corporation\" role=\"softwareCreator tagCreator\"/>",
            "<ns0:Entity role='softwareCreator tagCreator' name='NVIDIA Corporation'></ns0:Entity>",
        ),
        T0,
    )
    .unwrap();
    // ...nor is a character reference for a plain character, nor an XML declaration.
    let g = good().replacen(
        "<SoftwareIdentity",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SoftwareIdentity",
        1,
    );
    verify_rim(
        g.replacen("name=\"GH100\"", "name=\"&#x47;H100\"", 1)
            .as_bytes(),
        T0,
    )
    .unwrap();
    // But whitespace text is significant.
    assert_eq!(
        verify_rim(&manipulate("    </ns0:Payload>", "     </ns0:Payload>"), T0),
        Err(RimError::DigestMismatch)
    );
}

#[test]
fn dtd_oversize_and_malformed_inputs_are_refused() {
    let with_dtd = format!("<!DOCTYPE x [<!ENTITY e \"x\">]>\n{}", good());
    assert_eq!(verify_rim(with_dtd.as_bytes(), T0), Err(RimError::Dtd));
    let huge = vec![b' '; confide_rim::MAX_RIM_LEN + 1];
    assert_eq!(
        verify_rim(&huge, T0),
        Err(RimError::TooLarge(confide_rim::MAX_RIM_LEN + 1))
    );
    let g = read(GOOD);
    assert!(matches!(
        verify_rim(&g[..g.len() / 2], T0),
        Err(RimError::Xml(_))
    ));
    assert_eq!(verify_rim(&[0xff, 0xfe], T0), Err(RimError::NotUtf8));
}

#[test]
fn malformed_resources_are_refused_before_any_crypto_succeeds() {
    // These break the digest too, but the tag is read (and refused) first.
    assert_eq!(
        verify_rim(
            &manipulate("index=\"7\" active=\"True\"", "index=\"7\" active=\"Yes\""),
            T0
        ),
        Err(RimError::BadActive { index: 7 })
    );
    assert_eq!(
        verify_rim(&manipulate("index=\"8\"", "index=\"7\""), T0),
        Err(RimError::DuplicateIndex(7))
    );
    assert_eq!(
        verify_rim(
            &manipulate(
                "index=\"7\" active=\"True\" alternatives=\"1\"",
                "index=\"7\" active=\"True\" alternatives=\"2\""
            ),
            T0
        ),
        Err(RimError::BadAlternatives { index: 7 })
    );
    assert_eq!(
        verify_rim(
            &manipulate("ns2:Hash0=\"4a5e4b3d", "ns2:Hash0=\"4a5e4b3"),
            T0
        ),
        Err(RimError::BadHash { index: 7 })
    );
    assert_eq!(
        verify_rim(
            &manipulate(
                "colloquialVersion=\"550.144.03\"",
                "colloquialVersion=\"latest\""
            ),
            T0
        ),
        Err(RimError::UnknownKind("latest".into()))
    );
}

#[test]
fn every_truncation_fails_closed() {
    let g = read(GOOD);
    for len in (0..g.len()).step_by(7) {
        assert!(verify_rim(&g[..len], T0).is_err(), "prefix of {len} bytes");
    }
}
