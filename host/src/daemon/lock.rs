//! One daemon per `state_dir`: two daemons on the same journal and socket
//! would each restart the same apps and each count their own reset budget.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context as _, bail};
use rustix::fs::{FlockOperation, flock};

/// The lock file inside `state_dir`.
const FILE_NAME: &str = "medic.lock";

/// Held while the daemon runs; the kernel drops the lock when medic exits,
/// however it exits, so a crash never leaves a stale lock behind.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Takes the lock of `state_dir`, or says which daemon holds it.
    pub fn acquire(state_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("cannot create {}", state_dir.display()))?;
        let path = state_dir.join(FILE_NAME);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            bail!(
                "another medic daemon already runs on {} (pid {}): stop it first, or give this one a state_dir of its own",
                state_dir.display(),
                holder.trim()
            );
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(Self { _file: file })
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
