//! Hypervisor credentials: a small TOML file with `username` and
//! `password`, or two environment variables.
//!
//! A file that anyone but its owner could read is refused, as is one owned
//! by someone other than root or medic's own user: a password that others
//! can read, or replace, is worse than no escalation. The password is kept
//! in a [`SecretString`] so it never reaches a log line or `medic events`.

use std::fmt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use secrecy::SecretString;

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

impl Source {
    /// Reads `value` as written in a `credentials` key: `env:PREFIX` or a
    /// path (relative to `base`).
    pub fn parse(value: &str, base: &Path) -> Self {
        match value.strip_prefix("env:") {
            Some(prefix) => Self::Environment(prefix.to_owned()),
            None => Self::File(base.join(value)),
        }
    }

    /// Loads the credentials, checking a file's permissions first.
    pub fn load(&self) -> Result<Credentials, CredentialsError> {
        match self {
            Self::File(path) => load_file(path),
            Self::Environment(prefix) => {
                let var = |suffix: &str| {
                    let name = format!("{prefix}_{suffix}");
                    std::env::var(&name).map_err(|_| CredentialsError::MissingVariable(name))
                };
                Ok(Credentials {
                    username: var("USERNAME")?,
                    password: SecretString::from(var("PASSWORD")?),
                })
            }
        }
    }
}

/// The file's contents as TOML; only these two keys are allowed.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    username: String,
    password: String,
}

fn load_file(path: &Path) -> Result<Credentials, CredentialsError> {
    let unreadable = |source| CredentialsError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    // Opened once, not through a symbolic link, and judged by the open
    // descriptor: what is checked is what is read.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(unreadable)?;
    let metadata = file.metadata().map_err(unreadable)?;
    if let Some(problem) = unsafe_permissions(metadata.mode(), metadata.uid()) {
        return Err(CredentialsError::Unsafe {
            path: path.to_path_buf(),
            problem,
        });
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).map_err(unreadable)?;
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

/// What is unsafe about a file with `mode` owned by `uid`, if anything.
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
