//! medic never makes things worse, against real servers: a hung app is
//! recovered whatever the timeouts say, "stop" means stopped, and a check
//! that cannot judge never restarts an app or resets the VM.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::Setup;
use common::nginx::{NGINX, Nginx};
use common::postgres::Postgres;
use common::redis::Redis;
use medic::journal::Kind;
use rustix::process::Signal;

/// A tight deadline: every kit's own default wait is longer than this.
const TIGHT: &str = "timeout = \"1s\"";

/// The common part of an app file: checked every 300 ms, recovered at the
/// first failed check, a VM reset (dry-run) when that does not help.
fn ladder(start: &str, stop: &str) -> String {
    format!(
        "interval = \"300ms\"\n{TIGHT}\nfailures_before_action = 1\nstart = {start}\n{stop}\n\
         [recovery]\nlocal_attempts = 3\nbackoff = \"200ms\"\nmax_flaps = 0\nthen = \"vm-reset\"\n"
    )
}

/// `stop` that ends even a SIGSTOPped process: SIGCONT, then SIGKILL.
fn kill_stop(pidfile: &Path) -> String {
    let script = format!(
        "pid=$(head -n1 {p}); kill -CONT $pid; kill -KILL $pid; true",
        p = pidfile.display()
    );
    format!(
        "stop = {}",
        common::argv_toml(&["/bin/sh".into(), "-c".into(), script])
    )
}

/// The typical `stop`: SIGTERM to the pid in the pidfile, which a hung
/// process never acts on.
fn term_stop(pidfile: &Path) -> String {
    let script = format!("kill -TERM $(cat {p})", p = pidfile.display());
    format!(
        "stop = {}",
        common::argv_toml(&["/bin/sh".into(), "-c".into(), script])
    )
}

/// Waits until `app` has been journaled as recovered `n` times.
fn recovered(setup: &Setup, app: &str, n: usize, daemon: &common::Daemon) {
    assert!(
        common::wait_for(Duration::from_secs(60), || {
            setup
                .kinds(app)
                .iter()
                .filter(|k| **k == Kind::AppRecovered)
                .count()
                >= n
        }),
        "{app} not recovered: {:?}\n{}",
        setup.kinds(app),
        daemon.log_text()
    );
}

/// With `timeout = "1s"` and no wait of their own configured, the http,
/// nginx and tcp kits report a SIGSTOPped nginx as failed before their
/// deadline (the host cuts their waits short and tells them the deadline),
/// so it is recovered, without a single kit fault.
#[test]
fn a_hung_nginx_is_recovered_under_the_http_nginx_and_tcp_kits() {
    let web = Nginx::start();
    let status = Nginx::start();
    let tcp = Nginx::start_with_tiny_backlog();
    let grant = |n: &Nginx| format!("[grants]\nconnect = [\"127.0.0.1:{}\"]\n", n.port);
    let setup = Setup::new("backend = \"dry-run\"\nmin_uptime = \"0s\"")
        .with_kit("http")
        .with_kit("nginx")
        .with_kit("tcp")
        .app(
            "web",
            &format!(
                "kit = \"http\"\n{}[settings]\nurl = \"http://127.0.0.1:{}/healthz\"\n{}",
                ladder(&web.start_toml(), &kill_stop(&web.pidfile())),
                web.port,
                grant(&web)
            ),
        )
        .app(
            "status",
            &format!(
                "kit = \"nginx\"\n{}[settings]\nurl = \"http://127.0.0.1:{port}/healthz\"\n\
                 status_url = \"http://127.0.0.1:{port}/status\"\nconf = \"{conf}\"\nprefix = \"{prefix}\"\n\
                 {}exec = [\"{NGINX}\"]\n",
                ladder(&status.start_toml(), &kill_stop(&status.pidfile())),
                grant(&status),
                port = status.port,
                conf = status.prefix.join("nginx.conf").display(),
                prefix = status.prefix.display(),
            ),
        )
        .app(
            "port",
            &format!(
                "kit = \"tcp\"\n{}[settings]\naddress = \"127.0.0.1:{}\"\n{}",
                ladder(&tcp.start_toml(), &kill_stop(&tcp.pidfile())),
                tcp.port,
                grant(&tcp)
            ),
        );
    let daemon = setup.daemon();
    setup.wait_kit_loaded();
    let servers = [("web", &web), ("status", &status), ("port", &tcp)];
    let before: Vec<u32> = servers
        .iter()
        .map(|(_, n)| n.master_pid().unwrap())
        .collect();
    for pid in &before {
        common::signal(*pid, Signal::STOP);
    }
    for ((app, nginx), old) in servers.iter().zip(&before) {
        recovered(&setup, app, 1, &daemon);
        assert!(
            common::wait_for(Duration::from_secs(10), || nginx.serves()),
            "{app} serves again"
        );
        assert_ne!(nginx.master_pid(), Some(*old), "{app}: a new nginx runs");
        let failed = setup.reasons(app, Kind::AppFailed);
        assert_eq!(failed.len(), 1, "{app}: {failed:?}");
        assert!(
            !failed[0].starts_with("check timed out"),
            "{app}: the kit itself said why, before its deadline: {failed:?}"
        );
        let kinds = setup.kinds(app);
        assert!(
            !kinds.contains(&Kind::KitFault),
            "{app}: the hang was never a kit fault: {kinds:?}"
        );
        assert!(
            !kinds.contains(&Kind::ResetDecided),
            "{app}: a restart helped, no reset: {kinds:?}"
        );
    }
}

