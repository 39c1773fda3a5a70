//! HTTP checks on real networks: the `http` kit against real nginx over
//! TLS, with certificates from a CA the test makes, as a company's
//! internal CA would sign them, trusted per app through `[tls]`.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use common::nginx::Nginx;
use common::tls::Ca;

/// `medic kit test` of the bundled http kit checking `https://HOST:PORT/healthz`
/// of `nginx` with `tls` as the app's `[tls]` body: its exit code and
/// everything it printed.
fn kit_test(nginx: &Nginx, host: &str, tls: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("web.toml");
    std::fs::write(
        &app,
        format!(
            "kit = \"http\"\n[settings]\nurl = \"https://{host}:{port}/healthz\"\nexpect_body = \"ok\"\n\
             [grants]\nconnect = [\"{host}:{port}\"]\n[tls]\n{tls}\n",
            port = nginx.port
        ),
    )
    .unwrap();
    let output = common::kit_test(
        &common::guests::kit("http"),
        &app,
        Some(&dir.path().join("cache")),
        &[],
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

/// `ca_files = [CA]` as a `[tls]` line.
fn trusting(ca: &Ca) -> String {
    format!("ca_files = [\"{}\"]\n", ca.file().display())
}

/// The internal CA's server cannot be judged (the reason in words: no
/// restart could cure it) until the app trusts that CA (`ca_files`), then
/// healthy; `insecure` also passes.
#[test]
fn an_internal_ca_is_trusted_through_the_apps_ca_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "internal-ca");
    let (cert, key) = ca.server("web", &["127.0.0.1"]);
    let nginx = Nginx::start_tls(&cert, &key, "");

    let (code, text) = kit_test(&nginx, "127.0.0.1", "");
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("certificate signed by an unknown issuer"),
        "{text}"
    );
    assert!(!text.contains("ErrorCode"), "{text}");

    let (code, text) = kit_test(&nginx, "127.0.0.1", &trusting(&ca));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("check    healthy"), "{text}");
    // check_http does not verify certificates: OK with or without the CA.
    let (code, said) = check_http(nginx.port, &["--ssl", "-u", "/healthz", "-s", "ok"]);
    assert_eq!(code, Some(0), "{said}");

    let (code, text) = kit_test(&nginx, "127.0.0.1", "insecure = true");
    assert_eq!(code, Some(0), "{text}");
}

/// A certificate for `web.example` on a server checked by its IP address:
/// a hostname mismatch, until `server_name` presents and verifies the name
/// the certificate carries.
#[test]
fn server_name_checks_an_ip_address_under_the_certificates_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "internal-ca");
    let (cert, key) = ca.server("web", &["web.example"]);
    let nginx = Nginx::start_tls(&cert, &key, "");

    let (code, text) = kit_test(&nginx, "127.0.0.1", &trusting(&ca));
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("hostname mismatch"), "{text}");

    let tls = trusting(&ca) + "server_name = \"web.example\"\n";
    let (code, text) = kit_test(&nginx, "127.0.0.1", &tls);
    assert_eq!(code, Some(0), "{text}");
    let sni = [
        "--ssl",
        "--sni",
        "-H",
        "web.example",
        "-u",
        "/healthz",
        "-s",
        "ok",
    ];
    let (code, said) = check_http(nginx.port, &sni);
    assert_eq!(code, Some(0), "{said}");
}

/// A server that wants a client certificate lets the check in with the
/// app's `client_cert` and `client_key`, and not without.
#[test]
fn a_client_certificate_is_presented_when_the_app_names_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "internal-ca");
    let (cert, key) = ca.server("web", &["127.0.0.1"]);
    let verify = format!(
        "ssl_verify_client on; ssl_client_certificate {};",
        ca.file().display()
    );
    let nginx = Nginx::start_tls(&cert, &key, &verify);

    let (code, text) = kit_test(&nginx, "127.0.0.1", &trusting(&ca));
    // nginx answers `400 No required SSL certificate was sent`, which the
    // kit cannot tell from the app failing.
    assert_eq!(code, Some(2), "without a client certificate: {text}");
    assert!(text.contains("status 400"), "{text}");
    let (code, said) = check_http(nginx.port, &["--ssl", "-u", "/healthz", "-e", "200"]);
    assert_eq!(
        code,
        Some(2),
        "check_http without a client certificate: {said}"
    );

    let (client_cert, client_key) = ca.client_files("medic");
    let tls = trusting(&ca)
        + &format!(
            "client_cert = \"{}\"\nclient_key = \"{}\"\n",
            client_cert.display(),
            client_key.display()
        );
    let (code, text) = kit_test(&nginx, "127.0.0.1", &tls);
    assert_eq!(code, Some(0), "{text}");
    let (cert_arg, key_arg) = (
        client_cert.display().to_string(),
        client_key.display().to_string(),
    );
    let with_client = [
        "--ssl", "-J", &cert_arg, "-K", &key_arg, "-u", "/healthz", "-e", "200",
    ];
    let (code, said) = check_http(nginx.port, &with_client);
    assert_eq!(
        code,
        Some(0),
        "check_http with the client certificate: {said}"
    );

    // A key others may read is refused as credentials are: the check
    // cannot judge (a kit fault, exit 3), it does not fail the app.
    std::fs::set_permissions(
        &client_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let (code, text) = kit_test(&nginx, "127.0.0.1", &tls);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("[tls] of app web"), "{text}");
    assert!(text.contains(&client_key.display().to_string()), "{text}");
}

