//! Apps an admin stopped (`medic stop APP`): held stopped, neither checked
//! nor recovered, until `medic start APP`. Kept in `state_dir/stopped.json`,
//! because a restart of medic (or a reboot of the VM) must not bring back
//! what an admin took down on purpose.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::fsutil::{BookError, JsonBook};

/// File name of the book inside `state_dir`.
pub const FILE_NAME: &str = "stopped.json";

/// Why and since when an app is held stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// When the admin stopped it.
    #[serde(
        serialize_with = "crate::journal::rfc3339",
        deserialize_with = "crate::journal::from_rfc3339"
    )]
    pub since: SystemTime,
    /// Why, as the admin wrote it.
    pub reason: Option<String>,
    /// Who stopped it (`uid 1000`, `cert controller`).
    pub by: String,
}

impl Hold {
    /// The line `medic status` shows for it.
    pub fn describe(&self) -> String {
        match &self.reason {
            Some(reason) => format!("stopped by {}: {reason}", self.by),
            None => format!("stopped by {}", self.by),
        }
    }
}

/// The apps held stopped, shared by the supervisors.
#[derive(Debug)]
pub struct Stopped(JsonBook<BTreeMap<String, Hold>>);

impl Stopped {
    /// Reads the book in `state_dir` (an unreadable file holds nothing,
    /// logged).
    pub fn open(state_dir: &Path) -> Self {
        Self(JsonBook::open(
            state_dir.join(FILE_NAME),
            "book of stopped apps",
        ))
    }

    /// The hold on `app`, if an admin stopped it.
    pub fn hold_of(&self, app: &str) -> Option<Hold> {
        self.0.read().get(app).cloned()
    }

    /// Holds `app` stopped; written before the app is stopped, so a crash
    /// in between does not bring it back.
    pub fn hold(&self, app: &str, hold: Hold) -> Result<(), BookError> {
        self.0.modify(|apps| {
            apps.insert(app.to_owned(), hold);
        })
    }

    /// Releases `app`; returns its hold if it had one.
    pub fn release(&self, app: &str) -> Result<Option<Hold>, BookError> {
        self.0.modify(|apps| apps.remove(app))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_survive_a_reopen_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let book = Stopped::open(dir.path());
        let since = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let hold = Hold {
            since,
            reason: Some("replacing the disk".into()),
            by: "uid 0".into(),
        };
        book.hold("web", hold.clone()).unwrap();
        assert_eq!(Stopped::open(dir.path()).hold_of("web"), Some(hold.clone()));
        assert_eq!(book.hold_of("db"), None);
        assert_eq!(
            hold.describe(),
            "stopped by uid 0: replacing the disk".to_owned()
        );
        assert_eq!(book.release("web").unwrap(), Some(hold));
        assert_eq!(Stopped::open(dir.path()).hold_of("web"), None);
        assert_eq!(book.release("web").unwrap(), None);
    }

    #[test]
    fn a_torn_book_holds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{\"web\": {").unwrap();
        assert_eq!(Stopped::open(dir.path()).hold_of("web"), None);
    }
}
