//! The RIM signing chain: KeyInfo/X509Data certificates, leaf first, up to the pinned
//! "NVIDIA CoRIM signing Root CA" (RFC 5280 §6.1 path validation, restricted to what these
//! chains use: ECDSA P-384 with SHA-384 throughout, basicConstraints and keyUsage as the only
//! critical extensions, no name constraints or policies).

use der::{Decode, Encode};
use p384::ecdsa::signature::Verifier as _;
use p384::ecdsa::{Signature, VerifyingKey};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

use crate::RimError;

/// Most certificates accepted in KeyInfo (NVIDIA's chains have 4, root included).
pub(crate) const MAX_CERTS: usize = 8;

const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_SECP384R1: &str = "1.3.132.0.34";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_KEY_USAGE: &str = "2.5.29.15";

/// What a checked chain yields.
pub(crate) struct CheckedChain {
    pub leaf_key: VerifyingKey,
    pub leaf_der: Vec<u8>,
    pub signer_subject: String,
    /// Latest notBefore and earliest notAfter over the whole chain, root included.
    pub valid_from: u64,
    pub valid_until: u64,
}

/// Parse a DER certificate, refusing non-canonical encodings (the bytes must re-encode
/// identically, so the signature covers exactly what we read).
pub(crate) fn parse_cert(index: usize, der: &[u8]) -> Result<Certificate, RimError> {
    let c = Certificate::from_der(der).map_err(|_| RimError::Certificate(index))?;
    match c.to_der() {
        Ok(again) if again == der => Ok(c),
        _ => Err(RimError::Certificate(index)),
    }
}

/// The certificate's P-384 public key.
pub(crate) fn p384_key(index: usize, c: &Certificate) -> Result<VerifyingKey, RimError> {
    let spki = &c.tbs_certificate.subject_public_key_info;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok());
    if spki.algorithm.oid.to_string() != OID_EC_PUBLIC_KEY
        || curve.map(|o| o.to_string()).as_deref() != Some(OID_SECP384R1)
    {
        return Err(RimError::PublicKey(index));
    }
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or(RimError::PublicKey(index))?;
    VerifyingKey::from_sec1_bytes(bits).map_err(|_| RimError::PublicKey(index))
}

fn signed_by(index: usize, c: &Certificate, issuer: &VerifyingKey) -> Result<(), RimError> {
    if c.signature_algorithm.oid.to_string() != OID_ECDSA_SHA384
        || c.tbs_certificate.signature.oid != c.signature_algorithm.oid
    {
        return Err(RimError::CertificateAlgorithm(index));
    }
    let tbs = c
        .tbs_certificate
        .to_der()
        .map_err(|_| RimError::Certificate(index))?;
    let bytes = c
        .signature
        .as_bytes()
        .ok_or(RimError::ChainSignature(index))?;
    let sig = Signature::from_der(bytes).map_err(|_| RimError::ChainSignature(index))?;
    issuer
        .verify(&tbs, &sig)
        .map_err(|_| RimError::ChainSignature(index))
}

/// basicConstraints and keyUsage of `c`; any other critical extension is refused
/// (RFC 5280 §4.2: a verifier MUST reject a certificate with a critical extension it does not
/// process).
fn constraints(
    index: usize,
    c: &Certificate,
) -> Result<(Option<BasicConstraints>, Option<KeyUsage>), RimError> {
    let mut bc = None;
    let mut ku = None;
    for ext in c.tbs_certificate.extensions.iter().flatten() {
        let oid = ext.extn_id.to_string();
        if oid == OID_BASIC_CONSTRAINTS {
            bc = Some(
                BasicConstraints::from_der(ext.extn_value.as_bytes())
                    .map_err(|_| RimError::Certificate(index))?,
            );
        } else if oid == OID_KEY_USAGE {
            ku = Some(
                KeyUsage::from_der(ext.extn_value.as_bytes())
                    .map_err(|_| RimError::Certificate(index))?,
            );
        } else if ext.critical {
            return Err(RimError::UnknownCriticalExtension { index, oid });
        }
    }
    Ok((bc, ku))
}

