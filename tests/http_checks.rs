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

/// The internal CA's server is failed with the reason in words until the
/// app trusts that CA (`ca_files`), then healthy; `insecure` also passes.
#[test]
fn an_internal_ca_is_trusted_through_the_apps_ca_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "internal-ca");
    let (cert, key) = ca.server("web", &["127.0.0.1"]);
    let nginx = Nginx::start_tls(&cert, &key, "");

    let (code, text) = kit_test(&nginx, "127.0.0.1", "");
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("certificate signed by an unknown issuer"),
        "{text}"
    );
    assert!(!text.contains("ErrorCode"), "{text}");

    let (code, text) = kit_test(&nginx, "127.0.0.1", &trusting(&ca));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("check    healthy"), "{text}");

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
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("hostname mismatch"), "{text}");

    let tls = trusting(&ca) + "server_name = \"web.example\"\n";
    let (code, text) = kit_test(&nginx, "127.0.0.1", &tls);
    assert_eq!(code, Some(0), "{text}");
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
    assert_eq!(code, Some(2), "without a client certificate: {text}");

    let (client_cert, client_key) = ca.client_files("medic");
    let tls = trusting(&ca)
        + &format!(
            "client_cert = \"{}\"\nclient_key = \"{}\"\n",
            client_cert.display(),
            client_key.display()
        );
    let (code, text) = kit_test(&nginx, "127.0.0.1", &tls);
    assert_eq!(code, Some(0), "{text}");

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
