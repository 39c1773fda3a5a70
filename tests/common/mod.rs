//! Shared fixtures of the integration tests: guests built from source, real
//! nginx, a medic config in a temp dir, a running daemon. Every process a
//! fixture starts is ended by its pid when the fixture drops.
#![allow(dead_code, missing_docs, clippy::unwrap_used)] // fixtures: a panic is a failed test

pub mod chromium;
pub mod examples;
pub mod guests;
pub mod haproxy;
pub mod nginx;
pub mod postgres;
pub mod redis;
pub mod tls;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use medic::journal::{self, Event, Kind};

/// `argv` as a TOML array, for an app's `start` and `stop`.
pub fn argv_toml(argv: &[String]) -> String {
    format!(
        "[{}]",
        argv.iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The medic binary under test.
pub fn medic() -> Command {
    Command::new(env!("CARGO_BIN_EXE_medic"))
}

/// The demo app binary (a tiny web server with start/stop verbs).
pub fn demo_app() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_medic-demo-app"))
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

/// `medic kit test KIT --app APP` with `extra` arguments, its kit cache
/// in `cache`, else the user's (where large kits stay compiled between
/// runs).
pub fn kit_test(kit: &Path, app: &Path, cache: Option<&Path>, extra: &[&str]) -> Output {
    let mut command = medic();
    command
        .args(["kit", "test"])
        .arg(kit)
        .arg("--app")
        .arg(app)
        .args(extra);
    if let Some(cache) = cache {
        command.env("XDG_CACHE_HOME", cache);
    }
    command.output().unwrap()
}

/// `medic kit test` of one bundled kit for app files written in one temp
/// dir, the kit compiled once for all of them.
pub struct KitTrials {
    /// Where the app file, the kit cache and any secret files go.
    pub dir: tempfile::TempDir,
    kit: &'static str,
    app: &'static str,
}

impl KitTrials {
    /// Trials of bundled kit `kit` for an app named `app`.
    pub fn new(kit: &'static str, app: &'static str) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            kit,
            app,
        }
    }

    /// The exit code and everything printed, for the app file `body`
    /// (after its `kit = ...` line).
    pub fn run(&self, body: &str) -> (Option<i32>, String) {
        let file = self.dir.path().join(format!("{}.toml", self.app));
        std::fs::write(&file, format!("kit = \"{}\"\n{body}", self.kit)).unwrap();
        let output = kit_test(
            &guests::kit(self.kit),
            &file,
            Some(&self.dir.path().join("cache")),
            &[],
        );
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.code(), text)
    }
}

/// A medic.toml, an apps.d and a plugins dir in a temp dir.
pub struct Setup {
    pub dir: tempfile::TempDir,
}

