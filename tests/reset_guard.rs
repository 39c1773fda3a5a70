//! The reset guard when things around it break, with a real daemon and
//! real nginx apps: a `reset_decided` that cannot reach the disk is no
//! reset, and a reset call that hangs holds only the app that escalated.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Setup;
use common::nginx::Nginx;
use medic::journal::{self, Kind};
use rustix::process::{Pid, Resource, Rlimit, prlimit};
use serde_json::Value;

/// An app file for `nginx` through the http kit, checked every 200 ms and
/// recovered at the first failed check by `start`, `attempts` times before
/// `then`; `extra` adds top-level keys.
fn http_app(nginx: &Nginx, start: &str, extra: &str, attempts: u32, then: &str) -> String {
    format!(
        "kit = \"http\"\ninterval = \"200ms\"\ntimeout = \"1s\"\nfailures_before_action = 1\nstart = {start}\n{extra}\n\
         [recovery]\nlocal_attempts = {attempts}\nbackoff = \"100ms\"\nthen = \"{then}\"\n\
         [settings]\nurl = \"http://127.0.0.1:{port}/healthz\"\n[grants]\nconnect = [\"127.0.0.1:{port}\"]\n",
        port = nginx.port,
    )
}

/// App `web`: `nginx` restarted by its real `start` (watched through its
/// pidfile), then an alert; the app that must go on being recovered.
fn web_app(setup: Setup, nginx: &Nginx) -> Setup {
    let pidfile = format!("pidfile = \"{}\"", nginx.pidfile().display());
    setup.app(
        "web",
        &http_app(nginx, &nginx.start_toml(), &pidfile, 3, "alert"),
    )
}

/// `medic status --json` from the setup's running daemon, or why not: a
/// daemon that does not answer within 10 s is an error too (the client is
/// killed by its pid).
fn status(setup: &Setup) -> Result<Value, String> {
    let mut client = common::medic()
        .args(["status", "--json", "--socket"])
        .arg(setup.dir.path().join("medic.sock"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if !common::wait_for(Duration::from_secs(10), || {
        client.try_wait().unwrap().is_some()
    }) {
        common::kill9(client.id());
        let _ = client.wait();
        return Err("medic status: no answer within 10 s".to_owned());
    }
    let out = client.wait_with_output().unwrap();
    if out.status.success() {
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `app`'s entry in `status`.
fn app_status<'a>(status: &'a Value, app: &str) -> &'a Value {
    status["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["app"] == app))
        .unwrap_or(&Value::Null)
}

/// Waits until the daemon reports every app in `apps` healthy.
fn wait_healthy(setup: &Setup, apps: &[&str], daemon: &common::Daemon) {
    let mut last = Ok(Value::Null);
    assert!(
        common::wait_for(Duration::from_secs(60), || {
            last = status(setup);
            last.as_ref().is_ok_and(|status| {
                apps.iter()
                    .all(|app| app_status(status, app)["state"] == "healthy")
            })
        }),
        "not all healthy: {last:?}\n{}",
        daemon.log_text()
    );
}

/// Kills the master of `nginx` and waits until medic has started a new
/// one that serves, within the time a normal recovery takes; returns the
/// new pid.
fn killed_and_restarted(nginx: &Nginx, daemon: &common::Daemon) -> u32 {
    let old = nginx.master_pid().unwrap();
    common::kill9(old);
    assert!(
        common::wait_for(Duration::from_secs(20), || {
            nginx.master_pid().is_some_and(|pid| pid != old) && nginx.serves()
        }),
        "nginx {old} was not restarted: {}",
        daemon.log_text()
    );
    nginx.master_pid().unwrap()
}

/// Bytes left free at the end of the journal when the disk fills up: less
/// than any event, so the first event that does not fit is torn part way.
const LEFT: u64 = 16;

/// How the test fills the disk under `state_dir` while the daemon runs.
enum FullDisk {
    /// A tiny tmpfs of its own mounted on `state_dir`, filled by a file;
    /// unmounted on drop.
    Tmpfs(PathBuf),
    /// A file size limit (`RLIMIT_FSIZE`) on the daemon.
    SizeLimit,
}

impl FullDisk {
    /// A tiny tmpfs mounted on `state_dir`, where the machine allows
    /// mounts; else a file size limit.
    fn tmpfs(state_dir: &Path) -> Self {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "medic-test"])
            .arg(state_dir)
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            eprintln!("no tmpfs mount allowed here: using RLIMIT_FSIZE instead");
            return Self::SizeLimit;
        }
        Self::Tmpfs(state_dir.to_owned())
    }

    /// Starts the daemon on `setup`. Under a size limit its log goes
    /// through a pipe (as to journald under systemd), since the limit
    /// holds for every file the daemon writes, its log file too.
    fn daemon(&self, setup: &Setup) -> common::Daemon {
        if let Self::Tmpfs(_) = self {
            return setup.daemon();
        }
        let log = setup.dir.path().join("daemon.log");
        let mut child = common::medic()
            .args(["daemon", "--config"])
            .arg(setup.config())
            .env("MEDIC_LOG", "medic=debug,warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut output = child.stderr.take().unwrap();
        let mut file = std::fs::File::create(&log).unwrap();
        // Ends when the daemon does.
        std::thread::spawn(move || std::io::copy(&mut output, &mut file));
        common::Daemon::from_child(child, log)
    }

    /// Fills the disk so that the daemon (`pid`) cannot grow the
    /// journal's write-ahead log `wal` by a page: a tmpfs is filled whole;
    /// under a size limit, files may not grow past [`LEFT`] bytes more than
    /// the log has.
    fn fill(&self, pid: u32, wal: &Path) {
        match self {
            Self::Tmpfs(mount) => {
                let mut filler = std::fs::File::create(mount.join("filler")).unwrap();
                let chunk = vec![0_u8; 64 * 1024];
                loop {
                    match filler.write(&chunk) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                        Err(e) => panic!("filling the tmpfs: {e}"),
                    }
                }
            }
            Self::SizeLimit => {
                let len = std::fs::metadata(wal).unwrap().len();
                set_file_size_limit(pid, Some(len + LEFT));
            }
        }
    }

    /// Gives the space back.
    fn free(&self, pid: u32) {
        match self {
            Self::Tmpfs(mount) => std::fs::remove_file(mount.join("filler")).unwrap(),
            Self::SizeLimit => set_file_size_limit(pid, None),
        }
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let Self::Tmpfs(mount) = self else {
            return;
        };
        let umount = |lazy: bool| {
            let mut umount = Command::new("umount");
            if lazy {
                umount.arg("--lazy");
            }
            umount
                .arg(&*mount)
                .status()
                .is_ok_and(|status| status.success())
        };
        // Lazily if something still holds a file there (a test that failed
        // before its daemon was stopped).
        if !umount(false) && !umount(true) {
            eprintln!("cannot unmount {}", mount.display());
        }
    }
}

