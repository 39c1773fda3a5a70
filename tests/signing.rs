//! Signed kits: keys made and kits signed with the real `minisign`; the
//! daemon, `medic kit inspect` and `medic config validate` judge them by
//! `[daemon] trusted_keys` and `require_signed`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Setup;
use medic::journal::{Event, Kind};
use serde_json::Value;

/// Runs the real `minisign` with `args` in `dir`, failing the test if it fails.
fn minisign(dir: &Path, args: &[&str]) {
    let out = Command::new("minisign")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("minisign is installed (Debian package minisign)");
    assert!(out.status.success(), "minisign {args:?}: {out:?}");
}

/// A key pair `NAME.pub`/`NAME.key` (no password) in `dir`, and its key id
/// as minisign prints it.
fn key_pair(dir: &Path, name: &str) -> (PathBuf, String) {
    let public = format!("{name}.pub");
    let secret = format!("{name}.key");
    minisign(dir, &["-G", "-W", "-p", &public, "-s", &secret]);
    let text = std::fs::read_to_string(dir.join(&public)).unwrap();
    let id = text
        .lines()
        .next()
        .and_then(|line| line.rsplit(' ').next())
        .unwrap()
        .to_owned();
    (dir.join(secret), id)
}

/// Signs `file` with `secret`, with `comment` as the trusted comment.
fn sign(secret: &Path, file: &Path, comment: &str) {
    let dir = file.parent().unwrap();
    minisign(
        dir,
        &[
            "-S",
            "-s",
            secret.to_str().unwrap(),
            "-m",
            file.to_str().unwrap(),
            "-t",
            comment,
        ],
    );
}

/// A setup whose medic.toml trusts `keys/*.pub` and requires signatures,
/// with the `misbehave` kit copied as each of `kits`, and one app of the
/// same name per kit; explicit reloads only.
fn signed_setup(kits: &[&str]) -> Setup {
    let setup = Setup::new("").with_kit("misbehave").with_daemon(
        "reload_on_change = false\ntrusted_keys = [\"keys/*.pub\"]\nrequire_signed = true\n",
    );
    std::fs::create_dir(setup.dir.path().join("keys")).unwrap();
    let original = setup.dir.path().join("kits/misbehave.wasm");
    let mut setup = setup;
    for kit in kits {
        std::fs::copy(&original, kit_path(&setup, kit)).unwrap();
        setup = setup.app(
            kit,
            &format!("kit = \"{kit}\"\ninterval = \"100ms\"\n[settings]\nmode = \"ok\"\n"),
        );
    }
    std::fs::remove_file(original).unwrap();
    setup
}

fn kit_path(setup: &Setup, kit: &str) -> PathBuf {
    setup.dir.path().join("kits").join(format!("{kit}.wasm"))
}

