//! The one enveloped XML-DSig signature of a RIM (XML Signature Syntax and Processing 1.1,
//! W3C Recommendation 11 April 2013), held to the exact profile NVIDIA signs with:
//!
//! ```text
//! <ds:Signature>                                   child of the document element, only one
//!   <ds:SignedInfo>
//!     <ds:CanonicalizationMethod Algorithm=".../2006/12/xml-c14n11"/>
//!     <ds:SignatureMethod Algorithm=".../xmldsig-more#ecdsa-sha384"/>
//!     <ds:Reference URI="">                        exactly one, the whole document
//!       <ds:Transforms> enveloped-signature, then xml-c14n11 </ds:Transforms>
//!       <ds:DigestMethod Algorithm="...#sha384"/>
//!       <ds:DigestValue>base64 SHA-384</ds:DigestValue>
//!   <ds:SignatureValue>base64 r||s (96 bytes)</ds:SignatureValue>
//!   <ds:KeyInfo><ds:X509Data><ds:X509Certificate>… leaf first …
//! ```
//!
//! Anything else (another algorithm, a second Reference, an `Object`, a Reference to a
//! fragment) is refused with a typed error: what is not signed is not read, and a
//! document with two candidate Signatures or a Reference to a sub-tree invites the
//! signature-wrapping attacks of McIntyre et al. / XSW.

use base64::Engine as _;
use roxmltree::Node;

use crate::RimError;
use crate::chain::MAX_CERTS;

pub(crate) const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// Canonical XML 1.1, omits comments (XML-DSig 1.1 §6.5.2).
pub const C14N11: &str = "http://www.w3.org/2006/12/xml-c14n11";
/// Enveloped Signature Transform (XML-DSig 1.1 §6.6.4).
pub const ENVELOPED_SIGNATURE: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// ECDSA over P-384 with SHA-384 (RFC 6931 §2.3.6; XML-DSig 1.1 §6.4.3).
pub const ECDSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384";
/// SHA-384 digest (RFC 6931 §2.1.3).
pub const SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#sha384";
/// SHA-384 under its XML Encryption 1.1 §5.4.2 identifier, the same algorithm.
pub const SHA384_XMLENC: &str = "http://www.w3.org/2001/04/xmlenc#sha384";

/// The parsed, not yet verified, signature.
pub(crate) struct ParsedSignature<'a, 'input> {
    pub signature: Node<'a, 'input>,
    pub signed_info: Node<'a, 'input>,
    pub digest: [u8; 48],
    /// r || s, 48 bytes each (XML-DSig 1.1 §6.4.3, RFC 4050 §3.3).
    pub value: [u8; 96],
    /// DER certificates, leaf first.
    pub certs: Vec<Vec<u8>>,
}

fn is_ds<'a, 'i>(n: &Node<'a, 'i>, local: &str) -> bool {
    n.is_element() && n.tag_name().namespace() == Some(DSIG_NS) && n.tag_name().name() == local
}

/// Element children of `n`; other than whitespace, nothing but elements may appear
/// (the XML-DSig schema gives these elements element-only content).
fn element_children<'a, 'i>(
    n: Node<'a, 'i>,
    what: &'static str,
) -> Result<Vec<Node<'a, 'i>>, RimError> {
    let mut out = Vec::new();
    for c in n.children() {
        if c.is_element() {
            out.push(c);
        } else if c.is_text() && !c.text().unwrap_or("").trim().is_empty() {
            return Err(RimError::SignatureStructure(what));
        }
    }
    Ok(out)
}

/// Text content of a leaf element such as DigestValue (no child elements).
fn leaf_text<'a>(n: Node<'a, '_>, what: &'static str) -> Result<String, RimError> {
    let mut s = String::new();
    for c in n.children() {
        if c.is_element() {
            return Err(RimError::SignatureStructure(what));
        }
        if let Some(t) = c.text().filter(|_| c.is_text()) {
            s.push_str(t);
        }
    }
    Ok(s)
}

/// base64Binary (XML Schema Part 2 §3.2.16): whitespace is allowed anywhere.
fn base64(s: &str, what: &'static str) -> Result<Vec<u8>, RimError> {
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| RimError::Base64(what))
}

fn algorithm<'a>(n: Node<'a, '_>, what: &'static str) -> Result<&'a str, RimError> {
    if n.has_children() && n.children().any(|c| !c.is_text()) {
        // No algorithm used here takes parameters.
        return Err(RimError::SignatureStructure(what));
    }
    n.attribute("Algorithm")
        .ok_or(RimError::SignatureStructure(what))
}

