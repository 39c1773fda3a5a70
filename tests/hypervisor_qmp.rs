//! The QMP backend against a real `qemu-system-x86_64`: no disk, TCG, a
//! microvm that boots nothing. A second monitor socket watches for the
//! `RESET` event, which is what proves the reset happened.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use medic::config::QmpTarget;
use medic::hypervisor::{ErrorKind, Guarded, Hypervisor, PowerState, Qmp};
use medic::journal::Kind;

const QEMU: &str = "/usr/bin/qemu-system-x86_64";

/// A QEMU started by the test; killed by its pid on drop.
struct Vm {
    child: Child,
    control: PathBuf,
    watch: PathBuf,
    _dir: tempfile::TempDir,
}

impl Vm {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let control = dir.path().join("control.qmp");
        let watch = dir.path().join("watch.qmp");
        let child = Command::new(QEMU)
            .args([
                "-M",
                "microvm",
                "-accel",
                "tcg",
                "-nodefaults",
                "-display",
                "none",
                "-m",
                "32",
            ])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", control.display()))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", watch.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            common::wait_for(Duration::from_secs(10), || control.exists()
                && watch.exists()),
            "qemu did not open its monitors"
        );
        Self {
            child,
            control,
            watch,
            _dir: dir,
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        common::kill9(self.child.id());
        let _ = self.child.wait();
    }
}

/// A QMP client on the watch socket that collects events.
fn watcher(path: &Path) -> BufReader<UnixStream> {
    let mut stream = UnixStream::connect(path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("QMP"), "greeting: {line}");
    stream
        .write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
        .unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("return"), "{line}");
    reader
}

fn next_event(reader: &mut BufReader<UnixStream>) -> String {
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.contains("\"event\"") {
            return line;
        }
    }
}

#[tokio::test]
async fn reset_through_qmp_makes_qemu_reset_once() {
    let vm = Vm::start();
    let mut events = watcher(&vm.watch);
    let qmp = Qmp::new(QmpTarget::Socket(vm.control.clone()));
    assert_eq!(qmp.power_state().await.unwrap(), PowerState::On);
    qmp.reset().await.unwrap();
    let event = next_event(&mut events);
    assert!(event.contains("\"RESET\""), "{event}");
    // microvm has no firmware that resets again: exactly one RESET.
    events
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut more = String::new();
    assert!(
        events.read_line(&mut more).is_err(),
        "a second event: {more}"
    );
    assert_eq!(
        qmp.power_state().await.unwrap(),
        PowerState::On,
        "running again"
    );
}

#[tokio::test]
async fn a_missing_monitor_is_a_retryable_error() {
    let dir = tempfile::tempdir().unwrap();
    let qmp = Qmp::new(QmpTarget::Socket(dir.path().join("nothing.qmp")));
    let error = qmp.reset().await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    let error = Qmp::new(QmpTarget::Address(format!(
        "127.0.0.1:{}",
        common::free_port()
    )))
    .power_state()
    .await
    .unwrap_err();
    assert!(error.is_retryable(), "{error}");
}

/// A fake monitor (named so: QEMU itself never refuses `system_reset`) that
/// greets, accepts capabilities and answers the next command with an error.
fn refusing_monitor(path: &Path) {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        writer
            .write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
            .unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        writer.write_all(b"{\"return\": {}}\n").unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        writer
            .write_all(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"refused\"}}\n")
            .unwrap();
    });
}

#[tokio::test]
async fn a_qmp_error_reply_is_not_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.qmp");
    refusing_monitor(&path);
    let error = Qmp::new(QmpTarget::Socket(path)).reset().await.unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(error.to_string().contains("refused"), "{error}");
}

#[test]
fn the_daemon_escalates_to_a_real_qemu_reset() {
    let vm = Vm::start();
    let mut events = watcher(&vm.watch);
    let escalation = format!(
        "backend = \"qmp\"\nmax_resets = 1\nmin_uptime = \"0s\"\n[escalation.qmp]\nsocket = \"{}\"",
        vm.control.display()
    );
    let setup = common::Setup::new(&escalation).with_kit("misbehave").app(
        "stuck",
        "kit = \"misbehave\"\ninterval = \"100ms\"\nfailures_before_action = 1\nstart = [\"/bin/false\"]\n\
         [recovery]\nlocal_attempts = 1\nbackoff = \"50ms\"\nthen = \"vm-reset\"\n\
         [settings]\nmode = \"fail\"\n",
    );
    let journal = setup.daemon_until("stuck", Kind::ResetRefused);
    let event = next_event(&mut events);
    assert!(event.contains("\"RESET\""), "{event}");
    let resets: Vec<_> = journal
        .into_iter()
        .filter(|e| e.kind == Kind::VmReset)
        .collect();
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].detail["backend"], "qmp");
    assert_eq!(resets[0].detail["dry_run"], false);
    assert_eq!(resets[0].detail["outcome"], "done");
    assert_eq!(resets[0].detail["proof"], "QEMU sent the RESET event");
    assert_eq!(resets[0].detail["power_state"], "on");
}

#[tokio::test]
async fn identify_names_the_monitor() {
    let vm = Vm::start();
    let qmp = Qmp::new(QmpTarget::Socket(vm.control.clone()));
    let id = qmp.identify().await.unwrap();
    assert!(id.starts_with("QEMU"), "{id}");
    assert!(id.contains(&vm.control.display().to_string()), "{id}");
}

#[tokio::test]
async fn a_silent_monitor_is_a_retryable_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.qmp");
    common::silent::unix(&path, Duration::from_secs(5));
    let qmp = Guarded::new(
        Box::new(Qmp::new(QmpTarget::Socket(path))),
        Duration::from_millis(300),
    );
    let error = qmp.reset().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    assert!(error.is_retryable());
}

/// medic is killed between journaling the decision and hearing back from
/// the hypervisor (which never answers); the restarted medic, now in front
/// of a real QEMU, must still count that decision and not reset.
#[test]
fn a_decision_survives_sigkill_and_keeps_the_budget_spent() {
    let silent = tempfile::tempdir().unwrap();
    let silent_socket = silent.path().join("silent.qmp");
    common::silent::unix(&silent_socket, Duration::from_secs(60));
    let escalation = |socket: &Path| {
        format!(
            "backend = \"qmp\"\nmax_resets = 1\nmin_uptime = \"0s\"\ntimeout = \"60s\"\nattempts = 1\n\
             [escalation.qmp]\nsocket = \"{}\"",
            socket.display()
        )
    };
    let setup = common::Setup::new(&escalation(&silent_socket)).with_stuck_app();
    let mut daemon = setup.daemon();
    assert!(
        setup.wait_event("stuck", Kind::ResetDecided, Duration::from_secs(30)),
        "{}",
        daemon.log_text()
    );
    daemon.kill();

    let vm = Vm::start();
    let mut events = watcher(&vm.watch);
    std::fs::write(
        setup.config(),
        std::fs::read_to_string(setup.config()).unwrap().replace(
            &silent_socket.display().to_string(),
            &vm.control.display().to_string(),
        ),
    )
    .unwrap();
    setup.daemon_until("stuck", Kind::ResetRefused);
    events
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut line = String::new();
    assert!(events.read_line(&mut line).is_err(), "QEMU saw: {line}");
    let decided = setup
        .events()
        .iter()
        .filter(|e| e.kind == Kind::ResetDecided)
        .count();
    assert_eq!(decided, 1, "the restarted medic decided nothing new");
}