/// Sets (or lifts, with `None`) the file size limit of process `pid`.
fn set_file_size_limit(pid: u32, bytes: Option<u64>) {
    let limit = Rlimit {
        current: bytes,
        maximum: None,
    };
    prlimit(Pid::from_raw(pid as i32), Resource::Fsize, limit).unwrap();
}

/// Issue "what users rely on": a reset is refused when `reset_decided`
/// cannot be written, and nothing else is lost. The journal's disk fills
/// up while the daemon watches two nginx apps; `down` stops for good (its
/// `start` does nothing), so local recovery does not help and the ladder
/// asks for a reset. The decision cannot reach the disk, so there is no
/// reset call, the alert sink hears why, `medic status` shows the app held
/// with that reason, and `web` is still checked and restarted when it is
/// killed. Once space is back, the next events are journaled and read
/// back (the event torn by the full disk does not swallow them), and a
/// reset can be decided again.
fn a_reset_is_refused_when_its_decision_cannot_be_written(disk: impl FnOnce(&Path) -> FullDisk) {
    let down = Nginx::start();
    let web = Nginx::start();
    let outside = tempfile::tempdir().unwrap();
    let alerts = outside.path().join("alerts.jsonl");
    let sink = common::argv_toml(&[
        "/bin/sh".into(),
        "-c".into(),
        format!("cat >> {}", alerts.display()),
    ]);
    let setup = Setup::new(&format!(
        "backend = \"dry-run\"\nmin_uptime = \"0s\"\nmax_resets = 1\n\n\
         [[alert]]\nkind = \"exec\"\ncommand = {sink}\nevents = [\"alert\"]\n"
    ))
    .with_kit("http")
    .app(
        "down",
        &http_app(&down, "[\"/bin/true\"]", "", 1, "vm-reset"),
    );
    let setup = web_app(setup, &web);
    let disk = disk(&setup.state_dir());
    let mut daemon = disk.daemon(&setup);
    wait_healthy(&setup, &["down", "web"], &daemon);
    let wal = setup
        .state_dir()
        .join(format!("{}-wal", journal::FILE_NAME));
    disk.fill(daemon.pid(), &wal);

    // `down` goes down: it stops cleanly (removing its pidfile).
    common::terminate(down.master_pid().unwrap());
    let refusal = "cannot journal the reset decision first";
    common::wait_for(Duration::from_secs(30), || {
        !daemon.is_running() || daemon.log_text().contains(refusal)
    });
    assert!(
        daemon.is_running(),
        "the daemon died: {}",
        daemon.log_text()
    );
    let log = daemon.log_text();
    assert!(log.contains(refusal), "no refused reset: {log}");
    assert!(
        !log.contains("dry-run: the VM would be reset now"),
        "the backend was called: {log}"
    );
    assert!(
        log.lines().any(|line| line.contains("event NOT journaled")
            && line.contains("kind=app_failed")
            && line.contains("connection refused")),
        "the log keeps what the journal could not: {log}"
    );
    assert!(
        setup.kinds("down").is_empty(),
        "nothing of `down` reached the full disk: {:?}",
        setup.kinds("down")
    );
    assert!(
        common::wait_for(Duration::from_secs(10), || std::fs::read_to_string(&alerts)
            .is_ok_and(|sent| sent.contains(refusal))),
        "the alert sink was not told"
    );
    let sent: Vec<Value> = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // First the journal itself: it cannot be written, so no reset can be.
    assert_eq!(sent[0]["kind"], "alert");
    assert_eq!(sent[0]["app"], Value::Null);
    assert!(
        sent[0]["detail"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("the journal cannot be written; resets are refused until it can"),
        "{sent:?}"
    );
    let sent = sent
        .iter()
        .find(|alert| alert["app"] == "down")
        .expect("an alert for `down`");
    assert_eq!(sent["kind"], "alert");
    assert!(
        sent["detail"]["reason"]
            .as_str()
            .unwrap()
            .starts_with(&format!("vm-reset refused: {refusal}")),
        "{sent}"
    );
    let held = status(&setup).unwrap();
    let held = app_status(&held, "down");
    assert_eq!(held["state"], "manual", "{held}");
    assert!(held["reason"].as_str().unwrap().contains(refusal), "{held}");

    // Still watching the other app, and still restarting it.
    let restarted = killed_and_restarted(&web, &daemon);
    assert!(daemon.is_running(), "{}", daemon.log_text());
    let mut last = Ok(Value::Null);
    assert!(
        common::wait_for(Duration::from_secs(10), || {
            last = status(&setup);
            last.as_ref().is_ok_and(|s| {
                let web = app_status(s, "web");
                web["state"] == "healthy" && web["pid"] == restarted
            })
        }),
        "status shows the new nginx: {last:?}"
    );

    // Space is back: the next events reach the journal whole.
    disk.free(daemon.pid());
    let before = setup.kinds("web").len();
    killed_and_restarted(&web, &daemon);
    assert!(
        setup.wait_event("web", Kind::AppRecovered, Duration::from_secs(20)),
        "{}",
        daemon.log_text()
    );
    let after = setup.kinds("web");
    assert_eq!(
        after[before..],
        [Kind::AppFailed, Kind::RecoveryAttempt, Kind::AppRecovered],
        "the first event after the full disk is read back: {after:?}"
    );
    let contents = journal::read(&setup.state_dir()).unwrap();
    assert_eq!(
        contents.skipped, 0,
        "a write the full disk refused leaves nothing half written"
    );

    // The refused decision spent nothing, and resets work again.
    let out = common::medic()
        .args(["recover", "down", "--socket"])
        .arg(setup.dir.path().join("medic.sock"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        setup.wait_event("down", Kind::VmReset, Duration::from_secs(20)),
        "{:?}\n{}",
        setup.kinds("down"),
        daemon.log_text()
    );
    daemon.stop();
    let decided = setup
        .events()
        .into_iter()
        .filter(|e| e.kind == Kind::ResetDecided)
        .count();
    assert_eq!(decided, 1, "one reset, decided once the disk had room");
}

#[test]
fn a_reset_is_refused_when_its_decision_cannot_be_written_to_a_full_tmpfs() {
    a_reset_is_refused_when_its_decision_cannot_be_written(FullDisk::tmpfs);
}

#[test]
fn a_reset_is_refused_when_its_decision_would_pass_the_file_size_limit() {
    a_reset_is_refused_when_its_decision_cannot_be_written(|_| FullDisk::SizeLimit);
}

/// A fence agent whose `status` answers at once and whose `reboot` hangs
/// (a hypervisor API that never answers); the hung agent's pid is kept
/// next to it, and it is killed by that pid on drop.
struct HangingAgent {
    dir: tempfile::TempDir,
}

impl HangingAgent {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("fence_hang"),
            "#!/bin/sh\n\
             here=$(dirname \"$0\")\n\
             if [ \"$(sed -n 's/^action=//p')\" = reboot ]; then\n\
               echo $$ > \"$here/reboot.pid\"\n\
               exec sleep 600\n\
             fi\n\
             exit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(
            dir.path().join("fence_hang"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("fence_hang")
    }

    /// The pid of the hanging `reboot`, once it runs (and until
    /// [`Self::end`]).
    fn reboot_pid(&self) -> Option<u32> {
        common::read_pid(&self.dir.path().join("reboot.pid"))
    }

    /// Kills the hanging `reboot`, once.
    fn end(&self) {
        if let Some(pid) = self.reboot_pid() {
            common::kill9(pid);
            let _ = std::fs::remove_file(self.dir.path().join("reboot.pid"));
        }
    }
}

impl Drop for HangingAgent {
    fn drop(&mut self) {
        self.end();
    }
}

/// Issue "what users rely on": other apps keep being checked and
/// recovered while a reset call hangs. `stuck` escalates to a reset whose
/// fence agent never returns (the escalation timeout is 10 minutes); in
/// the meantime `web`'s nginx is killed and medic restarts it in the usual
/// time, and `medic status` answers. The journal shows `web` recovered
/// before any `vm_reset` of `stuck`, which comes only once the agent is
/// killed.
#[test]
fn other_apps_are_recovered_while_a_reset_call_hangs() {
    let agent = HangingAgent::new();
    let web = Nginx::start();
    let setup = Setup::new(&format!(
        "backend = \"fence-agent\"\nmin_uptime = \"0s\"\ntimeout = \"10m\"\nattempts = 1\n\
         [escalation.fence-agent]\nagent = \"{}\"",
        agent.path().display()
    ))
    .with_kit("http")
    .with_stuck_app();
    let setup = web_app(setup, &web);
    let mut daemon = setup.daemon();
    assert!(
        common::wait_for(Duration::from_secs(30), || agent.reboot_pid().is_some()),
        "the reset call never started: {}",
        daemon.log_text()
    );
    let hung = agent.reboot_pid().unwrap();
    assert!(setup.kinds("stuck").contains(&Kind::ResetDecided));

    let restarted = killed_and_restarted(&web, &daemon);
    assert!(
        setup.wait_event("web", Kind::AppRecovered, Duration::from_secs(20)),
        "{}",
        daemon.log_text()
    );
    let now = status(&setup).unwrap();
    assert_eq!(app_status(&now, "stuck")["state"], "escalating", "{now}");
    assert_eq!(app_status(&now, "web")["pid"], restarted, "{now}");
    assert!(
        medic::process::is_alive(hung),
        "the reset call still hangs while web was recovered"
    );
    assert!(
        !setup.kinds("stuck").contains(&Kind::VmReset),
        "no reset finished: {:?}",
        setup.kinds("stuck")
    );

    // The agent is killed: the reset call ends, as a failure.
    agent.end();
    assert!(
        setup.wait_event("stuck", Kind::Manual, Duration::from_secs(20)),
        "{}",
        daemon.log_text()
    );
    daemon.stop();
    let events = setup.events();
    let at = |app: &str, kind: Kind| {
        events
            .iter()
            .position(|e| e.app.as_deref() == Some(app) && e.kind == kind)
            .unwrap()
    };
    assert!(
        at("stuck", Kind::ResetDecided) < at("web", Kind::AppFailed)
            && at("web", Kind::AppRecovered) < at("stuck", Kind::VmReset),
        "web failed and recovered while the reset call hung: {events:?}"
    );
    let outcome = &events[at("stuck", Kind::VmReset)];
    assert_eq!(outcome.detail["outcome"], "failed", "{outcome:?}");
}
