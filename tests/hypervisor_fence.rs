//! The fence-agent backend with the real `fence_dummy` from Debian's
//! fence-agents (it keeps the power state in a file) and, for the exit
//! codes real agents give on failure, a test agent written here (named so).
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use medic::config::FenceAgentSettings;
use medic::credentials::{Credentials, Source};
use medic::hypervisor::{ErrorKind, FenceAgent, Guarded, Hypervisor, PowerState};
use medic::journal::Kind;

const FENCE_DUMMY: &str = "/usr/sbin/fence_dummy";

/// A power-state file for fence_dummy holding `state`.
fn status_file(dir: &Path, state: &str) -> PathBuf {
    let path = dir.join("power");
    std::fs::write(&path, state).unwrap();
    path
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

fn dummy(status: &Path) -> FenceAgent {
    FenceAgent::new(
        FenceAgentSettings {
            agent: FENCE_DUMMY.into(),
            credentials: None,
            options: vec![
                ("type".into(), "file".into()),
                ("status_file".into(), status.display().to_string()),
            ],
        },
        None,
    )
}

#[tokio::test]
async fn fence_dummy_status_and_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let status = status_file(dir.path(), "on");
    let agent = dummy(&status);
    assert_eq!(agent.power_state().await.unwrap(), PowerState::On);
    assert_eq!(
        agent.identify().await.unwrap(),
        "through fence_dummy (status on)"
    );
    let before = modified(&status);
    std::thread::sleep(Duration::from_millis(20));
    let proof = agent.reset().await.unwrap();
    assert_eq!(proof, "fence_dummy reboot exited 0: Success: Rebooted");
    assert!(modified(&status) > before, "the agent powered off and on");
    assert_eq!(std::fs::read_to_string(&status).unwrap(), "on");

    std::fs::write(&status, "off").unwrap();
    assert_eq!(agent.power_state().await.unwrap(), PowerState::Off);
}

/// A test agent (a fake of a failing fence agent, named so): it saves its
/// stdin and its pid next to itself, then does what its `behave=` line says.
struct TestAgent {
    dir: tempfile::TempDir,
}

impl TestAgent {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fence_test");
        std::fs::write(
            &path,
            "#!/bin/sh\n\
             here=$(dirname \"$0\")\n\
             input=$(cat)\n\
             printf '%s\\n' \"$input\" > \"$here/stdin\"\n\
             echo $$ > \"$here/pid\"\n\
             behave=$(printf '%s\\n' \"$input\" | sed -n 's/^behave=//p')\n\
             password=$(printf '%s\\n' \"$input\" | sed -n 's/^password=//p')\n\
             case \"$behave\" in\n\
               sleep) exec sleep 30 ;;\n\
               echo-password) echo \"Unable to login with $password\" >&2; exit 3 ;;\n\
               exit-*) echo \"Failed: $behave\" >&2; exit \"${behave#exit-}\" ;;\n\
             esac\n\
             exit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    fn backend(&self, behave: &str) -> FenceAgent {
        FenceAgent::new(
            FenceAgentSettings {
                agent: self.dir.path().join("fence_test"),
                credentials: None,
                options: vec![
                    ("plug".into(), "web-01".into()),
                    ("behave".into(), behave.into()),
                ],
            },
            Some(Credentials {
                username: "medic".into(),
                password: "pa ss=w<rd>".to_owned().into(),
            }),
        )
    }

    fn stdin(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdin")).unwrap()
    }
}

#[tokio::test]
async fn options_and_credentials_go_on_stdin() {
    let agent = TestAgent::new();
    agent.backend("ok").reset().await.unwrap();
    assert_eq!(
        agent.stdin(),
        "action=reboot\nplug=web-01\nbehave=ok\nusername=medic\npassword=pa ss=w<rd>\n"
    );
}

#[tokio::test]
async fn exit_codes_decide_kind_and_retry() {
    let agent = TestAgent::new();
    for (code, kind) in [
        (1, ErrorKind::Failed),
        (3, ErrorKind::BadCredentials),
        (4, ErrorKind::Unreachable),
        (5, ErrorKind::Timeout),
        (8, ErrorKind::NotFound),
    ] {
        let error = agent
            .backend(&format!("exit-{code}"))
            .reset()
            .await
            .unwrap_err();
        assert_eq!(error.kind, kind, "exit {code}: {error}");
        assert_eq!(
            error.message,
            format!("fence_test reboot exited {code}: Failed: exit-{code}")
        );
        assert_eq!(
            error.is_retryable(),
            matches!(kind, ErrorKind::Unreachable | ErrorKind::Timeout)
        );
    }
}

#[tokio::test]
async fn a_password_the_agent_echoes_is_redacted() {
    let agent = TestAgent::new();
    let error = agent.backend("echo-password").reset().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadCredentials);
    assert_eq!(
        error.message,
        "fence_test reboot exited 3: Unable to login with <redacted>"
    );
}

#[tokio::test]
async fn a_hung_agent_times_out_and_is_killed() {
    let agent = TestAgent::new();
    let backend = Guarded::new(Box::new(agent.backend("sleep")), Duration::from_millis(500));
    let error = backend.reset().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    assert!(error.is_retryable());
    let pid = common::read_pid(&agent.dir.path().join("pid")).unwrap();
    let gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |stat| stat.contains(") Z "))
    };
    assert!(
        common::wait_for(Duration::from_secs(5), gone),
        "agent {pid} still runs"
    );
}

