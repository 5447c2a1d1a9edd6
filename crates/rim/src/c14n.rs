//! Canonical XML Version 1.1 (W3C Recommendation, 2 May 2008), *without comments*
//! (`http://www.w3.org/2006/12/xml-c14n11`), for the two node-sets XML-DSig needs here:
//!
//! * [`Subset::Element`]: one element and its descendants taken as a *document subset*
//!   (the `SignedInfo` element, XML-DSig 1.1 §4.4.3 "canonicalized SignedInfo"). The apex's
//!   ancestors are not in the node-set, so by C14N 1.1 §2.3/§2.4 the apex renders *every*
//!   namespace declaration in scope (inherited ones included) and inherits the `xml:lang` and
//!   `xml:space` attributes of its ancestors; `xml:base` would need the §2.4 fix-up and is
//!   refused instead.
//! * [`Subset::DocumentWithout`]: the whole document minus one element subtree: what the
//!   enveloped-signature transform (XML-DSig 1.1 §6.6.4) leaves of a same-document reference
//!   with `URI=""` (§4.4.3.3: comments removed). Every remaining element has its parent in the
//!   node-set, so no xml:* inheritance applies.
//!
//! The input is roxmltree's data model, which already did what C14N §1.1/§2.1 requires of the
//! XML processor: line endings normalised to `#xA`, attribute values normalised (no DTD, so
//! every attribute is CDATA), character and predefined entity references replaced, CDATA
//! sections replaced by their text. What remains is the serialisation rules of §2.3:
//! `<e></e>` for empty elements, namespace declarations sorted by prefix (default first) and
//! rendered only where they differ from the nearest output ancestor's, attributes sorted by
//! (namespace URI, local name), the escaping tables, whitespace text kept, the XML
//! declaration and DTD dropped, and processing instructions outside the document element
//! separated by `#xA`.

use std::collections::BTreeMap;

use roxmltree::{Node, NodeType};

use crate::RimError;

const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Deepest element nesting we canonicalise; RIMs are 5 levels deep.
pub(crate) const MAX_DEPTH: usize = 64;

/// Which node-set to canonicalise.
#[derive(Clone, Copy)]
pub(crate) enum Subset<'a, 'input> {
    /// This element and its descendants, as a document subset.
    Element(Node<'a, 'input>),
    /// The whole document except this element and its descendants.
    DocumentWithout(Node<'a, 'input>),
}

/// Canonicalise `subset` (C14N 1.1 without comments) to octets.
pub(crate) fn canonicalize(subset: Subset<'_, '_>) -> Result<Vec<u8>, RimError> {
    let mut out = String::new();
    match subset {
        Subset::Element(apex) => {
            let inherited = inherited_xml_attributes(apex)?;
            element_subtree(&mut out, apex, None, &inherited)?;
        }
        Subset::DocumentWithout(excluded) => {
            let doc = excluded.document();
            let mut before_root = true;
            for child in doc.root().children() {
                match child.node_type() {
                    NodeType::Element => {
                        element_subtree(&mut out, child, Some(excluded), &[])?;
                        before_root = false;
                    }
                    // §2.3 "Processing instruction (PI) nodes": outside the document element
                    // a PI is followed (before) or preceded (after) by #xA.
                    NodeType::PI => {
                        if !before_root {
                            out.push('\n');
                        }
                        pi(&mut out, child);
                        if before_root {
                            out.push('\n');
                        }
                    }
                    // Comments are not in the "without comments" node-set; text outside the
                    // document element is not part of the data model.
                    _ => {}
                }
            }
        }
    }
    Ok(out.into_bytes())
}

