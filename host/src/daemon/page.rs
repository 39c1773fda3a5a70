//! The daemon's status page: every app's state and last check, the reset
//! budget, and the most recent journal events.
//!
//! It is served on the `[daemon] metrics` listener, which is plain HTTP
//! without authentication (it exists for Prometheus). That is acceptable
//! because the page shows what `/metrics` already gives anyone who can
//! reach it (app names, states, the reset budget, the backend's kind) plus
//! the kits' reasons and events' kinds and a few chosen fields of their
//! details (see [`DETAIL_KEYS`]). It never shows credentials, command
//! lines, environments, paths, the config file or who acted (admin uids):
//! event details are shown through an allow-list, not a deny-list, so a
//! field added later stays hidden until it is judged harmless. Put the
//! listener on loopback or a management network like any metrics port.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::api::ApiState;
use crate::journal::Event;
use crate::maintenance::Window;
use crate::status::State;
use crate::supervisor::AppStatus;
use crate::web::{
    Document, Markup, StatusPage, Table, Tone, badge, recent_events, shorten, state_badge,
    time_ago, time_until,
};

/// How many journal events the page lists, newest first.
pub const RECENT_EVENTS: u64 = 50;

/// How often the page reloads itself: states change at check intervals
/// (seconds), and an open page must not load the journal much.
const REFRESH: Duration = Duration::from_secs(5);

/// How long the page waits for the journal and for the reset budget (held
/// while a reset is decided) before it shows a note instead.
const WAIT: Duration = Duration::from_secs(2);

/// At most this many characters of one reason or detail value are shown.
const TEXT_MAX: usize = 300;

/// The fields of an event's detail the page shows, in this order; `reason`
/// without its name. Anything else (`by`, `config`, `path`, `error`,
/// `fault`, `pid`, `errors`...) may name people, files or commands, and
/// stays in the journal for `medic events`.
const DETAIL_KEYS: [&str; 10] = [
    "reason",
    "action",
    "step",
    "attempt",
    "of",
    "failures",
    "then",
    "outcome",
    "why",
    "resets_left",
];

/// The reset budget as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    /// The backend's kind (`dry-run`, `qmp`...), as `[escalation] backend`.
    pub backend: &'static str,
    /// Resets the budget still allows; `None` when the budget was busy
    /// (a reset being decided) past the page's wait.
    pub resets_left: Option<u32>,
    /// `[escalation] max_resets`.
    pub max_resets: u32,
    /// `[escalation] reset_window`.
    pub reset_window: Duration,
}

/// Everything the daemon's page shows, gathered at one moment, so that
/// rendering ([`render_daemon`]) is pure and testable.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonView {
    /// When it was gathered (ages are counted from here).
    pub now: SystemTime,
    /// Every watched app, by name.
    pub apps: Vec<AppStatus>,
    /// The reset budget.
    pub escalation: Escalation,
    /// The maintenance window over every app, if one is open.
    pub global_maintenance: Option<Window>,
    /// The most recent events, newest first, or why they cannot be shown.
    pub events: Result<Vec<Event>, String>,
}

/// The daemon's page, reading what the admin API reads: the running
/// supervisors' statuses (kept current across reloads by the daemon),
/// the escalator and the journal on disk.
pub struct DaemonPage {
    api: Arc<ApiState>,
}

impl DaemonPage {
    /// The page over the admin API's state.
    pub fn new(api: Arc<ApiState>) -> Self {
        Self { api }
    }

    /// Reads every app's status, the budget and the recent events.
    async fn gather(&self) -> DaemonView {
        let apps = self.statuses();
        let resets_left = tokio::time::timeout(WAIT, self.api.escalator.remaining())
            .await
            .ok();
        let settings = &self.api.escalation;
        DaemonView {
            now: SystemTime::now(),
            apps,
            escalation: Escalation {
                backend: settings.backend.name(),
                resets_left,
                max_resets: settings.max_resets,
                reset_window: settings.reset_window,
            },
            global_maintenance: self.api.maintenance.snapshot().global,
            events: recent_events(self.api.state_dir.clone(), RECENT_EVENTS, WAIT).await,
        }
    }

