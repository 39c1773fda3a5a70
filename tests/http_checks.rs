//! HTTP checks on real networks: the `http` kit against real nginx over
//! TLS, with certificates from a CA the test makes, as a company's
//! internal CA would sign them.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use common::nginx::Nginx;
use common::tls::Ca;

/// `medic kit test` of the bundled http kit checking `url`, granted
/// `127.0.0.1:port`: its exit code and everything it printed.
fn kit_test(url: &str, port: u16) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("web.toml");
    std::fs::write(
        &app,
        format!(
            "kit = \"http\"\n[settings]\nurl = \"{url}\"\nexpect_body = \"ok\"\n\
             [grants]\nconnect = [\"127.0.0.1:{port}\"]\n"
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

/// A server whose certificate no CA medic trusts signed is failed with
/// that reason in words, not a bare `ErrorCode::TlsProtocolError`.
#[test]
fn a_certificate_from_an_unknown_ca_is_failed_with_the_reason_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "internal-ca");
    let (cert, key) = ca.server("web", &["127.0.0.1"]);
    let nginx = Nginx::start_tls(&cert, &key);
    let (code, text) = kit_test(
        &format!("https://127.0.0.1:{}/healthz", nginx.port),
        nginx.port,
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("certificate signed by an unknown issuer"),
        "{text}"
    );
    assert!(!text.contains("ErrorCode"), "{text}");
}
