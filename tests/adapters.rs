//! The adapter kits against what they adapt: Debian's monitoring-plugins,
//! real OCF resource agents driving a real nginx, and admin scripts.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::Setup;
use common::nginx::Nginx;
use medic::journal::Kind;

const PLUGINS: &str = "/usr/lib/nagios/plugins";
const OCF_NGINX: &str = "/usr/lib/ocf/resource.d/heartbeat/nginx";
/// The environment the ocf kit sets for an agent, as an app grants it.
const OCF_ENV: &str =
    "env = [\"OCF_RESKEY_*\", \"OCF_RESOURCE_*\", \"OCF_RA_VERSION_*\", \"OCF_CHECK_LEVEL\"]\n";

/// An app file running `plugin` with `args` through the nagios kit.
fn nagios_app(plugin: &str, args: &str) -> String {
    format!(
        "kit = \"nagios\"\ninterval = \"200ms\"\ntimeout = \"5s\"\nfailures_before_action = 1\n\
         [recovery]\nlocal_attempts = 0\nthen = \"alert\"\n\
         [settings]\nplugin = \"{PLUGINS}/{plugin}\"\nargs = {args:?}\ntimeout_ms = \"4000\"\n\
         [grants]\nexec = [\"{PLUGINS}/{plugin}\"]\nenv = [\"LC_ALL\"]\n"
    )
}

#[test]
fn nagios_plugin_states_become_verdicts() {
    let nginx = Nginx::start();
    let port = nginx.port;
    let setup = Setup::new("backend = \"dry-run\"")
        .with_kit("nagios")
        .app(
            "ok",
            &nagios_app(
                "check_http",
                &format!("-H 127.0.0.1 -p {port} -u /healthz -s ok"),
            ),
        )
        .app(
            "warning",
            &nagios_app(
                "check_tcp",
                &format!("-H 127.0.0.1 -p {port} -w 0.000001 -c 10"),
            ),
        )
        .app(
            "critical",
            &nagios_app(
                "check_http",
                &format!("-H 127.0.0.1 -p {port} -u '/healthz' -s 'not there'"),
            ),
        )
        .app("unknown", &nagios_app("check_tcp", "--no-such-option"));
    assert_eq!(setup.check("ok"), (0, "OK - ok: healthy".to_owned()));
    let (code, line) = setup.check("warning");
    assert_eq!(code, 1, "{line}");
    assert!(
        line.starts_with("WARNING - warning: degraded: TCP WARNING - "),
        "{line}"
    );
    let (code, line) = setup.check("critical");
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("CRITICAL - critical: failed: HTTP CRITICAL: HTTP/1.1 200 OK - string 'not there' not found"),
        "{line}"
    );
    assert!(
        !line.contains("time="),
        "perfdata is not part of the reason: {line}"
    );
    let (code, line) = setup.check("unknown");
    assert_eq!(code, 3, "{line}");
    assert!(
        line.starts_with("UNKNOWN - unknown: unknown: "),
        "a verdict, not a kit fault: {line}"
    );
    assert!(line.contains("exited 3 (UNKNOWN)"), "{line}");
}

#[test]
fn nagios_perfdata_is_kept_in_the_journal_event() {
    let nginx = Nginx::start();
    let setup = Setup::new("backend = \"dry-run\"").with_kit("nagios").app(
        "web",
        &nagios_app(
            "check_http",
            &format!("-H 127.0.0.1 -p {} -u /healthz -s nope", nginx.port),
        ),
    );
    let events = setup.daemon_until("web", Kind::AppFailed);
    let failed = events.iter().find(|e| e.kind == Kind::AppFailed).unwrap();
    let reason = failed.detail["reason"].as_str().unwrap();
    assert!(reason.starts_with("HTTP CRITICAL"), "{reason}");
    let perfdata = failed.detail["check"]["perfdata"].as_str().unwrap();
    assert!(
        perfdata.starts_with("time=") && perfdata.contains("size="),
        "{perfdata}"
    );
}

