//! The admin API and its client verbs against a running daemon: status,
//! check, recover, maintenance (with expiry, across a restart of medic),
//! events --follow, and a caller the socket refuses.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use common::Setup;
use medic::journal::Kind;
use serde_json::Value;

/// A daemon watching `web`, a kit that passes or fails as `mode` says.
fn setup(mode: &str) -> Setup {
    Setup::new("backend = \"dry-run\"\nmin_uptime = \"0s\"")
        .with_kit("misbehave")
        .app(
            "web",
            &format!(
                "kit = \"misbehave\"\ninterval = \"100ms\"\nfailures_before_action = 1\n\
                 [recovery]\nlocal_attempts = 100\nbackoff = \"50ms\"\nmax_flaps = 0\nthen = \"alert\"\n\
                 [settings]\nmode = \"{mode}\"\n"
            ),
        )
}

/// Starts the daemon and waits for its socket.
fn started(setup: &Setup) -> common::Daemon {
    let daemon = setup.daemon();
    assert!(common::wait_for(Duration::from_secs(30), || setup
        .dir
        .path()
        .join("medic.sock")
        .exists()));
    daemon
}

fn socket(setup: &Setup) -> String {
    setup.dir.path().join("medic.sock").display().to_string()
}

/// Runs a client verb against the setup's daemon.
fn client(setup: &Setup, args: &[&str]) -> std::process::Output {
    common::medic()
        .args(args)
        .args(["--socket", &socket(setup)])
        .output()
        .unwrap()
}

/// Waits until `web`'s state is `state` (the daemon may still be starting).
fn wait_state(setup: &Setup, state: &str) -> Value {
    let mut last = Value::Null;
    let reached = common::wait_for(Duration::from_secs(30), || {
        let out = client(setup, &["status", "--json"]);
        last = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        last["apps"][0]["state"] == state
    });
    assert!(reached, "never {state}: {last}");
    last
}

