//! The application kits against the real servers they watch: redis-server
//! and PostgreSQL 15 started by the test. Each is checked in its states
//! (healthy, refused login, degraded), then killed (SIGKILL) and wedged
//! (SIGSTOP: it accepts connections and answers nothing) under a running
//! daemon, which brings it back.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::Setup;
use common::postgres::Postgres;
use common::redis::Redis;
use medic::journal::Kind;

/// `stop` for a server that may be wedged: SIGCONT then SIGKILL to the pid
/// in `pidfile` (its first line).
fn kill_stop(pidfile: &Path) -> String {
    let script = format!(
        "pid=$(head -n1 {p}); kill -CONT $pid; kill -KILL $pid; true",
        p = pidfile.display()
    );
    common::argv_toml(&["/bin/sh".into(), "-c".into(), script])
}

/// Counts `app_recovered` events of `app`.
fn recoveries(setup: &Setup, app: &str) -> usize {
    setup
        .kinds(app)
        .iter()
        .filter(|k| **k == Kind::AppRecovered)
        .count()
}

/// Checks that `app` is healthy, then, under a daemon on `setup`, kills
/// the server (SIGKILL to the pid `pid` gives), then wedges it (SIGSTOP),
/// and asserts the daemon brought it back each time (`serves` holds again,
/// a new pid runs) and that the hang was a failed check saying
/// `hang_reason`.
fn brought_back_after_kill_and_hang(
    setup: &Setup,
    app: &str,
    hang_reason: &str,
    pid: impl Fn() -> Option<u32>,
    serves: impl Fn() -> bool,
) {
    assert_eq!(setup.check(app), (0, format!("OK - {app}: healthy")));
    let mut daemon = setup.daemon();
    setup.wait_kit_loaded();
    let pause = |pid| common::signal(pid, rustix::process::Signal::STOP);
    for (round, harm) in [(1, &common::kill9 as &dyn Fn(u32)), (2, &pause)] {
        let before = pid().unwrap();
        harm(before);
        assert!(
            common::wait_for(Duration::from_secs(60), || recoveries(setup, app) == round),
            "round {round}: {}",
            daemon.log_text()
        );
        assert!(
            common::wait_for(Duration::from_secs(10), &serves),
            "round {round}: serves again"
        );
        assert_ne!(pid(), Some(before), "round {round}: a new server runs");
    }
    let reasons = setup.reasons(app, Kind::AppFailed);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[1].contains(hang_reason),
        "the hang is a failed check, not a kit fault: {reasons:?}"
    );
    assert!(daemon.is_running());
}

/// An app file watching a redis through the redis kit.
fn redis_app(redis: &Redis, extra_settings: &str, grants_read: &str) -> String {
    format!(
        "kit = \"redis\"\ninterval = \"300ms\"\ntimeout = \"3s\"\nfailures_before_action = 1\n\
         start = {start}\nstop = {stop}\n\
         [recovery]\nlocal_attempts = 5\nbackoff = \"100ms\"\nmax_flaps = 0\nthen = \"alert\"\n\
         [settings]\nport = \"{port}\"\ntimeout_ms = \"1000\"\n{extra_settings}\
         [grants]\nconnect = [\"{address}\"]\n{grants_read}",
        start = redis.start_toml(),
        stop = kill_stop(&redis.pidfile()),
        port = redis.port,
        address = redis.address(),
    )
}

#[test]
fn redis_states_are_told_apart() {
    let plain = Redis::start();
    let locked = Redis::with_password("s3cret");
    let replica = Redis::replica_of_nothing();
    let secret = format!("password_file = \"{}\"\n", locked.password_file().display());
    let read = format!("read = [\"{}\"]\n", locked.secret_dir().display());
    let setup = Setup::new("backend = \"dry-run\"")
        .with_kit("redis")
        .app("plain", &redis_app(&plain, "", ""))
        .app("locked", &redis_app(&locked, &secret, &read))
        .app("nopass", &redis_app(&locked, "", ""))
        .app("replica", &redis_app(&replica, "", ""));
    assert_eq!(setup.check("plain"), (0, "OK - plain: healthy".into()));
    assert_eq!(setup.check("locked"), (0, "OK - locked: healthy".into()));
    let (code, line) = setup.check("nopass");
    assert_eq!(code, 3, "a refused login is no evidence either way: {line}");
    assert!(line.starts_with("UNKNOWN - nopass: unknown: "), "{line}");
    assert!(line.contains("NOAUTH"), "{line}");
    let (code, line) = setup.check("replica");
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("link to master"), "{line}");
}

