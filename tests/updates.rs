//! `medic update APP --version V` against a real nginx whose releases are
//! files: the update installs one, the app's own check proves it, a status
//! shows the version; a release that cannot be installed fails at its step
//! with the command's last line, and the rollback puts the previous version
//! back, healthy.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::time::Duration;

use common::Setup;
use common::nginx::Nginx;
use medic::journal::Kind;
use serde_json::Value;

/// An nginx app whose `update` and `rollback` copy `releases/VERSION.html`
/// over the served `index.html`, with releases v1 and v2 on disk.
pub fn versioned_app(nginx: &Nginx, releases: &std::path::Path) -> String {
    release(releases, &["v1", "v2"]);
    std::fs::write(nginx.prefix.join("html/index.html"), "v1").unwrap();
    let copy = common::argv_toml(&[
        "/usr/bin/cp".to_owned(),
        format!("{}/{{version}}.html", releases.display()),
        nginx.prefix.join("html/index.html").display().to_string(),
    ]);
    // Top-level keys go before the app file's tables.
    format!(
        "update = {copy}\nrollback = {copy}\nhealthy_checks = 2\n{}",
        nginx.http_app("100ms")
    )
}

/// Puts `versions` into `releases`, each page saying its version.
pub fn release(releases: &std::path::Path, versions: &[&str]) {
    for version in versions {
        std::fs::write(releases.join(format!("{version}.html")), version).unwrap();
    }
}

/// What `GET /` of `nginx` answers.
pub fn serves(nginx: &Nginx) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", nginx.port)).unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn an_update_is_proved_by_the_app_s_check_and_a_failed_one_is_rolled_back() {
    let nginx = Nginx::start();
    let releases = tempfile::tempdir().unwrap();
    let setup = Setup::new("backend = \"dry-run\"\nmin_uptime = \"0s\"")
        .with_kit("http")
        .app("web", &versioned_app(&nginx, releases.path()));
    let mut daemon = setup.daemon();
    setup.wait_kit_loaded();
    let socket = setup.dir.path().join("medic.sock");
    let medic = |args: &[&str]| {
        common::medic()
            .args(args)
            .arg("--socket")
            .arg(&socket)
            .output()
            .unwrap()
    };
    assert!(common::wait_for(Duration::from_secs(30), || {
        medic(&["check", "web"]).status.code() == Some(0)
    }));
    assert_eq!(serves(&nginx), "v1");

    let out = medic(&[
        "update",
        "web",
        "--version",
        "v2",
        "--health-timeout",
        "20s",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}\n{}", daemon.log_text());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "web updated to v2 (2 checks passed)\n"
    );
    assert_eq!(serves(&nginx), "v2");
    let status: Value = serde_json::from_slice(&medic(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["apps"][0]["version"], "v2", "{status}");
    let table = String::from_utf8_lossy(&medic(&["status"]).stdout).into_owned();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web ") && l.contains(" v2 ")),
        "{table}"
    );

    // v3 was never released: the update step fails, v2 comes back.
    let out = medic(&[
        "update",
        "web",
        "--version",
        "v3",
        "--health-timeout",
        "20s",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("failed at update"), "{error}");
    assert!(
        error.contains("rolled back to v2, which is healthy"),
        "{error}"
    );
    assert_eq!(serves(&nginx), "v2");
    let out = medic(&["update", "web", "--version", "v2; rm -rf /"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a version"));

    let events = setup.events();
    let failed = events
        .iter()
        .find(|e| e.kind == Kind::AppUpdateFailed)
        .unwrap();
    assert_eq!(failed.detail["step"], "update", "{failed:?}");
    assert!(
        failed.detail["last_line"]
            .as_str()
            .unwrap()
            .contains("v3.html"),
        "{failed:?}"
    );
    let rolled: Vec<_> = events
        .iter()
        .filter(|e| e.kind == Kind::AppRolledBack)
        .map(|e| (e.detail["version"].clone(), e.detail["ok"].clone()))
        .collect();
    assert_eq!(rolled, [("v2".into(), true.into())]);
    let kinds: Vec<Kind> = events
        .iter()
        .map(|e| e.kind)
        .filter(|k| {
            matches!(
                k,
                Kind::AppUpdateStarted | Kind::AppUpdated | Kind::AppUpdateFailed | Kind::AppFailed
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            Kind::AppUpdateStarted,
            Kind::AppUpdated,
            Kind::AppUpdateStarted,
            Kind::AppUpdateFailed
        ],
        "an update is never taken for a failure of the app"
    );
    daemon.stop();
}
