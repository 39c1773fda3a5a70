//! Maintenance windows: global or per app, always with an end. During one,
//! checks keep running and are reported, but nothing is recovered and
//! nothing escalates. Windows are kept in `state_dir/maintenance.json`, so
//! they survive a restart of medic, and end on their own at their expiry.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use crate::fsutil::BookError;
use crate::fsutil::JsonBook;

/// File name of the maintenance book inside `state_dir`.
pub const FILE_NAME: &str = "maintenance.json";

/// One maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// When it ends by itself.
    #[serde(
        serialize_with = "crate::journal::rfc3339",
        deserialize_with = "crate::journal::from_rfc3339"
    )]
    pub until: SystemTime,
    /// Why, as the admin wrote it.
    pub reason: String,
    /// Who started it (`uid 1000`).
    pub by: String,
}

/// Every window in force, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows {
    /// The window over every app, if any.
    pub global: Option<Window>,
    /// Windows of single apps, by app name.
    pub apps: BTreeMap<String, Window>,
}

/// The maintenance windows, shared by the supervisors and the admin API.
#[derive(Debug)]
pub struct Book(JsonBook<Windows>);

impl Book {
    /// Reads the book in `state_dir` (an unreadable or torn file is an
    /// empty book, logged: supervision must start either way).
    pub fn open(state_dir: &Path) -> Self {
        Self(JsonBook::open(
            state_dir.join(FILE_NAME),
            "maintenance book",
        ))
    }

    /// Every window in force (expired ones included until [`Book::expire`]).
    pub fn snapshot(&self) -> Windows {
        self.0.read().clone()
    }

    /// The window `app` is under at `now`, its own or the global one.
    pub fn active(&self, app: &str, now: SystemTime) -> Option<Window> {
        let windows = self.0.read();
        windows
            .apps
            .get(app)
            .into_iter()
            .chain(windows.global.as_ref())
            .find(|window| window.until > now)
            .cloned()
    }

    /// Starts (or replaces) the window of `app`, or the global one.
    pub fn start(&self, app: Option<&str>, window: Window) -> Result<(), BookError> {
        self.0.modify(|windows| match app {
            Some(app) => {
                windows.apps.insert(app.to_owned(), window);
            }
            None => windows.global = Some(window),
        })
    }

    /// Ends the window of `app`, or the global one; returns it if there
    /// was one.
    pub fn end(&self, app: Option<&str>) -> Result<Option<Window>, BookError> {
        self.0.modify(|windows| match app {
            Some(app) => windows.apps.remove(app),
            None => windows.global.take(),
        })
    }

    /// Removes the windows that ended by `now` and returns them (with
    /// their app, `None` for the global one), for the journal.
    pub fn expire(&self, now: SystemTime) -> Result<Vec<(Option<String>, Window)>, BookError> {
        self.0.modify(|windows| {
            let mut ended = Vec::new();
            if windows.global.as_ref().is_some_and(|w| w.until <= now) {
                ended.extend(windows.global.take().map(|w| (None, w)));
            }
            let expired: Vec<String> = windows
                .apps
                .iter()
                .filter(|(_, w)| w.until <= now)
                .map(|(app, _)| app.clone())
                .collect();
            for app in expired {
                ended.extend(windows.apps.remove(&app).map(|w| (Some(app), w)));
            }
            ended
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn window(until: SystemTime) -> Window {
        Window {
            until,
            reason: "patching".into(),
            by: "uid 0".into(),
        }
    }

    #[test]
    fn windows_apply_expire_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        // Whole seconds: the file keeps milliseconds.
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let book = Book::open(dir.path());
        book.start(Some("web"), window(now + Duration::from_secs(60)))
            .unwrap();
        book.start(None, window(now + Duration::from_secs(10)))
            .unwrap();
        assert!(book.active("web", now).is_some());
        assert!(book.active("db", now).is_some(), "global");
        assert!(book.active("db", now + Duration::from_secs(20)).is_none());

        let reopened = Book::open(dir.path());
        assert_eq!(reopened.snapshot(), book.snapshot());

        let ended = reopened.expire(now + Duration::from_secs(20)).unwrap();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].0, None);
        assert!(
            reopened
                .active("web", now + Duration::from_secs(20))
                .is_some()
        );
        assert_eq!(
            reopened.end(Some("web")).unwrap().map(|w| w.reason),
            Some("patching".into())
        );
        assert_eq!(Book::open(dir.path()).snapshot(), Windows::default());
    }
}
