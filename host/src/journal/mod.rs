//! The durable journal: every decision medic takes, one JSON object per line
//! in `state_dir/journal.jsonl`.
//!
//! An event is appended and fsynced *before* the action it records, so after
//! a crash or a VM reset the journal says what was about to happen. The reset
//! budget is counted from it, which is how it survives the reset itself.
//! Plain JSON lines keep the file readable by `medic events`, `tail -f` and
//! `jq` while the daemon writes it.

mod event;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub(crate) use event::rfc3339;
pub use event::{Event, Kind};

/// File name of the journal inside `state_dir`.
pub const FILE_NAME: &str = "journal.jsonl";

/// Why the journal could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Opening, appending or syncing failed.
    #[error("journal {}: {source}", .path.display())]
    Io {
        /// The journal file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Something told of every event once it is on disk (metrics, alerts); it
/// must return at once, never block.
pub type Observer = Box<dyn Fn(&Event) + Send + Sync>;

/// How many events a follower (`medic events --follow`) may fall behind
/// before it misses some.
const FOLLOW_BUFFER: usize = 1024;

/// An open journal; appends are serialised and durable.
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
    observers: std::sync::RwLock<Vec<Observer>>,
    followers: tokio::sync::broadcast::Sender<Event>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens (creating if needed) the journal in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        let path = state_dir.join(FILE_NAME);
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        Ok(Self {
            path,
            file: Mutex::new(file),
            observers: std::sync::RwLock::new(Vec::new()),
            followers: tokio::sync::broadcast::channel(FOLLOW_BUFFER).0,
        })
    }

    /// Tells `observer` of every event appended from now on.
    pub fn observe(&self, observer: Observer) {
        self.observers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(observer);
    }

    /// Events appended from now on, for followers; one that falls more
    /// than 1024 events behind is told how many it missed.
    pub fn follow(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.followers.subscribe()
    }

    /// Appends one event and waits until it is on disk.
    pub fn append(&self, event: &Event) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(event).map_err(|e| io(e.into()))?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(&line).map_err(io)?;
        file.sync_data().map_err(io)?;
        drop(file);
        for observer in self
            .observers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
        {
            observer(event);
        }
        // No follower is the usual case, not an error.
        let _ = self.followers.send(event.clone());
        Ok(())
    }

    /// Appends an event; a journal that cannot be written is logged loudly
    /// but does not stop supervision (an unwatched app is worse).
    pub fn record(&self, event: Event) {
        match self.append(&event) {
            Ok(()) => {
                tracing::info!(app = event.app.as_deref().unwrap_or("-"), kind = %event.kind, detail = %event.detail, "event")
            }
            Err(e) => tracing::error!(error = %e, kind = %event.kind, "event NOT journaled"),
        }
    }

    /// The file this journal writes.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads every complete event of the journal in `state_dir`, oldest first.
/// A torn last line (a crash mid-write) and lines from a newer medic that
/// this one cannot parse are skipped, never fatal.
pub fn read_all(state_dir: &Path) -> Result<Vec<Event>, JournalError> {
    let path = state_dir.join(FILE_NAME);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(JournalError::Io { path, source }),
    };
    Ok(BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn appended_events_read_back_in_order_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        journal
            .append(&Event::new(
                Some("web"),
                Kind::AppFailed,
                json!({"reason": "down"}),
            ))
            .unwrap();
        journal
            .append(&Event::new(None, Kind::DaemonStarted, json!({})))
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(journal.path())
            .unwrap()
            .write_all(b"{\"ts\":\"2026-")
            .unwrap();
        let events = read_all(dir.path()).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, Kind::AppFailed);
        assert_eq!(events[0].app.as_deref(), Some("web"));
        assert_eq!(events[1].kind, Kind::DaemonStarted);
    }
}
