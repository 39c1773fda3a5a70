//! Kits in every supported language: each example kit is written by
//! `medic kit new --lang L`, built with L's own toolchain by the
//! template's `build.sh`, and run by `medic kit test` against a real nginx
//! (the same job in every language: a GET with a body match, and a
//! recovery that asks for a restart).
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use common::nginx::Nginx;

/// Runs `medic kit test` of `kit` with an app file whose settings are
/// `url` and `expect_body`; returns the exit code and the output.
fn kit_test(kit: &std::path::Path, nginx: &Nginx, expect_body: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("web.toml");
    std::fs::write(
        &app,
        format!(
            "kit = \"example\"\n[settings]\nurl = \"http://127.0.0.1:{port}/healthz\"\nexpect_body = \"{expect_body}\"\n\
             [grants]\nconnect = [\"127.0.0.1:{port}\"]\n",
            port = nginx.port
        ),
    )
    .unwrap();
    let output = common::kit_test(kit, &app, None, &["--recover"]);
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

/// The example kit of `lang` describes itself, passes against nginx,
/// fails with the reason when the body does not match, and asks for a
/// restart when recovering.
fn example_works(lang: &str) {
    let kit = common::examples::kit(lang);
    let nginx = Nginx::start();
    let (code, text) = kit_test(&kit, &nginx, "ok");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("describe {lang}-http 0.1.0: ")),
        "{text}"
    );
    assert!(text.contains("check    healthy"), "{text}");
    assert!(text.contains("recover  restart-app"), "{text}");
    let (code, text) = kit_test(&kit, &nginx, "not there");
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("body lacks \"not there\""), "{text}");
}

#[test]
fn rust_example_kit() {
    example_works("rust");
}

#[test]
fn c_example_kit() {
    example_works("c");
}

#[test]
fn python_example_kit() {
    example_works("python");
}

#[test]
fn js_example_kit() {
    example_works("js");
}
