//! Tests of loading and checking configuration files.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::*;

/// A config directory: `medic.toml`, `kits/http.wasm`, `apps.d/`.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new(main: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("kits")).unwrap();
        fs::write(dir.path().join("kits/http.wasm"), b"\0asm").unwrap();
        fs::create_dir(dir.path().join("apps.d")).unwrap();
        fs::write(dir.path().join("medic.toml"), main).unwrap();
        Self { dir }
    }

    /// A fixture whose medic.toml points at its own kits/ and apps.d/.
    fn standard() -> Self {
        Self::new("[daemon]\nplugins_dir = \"kits\"\napps_dir = \"apps.d\"\n")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn app(&self, name: &str, text: &str) -> &Self {
        fs::write(self.path(&format!("apps.d/{name}")), text).unwrap();
        self
    }

    fn load(&self) -> Result<Config, ConfigErrors> {
        load(&self.path("medic.toml"))
    }

    /// Loads and expects failure; the errors as displayed.
    fn errors(&self) -> Vec<String> {
        self.load()
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The display prefix of an error in app file `name`.
    fn at(&self, name: &str) -> String {
        self.path(&format!("apps.d/{name}")).display().to_string()
    }
}

fn single_app(config: Config) -> AppSpec {
    assert_eq!(config.apps.len(), 1);
    config.apps.into_iter().next().unwrap()
}

#[test]
fn full_valid_pair_of_files() {
    let fx = Fixture::new(
        r#"
[daemon]
plugins_dir = "kits"
apps_dir = "apps.d"
state_dir = "state"
kit_memory_mib = 32

[escalation]
backend = "dry-run"
max_resets = 3
reset_window = "2h"
min_uptime = "5m"
timeout = "10s"
attempts = 5
retry_backoff = "500ms"
"#,
    );
    fs::create_dir(fx.path("conf")).unwrap();
    let conf = fx.path("conf").display().to_string();
    fx.app(
        "nginx.toml",
        &format!(
            r#"
kit = "http"
interval = "5s"
timeout = "2s"
failures_before_action = 4
start = ["systemctl", "start", "nginx"]
stop = ["systemctl", "stop", "nginx"]
command_timeout = "45s"
pidfile = "run/nginx.pid"
start_grace = "30s"
stop_grace = "3s"
timeouts_before_failure = 0
kit_memory_mib = 128

[recovery]
local_attempts = 0
window = "20m"
backoff = "500ms"
then = "vm-reset"
max_flaps = 4
flap_window = "30m"

[settings]
url = "http://127.0.0.1/healthz"
port = 80
ratio = 0.5
tls = false

[grants]
read = ["{conf}"]
connect = ["127.0.0.1:80", "[::1]:8080", "localhost:443"]
exec = ["/usr/sbin/nginx"]
"#
        ),
    );
    let config = fx.load().unwrap();
    let strings = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    let expected = Config {
        source: fx.path("medic.toml"),
        daemon: DaemonSettings {
            plugins_dir: fx.path("kits"),
            apps_dir: fx.path("apps.d"),
            state_dir: fx.path("state"),
            kit_memory_mib: 32,
            metrics: None,
            socket: "/run/medic/medic.sock".into(),
            socket_group: None,
            alert_queue: 256,
            reload_on_change: true,
            trusted_keys: Vec::new(),
            require_signed: false,
            journal_keep: Duration::from_secs(90 * 24 * 3600),
            journal_max: 256 << 20,
            listen: None,
        },
        escalation: EscalationSettings {
            backend: Backend::DryRun,
            max_resets: 3,
            reset_window: Duration::from_secs(7200),
            min_uptime: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            attempts: 5,
            retry_backoff: Duration::from_millis(500),
        },
        alerts: Vec::new(),
        apps: vec![AppSpec {
            name: "nginx".into(),
            source: fx.path("apps.d/nginx.toml"),
            kit: "http".into(),
            kit_path: fx.path("kits/http.wasm"),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            failures_before_action: 4,
            timeouts_before_failure: 0,
            start: Some(strings(&["systemctl", "start", "nginx"])),
            stop: Some(strings(&["systemctl", "stop", "nginx"])),
            command_timeout: Duration::from_secs(45),
            updates: UpdateSpec::default(),
            pidfile: Some(fx.path("run/nginx.pid")),
            start_grace: Duration::from_secs(30),
            stop_grace: Duration::from_secs(3),
            kit_memory_mib: 128,
            recovery: RecoveryPolicy {
                local_attempts: 0,
                window: Duration::from_secs(1200),
                backoff: Duration::from_millis(500),
                then: Then::VmReset,
                max_flaps: 4,
                flap_window: Duration::from_secs(1800),
            },
            settings: vec![
                ("url".into(), "http://127.0.0.1/healthz".into()),
                ("port".into(), "80".into()),
                ("ratio".into(), "0.5".into()),
                ("tls".into(), "false".into()),
            ],
            grants: Grants {
                env: Vec::new(),
                read: vec![fx.path("conf")],
                connect: strings(&["127.0.0.1:80", "[::1]:8080", "localhost:443"]),
                exec: vec![PathBuf::from("/usr/sbin/nginx")],
            },
            tls: crate::config::TlsSettings::default(),
            secrets: Vec::new(),
            depends_on: Vec::new(),
        }],
    };
    assert_eq!(config, expected);
    assert_eq!(config.escalation.backend.name(), "dry-run");
    assert_eq!(config.apps[0].recovery.then.name(), "vm-reset");
}

#[test]
fn daemon_and_escalation_defaults() {
    let main = Source {
        origin: "medic.toml".into(),
        text: String::new(),
    };
    let config = load_from(main, Path::new("/etc/medic"), Vec::new()).unwrap();
    assert_eq!(
        config.daemon,
        DaemonSettings {
            plugins_dir: "/usr/lib/medic/kits".into(),
            apps_dir: "/etc/medic/apps.d".into(),
            state_dir: "/var/lib/medic".into(),
            kit_memory_mib: 64,
            metrics: None,
            socket: "/run/medic/medic.sock".into(),
            socket_group: None,
            alert_queue: 256,
            reload_on_change: true,
            trusted_keys: Vec::new(),
            require_signed: false,
            journal_keep: Duration::from_secs(90 * 24 * 3600),
            journal_max: 256 << 20,
            listen: None,
        }
    );
    assert_eq!(
        config.escalation,
        EscalationSettings {
            backend: Backend::DryRun,
            max_resets: 1,
            reset_window: Duration::from_secs(3600),
            min_uptime: Duration::from_secs(180),
            timeout: Duration::from_secs(30),
            attempts: 3,
            retry_backoff: Duration::from_secs(2),
        }
    );
    assert!(config.apps.is_empty());
}

#[test]
fn app_defaults() {
    let fx = Fixture::standard();
    fx.app("web.toml", "kit = \"http\"\n");
    let app = single_app(fx.load().unwrap());
    assert_eq!(app.interval, Duration::from_secs(10));
    assert_eq!(app.timeout, Duration::from_secs(5));
    assert_eq!(app.failures_before_action, 2);
    assert_eq!((app.start, app.stop, app.pidfile), (None, None, None));
    assert_eq!(app.command_timeout, Duration::from_secs(30));
    assert_eq!(app.kit_memory_mib, 64);
    assert_eq!(
        app.recovery,
        RecoveryPolicy {
            local_attempts: 3,
            window: Duration::from_secs(600),
            backoff: Duration::from_secs(1),
            then: Then::Alert,
            max_flaps: 5,
            flap_window: Duration::from_secs(3600),
        }
    );
    assert_eq!(app.start_grace, Duration::ZERO);
    assert_eq!(app.stop_grace, Duration::from_secs(10));
    assert_eq!(app.timeouts_before_failure, 2);
    assert!(app.settings.is_empty());
    assert_eq!(app.grants, Grants::default());
}

#[test]
fn unknown_keys_are_reported_at_the_key() {
    let fx = Fixture::standard();
    fx.app(
        "web.toml",
        "kit = \"http\"\nintervall = \"5s\"\n\n[recovery]\nwindow = \"5m\"\n  tries = 4\n",
    );
    let at = fx.at("web.toml");
    let errors = fx.errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "{at}:2:1: intervall: unknown key `intervall`; expected one of: kit, interval,"
        )),
        "{}",
        errors[0]
    );
    assert_eq!(
        errors[1],
        format!(
            "{at}:6:3: recovery.tries: unknown key `tries`; expected one of: local_attempts, window, backoff, then, max_flaps, flap_window"
        )
    );
}

