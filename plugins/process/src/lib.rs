//! Recovery kit `process`: the app is up while its process runs.
//!
//! The process is found either by executable name (through the host, since
//! a kit cannot see `/proc`) or by a pidfile the app writes (read through
//! WASI, so its directory must be granted). The process found is reported
//! to medic (`host::watch_process`), which then notices its exit at once
//! instead of at the next check; by name only when exactly one process has
//! it, since medic watches one main process per app.

use medic_kit::{Capability, Context, Health, Kit, KitInfo, SettingDoc, export, host};

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
        match (ctx.setting("name"), ctx.setting("pidfile")) {
            (Some(name), None) => by_name(name),
            (None, Some(pidfile)) => by_pidfile(pidfile),
            (Some(_), Some(_)) => {
                Health::Failed("set only one of the settings `name` and `pidfile`".into())
            }
            (None, None) => {
                Health::Failed("missing setting: set either `name` or `pidfile`".into())
            }
        }
    }
}

/// Healthy when at least one process has this executable name.
fn by_name(name: &str) -> Health {
    if name.is_empty() {
        return Health::Failed("setting `name` is empty".into());
    }
    match host::processes(name).as_slice() {
        [] => Health::Failed(format!("no process named {name}")),
        [only] => watched(*only),
        _ => Health::Healthy,
    }
}

/// Healthy when the pid written in `pidfile` belongs to a live process.
fn by_pidfile(pidfile: &str) -> Health {
    let text = match std::fs::read_to_string(pidfile) {
        Ok(text) => text,
        Err(e) => return Health::Failed(format!("cannot read {pidfile}: {e}")),
    };
    let pid = match text.trim().parse::<u32>() {
        Ok(pid) if pid > 0 => pid,
        _ => return Health::Failed(format!("{pidfile} does not hold a pid: {text:?}")),
    };
    if host::pid_alive(pid) {
        watched(pid)
    } else {
        Health::Failed(format!("pid {pid} from {pidfile} is not running"))
    }
}

/// Healthy, with `pid` reported as the app's main process; failed when it
/// exited in the meantime.
fn watched(pid: u32) -> Health {
    match host::watch_process(pid) {
        Ok(()) => Health::Healthy,
        Err(e) => Health::Failed(format!("process {pid} ended while checked: {e}")),
    }
}

export!(Process);