/// The last line: a kit that cannot end its own waits (it sleeps through
/// them) hits the deadline; the second time in a row that counts as a
/// failed check, and the app is recovered. Other kit faults never count.
#[test]
fn a_check_that_keeps_timing_out_counts_as_failed() {
    let marker = tempfile::tempdir().unwrap();
    let restarted = marker.path().join("restarted");
    let start = common::argv_toml(&["/bin/touch".into(), restarted.display().to_string()]);
    let setup = Setup::new("backend = \"dry-run\"")
        .with_kit("misbehave")
        .app(
            "sleepy",
            &format!(
                "kit = \"misbehave\"\ninterval = \"100ms\"\ntimeout = \"300ms\"\nfailures_before_action = 1\n\
                 timeouts_before_failure = 2\nstart = {start}\n\
                 [recovery]\nlocal_attempts = 1\nthen = \"alert\"\n[settings]\nmode = \"sleep\"\nms = \"60000\"\n"
            ),
        )
        .app(
            "trapping",
            "kit = \"misbehave\"\ninterval = \"100ms\"\nfailures_before_action = 1\nstart = [\"/bin/true\"]\n\
             [settings]\nmode = \"trap\"\n",
        );
    let mut daemon = setup.daemon();
    assert!(
        common::wait_for(Duration::from_secs(30), || restarted.exists()),
        "the restart ran: {}",
        daemon.log_text()
    );
    daemon.stop();
    let failed = setup.reasons("sleepy", Kind::AppFailed);
    assert!(
        failed[0].starts_with("check timed out 2 times in a row"),
        "{failed:?}"
    );
    let sleepy: Vec<Kind> = setup.kinds("sleepy");
    assert_eq!(
        sleepy.iter().filter(|k| **k == Kind::KitFault).count(),
        1,
        "one kit fault for the streak: {sleepy:?}"
    );
    let trapping = setup.kinds("trapping");
    assert!(
        !trapping.contains(&Kind::AppFailed) && !trapping.contains(&Kind::RecoveryAttempt),
        "a trap is never the app's fault: {trapping:?}"
    );
    assert!(trapping.contains(&Kind::KitFault), "{trapping:?}");
}

/// A hung (SIGSTOPped) nginx with a master and a worker ignores the
/// SIGTERM of its `stop`; `stop_grace` later medic kills the whole group,
/// journals it, and `start` brings nginx back. An app without `stop` gets
/// medic's own SIGTERM, then the same.
#[test]
fn stop_means_stopped() {
    let termed = Nginx::start_with_master();
    let bare = Nginx::start_with_master();
    let app = |nginx: &Nginx, stop: &str| {
        format!(
            "kit = \"http\"\nstop_grace = \"1s\"\npidfile = \"{}\"\n{}\
             [settings]\nurl = \"http://127.0.0.1:{}/healthz\"\n[grants]\nconnect = [\"127.0.0.1:{}\"]\n",
            nginx.pidfile().display(),
            ladder(&nginx.start_toml(), stop),
            nginx.port,
            nginx.port
        )
    };
    let setup = Setup::new("backend = \"dry-run\"")
        .with_kit("http")
        .app("termed", &app(&termed, &term_stop(&termed.pidfile())))
        .app("bare", &app(&bare, ""));
    let daemon = setup.daemon();
    setup.wait_kit_loaded();
    for (name, nginx) in [("termed", &termed), ("bare", &bare)] {
        let master = nginx.master_pid().unwrap();
        let workers = nginx.worker_pids();
        assert!(!workers.is_empty(), "{name}: nginx has a worker");
        for pid in std::iter::once(master).chain(workers.iter().copied()) {
            common::signal(pid, Signal::STOP);
        }
        recovered(&setup, name, 1, &daemon);
        assert!(
            common::wait_for(Duration::from_secs(10), || nginx.serves()),
            "{name} serves again"
        );
        assert_ne!(nginx.master_pid(), Some(master), "{name}: a new master");
        for pid in std::iter::once(master).chain(workers) {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists()
                    || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .unwrap_or_default()
                        .contains(") Z"),
                "{name}: old process {pid} is gone"
            );
        }
        let killed: Vec<_> = setup
            .events()
            .into_iter()
            .filter(|e| e.kind == Kind::AppKilled && e.app.as_deref() == Some(name))
            .collect();
        assert_eq!(killed.len(), 1, "{name}: {killed:?}");
        assert_eq!(killed[0].detail["pid"], master);
        assert_eq!(killed[0].detail["after"], "1s");
        let failed_restarts = setup.reasons(name, Kind::RecoveryFailed);
        assert!(
            failed_restarts.is_empty(),
            "{name}: start never failed: {failed_restarts:?}"
        );
    }
}