#[test]
fn unknown_keys_in_main_file() {
    let fx = Fixture::new("[daemon]\napps_dir = \"apps.d\"\nplugin_dir = \"kits\"\n[escalaton]\n");
    let main = fx.path("medic.toml").display().to_string();
    let errors = fx.errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with(&format!(
        "{main}:3:1: daemon.plugin_dir: unknown key `plugin_dir`"
    )));
    assert!(errors[1].starts_with(&format!("{main}:4:2: escalaton: unknown key `escalaton`")));
}

#[test]
fn settings_accept_any_key() {
    let fx = Fixture::standard();
    fx.app(
        "web.toml",
        "kit = \"http\"\n[settings]\nwhatever = \"x\"\nanything_else = 1\n",
    );
    assert_eq!(single_app(fx.load().unwrap()).settings.len(), 2);
}

#[test]
fn wrong_types() {
    let fx = Fixture::standard();
    fx.app(
        "web.toml",
        "kit = \"http\"\ninterval = 5\nfailures_before_action = \"2\"\nrecovery = 3\nstart = \"nginx\"\n",
    );
    let at = fx.at("web.toml");
    assert_eq!(
        fx.errors(),
        [
            format!("{at}:2:12: interval: expected a string, found an integer"),
            format!("{at}:3:26: failures_before_action: expected an integer, found a string"),
            format!("{at}:4:12: recovery: expected a table, found an integer"),
            format!("{at}:5:9: start: expected an array, found a string"),
        ]
    );
}

#[test]
fn missing_kit_file() {
    let fx = Fixture::standard();
    fx.app("web.toml", "kit = \"ftp\"\n");
    assert_eq!(
        fx.errors(),
        [format!(
            "{}:1:7: kit: kit file {} not found",
            fx.at("web.toml"),
            fx.path("kits/ftp.wasm").display()
        )]
    );
}

#[test]
fn bad_kit_name() {
    let fx = Fixture::standard();
    fx.app("web.toml", "kit = \"Http\"\n");
    assert_eq!(
        fx.errors(),
        [format!(
            "{}:1:7: kit: kit name `Http` must match [a-z0-9_-]+",
            fx.at("web.toml")
        )]
    );
}

