//! One daemon per `state_dir`: two daemons on the same journal and socket
//! would each restart the same apps and each count their own reset budget.

use std::path::Path;

use anyhow::{Context as _, bail};

use crate::fsutil::{FileLock, LockError};

/// The lock file inside `state_dir`.
const FILE_NAME: &str = "medic.lock";

/// Held while the daemon runs; the kernel drops the lock when medic exits,
/// however it exits, so a crash never leaves a stale lock behind.
#[derive(Debug)]
pub struct StateLock {
    _lock: FileLock,
}

impl StateLock {
    /// Takes the lock of `state_dir`, or says which daemon holds it.
    pub fn acquire(state_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("cannot create {}", state_dir.display()))?;
        match FileLock::acquire(&state_dir.join(FILE_NAME)) {
            Ok(lock) => Ok(Self { _lock: lock }),
            Err(LockError::Held { pid, .. }) => bail!(
                "another medic daemon already runs on {} (pid {pid}): stop it first, or give this one a state_dir of its own",
                state_dir.display(),
            ),
            Err(e) => Err(e).context("cannot take the lock"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path()).unwrap();
        let error = StateLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains(&format!(
                "already runs on {} (pid {})",
                dir.path().display(),
                std::process::id()
            )),
            "{error}"
        );
        drop(first);
        StateLock::acquire(dir.path()).unwrap();
    }
}
