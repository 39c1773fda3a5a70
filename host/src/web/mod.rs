//! Read-only HTML status pages: the toolkit they share. The pages live
//! with what they show: the daemon's (`daemon::page`, served at `/` on the
//! `[daemon] metrics` listener) and the unit controller's (`unit::page`).
//! This module depends on nothing but the app states and the journal, so
//! the metrics server can serve any page without a cycle through the API.
//!
//! The pages are small and built in code with [`std::fmt::Write`], not
//! with a template crate: a template engine (or maud's proc macro) would
//! cost a dependency and build time for two pages of a few tables, and
//! the one thing it would give, escaping, is here in one type. Every
//! piece of a page is a [`Markup`]; text becomes `Markup` only escaped
//! ([`Markup::text`], `From<&str>`), and tags only through this module's
//! builders, so an app name, a kit's reason or an event's detail (all
//! hostile: a kit chooses its reason) always shows as text.
//!
//! A page needs no script: it reloads itself with `<meta
//! http-equiv="refresh">`, and is served with [`HEADERS`], whose
//! Content-Security-Policy allows inline styles and `data:` pictures and
//! nothing else, so even a bug in the escaping could not run a script.

mod events;
mod html;
mod page;

pub use events::recent_events;
pub use html::{Escaped, Markup, escape, shorten};
pub use page::{Document, Table, Tone, badge, state_badge, time_ago, time_until};

/// The headers every page is served with: HTML, never cached (it is a
/// snapshot), never framed, sniffed or given a referrer, and a policy
/// that allows inline style and `data:` images only (no script, no
/// request to anywhere). Header names and values, for any HTTP server.
pub const HEADERS: [(&str, &str); 6] = [
    ("content-type", "text/html; charset=utf-8"),
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
];

/// A page rendered afresh for each request, so a server can serve it
/// without knowing what it shows (the metrics listener serves the
/// daemon's page through this).
#[async_trait::async_trait]
pub trait StatusPage: Send + Sync {
    /// The whole HTML document as things stand now. Implementations bound
    /// their own waits (a slow journal shows as a note, not a hung page).
    async fn render(&self) -> String;
}