#[test]
fn missing_required_kit() {
    let fx = Fixture::standard();
    fx.app("web.toml", "\n\ninterval = \"5s\"\n");
    assert_eq!(
        fx.errors(),
        [format!(
            "{}:1:1: kit: required key is missing",
            fx.at("web.toml")
        )]
    );
}

#[test]
fn bad_duration() {
    let fx = Fixture::standard();
    fx.app(
        "web.toml",
        "kit = \"http\"\n[recovery]\nwindow = \"5 parsecs\"\n",
    );
    let humantime_error = humantime::parse_duration("5 parsecs").unwrap_err();
    assert_eq!(
        fx.errors(),
        [format!(
            "{}:3:10: recovery.window: invalid duration \"5 parsecs\": {humantime_error}",
            fx.at("web.toml")
        )]
    );
}

#[test]
fn durations_below_minimum() {
    let fx = Fixture::standard();
    fx.app(
        "web.toml",
        "kit = \"http\"\ninterval = \"5ms\"\ntimeout = \"0s\"\n",
    );
    let errors = fx.errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains(":2:12: interval: duration \"5ms\" is too short; the minimum is 10ms"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains(":3:11: timeout: duration \"0s\" is too short; the minimum is 1ms"),
        "{errors:?}"
    );
}

#[test]
fn sub_second_interval() {
    let fx = Fixture::standard();
    fx.app(
        "web.toml",
        "kit = \"http\"\ninterval = \"250ms\"\ntimeout = \"1h 30m\"\n",
    );
    let app = single_app(fx.load().unwrap());
    assert_eq!(app.interval, Duration::from_millis(250));
    assert_eq!(app.timeout, Duration::from_secs(5400));
}

#[test]
fn bad_connect_address() {
    let fx = Fixture::standard();
    fx.app("web.toml", "kit = \"http\"\n[grants]\nconnect = [\"127.0.0.1:80\", \"localhost\", \":80\", \"::1:80\"]\n");
    let at = fx.at("web.toml");
    assert_eq!(
        fx.errors(),
        [
            format!(
                "{at}:3:28: grants.connect[1]: invalid address \"localhost\": expected host:port"
            ),
            format!(
                "{at}:3:41: grants.connect[2]: invalid address \":80\": host must not be empty"
            ),
            format!(
                "{at}:3:48: grants.connect[3]: invalid address \"::1:80\": IPv6 addresses must be written in brackets, e.g. [::1]:80"
            ),
        ]
    );
}

