//! The ladder's timing rules with real processes: a slow starter is given
//! its start grace, and an app that keeps dying is held as flapping.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use common::Setup;
use medic::journal::Kind;

/// App `web`: the tcp kit on a demo app whose `start` launches it through
/// `launch` (a shell snippet around `SERVE`, the foreground server), with
/// `top` and `recovery` lines added to those tables.
fn app(setup: Setup, port: u16, launch: &str, top: &str, recovery: &str) -> Setup {
    let pidfile = setup.dir.path().join("web.pid");
    let serve = format!(
        "{} serve --port {port} --pidfile {}",
        common::demo_app().display(),
        pidfile.display()
    );
    let start = format!("({}) > /dev/null 2>&1 &", launch.replace("SERVE", &serve));
    setup.with_kit("tcp").app(
        "web",
        &format!(
            "kit = \"tcp\"\ninterval = \"100ms\"\nfailures_before_action = 1\n{top}\n\
             start = [\"/bin/sh\", \"-c\", {start:?}]\n\
             [recovery]\nlocal_attempts = 10\nbackoff = \"50ms\"\nthen = \"none\"\n{recovery}\n\
             [settings]\naddress = \"127.0.0.1:{port}\"\n[grants]\nconnect = [\"127.0.0.1:{port}\"]\n"
        ),
    )
}

/// Stops whatever demo app the test's starts left running.
fn stop_app(setup: &Setup) {
    if let Some(pid) = common::read_pid(&setup.dir.path().join("web.pid")) {
        common::kill9(pid);
    }
}

#[test]
fn a_slow_starter_gets_its_start_grace() {
    let port = common::free_port();
    let setup = app(
        Setup::new("backend = \"dry-run\""),
        port,
        "sleep 2; exec SERVE",
        "start_grace = \"10s\"",
        "max_flaps = 0",
    );
    let events = setup.daemon_until("web", Kind::AppRecovered);
    stop_app(&setup);
    let kinds: Vec<Kind> = events
        .iter()
        .filter(|e| e.app.as_deref() == Some("web"))
        .map(|e| e.kind)
        .collect();
    let attempts = kinds
        .iter()
        .filter(|k| **k == Kind::RecoveryAttempt)
        .count();
    assert_eq!(
        attempts, 1,
        "one start, then patience for 2 s of failed checks: {kinds:?}"
    );
}

#[test]
fn an_app_that_keeps_dying_is_held_as_flapping() {
    let port = common::free_port();
    let setup = app(
        Setup::new("backend = \"dry-run\""),
        port,
        "exec timeout 1 SERVE",
        "",
        "max_flaps = 3",
    );
    let events = setup.daemon_until("web", Kind::Manual);
    stop_app(&setup);
    let web: Vec<_> = events
        .iter()
        .filter(|e| e.app.as_deref() == Some("web"))
        .collect();
    let alert = web.iter().find(|e| e.kind == Kind::Alert).unwrap();
    let reason = alert.detail["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("flapping: down 4 times within 1h"),
        "{reason}"
    );
    let failures = web.iter().filter(|e| e.kind == Kind::AppFailed).count();
    assert_eq!(failures, 4, "held at the fourth time down");
    let manual = web.iter().find(|e| e.kind == Kind::Manual).unwrap();
    assert!(
        manual.detail["reason"]
            .as_str()
            .unwrap()
            .starts_with("flapping")
    );
}
