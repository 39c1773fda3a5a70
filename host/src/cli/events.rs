//! `medic events`: the journal, oldest first, for people or (`--json`) for
//! scripts.

use std::path::Path;
use std::process::ExitCode;

use crate::journal;

pub(super) fn run(config_path: &Path, app: Option<&str>, json: bool) -> ExitCode {
    let Some(config) = super::load_or_report(config_path) else {
        return ExitCode::FAILURE;
    };
    let events = match journal::read_all(&config.daemon.state_dir) {
        Ok(events) => events,
        Err(e) => {
            eprintln!("medic: {e}");
            return ExitCode::FAILURE;
        }
    };
    for event in events
        .iter()
        .filter(|e| app.is_none() || e.app.as_deref() == app)
    {
        if json {
            match serde_json::to_string(event) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("medic: {e}"),
            }
        } else {
            println!("{}", text(event));
        }
    }
    ExitCode::SUCCESS
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