#[test]
fn address_forms() {
    for good in [
        "127.0.0.1:80",
        "[::1]:80",
        "localhost:80",
        "db-1.internal:5432",
        "h:65535",
    ] {
        assert_eq!(app_file::address(good), Ok(good.to_owned()));
    }
    for bad in [
        "h:0",
        "h:65536",
        "h:",
        "h:+80",
        "[::1:80",
        "[nope]:80",
        "a b:80",
        "-a:80",
        "h:x",
    ] {
        assert!(app_file::address(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn grant_paths() {
    let fx = Fixture::standard();
    fs::write(fx.path("file"), "").unwrap();
    let file = fx.path("file").display().to_string();
    let missing = fx.path("missing").display().to_string();
    fx.app(
        "web.toml",
        &format!("kit = \"http\"\n[grants]\nread = [\"etc/nginx\", \"{file}\", \"{missing}\"]\nexec = [\"nginx\"]\n"),
    );
    let at = fx.at("web.toml");
    let errors = fx.errors();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert_eq!(
        errors[0],
        format!("{at}:3:9: grants.read[0]: path etc/nginx must be absolute")
    );
    assert!(
        errors[1].ends_with(&format!("grants.read[1]: {file} is not a directory")),
        "{errors:?}"
    );
    assert!(
        errors[2].ends_with(&format!("grants.read[2]: directory {missing} not found")),
        "{errors:?}"
    );
    assert_eq!(
        errors[3],
        format!("{at}:4:9: grants.exec[0]: path nginx must be absolute")
    );
}

#[test]
fn errors_from_several_app_files_together() {
    let fx = Fixture::standard();
    fx.app(
        "a.toml",
        "kit = \"http\"\ninterval = \"soon\"\ntimeout = 3\n[recovery]\nthen = \"panic\"\n",
    );
    fx.app(
        "b.toml",
        "interval = \"1s\"\nbogus = true\n[grants]\nexec = [\"bin/x\"]\n",
    );
    fx.app("c.toml", "kit = \"http\"\n");
    let errors = fx.load().unwrap_err().0;
    assert_eq!(errors.len(), 6, "{errors:#?}");
    let a = fx.path("apps.d/a.toml");
    let b = fx.path("apps.d/b.toml");
    let located: Vec<_> = errors
        .iter()
        .map(|e| (e.file.clone(), e.line, e.col, e.field.as_str()))
        .collect();
    assert_eq!(
        located,
        [
            (a.clone(), 2, 12, "interval"),
            (a.clone(), 3, 11, "timeout"),
            (a, 5, 8, "recovery.then"),
            (b.clone(), 1, 1, "kit"),
            (b.clone(), 2, 1, "bogus"),
            (b, 4, 9, "grants.exec[0]"),
        ]
    );
    assert_eq!(
        errors[2].message,
        "unknown action `panic`; expected one of: vm-reset, alert, none"
    );
}

#[test]
fn syntax_error() {
    let fx = Fixture::standard();
    fx.app("web.toml", "kit = \"http\"\ninterval = 5s\n");
    fx.app("z.toml", "kit = 1\n");
    let errors = fx.load().unwrap_err().0;
    assert_eq!(errors.len(), 2, "{errors:#?}");
    let syntax = &errors[0];
    assert_eq!(
        (syntax.line, syntax.col, syntax.field.as_str()),
        (2, 12, "(syntax)")
    );
    assert!(
        !syntax.message.is_empty() && !syntax.message.contains('\n'),
        "{syntax:?}"
    );
    assert_eq!(errors[1].field, "kit");
}

#[test]
fn syntax_error_in_main_file_still_checks_apps() {
    let main = Source {
        origin: "medic.toml".into(),
        text: "[daemon\n".into(),
    };
    let apps = vec![Source {
        origin: "apps.d/web.toml".into(),
        text: "kit = \"http\"\nbogus = 1\n".into(),
    }];
    let errors = load_from(main, Path::new("/nonexistent"), apps)
        .unwrap_err()
        .0;
    let fields: Vec<_> = errors
        .iter()
        .map(|e| (e.file.clone(), e.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            (PathBuf::from("medic.toml"), "(syntax)"),
            (PathBuf::from("apps.d/web.toml"), "bogus")
        ]
    );
    assert_eq!((errors[0].line, errors[0].col), (1, 8));
}

#[test]
fn settings_are_text_in_written_order() {
    let fx = Fixture::standard();
    fx.app(
        "web.toml",
        "kit = \"http\"\n[settings]\nzeta = 80\nalpha = true\nmid = \"s\"\nhex = 0x1F\nbig = -1_000\nf = 2.5\n",
    );
    let app = single_app(fx.load().unwrap());
    let expected: Vec<(String, String)> = [
        ("zeta", "80"),
        ("alpha", "true"),
        ("mid", "s"),
        ("hex", "31"),
        ("big", "-1000"),
        ("f", "2.5"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(app.settings, expected);
}

#[test]
fn settings_reject_arrays_and_tables() {
    let fx = Fixture::standard();
    fx.app(
        "web.toml",
        "kit = \"http\"\n[settings]\nlist = [1]\n[settings.sub]\nx = 1\n",
    );
    let at = fx.at("web.toml");
    assert_eq!(
        fx.errors(),
        [
            format!(
                "{at}:3:8: settings.list: expected a string, number or boolean, found an array"
            ),
            format!("{at}:4:1: settings.sub: expected a string, number or boolean, found a table"),
        ]
    );
}

#[test]
fn app_name_comes_from_file_stem() {
    let fx = Fixture::standard();
    fx.app("my-app_1.v2.toml", "kit = \"http\"\n");
    fx.app("README.md", "not an app");
    let app = single_app(fx.load().unwrap());
    assert_eq!(app.name, "my-app_1.v2");
    assert_eq!(app.source, fx.path("apps.d/my-app_1.v2.toml"));
}

#[test]
fn apps_are_sorted_by_name() {
    let fx = Fixture::standard();
    fx.app("b.toml", "kit = \"http\"\n")
        .app("a.toml", "kit = \"http\"\n");
    let names: Vec<_> = fx
        .load()
        .unwrap()
        .apps
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn bad_app_name() {
    let fx = Fixture::standard();
    fx.app("my app.toml", "kit = \"http\"\n");
    assert_eq!(
        fx.errors(),
        [format!(
            "{}:1:1: (file): app name `my app` (the file name without .toml) must match [A-Za-z0-9_.-]+",
            fx.at("my app.toml")
        )]
    );
}

#[test]
fn duplicate_app_names_in_load_from() {
    let main = Source {
        origin: "medic.toml".into(),
        text: "[daemon]\nplugins_dir = \"/nonexistent\"\n".into(),
    };
    let app = |origin: &str| Source {
        origin: origin.into(),
        text: "interval = \"1s\"\n".into(),
    };
    // Both lack `kit`, so only that is reported; duplicates are judged on valid apps.
    let errors = load_from(
        main.clone(),
        Path::new("/"),
        vec![app("x/a.toml"), app("y/a.toml")],
    )
    .unwrap_err();
    assert_eq!(errors.0.len(), 2);

    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("http.wasm"), "").unwrap();
    let main = Source {
        origin: "medic.toml".into(),
        text: format!("daemon.plugins_dir = {:?}\n", dir.path()),
    };
    let app = |origin: &str| Source {
        origin: origin.into(),
        text: "kit = \"http\"\n".into(),
    };
    let errors =
        load_from(main, Path::new("/"), vec![app("x/a.toml"), app("y/a.toml")]).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "y/a.toml:1:1: (file): app `a` is already defined in x/a.toml"
    );
}

#[test]
fn load_from_resolves_against_base_dir() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("kits")).unwrap();
    fs::write(dir.path().join("kits/http.wasm"), "").unwrap();
    let main = Source {
        origin: "<demo>/medic.toml".into(),
        text: "[daemon]\nplugins_dir = \"kits\"\n".into(),
    };
    let apps = vec![Source {
        origin: "<demo>/demo.toml".into(),
        text: "kit = \"http\"\npidfile = \"demo.pid\"\n".into(),
    }];
    let config = load_from(main, dir.path(), apps).unwrap();
    let app = single_app(config);
    assert_eq!(app.name, "demo");
    assert_eq!(app.kit_path, dir.path().join("kits/http.wasm"));
    assert_eq!(app.pidfile, Some(dir.path().join("demo.pid")));
}

#[test]
fn backend_errors() {
    let check = |backend: &str| {
        let text = format!("[escalation]\nbackend = \"{backend}\"\n");
        let main = Source {
            origin: "medic.toml".into(),
            text,
        };
        load_from(main, Path::new("/"), Vec::new())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        check("libvirt"),
        "medic.toml:1:1: escalation.libvirt.uri: required key is missing\n\
         medic.toml:1:1: escalation.libvirt.domain: required key is missing"
    );
    assert_eq!(
        check("qmp"),
        "medic.toml:2:11: escalation.qmp: backend `qmp` needs [escalation.qmp] with `socket` or `address`"
    );
    assert_eq!(
        check("x"),
        "medic.toml:2:11: escalation.backend: unknown backend `x`; expected one of: dry-run, qmp, libvirt, vsphere, fence-agent"
    );
}

#[test]
fn integer_bounds() {
    let main = Source {
        origin: "medic.toml".into(),
        text: "[daemon]\nkit_memory_mib = 0\n[escalation]\nmax_resets = -1\n".into(),
    };
    assert_eq!(
        load_from(main, Path::new("/"), Vec::new())
            .unwrap_err()
            .to_string(),
        "medic.toml:2:18: daemon.kit_memory_mib: must be a whole number between 1 and 4096\n\
         medic.toml:4:14: escalation.max_resets: must be a whole number of at least 0"
    );
    let fx = Fixture::standard();
    fx.app(
        "web.toml",
        "kit = \"http\"\nkit_memory_mib = 4097\nfailures_before_action = 0\n",
    );
    assert_eq!(fx.errors().len(), 2);
}

#[test]
fn a_kit_wait_that_cannot_end_before_the_deadline_is_an_error_at_its_line() {
    let fx = Fixture::standard();
    fx.app(
        "web.toml",
        "kit = \"http\"\ntimeout = \"1s\"\n[settings]\ntimeout_ms = 2000\nconnect_timeout_ms = \"900\"\nread_timeout_ms = \"901\"\nmode_ms = 5000\nlabel_timeout_ms = \"soon\"\n",
    );
    let at = fx.at("web.toml");
    assert_eq!(
        fx.errors(),
        vec![
            format!(
                "{at}:4:1: settings.timeout_ms: 2000 ms cannot finish within the app's timeout of 1s \
                 (a kit's waits end 100ms before it): set it to at most 900 or raise `timeout`"
            ),
            format!(
                "{at}:6:1: settings.read_timeout_ms: 901 ms cannot finish within the app's timeout of 1s \
                 (a kit's waits end 100ms before it): set it to at most 900 or raise `timeout`"
            ),
        ]
    );
}

#[test]
fn durations_past_ten_years_are_typos() {
    let fx = Fixture::standard();
    fx.app(
        "web.toml",
        "kit = \"http\"\ninterval = \"10000y\"\nstop_grace = \"300000000000y\"\n",
    );
    let at = fx.at("web.toml");
    let errors = fx.errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(
        errors[0],
        format!("{at}:2:12: interval: duration \"10000y\" is too long; the maximum is 10years")
    );
    assert!(
        errors[1].starts_with(&format!("{at}:3:14: stop_grace: ")),
        "{errors:?}"
    );
}

#[test]
fn kit_memory_override() {
    let fx = Fixture::new(
        "[daemon]\nplugins_dir = \"kits\"\napps_dir = \"apps.d\"\nkit_memory_mib = 16\n",
    );
    fx.app("a.toml", "kit = \"http\"\nkit_memory_mib = 4096\n")
        .app("b.toml", "kit = \"http\"\n");
    let config = fx.load().unwrap();
    assert_eq!(config.daemon.kit_memory_mib, 16);
    assert_eq!(config.apps[0].kit_memory_mib, 4096);
    assert_eq!(config.apps[1].kit_memory_mib, 16);
}

#[test]
fn commands() {
    let fx = Fixture::standard();
    fx.app(
        "web.toml",
        "kit = \"http\"\nstart = []\nstop = [\"kill\", \"\"]\n",
    );
    let at = fx.at("web.toml");
    assert_eq!(
        fx.errors(),
        [
            format!("{at}:2:9: start: command must not be empty"),
            format!("{at}:3:17: stop[1]: must not be empty"),
        ]
    );
    let fx = Fixture::standard();
    fx.app(
        "web.toml",
        "kit = \"http\"\nstart = [\"nginx\", \"-g\", \"daemon off;\"]\n",
    );
    assert_eq!(
        single_app(fx.load().unwrap()).start,
        Some(vec!["nginx".into(), "-g".into(), "daemon off;".into()])
    );
}

#[test]
fn missing_apps_dir() {
    let fx = Fixture::new("[daemon]\nplugins_dir = \"kits\"\napps_dir = \"nope\"\n");
    let main = fx.path("medic.toml").display().to_string();
    assert_eq!(
        fx.errors(),
        [format!(
            "{main}:3:12: daemon.apps_dir: directory {} not found",
            fx.path("nope").display()
        )]
    );
}

#[test]
fn unreadable_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("medic.toml");
    let errors = load(&path).unwrap_err().0;
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].line, errors[0].col, errors[0].field.as_str()),
        (1, 1, "(file)")
    );
    assert!(
        errors[0].message.starts_with("cannot read file: "),
        "{errors:?}"
    );
}