/// A typo in `[tls]` is a config error that names the file, line and
/// field; nothing runs.
#[test]
fn a_bad_tls_table_is_a_config_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "internal-ca");
    let setup = common::Setup::new("backend = \"dry-run\"")
        .with_kit("http")
        .app(
            "web",
            &format!(
                "kit = \"http\"\n[settings]\nurl = \"https://127.0.0.1:1/\"\n[grants]\nconnect = [\"127.0.0.1:1\"]\n\
                 [tls]\nca_files = [\"{}\", \"/nonexistent/ca.pem\"]\nclient_cert = \"{}\"\nserver_name = \"not a name\"\n",
                ca.file().display(),
                ca.file().display()
            ),
        );
    let out = setup.run(&["config", "validate"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(said.contains("web.toml:7:"), "{said}");
    assert!(said.contains("tls.ca_files[1]"), "{said}");
    assert!(said.contains("/nonexistent/ca.pem"), "{said}");
    assert!(
        said.contains("tls.client_key: client_cert needs its client_key"),
        "{said}"
    );
    assert!(said.contains("tls.server_name"), "{said}");
}

/// The monitoring-plugins' `check_http`, the tool admins move from.
const CHECK_HTTP: &str = "/usr/lib/nagios/plugins/check_http";

/// `check_http` of 127.0.0.1:`port` with `args`: its exit code (0 OK,
/// 1 WARNING, 2 CRITICAL) and what it printed.
fn check_http(port: u16, args: &[&str]) -> (Option<i32>, String) {
    let output = std::process::Command::new(CHECK_HTTP)
        .args(["-I", "127.0.0.1", "-p", &port.to_string(), "-t", "4"])
        .args(args)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code(), said)
}

