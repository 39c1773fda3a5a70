//! Instant crash detection: a pidfd on the app's main process becomes
//! readable the moment the process exits, so medic reacts in milliseconds
//! instead of at the next check.
//!
//! The pid comes from the app's pidfile, re-read after every restart, or
//! from its kit (`host.watch-process`), reported again by the first healthy
//! check after a restart.
//! A pidfd pins one process, never a pid; and a process that started after
//! the pidfile was written is not the one it names (the pid was reused), so
//! it is not watched.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

use crate::process::{self, PinnedProcess};

/// Slack between a process's start and its pidfile's write, for clocks
/// counted in ticks and file systems with coarse timestamps.
const START_SLACK: Duration = Duration::from_secs(1);

/// The app's main process, watched.
#[derive(Debug)]
pub struct ProcessWatch {
    pid: u32,
    fd: AsyncFd<OwnedFd>,
}

impl ProcessWatch {
    /// Watches the live process `pidfile` names; `None` when there is none,
    /// or when the pid now belongs to a process that started after the
    /// file was written.
    pub fn open(pidfile: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(pidfile).ok()?;
        let written = std::fs::metadata(pidfile).ok()?.modified().ok()?;
        let pinned = PinnedProcess::open(text.trim().parse().ok()?)?;
        // The pidfd now pins whatever process has this pid; make sure it is
        // the one the pidfile meant.
        let started = process::started_at(pinned.pid())?;
        if started > written + START_SLACK {
            return None;
        }
        Self::pinned(pinned)
    }

    /// Watches a process pinned elsewhere (one a kit reported).
    pub fn pinned(process: PinnedProcess) -> Option<Self> {
        let pid = process.pid();
        // `AsyncFd::new` is deprecated for types that may not own their fd;
        // an `OwnedFd` does, which is the case it is sound for (the
        // replacement, `register`, is `unsafe`, which this crate denies).
        #[allow(deprecated)]
        let fd = AsyncFd::new(process.into_fd()).ok()?;
        Some(Self { pid, fd })
    }

    /// The watched pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` to the watched process through its pidfd, so a later
    /// reuse of its pid can never receive it.
    pub fn send(&self, signal: rustix::process::Signal) -> std::io::Result<()> {
        Ok(rustix::process::pidfd_send_signal(
            self.fd.get_ref(),
            signal,
        )?)
    }

    /// Resolves when the process has exited.
    pub async fn exited(&self) {
        // A pidfd is readable once its process has terminated, and stays
        // so; an error here (it cannot happen for a valid pidfd) is treated
        // the same, so a broken watch never hides a crash.
        let _ = self.fd.readable().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sees_a_child_exit_and_refuses_stale_pidfiles() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("app.pid");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        std::fs::write(&pidfile, child.id().to_string()).unwrap();
        let watch = ProcessWatch::open(&pidfile).unwrap();
        assert_eq!(watch.pid(), child.id());
        child.kill().unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.exited())
            .await
            .unwrap();
        child.wait().unwrap();
        assert!(
            ProcessWatch::open(&pidfile).is_none(),
            "the process is gone"
        );

        // A pidfile written long before the process that now has its pid.
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        std::fs::write(&pidfile, other.id().to_string()).unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&pidfile)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(ProcessWatch::open(&pidfile).is_none(), "a reused pid");
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