#[test]
fn errors_display_one_per_line() {
    let error = |line| ConfigError {
        file: "f.toml".into(),
        line,
        col: 2,
        field: "x.y".into(),
        message: "bad".into(),
    };
    assert_eq!(
        ConfigErrors(vec![error(1), error(7)]).to_string(),
        "f.toml:1:2: x.y: bad\nf.toml:7:2: x.y: bad"
    );
}

#[test]
fn line_and_column_count_characters() {
    let text = "a = \"é\"\nbé = 1\n";
    assert_eq!(error::line_col(text, 0), (1, 1));
    assert_eq!(error::line_col(text, text.find("= 1").unwrap()), (2, 4));
    assert_eq!(error::line_col(text, text.len()), (3, 1));
    assert_eq!(error::line_col(text, 999), (3, 1));
}

#[test]
fn types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Config>();
    check::<ConfigError>();
    check::<ConfigErrors>();
    check::<Source>();
}

#[test]
fn qmp_backend_by_socket_or_address() {
    let load = |table: &str| {
        let text = format!("[escalation]\nbackend = \"qmp\"\n[escalation.qmp]\n{table}\n");
        let main = Source {
            origin: "medic.toml".into(),
            text,
        };
        load_from(main, Path::new("/etc/medic"), Vec::new())
    };
    assert_eq!(
        load("socket = \"vm.qmp\"").unwrap().escalation.backend,
        Backend::Qmp(QmpTarget::Socket("/etc/medic/vm.qmp".into()))
    );
    assert_eq!(
        load("address = \"127.0.0.1:4444\"")
            .unwrap()
            .escalation
            .backend,
        Backend::Qmp(QmpTarget::Address("127.0.0.1:4444".into()))
    );
    assert_eq!(
        load("socket = \"a\"\naddress = \"127.0.0.1:4444\"")
            .unwrap_err()
            .to_string(),
        "medic.toml:4:10: escalation.qmp: set either `socket` or `address`, not both"
    );
    assert_eq!(
        load("port = 4444").unwrap_err().to_string(),
        "medic.toml:2:11: escalation.qmp: backend `qmp` needs [escalation.qmp] with `socket` or `address`\n\
         medic.toml:4:1: escalation.qmp.port: unknown key `port`; expected one of: socket, address"
    );
}

