//! `medic events`: the journal, oldest first, for people or (`--json`) for
//! scripts, with the same selection whether read from the file or asked of
//! the daemon.

use std::ops::ControlFlow;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use crate::journal::{self, Filter, Kind};

/// Which events `medic events` prints.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct Selection {
    /// Only this app's events.
    #[arg(long)]
    pub(super) app: Option<String>,
    /// Only events since this time: a duration ago (`1h`, `2d 3h`) or an
    /// RFC 3339 time (`2026-11-30T08:00:00Z`).
    #[arg(long, value_parser = when)]
    since: Option<SystemTime>,
    /// Only events before this time (same forms as --since).
    #[arg(long, value_parser = when)]
    until: Option<SystemTime>,
    /// Only events of these kinds (repeat, or separate with commas):
    /// `--kind app_failed,reset_decided`.
    #[arg(long, value_delimiter = ',')]
    kind: Vec<Kind>,
    /// Only the newest N of the events selected (still oldest first).
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
}

impl Selection {
    /// The journal filter this selection means.
    pub(super) fn filter(&self) -> Filter {
        Filter {
            app: self.app.clone(),
            kinds: self.kind.clone(),
            since: self.since,
            until: self.until,
            limit: self.limit,
        }
    }

    /// The selection as `GET /v1/events` parameters (`&since=...`), times
    /// absolute so the daemon's clock does not shift them.
    pub(super) fn query(&self) -> String {
        let mut query = String::new();
        if let Some(app) = &self.app {
            query += &format!("&app={}", crate::api::url_escape(app));
        }
        for (name, time) in [("since", self.since), ("until", self.until)] {
            if let Some(time) = time {
                query += &format!("&{name}={}", humantime::format_rfc3339_millis(time));
            }
        }
        if !self.kind.is_empty() {
            let kinds: Vec<String> = self.kind.iter().map(ToString::to_string).collect();
            query += &format!("&kind={}", kinds.join(","));
        }
        if let Some(limit) = self.limit {
            query += &format!("&limit={limit}");
        }
        query
    }
}

/// `--since`/`--until`: a duration ago, or an RFC 3339 time.
fn when(text: &str) -> Result<SystemTime, String> {
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(time);
    }
    let ago = crate::config::parse_duration(text, std::time::Duration::ZERO).map_err(|e| {
        format!("{e}; give a duration ago (`1h`) or an RFC 3339 time (`2026-11-30T08:00:00Z`)")
    })?;
    SystemTime::now()
        .checked_sub(ago)
        .ok_or_else(|| format!("`{text}` ago is before the epoch"))
}

/// Standard output for events, which stops at the first failed write: the
/// reader of `medic events | head` went away, and that is not an error.
#[derive(Debug, Default)]
pub(super) struct Output {
    closed: bool,
}

impl Output {
    /// Prints `event` (one JSON object with `json`, else a line of text);
    /// `Break` once standard output is closed.
    pub(super) fn event(&mut self, event: &journal::Event, json: bool) -> ControlFlow<()> {
        let line = if json {
            match serde_json::to_string(event) {
                Ok(line) => line,
                Err(e) => {
                    eprintln!("medic: {e}");
                    return ControlFlow::Continue(());
                }
            }
        } else {
            text(event)
        };
        self.line(&line)
    }

    /// Prints `line`; `Break` once standard output is closed.
    pub(super) fn line(&mut self, line: &str) -> ControlFlow<()> {
        use std::io::Write as _;
        if !self.closed && writeln!(std::io::stdout().lock(), "{line}").is_err() {
            self.closed = true;
        }
        if self.closed {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

pub(super) fn run(config_path: &Path, selection: &Selection, json: bool) -> ExitCode {
    let Some(config) = super::load_or_report(config_path) else {
        return ExitCode::FAILURE;
    };
    let mut out = Output::default();
    let printed = journal::query(&config.daemon.state_dir, &selection.filter(), |event| {
        // Once the reader is gone the rest is read and dropped unprinted.
        let _ = out.event(&event, json);
    });
    match printed {
        Ok(0) => ExitCode::SUCCESS,
        Ok(skipped) => {
            eprintln!("medic: {skipped} unreadable events skipped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("medic: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One event as a line for people: time, app, kind, detail.
pub(super) fn text(event: &journal::Event) -> String {
    format!(
        "{}  {:<12} {:<20} {}",
        humantime::format_rfc3339_millis(event.ts),
        event.app.as_deref().unwrap_or("-"),
        event.kind,
        event.detail
    )
}
