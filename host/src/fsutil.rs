//! Small file-system helpers shared by the journal, the kit cache, kit
//! state and the books of admin decisions (maintenance, stopped apps).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Writes `bytes` to `path` so that readers see either the old or the new
/// content, never a torn file: write a temporary sibling, fsync, rename.
/// The file is medic's alone (0600: kit state, maintenance windows and
/// precompiled code are nobody else's to read), whatever the umask.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A small JSON file of admin decisions (maintenance windows, apps held
/// stopped) kept in memory and written through on every change, so the
/// decisions survive a restart of medic.
#[derive(Debug)]
pub struct JsonBook<T> {
    path: PathBuf,
    what: &'static str,
    value: Mutex<T>,
}

/// Why a book could not be saved.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {source}", .path.display())]
pub struct BookError {
    what: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

impl<T: Serialize + DeserializeOwned + Default + Clone + PartialEq> JsonBook<T> {
    /// Reads the book at `path`; `what` names it in logs and errors. An
    /// unreadable or torn file is an empty book, logged: supervision must
    /// start either way.
    pub fn open(path: PathBuf, what: &'static str) -> Self {
        let value = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!(path = %path.display(), "{what} unreadable, starting without: {e}");
                T::default()
            }),
            Err(_) => T::default(),
        };
        Self {
            path,
            what,
            value: Mutex::new(value),
        }
    }

    /// The book as it stands.
    pub fn read(&self) -> MutexGuard<'_, T> {
        self.value
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the book with `change` and, when that changed anything,
    /// writes it before returning what `change` returned.
    pub fn modify<R>(&self, change: impl FnOnce(&mut T) -> R) -> Result<R, BookError> {
        let mut value = self.read();
        let before = value.clone();
        let answer = change(&mut value);
        if *value != before {
            let failed = |source| BookError {
                what: self.what,
                path: self.path.clone(),
                source,
            };
            let bytes = serde_json::to_vec_pretty(&*value).map_err(|e| failed(e.into()))?;
            write_atomic(&self.path, &bytes).map_err(failed)?;
        }
        Ok(answer)
    }
}

/// An exclusive lock on a file (`flock`), held until dropped: the kernel
/// lets go when the holder exits, however it exits, so a crash never leaves
/// a stale lock. The file names the holder's pid for the next one to read.
#[derive(Debug)]
pub struct FileLock {
    _file: std::fs::File,
}

/// Why a [`FileLock`] was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("{} is held by pid {pid}", .path.display())]
    Held {
        /// The lock file.
        path: PathBuf,
        /// What the holder wrote: its pid.
        pid: String,
    },
    /// The file could not be made or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

impl FileLock {
    /// Takes the lock at `path` without waiting (its directory is made).
    pub fn acquire(path: &Path) -> Result<Self, LockError> {
        use std::io::{Read, Seek};
        use std::os::unix::fs::OpenOptionsExt;
        let io = |source| LockError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(path)
            .map_err(io)?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(LockError::Held {
                path: path.to_owned(),
                pid: pid.trim().to_owned(),
            });
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_are_owner_only_and_replace_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/app.json");
        write_atomic(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