/// Loads `[escalation]` with `body` (relative paths against `base`).
#[test]
fn a_plain_http_vsphere_url_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let errors = escalation_in(
        dir.path(),
        "backend = \"vsphere\"\n[escalation.vsphere]\nurl = \"http://vc.example/sdk\"\ncredentials = \"env:VC\"\nvm = \"auto\"",
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains("medic.toml:4:7: escalation.vsphere.url: url \"http://vc.example/sdk\" is plain http: the vSphere password would cross the network in clear text"),
        "{errors}"
    );
}

fn escalation_in(base: &Path, body: &str) -> Result<Config, ConfigErrors> {
    let main = Source {
        origin: "medic.toml".into(),
        text: format!("[escalation]\n{body}\n"),
    };
    load_from(main, base, Vec::new())
}

/// A credentials file with `mode` in `dir`.
fn credentials_file(dir: &Path, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("hv.cred");
    fs::write(&path, "username = \"medic\"\npassword = \"x\"\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn libvirt_backend() {
    let config = escalation_in(
        Path::new("/"),
        "backend = \"libvirt\"\n[escalation.libvirt]\nuri = \"test:///default\"\ndomain = \"test\"",
    )
    .unwrap();
    assert_eq!(
        config.escalation.backend,
        Backend::Libvirt(LibvirtSettings {
            uri: "test:///default".into(),
            domain: "test".into()
        })
    );
}

#[test]
fn vsphere_backend_and_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    credentials_file(dir.path(), 0o600);
    fs::write(dir.path().join("ca.pem"), "").unwrap();
    let config = escalation_in(
        dir.path(),
        "backend = \"vsphere\"\n[escalation.vsphere]\nurl = \"https://vc.example/sdk\"\napi = \"rest\"\n\
         vm = \"uuid:ABCD-12\"\ncredentials = \"hv.cred\"\nca_file = \"ca.pem\"",
    )
    .unwrap();
    assert_eq!(
        config.escalation.backend,
        Backend::Vsphere(VsphereSettings {
            url: "https://vc.example/sdk".into(),
            api: VsphereApi::Rest,
            vm: VmSelector::Uuid("abcd-12".into()),
            credentials: crate::credentials::Source::File(dir.path().join("hv.cred")),
            ca_file: Some(dir.path().join("ca.pem")),
            insecure: false,
            dmi_uuid_file: "/sys/class/dmi/id/product_uuid".into(),
        })
    );
    let errors = escalation_in(
        dir.path(),
        "backend = \"vsphere\"\n[escalation.vsphere]\nurl = \"vc.example\"\napi = \"xml\"\nvm = \"name:web\"\n\
         ca_file = \"missing.pem\"\ninsecure = \"yes\"",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        errors,
        format!(
            "medic.toml:1:1: escalation.vsphere.credentials: required key is missing\n\
         medic.toml:4:7: escalation.vsphere.url: invalid url \"vc.example\": expected https://HOST[:PORT]/sdk\n\
         medic.toml:5:7: escalation.vsphere.api: unknown api `xml`; expected soap or rest\n\
         medic.toml:6:6: escalation.vsphere.vm: invalid vm \"name:web\": expected auto, uuid:UUID, moref:vm-N or path:/DC/vm/NAME\n\
         medic.toml:7:11: escalation.vsphere.ca_file: file {}/missing.pem not found\n\
         medic.toml:8:12: escalation.vsphere.insecure: expected a boolean, found a string",
            dir.path().display()
        )
    );
}

