//! NVIDIA Reference Integrity Manifests (RIMs): verify a signed RIM, fully offline, and get
//! the reference measurements it vouches for.
//!
//! NVIDIA publishes one RIM per GPU driver release and one per VBIOS. Each is an
//! ISO/IEC 19770-2:2015 SWID tag following the TCG *Reference Integrity Manifest (RIM)
//! Information Model* v1.01 (`BindingSpec="RIMIM"`), whose Payload lists, per SPDM
//! measurement index (DMTF DSP0274 §10.11.1), the SHA-384 values the GPU may report; the
//! tag carries an enveloped XML signature (W3C *XML Signature Syntax and Processing* 1.1)
//! over the whole document, canonicalised with *Canonical XML 1.1* (W3C REC 2008) and signed
//! with ECDSA P-384/SHA-384 (RFC 6931 §2.3.6) by a certificate chaining to the
//! "NVIDIA CoRIM signing Root CA".
//!
//! [`RimVerifier::verify`] does, in this order, and fails closed with one [`RimError`]
//! variant per fault:
//!
//! 1. bounds the input ([`MAX_RIM_LEN`]), requires UTF-8 and parses it with `roxmltree`, which
//!    refuses any DTD (so no entity expansion, internal or external);
//! 2. finds *exactly one* `ds:Signature`, a direct child of the document element, and holds it
//!    to NVIDIA's profile (module `dsig`): C14N 1.1, ecdsa-sha384, one Reference with
//!    `URI=""` and the transforms enveloped-signature then C14N 1.1, SHA-384 digest, X509Data
//!    certificates only — everything else is a typed error, so there is nothing to wrap;
//! 3. reads the SWID tag (module `swid`): Meta's `product` and `colloquialVersion`, and each
//!    `Resource` (index, `active`, `alternatives`, `Hash0..HashN`), strictly;
//! 4. verifies the certificate chain to the pinned root (signatures, issuer names, CA basic
//!    constraints and path length, key usage, no unknown critical extension) and that every
//!    certificate, root included, is valid at the caller's `now` (unix seconds; the verifier
//!    never reads a clock);
//! 5. recomputes the Reference digest: SHA-384 of the C14N 1.1 form of the document without
//!    the Signature element (XML-DSig 1.1 §6.6.4, C14N 1.1 §2) and compares it to DigestValue;
//! 6. verifies SignatureValue (raw r‖s, XML-DSig 1.1 §6.4.3) over the C14N 1.1 form of
//!    SignedInfo as a document subset — it carries the namespace declarations in scope from
//!    the document element — with the leaf certificate's P-384 key.
//!
//! **What "expired" means for a RIM.** Neither the SWID tag nor the RIM IM binding carries a
//! validity period; the only dates are those of the signing chain. NVIDIA issues each RIM's
//! leaf ("RIM L4 Signer") for the period the RIM is to be trusted (the SDK's
//! `*_expired.xml` fixture is signed by a leaf valid for one day, 2025-01-01 to 2025-01-02),
//! so a RIM is valid exactly while its whole chain is: [`VerifiedRim::valid_from`] and
//! [`VerifiedRim::valid_until`] are the intersection. Revocation (NVIDIA's OCSP responder)
//! is an online check and is not done here.
//!
//! A [`VerifiedRim`] exists only once every check passed: it has no public constructor and
//! no public fields. [`GpuReference::merge`] joins a driver and a VBIOS RIM of one product.

#![forbid(unsafe_code)]

mod c14n;
mod chain;
pub mod dsig;
pub mod swid;

use std::collections::BTreeMap;

use p384::ecdsa::Signature;
use p384::ecdsa::signature::Verifier as _;
use sha2::{Digest, Sha384};

/// Largest RIM accepted, in bytes. NVIDIA's are about 21 KiB.
pub const MAX_RIM_LEN: usize = 1 << 20;
/// Most XML nodes accepted (a RIM has a few hundred).
pub const MAX_NODES: u32 = 20_000;

/// The pinned NVIDIA CoRIM signing root (DER). See `roots/README.md` for its origin.
pub const NVIDIA_RIM_ROOT_DER: &[u8] = include_bytes!("../roots/nvidia-corim-root.der");

