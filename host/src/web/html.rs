//! Escaped text and the [`Markup`] that carries it: the one place where
//! text becomes HTML, so no piece of an app name, a kit's reason or an
//! event's detail can reach a page as markup.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// `text` as HTML text: `&`, `<`, `>`, `"` and `'` as character
/// references (so it is safe both between tags and inside a quoted
/// attribute), and control characters other than tab and newline written
/// out as `\u{1b}`, so a kit cannot hide text or clear anything with them.
pub fn escape(text: &str) -> Escaped<'_> {
    Escaped(text)
}

/// Text that writes itself escaped; see [`escape`].
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                '\t' | '\n' => f.write_char(c)?,
                c if c.is_control() => write!(f, "{}", c.escape_unicode())?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A piece of HTML that is safe to put into a page: text goes in only
/// through [`Markup::text`] (escaped), and markup only through this
/// module's own builders, so a page assembled from `Markup` values has
/// no unescaped text in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Markup(String);

impl Markup {
    /// `text`, escaped.
    pub fn text(text: &str) -> Self {
        Self(escape(text).to_string())
    }

    /// `text` escaped, shown dimmed: for "none", "never" and other
    /// placeholders that should not draw the eye.
    pub fn muted(text: &str) -> Self {
        Self::element("span", Some("muted"), &Self::text(text))
    }

    /// `text` escaped, in a monospace font: for pids and other values.
    pub fn code(text: &str) -> Self {
        Self::element("code", None, &Self::text(text))
    }

    /// `inner` wrapped in `<tag class="class">`. Private: callers outside
    /// this module compose the builders, never name tags themselves.
    pub(super) fn element(tag: &'static str, class: Option<&str>, inner: &Markup) -> Self {
        let mut html = String::new();
        let _ = match class {
            Some(class) => write!(html, "<{tag} class=\"{}\">{inner}</{tag}>", escape(class)),
            None => write!(html, "<{tag}>{inner}</{tag}>"),
        };
        Self(html)
    }

    /// Markup written by this module's builders (not text: nothing is
    /// escaped here).
    pub(super) fn trusted(html: String) -> Self {
        Self(html)
    }

    /// Appends `other`, for cells that show several pieces.
    pub fn push(&mut self, other: &Markup) {
        self.0.push_str(&other.0);
    }

    /// `parts` one after the other, `separator` (text) between them.
    pub fn join(parts: impl IntoIterator<Item = Markup>, separator: &str) -> Self {
        let separator = Self::text(separator);
        let mut joined = Self::default();
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                joined.push(&separator);
            }
            joined.push(&part);
        }
        joined
    }

    /// The HTML.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Markup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Markup {
    /// Text, escaped: a plain string never becomes markup.
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

impl From<String> for Markup {
    /// Text, escaped: a plain string never becomes markup.
    fn from(text: String) -> Self {
        Self::text(&text)
    }
}

/// At most `max` characters of `text`, with `…` in place of the rest: a
/// page stays readable when a kit's reason runs to kilobytes.
pub fn shorten(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_markup_character_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&amp;</a>"#).to_string(),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn a_script_is_text() {
        let markup = Markup::text("<script>alert(1)</script>");
        assert_eq!(markup.as_str(), "&lt;script&gt;alert(1)&lt;/script&gt;");
        assert!(!markup.as_str().contains('<'));
    }

    #[test]
    fn control_characters_are_written_out_and_other_text_kept() {
        assert_eq!(
            escape("down\u{1b}[2J\0 ok\tfine\nnext ünïcödé 🚑").to_string(),
            "down\\u{1b}[2J\\u{0} ok\tfine\nnext ünïcödé 🚑"
        );
    }

    #[test]
    fn strings_convert_as_text_and_builders_escape() {
        assert_eq!(Markup::from("<b>").as_str(), "&lt;b&gt;");
        assert_eq!(Markup::from("<b>".to_owned()).as_str(), "&lt;b&gt;");
        assert_eq!(
            Markup::muted("<none>").as_str(),
            "<span class=\"muted\">&lt;none&gt;</span>"
        );
        assert_eq!(Markup::code("1&2").as_str(), "<code>1&amp;2</code>");
    }

    #[test]
    fn join_escapes_the_separator() {
        let joined = Markup::join([Markup::text("a"), Markup::code("b")], " <> ");
        assert_eq!(joined.as_str(), "a &lt;&gt; <code>b</code>");
        assert_eq!(Markup::join([], ", "), Markup::default());
    }

    #[test]
    fn shorten_cuts_at_a_character_boundary() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("ééééé", 5), "ééééé");
        assert_eq!(shorten("éééééé", 5), "ééééé…");
        assert!(matches!(shorten("abc", 3), Cow::Borrowed(_)));
    }
}