#[test]
fn an_unsafe_credentials_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = credentials_file(dir.path(), 0o644);
    let error = escalation_in(
        dir.path(),
        "backend = \"fence-agent\"\n[escalation.fence-agent]\nagent = \"/usr/bin/true\"\ncredentials = \"hv.cred\"",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        format!(
            "medic.toml:5:15: escalation.fence-agent.credentials: credentials file {}: mode 0644 lets group or others access it; \
             make it `chmod 600` and owned by root or medic's user",
            path.display()
        )
    );
}

#[test]
fn fence_agent_backend_and_its_errors() {
    let config = escalation_in(
        Path::new("/"),
        "backend = \"fence-agent\"\n[escalation.fence-agent]\nagent = \"/usr/bin/true\"\n\
         options = { ip = \"vc.example\", plug = \"web-01\", ssl_insecure = 0 }",
    )
    .unwrap();
    assert_eq!(
        config.escalation.backend,
        Backend::FenceAgent(FenceAgentSettings {
            agent: "/usr/bin/true".into(),
            credentials: None,
            options: vec![
                ("ip".into(), "vc.example".into()),
                ("plug".into(), "web-01".into()),
                ("ssl_insecure".into(), "0".into()),
            ],
        })
    );
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("agent"), "#!/bin/sh\n").unwrap();
    let errors = escalation_in(
        dir.path(),
        "backend = \"fence-agent\"\n[escalation.fence-agent]\nagent = \"agent\"\n\
         options = { password = \"x\" }",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        errors,
        format!(
            "medic.toml:4:9: escalation.fence-agent.agent: {}/agent is not an executable file\n\
         medic.toml:5:13: escalation.fence-agent.options.password: medic sets this itself: the action per operation, \
         username and password from `credentials`",
            dir.path().display()
        )
    );
}

#[test]
fn alert_sinks_and_their_errors() {
    let main = Source {
        origin: "medic.toml".into(),
        text: "[[alert]]\nkind = \"webhook\"\nurl = \"https://hooks.example/m\"\nevents = [\"vm_reset\", \"alert\"]\n\
               [[alert]]\nname = \"pager\"\nkind = \"exec\"\ncommand = [\"/usr/bin/logger\"]\ntimeout = \"2s\"\nretries = 0\n"
            .into(),
    };
    let config = load_from(main, Path::new("/"), Vec::new()).unwrap();
    assert_eq!(
        config.alerts,
        vec![
            crate::alerts::SinkSettings {
                name: "alert-1".into(),
                kinds: vec![crate::journal::Kind::VmReset, crate::journal::Kind::Alert],
                target: crate::alerts::SinkTarget::Webhook {
                    url: "https://hooks.example/m".into()
                },
                timeout: Duration::from_secs(5),
                retries: 3,
            },
            crate::alerts::SinkSettings {
                name: "pager".into(),
                kinds: Vec::new(),
                target: crate::alerts::SinkTarget::Exec {
                    argv: vec!["/usr/bin/logger".into()]
                },
                timeout: Duration::from_secs(2),
                retries: 0,
            },
        ]
    );
    let main = Source {
        origin: "medic.toml".into(),
        text: "[[alert]]\nkind = \"webhook\"\nevents = [\"vm_rest\"]\n[[alert]]\nkind = \"sms\"\n"
            .into(),
    };
    assert_eq!(
        load_from(main, Path::new("/"), Vec::new())
            .unwrap_err()
            .to_string(),
        "medic.toml:1:1: alert[0].url: a webhook needs `url`\n\
         medic.toml:3:11: alert[0].events[0]: unknown event kind `vm_rest`\n\
         medic.toml:5:8: alert[1].kind: unknown kind `sms`; expected webhook or exec"
    );
}

#[test]
fn dependencies_must_exist_and_not_cycle() {
    let fx = Fixture::standard();
    fx.app("a.toml", "kit = \"http\"\ndepends_on = [\"b\"]\n");
    fx.app("b.toml", "kit = \"http\"\ndepends_on = [\"c\"]\n");
    fx.app("c.toml", "kit = \"http\"\n");
    fx.app("d.toml", "kit = \"http\"\n\ndepends_on = [\"nope\"]\n");
    assert_eq!(
        fx.errors(),
        vec![format!(
            "{}:3:14: depends_on: no app named `nope`",
            fx.path("apps.d/d.toml").display()
        )]
    );
    fs::remove_file(fx.path("apps.d/d.toml")).unwrap();
    let config = fx.load().unwrap();
    let order: Vec<_> = start_order(&config.apps)
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(order, ["c", "b", "a"]);

    fx.app("c.toml", "kit = \"http\"\ndepends_on = [\"a\"]\n");
    let errors = fx.errors();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].ends_with("a.toml:2:14: depends_on: dependency cycle: a → b → c → a"),
        "{errors:?}"
    );
}

/// No app file, however broken, panics the reader: each gives a config or
/// errors located in that file.
mod any_input {
    use super::*;
    use proptest::prelude::*;