/// One SHA-384 reference value.
pub type Digest48 = [u8; 48];

/// Why a RIM was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RimError {
    // --- input and XML ---
    /// Larger than [`MAX_RIM_LEN`].
    #[error("RIM is {0} bytes, more than the {MAX_RIM_LEN} accepted")]
    TooLarge(usize),
    /// Not UTF-8.
    #[error("RIM is not UTF-8")]
    NotUtf8,
    /// The document has a DOCTYPE (DTDs and entities are refused).
    #[error("RIM has a DTD; DTDs and entity declarations are refused")]
    Dtd,
    /// Not well-formed XML, or over the node limit (the parser's message).
    #[error("RIM is not well-formed XML: {0}")]
    Xml(String),
    /// Nested deeper than the canonicaliser accepts.
    #[error("RIM nests elements too deeply")]
    TooDeep,
    /// Something C14N 1.1 would need that this implementation refuses.
    #[error("cannot canonicalise: {0}")]
    Canonicalization(&'static str),

    // --- the signature's shape and algorithms ---
    /// No `ds:Signature` element.
    #[error("RIM has no ds:Signature")]
    MissingSignature,
    /// More than one `ds:Signature` anywhere in the document.
    #[error("RIM has {0} ds:Signature elements; exactly one is accepted")]
    MultipleSignatures(usize),
    /// The Signature is not a child of the document element.
    #[error("ds:Signature is not a child of the document element")]
    SignatureNotEnveloped,
    /// The Signature's elements are not in NVIDIA's profile.
    #[error("ds:Signature structure: {0}")]
    SignatureStructure(&'static str),
    /// CanonicalizationMethod is not C14N 1.1.
    #[error("unsupported CanonicalizationMethod {0}")]
    UnsupportedCanonicalization(String),
    /// SignatureMethod is not ecdsa-sha384.
    #[error("unsupported SignatureMethod {0}")]
    UnsupportedSignatureMethod(String),
    /// DigestMethod is not SHA-384.
    #[error("unsupported DigestMethod {0}")]
    UnsupportedDigestMethod(String),
    /// A Transform other than enveloped-signature or C14N 1.1.
    #[error("unsupported Transform {0}")]
    UnsupportedTransform(String),
    /// Transforms are not exactly enveloped-signature then C14N 1.1.
    #[error("Transforms must be enveloped-signature then C14N 1.1")]
    TransformChain,
    /// Not exactly one Reference.
    #[error("SignedInfo has {0} References; exactly one is accepted")]
    ReferenceCount(usize),
    /// The Reference URI is not "" (the whole document).
    #[error("Reference URI {0:?} is not \"\" (the whole document)")]
    ReferenceUri(String),
    /// A base64 field does not decode.
    #[error("{0} is not valid base64")]
    Base64(&'static str),
    /// DigestValue is not 48 bytes.
    #[error("DigestValue is {0} bytes, not 48")]
    DigestLength(usize),
    /// SignatureValue is not 96 bytes (r‖s).
    #[error("SignatureValue is {0} bytes, not 96")]
    SignatureLength(usize),

    // --- cryptographic checks ---
    /// The document's SHA-384 digest differs from DigestValue: the content was changed.
    #[error("document digest does not match DigestValue")]
    DigestMismatch,
    /// SignatureValue does not verify over SignedInfo with the leaf key.
    #[error("SignatureValue does not verify")]
    SignatureInvalid,

    // --- certificates ---
    /// KeyInfo holds no certificate (other than the root).
    #[error("no signing certificate in KeyInfo")]
    NoCertificates,
    /// KeyInfo holds too many certificates.
    #[error("{0} certificates in KeyInfo, too many")]
    TooManyCertificates(usize),
    /// Certificate `n` (0 = leaf) does not parse as canonical DER X.509.
    #[error("certificate {0} does not parse")]
    Certificate(usize),
    /// Certificate `n` has no P-384 public key.
    #[error("certificate {0} has no P-384 public key")]
    PublicKey(usize),
    /// Certificate `n` is not signed with ecdsa-with-SHA384.
    #[error("certificate {0} uses an unsupported signature algorithm")]
    CertificateAlgorithm(usize),
    /// Certificate `n`'s issuer is not the subject of certificate `n + 1`.
    #[error("certificate {0}'s issuer is not the next certificate")]
    IssuerMismatch(usize),
    /// Certificate `n` is not signed by certificate `n + 1`.
    #[error("certificate {0} is not signed by its issuer")]
    ChainSignature(usize),
    /// The chain does not end at the pinned root.
    #[error("certificate chain does not end at the pinned RIM root")]
    UntrustedRoot,
    /// The root given to the verifier is not a usable P-384 certificate.
    #[error("the pinned root certificate is unusable")]
    RootCertificate,
    /// Certificate `n` issues certificates but is not a CA.
    #[error("certificate {0} is not a CA")]
    NotCa(usize),
    /// The signing certificate is a CA.
    #[error("the signing certificate is a CA")]
    LeafIsCa,
    /// Certificate `n`'s pathLenConstraint is exceeded.
    #[error("certificate {0}'s path length constraint is exceeded")]
    PathLength(usize),
    /// Certificate `n`'s keyUsage forbids its use here.
    #[error("certificate {0}'s key usage does not allow this use")]
    KeyUsage(usize),
    /// Certificate `index` has a critical extension this verifier does not process.
    #[error("certificate {index} has unknown critical extension {oid}")]
    UnknownCriticalExtension {
        /// Position in the chain.
        index: usize,
        /// The extension's OID.
        oid: String,
    },
    /// Certificate `index` expired before `now`; index 0 (the signer) means the RIM expired.
    #[error("certificate {index} expired at {not_after}")]
    CertificateExpired {
        /// Position in the chain (0 = the RIM signer).
        index: usize,
        /// Its notAfter, unix seconds.
        not_after: u64,
    },
    /// Certificate `index` is not yet valid at `now`.
    #[error("certificate {index} is not valid before {not_before}")]
    CertificateNotYetValid {
        /// Position in the chain.
        index: usize,
        /// Its notBefore, unix seconds.
        not_before: u64,
    },

    // --- the SWID tag ---
    /// The document element is not a SWID SoftwareIdentity.
    #[error("document element is not an ISO 19770-2 SoftwareIdentity")]
    NotSwidTag,
    /// A required element is missing.
    #[error("missing {0} element")]
    MissingElement(&'static str),
    /// A required attribute is missing.
    #[error("{element} has no {attribute} attribute")]
    MissingAttribute {
        /// Element name.
        element: &'static str,
        /// Attribute name.
        attribute: &'static str,
    },
    /// Content the RIM information model does not define.
    #[error("unexpected content: {0}")]
    UnexpectedContent(&'static str),
    /// colloquialVersion is neither a driver nor a VBIOS version.
    #[error("colloquialVersion {0:?} is neither a driver nor a VBIOS version")]
    UnknownKind(String),
    /// A Resource index is not a measurement index.
    #[error("measurement index {0:?} is invalid")]
    BadIndex(String),
    /// Two Resources with one index.
    #[error("measurement index {0} appears twice")]
    DuplicateIndex(u32),
    /// `active` is not "True" or "False".
    #[error("measurement {index}: active is not True or False")]
    BadActive {
        /// The index.
        index: u32,
    },
    /// `alternatives` disagrees with the Hash attributes present.
    #[error("measurement {index}: alternatives do not match Hash0..HashN")]
    BadAlternatives {
        /// The index.
        index: u32,
    },
    /// A hash is not 48 bytes of hex.
    #[error("measurement {index}: hash is not 48 bytes of hex")]
    BadHash {
        /// The index.
        index: u32,
    },
    /// A Hash attribute outside the SHA-384 namespace.
    #[error("measurement {index}: hash algorithm is not SHA-384")]
    UnsupportedHashAlgorithm {
        /// The index.
        index: u32,
    },
    /// No active measurement at all.
    #[error("RIM has no active measurement")]
    NoActiveMeasurements,

    // --- merging ---
    /// Merge needs a driver RIM and a VBIOS RIM.
    #[error("merge needs one driver RIM and one VBIOS RIM")]
    MergeKinds,
    /// The two RIMs are for different products.
    #[error("driver RIM is for {driver}, VBIOS RIM for {vbios}")]
    ProductMismatch {
        /// The driver RIM's product.
        driver: String,
        /// The VBIOS RIM's product.
        vbios: String,
    },
    /// Both RIMs constrain one index differently.
    #[error("driver and VBIOS RIMs disagree at measurement index {0}")]
    MergeConflict(u32),
}

/// Which firmware a RIM describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RimKind {
    /// The GPU driver (GSP firmware and driver measurements).
    Driver,
    /// The VBIOS (FSP and boot firmware measurements).
    Vbios,
}

/// A RIM whose signature, chain and validity all checked out. No public constructor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRim {
    kind: RimKind,
    tag_id: String,
    product: String,
    version: String,
    reference: BTreeMap<u32, Vec<Digest48>>,
    signer_subject: String,
    signer_der: Vec<u8>,
    document_digest: Digest48,
    valid_from: u64,
    valid_until: u64,
}

impl VerifiedRim {
    /// Driver or VBIOS (from the form of `colloquialVersion`).
    pub fn kind(&self) -> RimKind {
        self.kind
    }
    /// SoftwareIdentity `tagId`.
    pub fn tag_id(&self) -> &str {
        &self.tag_id
    }
    /// Meta `product`, e.g. "GH100".
    pub fn product(&self) -> &str {
        &self.product
    }
    /// Meta `colloquialVersion`, e.g. "550.144.03" or "96.00.5E.00.01".
    pub fn version(&self) -> &str {
        &self.version
    }
    /// Active measurements: SPDM index → the SHA-384 values any of which is acceptable.
    pub fn reference(&self) -> &BTreeMap<u32, Vec<Digest48>> {
        &self.reference
    }
    /// The signing certificate's subject (RFC 4514 string).
    pub fn signer_subject(&self) -> &str {
        &self.signer_subject
    }
    /// The signing certificate, DER.
    pub fn signer_der(&self) -> &[u8] {
        &self.signer_der
    }
    /// The signed SHA-384 digest of the canonical document (its DigestValue): a stable
    /// identifier of exactly this RIM content, suitable for pinning.
    pub fn document_digest(&self) -> &Digest48 {
        &self.document_digest
    }
    /// Start of the RIM's validity (latest notBefore in its chain), unix seconds.
    pub fn valid_from(&self) -> u64 {
        self.valid_from
    }
    /// End of the RIM's validity (earliest notAfter in its chain), unix seconds.
    pub fn valid_until(&self) -> u64 {
        self.valid_until
    }
}

/// Verifies RIMs against one pinned root.
#[derive(Debug, Clone)]
pub struct RimVerifier {
    root_der: Vec<u8>,
}

impl Default for RimVerifier {
    fn default() -> Self {
        Self::nvidia()
    }
}

impl RimVerifier {
    /// Trust the pinned NVIDIA CoRIM signing root ([`NVIDIA_RIM_ROOT_DER`]).
    pub fn nvidia() -> Self {
        RimVerifier {
            root_der: NVIDIA_RIM_ROOT_DER.to_vec(),
        }
    }

    /// Trust another root instead (DER). It must be a P-384 CA certificate.
    pub fn with_root(root_der: Vec<u8>) -> Result<Self, RimError> {
        let root = chain::parse_cert(0, &root_der).map_err(|_| RimError::RootCertificate)?;
        chain::p384_key(0, &root).map_err(|_| RimError::RootCertificate)?;
        Ok(RimVerifier { root_der })
    }

    /// Verify a RIM (XML bytes) at `now` (unix seconds). See the crate docs for the checks.
    pub fn verify(&self, xml: &[u8], now: u64) -> Result<VerifiedRim, RimError> {
        if xml.len() > MAX_RIM_LEN {
            return Err(RimError::TooLarge(xml.len()));
        }
        let text = std::str::from_utf8(xml).map_err(|_| RimError::NotUtf8)?;
        let opts = roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: MAX_NODES,
            ..roxmltree::ParsingOptions::default()
        };
        let doc = roxmltree::Document::parse_with_options(text, opts).map_err(|e| match e {
            roxmltree::Error::DtdDetected => RimError::Dtd,
            e => RimError::Xml(e.to_string()),
        })?;
        let root = doc.root_element();

        let sig = dsig::parse(root)?;
        let tag = swid::parse(root, sig.signature)?;

        // Trust before cryptography on the document: is the key NVIDIA's, and is every
        // certificate valid now? (NVIDIA's SDK also checks the chain first: its expired
        // fixture fails as a chain failure.)
        let checked = chain::check_chain(&sig.certs, &self.root_der, now)?;

        // Reference validation (XML-DSig 1.1 §3.2.1): digest of the document minus the
        // enveloped Signature, canonicalised with C14N 1.1.
        let octets = c14n::canonicalize(c14n::Subset::DocumentWithout(sig.signature))?;
        let digest: Digest48 = Sha384::digest(&octets).into();
        if digest != sig.digest {
            return Err(RimError::DigestMismatch);
        }

        // Signature validation (§3.2.2): canonical SignedInfo under the leaf key. The
        // DigestValue checked above is inside SignedInfo, so this binds the document.
        let signed_info = c14n::canonicalize(c14n::Subset::Element(sig.signed_info))?;
        let value = Signature::from_slice(&sig.value).map_err(|_| RimError::SignatureInvalid)?;
        checked
            .leaf_key
            .verify(&signed_info, &value)
            .map_err(|_| RimError::SignatureInvalid)?;

        Ok(VerifiedRim {
            kind: tag.kind,
            tag_id: tag.tag_id,
            product: tag.product,
            version: tag.version,
            reference: tag.reference,
            signer_subject: checked.signer_subject,
            signer_der: checked.leaf_der,
            document_digest: digest,
            valid_from: checked.valid_from,
            valid_until: checked.valid_until,
        })
    }
}

/// Verify `xml` against the pinned NVIDIA root at `now` (unix seconds).
pub fn verify_rim(xml: &[u8], now: u64) -> Result<VerifiedRim, RimError> {
    RimVerifier::nvidia().verify(xml, now)
}

/// The reference values of one GPU: its driver RIM and VBIOS RIM joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuReference {
    product: String,
    driver_version: String,
    vbios_version: String,
    driver_digest: Digest48,
    vbios_digest: Digest48,
    reference: BTreeMap<u32, Vec<Digest48>>,
}