#[test]
fn a_killed_or_wedged_redis_is_brought_back() {
    let redis = Redis::start();
    let setup = Setup::new("backend = \"dry-run\"")
        .with_kit("redis")
        .app("cache", &redis_app(&redis, "", ""));
    brought_back_after_kill_and_hang(
        &setup,
        "cache",
        "PING: no answer within 1000 ms",
        || redis.pid(),
        || redis.pings(),
    );
}

/// An app file watching `pg` through the postgres kit as `user`.
fn postgres_app(pg: &Postgres, user: &str, extra_settings: &str, grants_read: &str) -> String {
    format!(
        "kit = \"postgres\"\ninterval = \"300ms\"\ntimeout = \"3s\"\nfailures_before_action = 1\n\
         start = {start}\nstop = {stop}\n\
         [recovery]\nlocal_attempts = 30\nbackoff = \"300ms\"\nmax_flaps = 0\nthen = \"alert\"\n\
         [settings]\nport = \"{port}\"\nuser = \"{user}\"\ndatabase = \"{db}\"\ntimeout_ms = \"1000\"\n{extra_settings}\
         [grants]\nconnect = [\"127.0.0.1:{port}\"]\n{grants_read}",
        start = pg.start_toml(),
        stop = postgres_stop(pg),
        port = pg.port,
        db = Postgres::DATABASE,
    )
}

/// `stop` for a postgres that may be wedged: SIGCONT to the postmaster,
/// then an immediate shutdown, which also ends every backend.
fn postgres_stop(pg: &Postgres) -> String {
    let mut stop = pg.stop_args();
    let fast = stop.iter().position(|a| a == "fast").unwrap();
    stop[fast] = "immediate".into();
    let script = format!(
        "kill -CONT $(head -n1 {pidfile}) 2>/dev/null; {stop}; true",
        pidfile = pg.data_dir().join("postmaster.pid").display(),
        stop = stop.join(" "),
    );
    common::argv_toml(&["/bin/sh".into(), "-c".into(), script])
}

#[test]
fn postgres_logins_queries_and_read_only_are_told_apart() {
    let pg = Postgres::start();
    let secrets = tempfile::tempdir().unwrap();
    let good = secrets.path().join("good");
    let bad = secrets.path().join("bad");
    std::fs::write(&good, format!("{}\n", Postgres::PASSWORD)).unwrap();
    std::fs::write(&bad, "wrong\n").unwrap();
    let read = format!("read = [\"{}\"]\n", secrets.path().display());
    let with = |file: &Path| format!("password_file = \"{}\"\n", file.display());
    let setup = Setup::new("backend = \"dry-run\"")
        .with_kit("postgres")
        .app("trust", &postgres_app(&pg, Postgres::TRUST_USER, "", ""))
        .app(
            "scram",
            &postgres_app(&pg, Postgres::SCRAM_USER, &with(&good), &read),
        )
        .app(
            "md5",
            &postgres_app(&pg, Postgres::MD5_USER, &with(&good), &read),
        )
        .app(
            "wrong",
            &postgres_app(&pg, Postgres::SCRAM_USER, &with(&bad), &read),
        )
        .app(
            "query",
            &postgres_app(&pg, Postgres::TRUST_USER, "query = \"SELECT nope\"\n", ""),
        )
        .app(
            "strict",
            &postgres_app(
                &pg,
                Postgres::TRUST_USER,
                "degraded_read_only = \"true\"\n",
                "",
            ),
        );
    for app in ["trust", "scram", "md5", "strict"] {
        assert_eq!(setup.check(app), (0, format!("OK - {app}: healthy")));
    }
    let (code, line) = setup.check("wrong");
    assert_eq!(code, 3, "a refused login is no evidence either way: {line}");
    assert!(line.starts_with("UNKNOWN - wrong: unknown: "), "{line}");
    assert!(line.contains("password authentication failed"), "{line}");
    let (code, line) = setup.check("query");
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("column \"nope\" does not exist"), "{line}");
    pg.set_read_only(true);
    let (code, line) = setup.check("strict");
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("read-only"), "{line}");
    assert_eq!(
        setup.check("trust"),
        (0, "OK - trust: healthy".into()),
        "only if the admin says so"
    );
}

