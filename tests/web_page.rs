//! The status page on the `[daemon] metrics` listener, read by a real
//! browser (headless Chromium) from a real daemon: every app with its
//! state, the recent events, hostile text shown as text.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use crate::common;
use common::Setup;
use common::chromium;
use common::nginx::Nginx;
use medic::journal::Kind;

/// Text a kit may choose as its reason, which must never become markup.
const HOSTILE: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";

/// [`HOSTILE`] as the serialized DOM shows a text node holding it.
const HOSTILE_AS_TEXT: &str =
    "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;";

/// A setup whose daemon serves metrics (and the page) on a free port.
fn serving() -> (Setup, u16) {
    let port = common::free_port();
    let setup = Setup::new("backend = \"dry-run\"")
        .with_daemon(&format!("metrics = \"127.0.0.1:{port}\"\n"));
    (setup, port)
}

/// An app whose check runs every 200 ms, fails at its first failure, is
/// never recovered and so is held in `manual`; `body` adds its kit,
/// settings and grants.
fn held_app(kit: &str, body: &str) -> String {
    format!(
        "kit = \"{kit}\"\ninterval = \"200ms\"\ntimeout = \"5s\"\nfailures_before_action = 1\n\
         [recovery]\nlocal_attempts = 0\nthen = \"none\"\n{body}"
    )
}

/// `nginx` watched through the http kit (healthy while it serves).
fn nginx_app(nginx: &Nginx) -> String {
    format!(
        "kit = \"http\"\ninterval = \"200ms\"\ntimeout = \"1s\"\nstart = {start}\npidfile = \"{pidfile}\"\n\
         [settings]\nurl = \"http://127.0.0.1:{port}/healthz\"\nexpect_body = \"ok\"\n\
         [grants]\nconnect = [\"127.0.0.1:{port}\"]\n",
        start = nginx.start_toml(),
        pidfile = nginx.pidfile().display(),
        port = nginx.port,
    )
}

/// An HTTP answer: status line, headers (lower-case names), body.
struct Answer {
    status: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// `GET path` on 127.0.0.1:`port`, or `None` while nothing listens.
fn get(port: u16, path: &str) -> Option<Answer> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: medic\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Some(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// The HTML of the apps table's row for `app` (its first cell is the
/// name), or "" when the page has none.
fn row_of<'a>(html: &'a str, app: &str) -> &'a str {
    let first_cell = format!("<td>{app}</td>");
    html.split("<tr>")
        .find(|row| row.starts_with(&first_cell))
        .map_or("", |row| row.split("</tr>").next().unwrap_or(row))
}

/// Waits until the page (read without a browser) has `app` in `state`.
fn wait_state(port: u16, app: &str, state: &str, daemon: &common::Daemon) {
    let badge = format!(">{state}</span>");
    let mut last = String::new();
    let shown = common::wait_for(Duration::from_secs(60), || {
        last = get(port, "/").map(|a| a.body).unwrap_or_default();
        row_of(&last, app).contains(&badge)
    });
    assert!(shown, "{app} never {state}: {last}\n{}", daemon.log_text());
}

#[test]
fn the_daemon_page_shows_every_app_its_state_and_recent_events() {
    let nginx = Nginx::start();
    let (setup, port) = serving();
    let setup = setup
        .with_kit("http")
        .app("web", &nginx_app(&nginx))
        .with_kit("misbehave")
        .app(
            "broken",
            &held_app("misbehave", "[settings]\nmode = \"fail\"\n"),
        );
    let daemon = setup.daemon();
    assert!(
        setup.wait_event("broken", Kind::Manual, Duration::from_secs(60)),
        "{}",
        daemon.log_text()
    );
    wait_state(port, "web", "healthy", &daemon);
    wait_state(port, "broken", "manual", &daemon);

    // Served as a locked-down HTML page; /metrics is untouched.
    let page = get(port, "/").unwrap();
    assert!(page.status.starts_with("HTTP/1.1 200"), "{}", page.status);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    let policy = page.header("content-security-policy");
    assert!(
        policy.starts_with("default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
        "{policy}"
    );
    assert_eq!(page.header("cache-control"), "no-store");
    let status = |path: &str| get(port, path).unwrap().status;
    assert!(status("/index.html").starts_with("HTTP/1.1 200"));
    assert!(status("/nothing").starts_with("HTTP/1.1 404"));
    let metrics = get(port, "/metrics").unwrap();
    assert!(
        metrics
            .header("content-type")
            .starts_with("application/openmetrics-text"),
        "{:?}",
        metrics.headers
    );
    assert!(
        metrics
            .body
            .contains("medic_app_state{app=\"broken\",state=\"manual\"} 1")
    );

    // What the browser made of it.
    let url = format!("http://127.0.0.1:{port}/");
    let dom = chromium::dump_dom(&url);
    let web = row_of(&dom, "web");
    assert!(
        web.contains("<span class=\"badge good\">healthy</span>"),
        "{dom}"
    );
    let pid = nginx.master_pid().unwrap();
    assert!(web.contains(&format!("<code>{pid}</code>")), "{web}");
    let broken = row_of(&dom, "broken");
    assert!(
        broken.contains("<span class=\"badge bad\">manual</span>"),
        "{dom}"
    );
    assert!(broken.contains("told to fail"), "{broken}");
    for kind in ["app_failed", "manual", "daemon_started"] {
        assert!(
            dom.contains(&format!("<code>{kind}</code>")),
            "no {kind} in {dom}"
        );
    }
    assert!(dom.contains("<meta http-equiv=\"refresh\""), "{dom}");

    let png = chromium::artifacts("web_page").join("daemon.png");
    let _ = std::fs::remove_file(&png);
    chromium::screenshot(&url, &png, (1280, 800));
    println!("screenshot of the daemon page: {}", png.display());
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        bytes.len() > 20_000,
        "a near-empty picture: {} bytes",
        bytes.len()
    );
}

#[test]
fn a_hostile_reason_shows_as_text() {
    let (setup, port) = serving();
    let setup = setup.with_kit("scripts");
    let check = setup.dir.path().join("quick-check");
    std::fs::write(&check, format!("#!/bin/sh\necho '{HOSTILE}'\nexit 1\n")).unwrap();
    std::fs::set_permissions(&check, std::fs::Permissions::from_mode(0o755)).unwrap();
    let body = format!(
        "[settings]\nquick_check = \"{check}\"\n[grants]\nexec = [\"{check}\"]\nenv = [\"MEDIC_APP\"]\n",
        check = check.display()
    );
    let setup = setup.app("hostile", &held_app("scripts", &body));
    let daemon = setup.daemon();
    assert!(
        setup.wait_event("hostile", Kind::Manual, Duration::from_secs(60)),
        "{}",
        daemon.log_text()
    );
    assert!(
        setup.reasons("hostile", Kind::AppFailed)[0].contains(HOSTILE),
        "the kit said it as it is"
    );
    wait_state(port, "hostile", "manual", &daemon);

    let dom = chromium::dump_dom(&format!("http://127.0.0.1:{port}/"));
    let lower = dom.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "a script element: {dom}");
    assert!(!lower.contains("<img"), "an img element: {dom}");
    assert!(
        row_of(&dom, "hostile").contains(HOSTILE_AS_TEXT),
        "the last check's reason, as text: {dom}"
    );
    assert!(
        dom.matches(HOSTILE_AS_TEXT).count() >= 2,
        "also in the app_failed event: {dom}"
    );
}
