//! Recovery kit `process`: the app is up while its process runs.
//!
//! The process is found either by executable name (through the host, since
//! a kit cannot see `/proc`) or by a pidfile the app writes (read through
//! WASI, so its directory must be granted). The process found is reported
//! to medic (`host::watch_process`), which then notices its exit at once
//! instead of at the next check; by name only when exactly one process has
//! it, since medic watches one main process per app.
//!
//! A missing process or pidfile is `failed`: a restart starts the process
//! and writes the pidfile. Settings that do not say what to look for, and a
//! pidfile the kit cannot read for another reason, are `unknown`: no
//! restart changes them.

use std::io::ErrorKind;

use medic_kit::{
    CannotJudge, Capability, CheckResult, Context, Health, Kit, KitInfo, SettingDoc, export, host,
};

/// The kit; all state lives in the app's settings.
struct Process;

impl Kit for Process {
    fn describe() -> KitInfo {
        KitInfo {
            name: "process".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Checks that the app's process runs, found by name or by pidfile.".into(),
            settings: vec![
                SettingDoc::optional(
                    "name",
                    "Executable name as in /proc/PID/comm (the kernel keeps at most \
                     15 bytes); set exactly one of `name` and `pidfile`.",
                ),
                SettingDoc::optional(
                    "pidfile",
                    "Absolute path of a file holding the process id; its directory \
                     must be in `[grants] read`. Set exactly one of `name` and `pidfile`.",
                ),
            ],
            wants: vec![Capability::Read("directory of pidfile".into())],
        }
    }

    fn check(ctx: &Context) -> Health {
        medic_kit::verdict(probe(ctx))
    }
}

/// How the app's process is found.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    /// By executable name.
    Name(&'a str),
    /// By the pid in this file.
    Pidfile(&'a str),
}

impl<'a> Target<'a> {
    /// Reads the settings: exactly one of `name` and `pidfile`, not blank.
    fn read(ctx: &'a Context) -> Result<Self, CannotJudge> {
        match (ctx.setting("name"), ctx.setting("pidfile")) {
            (Some(_), None) => Ok(Self::Name(ctx.require("name")?)),
            (None, Some(_)) => Ok(Self::Pidfile(ctx.require("pidfile")?)),
            (Some(_), Some(_)) => Err(CannotJudge::new(
                "set only one of the settings `name` and `pidfile`",
            )),
            (None, None) => Err(CannotJudge::new(
                "missing setting: set either `name` or `pidfile`",
            )),
        }
    }
}

/// Finds the process the settings name.
fn probe(ctx: &Context) -> CheckResult {
    match Target::read(ctx)? {
        Target::Name(name) => by_name(name),
        Target::Pidfile(pidfile) => by_pidfile(pidfile),
    }
}

/// Healthy when at least one process has this executable name.
fn by_name(name: &str) -> CheckResult {
    match host::processes(name).as_slice() {
        [] => Err(Health::Failed(format!("no process named {name}"))),
        [only] => watched(*only),
        _ => Ok(Health::Healthy),
    }
}

/// Healthy when the pid written in `pidfile` belongs to a live process.
fn by_pidfile(pidfile: &str) -> CheckResult {
    let pid = read_pid(pidfile)?;
    if !host::pid_alive(pid) {
        return Err(Health::Failed(format!(
            "pid {pid} from {pidfile} is not running"
        )));
    }
    watched(pid)
}

/// The pid in `pidfile`. A missing file means the app is not running (it
/// removes its pidfile on exit, or never got to write it), and a file
/// without a pid is one a restart rewrites: both `failed`. Any other error
/// (permissions, a directory named as the pidfile) is `unknown`, since no
/// restart changes it.
fn read_pid(pidfile: &str) -> Result<u32, Health> {
    let text = match std::fs::read_to_string(pidfile) {
        Ok(text) => text,
        // Inside the sandbox a directory missing from `[grants] read` looks
        // the same, hence the hint.
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Health::Failed(format!(
                "cannot read {pidfile}: {e} (not running? is its directory in `[grants] read`?)"
            )));
        }
        Err(e) => return Err(Health::Unknown(format!("cannot read {pidfile}: {e}"))),
    };
    match text.trim().parse::<u32>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => Err(Health::Failed(format!(
            "{pidfile} does not hold a pid: {text:?}"
        ))),
    }
}

/// Healthy, with `pid` reported as the app's main process; failed when it
/// exited in the meantime.
fn watched(pid: u32) -> CheckResult {
    match host::watch_process(pid) {
        Ok(()) => Ok(Health::Healthy),
        Err(e) => Err(Health::Failed(format!(
            "process {pid} ended while checked: {e}"
        ))),
    }
}

export!(Process);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn target(ctx: &Context) -> Result<Target<'_>, Health> {
        Target::read(ctx).map_err(Health::from)
    }

    fn ctx(pairs: &[(&str, &str)]) -> Context {
        Context::with_settings("agent", pairs)
    }

    #[test]
    fn settings_name_one_target_or_cannot_judge() {
        assert_eq!(
            target(&ctx(&[("name", "agent")])),
            Ok(Target::Name("agent"))
        );
        assert_eq!(
            target(&ctx(&[("pidfile", "/run/a.pid")])),
            Ok(Target::Pidfile("/run/a.pid"))
        );
        medic_kit::testing::assert_unknown_for(
            &[
                &[],
                &[("name", "a"), ("pidfile", "/run/a.pid")],
                &[("name", "")],
                &[("pidfile", " ")],
            ],
            |c| target(c).map(|_| ()),
        );
    }

    #[test]
    fn pidfiles_tell_failed_from_unknown() {
        let dir = std::env::temp_dir().join(format!("kit-process-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.pid");
        let path = file.to_str().unwrap();

        std::fs::write(&file, "42\n").unwrap();
        assert_eq!(read_pid(path), Ok(42));
        for garbage in ["", "0", "-1", "pid"] {
            std::fs::write(&file, garbage).unwrap();
            let answer = read_pid(path);
            assert!(
                matches!(answer, Err(Health::Failed(_))),
                "{garbage:?}: {answer:?}"
            );
        }
        std::fs::remove_file(&file).unwrap();
        let gone = read_pid(path);
        assert!(matches!(gone, Err(Health::Failed(_))), "{gone:?}");

        let not_a_file = read_pid(dir.to_str().unwrap());
        assert!(
            matches!(not_a_file, Err(Health::Unknown(_))),
            "{not_a_file:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
