//! Start-up and kit loading: kits load concurrently and each app is watched
//! as soon as its own kit is ready, so an 18 MB Python kit compiling for
//! seconds holds up only its own app; a kit that fails to load says so in
//! the app's status; compiled kits nobody uses any more leave the cache;
//! `medic kit test` says when a kit must be compiled first.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::Setup;
use common::nginx::Nginx;
use serde_json::Value;

/// An app file checking `nginx` with `kit`.
fn http_app(kit: &str, nginx: &Nginx) -> String {
    format!(
        "kit = \"{kit}\"\ninterval = \"200ms\"\ntimeout = \"5s\"\n\
         [settings]\nurl = \"http://127.0.0.1:{port}/healthz\"\nexpect_body = \"ok\"\n\
         [grants]\nconnect = [\"127.0.0.1:{port}\"]\n",
        port = nginx.port
    )
}

/// `medic status --json` of the setup's daemon; `Null` until it answers.
fn status(setup: &Setup) -> Value {
    let out = common::medic()
        .args(["status", "--json", "--socket"])
        .arg(setup.dir.path().join("medic.sock"))
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// The status entry of `app`.
fn app_status(status: &Value, app: &str) -> Value {
    status["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["app"] == app).cloned())
        .unwrap_or(Value::Null)
}

/// The compiled artifacts in the daemon's kit cache.
fn artifacts(setup: &Setup) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(setup.state_dir().join("cache"))
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    found.retain(|p| p.extension().is_some_and(|e| e == "cwasm"));
    found.sort();
    found
}

/// The Python example kit (18 MB, seconds to compile) does not hold up an
/// app whose kit is small: that app is checked and healthy while the
/// Python kit still compiles, the waiting app's status and `medic check`
/// say why it is not judged yet, and it is watched once its kit is ready.
#[test]
fn a_slow_kit_holds_up_only_its_own_apps() {
    let nginx = Nginx::start();
    let python = common::examples::kit("python");
    let setup = Setup::new("backend = \"dry-run\"").with_kit("http");
    std::fs::copy(&python, setup.dir.path().join("kits/python.wasm")).unwrap();
    let setup = setup
        .app("quick", &http_app("http", &nginx))
        .app("slow", &http_app("python", &nginx));
    let mut daemon = setup.daemon();
    let mut seen = Value::Null;
    assert!(
        common::wait_for(Duration::from_secs(30), || {
            seen = status(&setup);
            app_status(&seen, "quick")["state"] == "healthy"
        }),
        "quick never healthy: {seen}\n{}",
        daemon.log_text()
    );
    let slow = app_status(&seen, "slow");
    assert_eq!(slow["state"], "starting", "{seen}");
    assert_eq!(slow["reason"], "its kit is still loading", "{seen}");
    let (code, said) = setup.check("slow");
    assert_eq!(code, 3, "a check that cannot run cannot judge: {said}");
    assert!(said.contains("its kit is still loading"), "{said}");

    assert!(
        common::wait_for(Duration::from_secs(120), || {
            seen = status(&setup);
            app_status(&seen, "slow")["state"] == "healthy"
        }),
        "slow never healthy: {seen}\n{}",
        daemon.log_text()
    );
    daemon.stop();
}

/// A kit that does not load leaves its app unwatched, and the app's status
/// says so and why, instead of the app vanishing from `medic status`.
#[test]
fn a_kit_that_fails_to_load_says_so_in_the_apps_status() {
    let nginx = Nginx::start();
    let setup = Setup::new("backend = \"dry-run\"").with_kit("http");
    std::fs::write(setup.dir.path().join("kits/broken.wasm"), b"not wasm").unwrap();
    let setup = setup
        .app("fine", &http_app("http", &nginx))
        .app("orphan", &http_app("broken", &nginx));
    let mut daemon = setup.daemon();
    let mut seen = Value::Null;
    assert!(
        common::wait_for(Duration::from_secs(30), || {
            seen = status(&setup);
            app_status(&seen, "fine")["state"] == "healthy"
                && app_status(&seen, "orphan")["state"] == "unknown"
        }),
        "{seen}\n{}",
        daemon.log_text()
    );
    let reason = app_status(&seen, "orphan")["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.starts_with("not watched: its kit did not load: "),
        "{reason}"
    );
    assert!(reason.contains("not a WebAssembly"), "{reason}");
    daemon.stop();
}

/// Once the kits have loaded, the cache holds only their artifacts: a
/// stale one (another kit's, or another engine's) is removed, and so is a
/// kit's old artifact after the kit is rebuilt and medic reloads; files
/// that are not artifacts stay.
#[test]
fn compiled_kits_nobody_uses_leave_the_cache() {
    let nginx = Nginx::start();
    let setup = Setup::new("backend = \"dry-run\"")
        .with_kit("http")
        .app("web", &http_app("http", &nginx));
    let cache = setup.state_dir().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let stale = cache.join(format!("{}-{}.cwasm", "ab".repeat(32), "0".repeat(16)));
    std::fs::write(&stale, b"an artifact of a kit long gone").unwrap();
    let note = cache.join("README");
    std::fs::write(&note, b"not an artifact").unwrap();

    let mut daemon = setup.daemon();
    assert!(
        common::wait_for(Duration::from_secs(30), || !stale.exists()
            && artifacts(&setup).len() == 1),
        "stale artifact kept: {:?}\n{}",
        artifacts(&setup),
        daemon.log_text()
    );
    assert!(note.exists(), "a file that is not an artifact stays");
    let first = artifacts(&setup);

    let kit = setup.dir.path().join("kits/http.wasm");
    std::fs::write(&kit, common::guests::rebuilt(&kit, "v2")).unwrap();
    let out = common::medic()
        .args(["reload", "--socket"])
        .arg(setup.dir.path().join("medic.sock"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        common::wait_for(Duration::from_secs(30), || {
            let now = artifacts(&setup);
            now.len() == 1 && now != first
        }),
        "old artifact kept after the rebuild: {:?}\n{}",
        artifacts(&setup),
        daemon.log_text()
    );
    daemon.stop();
}

/// `medic kit test` says when a kit is not in the cache and must be
/// compiled first, and how long that took; the next run reads the cache
/// and says nothing of it.
#[test]
fn kit_test_says_when_a_kit_is_compiled_first() {
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("web.toml");
    std::fs::write(&app, http_app("http", &nginx)).unwrap();
    let run = || {
        let out = common::kit_test(
            &common::guests::kit("http"),
            &app,
            Some(&dir.path().join("cache")),
            &[],
        );
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = run();
    assert!(
        first.contains("first load, cached for the next one") && first.contains("compiled in "),
        "{first}"
    );
    let second = run();
    assert!(!second.contains("compiling"), "{second}");
}
