//! The signed content of a RIM: an ISO/IEC 19770-2:2015 SWID tag in the shape of the TCG
//! Reference Integrity Manifest Information Model (v1.01, `BindingSpec="RIMIM"`), as NVIDIA
//! writes it:
//!
//! ```text
//! <SoftwareIdentity tagId=… name="GH100" …>
//!   <Entity …/>
//!   <Meta colloquialVersion="550.144.03" product="GH100" … rim:BindingSpec="RIMIM" …/>
//!   <Payload>
//!     <Resource type="Measurement" index="7" active="True" alternatives="2"
//!               sha384:Hash0="hex" sha384:Hash1="hex" name=… size="48"/>
//!     …
//!   </Payload>
//!   <ds:Signature>…</ds:Signature>
//! </SoftwareIdentity>
//! ```
//!
//! Each Resource is one SPDM measurement index (DSP0274 §10.11.1). `HashN` attributes live in
//! the `http://www.w3.org/2001/04/xmlenc#sha384` namespace, which names their algorithm
//! (SHA-384, 48 bytes); `alternatives` says how many of them there are, any of which the
//! device may report. `active="False"` marks an index this RIM does not constrain (its hash
//! is a placeholder of zeros), so it yields no reference value.

use std::collections::BTreeMap;

use roxmltree::Node;

use crate::dsig::SHA384_XMLENC;
use crate::{RimError, RimKind};

/// ISO/IEC 19770-2:2015 SWID namespace.
pub const SWID_NS: &str = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd";

/// Most alternatives one index may list (NVIDIA's use at most 4).
pub(crate) const MAX_ALTERNATIVES: usize = 16;
/// Highest SPDM measurement index (DSP0274: Index 0x01..0xEF hold measurements; the RIMs
/// number them 0..63). A u8 on the wire.
pub(crate) const MAX_INDEX: u32 = 0xFE;

pub(crate) struct Tag {
    pub tag_id: String,
    pub product: String,
    pub version: String,
    pub kind: RimKind,
    pub reference: BTreeMap<u32, Vec<[u8; 48]>>,
}

fn is_swid(n: &Node<'_, '_>, local: &str) -> bool {
    n.is_element() && n.tag_name().namespace() == Some(SWID_NS) && n.tag_name().name() == local
}

fn attr<'a>(
    n: Node<'a, '_>,
    element: &'static str,
    attribute: &'static str,
) -> Result<&'a str, RimError> {
    n.attribute(attribute)
        .ok_or(RimError::MissingAttribute { element, attribute })
}

/// NVIDIA's RIM IDs are `NV_GPU_DRIVER_<chip>_<version>` and `NV_GPU_VBIOS_<…>`, but the ID
/// is not inside the tag. The tag's `colloquialVersion` is: a driver version is three
/// decimal groups ("550.144.03"), a VBIOS version five groups of two hex digits
/// ("96.00.5E.00.01"), the form `nvidia-smi` prints for each.
pub(crate) fn kind_of(version: &str) -> Result<RimKind, RimError> {
    let groups: Vec<&str> = version.split('.').collect();
    let all = |f: fn(char) -> bool| {
        groups
            .iter()
            .all(|g| !g.is_empty() && g.len() <= 4 && g.chars().all(f))
    };
    if groups.len() == 3 && all(|c| c.is_ascii_digit()) {
        Ok(RimKind::Driver)
    } else if groups.len() == 5
        && groups.iter().all(|g| g.len() == 2)
        && all(|c| c.is_ascii_hexdigit())
    {
        Ok(RimKind::Vbios)
    } else {
        Err(RimError::UnknownKind(version.to_owned()))
    }
}

fn hash48(s: &str, index: u32) -> Result<[u8; 48], RimError> {
    let mut out = [0u8; 48];
    hex::decode_to_slice(s, &mut out).map_err(|_| RimError::BadHash { index })?;
    Ok(out)
}

