//! Precompiled kit code is trusted only when medic wrote it.
//!
//! A `.cwasm` artifact is native code, and medic finds it by file name
//! alone (sha256 of the `.wasm` and the engine's compatibility hash). These
//! tests plant the real artifact of one kit (`misbehave`) under the name
//! another kit (`http`) is cached as, then load `http` and ask it for its
//! name: "misbehave" means the planted code ran. It must run only when
//! medic's own user owns both the file and its directory and nobody else
//! can write to either.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use medic::config::Grants;
use medic::sandbox::{CallScope, KitEngine};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A uid that is not medic's (the tests run as root).
const NOBODY: u32 = 65534;

/// The one artifact in `dir`.
fn artifact_in(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().unwrap(), "cwasm");
    files[0].clone()
}

/// What an attacker plants: `misbehave`'s artifact as medic wrote it, and
/// the file name medic caches `http` under; both from real compiles.
struct Plant {
    misbehave: Vec<u8>,
    http_name: String,
}

fn plant() -> &'static Plant {
    static PLANT: OnceLock<Plant> = OnceLock::new();
    PLANT.get_or_init(|| {
        // The artifact's bytes and file name, read before its dir is removed.
        let compile = |kit: &str| {
            let cache = tempfile::tempdir().unwrap();
            KitEngine::new(Some(cache.path().to_owned()))
                .unwrap()
                .load(&common::guests::kit(kit))
                .unwrap();
            let file = artifact_in(cache.path());
            let name = file.file_name().unwrap().to_str().unwrap().to_owned();
            (std::fs::read(&file).unwrap(), name)
        };
        Plant {
            misbehave: compile("misbehave").0,
            http_name: compile("http").1,
        }
    })
}

/// A cache dir (0755, ours) under `root` holding the planted artifact
/// (0644, ours) under `http`'s name; returns the dir and the file.
fn planted_cache(root: &Path) -> (PathBuf, PathBuf) {
    let cache = root.join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = cache.join(&plant().http_name);
    std::fs::write(&file, &plant().misbehave).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    (cache, file)
}

/// Loads the `http` kit through an engine caching in `cache` and returns
/// the name the loaded code reports.
async fn name_of_http_kit_loaded_via(cache: &Path) -> String {
    let state = tempfile::tempdir().unwrap();
    let kit = KitEngine::new(Some(cache.to_owned()))
        .unwrap()
        .load(&common::guests::kit("http"))
        .unwrap();
    let scope = CallScope::new(
        "app",
        &Grants::default(),
        state.path().join("state.json"),
        64 << 20,
    );
    kit.describe(scope, TIMEOUT).await.unwrap().name
}

/// The control for the tests below: the same plant, owned by medic's user
/// in medic's directory, is loaded without looking at the `.wasm` again.
/// So "http" below means the plant was refused, not that it was never found.
#[tokio::test]
async fn an_artifact_medic_owns_in_its_own_dir_is_what_runs() {
    let root = tempfile::tempdir().unwrap();
    let (cache, _) = planted_cache(root.path());
    assert_eq!(name_of_http_kit_loaded_via(&cache).await, "misbehave");
}

/// A cache directory that another user owns, or that others can write to,
/// is neither read from nor written to: the kit is compiled from its
/// `.wasm` and the planted file stays as it was.
#[tokio::test]
async fn an_artifact_in_a_dir_medic_does_not_own_never_runs() {
    for (what, owner, mode) in [
        ("owned by uid 65534", NOBODY, 0o755),
        ("writable by others", 0, 0o777),
    ] {
        let root = tempfile::tempdir().unwrap();
        let (cache, file) = planted_cache(root.path());
        std::os::unix::fs::chown(&cache, Some(owner), Some(owner)).unwrap();
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(mode)).unwrap();

        assert_eq!(name_of_http_kit_loaded_via(&cache).await, "http", "{what}");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            plant().misbehave,
            "{what}: medic must not write into the directory"
        );
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1, "{what}");
    }
}

/// An artifact owned by another user in medic's own directory is ignored
/// and replaced by medic's own, which is then used.
#[tokio::test]
async fn an_artifact_another_user_owns_never_runs_and_is_replaced() {
    let root = tempfile::tempdir().unwrap();
    let (cache, file) = planted_cache(root.path());
    std::os::unix::fs::chown(&file, Some(NOBODY), Some(NOBODY)).unwrap();

    assert_eq!(name_of_http_kit_loaded_via(&cache).await, "http");
    let replaced = std::fs::metadata(&file).unwrap();
    assert_eq!(replaced.uid(), rustix::process::geteuid().as_raw());
    assert_ne!(std::fs::read(&file).unwrap(), plant().misbehave);
    assert_eq!(name_of_http_kit_loaded_via(&cache).await, "http");
}

/// The cache still does its job: medic creates its directory private, and
/// a second load uses the artifact the first one wrote instead of
/// compiling and writing it again (a rewrite would be a new inode, since
/// artifacts are written to a temporary file and renamed).
#[tokio::test]
async fn medic_reuses_the_artifact_it_wrote() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("medic").join("kits");
    assert_eq!(name_of_http_kit_loaded_via(&cache).await, "http");
    let dir_mode = std::fs::metadata(&cache).unwrap().mode();
    assert_eq!(dir_mode & 0o077, 0, "cache dir mode {dir_mode:o}");
    let file = artifact_in(&cache);
    assert_eq!(
        file.file_name().unwrap().to_str(),
        Some(&*plant().http_name)
    );
    let written = std::fs::metadata(&file).unwrap();
    assert_eq!(
        written.mode() & 0o022,
        0,
        "artifact mode {:o}",
        written.mode()
    );

    assert_eq!(name_of_http_kit_loaded_via(&cache).await, "http");
    let reused = std::fs::metadata(&file).unwrap();
    assert_eq!(
        (reused.ino(), reused.mtime(), reused.mtime_nsec()),
        (written.ino(), written.mtime(), written.mtime_nsec()),
        "the artifact was rewritten, so it was not used"
    );
}
