//! The version each app runs, as `medic update` last installed it: kept in
//! `state_dir/versions.json`, so `status` shows it after a restart of
//! medic and a failed update knows which version to roll back to.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::fsutil::{BookError, JsonBook};

/// File name of the book inside `state_dir`.
pub const FILE_NAME: &str = "versions.json";

/// What `medic update` installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// The version now running.
    pub version: String,
    /// The version that ran before it, if medic knew one.
    pub previous: Option<String>,
    /// When the update succeeded.
    #[serde(
        serialize_with = "crate::journal::rfc3339",
        deserialize_with = "crate::journal::from_rfc3339"
    )]
    pub since: SystemTime,
}

/// The running versions, by app.
#[derive(Debug)]
pub struct Versions(JsonBook<BTreeMap<String, Installed>>);

impl Versions {
    /// Reads the book in `state_dir` (an unreadable file knows no version,
    /// logged).
    pub fn open(state_dir: &Path) -> Self {
        Self(JsonBook::open(
            state_dir.join(FILE_NAME),
            "book of versions",
        ))
    }

    /// What runs of `app`, if an update installed it.
    pub fn of(&self, app: &str) -> Option<Installed> {
        self.0.read().get(app).cloned()
    }

    /// Records that `app` now runs `version` (after `previous`).
    pub fn installed(
        &self,
        app: &str,
        version: &str,
        previous: Option<String>,
    ) -> Result<(), BookError> {
        self.0.modify(|apps| {
            apps.insert(
                app.to_owned(),
                Installed {
                    version: version.to_owned(),
                    previous,
                    since: SystemTime::now(),
                },
            );
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installed_version_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let book = Versions::open(dir.path());
        assert_eq!(book.of("web"), None);
        book.installed("web", "v2", Some("v1".into())).unwrap();
        let reopened = Versions::open(dir.path()).of("web").unwrap();
        assert_eq!(
            (reopened.version.as_str(), reopened.previous.as_deref()),
            ("v2", Some("v1"))
        );
    }
}