impl Setup {
    /// A setup whose medic.toml has `escalation` as its [escalation] table body.
    pub fn new(escalation: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["apps.d", "kits", "state"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let main = format!(
            "[daemon]\nplugins_dir = \"kits\"\napps_dir = \"apps.d\"\nstate_dir = \"state\"\nsocket = \"medic.sock\"\n\n[escalation]\n{escalation}\n"
        );
        std::fs::write(dir.path().join("medic.toml"), main).unwrap();
        Self { dir }
    }

    /// Copies the built guest `kit` into the plugins dir as `<kit>.wasm`.
    pub fn with_kit(self, kit: &str) -> Self {
        std::fs::copy(
            guests::kit(kit),
            self.dir.path().join("kits").join(format!("{kit}.wasm")),
        )
        .unwrap();
        self
    }

    /// Adds `lines` to medic.toml's `[daemon]` table, after `socket`
    /// (line 6 and on).
    pub fn with_daemon(self, lines: &str) -> Self {
        let main = std::fs::read_to_string(self.config()).unwrap();
        std::fs::write(
            self.config(),
            main.replace(
                "socket = \"medic.sock\"\n",
                &format!("socket = \"medic.sock\"\n{lines}"),
            ),
        )
        .unwrap();
        self
    }

    /// Writes `apps.d/<name>.toml`.
    pub fn app(self, name: &str, toml: &str) -> Self {
        std::fs::write(
            self.dir.path().join("apps.d").join(format!("{name}.toml")),
            toml,
        )
        .unwrap();
        self
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("medic.toml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Runs a medic verb with `--config` appended where it belongs.
    pub fn run(&self, args: &[&str]) -> Output {
        medic()
            .args(args)
            .arg("--config")
            .arg(self.config())
            .output()
            .unwrap()
    }

    /// Starts `medic daemon` on this setup, logging at debug level for
    /// tests that read the log.
    pub fn daemon(&self) -> Daemon {
        self.daemon_logging("medic=debug,warn")
    }

    /// Starts `medic daemon` with the log filter `filter` (`MEDIC_LOG`).
    pub fn daemon_logging(&self, filter: &str) -> Daemon {
        let log = std::fs::File::create(self.dir.path().join("daemon.log")).unwrap();
        let child = medic()
            .args(["daemon", "--config"])
            .arg(self.config())
            .env("MEDIC_LOG", filter)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon {
            child,
            log: self.dir.path().join("daemon.log"),
        }
    }

    pub fn events(&self) -> Vec<Event> {
        journal::read_all(&self.state_dir()).unwrap()
    }

    pub fn kinds(&self, app: &str) -> Vec<Kind> {
        self.events()
            .into_iter()
            .filter(|e| e.app.as_deref() == Some(app))
            .map(|e| e.kind)
            .collect()
    }

    /// Adds the app `stuck`: its check always fails and its one restart
    /// does not help, so it escalates to a VM reset at its second failed
    /// check (a reset needs a failed check after local recovery ran).
    pub fn with_stuck_app(self) -> Self {
        self.with_kit("misbehave").app(
            "stuck",
            "kit = \"misbehave\"\ninterval = \"100ms\"\nfailures_before_action = 1\nstart = [\"/bin/true\"]\n\
             [recovery]\nlocal_attempts = 1\nbackoff = \"50ms\"\nthen = \"vm-reset\"\n[settings]\nmode = \"fail\"\n",
        )
    }

    /// Runs the daemon until the journal holds `kind` for `app` (failing
    /// the test with the daemon's log after 30 s), stops it, and returns
    /// the journal.
    pub fn daemon_until(&self, app: &str, kind: Kind) -> Vec<Event> {
        let mut daemon = self.daemon();
        assert!(
            self.wait_event(app, kind, Duration::from_secs(30)),
            "no {kind} for {app}: {}",
            daemon.log_text()
        );
        daemon.stop();
        self.events()
    }

    /// The exit code and first line of `medic check APP` (local, with
    /// `--config`).
    pub fn check(&self, app: &str) -> (i32, String) {
        let out = self.run(&["check", app]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.code().unwrap(),
            text.lines().next().unwrap_or_default().to_owned(),
        )
    }

    /// The `reason` of every `kind` event of `app`, oldest first.
    pub fn reasons(&self, app: &str, kind: Kind) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| e.kind == kind && e.app.as_deref() == Some(app))
            .filter_map(|e| e.detail["reason"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until a running daemon has loaded its kits (the journal holds
    /// `kit_loaded`), then a moment more for the first checks.
    pub fn wait_kit_loaded(&self) {
        assert!(
            wait_for(Duration::from_secs(60), || self
                .events()
                .iter()
                .any(|e| e.kind == Kind::KitLoaded)),
            "no kit_loaded"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    /// Waits until the journal holds an event of `kind` for `app`.
    pub fn wait_event(&self, app: &str, kind: Kind, timeout: Duration) -> bool {
        wait_for(timeout, || self.kinds(app).contains(&kind))
    }
}

/// A running `medic daemon`, stopped with SIGTERM on drop.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Stops the daemon gracefully and waits for it.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        terminate(self.child.id());
        self.child.wait().ok()
    }

    /// A daemon the test started its own way (stopped on drop like any).
    pub fn from_child(child: Child, log: PathBuf) -> Self {
        Self { child, log }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the daemon with SIGKILL (no shutdown path runs) and waits.
    pub fn kill(&mut self) {
        kill9(self.child.id());
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends SIGTERM to a process this test started.
pub fn terminate(pid: u32) {
    signal(pid, rustix::process::Signal::TERM);
}

/// Sends SIGKILL to a process this test started.
pub fn kill9(pid: u32) {
    signal(pid, rustix::process::Signal::KILL);
}

/// Sends `signal` to a process this test started (or that medic started
/// for it).
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Reads a pid from a pidfile, if it holds one.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether the process whose pid `pidfile` holds is gone within 2 s (a
/// zombie counts as gone).
pub fn gone_soon(pidfile: &Path) -> bool {
    let pid = read_pid(pidfile).unwrap();
    wait_for(Duration::from_secs(2), || !medic::process::is_alive(pid))
}

/// A hypervisor that accepts connections and never answers: the "slow
/// hypervisor" of the escalation tests. Each connection is held for
/// `hold`, then closed, so no blocked client outlives the test by long.
pub mod silent {
    use std::path::Path;
    use std::time::Duration;

    /// Listens on the unix socket `path`.
    pub fn unix(path: &Path, hold: Duration) {
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        hold_each(move || listener.accept().map(|(stream, _)| stream), hold);
    }

    /// Listens on a loopback TCP port, returned.
    pub fn tcp(hold: Duration) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        hold_each(move || listener.accept().map(|(stream, _)| stream), hold);
        port
    }

    /// Accepts connections on a thread and holds each for `hold`.
    fn hold_each<S: Send + 'static>(
        accept: impl Fn() -> std::io::Result<S> + Send + 'static,
        hold: Duration,
    ) {
        std::thread::spawn(move || {
            while let Ok(stream) = accept() {
                std::thread::spawn(move || {
                    std::thread::sleep(hold);
                    drop(stream);
                });
            }
        });
    }
}
