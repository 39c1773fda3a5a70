//! medic under systemd: the shipped unit passes `systemd-analyze verify`,
//! and the daemon speaks the notify protocol (READY, STATUS, WATCHDOG,
//! STOPPING) to a socket the test holds as systemd would.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

#[test]
fn the_service_file_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/medic.service"
    ))
    .unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="));
    // verify wants the ExecStart binary to exist: use the one under test.
    let unit = unit.replace("/usr/bin/medic", env!("CARGO_BIN_EXE_medic"));
    let path = dir.path().join("medic.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("medic.service:"),
        "no complaint about the unit: {stderr}"
    );
}

#[test]
fn the_daemon_notifies_ready_status_watchdog_and_stopping() {
    let setup = common::Setup::new("backend = \"dry-run\"")
        .with_kit("misbehave")
        .app(
            "web",
            "kit = \"misbehave\"\ninterval = \"1s\"\n[settings]\nmode = \"ok\"\n",
        );
    let socket_path = setup.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let log = std::fs::File::create(setup.dir.path().join("daemon.log")).unwrap();
    // systemd names the watched pid; exec keeps the shell's pid for medic.
    let child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("export WATCHDOG_PID=$$; exec \"$0\" daemon --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_medic"))
        .arg(setup.config())
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // Stopped on drop, also when an assertion fails.
    let mut daemon = common::Daemon::from_child(child, setup.dir.path().join("daemon.log"));
    let log_text =
        || std::fs::read_to_string(setup.dir.path().join("daemon.log")).unwrap_or_default();
    let mut seen = String::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !(seen.contains("READY=1") && seen.contains("WATCHDOG=1")) {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("{e}; seen {seen:?}; log:\n{}", log_text()));
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    assert!(seen.contains("READY=1"), "{seen}");
    assert!(seen.contains("STATUS=watching 1 of 1 apps"), "{seen}");
    assert!(seen.contains("WATCHDOG=1"), "{seen}");
    common::terminate(daemon.pid());
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !seen.contains("STOPPING=1") {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("{e}; seen {seen:?}; log:\n{}", log_text()));
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("STOPPING=1"), "{seen}");
    assert!(
        daemon.stop().is_some_and(|status| status.success()),
        "a clean exit"
    );
}
