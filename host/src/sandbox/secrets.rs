//! The secrets of an app's `[secrets]`, read by medic when the app loads.
//!
//! A kit names a secret in `host.http-send` and medic writes it into the
//! request's `Authorization` header, so the value never enters the kit. Each
//! file is held to the rules of credentials files (0600, owned by root or
//! medic's user, no symbolic link). A file that cannot be used makes every
//! request naming it a kit fault that says why, never a failed app.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;

use crate::credentials::{SecretFileError, read_secret_file};

/// The most bytes a secret file may hold: a password or a token.
const SECRET_FILE_MAX: usize = 8 * 1024;

/// One app's secrets by name: the value, or why it cannot be used.
#[derive(Clone, Default)]
pub struct AppSecrets(BTreeMap<String, Result<SecretString, String>>);

impl std::fmt::Debug for AppSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl AppSecrets {
    /// Reads every `(name, file)` of app `app`'s `[secrets]`.
    pub fn read(app: &str, entries: &[(String, PathBuf)]) -> Self {
        let secrets = entries
            .iter()
            .map(|(name, file)| {
                let value = read_one(file).map_err(|why| {
                    let why = format!("[secrets] {name} of app {app}: {}: {why}", file.display());
                    tracing::error!("{why}");
                    why
                });
                (name.clone(), value)
            })
            .collect();
        Self(secrets)
    }

    /// The secret called `name`, or why there is none to use.
    pub fn get(&self, name: &str) -> Result<&SecretString, String> {
        match self.0.get(name) {
            Some(Ok(secret)) => Ok(secret),
            Some(Err(why)) => Err(why.clone()),
            None => Err(format!("no secret {name:?} in the app's [secrets]")),
        }
    }
}

/// The secret in `file`: its text less one trailing line break.
fn read_one(file: &std::path::Path) -> Result<SecretString, String> {
    let bytes = read_secret_file(file).map_err(|e| match e {
        SecretFileError::Unreadable(e) => e.to_string(),
        SecretFileError::Unsafe(problem) => {
            format!("{problem}; make it `chmod 600` and owned by root or medic's user")
        }
    })?;
    if bytes.len() > SECRET_FILE_MAX {
        return Err(format!(
            "holds over {SECRET_FILE_MAX} bytes: not one secret"
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_owned())?;
    let value = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if value.is_empty() {
        return Err("is empty".to_owned());
    }
    if value.chars().any(char::is_control) {
        return Err("holds a control character (more than one line?)".to_owned());
    }
    Ok(SecretString::from(value.to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;
    use std::os::unix::fs::PermissionsExt as _;

    fn secret_file(dir: &std::path::Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        file
    }

    #[test]
    fn only_a_private_one_line_file_is_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![
            (
                "good".to_owned(),
                secret_file(dir.path(), "good", "u:p\n", 0o600),
            ),
            (
                "open".to_owned(),
                secret_file(dir.path(), "open", "u:p\n", 0o644),
            ),
            (
                "two".to_owned(),
                secret_file(dir.path(), "two", "a\nb\n", 0o600),
            ),
            (
                "empty".to_owned(),
                secret_file(dir.path(), "empty", "\n", 0o600),
            ),
            ("gone".to_owned(), dir.path().join("gone")),
        ];
        let secrets = AppSecrets::read("web", &entries);
        assert_eq!(secrets.get("good").unwrap().expose_secret(), "u:p");
        let why = |name| secrets.get(name).unwrap_err();
        assert!(why("open").contains("chmod 600"), "{}", why("open"));
        assert!(why("two").contains("control character"), "{}", why("two"));
        assert!(why("empty").ends_with("is empty"), "{}", why("empty"));
        assert!(why("gone").contains("No such file"), "{}", why("gone"));
        assert_eq!(why("other"), "no secret \"other\" in the app's [secrets]");
        assert!(!format!("{secrets:?}").contains("u:p"));
    }
}