/// Writes an executable shell script `name` into `dir`.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn scripts_check_recover_and_fall_back_to_remove_and_restore() {
    let setup = Setup::new("backend = \"dry-run\"").with_kit("scripts");
    let dir = setup.dir.path().join("scripts");
    std::fs::create_dir_all(&dir).unwrap();
    let flag = dir.join("in-service");
    let calls = dir.join("calls");
    let log = format!("echo \"$0 $*\" >> {}", calls.display());
    let quick = script(
        &dir,
        "quickCheck",
        &format!(
            "{log}; [ -e {f} ] || {{ echo 'not in service'; exit 1; }}",
            f = flag.display()
        ),
    );
    // `recover` fails, so the kit goes on with remove + restore.
    let recover = script(
        &dir,
        "recover",
        &format!("{log}; echo 'cannot recover' >&2; exit 1"),
    );
    let remove = script(&dir, "remove", &format!("{log}; rm -f {}", flag.display()));
    let restore = script(&dir, "restore", &format!("{log}; touch {}", flag.display()));
    let app = format!(
        "kit = \"scripts\"\ninterval = \"200ms\"\ntimeout = \"5s\"\nfailures_before_action = 1\n\
         [recovery]\nlocal_attempts = 2\nbackoff = \"50ms\"\nthen = \"alert\"\n\
         [settings]\nquick_check = \"{quick}\"\nrecover = \"{recover}\"\nremove = \"{remove}\"\nrestore = \"{restore}\"\ntag = \"app-tag\"\n\
         [grants]\nexec = [\"{quick}\", \"{recover}\", \"{remove}\", \"{restore}\"]\nenv = [\"MEDIC_APP\"]\n"
    );
    let setup = setup.app("gen", &app);
    let (code, line) = setup.check("gen");
    assert_eq!(
        (code, line.as_str()),
        (
            2,
            "CRITICAL - gen: failed: quick_check exited 1: not in service"
        )
    );

    let events = setup.daemon_until("gen", Kind::AppRecovered);
    assert!(flag.exists(), "restore put it in service");
    let attempt = events
        .iter()
        .find(|e| e.kind == Kind::RecoveryAttempt)
        .unwrap();
    assert_eq!(attempt.detail["attempt"], 1, "{attempt:?}");
    let calls = std::fs::read_to_string(&calls).unwrap();
    let order: Vec<&str> = calls
        .lines()
        .map(|l| l.split(' ').next().unwrap().rsplit('/').next().unwrap())
        .collect();
    let first_recover = order.iter().position(|s| *s == "recover").unwrap();
    assert_eq!(
        &order[first_recover..first_recover + 4],
        ["recover", "remove", "restore", "quickCheck"],
        "{calls}"
    );
    assert!(
        calls.contains("-t app-tag -i app-tag"),
        "LifeKeeper-style arguments: {calls}"
    );
}

/// An app watching the test's nginx through the OCF `heartbeat/nginx`
/// agent; `extra` adds settings.
fn ocf_app(nginx: &Nginx, extra: &str) -> String {
    format!(
        "kit = \"ocf\"\ninterval = \"300ms\"\ntimeout = \"20s\"\nfailures_before_action = 1\n\
         [recovery]\nlocal_attempts = 3\nbackoff = \"100ms\"\nthen = \"alert\"\n\
         [settings]\nagent = \"heartbeat/nginx\"\nconfigfile = \"{conf}\"\nhttpd = \"/usr/sbin/nginx\"\ntimeout_ms = \"15000\"\n{extra}\
         [grants]\nexec = [\"{OCF_NGINX}\"]\n{OCF_ENV}",
        conf = nginx.prefix.join("nginx.conf").display(),
    )
}

#[test]
fn ocf_agent_monitors_and_restarts_a_real_nginx() {
    let nginx = Nginx::start();
    let setup = Setup::new("backend = \"dry-run\"")
        .with_kit("ocf")
        .app("web", &ocf_app(&nginx, ""));
    assert_eq!(setup.check("web"), (0, "OK - web: healthy".to_owned()));
    let mut daemon = setup.daemon();
    setup.wait_kit_loaded();
    let pid = nginx.master_pid().unwrap();
    common::kill9(pid);
    assert!(
        setup.wait_event("web", Kind::AppRecovered, Duration::from_secs(60)),
        "{}",
        daemon.log_text()
    );
    assert!(nginx.serves(), "the agent's start brought nginx back");
    assert_ne!(nginx.master_pid(), Some(pid));
    let reason = &setup.reasons("web", Kind::AppFailed)[0];
    assert!(
        reason.starts_with("monitor exited 7 (not running)"),
        "{reason}"
    );
    daemon.stop();
}

/// The resource-agents package's own `heartbeat/Dummy`, which tracks its
/// state in the file its `state` parameter names: deleting the file is
/// the app going down, and the agent's `start` brings it back.
#[test]
fn ocf_dummy_agent_is_recovered_by_its_own_start() {
    let setup = Setup::new("backend = \"dry-run\"").with_kit("ocf");
    let state = setup.dir.path().join("dummy.state");
    std::fs::write(&state, "").unwrap();
    let app = format!(
        "kit = \"ocf\"\ninterval = \"200ms\"\ntimeout = \"10s\"\nfailures_before_action = 1\n\
         [recovery]\nlocal_attempts = 3\nbackoff = \"50ms\"\nthen = \"alert\"\n\
         [settings]\nagent = \"heartbeat/Dummy\"\nstate = \"{}\"\n\
         [grants]\nexec = [\"/usr/lib/ocf/resource.d/heartbeat/Dummy\"]\n{OCF_ENV}",
        state.display()
    );
    let setup = setup.app("dummy", &app);
    assert_eq!(setup.check("dummy"), (0, "OK - dummy: healthy".to_owned()));
    let mut daemon = setup.daemon();
    setup.wait_kit_loaded();
    std::fs::remove_file(&state).unwrap();
    assert!(
        setup.wait_event("dummy", Kind::AppRecovered, Duration::from_secs(30)),
        "{}",
        daemon.log_text()
    );
    assert!(state.exists(), "the agent's start wrote its state again");
    let reason = &setup.reasons("dummy", Kind::AppFailed)[0];
    assert!(
        reason.starts_with("monitor exited 7 (not running)"),
        "{reason}"
    );
    daemon.stop();
}

