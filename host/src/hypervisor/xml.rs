//! A small element tree read with quick-xml: enough to walk SOAP answers
//! and to rewrite a libvirt domain definition.
//!
//! vim25 answers and domain definitions are small, so reading them whole
//! into a tree keeps the code that picks values out (or changes them)
//! simple. Lookups go by local name, since servers differ in which
//! namespace prefixes they use; the name as written and every attribute are
//! kept too, so [`Element::write`] gives back an equivalent document.
//! Comments, processing instructions and the position of text between
//! child elements are not kept: neither format has mixed content.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// One XML element.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    /// Local name (no prefix).
    pub name: String,
    /// The name as written, with its prefix if it had one (`qemu:commandline`).
    pub qname: String,
    /// Every attribute as written (`xmlns:` declarations too), values unescaped.
    pub attributes: Vec<(String, String)>,
    /// The `xsi:type` attribute (any prefix), its own prefix removed: names fault and value types.
    pub xsi_type: Option<String>,
    /// The unprefixed `type` attribute: the type of a managed object reference.
    pub ref_type: Option<String>,
    /// Text content with entities resolved.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// The first child with this local name.
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All children with this local name.
    pub(crate) fn children_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The element reached by following first children with these names.
    pub(crate) fn path(&self, names: &[&str]) -> Option<&Element> {
        names
            .iter()
            .try_fold(self, |element, name| element.child(name))
    }

    /// The trimmed text content.
    pub(crate) fn value(&self) -> &str {
        self.text.trim()
    }
}

/// Changing and writing elements: what a libvirt clone's definition needs.
#[cfg(feature = "libvirt")]
impl Element {
    /// An element without attributes or children, written as `qname`.
    pub(crate) fn new(qname: &str) -> Self {
        Self {
            name: local_part(qname).to_owned(),
            qname: qname.to_owned(),
            ..Self::default()
        }
    }

    /// The value of the attribute written as `name`.
    pub(crate) fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Sets (or adds) the attribute written as `name`.
    pub(crate) fn set_attribute(&mut self, name: &str, value: &str) {
        match self.attributes.iter_mut().find(|(key, _)| key == name) {
            Some((_, old)) => *old = value.to_owned(),
            None => self.attributes.push((name.to_owned(), value.to_owned())),
        }
    }

    /// The first child with this local name, to change.
    pub(crate) fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.children.iter_mut().find(|c| c.name == name)
    }

    /// The element as XML text, every value escaped; text is written only
    /// for elements without children (whitespace between elements is not
    /// content in the formats read here).
    pub(crate) fn write(&self) -> String {
        let mut out = String::new();
        self.write_into(&mut out);
        out
    }

    fn write_into(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.qname);
        for (key, value) in &self.attributes {
            out.push(' ');
            out.push_str(key);
            out.push_str("=\"");
            out.push_str(&quick_xml::escape::escape(value.as_str()));
            out.push('"');
        }
        if self.children.is_empty() && self.text.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        if self.children.is_empty() {
            out.push_str(&quick_xml::escape::escape(self.text.as_str()));
        }
        for child in &self.children {
            child.write_into(out);
        }
        out.push_str("</");
        out.push_str(&self.qname);
        out.push('>');
    }
}

/// `name` without its namespace prefix.
#[cfg(feature = "libvirt")]
fn local_part(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// Reads a whole document into its root element.
pub(crate) fn parse(xml: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|err| format!("malformed XML at byte {}: {err}", reader.error_position()))?;
        match event {
            Event::Start(start) => stack.push(element(&start)?),
            Event::Empty(start) => attach(&mut stack, &mut root, element(&start)?)?,
            Event::End(_) => {
                let done = stack.pop().ok_or("unbalanced end tag")?;
                attach(&mut stack, &mut root, done)?;
            }
            Event::Text(text) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text.xml10_content());
                }
            }
            Event::CData(data) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&data.xml10_content());
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(ch)) => ch.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&reference)
                        .ok_or_else(|| format!("unknown entity &{};", &*reference))?
                        .to_string(),
                    Err(err) => return Err(format!("bad character reference: {err}")),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err("document ended inside an element".to_string());
    }
    root.ok_or_else(|| "no root element".to_string())
}

/// Adds a finished element to its parent, or makes it the root.
fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_none() => *root = Some(element),
        None => return Err("more than one root element".to_string()),
    }
    Ok(())
}

/// Builds an element (without children) from a start tag.
fn element(start: &BytesStart<'_>) -> Result<Element, String> {
    let mut element = Element {
        name: start.local_name().as_ref().to_string(),
        qname: start.name().as_ref().to_string(),
        ..Element::default()
    };
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|err| format!("bad attribute: {err}"))?;
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|err| format!("bad attribute value: {err}"))?
            .into_owned();
        element
            .attributes
            .push((attribute.key.as_ref().to_string(), value.clone()));
        if attribute.key.local_name().as_ref() != "type" {
            continue;
        }
        if attribute.key.prefix().is_some() {
            let local = value.rsplit(':').next().unwrap_or(&value).to_string();
            element.xsi_type = Some(local);
        } else {
            element.ref_type = Some(value);
        }
    }
    Ok(element)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_names_types_and_text() {
        let root = parse(
            r#"<?xml version="1.0"?><a:Root xmlns:a="urn:x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
               <obj type="VirtualMachine">vm-1</obj>
               <val xsi:type="xsd:string">a &amp; b &#x41;</val><empty/></a:Root>"#,
        )
        .unwrap();
        assert_eq!(root.name, "Root");
        let obj = root.child("obj").unwrap();
        assert_eq!(obj.ref_type.as_deref(), Some("VirtualMachine"));
        assert_eq!(obj.xsi_type, None);
        assert_eq!(obj.value(), "vm-1");
        let val = root.child("val").unwrap();
        assert_eq!(val.xsi_type.as_deref(), Some("string"));
        assert_eq!(val.value(), "a & b A");
        assert!(root.child("empty").is_some());
    }

    #[test]
    fn rejects_broken_xml() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("").is_err());
        assert!(parse("<a>").is_err());
    }
}
