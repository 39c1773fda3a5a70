//! A granted program never runs the kit's code: the environment a kit gives
//! the programs it runs is an allow-list the admin writes (`[grants] env`),
//! and the names that make a program run other code are refused whatever
//! it says.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common;

/// The line of the template's check that the attack is put after.
const CHECK: &str = "    fn check(ctx: CallContext) -> Verdict {\n";

/// Writes a kit with `medic kit new --lang rust` into `dir`, turns its
/// check into `attack` (Rust statements that evaluate to a `Verdict`), and
/// builds it; returns the `.wasm`.
fn rust_kit_doing(dir: &Path, attack: &str) -> std::path::PathBuf {
    let status = common::medic()
        .args(["kit", "new", "--lang", "rust", "attacker", "--dir"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
    let source = dir.join("attacker/src/lib.rs");
    let text = std::fs::read_to_string(&source).unwrap();
    assert!(text.contains(CHECK), "the template's check moved");
    std::fs::write(
        &source,
        text.replacen(
            CHECK,
            &format!("{CHECK}        #[allow(unreachable_code)]\n        return {{ {attack} }};\n"),
            1,
        ),
    )
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new("sh")
        .arg(dir.join("attacker/build.sh"))
        .env("CARGO_TARGET_DIR", root.join("target/guests"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir.join("attacker/attacker.wasm")
}

#[test]
fn a_kit_cannot_run_its_code_through_a_granted_perl_program() {
    let dir = tempfile::tempdir().unwrap();
    // The granted program: a harmless Perl script, as check_file_age is.
    let perl = dir.path().join("check_age.pl");
    std::fs::write(&perl, "#!/usr/bin/perl\nprint \"OK - fresh\\n\";\n").unwrap();
    std::fs::set_permissions(&perl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let marker = dir.path().join("pwned");
    // PERL5OPT is split at spaces: the payload has none.
    let payload = format!("-Mbase;system(q(touch),q({}));", marker.display());

    // Without medic in the way, the payload runs: the test can tell.
    let direct = Command::new(&perl)
        .env("PERL5OPT", &payload)
        .output()
        .unwrap();
    assert!(direct.status.success());
    assert!(marker.exists(), "PERL5OPT runs code in a Perl program");
    std::fs::remove_file(&marker).unwrap();

    let attack = format!(
        "let ran = host::run(&medic::kit::types::ExecRequest {{ program: {program:?}.into(), args: vec![], \
         env: vec![Setting {{ key: \"PERL5OPT\".into(), value: {payload:?}.into() }}], cwd: None, \
         timeout_ms: 5000, output_max: 0 }}); let _ = ctx; Verdict::Degraded(format!(\"{{ran:?}}\"))",
        program = perl.display().to_string(),
    );
    let kit = rust_kit_doing(dir.path(), &attack);
    let app = dir.path().join("web.toml");
    // The admin granted the program and, for it, LANG: not PERL5OPT, which
    // no grant could open anyway.
    std::fs::write(
        &app,
        format!(
            "kit = \"attacker\"\n[grants]\nexec = [\"{}\"]\nenv = [\"LANG\"]\n",
            perl.display()
        ),
    )
    .unwrap();
    let output = common::medic()
        .args(["kit", "test"])
        .arg(&kit)
        .arg("--app")
        .arg(&app)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!marker.exists(), "the kit's code never ran: {text}");
    assert!(
        text.contains(&format!(
            "kit fault: kit was denied: exec {} with PERL5OPT can never be granted",
            perl.display()
        )),
        "{text}"
    );
    assert_eq!(output.status.code(), Some(3), "{text}");
}

/// The config refuses a grant that would open such a name, at its line.
#[test]
fn config_validate_refuses_env_grants_that_run_other_code() {
    let setup = common::Setup::new("backend = \"dry-run\"").with_kit("ocf").app(
        "web",
        "kit = \"ocf\"\n[grants]\nenv = [\"OCF_RESKEY_*\", \"PERL5OPT\", \"OCF_*\", \"PATH\"]\n",
    );
    let output = setup.run(&["config", "validate"]);
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for (field, says) in [
        (
            "grants.env[1]",
            "`PERL5OPT` can never be granted: perl would run the kit's code",
        ),
        ("grants.env[2]", "`OCF_*` would also grant OCF_ROOT"),
        ("grants.env[3]", "`PATH` can never be granted"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(":3:") && l.contains(field) && l.contains(says)),
            "{field}: {text}"
        );
    }
    assert!(!text.contains("grants.env[0]"), "{text}");
}
