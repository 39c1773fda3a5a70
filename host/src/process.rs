//! What medic needs to know about processes on this machine, read from
//! `/proc`: used by the `host.processes`/`pid-alive`/`watch-process` kit
//! imports and by the supervisor's crash detection.

use std::os::fd::OwnedFd;

use rustix::process::{Pid, PidfdFlags, pidfd_open};

/// One live process pinned by a pidfd: whatever later happens to its pid,
/// the fd refers to this process and becomes readable when it exits.
#[derive(Debug)]
pub struct PinnedProcess {
    pid: u32,
    fd: OwnedFd,
}

impl PinnedProcess {
    /// Pins the process that has `pid` now; `None` when no live process
    /// has it (a zombie counts as gone).
    pub fn open(pid: u32) -> Option<Self> {
        let fd = pidfd_open(
            Pid::from_raw(i32::try_from(pid).ok()?)?,
            PidfdFlags::NONBLOCK,
        )
        .ok()?;
        // Checked after opening: from here on the fd pins the process.
        is_alive(pid).then_some(Self { pid, fd })
    }

    /// The pinned process's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The pidfd, for waiting on the exit.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// Pids of processes whose `/proc/PID/comm` equals `name`. `comm` is what
/// `ps -o comm` and `pgrep` match by default; it is cut at 15 bytes, so a
/// longer `name` is compared on its first 15 bytes.
pub fn pids_by_name(name: &str) -> Vec<u32> {
    let wanted = name.as_bytes().get(..15).unwrap_or(name.as_bytes());
    let mut pids: Vec<u32> = all_pids()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.strip_suffix(b"\n").unwrap_or(&comm) == wanted)
        })
        .filter(|pid| is_alive(*pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether any live process (zombies count as gone) is in process group
/// `pgid`.
pub fn group_alive(pgid: u32) -> bool {
    group_states(pgid).iter().any(|state| running(state))
}

/// The `/proc/PID/stat` state (`R`, `S`, `T`, `Z`...) of every process in
/// process group `pgid`.
pub(crate) fn group_states(pgid: u32) -> Vec<String> {
    let pgid = pgid.to_string();
    all_pids()
        .filter_map(|pid| {
            let fields = stat_fields(pid)?;
            // State first, then ppid, then the process group.
            (fields.get(2) == Some(&pgid)).then(|| fields.first().cloned())?
        })
        .collect()
}

/// Every pid in `/proc` now.
fn all_pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
}

/// Whether `pid` names a live process. A zombie (exited, not yet reaped)
/// counts as gone: the application it was is no longer running.
pub fn is_alive(pid: u32) -> bool {
    stat_fields(pid)
        .and_then(|fields| fields.first().cloned())
        .is_some_and(|state| running(&state))
}

/// Whether a `/proc/PID/stat` state is a process that still runs: not a
/// zombie (`Z`) and not dead (`X`).
fn running(state: &str) -> bool {
    state != "Z" && state != "X"
}

/// When `pid` started, as wall-clock time (to the clock tick), so a pid
/// that was reused by a later process can be told from the one a pidfile
/// named.
pub fn started_at(pid: u32) -> Option<std::time::SystemTime> {
    // Field 22 of /proc/PID/stat: start time in clock ticks after boot.
    let ticks: u64 = stat_fields(pid)?.get(19)?.parse().ok()?;
    let boot_secs: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())?;
    let per_second = rustix::param::clock_ticks_per_second();
    let after_boot = std::time::Duration::from_secs_f64(ticks as f64 / per_second as f64);
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(boot_secs) + after_boot)
}

/// The fields of `/proc/PID/stat` after the command name (state first).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is parenthesised and may itself contain spaces and
    // parentheses: the fields start after the last `)`.
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Names of medic's own environment that the programs it starts itself
/// (app `start`/`stop`, `exec` alert sinks, fence agents) inherit: what a
/// command needs to find programs, speak the locale and know its user.
/// Nothing else passes: not a credential (`env:PREFIX`), not systemd's
/// notify socket or watchdog, not whatever the shell that started medic set.
const CHILD_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TZ", "LANG", "LANGUAGE", "LC_*",
];

/// The environment of a program medic starts itself: [`CHILD_ENV`] out of
/// medic's own, for `Command::env_clear().envs(..)`.
pub fn child_env() -> impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)> {
    std::env::vars_os().filter(|(name, _)| {
        let name = name.to_string_lossy();
        CHILD_ENV
            .iter()
            .any(|allowed| crate::sandbox::env_grant::covers(allowed, &name))
    })
}

/// The process group of a child medic started in a group of its own
/// (`process_group(0)`): killed whole when the guard is dropped, so nothing
/// a program started (a grandchild holding its pipes, a daemon it forked)
/// outlives a timeout, an abandoned call or the end of the program itself.
#[derive(Debug)]
pub struct GroupGuard(Option<rustix::process::Pid>);

impl GroupGuard {
    /// Guards the group led by the child `pid` (`None`: it has exited).
    pub fn new(pid: Option<u32>) -> Self {
        Self(pid.and_then(|pid| Pid::from_raw(i32::try_from(pid).ok()?)))
    }

    /// Kills the whole group now; already gone is fine.
    pub fn kill(&mut self) {
        if let Some(group) = self.0.take() {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }

    /// Leaves the group alone from now on: what it started may go on.
    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_inherit_only_the_allowed_names() {
        let names: Vec<String> = child_env()
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n == "PATH"), "{names:?}");
        assert!(
            names.iter().all(|n| n == "PATH"
                || n.starts_with("LC_")
                || [
                    "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TZ", "LANG", "LANGUAGE"
                ]
                .contains(&n.as_str())),
            "{names:?}"
        );
    }

    #[test]
    fn pins_only_live_processes() {
        let me = std::process::id();
        assert_eq!(PinnedProcess::open(me).unwrap().pid(), me);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(PinnedProcess::open(pid).is_none(), "a reaped child");
        assert!(PinnedProcess::open(0).is_none());
        assert!(PinnedProcess::open(u32::MAX).is_none());
    }

    #[test]
    fn knows_when_it_started() {
        let started = started_at(std::process::id()).unwrap();
        let age = std::time::SystemTime::now()
            .duration_since(started)
            .unwrap();
        assert!(age < std::time::Duration::from_secs(600), "{age:?}");
        assert_eq!(started_at(u32::MAX), None);
    }

    #[test]
    fn finds_itself_and_not_a_dead_pid() {
        let me = std::process::id();
        assert!(is_alive(me));
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert!(pids_by_name(comm.trim()).contains(&me));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!is_alive(pid), "a reaped child is gone");
    }
}