/// A mistyped password: the check cannot judge. Over 20 s nothing is done
/// to a healthy redis or postgres but one `app_unknown` each, even with a
/// VM reset as the last step; `medic check` says UNKNOWN (exit 3).
#[test]
fn a_refused_login_never_restarts_the_app_or_resets_the_vm() {
    let redis = Redis::with_password("s3cret");
    let pg = Postgres::start();
    let secrets = tempfile::tempdir().unwrap();
    let wrong = secrets.path().join("wrong");
    std::fs::write(&wrong, "typo\n").unwrap();
    let read = format!("read = [\"{}\"]", secrets.path().display());
    let redis_stop = kill_stop(&redis.pidfile());
    let pg_stop = format!("stop = {}", pg.stop_toml());
    let setup = Setup::new("backend = \"dry-run\"\nmin_uptime = \"0s\"")
        .with_kit("redis")
        .with_kit("postgres")
        .app(
            "cache",
            &format!(
                "kit = \"redis\"\n{}[settings]\nport = \"{}\"\npassword_file = \"{}\"\n\
                 [grants]\nconnect = [\"{}\"]\n{read}\n",
                ladder(&redis.start_toml(), &redis_stop),
                redis.port,
                wrong.display(),
                redis.address()
            ),
        )
        .app(
            "db",
            &format!(
                "kit = \"postgres\"\n{}[settings]\nport = \"{}\"\nuser = \"{}\"\ndatabase = \"{}\"\npassword_file = \"{}\"\n\
                 [grants]\nconnect = [\"127.0.0.1:{}\"]\n{read}\n",
                ladder(&pg.start_toml(), &pg_stop),
                pg.port,
                Postgres::SCRAM_USER,
                Postgres::DATABASE,
                wrong.display(),
                pg.port
            ),
        );
    for app in ["cache", "db"] {
        let (code, line) = setup.check(app);
        assert_eq!(code, 3, "{line}");
        assert!(
            line.starts_with(&format!("UNKNOWN - {app}: unknown: ")),
            "{line}"
        );
    }
    let (redis_pid, pg_pid) = (redis.pid().unwrap(), pg.master_pid().unwrap());
    let mut daemon = setup.daemon();
    setup.wait_kit_loaded();
    std::thread::sleep(Duration::from_secs(20));
    assert!(daemon.is_running());
    daemon.stop();
    assert_eq!(redis.pid(), Some(redis_pid), "redis was left alone");
    assert_eq!(pg.master_pid(), Some(pg_pid), "postgres was left alone");
    for (app, refusal) in [
        ("cache", "WRONGPASS"),
        ("db", "password authentication failed"),
    ] {
        let kinds = setup.kinds(app);
        assert_eq!(
            kinds.iter().filter(|k| **k == Kind::AppUnknown).count(),
            1,
            "{app}: one app_unknown for the streak: {kinds:?}"
        );
        for never in [
            Kind::RecoveryAttempt,
            Kind::ResetDecided,
            Kind::AppFailed,
            Kind::AppKilled,
        ] {
            assert!(!kinds.contains(&never), "{app}: no {never}: {kinds:?}");
        }
        let reasons = setup.reasons(app, Kind::AppUnknown);
        assert!(reasons[0].contains(refusal), "{app}: {reasons:?}");
    }
}