/// Why a measured value does not match the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mismatch {
    /// The reference constrains this index but the device reported nothing for it.
    Missing(u32),
    /// The device reported a value that is none of the alternatives.
    Differs(u32),
}

impl GpuReference {
    /// Join a driver RIM and a VBIOS RIM of the same product. NVIDIA splits the SPDM indices
    /// between the two; where both constrain an index they must list the same alternatives,
    /// or the merge is refused rather than one silently winning.
    pub fn merge(driver: &VerifiedRim, vbios: &VerifiedRim) -> Result<Self, RimError> {
        if driver.kind != RimKind::Driver || vbios.kind != RimKind::Vbios {
            return Err(RimError::MergeKinds);
        }
        if driver.product != vbios.product {
            return Err(RimError::ProductMismatch {
                driver: driver.product.clone(),
                vbios: vbios.product.clone(),
            });
        }
        let mut reference = driver.reference.clone();
        for (index, alts) in &vbios.reference {
            match reference.get(index) {
                Some(existing) => {
                    let mut a = existing.clone();
                    let mut b = alts.clone();
                    a.sort_unstable();
                    a.dedup();
                    b.sort_unstable();
                    b.dedup();
                    if a != b {
                        return Err(RimError::MergeConflict(*index));
                    }
                }
                None => {
                    reference.insert(*index, alts.clone());
                }
            }
        }
        Ok(GpuReference {
            product: driver.product.clone(),
            driver_version: driver.version.clone(),
            vbios_version: vbios.version.clone(),
            driver_digest: driver.document_digest,
            vbios_digest: vbios.document_digest,
            reference,
        })
    }