    /// A copy of every app's current status (no lock is held afterwards).
    fn statuses(&self) -> Vec<AppStatus> {
        self.api
            .apps
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|handle| handle.status.borrow().clone())
            .collect()
    }
}

#[async_trait::async_trait]
impl StatusPage for DaemonPage {
    async fn render(&self) -> String {
        render_daemon(&self.gather().await)
    }
}

/// The daemon's page for `view`.
pub fn render_daemon(view: &DaemonView) -> String {
    let mut page = Document::new("medic status").refresh_every(REFRESH);
    page.paragraph(summary(&view.apps));
    page.paragraph(escalation(&view.escalation));
    if let Some(window) = &view.global_maintenance {
        page.paragraph(Markup::join(
            [
                badge("maintenance", Tone::Idle),
                Markup::text("every app, until"),
                maintenance(window, view.now),
            ],
            " ",
        ));
    }
    page.heading("Apps");
    page.table(&apps_table(&view.apps, view.now));
    page.heading(&format!(
        "Recent events (newest {RECENT_EVENTS}, newest first)"
    ));
    match &view.events {
        Ok(events) if events.is_empty() => page.paragraph(Markup::muted("none yet")),
        Ok(events) => page.table(&events_table(events, view.now)),
        Err(note) => page.paragraph(Markup::muted(note)),
    }
    page.paragraph(Markup::muted(&format!(
        "As of {}; reloads every {}.",
        humantime::format_rfc3339_seconds(view.now),
        humantime::format_duration(REFRESH)
    )));
    page.finish()
}

/// "3 apps: 2 healthy, 1 manual", with the states as badges.
fn summary(apps: &[AppStatus]) -> Markup {
    let mut counts: Vec<(State, usize)> = Vec::new();
    for app in apps {
        match counts.iter_mut().find(|(state, _)| *state == app.state) {
            Some((_, n)) => *n += 1,
            None => counts.push((app.state, 1)),
        }
    }
    let mut line = Markup::text(&match apps.len() {
        1 => "1 app watched: ".to_owned(),
        n => format!("{n} apps watched: "),
    });
    if counts.is_empty() {
        line.push(&Markup::muted("none"));
    }
    line.push(&Markup::join(
        counts.into_iter().map(|(state, n)| {
            Markup::join([state_badge(state), Markup::text(&n.to_string())], " ")
        }),
        " · ",
    ));
    line
}

/// The reset backend and what the budget allows.
fn escalation(escalation: &Escalation) -> Markup {
    let left = escalation.resets_left.map_or_else(
        || Markup::muted("unknown (a reset is being decided)"),
        |left| Markup::text(&left.to_string()),
    );
    Markup::join(
        [
            Markup::text("VM reset backend:"),
            Markup::code(escalation.backend),
            Markup::text("· resets left:"),
            left,
            Markup::text(&format!(
                "of {} per {}",
                escalation.max_resets,
                humantime::format_duration(escalation.reset_window)
            )),
        ],
        " ",
    )
}

/// One row per app.
fn apps_table(apps: &[AppStatus], now: SystemTime) -> Table {
    let mut table = Table::new(&[
        "app",
        "state",
        "last check",
        "reason",
        "failures",
        "attempts",
        "pid",
        "maintenance",
    ]);
    for app in apps {
        table.row([
            Markup::text(&app.app),
            state_badge(app.state),
            last_check(app, now),
            reason(app),
            Markup::text(&app.failures.to_string()),
            Markup::text(&format!("{}/{}", app.attempts_used, app.attempts_allowed)),
            app.pid
                .map_or_else(|| Markup::muted("–"), |pid| Markup::code(&pid.to_string())),
            app.maintenance
                .as_ref()
                .map_or_else(|| Markup::muted("–"), |window| maintenance(window, now)),
        ]);
    }
    table
}

