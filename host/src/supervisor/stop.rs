//! "stop" means stopped: before `start` runs again, the app's old process
//! and its process group are gone, killed if need be.
//!
//! A hung app (SIGSTOPped, stuck in the kernel, deaf to SIGTERM) outlives a
//! typical `stop`, and the `start` that follows fails because the old
//! instance still holds its port. As systemd does after `TimeoutStopSec`,
//! medic sends SIGKILL to whatever is left `stop_grace` after `stop` (or,
//! without `stop`, after a SIGTERM of its own).

use std::time::Duration;

use rustix::process::{Pid, Signal};

use super::pidfd::ProcessWatch;

/// How often a process group is looked at while waiting for it to empty.
const GROUP_POLL: Duration = Duration::from_millis(50);
/// How long a SIGKILLed process may take to be gone before `start` runs
/// anyway (the kernel reaps it in microseconds unless it sits in an
/// uninterruptible wait).
const KILL_WAIT: Duration = Duration::from_secs(2);

/// The app's running instance as it was before `stop`: its main process,
/// pinned, and its process group, when that group is the app's own.
pub struct Instance {
    process: ProcessWatch,
    group: Option<Pid>,
}

/// What medic had to kill, for the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Killed {
    /// The main process.
    pub pid: u32,
    /// Its process group, when it was killed as a whole.
    pub pgid: Option<i32>,
}

impl Instance {
    /// The instance `process` leads. Its group is included only when it is
    /// not medic's own (a kit may report any process) and not init's.
    pub fn of(process: ProcessWatch) -> Option<Self> {
        let pid = Pid::from_raw(i32::try_from(process.pid()).ok()?)?;
        if pid.as_raw_nonzero().get() == 1 {
            return None;
        }
        let group = rustix::process::getpgid(Some(pid)).ok().filter(|group| {
            *group != rustix::process::getpgrp() && group.as_raw_nonzero().get() > 1
        });
        Some(Self { process, group })
    }

    /// Asks the instance to stop, as systemd's default `KillSignal` does
    /// for a unit without `ExecStop`: SIGTERM to its group, or to its
    /// process alone.
    pub fn terminate(&self) {
        self.signal(Signal::TERM);
    }

    /// Waits up to `grace` for the instance to be gone, then kills what is
    /// left and waits for that. `None` when nothing had to be killed.
    pub async fn ensure_gone(self, grace: Duration) -> Option<Killed> {
        if tokio::time::timeout(grace, self.gone()).await.is_ok() {
            return None;
        }
        self.signal(Signal::KILL);
        let killed = Killed {
            pid: self.process.pid(),
            pgid: self.group.map(|group| group.as_raw_nonzero().get()),
        };
        if tokio::time::timeout(KILL_WAIT, self.gone()).await.is_err() {
            tracing::warn!(pid = killed.pid, "still there {KILL_WAIT:?} after SIGKILL");
        }
        Some(killed)
    }

    /// Resolves once the main process has exited and its group is empty.
    async fn gone(&self) {
        self.process.exited().await;
        if let Some(group) = self.group {
            let pgid = group.as_raw_nonzero().get().unsigned_abs();
            while crate::process::group_alive(pgid) {
                tokio::time::sleep(GROUP_POLL).await;
            }
        }
    }

    /// Sends `signal` to the group, or to the main process through its
    /// pidfd (never to whatever reused its pid). A process that is already
    /// gone is no error.
    fn signal(&self, signal: Signal) {
        let _ = self.process.send(signal);
        if let Some(group) = self.group {
            let _ = rustix::process::kill_process_group(group, signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::PinnedProcess;

    fn spawn(script: &str) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sh")
            .args(["-c", script])
            .process_group(0)
            .spawn()
            .unwrap()
    }

    /// Whether every process of group `pgid` (and at least two) is stopped.
    fn group_stopped(pgid: u32) -> bool {
        let states = crate::process::group_states(pgid);
        states.len() >= 2 && states.iter().all(|state| state == "T")
    }

    fn instance(child: &std::process::Child) -> Instance {
        let watch = ProcessWatch::pinned(PinnedProcess::open(child.id()).unwrap()).unwrap();
        Instance::of(watch).unwrap()
    }

    #[tokio::test]
    async fn a_process_that_exits_in_its_grace_is_left_alone() {
        let mut child = spawn("sleep 0.2");
        let instance = instance(&child);
        assert_eq!(
            instance.group.map(|g| g.as_raw_nonzero().get() as u32),
            Some(child.id())
        );
        let reaper = std::thread::spawn(move || child.wait().unwrap());
        assert_eq!(instance.ensure_gone(Duration::from_secs(10)).await, None);
        assert!(reaper.join().unwrap().success());
    }

    #[tokio::test]
    async fn a_stopped_process_and_its_group_are_killed_after_the_grace() {
        // A leader and a member of its group, both deaf (SIGSTOPped).
        let mut child = spawn("sleep 60 & exec sleep 60");
        let child_pid = child.id();
        std::thread::sleep(Duration::from_millis(200));
        let group = Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process_group(group, Signal::STOP).unwrap();
        // A SIGTERM still pending beside the SIGSTOP would be taken first
        // (lower number): wait until the group has really stopped.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !group_stopped(child_pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "the group did not stop"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let instance = instance(&child);
        instance.terminate();
        let reaper = std::thread::spawn(move || child.wait().unwrap());
        let killed = instance
            .ensure_gone(Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(killed.pgid, Some(group.as_raw_nonzero().get()));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(reaper.join().unwrap().signal(), Some(Signal::KILL.as_raw()));
        assert!(
            !crate::process::group_alive(child_pid),
            "the whole group is gone"
        );
    }
}
