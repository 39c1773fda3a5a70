//! The command-line contract: verbs, output and exit codes.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use common::Setup;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn misbehaving(mode: &str) -> Setup {
    Setup::new("backend = \"dry-run\"")
        .with_kit("misbehave")
        .app(
            "app",
            &format!("kit = \"misbehave\"\ntimeout = \"500ms\"\n[settings]\nmode = \"{mode}\"\n"),
        )
}

#[test]
fn check_exit_codes_follow_the_nagios_convention() {
    for (mode, code, prefix) in [
        ("ok", 0, "OK - app: healthy"),
        ("degraded", 1, "WARNING - app: degraded: told to degrade"),
        ("fail", 2, "CRITICAL - app: failed: told to fail"),
        ("trap", 3, "UNKNOWN - app: kit fault: kit trapped"),
        (
            "loop",
            3,
            "UNKNOWN - app: kit fault: kit call exceeded its deadline",
        ),
    ] {
        let setup = misbehaving(mode);
        let output = setup.run(&["check", "app"]);
        assert_eq!(
            output.status.code(),
            Some(code),
            "mode {mode}: {}",
            stdout(&output)
        );
        assert!(
            stdout(&output).starts_with(prefix),
            "mode {mode}: {}",
            stdout(&output)
        );
        assert_eq!(stdout(&output).lines().count(), 1, "one line of output");
    }
}

#[test]
fn check_of_an_unknown_app_or_missing_kit_is_unknown() {
    let setup = misbehaving("ok");
    let output = setup.run(&["check", "nope"]);
    assert_eq!(output.status.code(), Some(3));
    std::fs::remove_file(setup.dir.path().join("kits/misbehave.wasm")).unwrap();
    let output = setup.run(&["check", "app"]);
    assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
    assert!(stderr(&output).contains("kit file"), "{}", stderr(&output));
}

