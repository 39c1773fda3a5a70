//! Reading precompiled kit code only when medic's own user wrote it.
//!
//! A `.cwasm` artifact is native code: loading it runs whatever it contains,
//! outside the sandbox. So medic loads one only when nobody but its own
//! (effective) user could have put it there: a regular file, not a symbolic
//! link, owned by that user and writable by no one else, in a directory with
//! the same properties. `sudo -E medic kit test` with a user's `HOME` must
//! not run that user's planted file as root.
//!
//! The checks are made on open descriptors (`fstat`), the file is opened
//! relative to the checked directory's descriptor, and the caller
//! deserialises the bytes read from that same descriptor: no path is looked
//! up again between the check and the load.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

/// Why a cache directory or artifact is not trusted. Each message completes
/// "<path> ...".
#[derive(Debug, thiserror::Error)]
pub(super) enum Untrusted {
    /// The path is a symbolic link, which could point anywhere.
    #[error("is a symbolic link")]
    Symlink,
    /// The artifact is a directory, device, FIFO or socket.
    #[error("is not a regular file")]
    NotAFile,
    /// The cache directory is a file or something else.
    #[error("is not a directory")]
    NotADirectory,
    /// Another user owns it, and so chose what it contains.
    #[error("is not owned by medic's user (uid {euid}) but by uid {owner}")]
    NotOurs {
        /// The owner's uid.
        owner: u32,
        /// medic's effective uid.
        euid: u32,
    },
    /// Users other than its owner may change it.
    #[error("is writable by group or others (mode {mode:04o})")]
    Writable {
        /// Its permission bits.
        mode: u32,
    },
    /// It could not be opened, created or read.
    #[error("cannot be used: {0}")]
    Io(#[from] std::io::Error),
}

/// A cache directory that passed the checks, held open so that files are
/// opened relative to the very directory that was checked.
#[derive(Debug)]
pub(super) struct TrustedDir {
    path: PathBuf,
    fd: OwnedFd,
}

impl TrustedDir {
    /// Opens the directory `path` (creating it, mode 0700, when missing) and
    /// checks that it is a directory, not a symbolic link, owned by medic's
    /// effective user and not writable by group or others.
    pub(super) fn open(path: &Path) -> Result<Self, Untrusted> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(path, flags, Mode::empty()) {
            Err(Errno::NOENT) => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(path)?;
                rustix::fs::open(path, flags, Mode::empty())
            }
            opened => opened,
        }
        .map_err(|errno| match errno {
            Errno::LOOP => Untrusted::Symlink,
            Errno::NOTDIR if is_symlink(path) => Untrusted::Symlink,
            Errno::NOTDIR => Untrusted::NotADirectory,
            errno => Untrusted::Io(errno.into()),
        })?;
        check(&fd, FileType::Directory)?;
        Ok(Self {
            path: path.to_owned(),
            fd,
        })
    }

    /// The directory's path, for messages and for writing into it.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The content of the file `name` in this directory, when it is a
    /// regular file (not a symbolic link) owned by medic's effective user
    /// and not writable by group or others; `None` when there is no such
    /// file.
    pub(super) fn read(&self, name: &str) -> Result<Option<Vec<u8>>, Untrusted> {
        // NONBLOCK: opening a FIFO must not hang; fstat then refuses it.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(Untrusted::Symlink),
            Err(errno) => return Err(Untrusted::Io(errno.into())),
        };
        check(&fd, FileType::RegularFile)?;
        let mut bytes = Vec::new();
        File::from(fd).read_to_end(&mut bytes)?;
        Ok(Some(bytes))
    }
}

impl TrustedDir {
    /// The names in this directory (those that are valid UTF-8).
    pub(super) fn names(&self) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd)? {
            let entry = entry?;
            if let Ok(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    /// Removes the file `name` from this directory (never a directory, and
    /// relative to the directory that was checked).
    pub(super) fn remove(&self, name: &str) -> std::io::Result<()> {
        Ok(rustix::fs::unlinkat(
            &self.fd,
            name,
            rustix::fs::AtFlags::empty(),
        )?)
    }
}

/// Checks the open `fd`: of type `kind`, owned by medic's effective user,
/// not writable by group or others.
fn check(fd: impl AsFd, kind: FileType) -> Result<(), Untrusted> {
    let stat = rustix::fs::fstat(fd).map_err(std::io::Error::from)?;
    let is = FileType::from_raw_mode(stat.st_mode);
    if is != kind {
        return Err(match kind {
            FileType::Directory => Untrusted::NotADirectory,
            _ => Untrusted::NotAFile,
        });
    }
    let euid = rustix::process::geteuid().as_raw();
    if stat.st_uid != euid {
        return Err(Untrusted::NotOurs {
            owner: stat.st_uid,
            euid,
        });
    }
    let mode = stat.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Untrusted::Writable { mode });
    }
    Ok(())
}