/// Read the tag. `signature` is skipped (it is checked separately); every other child of
/// the document element must be one the RIM IM defines.
pub(crate) fn parse(root: Node<'_, '_>, signature: Node<'_, '_>) -> Result<Tag, RimError> {
    if !is_swid(&root, "SoftwareIdentity") {
        return Err(RimError::NotSwidTag);
    }
    let tag_id = attr(root, "SoftwareIdentity", "tagId")?.to_owned();
    let mut meta = None;
    let mut payload = None;
    for c in root.children() {
        if c == signature {
            continue;
        }
        if c.is_text() {
            if !c.text().unwrap_or("").trim().is_empty() {
                return Err(RimError::UnexpectedContent("text in SoftwareIdentity"));
            }
            continue;
        }
        if !c.is_element() {
            continue;
        }
        if is_swid(&c, "Entity") {
            continue;
        } else if is_swid(&c, "Meta") {
            if meta.replace(c).is_some() {
                return Err(RimError::UnexpectedContent("second Meta"));
            }
        } else if is_swid(&c, "Payload") {
            if payload.replace(c).is_some() {
                return Err(RimError::UnexpectedContent("second Payload"));
            }
        } else {
            return Err(RimError::UnexpectedContent(
                "element other than Entity, Meta, Payload, Signature",
            ));
        }
    }
    let meta = meta.ok_or(RimError::MissingElement("Meta"))?;
    let payload = payload.ok_or(RimError::MissingElement("Payload"))?;
    let product = attr(meta, "Meta", "product")?.to_owned();
    let version = attr(meta, "Meta", "colloquialVersion")?.to_owned();
    let kind = kind_of(&version)?;

    let mut reference = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in payload.children() {
        if r.is_text() {
            if !r.text().unwrap_or("").trim().is_empty() {
                return Err(RimError::UnexpectedContent("text in Payload"));
            }
            continue;
        }
        if !r.is_element() {
            continue;
        }
        if !is_swid(&r, "Resource") {
            return Err(RimError::UnexpectedContent(
                "Payload child is not a Resource",
            ));
        }
        let ty = attr(r, "Resource", "type")?;
        if ty != "Measurement" {
            return Err(RimError::UnexpectedContent(
                "Resource type is not Measurement",
            ));
        }
        let index_s = attr(r, "Resource", "index")?;
        let index: u32 = index_s
            .parse()
            .ok()
            .filter(|i| *i <= MAX_INDEX && !index_s.starts_with('+'))
            .ok_or_else(|| RimError::BadIndex(index_s.to_owned()))?;
        if !seen.insert(index) {
            return Err(RimError::DuplicateIndex(index));
        }
        let active = match attr(r, "Resource", "active")? {
            "True" => true,
            "False" => false,
            _ => return Err(RimError::BadActive { index }),
        };
        if let Some(size) = r.attribute("size")
            && size != "48"
        {
            return Err(RimError::BadHash { index });
        }
        let declared: usize = attr(r, "Resource", "alternatives")?
            .parse()
            .ok()
            .filter(|n| (1..=MAX_ALTERNATIVES).contains(n))
            .ok_or(RimError::BadAlternatives { index })?;
        // Hash0..Hash{declared-1}, exactly, in the SHA-384 namespace.
        let mut hashes: Vec<Option<[u8; 48]>> = vec![None; declared];
        for a in r.attributes() {
            let Some(n) = a.name().strip_prefix("Hash") else {
                continue;
            };
            if a.namespace() != Some(SHA384_XMLENC) {
                return Err(RimError::UnsupportedHashAlgorithm { index });
            }
            let slot = n
                .parse::<usize>()
                .ok()
                .filter(|_| !n.starts_with('+') && (n == "0" || !n.starts_with('0')))
                .and_then(|k| hashes.get_mut(k))
                .ok_or(RimError::BadAlternatives { index })?;
            *slot = Some(hash48(a.value(), index)?);
        }
        let hashes: Vec<[u8; 48]> = hashes
            .into_iter()
            .collect::<Option<_>>()
            .ok_or(RimError::BadAlternatives { index })?;
        if active {
            reference.insert(index, hashes);
        }
    }
    if reference.is_empty() {
        return Err(RimError::NoActiveMeasurements);
    }
    Ok(Tag {
        tag_id,
        product,
        version,
        kind,
        reference,
    })
}