/// The `detail` of the last `kind` event about the kit file of `kit`.
fn kit_event(events: &[Event], kind: Kind, kit: &str) -> Option<Value> {
    let file = format!("/{kit}.wasm");
    events
        .iter()
        .rev()
        .find(|e| {
            e.kind == kind
                && e.detail["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&file))
        })
        .map(|e| e.detail.clone())
}

/// Runs a client verb against the setup's daemon.
fn client(setup: &Setup, args: &[&str]) -> std::process::Output {
    let socket = setup.dir.path().join("medic.sock");
    common::medic()
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .unwrap()
}

#[test]
fn only_kits_signed_by_a_trusted_key_load_when_signatures_are_required() {
    let setup = signed_setup(&["good", "plain", "foreign", "tampered"]);
    let keys = setup.dir.path().join("keys");
    let (ops, ops_id) = key_pair(&keys, "ops");
    // The stranger's public key is kept out of keys/ (not trusted).
    let outside = tempfile::tempdir().unwrap();
    let (stranger, stranger_id) = key_pair(outside.path(), "stranger");
    sign(&ops, &kit_path(&setup, "good"), "built by ops, release 7");
    sign(&stranger, &kit_path(&setup, "foreign"), "not ours");
    // Signed, then changed: a byte flipped in the middle of the code.
    let tampered = kit_path(&setup, "tampered");
    sign(&ops, &tampered, "built by ops");
    let mut bytes = std::fs::read(&tampered).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&tampered, bytes).unwrap();

    let out = setup.run(&["config", "validate"]);
    assert!(out.status.success(), "{out:?}");

    let mut daemon = setup.daemon();
    assert!(
        common::wait_for(Duration::from_secs(60), || {
            let events = setup.events();
            kit_event(&events, Kind::KitLoaded, "good").is_some()
                && ["plain", "foreign", "tampered"]
                    .iter()
                    .all(|kit| kit_event(&events, Kind::KitLoadFailed, kit).is_some())
        }),
        "kits not judged: {}",
        daemon.log_text()
    );
    let events = setup.events();
    let signer = &kit_event(&events, Kind::KitLoaded, "good").unwrap()["signer"];
    assert_eq!(signer["trusted"], true, "{signer}");
    assert_eq!(signer["key_id"], ops_id.as_str());
    assert_eq!(signer["comment"], "built by ops, release 7");
    assert!(
        signer["key_file"]
            .as_str()
            .unwrap()
            .ends_with("keys/ops.pub")
    );
    let error = |kit: &str| {
        kit_event(&events, Kind::KitLoadFailed, kit).unwrap()["error"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        error("plain").contains("no signature"),
        "{}",
        error("plain")
    );
    assert!(error("plain").contains("plain.wasm.minisig"));
    let foreign = error("foreign");
    assert!(
        foreign.contains(&stranger_id) && foreign.contains("not among trusted_keys"),
        "{foreign}"
    );
    let tampered_error = error("tampered");
    assert!(
        tampered_error.contains("does not match") && tampered_error.contains(&ops_id),
        "{tampered_error}"
    );
    for kit in ["good", "plain", "foreign", "tampered"] {
        let loaded = kit_event(&events, Kind::KitLoaded, kit).is_some();
        assert_eq!(loaded, kit == "good", "{kit}");
    }
    // The signed kit's app is watched; the others are not.
    let out = client(&setup, &["check", "good"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    daemon.stop();

    // `kit inspect` shows who signed, judged by the config when given.
    let inspect = |kit: &str, with_config: bool| {
        let mut command = common::medic();
        command.args(["kit", "inspect"]).arg(kit_path(&setup, kit));
        if with_config {
            command.arg("--config").arg(setup.config());
        }
        command.output().unwrap()
    };
    let out = inspect("good", true);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains(&format!("signer: key {ops_id} ("))
            && text.contains("built by ops, release 7"),
        "{text}"
    );
    let out = inspect("foreign", false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "signer: key {stranger_id}, not among trusted_keys"
        )),
        "{out:?}"
    );
    let out = inspect("plain", true);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no signature"));
    let out = inspect("plain", false);
    assert!(String::from_utf8_lossy(&out.stdout).contains("signer: unsigned"));
}

#[test]
fn a_reload_keeps_the_last_good_kit_when_the_new_one_fails_its_signature() {
    let setup = signed_setup(&["web"]);
    let (ops, _) = key_pair(&setup.dir.path().join("keys"), "ops");
    let kit = kit_path(&setup, "web");
    sign(&ops, &kit, "release 1");
    let _daemon = setup.daemon();
    assert!(common::wait_for(Duration::from_secs(60), || {
        client(&setup, &["check", "web"]).status.code() == Some(0)
    }));

    // A new build dropped in without a new signature: the old signature
    // does not match it, so the reload is refused and the old kit runs on.
    std::fs::copy(common::guests::kit("http"), &kit).unwrap();
    let out = client(&setup, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not load"));
    let failed = kit_event(&setup.events(), Kind::KitLoadFailed, "web").unwrap();
    assert!(
        failed["error"].as_str().unwrap().contains("does not match"),
        "{failed}"
    );
    let out = client(&setup, &["check", "web"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the old kit still checks: {out:?}"
    );

    // Its signature removed: refused again, for being unsigned.
    let mut signature = kit.clone().into_os_string();
    signature.push(".minisig");
    std::fs::remove_file(signature).unwrap();
    let out = client(&setup, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let failed = kit_event(&setup.events(), Kind::KitLoadFailed, "web").unwrap();
    assert!(
        failed["error"].as_str().unwrap().contains("no signature"),
        "{failed}"
    );
    let out = client(&setup, &["check", "web"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn config_validate_names_the_line_of_an_unusable_key_setting() {
    let validate = |daemon: &str, files: &[(&str, &str)]| {
        let setup = Setup::new("").with_daemon(daemon);
        for (name, text) in files {
            let path = setup.dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let out = setup.run(&["config", "validate"]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // Line 6 of medic.toml: after [daemon] and its four paths and socket.
    let errors = validate("require_signed = true\n", &[]);
    assert!(
        errors.contains("medic.toml:6:18: daemon.require_signed: require_signed is on but trusted_keys names no key"),
        "{errors}"
    );
    let errors = validate("trusted_keys = [\"key/*.pub\"]\n", &[("keys/ops.pub", "x")]);
    assert!(
        errors.contains("medic.toml:6:17: daemon.trusted_keys[0]:")
            && errors.contains("key/*.pub` matches no file"),
        "{errors}"
    );
    let errors = validate(
        "trusted_keys = [\"keys/*.pub\"]\n",
        &[("keys/ops.pub", "untrusted comment: hello\nnot base64!\n")],
    );
    assert!(
        errors.contains("daemon.trusted_keys[0]:")
            && errors.contains("keys/ops.pub: not a minisign public key"),
        "{errors}"
    );
}
