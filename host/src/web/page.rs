//! The pieces of a status page: the document shell, tables and state
//! badges, each writing [`Markup`] only.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::html::{Markup, escape};
use crate::status::State;

/// The whole style sheet, inline (the Content-Security-Policy allows
/// inline styles and nothing else): readable on a laptop and a phone,
/// light and dark.
const STYLE: &str = "\
:root{color-scheme:light dark;--good:#1a7f37;--warn:#9a6700;--bad:#cf222e;--idle:#6e7781}\
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;max-width:80rem}\
h1{font-size:1.4rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}\
p{margin:.25rem 0}.muted{opacity:.6}\
table{border-collapse:collapse;width:100%}\
th,td{text-align:left;vertical-align:top;padding:.3rem .6rem;border-bottom:1px solid #8884}\
th,td:first-child,code,.badge{white-space:nowrap}th{font-weight:600}td{overflow-wrap:anywhere}\
code{font-family:ui-monospace,monospace}\
.badge{display:inline-block;padding:0 .5rem;border-radius:.6rem;color:#fff;font-weight:600}\
.good{background:var(--good)}.warn{background:var(--warn)}.bad{background:var(--bad)}.idle{background:var(--idle)}\
img{max-width:100%}";

/// How a state reads at a glance: the colour of its badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// All is well (green).
    Good,
    /// Worth a look, nothing is being done yet (amber).
    Warn,
    /// Something is being done, or needs an admin (red).
    Bad,
    /// Deliberately not watched closely: maintenance, stopped (grey).
    Idle,
}

impl Tone {
    /// The CSS class the style sheet colours.
    fn class(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Warn => "warn",
            Self::Bad => "bad",
            Self::Idle => "idle",
        }
    }

    /// The tone of an app's `state`. States added later (`stopped`) are
    /// grey until they are given a colour here.
    pub fn of(state: State) -> Self {
        match state {
            State::Healthy => Self::Good,
            State::Degraded | State::Failing | State::Starting => Self::Warn,
            State::Recovering
            | State::Escalating
            | State::Manual
            | State::Unknown
            | State::Blocked => Self::Bad,
            _ => Self::Idle,
        }
    }
}

/// `text` as a coloured badge, for states that are not an app's
/// [`State`] (a unit's health).
pub fn badge(text: &str, tone: Tone) -> Markup {
    Markup::element(
        "span",
        Some(&format!("badge {}", tone.class())),
        &Markup::text(text),
    )
}

/// An app's state as a coloured badge with its public name as the text.
pub fn state_badge(state: State) -> Markup {
    badge(state.name(), Tone::of(state))
}

/// `at` as the page shows past times: RFC 3339 UTC to the second, with
/// how long ago it was (against `now`) for the eye.
pub fn time_ago(at: SystemTime, now: SystemTime) -> Markup {
    let ago = now.duration_since(at).unwrap_or(Duration::ZERO);
    stamped(at, &format!(" ({} ago)", whole_seconds(ago)))
}

/// `at` as the page shows future times (a window's end): RFC 3339 UTC to
/// the second, with how long until then.
pub fn time_until(at: SystemTime, now: SystemTime) -> Markup {
    let ahead = at.duration_since(now).unwrap_or(Duration::ZERO);
    stamped(at, &format!(" (in {})", whole_seconds(ahead)))
}

/// `at` in RFC 3339 with `note` dimmed after it.
fn stamped(at: SystemTime, note: &str) -> Markup {
    let mut cell = Markup::text(&humantime::format_rfc3339_seconds(at).to_string());
    cell.push(&Markup::muted(note));
    cell
}

/// `duration` to the second, as humans read it (`1m 24s`).
fn whole_seconds(duration: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(duration.as_secs()))
}

/// A table: a header row and rows of cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<Markup>,
    rows: Vec<Vec<Markup>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| Markup::text(h)).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; cells beyond the headers are shown, missing ones empty.
    pub fn row(&mut self, cells: impl IntoIterator<Item = Markup>) {
        self.rows.push(cells.into_iter().collect());
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as markup.
    pub fn to_markup(&self) -> Markup {
        let mut html = String::from("<table><thead><tr>");
        for header in &self.headers {
            let _ = write!(html, "<th>{header}</th>");
        }
        html.push_str("</tr></thead><tbody>");
        for row in &self.rows {
            html.push_str("<tr>");
            for cell in row {
                let _ = write!(html, "<td>{cell}</td>");
            }
            html.push_str("</tr>");
        }
        html.push_str("</tbody></table>");
        Markup::trusted(html)
    }
}

/// A whole HTML page: a title, then headings, paragraphs, tables and
/// pictures in the order they are added. It reloads itself with
/// `<meta http-equiv="refresh">` when asked to, so the page needs no
/// script (and its Content-Security-Policy allows none).
#[derive(Debug, Clone)]
pub struct Document {
    title: String,
    refresh: Option<Duration>,
    body: Markup,
}

impl Document {
    /// An empty page titled `title` (also its first heading).
    pub fn new(title: &str) -> Self {
        let mut document = Self {
            title: title.to_owned(),
            refresh: None,
            body: Markup::default(),
        };
        document.push(Markup::element("h1", None, &Markup::text(title)));
        document
    }

    /// Makes the browser load the page again every `every` (whole seconds,
    /// at least one).
    pub fn refresh_every(mut self, every: Duration) -> Self {
        self.refresh = Some(every.max(Duration::from_secs(1)));
        self
    }

