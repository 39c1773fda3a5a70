//! Guests built from source on first use: the bundled kits (`plugins/`) and
//! the test-only kits (`tests/guests/`), for wasm32-wasip2, into
//! `target/guests`. A separate target dir keeps this nested cargo from
//! waiting on the outer build's lock; cargo's own lock serialises test
//! binaries building at once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const WORKSPACES: &[&str] = &["plugins", "tests/guests"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    root().join("target").join("guests")
}

fn build_all() -> PathBuf {
    for workspace in WORKSPACES {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root().join(workspace))
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .env("CARGO_TARGET_DIR", target_dir())
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("run cargo for the guests");
        assert!(
            status.success(),
            "building guests in {workspace} failed (is the wasm32-wasip2 target installed?)"
        );
    }
    target_dir().join("wasm32-wasip2").join("release")
}

/// The built component of kit `name` (`http`, `tcp`, `process`, `misbehave`).
pub fn kit(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(build_all)
        .join(format!("kit_{name}.wasm"))
}

/// `kit` with a custom section appended: the same code, other bytes (and
/// so another sha256 and another compiled artifact), as a rebuild is.
pub fn rebuilt(kit: &Path, tag: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(kit).unwrap();
    let name = b"medic-test";
    let payload = tag.as_bytes();
    let size = 1 + name.len() + payload.len();
    bytes.push(0); // custom section
    bytes.push(u8::try_from(size).unwrap());
    bytes.push(u8::try_from(name.len()).unwrap());
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    bytes
}
