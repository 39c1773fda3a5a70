//! What a kit says crosses into medic tamed: a flood of denied calls
//! cannot grow medic's memory, and a kit's text cannot forge a log line or
//! reach the admin's terminal as control characters.

use std::time::Duration;

use crate::common;
use common::Setup;
use medic::journal::Kind;

/// Peak resident memory of a running process, from `/proc/PID/status`.
fn peak_rss_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// The most medic may grow to while a kit is denied 1,000 times with a
/// 1 MiB program name (a host that kept every denial whole needs 1 GiB).
const RSS_BOUND_MIB: u64 = 300;

fn flooding_app() -> &'static str {
    "kit = \"misbehave\"\ninterval = \"200ms\"\ntimeout = \"30s\"\nfailures_before_action = 1\n\
     [settings]\nmode = \"flood-denials\"\ncount = \"1000\"\n"
}

#[test]
fn a_flood_of_denials_keeps_medic_small_under_kit_test() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("flood.toml");
    std::fs::write(&app, flooding_app()).unwrap();
    let mut child = common::medic()
        .args(["kit", "test"])
        .arg(common::guests::kit("misbehave"))
        .arg("--app")
        .arg(&app)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        if let Some(now) = peak_rss_mib(child.id()) {
            peak = peak.max(now);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("kit fault: kit was denied: exec /xxx") && text.contains("992 more denials"),
        "{text}"
    );
    assert!(
        text.len() < 16 * 1024,
        "the fault is short: {} bytes",
        text.len()
    );
    assert!(peak > 0, "sampled");
    assert!(peak < RSS_BOUND_MIB, "medic kit test peaked at {peak} MiB");
}

#[test]
fn a_flood_of_denials_keeps_the_daemon_small() {
    let setup = Setup::new("backend = \"dry-run\"")
        .with_kit("misbehave")
        .app("flood", flooding_app());
    let mut daemon = setup.daemon();
    assert!(
        setup.wait_event("flood", Kind::KitFault, Duration::from_secs(90)),
        "{}",
        daemon.log_text()
    );
    // More floods run meanwhile: the check comes every 200 ms.
    std::thread::sleep(Duration::from_secs(3));
    let peak = peak_rss_mib(daemon.pid()).unwrap();
    assert!(daemon.is_running());
    let faults: Vec<_> = setup
        .events()
        .into_iter()
        .filter(|e| e.kind == Kind::KitFault)
        .collect();
    let fault = faults[0].detail["fault"].as_str().unwrap();
    assert!(fault.len() < 4096, "journaled short: {} bytes", fault.len());
    assert!(fault.ends_with("more denials"), "{fault}");
    assert!(peak < RSS_BOUND_MIB, "the daemon peaked at {peak} MiB");
}

/// A kit's log line and reason with a newline and an escape sequence: the
/// log has no forged line, the journal and `medic status` show the
/// characters escaped.
#[test]
fn kit_text_cannot_forge_a_log_line_or_reach_the_terminal() {
    let setup = Setup::new("backend = \"dry-run\"")
        .with_kit("misbehave")
        .app(
            "forger",
            "kit = \"misbehave\"\ninterval = \"200ms\"\nfailures_before_action = 1\n\
         [recovery]\nlocal_attempts = 0\nthen = \"none\"\n[settings]\nmode = \"forge\"\n",
        );
    let daemon = setup.daemon();
    assert!(
        setup.wait_event("forger", Kind::Manual, Duration::from_secs(30)),
        "{}",
        daemon.log_text()
    );
    let reasons = setup.reasons("forger", Kind::AppFailed);
    assert_eq!(
        reasons[0],
        "down\\n2026-11-30T00:00:00Z  INFO medic: FORGED line\\u{1b}[2J"
    );
    let log = daemon.log_text();
    assert!(log.contains("FORGED line"), "the kit logged: {log}");
    assert!(
        !log.lines().any(|l| l.starts_with("2026-11-30T00:00:00Z")),
        "no forged line: {log}"
    );
    assert!(!log.contains('\u{1b}'), "no escape sequence in the log");
    let status = common::medic()
        .args(["status", "--socket"])
        .arg(setup.dir.path().join("medic.sock"))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(shown.contains("forger"), "{shown}");
    assert!(
        !shown.contains('\u{1b}'),
        "no escape sequence on the terminal: {shown:?}"
    );
}