#[test]
fn a_world_readable_credentials_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fence.cred");
    std::fs::write(&path, "username = \"u\"\npassword = \"p\"\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = Source::File(path.clone()).load().unwrap_err().to_string();
    assert!(error.contains("mode 0644"), "{error}");

    let setup = common::Setup::new(&format!(
        "backend = \"fence-agent\"\n[escalation.fence-agent]\nagent = \"{FENCE_DUMMY}\"\ncredentials = \"{}\"",
        path.display()
    ));
    let out = setup.run(&["config", "validate"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("escalation.fence-agent.credentials")
            && stderr.contains("mode 0644 lets group or others access it"),
        "{stderr}"
    );
}

fn dummy_setup(status: &Path) -> common::Setup {
    common::Setup::new(&format!(
        "backend = \"fence-agent\"\nmax_resets = 1\nmin_uptime = \"0s\"\n\
         [escalation.fence-agent]\nagent = \"{FENCE_DUMMY}\"\n\
         options = {{ type = \"file\", status_file = \"{}\" }}",
        status.display()
    ))
}

#[test]
fn vm_status_and_manual_reset_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let status = status_file(dir.path(), "on");
    let setup = dummy_setup(&status);

    let out = setup.run(&["vm", "status"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        stdout,
        "backend: fence-agent\nvm: through fence_dummy (status on)\npower: on\nresets left: 1 of 1 per 1h\n"
    );

    let before = modified(&status);
    std::thread::sleep(Duration::from_millis(20));
    let out = setup.run(&["vm", "reset"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("would reset"));
    assert_eq!(modified(&status), before, "nothing without --yes");

    let out = setup.run(&["vm", "reset", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(modified(&status) > before, "fence_dummy rebooted");
    let out = setup.run(&["vm", "reset", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "budget spent: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("reset budget spent"));
    let out = setup.run(&["vm", "reset", "--yes", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let kinds: Vec<_> = setup.events().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::ResetDecided,
            Kind::VmReset,
            Kind::ResetRefused,
            Kind::ResetDecided,
            Kind::VmReset
        ]
    );
    let decided = &setup.events()[0];
    let reason = decided.detail["reason"].as_str().unwrap();
    assert!(
        reason.contains("medic vm reset") && reason.contains("uid"),
        "{reason}"
    );

    std::fs::write(&status, "off").unwrap();
    let out = setup.run(&["vm", "status"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("power: off"));
}

#[test]
fn vm_status_exits_1_with_the_reason() {
    let agent = TestAgent::new();
    let setup = common::Setup::new(&format!(
        "backend = \"fence-agent\"\n[escalation.fence-agent]\nagent = \"{}\"\noptions = {{ behave = \"exit-3\" }}",
        agent.dir.path().join("fence_test").display()
    ));
    let out = setup.run(&["vm", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exited 3") && stderr.contains("bad_credentials, not retryable"),
        "{stderr}"
    );
}

#[test]
fn the_daemon_reboots_through_fence_dummy_once_then_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let status = status_file(dir.path(), "on");
    let before = modified(&status);
    let setup = dummy_setup(&status).with_stuck_app();
    std::thread::sleep(Duration::from_millis(20));
    let events = setup.daemon_until("stuck", Kind::ResetRefused);
    assert!(modified(&status) > before, "the status file changed");
    let outcomes: Vec<_> = events.iter().filter(|e| e.kind == Kind::VmReset).collect();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].detail["outcome"], "done");
    assert_eq!(outcomes[0].detail["power_state"], "on");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == Kind::ResetDecided)
            .count(),
        1
    );
}

/// The journal of a daemon whose reset goes to the test agent behaving as
/// `behave`, with three attempts 10 ms apart.
fn failed_escalation(behave: &str) -> Vec<medic::journal::Event> {
    let agent = TestAgent::new();
    common::Setup::new(&format!(
        "backend = \"fence-agent\"\nmin_uptime = \"0s\"\nattempts = 3\nretry_backoff = \"10ms\"\n\
         [escalation.fence-agent]\nagent = \"{}\"\noptions = {{ behave = \"{behave}\" }}",
        agent.dir.path().join("fence_test").display()
    ))
    .with_stuck_app()
    .daemon_until("stuck", Kind::Manual)
}

#[test]
fn a_failed_reset_is_journaled_with_its_retry_decision_and_alerted() {
    for (behave, kind, retryable, attempts) in [
        ("exit-3", "bad_credentials", false, 1),
        ("exit-8", "not_found", false, 1),
        ("exit-5", "timeout", true, 3),
    ] {
        let events = failed_escalation(behave);
        let outcome = events.iter().find(|e| e.kind == Kind::VmReset).unwrap();
        let detail = &outcome.detail;
        assert_eq!(detail["outcome"], "failed", "{behave}: {detail}");
        assert_eq!(detail["error_kind"], kind, "{behave}");
        assert_eq!(detail["retryable"], retryable, "{behave}");
        assert_eq!(detail["attempts"], attempts, "{behave}");
        let kinds: Vec<_> = events
            .iter()
            .filter(|e| e.app.as_deref() == Some("stuck"))
            .map(|e| e.kind)
            .skip_while(|k| *k != Kind::ResetDecided)
            .collect();
        assert_eq!(
            kinds,
            [Kind::ResetDecided, Kind::VmReset, Kind::Alert, Kind::Manual],
            "{behave}"
        );
    }
}