#[test]
fn ocf_agent_that_cannot_monitor_is_unknown_not_a_failure() {
    let setup = Setup::new("backend = \"dry-run\"").with_kit("ocf");
    let dir = setup.dir.path().join("agents");
    std::fs::create_dir_all(&dir).unwrap();
    // A custom agent (any path works) that sees its parameter is missing,
    // as real agents do in their validate step: OCF_ERR_CONFIGURED.
    let agent = script(
        &dir,
        "webapp",
        "[ -n \"$OCF_RESKEY_config\" ] && exit 0\necho 'ERROR: parameter config is required' >&2\nexit 6",
    );
    let app = |settings: &str| {
        format!(
            "kit = \"ocf\"\n[settings]\nagent = \"{agent}\"\n{settings}[grants]\nexec = [\"{agent}\"]\n{OCF_ENV}"
        )
    };
    let setup = setup
        .app("unset", &app(""))
        .app("set", &app("config = \"/etc/webapp.conf\"\n"));
    let (code, line) = setup.check("unset");
    assert_eq!(code, 3, "{line}");
    assert!(line.starts_with("UNKNOWN - unset: unknown: "), "{line}");
    assert!(
        line.contains("the agent cannot monitor: monitor exited 6 (not configured): ERROR: parameter config is required"),
        "{line}"
    );
    assert_eq!(
        setup.check("set"),
        (0, "OK - set: healthy".to_owned()),
        "OCF_RESKEY_config passed"
    );
}

/// `medic kit inspect --app` with the JSON output, as `(exit, json)`.
fn inspect_for_app(kit: &str, app: &str) -> (Option<i32>, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.toml");
    std::fs::write(&file, app).unwrap();
    let output = common::medic()
        .args(["kit", "inspect"])
        .arg(common::guests::kit(kit))
        .arg("--app")
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or_default();
    (output.status.code(), json)
}

/// An app file written before `[grants] env` existed gets a kit fault
/// that names the variable and the grant to add, never silence.
#[test]
fn ocf_without_an_env_grant_is_told_what_to_grant() {
    let nginx = Nginx::start();
    let setup = Setup::new("backend = \"dry-run\"")
        .with_kit("ocf")
        .app("web", &ocf_app(&nginx, "").replace(OCF_ENV, ""));
    let (code, line) = setup.check("web");
    assert_eq!(code, 3, "{line}");
    assert!(
        line.contains(&format!(
            "kit fault: kit was denied: exec {OCF_NGINX} with OCF_"
        )) && line.ends_with("is not in the app's [grants] env"),
        "{line}"
    );
}

/// The ocf kit lists the agent's parameters from its `meta-data`, asked
/// with the app's grants; a kit without `inspect` says it has nothing more.
#[test]
fn ocf_agent_parameters_come_from_its_meta_data() {
    let agent = "kit = \"ocf\"\n[settings]\nagent = \"heartbeat/nginx\"\n";
    let granted = format!("{agent}[grants]\nexec = [\"{OCF_NGINX}\"]\n{OCF_ENV}");
    let (code, json) = inspect_for_app("ocf", &granted);
    assert_eq!(code, Some(0), "{json}");
    let settings = json["app"]["settings"].as_array().unwrap();
    let find = |key: &str| settings.iter().find(|s| s["key"] == key).cloned();
    assert!(find("agent").is_some(), "the kit's own settings: {json}");
    assert!(
        find("configfile").is_some(),
        "the agent's parameters: {json}"
    );
    assert_eq!(find("httpd").unwrap()["default"], "/usr/sbin/httpd");
    assert!(find("status10url").is_some());
    let wants = json["wants"].as_array().unwrap();
    for name in [
        "OCF_RESKEY_*",
        "OCF_RESOURCE_*",
        "OCF_RA_VERSION_*",
        "OCF_CHECK_LEVEL",
    ] {
        assert!(
            wants
                .iter()
                .any(|w| w["grant"] == "env" && w["target"] == name),
            "kit inspect lists the env grant {name}: {json}"
        );
    }

    let (code, json) = inspect_for_app("ocf", agent);
    assert_eq!(code, Some(0));
    assert_eq!(
        json["app"]["error"],
        format!("kit fault: kit was denied: exec {OCF_NGINX}"),
        "meta-data needs the app's exec grant"
    );

    let (code, json) = inspect_for_app("legacy_0_1_0", "kit = \"legacy\"\n");
    assert_eq!(code, Some(0));
    assert_eq!(json["app"]["settings"], serde_json::Value::Null, "{json}");
}