#[test]
fn status_check_and_recover_through_the_daemon() {
    let setup = setup("ok");
    let _daemon = started(&setup);
    let status = wait_state(&setup, "healthy");
    let web = &status["apps"][0];
    assert_eq!(web["app"], "web");
    assert_eq!(web["last_check"]["result"], "healthy");
    assert_eq!(web["attempts_allowed"], 100);
    assert_eq!(status["escalation"]["backend"], "dry-run");
    assert_eq!(status["escalation"]["resets_left"], 1);

    let table = client(&setup, &["status"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.starts_with("APP "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web ") && l.contains("healthy")),
        "{table}"
    );
    assert!(
        table.contains("escalation: dry-run, 1 of 1 resets left per 1h"),
        "{table}"
    );

    let out = client(&setup, &["check", "web"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK - web: healthy\n");
    let out = client(&setup, &["check", "nope"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no app `nope` is watched"));

    let out = client(&setup, &["recover", "web"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("web: kit recover"));

    let events = setup.events();
    let admin: Vec<_> = events
        .iter()
        .filter(|e| e.kind == Kind::AdminAction)
        .map(|e| {
            (
                e.detail["action"].as_str().unwrap().to_owned(),
                e.detail["by"].clone(),
            )
        })
        .collect();
    assert_eq!(
        admin,
        [
            ("check".to_owned(), Value::from("uid 0")),
            ("recover".to_owned(), Value::from("uid 0"))
        ]
    );
    let attempt = events
        .iter()
        .find(|e| e.kind == Kind::RecoveryAttempt)
        .unwrap();
    assert_eq!(attempt.detail["by"], "uid 0");
}

#[test]
fn maintenance_holds_recovery_expires_and_survives_a_restart() {
    let setup = setup("fail");
    let mut daemon = started(&setup);
    let out = client(&setup, &["maintenance", "on", "--reason", "patching"]);
    assert_eq!(out.status.code(), Some(2), "--for is required: {out:?}");
    let out = client(
        &setup,
        &[
            "maintenance",
            "on",
            "web",
            "--for",
            "4s",
            "--reason",
            "patching",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let status = wait_state(&setup, "maintenance");
    assert_eq!(status["apps"][0]["maintenance"]["reason"], "patching");
    let attempts_before = setup
        .kinds("web")
        .iter()
        .filter(|k| **k == Kind::RecoveryAttempt)
        .count();

    // medic restarts inside the window: the window is still there.
    daemon.stop();
    let _again = setup.daemon();
    wait_state(&setup, "maintenance");
    std::thread::sleep(Duration::from_millis(500));
    let attempts_during = setup
        .kinds("web")
        .iter()
        .filter(|k| **k == Kind::RecoveryAttempt)
        .count();
    assert_eq!(
        attempts_during, attempts_before,
        "no recovery in maintenance"
    );

    // The window ends by itself; recovery resumes.
    assert!(setup.wait_event("web", Kind::MaintenanceEnded, Duration::from_secs(15)));
    let ended = setup
        .events()
        .into_iter()
        .find(|e| e.kind == Kind::MaintenanceEnded)
        .unwrap();
    assert_eq!(ended.detail["why"], "expired");
    assert!(common::wait_for(Duration::from_secs(15), || {
        setup
            .kinds("web")
            .iter()
            .filter(|k| **k == Kind::RecoveryAttempt)
            .count()
            > attempts_during
    }));

    let out = client(&setup, &["maintenance", "on", "--for", "1h"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("all apps"));
    let out = client(&setup, &["maintenance", "off"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "maintenance off for all apps\n"
    );
}

/// A maintenance window far in the future (a typo) is a clear error, not
/// a panic: the daemon keeps running and saves no window.
#[test]
fn an_absurd_maintenance_window_is_refused_and_the_daemon_lives() {
    let setup = setup("ok");
    let mut daemon = started(&setup);
    for absurd in ["10000y", "300000000000y", "0s"] {
        let out = client(&setup, &["maintenance", "on", "--for", absurd]);
        let said = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{absurd}: {said}");
        assert!(
            said.contains("too long; the maximum is 10years")
                || said.contains("too short")
                || said.contains("invalid duration"),
            "{absurd}: {said}"
        );
    }
    assert!(daemon.is_running(), "{}", daemon.log_text());
    let status = wait_state(&setup, "healthy");
    assert_eq!(status["apps"][0]["maintenance"], Value::Null);
    assert!(!setup.kinds("web").contains(&Kind::MaintenanceStarted));
}

#[test]
fn events_follow_streams_new_events() {
    let setup = setup("ok");
    let _daemon = started(&setup);
    wait_state(&setup, "healthy");
    let mut follower = common::medic()
        .args([
            "events",
            "--follow",
            "--json",
            "--app",
            "web",
            "--socket",
            &socket(&setup),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(client(&setup, &["check", "web"]).status.code(), Some(0));
    let found = lines.by_ref().take(50).map(Result::unwrap).find(|line| {
        let event: Value = serde_json::from_str(line).unwrap();
        event["kind"] == "admin_action" && event["app"] == "web"
    });
    common::kill9(follower.id());
    let _ = follower.wait();
    assert!(found.is_some(), "the check was streamed");
}

#[test]
fn the_socket_refuses_a_user_who_may_not_use_it() {
    let setup = setup("ok");
    let _daemon = started(&setup);
    // Let `nobody` reach the socket file; its mode (0660, root) is the fence.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(setup.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // `medic status` as `nobody`: it must fail; returns its stderr.
    let as_nobody = || {
        let out = common::medic()
            .args(["status", "--socket", &socket(&setup)])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = as_nobody();
    assert!(
        stderr.contains("Permission denied") && stderr.contains("socket_group"),
        "{stderr}"
    );

    // Past the file's mode, the daemon's own check of the peer's uid.
    let socket_file = setup.dir.path().join("medic.sock");
    std::fs::set_permissions(&socket_file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let stderr = as_nobody();
    assert!(
        stderr.contains("uid 65534 may not use medic's admin API") && stderr.contains("HTTP 403"),
        "{stderr}"
    );
}

#[test]
fn alerts_and_metrics_from_a_running_daemon() {
    let port = common::free_port();
    let hung = common::silent::tcp(Duration::from_secs(30));
    let setup = Setup::new("backend = \"dry-run\"\nmin_uptime = \"0s\"")
        .with_daemon(&format!("metrics = \"127.0.0.1:{port}\"\n"));
    let delivered = setup.dir.path().join("delivered.jsonl");
    let main = std::fs::read_to_string(setup.config()).unwrap();
    let main = format!(
        "{main}\n[[alert]]\nkind = \"exec\"\nevents = [\"app_failed\"]\n\
         command = [\"/bin/sh\", \"-c\", \"cat >> {}\"]\n\
         [[alert]]\nname = \"hung\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{hung}/hook\"\ntimeout = \"30s\"\n",
        delivered.display()
    );
    std::fs::write(setup.config(), main).unwrap();
    let setup = setup.with_kit("misbehave").app(
        "web",
        "kit = \"misbehave\"\ninterval = \"100ms\"\nfailures_before_action = 1\n\
         [recovery]\nlocal_attempts = 100\nbackoff = \"50ms\"\nmax_flaps = 0\nthen = \"alert\"\n\
         [settings]\nmode = \"fail\"\n",
    );
    let _daemon = started(&setup);

    // The exec sink gets app_failed, and only that.
    assert!(common::wait_for(Duration::from_secs(30), || {
        std::fs::read_to_string(&delivered).is_ok_and(|text| !text.is_empty())
    }));
    let text = std::fs::read_to_string(&delivered).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["kind"], "app_failed");
    assert_eq!(first["app"], "web");

    // A webhook that never answers does not slow recovery down.
    let attempts = |setup: &Setup| {
        setup
            .kinds("web")
            .iter()
            .filter(|k| **k == Kind::RecoveryAttempt)
            .count()
    };
    let before = attempts(&setup);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        attempts(&setup) >= before + 5,
        "recovery went on while the webhook hung"
    );

    let scrape = scrape(port);
    let value = |series: &str| -> f64 {
        scrape
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{scrape}"))
    };
    assert!(value("medic_checks_total{app=\"web\",outcome=\"failed\"}") >= 5.0);
    assert!(value("medic_restarts_total{app=\"web\"}") >= 5.0);
    assert_eq!(value("medic_reset_budget_left"), 1.0);
    let in_flight_or_queued =
        value("medic_alert_deliveries_total{sink=\"hung\",result=\"delivered\"}");
    assert_eq!(in_flight_or_queued, 0.0, "nothing reached the hung webhook");
}

/// GET /metrics from the daemon's endpoint.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: medic\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// A redis-server on a loopback port, killed by its pid on drop.
struct Redis {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start(port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("/usr/bin/redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        assert!(common::wait_for(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }));
        Self { child, _dir: dir }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        common::kill9(self.child.id());
        let _ = self.child.wait();
    }
}

#[test]
fn a_dependent_is_blocked_while_redis_is_down_and_checked_when_it_is_back() {
    let port = common::free_port();
    let redis = Redis::start(port);
    let setup = Setup::new("backend = \"dry-run\"\nmin_uptime = \"0s\"").with_kit("tcp");
    let marker = setup.dir.path().join("web-restarted");
    let tcp = |interval: &str, extra: &str| {
        format!(
            "kit = \"tcp\"\ninterval = \"{interval}\"\nfailures_before_action = 1\n{extra}\n\
             [recovery]\nlocal_attempts = 1\nbackoff = \"50ms\"\nmax_flaps = 0\nthen = \"none\"\n\
             [settings]\naddress = \"127.0.0.1:{port}\"\n[grants]\nconnect = [\"127.0.0.1:{port}\"]\n"
        )
    };
    let setup = setup.app("db", &tcp("100ms", "")).app(
        "web",
        &tcp(
            "1h",
            &format!(
                "depends_on = [\"db\"]\nstart = [\"/bin/sh\", \"-c\", \"touch {}\"]",
                marker.display()
            ),
        ),
    );
    let _daemon = started(&setup);
    let web = |status: &Value| status["apps"][1].clone();
    wait_state(&setup, "healthy");
    drop(redis);

    // db is down: web is blocked, and a failed check of web is not acted on.
    let mut status = Value::Null;
    assert!(common::wait_for(Duration::from_secs(30), || {
        let out = client(&setup, &["status", "--json"]);
        status = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        web(&status)["state"] == "blocked"
    }));
    assert_eq!(
        web(&status)["reason"].as_str().unwrap(),
        format!(
            "waiting for db ({})",
            status["apps"][0]["state"].as_str().unwrap()
        )
    );
    let out = client(&setup, &["check", "web"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!marker.exists(), "a blocked app is not restarted");
    assert!(!setup.kinds("web").contains(&Kind::AppFailed));
    let checked_while_down = web(&status)["last_check"]["at"].clone();

    // redis is back: db recovers, and web is checked at once (its own
    // interval is an hour).
    let _redis = Redis::start(port);
    assert!(
        common::wait_for(Duration::from_secs(30), || {
            let out = client(&setup, &["status", "--json"]);
            status = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            web(&status)["state"] == "healthy"
                && web(&status)["last_check"]["at"] != checked_while_down
                && web(&status)["last_check"]["result"] == "healthy"
        }),
        "{status}"
    );
    assert!(!marker.exists());
}

#[test]
fn reload_applies_what_changed_and_refuses_bad_files_and_kits() {
    // Only explicit reloads here; reload on change has its own test.
    let setup = setup("ok").with_daemon("reload_on_change = false\n");
    let daemon = started(&setup);
    wait_state(&setup, "healthy");
    let apps_d = setup.dir.path().join("apps.d");
    let app = "kit = \"misbehave\"\ninterval = \"100ms\"\n[settings]\nmode = \"ok\"\n";
    let names = |setup: &Setup| -> Vec<String> {
        let out = client(setup, &["status", "--json"]);
        let status: Value = serde_json::from_slice(&out.stdout).unwrap();
        status["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["app"].as_str().unwrap().to_owned())
            .collect()
    };

    std::fs::write(apps_d.join("api.toml"), app).unwrap();
    let out = client(&setup, &["reload"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "reload applied: added api; removed -; changed -\n"
    );
    assert_eq!(names(&setup), ["api", "web"]);

    let web = std::fs::read_to_string(apps_d.join("web.toml")).unwrap();
    std::fs::write(
        apps_d.join("web.toml"),
        web.replace("\"100ms\"", "\"200ms\""),
    )
    .unwrap();
    let out = client(&setup, &["reload"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "reload applied: added -; removed -; changed web\n"
    );

    // A broken file: refused with file and line, the old config runs on.
    std::fs::write(
        apps_d.join("api.toml"),
        "kit = \"misbehave\"\ninterval = 5\n",
    )
    .unwrap();
    let out = client(&setup, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("api.toml:2:12: interval:"), "{stderr}");
    assert_eq!(names(&setup), ["api", "web"]);
    std::fs::write(apps_d.join("api.toml"), app).unwrap();

    // A bad kit over the good one: refused, the good one keeps checking.
    let kit = setup.dir.path().join("kits/misbehave.wasm");
    let good = std::fs::read(&kit).unwrap();
    std::fs::write(&kit, b"\0asm garbage").unwrap();
    let out = client(&setup, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not load"));
    let before = setup.kinds("web").len();
    let out = client(&setup, &["check", "web"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the old kit still checks: {out:?}"
    );
    assert!(setup.kinds("web").len() > before);
    std::fs::write(&kit, good).unwrap();

    // SIGHUP does the same as `medic reload`.
    std::fs::remove_file(apps_d.join("api.toml")).unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(daemon.pid() as i32).unwrap(),
        rustix::process::Signal::HUP,
    )
    .unwrap();
    assert!(common::wait_for(Duration::from_secs(30), || names(&setup) == ["web"]));
    let kinds: Vec<Kind> = setup
        .events()
        .iter()
        .filter(|e| e.app.is_none())
        .map(|e| e.kind)
        .filter(|k| matches!(k, Kind::ReloadApplied | Kind::ReloadRefused))
        .collect();
    assert_eq!(
        kinds,
        [
            Kind::ReloadApplied,
            Kind::ReloadApplied,
            Kind::ReloadRefused,
            Kind::ReloadRefused,
            Kind::ReloadApplied
        ]
    );
}

#[test]
fn a_new_app_file_is_picked_up_without_a_reload_command() {
    let setup = setup("ok");
    let _daemon = started(&setup);
    wait_state(&setup, "healthy");
    std::fs::write(
        setup.dir.path().join("apps.d/api.toml"),
        "kit = \"misbehave\"\ninterval = \"100ms\"\n[settings]\nmode = \"ok\"\n",
    )
    .unwrap();
    assert!(common::wait_for(Duration::from_secs(30), || {
        setup.events().iter().any(|e| {
            e.kind == Kind::ReloadApplied && e.detail["added"] == serde_json::json!(["api"])
        })
    }));
    let out = client(&setup, &["check", "api"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// `medic stop` stops a real nginx and holds it stopped: not checked, not
/// recovered, still stopped after a restart of medic, until `medic start`
/// starts it and supervision resumes. Both are journaled with who asked.
#[test]
fn stop_holds_an_app_stopped_across_a_restart_of_medic_until_start() {
    let nginx = common::nginx::Nginx::start();
    let setup = Setup::new("backend = \"dry-run\"\nmin_uptime = \"0s\"")
        .with_kit("http")
        .app("web", &nginx.http_app("100ms"));
    let mut daemon = started(&setup);
    wait_state(&setup, "healthy");

    let pid = nginx.master_pid().unwrap();
    let out = client(&setup, &["stop", "web", "--reason", "disk swap"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web stopped\n");
    assert!(
        common::wait_for(Duration::from_secs(2), || !medic::process::is_alive(pid)),
        "nginx was stopped"
    );
    assert!(!nginx.serves());
    let status = wait_state(&setup, "stopped");
    assert_eq!(
        status["apps"][0]["reason"], "stopped by uid 0: disk swap",
        "{status}"
    );
    let out = client(&setup, &["stop", "web"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("already stopped"));
    let out = client(&setup, &["recover", "web"]);
    assert_eq!(out.status.code(), Some(1), "a stopped app is not recovered");
    assert!(String::from_utf8_lossy(&out.stderr).contains("medic start web"));

    // Held across a restart of medic: nothing starts nginx again.
    daemon.stop();
    let _daemon = started(&setup);
    std::thread::sleep(Duration::from_secs(1));
    let status = wait_state(&setup, "stopped");
    assert!(status["apps"][0]["last_check"].is_null(), "{status}");
    assert!(!nginx.serves(), "medic started a stopped app");
    let kinds = setup.kinds("web");
    assert!(
        !kinds.iter().any(|k| matches!(
            k,
            Kind::AppFailed | Kind::RecoveryAttempt | Kind::Escalation
        )),
        "{kinds:?}"
    );

    let out = client(&setup, &["start", "web"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web started\n");
    assert!(nginx.serves());
    wait_state(&setup, "healthy");
    let out = client(&setup, &["start", "web"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("not stopped"));

    let held: Vec<_> = setup
        .events()
        .into_iter()
        .filter(|e| matches!(e.kind, Kind::AppStopped | Kind::AppStarted))
        .map(|e| (e.kind, e.detail["by"].clone(), e.detail["reason"].clone()))
        .collect();
    assert_eq!(
        held,
        [
            (Kind::AppStopped, "uid 0".into(), "disk swap".into()),
            (Kind::AppStarted, "uid 0".into(), Value::Null),
        ]
    );
}
