//! `medic events` against a known history: the selection flags give the
//! same lines whether the journal is read from the file or asked of the
//! daemon, and the retention settings are checked like every other key.

use crate::common;

use std::time::{Duration, SystemTime};

use common::Setup;
use medic::journal::{Event, Journal, Kind};
use serde_json::json;

/// Events of `web` and `db` at known times before `now`, oldest first.
fn history(now: SystemTime) -> Vec<Event> {
    let ago = |minutes: u64| now - Duration::from_secs(minutes * 60);
    [
        (180, "web", Kind::AppFailed),
        (120, "db", Kind::AppFailed),
        (30, "web", Kind::RecoveryAttempt),
        (10, "web", Kind::AppRecovered),
        (5, "web", Kind::ResetDecided),
    ]
    .into_iter()
    .map(|(minutes, app, kind)| Event {
        ts: ago(minutes),
        app: Some(app.to_owned()),
        kind,
        detail: json!({"minutes_ago": minutes}),
    })
    .collect()
}

/// The JSON lines of `events`, as `medic events --json` prints them.
fn lines(events: &[&Event]) -> String {
    events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect()
}

#[test]
fn events_are_selected_by_app_kind_time_and_count_from_the_file_and_the_daemon() {
    let setup = Setup::new("");
    let now = SystemTime::now();
    let events = history(now);
    {
        let journal = Journal::open(&setup.state_dir()).unwrap();
        for event in &events {
            journal.append(event).unwrap();
        }
    }
    let until = humantime::format_rfc3339_millis(now - Duration::from_secs(20 * 60)).to_string();
    let cases: Vec<(Vec<&str>, Vec<&Event>)> = vec![
        (
            vec!["--app", "web", "--since", "1h"],
            vec![&events[2], &events[3], &events[4]],
        ),
        (
            vec!["--kind", "app_failed,reset_decided"],
            vec![&events[0], &events[1], &events[4]],
        ),
        (
            vec!["--kind", "app_failed", "--kind", "app_recovered"],
            vec![&events[0], &events[1], &events[3]],
        ),
        (
            vec!["--app", "web", "--limit", "2"],
            vec![&events[3], &events[4]],
        ),
        (
            vec!["--since", "2h 30m", "--until", &until],
            vec![&events[1], &events[2]],
        ),
        (vec!["--app", "nobody"], vec![]),
    ];
    let events_from = |flags: &[&str], source: &[&str]| {
        let out = common::medic()
            .args(["events", "--json"])
            .args(flags)
            .args(source)
            .output()
            .unwrap();
        assert!(out.status.success(), "{flags:?} {source:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let config = setup.config().display().to_string();
    for (flags, expected) in &cases {
        assert_eq!(
            events_from(flags, &["--config", &config]),
            lines(expected),
            "{flags:?} from the file"
        );
    }

    // The daemon adds its own events; the same selections give the same lines.
    let mut daemon = setup.daemon();
    let socket = setup.dir.path().join("medic.sock").display().to_string();
    assert!(
        common::wait_for(Duration::from_secs(30), || setup
            .events()
            .iter()
            .any(|e| e.kind == Kind::DaemonStarted)),
        "{}",
        daemon.log_text()
    );
    for (flags, expected) in &cases {
        assert_eq!(
            events_from(flags, &["--socket", &socket]),
            lines(expected),
            "{flags:?} from the daemon"
        );
    }
    let daemon_started = events_from(&["--kind", "daemon_started"], &["--socket", &socket]);
    assert_eq!(daemon_started.lines().count(), 1, "{daemon_started}");
    daemon.stop();

    // A kind that does not exist is named, not silently matched by nothing.
    let out = common::medic()
        .args(["events", "--kind", "app_faild", "--config", &config])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no event kind `app_faild`"),
        "{out:?}"
    );
}

#[test]
fn config_validate_names_a_bad_retention_setting() {
    for (line, message) in [
        (
            "journal_max = \"12 parsecs\"",
            "daemon.journal_max: not a size",
        ),
        (
            "journal_max = \"10KiB\"",
            "daemon.journal_max: 10.0 KiB is less than the minimum of 1 MiB",
        ),
        ("journal_keep = \"5m\"", "daemon.journal_keep:"),
    ] {
        let setup = Setup::new("").with_daemon(&format!("{line}\n"));
        let out = setup.run(&["config", "validate"]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("medic.toml:6:") && stderr.contains(message),
            "{line}: {stderr}"
        );
    }
}

/// `medic events | head -1`: when the reader goes away, medic stops
/// printing and exits 0, as `cat` would, instead of panicking on the
/// closed pipe. The history is larger than a pipe's buffer, so medic is
/// still writing when the reader closes it.
#[test]
fn a_reader_that_goes_away_ends_events_quietly() {
    use std::io::BufRead as _;
    let setup = Setup::new("backend = \"dry-run\"");
    let journal = Journal::open(&setup.state_dir()).unwrap();
    let events: Vec<Event> = (0..3000)
        .map(|i| {
            Event::new(
                Some("web"),
                Kind::AppFailed,
                json!({"reason": format!("failure {i:04} of a long run")}),
            )
        })
        .collect();
    journal.append_batch(&events).unwrap();
    for json in [false, true] {
        let mut child = common::medic()
            .args(["events", "--config"])
            .arg(setup.config())
            .args(json.then_some("--json"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.contains("failure 0000"), "{first}");
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "json {json}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