/// The server block of the nginx the side-by-side checks ask: a slow page,
/// an endpoint that takes only POST, one behind basic auth, a virtual
/// server known by its name only, an API answer with its own header, and a
/// redirect.
const ENDPOINTS: &str = "
  location = /slow { limit_rate 1k; }
  location = /submit { if ($request_method != POST) { return 405; } return 200 \"accepted\\n\"; }
  location /private/ { auth_basic \"medic\"; auth_basic_user_file htpasswd; }
  location = /vhost { if ($host != \"web.example\") { return 404; } return 200 \"vhost\\n\"; }
  location = /api { add_header X-Api-Version 2 always; return 200 '{\"status\":\"up\",\"build\":12}'; }
  location = /moved { return 302 /healthz; }
";

/// An nginx serving [`ENDPOINTS`] on 127.0.0.1.
fn endpoints() -> Nginx {
    let slow = vec![b'x'; 2500];
    Nginx::start_serving(
        ENDPOINTS,
        &[
            ("slow", &slow),
            ("private/healthz", b"private ok\n"),
            ("../htpasswd", b"admin:{PLAIN}s3cret\n"),
        ],
    )
}

/// The verdicts both tools give: 0 healthy/OK, 1 degraded/WARNING,
/// 2 failed/CRITICAL, 3 unknown/UNKNOWN.
struct SideBySide(common::KitTrials);

impl SideBySide {
    fn new() -> Self {
        Self(common::KitTrials::new("http", "web"))
    }

    /// `medic kit test` of the http kit for an app whose file is `app`
    /// (after `kit = "http"`), the kit compiled once per test.
    fn kit(&self, app: &str) -> (Option<i32>, String) {
        self.0.run(app)
    }

    /// A secret file (0600) holding `value`.
    fn secret(&self, name: &str, value: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let file = self.0.dir.path().join(name);
        std::fs::write(&file, format!("{value}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        file
    }

    /// Asserts that the kit with `settings` (and `more` of the app file)
    /// and `check_http` with `args` both give `verdict`.
    fn same(&self, port: u16, settings: &str, more: &str, args: &[&str], verdict: i32) {
        let app =
            format!("[settings]\n{settings}\n[grants]\nconnect = [\"127.0.0.1:{port}\"]\n{more}");
        let (code, text) = self.kit(&app);
        assert_eq!(code, Some(verdict), "kit with {settings}: {text}");
        let (code, said) = check_http(port, args);
        assert_eq!(code, Some(verdict), "check_http {args:?}: {said}");
    }
}

/// Each check of the table in plugins/http/README.md, through the kit and
/// through `check_http` against the same real nginx: the same verdict.
#[test]
fn the_kit_judges_as_check_http_does() {
    let nginx = endpoints();
    let port = nginx.port;
    let url = |path: &str| format!("url = \"http://127.0.0.1:{port}{path}\"");
    let both = SideBySide::new();

    // Status, one or a set.
    both.same(port, &url("/healthz"), "", &["-u", "/healthz"], 0);
    both.same(
        port,
        &url("/nothing"),
        "",
        &["-u", "/nothing", "-e", "200"],
        2,
    );
    both.same(
        port,
        &(url("/nothing") + "\nexpect_status = \"200,404\""),
        "",
        &["-u", "/nothing", "-e", "200,404"],
        0,
    );
    // Body: a substring and a regular expression.
    both.same(
        port,
        &(url("/api") + "\nexpect_body = \"\\\"status\\\":\\\"up\\\"\""),
        "",
        &["-u", "/api", "-s", "\"status\":\"up\""],
        0,
    );
    both.same(
        port,
        &(url("/api") + "\nexpect_regex = \"build\\\":1[0-9]\""),
        "",
        &["-u", "/api", "-r", "build\":1[0-9]"],
        0,
    );
    both.same(
        port,
        &(url("/api") + "\nexpect_regex = \"build\\\":9[0-9]\""),
        "",
        &["-u", "/api", "-r", "build\":9[0-9]"],
        2,
    );
    // A response header.
    both.same(
        port,
        &(url("/api") + "\nexpect_header = \"X-Api-Version: 2\""),
        "",
        &["-u", "/api", "-d", "X-Api-Version: 2"],
        0,
    );
    // Method and body: the endpoint takes only POST.
    both.same(
        port,
        &url("/submit"),
        "",
        &["-u", "/submit", "-e", "200"],
        2,
    );
    both.same(
        port,
        &(url("/submit") + "\nmethod = \"POST\"\nbody = \"probe=1\"\nexpect_body = \"accepted\""),
        "",
        &[
            "-u", "/submit", "-j", "POST", "-P", "probe=1", "-s", "accepted",
        ],
        0,
    );
    // A virtual server known by its name, behind an IP address.
    both.same(port, &url("/vhost"), "", &["-u", "/vhost", "-e", "200"], 2);
    both.same(
        port,
        &(url("/vhost") + "\nheader_Host = \"web.example\"\nexpect_body = \"vhost\""),
        "",
        &["-u", "/vhost", "-H", "web.example", "-s", "vhost"],
        0,
    );
    // Basic auth, the secret read by medic from a 0600 file.
    let login = both.secret("login", "admin:s3cret");
    let secrets = format!("[secrets]\nlogin = \"{}\"\n", login.display());
    both.same(
        port,
        &(url("/private/healthz") + "\nbasic_auth = \"login\"\nexpect_body = \"private ok\""),
        &secrets,
        &[
            "-u",
            "/private/healthz",
            "-a",
            "admin:s3cret",
            "-s",
            "private ok",
        ],
        0,
    );
    // A slow answer: degraded above warn_ms, failed above fail_ms.
    both.same(
        port,
        &(url("/slow") + "\nwarn_ms = 300\nfail_ms = 4000"),
        "",
        &["-u", "/slow", "-w", "0.3", "-c", "4"],
        1,
    );
    both.same(
        port,
        &(url("/slow") + "\nfail_ms = 300"),
        "",
        &["-u", "/slow", "-c", "0.3"],
        2,
    );
}

/// Where the kit parts from `check_http` on purpose: whatever a restart
/// cannot cure is `unknown` (refused credentials), and a redirect is
/// followed only when asked, with each hop's `host:port` granted.
#[test]
fn refused_credentials_are_unknown_and_redirects_are_followed_only_when_asked() {
    let nginx = endpoints();
    let port = nginx.port;
    let both = SideBySide::new();
    let grants = format!("[grants]\nconnect = [\"127.0.0.1:{port}\"]\n");

    let wrong = both.secret("wrong", "admin:typo");
    let app = format!(
        "[settings]\nurl = \"http://127.0.0.1:{port}/private/healthz\"\nbasic_auth = \"login\"\n{grants}[secrets]\nlogin = \"{}\"\n",
        wrong.display()
    );
    let (code, text) = both.kit(&app);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("refused the credentials"), "{text}");
    assert!(!text.contains("typo"), "the secret is never shown: {text}");

    // A name the app's [secrets] lacks is the kit asking for what was not
    // granted: a kit fault, also exit 3, naming what is missing.
    let app = format!(
        "[settings]\nurl = \"http://127.0.0.1:{port}/private/healthz\"\nbearer_token = \"api\"\n{grants}"
    );
    let (code, text) = both.kit(&app);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("no secret \"api\""), "{text}");

    let moved = format!("[settings]\nurl = \"http://127.0.0.1:{port}/moved\"\n");
    let (code, text) = both.kit(&format!("{moved}{grants}"));
    assert_eq!(code, Some(2), "not followed unless asked: {text}");
    assert!(text.contains("status 302"), "{text}");
    let (code, text) = both.kit(&format!(
        "{moved}follow_redirects = 1\nexpect_body = \"ok\"\n{grants}"
    ));
    assert_eq!(code, Some(0), "{text}");
}

/// A redirect to a `host:port` the app's grants do not list is refused by
/// the host, whatever the kit asks: the hop never leaves.
#[test]
fn a_redirect_to_an_ungranted_address_is_denied() {
    let elsewhere = common::tls::free_port_on("127.0.0.1");
    let extra = format!("location = /away {{ return 302 http://127.0.0.1:{elsewhere}/; }}");
    let nginx = Nginx::start_serving(&extra, &[]);
    let both = SideBySide::new();
    let app = format!(
        "[settings]\nurl = \"http://127.0.0.1:{port}/away\"\nfollow_redirects = 3\n[grants]\nconnect = [\"127.0.0.1:{port}\"]\n",
        port = nginx.port
    );
    let (code, text) = both.kit(&app);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{elsewhere}")), "{text}");
    assert!(text.contains("denied"), "{text}");
}

/// A certificate that expires in 5 days (and some hours) is degraded with `cert_days_warn =
/// 10` (its days left and issuer recorded), healthy with 3; an expired one
/// is failed, saying when it expired. `check_http -C` agrees.
#[test]
fn certificate_expiry_is_warned_of_before_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "internal-ca");
    let both = SideBySide::new();
    let tls = trusting(&ca);
    let judge = |nginx: &Nginx, days: &str, args: &[&str], verdict: i32| {
        let settings = format!(
            "url = \"https://127.0.0.1:{}/healthz\"\ncert_days_warn = {days}",
            nginx.port
        );
        let mut all = vec!["--ssl", "-C"];
        all.extend_from_slice(args);
        both.same(
            nginx.port,
            &settings,
            &format!("[tls]\n{tls}"),
            &all,
            verdict,
        );
        both.kit(&format!(
            "[settings]\n{settings}\n[grants]\nconnect = [\"127.0.0.1:{}\"]\n[tls]\n{tls}",
            nginx.port
        ))
        .1
    };

    // Midnight six days on: five whole days and some hours left.
    let (cert, key) = ca.server_valid("soon", &["127.0.0.1"], -30, 6);
    let soon = Nginx::start_tls(&cert, &key, "");
    let said = judge(&soon, "10", &["10"], 1);
    assert!(said.contains("certificate expires in 5 days"), "{said}");
    assert!(said.contains("CN=internal-ca"), "{said}");
    assert!(
        said.contains("cert_days_left = 5"),
        "the journal's record: {said}"
    );
    judge(&soon, "3", &["3"], 0);

    let (cert, key) = ca.server_valid("expired", &["127.0.0.1"], -30, -2);
    let expired = Nginx::start_tls(&cert, &key, "");
    let said = judge(&expired, "10", &["10"], 2);
    assert!(said.contains("certificate expired on "), "{said}");
}

/// A `[secrets]` entry with a bad name or a missing file is a config error
/// naming the file, line and field; nothing runs.
#[test]
fn a_bad_secret_is_a_config_error_naming_it() {
    let setup = common::Setup::new("backend = \"dry-run\"")
        .with_kit("http")
        .app(
            "web",
            "kit = \"http\"\n[settings]\nurl = \"http://127.0.0.1:1/\"\nbasic_auth = \"login\"\n\
             [grants]\nconnect = [\"127.0.0.1:1\"]\n\
             [secrets]\nlogin = \"/nonexistent/web-login\"\n\"bad name\" = \"/etc/hostname\"\n",
        );
    let out = setup.run(&["config", "validate"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(said.contains("web.toml:8:"), "{said}");
    assert!(said.contains("secrets.login"), "{said}");
    assert!(said.contains("/nonexistent/web-login"), "{said}");
    assert!(said.contains("web.toml:9:"), "{said}");
    assert!(said.contains("must match [A-Za-z0-9_.-]"), "{said}");
}
