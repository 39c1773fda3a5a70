//! Hypervisor credentials: a small TOML file with `username` and
//! `password`, or two environment variables.
//!
//! A file that anyone but its owner could read is refused, as is one owned
//! by someone other than root or medic's own user: a password that others
//! can read, or replace, is worse than no escalation. The password is kept
//! in a [`SecretString`] so it never reaches a log line or `medic events`.
//!
//! Variables named by `env:PREFIX` are taken out of medic's environment when
//! the daemon starts ([`withdraw_from_environment`]) and kept in memory, so
//! no program medic starts can inherit them, however its environment is
//! built.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use secrecy::{ExposeSecret as _, SecretString};

/// A username and password for a hypervisor API.
#[derive(Clone)]
pub struct Credentials {
    /// The account name (not secret; shown in errors).
    pub username: String,
    /// The password; `expose_secret()` only where it is sent.
    pub password: SecretString,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where credentials come from, as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A TOML file with `username` and `password`, mode 0600 or 0400.
    File(PathBuf),
    /// `env:PREFIX`: the variables `PREFIX_USERNAME` and `PREFIX_PASSWORD`
    /// (e.g. from systemd's `EnvironmentFile=`).
    Environment(String),
}

/// Why credentials could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("credentials file {}: {source}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Group or others may read or write the file, or a stranger owns it.
    #[error("credentials file {}: {problem}; make it `chmod 600` and owned by root or medic's user", .path.display())]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// What is wrong with its permissions.
        problem: String,
    },
    /// The file is not TOML with `username` and `password` strings.
    #[error("credentials file {}: {problem}", .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the password itself).
        problem: String,
    },
    /// An environment variable is missing.
    #[error("credentials: environment variable {0} is not set")]
    MissingVariable(String),
}

/// Why [`withdraw_from_environment`] could not hide every variable. The
/// values are kept in memory either way, so credentials still load.
#[derive(Debug, thiserror::Error)]
pub enum WithdrawError {
    /// Other threads run: removing a variable while one may read the
    /// environment is undefined behaviour, so they stay.
    #[error(
        "credentials: {names} stay in medic's environment: {threads} threads run, and a variable is removed only while one does"
    )]
    Threaded {
        /// The variables left, comma-separated.
        names: String,
        /// How many threads ran.
        threads: usize,
    },
}

/// Values of `env:PREFIX` variables that [`withdraw_from_environment`] took
/// out of the environment, by name; [`Source::load`] reads here first.
static WITHDRAWN: Mutex<BTreeMap<String, SecretString>> = Mutex::new(BTreeMap::new());

impl Source {
    /// Reads `value` as written in a `credentials` key: `env:PREFIX` or a
    /// path (relative to `base`).
    pub fn parse(value: &str, base: &Path) -> Self {
        match value.strip_prefix("env:") {
            Some(prefix) => Self::Environment(prefix.to_owned()),
            None => Self::File(base.join(value)),
        }
    }

    /// Loads the credentials, checking a file's permissions first. An
    /// `env:PREFIX` source reads what was withdrawn from the environment at
    /// start, else the environment (the one-shot verbs).
    pub fn load(&self) -> Result<Credentials, CredentialsError> {
        match self {
            Self::File(path) => load_file(path),
            Self::Environment(prefix) => {
                let [username, password] = variable_names(prefix).map(|name| variable(&name));
                Ok(Credentials {
                    username: username?.expose_secret().to_owned(),
                    password: password?,
                })
            }
        }
    }

    /// The environment variables this source reads: none for a file.
    fn variables(&self) -> Vec<String> {
        match self {
            Self::File(_) => Vec::new(),
            Self::Environment(prefix) => variable_names(prefix).to_vec(),
        }
    }
}

/// `PREFIX_USERNAME` and `PREFIX_PASSWORD`.
fn variable_names(prefix: &str) -> [String; 2] {
    ["USERNAME", "PASSWORD"].map(|suffix| format!("{prefix}_{suffix}"))
}