/// The last check's result and when, or "never".
fn last_check(app: &AppStatus, now: SystemTime) -> Markup {
    match &app.last_check {
        None => Markup::muted("never"),
        Some(check) => Markup::join(
            [Markup::text(check.result.as_str()), time_ago(check.at, now)],
            " · ",
        ),
    }
}

/// Why the app is held or blocked, and what its kit said last.
fn reason(app: &AppStatus) -> Markup {
    let held = app
        .reason
        .as_deref()
        .map(|why| Markup::text(&format!("held: {}", shorten(why, TEXT_MAX))));
    let said = app
        .last_check
        .as_ref()
        .and_then(|check| check.reason.as_deref())
        .map(|why| Markup::text(&shorten(why, TEXT_MAX)));
    let parts: Vec<Markup> = held.into_iter().chain(said).collect();
    if parts.is_empty() {
        Markup::muted("–")
    } else {
        Markup::join(parts, " — ")
    }
}

/// A maintenance window: its end and the admin's reason (not who opened it).
fn maintenance(window: &Window, now: SystemTime) -> Markup {
    let mut cell = time_until(window.until, now);
    if !window.reason.is_empty() {
        cell.push(&Markup::text(&format!(
            ": {}",
            shorten(&window.reason, TEXT_MAX)
        )));
    }
    cell
}

/// One row per event.
fn events_table(events: &[Event], now: SystemTime) -> Table {
    let mut table = Table::new(&["time", "app", "event", "detail"]);
    for event in events {
        table.row([
            time_ago(event.ts, now),
            event
                .app
                .as_deref()
                .map_or_else(|| Markup::muted("(daemon)"), Markup::text),
            Markup::code(&event.kind.to_string()),
            detail(&event.detail),
        ]);
    }
    table
}