/// Verify `certs` (DER, leaf first, as in KeyInfo) up to `root` (pinned by bytes) at `now`.
pub(crate) fn check_chain(
    certs: &[Vec<u8>],
    root_der: &[u8],
    now: u64,
) -> Result<CheckedChain, RimError> {
    if certs.is_empty() {
        return Err(RimError::NoCertificates);
    }
    if certs.len() > MAX_CERTS {
        return Err(RimError::TooManyCertificates(certs.len()));
    }
    // NVIDIA includes the root at the end of KeyInfo. Where present it must be the pinned
    // root byte for byte; it is then not "presented" but the anchor.
    let mut presented: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
    if presented.last() == Some(&root_der) {
        presented.pop();
    }
    if presented.is_empty() {
        // Only the root itself: a root does not sign RIMs.
        return Err(RimError::NoCertificates);
    }
    let parsed = presented
        .iter()
        .enumerate()
        .map(|(i, d)| parse_cert(i, d))
        .collect::<Result<Vec<_>, _>>()?;
    let root_index = parsed.len();
    let root = parse_cert(root_index, root_der).map_err(|_| RimError::RootCertificate)?;
    let root_key = p384_key(root_index, &root).map_err(|_| RimError::RootCertificate)?;

    // Names and signatures, leaf upwards.
    for (i, c) in parsed.iter().enumerate() {
        let (issuer, issuer_key) = match parsed.get(i + 1) {
            Some(next) => (next, p384_key(i + 1, next)?),
            None => (&root, root_key),
        };
        let top = i + 1 == parsed.len();
        if c.tbs_certificate.issuer != issuer.tbs_certificate.subject {
            // The top presented certificate names an issuer other than the pinned root.
            return Err(if top {
                RimError::UntrustedRoot
            } else {
                RimError::IssuerMismatch(i)
            });
        }
        signed_by(i, c, &issuer_key).map_err(|e| match e {
            RimError::ChainSignature(_) if top => RimError::UntrustedRoot,
            e => e,
        })?;
    }

    // CA constraints (RFC 5280 §6.1.4 (k)-(n)): every issuer is a CA allowed to sign
    // certificates, and its pathLenConstraint covers the intermediates below it.
    for (i, c) in parsed.iter().chain([&root]).enumerate() {
        let (bc, ku) = constraints(i, c)?;
        if i == 0 {
            // The RIM signer signs documents: digitalSignature if keyUsage is present,
            // and it must not be a CA.
            if ku.is_some_and(|k| !k.digital_signature()) {
                return Err(RimError::KeyUsage(0));
            }
            if bc.is_some_and(|b| b.ca) {
                return Err(RimError::LeafIsCa);
            }
            continue;
        }
        let Some(bc) = bc.filter(|b| b.ca) else {
            return Err(RimError::NotCa(i));
        };
        // Intermediates strictly between this CA and the leaf.
        let below = i - 1;
        if bc
            .path_len_constraint
            .is_some_and(|n| usize::from(n) < below)
        {
            return Err(RimError::PathLength(i));
        }
        if ku.is_some_and(|k| !k.key_cert_sign()) {
            return Err(RimError::KeyUsage(i));
        }
    }

    // Validity of every certificate, root included, at the caller's `now`.
    let mut valid_from = 0u64;
    let mut valid_until = u64::MAX;
    for (i, c) in parsed.iter().chain([&root]).enumerate() {
        let v = &c.tbs_certificate.validity;
        let not_before = v.not_before.to_unix_duration().as_secs();
        let not_after = v.not_after.to_unix_duration().as_secs();
        if now < not_before {
            return Err(RimError::CertificateNotYetValid {
                index: i,
                not_before,
            });
        }
        if now > not_after {
            return Err(RimError::CertificateExpired {
                index: i,
                not_after,
            });
        }
        valid_from = valid_from.max(not_before);
        valid_until = valid_until.min(not_after);
    }

    let leaf = &parsed[0];
    Ok(CheckedChain {
        leaf_key: p384_key(0, leaf)?,
        leaf_der: presented[0].to_vec(),
        signer_subject: leaf.tbs_certificate.subject.to_string(),
        valid_from,
        valid_until,
    })
}