/// Find the single Signature and check its profile.
pub(crate) fn parse<'a, 'i>(root: Node<'a, 'i>) -> Result<ParsedSignature<'a, 'i>, RimError> {
    let all: Vec<Node<'a, 'i>> = root
        .descendants()
        .filter(|n| is_ds(n, "Signature"))
        .collect();
    let signature = match all.as_slice() {
        [] => return Err(RimError::MissingSignature),
        [one] => *one,
        many => return Err(RimError::MultipleSignatures(many.len())),
    };
    // Enveloped: a direct child of the document element, so the Reference (the whole
    // document) covers everything the verifier reads except the signature itself.
    if signature.parent() != Some(root) {
        return Err(RimError::SignatureNotEnveloped);
    }

    let parts = element_children(signature, "Signature")?;
    let [signed_info, sig_value, key_info] = parts.as_slice() else {
        return Err(RimError::SignatureStructure(
            "Signature must hold SignedInfo, SignatureValue, KeyInfo",
        ));
    };
    if !is_ds(signed_info, "SignedInfo")
        || !is_ds(sig_value, "SignatureValue")
        || !is_ds(key_info, "KeyInfo")
    {
        return Err(RimError::SignatureStructure(
            "Signature must hold SignedInfo, SignatureValue, KeyInfo",
        ));
    }

    // --- SignedInfo ---
    let si = element_children(*signed_info, "SignedInfo")?;
    let (c14n, method, refs) = match si.as_slice() {
        [c, m, refs @ ..] if is_ds(c, "CanonicalizationMethod") && is_ds(m, "SignatureMethod") => {
            (*c, *m, refs)
        }
        _ => {
            return Err(RimError::SignatureStructure(
                "SignedInfo must start with CanonicalizationMethod, SignatureMethod",
            ));
        }
    };
    let alg = algorithm(c14n, "CanonicalizationMethod")?;
    if alg != C14N11 {
        return Err(RimError::UnsupportedCanonicalization(alg.to_owned()));
    }
    let alg = algorithm(method, "SignatureMethod")?;
    if alg != ECDSA_SHA384 {
        return Err(RimError::UnsupportedSignatureMethod(alg.to_owned()));
    }
    if refs.iter().any(|r| !is_ds(r, "Reference")) {
        return Err(RimError::SignatureStructure(
            "SignedInfo holds something other than a Reference",
        ));
    }
    let reference = match refs {
        [one] => *one,
        _ => return Err(RimError::ReferenceCount(refs.len())),
    };

    // --- Reference ---
    match reference.attribute("URI") {
        Some("") => {}
        Some(other) => return Err(RimError::ReferenceUri(other.to_owned())),
        // An absent URI means "the application knows": not a whole-document reference.
        None => return Err(RimError::ReferenceUri("(absent)".to_owned())),
    }
    let rc = element_children(reference, "Reference")?;
    let [transforms, digest_method, digest_value] = rc.as_slice() else {
        return Err(RimError::SignatureStructure(
            "Reference must hold Transforms, DigestMethod, DigestValue",
        ));
    };
    if !is_ds(transforms, "Transforms")
        || !is_ds(digest_method, "DigestMethod")
        || !is_ds(digest_value, "DigestValue")
    {
        return Err(RimError::SignatureStructure(
            "Reference must hold Transforms, DigestMethod, DigestValue",
        ));
    }
    let mut algs = Vec::new();
    for t in element_children(*transforms, "Transforms")? {
        if !is_ds(&t, "Transform") {
            return Err(RimError::SignatureStructure(
                "Transforms holds something other than a Transform",
            ));
        }
        let alg = algorithm(t, "Transform")?;
        if alg != ENVELOPED_SIGNATURE && alg != C14N11 {
            return Err(RimError::UnsupportedTransform(alg.to_owned()));
        }
        algs.push(alg);
    }
    if algs != [ENVELOPED_SIGNATURE, C14N11] {
        return Err(RimError::TransformChain);
    }
    let alg = algorithm(*digest_method, "DigestMethod")?;
    if alg != SHA384 && alg != SHA384_XMLENC {
        return Err(RimError::UnsupportedDigestMethod(alg.to_owned()));
    }
    let digest: [u8; 48] = base64(&leaf_text(*digest_value, "DigestValue")?, "DigestValue")?
        .try_into()
        .map_err(|v: Vec<u8>| RimError::DigestLength(v.len()))?;
    let value: [u8; 96] = base64(&leaf_text(*sig_value, "SignatureValue")?, "SignatureValue")?
        .try_into()
        .map_err(|v: Vec<u8>| RimError::SignatureLength(v.len()))?;

    // --- KeyInfo: one X509Data of X509Certificate elements only ---
    let ki = element_children(*key_info, "KeyInfo")?;
    let [x509] = ki.as_slice() else {
        return Err(RimError::SignatureStructure(
            "KeyInfo must hold exactly one X509Data",
        ));
    };
    if !is_ds(x509, "X509Data") {
        return Err(RimError::SignatureStructure(
            "KeyInfo must hold exactly one X509Data",
        ));
    }
    let mut certs = Vec::new();
    for c in element_children(*x509, "X509Data")? {
        if !is_ds(&c, "X509Certificate") {
            return Err(RimError::SignatureStructure(
                "X509Data holds something other than X509Certificate",
            ));
        }
        if certs.len() == MAX_CERTS {
            return Err(RimError::TooManyCertificates(MAX_CERTS + 1));
        }
        certs.push(base64(
            &leaf_text(c, "X509Certificate")?,
            "X509Certificate",
        )?);
    }
    if certs.is_empty() {
        return Err(RimError::NoCertificates);
    }
    Ok(ParsedSignature {
        signature,
        signed_info: *signed_info,
        digest,
        value,
        certs,
    })
}