#[test]
fn a_killed_or_wedged_postgres_is_brought_back() {
    let pg = Postgres::start();
    let setup = Setup::new("backend = \"dry-run\"")
        .with_kit("postgres")
        .app("db", &postgres_app(&pg, Postgres::TRUST_USER, "", ""));
    brought_back_after_kill_and_hang(
        &setup,
        "db",
        "no answer within 1000 ms while logging in",
        || pg.master_pid(),
        || pg.psql("SELECT 1") == "1",
    );
}

/// An app file watching `nginx` through the nginx kit, with its
/// `stub_status` page, `start` and a `stop` that also ends a wedged nginx.
fn nginx_app(nginx: &common::nginx::Nginx) -> String {
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", nginx.port);
    let conf = nginx.prefix.join("nginx.conf");
    format!(
        "kit = \"nginx\"\ninterval = \"300ms\"\ntimeout = \"5s\"\nfailures_before_action = 1\n\
         start = {start}\nstop = {stop}\n\
         [recovery]\nlocal_attempts = 5\nbackoff = \"100ms\"\nmax_flaps = 0\nthen = \"alert\"\n\
         [settings]\nurl = \"{health}\"\nexpect_body = \"ok\"\nstatus_url = \"{status}\"\ntimeout_ms = \"1000\"\n\
         conf = \"{conf}\"\nprefix = \"{prefix}\"\n\
         [grants]\nconnect = [\"127.0.0.1:{port}\"]\nexec = [\"{nginx_bin}\"]\n",
        start = nginx.start_toml(),
        stop = kill_stop(&nginx.pidfile()),
        health = url("/healthz"),
        status = url("/status"),
        conf = conf.display(),
        prefix = nginx.prefix.display(),
        port = nginx.port,
        nginx_bin = common::nginx::NGINX,
    )
}

#[test]
fn nginx_stub_status_counters_come_with_the_check() {
    let nginx = common::nginx::Nginx::start();
    let setup = Setup::new("backend = \"dry-run\"").app("web", &nginx_app(&nginx));
    let output = common::medic()
        .args(["kit", "test"])
        .arg(common::guests::kit("nginx"))
        .arg("--app")
        .arg(setup.dir.path().join("apps.d/web.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("check    healthy"), "{text}");
    assert!(text.contains("annotated active = 1"), "{text}");
    assert!(text.contains("annotated requests = "), "{text}");
}

/// A wedged worker (SIGSTOP) is cured by the first recovery step, a
/// reload, which starts a new worker under the same master: no restart.
#[test]
fn a_wedged_nginx_worker_is_cured_by_a_reload() {
    let nginx = common::nginx::Nginx::start_with_master();
    let setup = Setup::new("backend = \"dry-run\"")
        .with_kit("nginx")
        .app("web", &nginx_app(&nginx));
    let mut daemon = setup.daemon();
    setup.wait_kit_loaded();
    let master = nginx.master_pid().unwrap();
    let worker = nginx.worker_pids()[0];
    common::signal(worker, rustix::process::Signal::STOP);
    assert!(
        setup.wait_event("web", Kind::AppRecovered, Duration::from_secs(30)),
        "{}",
        daemon.log_text()
    );
    assert!(nginx.serves());
    assert_eq!(nginx.master_pid(), Some(master), "reloaded, not restarted");
    assert!(
        nginx.worker_pids().iter().any(|pid| *pid != worker),
        "a new worker serves"
    );
    let attempts: Vec<_> = setup
        .events()
        .into_iter()
        .filter(|e| e.kind == Kind::RecoveryAttempt)
        .collect();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    daemon.stop();
    // The old worker never saw the reload's SIGQUIT while stopped.
    common::kill9(worker);
}

/// A killed nginx cannot be reloaded; the kit then asks for a restart.
#[test]
fn a_killed_or_wedged_nginx_is_brought_back() {
    let nginx = common::nginx::Nginx::start();
    let setup = Setup::new("backend = \"dry-run\"")
        .with_kit("nginx")
        .app("web", &nginx_app(&nginx));
    brought_back_after_kill_and_hang(
        &setup,
        "web",
        "no answer within 1000 ms",
        || nginx.master_pid(),
        || nginx.serves(),
    );
}