    /// Adds a section heading.
    pub fn heading(&mut self, text: &str) {
        self.push(Markup::element("h2", None, &Markup::text(text)));
    }

    /// Adds a paragraph of `content` (text converts, escaped).
    pub fn paragraph(&mut self, content: impl Into<Markup>) {
        self.push(Markup::element("p", None, &content.into()));
    }

    /// Adds a table.
    pub fn table(&mut self, table: &Table) {
        self.push(table.to_markup());
    }

    /// Adds a picture from its bytes (`media_type` such as `image/png` or
    /// `image/svg+xml`), inlined as a `data:` URL: the page makes no
    /// second request, and `img-src data:` is all its policy allows.
    pub fn image(&mut self, alt: &str, media_type: &str, bytes: &[u8]) {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.push(Markup::trusted(format!(
            "<img alt=\"{}\" src=\"data:{};base64,{data}\">",
            escape(alt),
            escape(media_type)
        )));
    }

    /// Adds markup built elsewhere with this module's builders.
    pub fn push(&mut self, markup: Markup) {
        self.body.push(&markup);
    }

    /// The page's HTML.
    pub fn finish(self) -> String {
        let mut html = String::from(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        );
        if let Some(every) = self.refresh {
            let _ = write!(
                html,
                "<meta http-equiv=\"refresh\" content=\"{}\">",
                every.as_secs()
            );
        }
        let _ = writeln!(
            html,
            "<title>{}</title><style>{STYLE}</style></head><body>{}</body></html>",
            escape(&self.title),
            self.body
        );
        html
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_have_the_tones_admins_expect() {
        assert_eq!(Tone::of(State::Healthy), Tone::Good);
        for state in [State::Degraded, State::Failing, State::Starting] {
            assert_eq!(Tone::of(state), Tone::Warn, "{state}");
        }
        for state in [
            State::Recovering,
            State::Escalating,
            State::Manual,
            State::Unknown,
            State::Blocked,
        ] {
            assert_eq!(Tone::of(state), Tone::Bad, "{state}");
        }
        assert_eq!(Tone::of(State::Maintenance), Tone::Idle);
    }

    #[test]
    fn a_badge_names_the_state_in_its_colour() {
        assert_eq!(
            state_badge(State::Manual).as_str(),
            "<span class=\"badge bad\">manual</span>"
        );
        assert_eq!(
            badge("<ok>", Tone::Good).as_str(),
            "<span class=\"badge good\">&lt;ok&gt;</span>"
        );
    }

    #[test]
    fn a_table_escapes_headers_and_text_cells() {
        let mut table = Table::new(&["app", "<why>"]);
        assert!(table.is_empty());
        table.row([Markup::text("web"), Markup::text("<script>x</script>")]);
        table.row([Markup::text("db"), state_badge(State::Healthy)]);
        assert!(!table.is_empty());
        assert_eq!(
            table.to_markup().as_str(),
            "<table><thead><tr><th>app</th><th>&lt;why&gt;</th></tr></thead><tbody>\
             <tr><td>web</td><td>&lt;script&gt;x&lt;/script&gt;</td></tr>\
             <tr><td>db</td><td><span class=\"badge good\">healthy</span></td></tr>\
             </tbody></table>"
        );
    }

    #[test]
    fn the_document_has_its_title_refresh_and_style_and_escapes_text() {
        let mut page = Document::new("medic <dev>").refresh_every(Duration::from_millis(5500));
        page.heading("Apps & more");
        page.paragraph("<b>not bold</b>");
        let html = page.finish();
        assert!(
            html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"),
            "{html}"
        );
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        assert!(html.contains("<title>medic &lt;dev&gt;</title>"));
        assert!(html.contains("<h1>medic &lt;dev&gt;</h1>"));
        assert!(html.contains("<h2>Apps &amp; more</h2>"));
        assert!(html.contains("<p>&lt;b&gt;not bold&lt;/b&gt;</p>"));
        assert!(html.contains("<style>") && html.contains(".badge{"));
        assert!(!html.contains("<script"));
        assert!(html.ends_with("</body></html>\n"));
    }

    #[test]
    fn without_refresh_no_meta_refresh_and_at_least_a_second() {
        assert!(!Document::new("x").finish().contains("refresh"));
        let html = Document::new("x").refresh_every(Duration::ZERO).finish();
        assert!(html.contains("content=\"1\""), "{html}");
    }

    #[test]
    fn an_image_is_inlined_as_a_data_url_with_escaped_alt() {
        let mut page = Document::new("map");
        page.image("the \"map\"", "image/png", &[0x89, b'P', b'N', b'G']);
        let html = page.finish();
        assert!(
            html.contains(
                "<img alt=\"the &quot;map&quot;\" src=\"data:image/png;base64,iVBORw==\">"
            ),
            "{html}"
        );
    }

    #[test]
    fn times_show_how_long_ago() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(90);
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(5_300);
        assert_eq!(
            time_ago(at, now).as_str(),
            "1970-01-01T00:00:05Z<span class=\"muted\"> (1m 24s ago)</span>"
        );
        // A clock that stepped back shows no negative age.
        assert!(time_ago(now, at).as_str().contains("(0s ago)"));
        assert_eq!(
            time_until(now, at).as_str(),
            "1970-01-01T00:01:30Z<span class=\"muted\"> (in 1m 24s)</span>"
        );
        assert!(time_until(at, now).as_str().contains("(in 0s)"));
    }
}
