//! The example kits, one per language: `sdk/build-example.sh` writes each
//! with `medic kit new` into `target/examples/<lang>-http` and builds it
//! there with the template's own `build.sh`, once per test binary; what a
//! toolchain needs from a package registry goes under `target/toolchains`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The built example kit for `lang` (`rust`, `python`, `js`, `c`).
pub fn kit(lang: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let built = BUILT.get_or_init(Mutex::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = built.iter().find(|(l, _)| l == lang) {
        return path.clone();
    }
    let path = build(lang);
    built.push((lang.to_owned(), path.clone()));
    path
}

fn build(lang: &str) -> PathBuf {
    let examples = root().join("target/examples");
    let output = Command::new("sh")
        .arg(root().join("sdk/build-example.sh"))
        .arg(lang)
        .arg(&examples)
        .arg(root().join("target/toolchains"))
        .env("MEDIC", env!("CARGO_BIN_EXE_medic"))
        // Rust examples share the compiled wit-bindgen of the guests.
        .env("CARGO_TARGET_DIR", root().join("target/guests"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "building the {lang} example failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    examples
        .join(format!("{lang}-http"))
        .join(format!("{lang}-http.wasm"))
}