#[test]
fn logging_100_mib_is_capped() {
    let setup = Setup::new("backend = \"dry-run\"")
        .with_kit("misbehave")
        .app(
            "app",
            "kit = \"misbehave\"\ntimeout = \"30s\"\n[settings]\nmode = \"log\"\nmib = \"100\"\n",
        );
    let output = setup.run(&["check", "app"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        output.stderr.len() < 256 * 1024,
        "kit log reached the host's log: {} bytes",
        output.stderr.len()
    );
}

#[test]
fn config_errors_name_file_line_column_and_field() {
    let setup = Setup::new("backend = \"dry-run\"").with_kit("misbehave").app(
        "web",
        "kit = \"misbehave\"\ninterval = \"5 parsecs\"\nfailures_before_action = \"two\"\ncolour = \"blue\"\n",
    );
    let setup = setup.app("db", "kit = \"nope\"\n");
    let output = setup.run(&["config", "validate"]);
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    let web = setup.dir.path().join("apps.d/web.toml");
    let db = setup.dir.path().join("apps.d/db.toml");
    let expect = [
        format!("{}:1:7: kit: kit file ", db.display()),
        format!(
            "{}:2:12: interval: invalid duration \"5 parsecs\"",
            web.display()
        ),
        format!("{}:3:26: failures_before_action: expected ", web.display()),
        format!("{}:4:1: colour: unknown key `colour`", web.display()),
    ];
    for line in &expect {
        assert!(
            errors.lines().any(|l| l.starts_with(line.as_str())),
            "missing {line:?} in:\n{errors}"
        );
    }
    assert_eq!(
        errors.lines().count(),
        4,
        "every error at once, nothing else:\n{errors}"
    );
}

#[test]
fn a_valid_config_validates() {
    let setup = misbehaving("ok");
    let output = setup.run(&["config", "validate"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn kit_inspect_shows_settings_and_wants_of_each_bundled_kit() {
    for (kit, setting, want) in [
        ("http", "url", "connect"),
        ("tcp", "address", "connect"),
        ("process", "pidfile", "read"),
        ("nagios", "plugin", "exec"),
        ("ocf", "agent", "exec"),
        ("scripts", "quick_check", "exec"),
    ] {
        let output = common::medic()
            .args(["kit", "inspect"])
            .arg(common::guests::kit(kit))
            .arg("--json")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{kit}: {}", stderr(&output));
        let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(info["name"], kit);
        let settings = info["settings"].as_array().unwrap();
        assert!(
            settings.iter().any(|s| s["key"] == setting),
            "{kit}: {info}"
        );
        assert!(
            info["wants"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["grant"] == want),
            "{kit}: {info}"
        );
        let text = common::medic()
            .args(["kit", "inspect"])
            .arg(common::guests::kit(kit))
            .output()
            .unwrap();
        assert!(stdout(&text).contains(setting));
    }
}

/// `medic kit test` on an app file outside any medic.toml.
fn kit_test(app: &str, extra: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trial.toml");
    std::fs::write(&file, app).unwrap();
    let output = common::medic()
        .args(["kit", "test"])
        .arg(common::guests::kit("misbehave"))
        .arg("--app")
        .arg(&file)
        .args(extra)
        .output()
        .unwrap();
    (output.status.code(), stdout(&output) + &stderr(&output))
}

#[test]
fn kit_test_runs_describe_check_and_recover_once_and_shows_denials() {
    let (code, text) = kit_test(
        "kit = \"misbehave\"\n[settings]\nmode = \"fail\"\nrecover_mode = \"escalate\"\n",
        &["--recover"],
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("describe misbehave 0.1.0: "), "{text}");
    assert!(text.contains("app      trial ("), "{text}");
    assert!(text.contains("check    failed: told to fail ("), "{text}");
    assert!(
        text.contains("recover  escalate: "),
        "recover ran and its answer is explained: {text}"
    );

    let (code, text) = kit_test(
        "kit = \"misbehave\"\n[settings]\nmode = \"exec\"\nprogram = \"/bin/sh\"\nargs = \"-c id\"\n",
        &[],
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("check    kit fault: kit was denied: exec /bin/sh"),
        "{text}"
    );
    assert!(text.contains("grant it in the app's [grants]"), "{text}");
    assert!(
        !text.contains("recover "),
        "recover only with --recover: {text}"
    );

    let (code, text) = kit_test("kit = \"misbehave\"\ninterval = \"soon\"\n", &[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("trial.toml:2:"),
        "bad input names file and line: {text}"
    );
}

#[test]
fn kit_inspect_refuses_what_is_not_a_kit() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("empty.wasm", Vec::new()),
        ("random.wasm", b"\x7fELF not wasm at all".to_vec()),
        ("module.wasm", wat::parse_str("(module)").unwrap()),
        ("other.wasm", wat::parse_str("(component)").unwrap()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let output = common::medic()
            .args(["kit", "inspect"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{name}");
        assert!(
            stderr(&output).contains(name),
            "the error names the file: {}",
            stderr(&output)
        );
    }
}

#[test]
fn events_json_has_ts_app_kind_detail() {
    let setup = misbehaving("ok");
    let journal = medic::journal::Journal::open(&setup.state_dir()).unwrap();
    journal
        .append(&medic::journal::Event::new(
            Some("app"),
            medic::journal::Kind::AppFailed,
            serde_json::json!({"reason": "x"}),
        ))
        .unwrap();
    journal
        .append(&medic::journal::Event::new(
            Some("other"),
            medic::journal::Kind::AppRecovered,
            serde_json::json!({}),
        ))
        .unwrap();
    let output = setup.run(&["events", "--json", "--app", "app"]);
    assert_eq!(output.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["kind"], "app_failed");
    assert_eq!(lines[0]["app"], "app");
    assert_eq!(lines[0]["detail"]["reason"], "x");
    assert!(humantime::parse_rfc3339(lines[0]["ts"].as_str().unwrap()).is_ok());
}

fn cached_files(setup: &Setup) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(setup.state_dir().join("cache"))
        .map(|dir| dir.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn precompiled_code_is_cached_in_state_dir_and_never_loaded_from_the_plugins_dir() {
    let setup = misbehaving("ok");
    assert_eq!(setup.run(&["check", "app"]).status.code(), Some(0));
    let cached = cached_files(&setup);
    assert_eq!(cached.len(), 1, "{cached:?}");
    let kit = setup.dir.path().join("kits/misbehave.wasm");
    let sha256 = {
        use sha2::Digest;
        sha2::Sha256::digest(std::fs::read(&kit).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let name = cached[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with(&sha256) && name.ends_with(".cwasm"),
        "{name}"
    );

    // Precompiled code is native code: dropped into the plugins dir it is refused.
    std::fs::copy(&cached[0], &kit).unwrap();
    let output = setup.run(&["check", "app"]);
    assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("not a WebAssembly file"),
        "{}",
        stdout(&output)
    );
    let output = common::medic()
        .args(["kit", "inspect"])
        .arg(&kit)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_damaged_cache_entry_is_recompiled() {
    let setup = misbehaving("ok");
    assert_eq!(setup.run(&["check", "app"]).status.code(), Some(0));
    let cached = cached_files(&setup);
    std::fs::write(&cached[0], b"\x7fELF damaged").unwrap();
    let output = setup.run(&["check", "app"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(
        std::fs::read(&cached[0]).unwrap().len() > 1000,
        "the entry was rewritten"
    );
}