/// The programs medic starts itself (`start`, an `exec` alert sink) get an
/// explicit environment: a secret in medic's own (a credential read with
/// `env:PREFIX`) or systemd's notify socket never reaches them.
#[test]
fn no_secret_of_medic_reaches_the_programs_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dumping(dir.path(), "sink");
    let setup = failing_app(
        &format!(
            "backend = \"dry-run\"\n\n[[alert]]\nkind = \"exec\"\ncommand = {sink}\nevents = [\"app_failed\"]\n"
        ),
        &dumping(dir.path(), "start"),
    );
    let daemon = daemon_with_env(
        &setup,
        &[
            ("MEDIC_VSPHERE_PASSWORD", "hunter2-secret"),
            ("NOTIFY_SOCKET", "/run/not-for-apps"),
        ],
    );
    let (start_env, sink_env) = (dir.path().join("start.env"), dir.path().join("sink.env"));
    assert!(
        common::wait_for(Duration::from_secs(30), || start_env.exists()
            && sink_env.exists()),
        "{}",
        daemon.log_text()
    );
    for file in [&start_env, &sink_env] {
        let env = std::fs::read_to_string(file).unwrap();
        assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
        assert!(!env.contains("hunter2-secret"), "{}: {env}", file.display());
        assert!(!env.contains("NOTIFY_SOCKET"), "{}: {env}", file.display());
    }
}

/// A setup with `escalation` and the app `web`, whose check always fails
/// and which is restarted once with `start` (a TOML array).
fn failing_app(escalation: &str, start: &str) -> Setup {
    Setup::new(escalation).with_kit("misbehave").app(
        "web",
        &format!(
            "kit = \"misbehave\"\ninterval = \"100ms\"\nfailures_before_action = 1\nstart = {start}\n\
             [recovery]\nlocal_attempts = 1\nthen = \"none\"\n[settings]\nmode = \"fail\"\n"
        ),
    )
}

/// Starts `medic daemon` on `setup` with `env` added to the test's own
/// environment.
fn daemon_with_env(setup: &Setup, env: &[(&str, &str)]) -> common::Daemon {
    let log = setup.dir.path().join("daemon.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = common::medic()
        .args(["daemon", "--config"])
        .arg(setup.config())
        .env("MEDIC_LOG", "medic=debug,warn")
        .envs(env.iter().copied())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    common::Daemon::from_child(child, log)
}

/// A command (a TOML array) that runs [`environment_dump`] for `name`.
fn dumping(dir: &Path, name: &str) -> String {
    common::argv_toml(&["/bin/sh".into(), "-c".into(), environment_dump(dir, name)])
}

/// A shell script that writes its environment to `DIR/NAME.env`, which
/// appears whole.
fn environment_dump(dir: &Path, name: &str) -> String {
    let file = dir.join(name).display().to_string();
    format!("env > {file}.env.tmp && mv {file}.env.tmp {file}.env")
}

/// Credentials read with `env:PREFIX` leave medic's environment when the
/// daemon starts. The fence agent still gets them (on its stdin), but
/// neither it nor an app's `start` inherits them. The prefix is under
/// `LC_*`, a pattern programs medic starts inherit, so only the withdrawal
/// keeps the variables out.
#[test]
fn env_credentials_leave_medic_s_environment() {
    const USERNAME: &str = "hv-user-4711";
    const PASSWORD: &str = "s3cret-Pa55-0815";
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("fence_env");
    std::fs::write(
        &agent,
        format!(
            "#!/bin/sh\ncat > {stdin}.tmp && mv {stdin}.tmp {stdin}\n{dump}\nexit 0\n",
            stdin = dir.path().join("agent.stdin").display(),
            dump = environment_dump(dir.path(), "agent"),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let setup = failing_app(
        &format!(
            "backend = \"fence-agent\"\n[escalation.fence-agent]\nagent = \"{}\"\ncredentials = \"env:LC_MEDIC_HV\"\n",
            agent.display()
        ),
        &dumping(dir.path(), "start"),
    );
    let mut daemon = daemon_with_env(
        &setup,
        &[
            ("LC_MEDIC_HV_USERNAME", USERNAME),
            ("LC_MEDIC_HV_PASSWORD", PASSWORD),
        ],
    );
    let written = |name: &str| dir.path().join(format!("{name}.env")).exists();
    assert!(
        common::wait_for(Duration::from_secs(30), || written("agent")
            && written("start")),
        "{}",
        daemon.log_text()
    );
    daemon.stop();

    let stdin = std::fs::read_to_string(dir.path().join("agent.stdin")).unwrap();
    assert!(
        stdin.contains(&format!("username={USERNAME}\npassword={PASSWORD}\n")),
        "the agent got the credentials: {stdin}"
    );
    for name in ["agent.env", "start.env"] {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(!text.contains(PASSWORD), "{name}: {text}");
        assert!(!text.contains(USERNAME), "{name}: {text}");
    }
    for name in ["agent.env", "start.env"] {
        let env = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(env.lines().any(|l| l.starts_with("PATH=")), "{name}: {env}");
        assert!(!env.contains("LC_MEDIC_HV"), "{name}: {env}");
    }
    let log = daemon.log_text();
    assert!(
        log.contains("LC_MEDIC_HV_PASSWORD, LC_MEDIC_HV_USERNAME moved out of the environment"),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}