    /// Keys medic reads, a few it does not, and values of every TOML type,
    /// so the walk reaches deep into the reader instead of stopping at a
    /// syntax error.
    fn line() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "kit",
            "interval",
            "timeout",
            "stop_grace",
            "start",
            "stop",
            "pidfile",
            "failures_before_action",
            "timeouts_before_failure",
            "depends_on",
            "kit_memory_mib",
            "[recovery]",
            "[settings]",
            "[grants]",
            "window",
            "then",
            "read",
            "connect",
            "exec",
            "env",
            "timeout_ms",
            "zzz",
        ]);
        let value = prop_oneof![
            "\\PC{0,20}".prop_map(|s| format!("{s:?}")),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| f.to_string()),
            Just("true".to_owned()),
            Just("[\"/bin/true\", 3, []]".to_owned()),
            Just("{ a = 1 }".to_owned()),
            "[0-9]{1,25}(ns|ms|s|m|h|d|y|years)".prop_map(|d| format!("{d:?}")),
        ];
        (key, value).prop_map(|(key, value)| {
            if key.starts_with('[') {
                key.to_owned()
            } else {
                format!("{key} = {value}")
            }
        })
    }

    fn loads_or_locates(text: &str) {
        let fx = Fixture::standard();
        fx.app("web.toml", text);
        if let Err(errors) = fx.load() {
            for error in errors.0 {
                assert!(error.line >= 1 && error.col >= 1, "{error}");
                assert!(!error.message.is_empty(), "{error}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_text(text in "\\PC{0,300}") {
            loads_or_locates(&text);
        }

        #[test]
        fn arbitrary_keys_and_values(lines in prop::collection::vec(line(), 0..12)) {
            loads_or_locates(&format!("kit = \"http\"\n{}", lines.join("\n")));
        }
    }
}

/// A fixture with `ca.pem` and `agent.pem` (PEM certificates) beside
/// medic.toml, whose `[daemon]` has `lines` after its directories.
fn tls_fixture(lines: &str) -> Fixture {
    let fx = Fixture::new(&format!(
        "[daemon]\nplugins_dir = \"kits\"\napps_dir = \"apps.d\"\n{lines}"
    ));
    for file in ["ca.pem", "agent.pem"] {
        let certified = rcgen::generate_simple_self_signed(vec!["agent".to_owned()]).unwrap();
        fs::write(fx.path(file), certified.cert.pem()).unwrap();
    }
    fx
}

#[test]
fn listen_serves_the_api_with_mutual_tls() {
    let fx = tls_fixture(
        "listen = \"127.0.0.11:8443\"\ntls_cert = \"agent.pem\"\ntls_key = \"agent.key\"\n\
         client_ca = \"ca.pem\"\nclients = [\"controller\", \"web-admin\"]\n",
    );
    let config = fx.load().unwrap();
    assert_eq!(
        config.daemon.listen,
        Some(TlsListen {
            addr: "127.0.0.11:8443".parse().unwrap(),
            cert: fx.path("agent.pem"),
            key: fx.path("agent.key"),
            client_ca: fx.path("ca.pem"),
            clients: vec!["controller".to_owned(), "web-admin".to_owned()],
        }),
        "paths relative to medic.toml; the key is read by the daemon, not here"
    );
}

#[test]
fn listen_without_what_mutual_tls_needs_is_an_error_at_listen() {
    let fx = tls_fixture("listen = \"[::]:8443\"\nclients = []\n");
    let main = fx.path("medic.toml").display().to_string();
    assert_eq!(
        fx.errors(),
        [format!(
            "{main}:4:10: daemon.listen: listen serves the admin API with mutual TLS only; it needs \
             tls_cert (the agent's certificate), tls_key (its private key), \
             client_ca (the CA of the client certificates), \
             clients (the client certificate names let in, at least one)"
        )]
    );
    let fx = tls_fixture(
        "listen = \"0.0.0.0:8443\"\ntls_cert = \"agent.pem\"\ntls_key = \"agent.key\"\n\
         clients = [\"controller\"]\n",
    );
    let main = fx.path("medic.toml").display().to_string();
    let errors = fx.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("{main}:4:10: daemon.listen: "))
            && errors[0].ends_with("it needs client_ca (the CA of the client certificates)"),
        "{errors:?}"
    );
}

#[test]
fn listen_keys_are_checked_at_their_line() {
    let fx = tls_fixture(
        "listen = \"localhost:8443\"\ntls_cert = \"medic.toml\"\ntls_key = \"\"\n\
         client_ca = \"nope.pem\"\nclients = [\"controller\", \"\"]\nclient_cert = \"x\"\n",
    );
    let main = fx.path("medic.toml").display().to_string();
    let errors = fx.errors();
    assert_eq!(errors.len(), 6, "{errors:?}");
    let expected = [
        "4:10: daemon.listen: \"localhost:8443\" is not an IP address and port",
        "5:12: daemon.tls_cert: ",
        "6:11: daemon.tls_key: path must not be empty",
        "7:13: daemon.client_ca: ",
        "8:26: daemon.clients[1]: must not be empty",
        "9:1: daemon.client_cert: unknown key `client_cert`; expected one of: ",
    ];
    for (error, expected) in errors.iter().zip(expected) {
        assert!(
            error.starts_with(&format!("{main}:{expected}")),
            "{error} should start with {expected}"
        );
    }
    assert!(errors[1].contains("no PEM certificate"), "{}", errors[1]);
    assert!(errors[3].contains("nope.pem"), "{}", errors[3]);
    assert!(
        errors[5].contains("listen, tls_cert, tls_key, client_ca, clients"),
        "{}",
        errors[5]
    );
    let fx = tls_fixture("listen = \"127.0.0.1:0\"\n");
    assert!(fx.errors()[0].contains("port 0"), "{:?}", fx.errors());
}