/// The allowed fields of an event's detail ([`DETAIL_KEYS`]): the reason
/// as it is, the others as `name: value`; nested values are left out.
fn detail(detail: &Value) -> Markup {
    let parts = DETAIL_KEYS.iter().filter_map(|key| {
        let value = match detail.get(key)? {
            Value::String(text) => shorten(text, TEXT_MAX).into_owned(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return None,
        };
        Some(Markup::text(&match *key {
            "reason" => value,
            key => format!("{key}: {value}"),
        }))
    });
    let joined = Markup::join(parts, " · ");
    if joined == Markup::default() {
        Markup::muted("–")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Kind;
    use crate::status::CheckResult;
    use crate::supervisor::LastCheck;
    use serde_json::json;

    const HOSTILE: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    fn app(name: &str, state: State) -> AppStatus {
        AppStatus::bare(name, state)
    }

    fn view() -> DaemonView {
        let mut web = app("web", State::Healthy);
        web.pid = Some(4242);
        web.last_check = Some(LastCheck {
            at: at(55),
            result: CheckResult::Healthy,
            reason: None,
            duration_ms: 1.5,
        });
        let mut db = app("db", State::Manual);
        db.reason = Some(format!("held {HOSTILE}"));
        db.failures = 4;
        db.attempts_used = 3;
        db.last_check = Some(LastCheck {
            at: at(58),
            result: CheckResult::Failed,
            reason: Some(HOSTILE.to_owned()),
            duration_ms: 3.0,
        });
        db.maintenance = Some(Window {
            until: at(660),
            reason: "upgrade".to_owned(),
            by: "uid 1000".to_owned(),
        });
        let mut failed = Event::new(
            Some("db"),
            Kind::AppFailed,
            json!({"reason": HOSTILE, "failures": 4, "check": {"perfdata": "x"}}),
        );
        failed.ts = at(58);
        let mut admin = Event::new(
            Some("db"),
            Kind::AdminAction,
            json!({"action": "recover", "by": "uid 1000"}),
        );
        admin.ts = at(50);
        let mut started = Event::new(
            None,
            Kind::DaemonStarted,
            json!({"config": "/etc/medic/secret-place.toml", "apps": ["web", "db"]}),
        );
        started.ts = at(0);
        DaemonView {
            now: at(60),
            apps: vec![db, web],
            escalation: Escalation {
                backend: "qmp",
                resets_left: Some(2),
                max_resets: 3,
                reset_window: Duration::from_secs(3600),
            },
            global_maintenance: None,
            events: Ok(vec![failed, admin, started]),
        }
    }

    #[test]
    fn the_page_lists_apps_budget_and_events() {
        let html = render_daemon(&view());
        for expected in [
            "2 apps watched: <span class=\"badge bad\">manual</span> 1 · <span class=\"badge good\">healthy</span> 1",
            "VM reset backend: <code>qmp</code> · resets left: 2 of 3 per 1h",
            "<tr><td>web</td><td><span class=\"badge good\">healthy</span></td><td>healthy · 2023-11-14T22:14:15Z<span class=\"muted\"> (5s ago)</span></td>",
            "<td><code>4242</code></td>",
            "<td>4</td><td>3/3</td>",
            "2023-11-14T22:24:20Z<span class=\"muted\"> (in 10m)</span>: upgrade",
            "<code>app_failed</code>",
            "<td>action: recover</td>",
            "<td><span class=\"muted\">(daemon)</span></td><td><code>daemon_started</code></td><td><span class=\"muted\">–</span></td>",
            "<meta http-equiv=\"refresh\" content=\"5\">",
        ] {
            assert!(html.contains(expected), "no {expected:?} in {html}");
        }
        // Newest first, as given.
        let failed = html.find("app_failed").unwrap();
        let started = html.find("daemon_started").unwrap();
        assert!(failed < started);
    }

    #[test]
    fn hostile_text_is_escaped_everywhere() {
        let html = render_daemon(&view());
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;";
        assert!(
            html.contains(&format!("held: held {escaped} — {escaped}")),
            "{html}"
        );
        assert!(
            html.contains(&format!("<td>{escaped} · failures: 4</td>")),
            "{html}"
        );
    }

    #[test]
    fn details_outside_the_allow_list_are_not_shown() {
        let html = render_daemon(&view());
        for hidden in ["uid 1000", "secret-place", "perfdata", "\"apps\""] {
            assert!(!html.contains(hidden), "{hidden} shown in {html}");
        }
    }

    #[test]
    fn notes_replace_what_could_not_be_read() {
        let mut view = view();
        view.escalation.resets_left = None;
        view.events = Err("the journal did not answer within 2s".to_owned());
        view.apps.clear();
        view.global_maintenance = Some(Window {
            until: at(120),
            reason: "<patching>".to_owned(),
            by: "uid 0".to_owned(),
        });
        let html = render_daemon(&view);
        for expected in [
            "0 apps watched: <span class=\"muted\">none</span>",
            "resets left: <span class=\"muted\">unknown (a reset is being decided)</span>",
            "<p><span class=\"muted\">the journal did not answer within 2s</span></p>",
            "<span class=\"badge idle\">maintenance</span> every app, until 2023-11-14T22:15:20Z<span class=\"muted\"> (in 1m)</span>: &lt;patching&gt;",
        ] {
            assert!(html.contains(expected), "no {expected:?} in {html}");
        }
        view.events = Ok(Vec::new());
        assert!(render_daemon(&view).contains("none yet"));
    }

    #[test]
    fn long_reasons_are_shortened() {
        let mut view = view();
        view.apps[0].last_check.as_mut().unwrap().reason = Some("x".repeat(5000));
        view.apps[0].reason = None;
        let html = render_daemon(&view);
        assert!(html.contains(&format!("<td>{}…</td>", "x".repeat(TEXT_MAX))));
        assert!(!html.contains(&"x".repeat(TEXT_MAX + 1)));
    }
}