/// The value of variable `name`: withdrawn, else from the environment.
fn variable(name: &str) -> Result<SecretString, CredentialsError> {
    let withdrawn = WITHDRAWN
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
        .cloned();
    match withdrawn {
        Some(value) => Ok(value),
        None => std::env::var(name)
            .map(SecretString::from)
            .map_err(|_| CredentialsError::MissingVariable(name.to_owned())),
    }
}

/// Moves the variables every `env:PREFIX` source in `sources` reads out of
/// medic's environment into memory, where [`Source::load`] finds them, and
/// returns their names. From then on no program medic starts can inherit
/// them, whatever its environment is built from. The block the kernel set
/// up at exec (`/proc/PID/environ`) keeps the values: only root and
/// medic's own user can read it, and they can read medic's memory anyway.
///
/// Call it while medic runs one thread, before the async runtime starts:
/// changing the environment while another thread may read it is undefined
/// behaviour. With more threads the values are still kept in memory, the
/// variables stay, and [`WithdrawError::Threaded`] says so.
pub fn withdraw_from_environment<'a>(
    sources: impl IntoIterator<Item = &'a Source>,
) -> Result<Vec<String>, WithdrawError> {
    let mut names: Vec<String> = Vec::new();
    {
        let mut withdrawn = WITHDRAWN.lock().unwrap_or_else(PoisonError::into_inner);
        for name in sources.into_iter().flat_map(Source::variables) {
            if let Ok(value) = std::env::var(&name) {
                withdrawn.insert(name.clone(), SecretString::from(value));
                names.push(name);
            }
        }
    }
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Ok(names);
    }
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count);
    if threads != 1 {
        return Err(WithdrawError::Threaded {
            names: names.join(", "),
            threads,
        });
    }
    for name in &names {
        remove_variable(name);
    }
    Ok(names)
}

/// Removes `name` from medic's environment.
#[allow(unsafe_code)]
fn remove_variable(name: &str) {
    // SAFETY: the only caller checked that this is the process's one
    // thread (`/proc/self/task`), and only this thread could start another,
    // so nothing reads or writes the environment meanwhile.
    unsafe { std::env::remove_var(name) }
}

/// The file's contents as TOML; only these two keys are allowed.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    username: String,
    password: String,
}

/// Why a secret file was not read.
#[derive(Debug)]
pub(crate) enum SecretFileError {
    /// It could not be opened or read.
    Unreadable(std::io::Error),
    /// Others may read it, or a stranger owns it: what is wrong.
    Unsafe(String),
}

/// The bytes of a file that holds a secret (credentials, a TLS key):
/// opened once, not through a symbolic link, and judged by the open
/// descriptor, so what is checked is what is read.
pub(crate) fn read_secret_file(path: &Path) -> Result<Vec<u8>, SecretFileError> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(SecretFileError::Unreadable)?;
    let metadata = file.metadata().map_err(SecretFileError::Unreadable)?;
    if let Some(problem) = unsafe_permissions(metadata.mode(), metadata.uid()) {
        return Err(SecretFileError::Unsafe(problem));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(SecretFileError::Unreadable)?;
    Ok(bytes)
}

fn load_file(path: &Path) -> Result<Credentials, CredentialsError> {
    let text = match read_secret_file(path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| CredentialsError::Unreadable {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
        })?,
        Err(SecretFileError::Unreadable(source)) => {
            return Err(CredentialsError::Unreadable {
                path: path.to_path_buf(),
                source,
            });
        }
        Err(SecretFileError::Unsafe(problem)) => {
            return Err(CredentialsError::Unsafe {
                path: path.to_path_buf(),
                problem,
            });
        }
    };
    // toml's message quotes the offending line, which may hold the
    // password: report only where the problem is.
    let parsed: CredentialsFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start].lines().count().max(1));
        CredentialsError::Malformed {
            path: path.to_path_buf(),
            problem: match line {
                Some(line) => {
                    format!("line {line}: not TOML with string keys `username` and `password`")
                }
                None => "not TOML with string keys `username` and `password`".to_owned(),
            },
        }
    })?;
    Ok(Credentials {
        username: parsed.username,
        password: SecretString::from(parsed.password),
    })
}