/// C14N 1.1 §2.4: a document-subset apex whose ancestors are omitted inherits their
/// `xml:lang` and `xml:space` (nearest wins); `xml:id` is not inherited; `xml:base` would need
/// URI fix-up, which no RIM needs, so it is refused rather than got subtly wrong.
fn inherited_xml_attributes<'a>(apex: Node<'a, '_>) -> Result<Vec<(&'a str, &'a str)>, RimError> {
    let mut found: Vec<(&'a str, &'a str)> = Vec::new();
    for anc in apex.ancestors().skip(1).filter(Node::is_element) {
        for a in anc.attributes() {
            if a.namespace() != Some(XML_NS) {
                continue;
            }
            match a.name() {
                "base" => return Err(RimError::Canonicalization("xml:base on an ancestor")),
                name @ ("lang" | "space") => {
                    let on_apex = apex
                        .attributes()
                        .any(|x| x.namespace() == Some(XML_NS) && x.name() == name);
                    if !on_apex && !found.iter().any(|(n, _)| *n == name) {
                        found.push((name, a.value()));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(found)
}

/// In-scope namespaces of `e` as prefix → URI; the default namespace has prefix "" and is
/// absent when undeclared (`xmlns=""` means "no default namespace node", XPath 1.0 §5.4).
fn in_scope<'a>(e: Node<'a, '_>) -> BTreeMap<&'a str, &'a str> {
    e.namespaces()
        .filter(|ns| !(ns.name().is_none() && ns.uri().is_empty()))
        .map(|ns| (ns.name().unwrap_or(""), ns.uri()))
        .collect()
}

/// The element's qualified name as written: C14N renders prefixes as in the input, and two
/// prefixes may be bound to one URI (the RIMs bind `ns0` and the default to the SWID URI).
fn element_qname<'i>(e: Node<'_, 'i>) -> &'i str {
    let text = e.document().input_text();
    let rest = text.get(e.range().start + 1..).unwrap_or("");
    let end = rest
        .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
        .unwrap_or(rest.len());
    &rest[..end]
}

fn element_subtree(
    out: &mut String,
    apex: Node<'_, '_>,
    excluded: Option<Node<'_, '_>>,
    inherited: &[(&str, &str)],
) -> Result<(), RimError> {
    // Namespace context of each open output element; the apex's "parent context" is empty,
    // so it renders every namespace in scope (§2.3 namespace axis).
    let mut stack: Vec<BTreeMap<&str, &str>> = Vec::new();
    // Iterative pre-order walk (no recursion, so nesting cannot exhaust the call stack).
    let mut node = apex;
    loop {
        let descend = open(out, &mut stack, node, apex, excluded, inherited)?;
        if descend && let Some(child) = node.first_child() {
            node = child;
            continue;
        }
        loop {
            close(out, &mut stack, node, excluded);
            if node == apex {
                return Ok(());
            }
            if let Some(next) = node.next_sibling() {
                node = next;
                break;
            }
            match node.parent() {
                Some(p) => node = p,
                None => return Ok(()),
            }
        }
    }
}

/// Emit the start of `n`; returns whether to walk into its children.
fn open<'a>(
    out: &mut String,
    stack: &mut Vec<BTreeMap<&'a str, &'a str>>,
    n: Node<'a, '_>,
    apex: Node<'a, '_>,
    excluded: Option<Node<'_, '_>>,
    inherited: &[(&str, &str)],
) -> Result<bool, RimError> {
    if excluded == Some(n) {
        return Ok(false);
    }
    match n.node_type() {
        NodeType::Element => {
            if stack.len() >= MAX_DEPTH {
                return Err(RimError::TooDeep);
            }
            let scope = in_scope(n);
            let empty = BTreeMap::new();
            let parent = stack.last().unwrap_or(&empty);
            out.push('<');
            out.push_str(element_qname(n));
            // Namespace declarations: sorted by prefix, default ("") first.
            if !scope.contains_key("") && parent.contains_key("") {
                out.push_str(" xmlns=\"\"");
            }
            for (prefix, uri) in &scope {
                if parent.get(prefix) == Some(uri) {
                    continue;
                }
                if prefix.is_empty() {
                    out.push_str(" xmlns=\"");
                } else {
                    out.push_str(" xmlns:");
                    out.push_str(prefix);
                    out.push_str("=\"");
                }
                escape_attr(out, uri);
                out.push('"');
            }
            // Attributes: sorted by namespace URI (none = ""), then local name.
            let text = n.document().input_text();
            let mut attrs: Vec<(&str, &str, &str, &str)> = n
                .attributes()
                .map(|a| {
                    let qname = text.get(a.range_qname()).unwrap_or(a.name());
                    (a.namespace().unwrap_or(""), a.name(), qname, a.value())
                })
                .collect();
            if n == apex {
                for (local, value) in inherited {
                    attrs.push((XML_NS, local, xml_qname(local), value));
                }
            }
            attrs.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
            for (_, _, qname, value) in attrs {
                out.push(' ');
                out.push_str(qname);
                out.push_str("=\"");
                escape_attr(out, value);
                out.push('"');
            }
            out.push('>');
            stack.push(scope);
            Ok(true)
        }
        NodeType::Text => {
            escape_text(out, n.text().unwrap_or(""));
            Ok(false)
        }
        NodeType::PI => {
            pi(out, n);
            Ok(false)
        }
        NodeType::Comment | NodeType::Root => Ok(false),
    }
}

/// Emit the end of `n` (elements only).
fn close(
    out: &mut String,
    stack: &mut Vec<BTreeMap<&str, &str>>,
    n: Node<'_, '_>,
    excluded: Option<Node<'_, '_>>,
) {
    if excluded == Some(n) || !n.is_element() {
        return;
    }
    stack.pop();
    out.push_str("</");
    out.push_str(element_qname(n));
    out.push('>');
}

fn xml_qname(local: &str) -> &'static str {
    if local == "lang" {
        "xml:lang"
    } else {
        "xml:space"
    }
}

fn pi(out: &mut String, n: Node<'_, '_>) {
    if let Some(p) = n.pi() {
        out.push_str("<?");
        out.push_str(p.target);
        if let Some(v) = p.value.filter(|v| !v.is_empty()) {
            out.push(' ');
            out.push_str(v);
        }
        out.push_str("?>");
    }
}

/// §2.3 "Text nodes": `&` `<` `>` and `#xD` are replaced.
fn escape_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// §2.3 "Attribute nodes": `&` `<` `"` and `#x9` `#xA` `#xD` are replaced.
fn escape_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn whole(xml: &str) -> String {
        let doc = roxmltree::Document::parse(xml).unwrap();
        // Omit the element named "omit" if there is one; otherwise exclude the root node,
        // which is never met inside the document element, so nothing is omitted.
        let omit = doc
            .descendants()
            .find(|n| n.has_tag_name("omit"))
            .unwrap_or(doc.root());
        String::from_utf8(canonicalize(Subset::DocumentWithout(omit)).unwrap()).unwrap()
    }

    fn sub(xml: &str, name: &str) -> String {
        let doc = roxmltree::Document::parse(xml).unwrap();
        let e = doc
            .descendants()
            .find(|n| n.tag_name().name() == name)
            .unwrap();
        String::from_utf8(canonicalize(Subset::Element(e)).unwrap()).unwrap()
    }

    #[test]
    fn empty_elements_are_expanded_and_declaration_dropped() {
        assert_eq!(
            whole("<?xml version=\"1.0\"?>\n<a><b/><c x='1' /></a>\n\n"),
            "<a><b></b><c x=\"1\"></c></a>"
        );
    }

    #[test]
    fn attributes_sorted_by_namespace_uri_then_local_name() {
        // C14N 1.0 §3.3 example shape: unqualified attributes first, then by URI, not prefix.
        let got = whole(
            "<e xmlns:b='http://www.ietf.org' xmlns:a='http://www.w3.org' \
              b:attr='sorted' attr2='all' a:attr='out' attr='I'/>",
        );
        assert_eq!(
            got,
            "<e xmlns:a=\"http://www.w3.org\" xmlns:b=\"http://www.ietf.org\" attr=\"I\" \
             attr2=\"all\" b:attr=\"sorted\" a:attr=\"out\"></e>"
        );
    }

    #[test]
    fn redundant_namespace_declarations_are_dropped() {
        let got = whole("<a xmlns='u' xmlns:p='v'><b xmlns='u'><p:c xmlns:p='w'/></b></a>");
        assert_eq!(
            got,
            "<a xmlns=\"u\" xmlns:p=\"v\"><b><p:c xmlns:p=\"w\"></p:c></b></a>"
        );
    }

    #[test]
    fn default_namespace_undeclared_only_when_needed() {
        assert_eq!(
            whole("<a xmlns='u'><b xmlns=''><c xmlns=''/></b></a>"),
            "<a xmlns=\"u\"><b xmlns=\"\"><c></c></b></a>"
        );
        assert_eq!(whole("<a xmlns=''><b/></a>"), "<a><b></b></a>");
    }

    #[test]
    fn text_and_attribute_escaping() {
        let got = whole("<a t='&quot;&amp;&lt;&gt;&#x9;&#xA;&#xD;x'>&amp;&lt;&gt;\"'&#xD;</a>");
        assert_eq!(
            got,
            "<a t=\"&quot;&amp;&lt;>&#x9;&#xA;&#xD;x\">&amp;&lt;&gt;\"'&#xD;</a>"
        );
    }

    #[test]
    fn attribute_whitespace_normalised_and_line_endings_unified() {
        // A literal tab/newline in an attribute value becomes a space (XML 1.0 §3.3.3);
        // CRLF in text becomes LF (§2.11).
        assert_eq!(
            whole("<a t='x\ty\r\nz'>1\r\n2\r3</a>"),
            "<a t=\"x y z\">1\n2\n3</a>"
        );
    }

    #[test]
    fn cdata_comments_and_whitespace() {
        assert_eq!(
            whole("<!--c--><a>\n  <![CDATA[<&>]]><!-- gone -->\n</a><!--d-->"),
            "<a>\n  &lt;&amp;&gt;\n</a>"
        );
    }

    #[test]
    fn processing_instructions_inside_and_outside() {
        assert_eq!(
            whole("<?p1 x?><a><?p2?></a><?p3 y ?>"),
            "<?p1 x?>\n<a><?p2?></a>\n<?p3 y ?>"
        );
    }

    #[test]
    fn enveloped_subtree_is_omitted_but_surrounding_text_kept() {
        assert_eq!(
            whole("<a>\n <b/>\n<omit xmlns='x'><c/></omit>\n</a>"),
            "<a>\n <b></b>\n\n</a>"
        );
    }

    #[test]
    fn subset_apex_renders_all_inscope_namespaces() {
        // SignedInfo's shape in a RIM: the default and ns0 from the root are in scope.
        let xml = "<r xmlns='urn:s' xmlns:n0='urn:s' xmlns:n2='urn:h'><n0:m xmlns:n1='urn:t'/>\
                   <ds:S xmlns:ds='urn:d'><ds:SI><ds:X A='1'/></ds:SI></ds:S></r>";
        assert_eq!(
            sub(xml, "SI"),
            "<ds:SI xmlns=\"urn:s\" xmlns:ds=\"urn:d\" xmlns:n0=\"urn:s\" xmlns:n2=\"urn:h\">\
             <ds:X A=\"1\"></ds:X></ds:SI>"
        );
    }

    #[test]
    fn subset_apex_inherits_xml_lang_and_space_not_id() {
        let xml = "<r xml:lang='en' xml:space='preserve' xml:id='i'><s xml:lang='fr'>\
                   <t/></s></r>";
        assert_eq!(
            sub(xml, "t"),
            "<t xml:lang=\"fr\" xml:space=\"preserve\"></t>"
        );
    }

    #[test]
    fn subset_under_xml_base_is_refused() {
        let doc = roxmltree::Document::parse("<r xml:base='http://x/'><t/></r>").unwrap();
        let t = doc.descendants().find(|n| n.has_tag_name("t")).unwrap();
        assert!(matches!(
            canonicalize(Subset::Element(t)),
            Err(RimError::Canonicalization(_))
        ));
    }

    #[test]
    fn too_deep_is_refused() {
        let xml = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(
            canonicalize(Subset::DocumentWithout(doc.root())),
            Err(RimError::TooDeep)
        );
    }
}