/// Whether `path` itself is a symbolic link (only to word a refusal).
fn is_symlink(path: &Path) -> bool {
    path.symlink_metadata()
        .is_ok_and(|meta| meta.file_type().is_symlink())
}

#[cfg(test)]
mod tests {
    //! These tests chown files to uid 65534, so they run as root (as
    //! medic's test suite does).
    #![allow(clippy::unwrap_used)] // a panic is a failed test

    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const NOBODY: u32 = 65534;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A 0755 directory we own holding `a.cwasm`, 0644, owned by us.
    fn fixture() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let file = dir.path().join("a.cwasm");
        std::fs::write(&file, b"artifact").unwrap();
        chmod(&file, 0o644);
        (dir, file)
    }

    fn read(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, Untrusted> {
        TrustedDir::open(dir).unwrap().read(name)
    }

    #[test]
    fn our_0644_file_in_our_0755_dir_is_read() {
        let (dir, _) = fixture();
        assert_eq!(read(dir.path(), "a.cwasm").unwrap().unwrap(), b"artifact");
        assert!(read(dir.path(), "missing.cwasm").unwrap().is_none());
    }

    #[test]
    fn a_file_owned_by_another_user_is_refused() {
        let (dir, file) = fixture();
        std::os::unix::fs::chown(&file, Some(NOBODY), Some(NOBODY)).unwrap();
        let error = read(dir.path(), "a.cwasm").unwrap_err();
        assert!(
            matches!(error, Untrusted::NotOurs { owner: NOBODY, .. }),
            "{error}"
        );
        let euid = rustix::process::geteuid().as_raw();
        assert_eq!(
            error.to_string(),
            format!("is not owned by medic's user (uid {euid}) but by uid {NOBODY}")
        );
    }

    #[test]
    fn a_group_or_other_writable_file_is_refused() {
        let (dir, file) = fixture();
        for mode in [0o664, 0o646, 0o666] {
            chmod(&file, mode);
            let error = read(dir.path(), "a.cwasm").unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("is writable by group or others (mode {mode:04o})")
            );
        }
    }

    #[test]
    fn a_symlink_to_a_good_file_is_refused() {
        let (dir, _) = fixture();
        std::os::unix::fs::symlink("a.cwasm", dir.path().join("b.cwasm")).unwrap();
        let error = read(dir.path(), "b.cwasm").unwrap_err();
        assert!(matches!(error, Untrusted::Symlink), "{error}");
        assert_eq!(error.to_string(), "is a symbolic link");
    }

    #[test]
    fn something_other_than_a_regular_file_is_refused() {
        let (dir, _) = fixture();
        std::fs::create_dir(dir.path().join("d.cwasm")).unwrap();
        let error = read(dir.path(), "d.cwasm").unwrap_err();
        assert!(matches!(error, Untrusted::NotAFile), "{error}");
    }

    #[test]
    fn a_directory_writable_by_others_is_refused() {
        let (dir, _) = fixture();
        for mode in [0o757, 0o775, 0o1777] {
            chmod(dir.path(), mode);
            let error = TrustedDir::open(dir.path()).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("is writable by group or others (mode {mode:04o})")
            );
        }
    }

    #[test]
    fn a_directory_owned_by_another_user_is_refused() {
        let (dir, _) = fixture();
        std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
        let error = TrustedDir::open(dir.path()).unwrap_err();
        assert!(
            matches!(error, Untrusted::NotOurs { owner: NOBODY, .. }),
            "{error}"
        );
    }

    #[test]
    fn a_symlinked_directory_is_refused() {
        let (dir, _) = fixture();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        let error = TrustedDir::open(&link).unwrap_err();
        assert!(matches!(error, Untrusted::Symlink), "{error}");
    }

    #[test]
    fn a_missing_directory_is_created_private() {
        let (dir, _) = fixture();
        let cache = dir.path().join("cache").join("kits");
        let opened = TrustedDir::open(&cache).unwrap();
        assert_eq!(opened.path(), cache);
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
}