/// What is unsafe about a file with `mode` owned by `uid`, if anything;
/// shared with the admin API's TLS key files, held to the same rules.
fn unsafe_permissions(mode: u32, uid: u32) -> Option<String> {
    let own_uid = rustix::process::geteuid().as_raw();
    if mode & 0o077 != 0 {
        Some(format!(
            "mode {:04o} lets group or others access it",
            mode & 0o7777
        ))
    } else if uid != 0 && uid != own_uid {
        Some(format!(
            "owned by uid {uid}, not root or medic's user (uid {own_uid})"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let path = dir.join("hv.cred");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_private_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "username = \"medic\"\npassword = \"s3<c>&\"\n",
            0o600,
        );
        let credentials = Source::File(path).load().unwrap();
        assert_eq!(credentials.username, "medic");
        assert_eq!(credentials.password.expose_secret(), "s3<c>&");
        assert!(!format!("{credentials:?}").contains("s3<c>"));
    }

    #[test]
    fn a_file_reached_through_a_symbolic_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "username = \"u\"\npassword = \"p\"\n", 0o600);
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let error = Source::File(link).load().unwrap_err().to_string();
        assert!(error.contains("link.toml"), "{error}");
    }

    #[test]
    fn a_group_or_world_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            let path = write(dir.path(), "username = \"u\"\npassword = \"p\"\n", mode);
            let error = Source::File(path).load().unwrap_err().to_string();
            assert!(error.contains(&format!("mode {mode:04o}")), "{error}");
        }
        let path = write(dir.path(), "username = \"u\"\npassword = \"p\"\n", 0o400);
        assert!(Source::File(path).load().is_ok());
    }

    #[test]
    fn a_file_owned_by_a_stranger_is_refused() {
        assert!(unsafe_permissions(0o100600, 0).is_none());
        let stranger = rustix::process::geteuid().as_raw().wrapping_add(4242);
        let problem = unsafe_permissions(0o100600, stranger).unwrap();
        assert!(problem.contains(&format!("uid {stranger}")), "{problem}");
    }

    #[test]
    fn a_malformed_file_does_not_echo_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "username = \"u\"\npassword = hunter2\n", 0o600);
        let error = Source::File(path).load().unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn withdrawn_variables_are_read_from_memory() {
        WITHDRAWN.lock().unwrap().extend([
            (
                "MEDIC_TEST_WITHDRAWN_USERNAME".to_owned(),
                "hv".to_owned().into(),
            ),
            (
                "MEDIC_TEST_WITHDRAWN_PASSWORD".to_owned(),
                "p4ss".to_owned().into(),
            ),
        ]);
        let credentials = Source::Environment("MEDIC_TEST_WITHDRAWN".to_owned())
            .load()
            .unwrap();
        assert_eq!(credentials.username, "hv");
        assert_eq!(credentials.password.expose_secret(), "p4ss");
    }

    #[test]
    fn withdrawing_what_is_not_set_changes_nothing() {
        let sources = [
            Source::Environment("MEDIC_TEST_NEVER_SET".to_owned()),
            Source::File(PathBuf::from("/nonexistent")),
        ];
        assert!(withdraw_from_environment(&sources).unwrap().is_empty());
        assert!(
            Source::Environment("MEDIC_TEST_NEVER_SET".to_owned())
                .load()
                .is_err()
        );
    }

    #[test]
    fn env_prefix_reads_two_variables() {
        assert_eq!(
            Source::parse("env:MEDIC_TEST_HV", Path::new("/etc/medic")),
            Source::Environment("MEDIC_TEST_HV".to_owned())
        );
        assert_eq!(
            Source::parse("hv.cred", Path::new("/etc/medic")),
            Source::File(PathBuf::from("/etc/medic/hv.cred"))
        );
        let error = Source::Environment("MEDIC_TEST_UNSET_PREFIX".to_owned())
            .load()
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("MEDIC_TEST_UNSET_PREFIX_USERNAME")
        );
    }
}