    /// The product both RIMs describe.
    pub fn product(&self) -> &str {
        &self.product
    }
    /// The driver RIM's colloquialVersion.
    pub fn driver_version(&self) -> &str {
        &self.driver_version
    }
    /// The VBIOS RIM's colloquialVersion.
    pub fn vbios_version(&self) -> &str {
        &self.vbios_version
    }
    /// The driver RIM's signed document digest.
    pub fn driver_digest(&self) -> &Digest48 {
        &self.driver_digest
    }
    /// The VBIOS RIM's signed document digest.
    pub fn vbios_digest(&self) -> &Digest48 {
        &self.vbios_digest
    }
    /// SPDM index → acceptable SHA-384 values.
    pub fn reference(&self) -> &BTreeMap<u32, Vec<Digest48>> {
        &self.reference
    }
}

/// Compare measured values with a reference set: every referenced index must be reported and
/// equal one of its alternatives. Indices the reference does not constrain are ignored.
/// Returns the mismatches, in index order (empty = match).
///
/// `measured` is keyed by *RIM index*, which is the SPDM measurement block Index minus one:
/// NVIDIA numbers RIM Resources from 0 and SPDM blocks (DSP0274 Table 45) from 1. The tests
/// confirm this on NVIDIA's own report and RIMs.
pub fn compare<'a>(
    reference: &BTreeMap<u32, Vec<Digest48>>,
    measured: impl IntoIterator<Item = (u32, &'a [u8])>,
) -> Vec<Mismatch> {
    let measured: BTreeMap<u32, &[u8]> = measured.into_iter().collect();
    reference
        .iter()
        .filter_map(|(index, alts)| match measured.get(index) {
            None => Some(Mismatch::Missing(*index)),
            Some(v) if alts.iter().any(|a| a.as_slice() == *v) => None,
            Some(_) => Some(Mismatch::Differs(*index)),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn pinned_der_is_the_pem_root() {
        let pem = include_str!("../roots/nvidia-corim-root.pem");
        let b64: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(der, NVIDIA_RIM_ROOT_DER);
        RimVerifier::with_root(der).unwrap();
    }

    #[test]
    fn kind_from_version_form() {
        assert_eq!(swid::kind_of("550.144.03").unwrap(), RimKind::Driver);
        assert_eq!(swid::kind_of("96.00.5E.00.01").unwrap(), RimKind::Vbios);
        for bad in [
            "",
            "550.144",
            "96.00.5E.00",
            "96.00.5G.00.01",
            "5.5.5.5",
            "a.b.c",
        ] {
            assert!(matches!(swid::kind_of(bad), Err(RimError::UnknownKind(_))));
        }
    }

    fn rim(kind: RimKind, product: &str, reference: &[(u32, &[Digest48])]) -> VerifiedRim {
        VerifiedRim {
            kind,
            tag_id: String::new(),
            product: product.into(),
            version: String::new(),
            reference: reference.iter().map(|(i, a)| (*i, a.to_vec())).collect(),
            signer_subject: String::new(),
            signer_der: Vec::new(),
            document_digest: [0; 48],
            valid_from: 0,
            valid_until: 0,
        }
    }

    #[test]
    fn merge_refuses_disagreeing_overlap_and_accepts_agreeing_overlap() {
        let (a, b, c) = ([1u8; 48], [2u8; 48], [3u8; 48]);
        let d = rim(RimKind::Driver, "GH100", &[(7, &[a, b]), (9, &[c])]);
        // Same set of alternatives, other order: agrees.
        let v = rim(RimKind::Vbios, "GH100", &[(1, &[c]), (7, &[b, a])]);
        let m = GpuReference::merge(&d, &v).unwrap();
        assert_eq!(m.reference().keys().copied().collect::<Vec<_>>(), [1, 7, 9]);
        assert_eq!(m.reference()[&7], vec![a, b]);
        // A different set at a shared index: refused.
        let v = rim(RimKind::Vbios, "GH100", &[(7, &[a])]);
        assert_eq!(GpuReference::merge(&d, &v), Err(RimError::MergeConflict(7)));
        let v = rim(RimKind::Vbios, "GB100", &[(1, &[c])]);
        assert!(matches!(
            GpuReference::merge(&d, &v),
            Err(RimError::ProductMismatch { .. })
        ));
    }
}
