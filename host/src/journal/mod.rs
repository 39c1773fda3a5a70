//! The durable journal: every decision medic takes, in an SQLite database,
//! `state_dir/journal.db` (see `store.rs` for why SQLite).
//!
//! An event is inserted and fsynced *before* the action it records, so
//! after a crash or a VM reset the journal says what was about to happen.
//! The reset budget is counted from it, which is how it survives the reset
//! itself. Retention by age and size keeps it bounded for years, never
//! deleting the decisions the budget counts. A `journal.jsonl` from an
//! older medic is imported on the first start.

mod event;
pub mod legacy;
mod store;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rusqlite::Connection;

pub use event::{Event, Kind};
pub(crate) use event::{from_rfc3339, rfc3339};
pub use store::{FILE_NAME, Filter, Pruned};

/// Why the journal could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Opening, reading or renaming a file failed.
    #[error("journal {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The database refused (a full disk, a broken file, a lock held too
    /// long by another writer).
    #[error("journal {}: {source}", .path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
}

/// Something told of every event once it is on disk, or once [`Journal::record`]
/// failed to put it there (metrics, alerts); it must return at once, never
/// block.
pub type Observer = Box<dyn Fn(&Event) + Send + Sync>;

/// How many events a follower (`medic events --follow`) may fall behind
/// before it misses some.
const FOLLOW_BUFFER: usize = 1024;

/// Events deleted per step of retention: a few milliseconds of work, so
/// the writer is never held long.
const PRUNE_BATCH: u64 = 2_000;

/// Pages given back to the file system per step of retention.
const VACUUM_PAGES: u32 = 1_024;

/// How long the journal is kept, and how large it may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events older than this are deleted (`journal_keep`).
    pub keep: Duration,
    /// The oldest events beyond this many bytes are deleted (`journal_max`).
    pub max_bytes: u64,
    /// Reset decisions younger than this are never deleted: the reset
    /// budget counts them (`[escalation] reset_window`).
    pub protect: Duration,
}

/// An open journal; appends are serialised and durable.
pub struct Journal {
    path: PathBuf,
    connection: Mutex<Connection>,
    observers: std::sync::RwLock<Vec<Observer>>,
    followers: tokio::sync::broadcast::Sender<Event>,
    /// Whether the last write failed, so a failing disk is alerted once
    /// per streak, not once per event.
    failing: std::sync::atomic::AtomicBool,
    /// Events that could not be written, for the metrics.
    write_failures: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens (creating if needed) the journal in `state_dir`, importing a
    /// `journal.jsonl` left by an older medic first: its events are
    /// inserted in one transaction (bad lines skipped and counted, and
    /// journaled as `journal_imported`), then the file is renamed to
    /// `journal.jsonl.imported`.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        let path = state_dir.join(FILE_NAME);
        std::fs::create_dir_all(state_dir).map_err(|source| JournalError::Io {
            path: state_dir.to_owned(),
            source,
        })?;
        // Made 0640 before SQLite opens it, whatever the umask; SQLite
        // gives its `-wal` and `-shm` files the same mode.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&path)
            .map_err(|source| JournalError::Io {
                path: path.clone(),
                source,
            })?;
        let connection = store::open_writer(&path).map_err(|source| JournalError::Database {
            path: path.clone(),
            source,
        })?;
        let journal = Self {
            path,
            connection: Mutex::new(connection),
            observers: std::sync::RwLock::new(Vec::new()),
            followers: tokio::sync::broadcast::channel(FOLLOW_BUFFER).0,
            failing: std::sync::atomic::AtomicBool::new(false),
            write_failures: std::sync::atomic::AtomicU64::new(0),
        };
        journal.import_legacy(state_dir)?;
        Ok(journal)
    }

    /// Imports `state_dir/journal.jsonl`, if there is one.
    fn import_legacy(&self, state_dir: &Path) -> Result<(), JournalError> {
        let legacy = state_dir.join(legacy::FILE_NAME);
        let io = |source| JournalError::Io {
            path: legacy.clone(),
            source,
        };
        let bytes = match std::fs::metadata(&legacy) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        let db = |source| JournalError::Database {
            path: self.path.clone(),
            source,
        };
        let mut connection = self.lock();
        let name = legacy::FILE_NAME;
        let mut imported = None;
        if !store::imported(&connection, name, bytes).map_err(db)? {
            let transaction = connection.transaction().map_err(db)?;
            let mut events = 0;
            let mut failed = None;
            let skipped = legacy::each_event(&legacy, |event| {
                if failed.is_none() {
                    match store::insert(&transaction, &event) {
                        Ok(()) => events += 1,
                        Err(e) => failed = Some(e),
                    }
                }
            })
            .map_err(io)?
            .unwrap_or(0);
            if let Some(e) = failed {
                return Err(db(e));
            }
            store::mark_imported(&transaction, name, bytes, events, skipped).map_err(db)?;
            transaction.commit().map_err(db)?;
            imported = Some((events, skipped));
        }
        let kept = legacy::imported_name(&legacy);
        std::fs::rename(&legacy, &kept).map_err(io)?;
        drop(connection);
        if let Some((events, skipped)) = imported {
            self.record(Event::new(
                None,
                Kind::JournalImported,
                serde_json::json!({
                    "file": legacy.display().to_string(),
                    "kept_as": kept.display().to_string(),
                    "events": events,
                    "skipped": skipped,
                }),
            ));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Tells `observer` of every event recorded from now on.
    pub fn observe(&self, observer: Observer) {
        self.observers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(observer);
    }

    /// Events recorded from now on, for followers; one that falls more
    /// than 1024 events behind is told how many it missed.
    pub fn follow(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.followers.subscribe()
    }

    /// Appends one event and waits until it is on disk; observers and
    /// followers are told only once it is there, so a failed append tells
    /// no one of something that did not happen (a refused reset).
    pub fn append(&self, event: &Event) -> Result<(), JournalError> {
        let inserted = store::insert(&self.lock(), event);
        inserted.map_err(|source| JournalError::Database {
            path: self.path.clone(),
            source,
        })?;
        self.publish(event);
        Ok(())
    }

    /// Inserts `events` in one transaction and tells no one: how the
    /// benchmarks build a large history quickly.
    #[doc(hidden)]
    pub fn append_batch(&self, events: &[Event]) -> Result<(), JournalError> {
        let db = |source| JournalError::Database {
            path: self.path.clone(),
            source,
        };
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(db)?;
        for event in events {
            store::insert(&transaction, event).map_err(db)?;
        }
        transaction.commit().map_err(db)
    }

    /// Appends an event; a journal that cannot be written (a full disk) is
    /// logged loudly, with the whole event so the log keeps what the
    /// journal could not, but does not stop supervision (an unwatched app
    /// is worse). Observers and followers are told either way: a full
    /// disk is exactly when the alert sinks must still hear of it. The
    /// first failure of a streak is also an `alert` to them.
    pub fn record(&self, event: Event) {
        use std::sync::atomic::Ordering;
        let app = event.app.as_deref().unwrap_or("-");
        match self.append(&event) {
            Ok(()) => {
                self.failing.store(false, Ordering::Relaxed);
                tracing::info!(app, kind = %event.kind, detail = %event.detail, "event");
            }
            Err(e) => {
                tracing::error!(error = %e, app, kind = %event.kind, detail = %event.detail, "event NOT journaled");
                self.write_failures.fetch_add(1, Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    self.publish(&Event::new(
                        None,
                        Kind::Alert,
                        serde_json::json!({
                            "reason": format!("the journal cannot be written; resets are refused until it can: {e}"),
                        }),
                    ));
                }
                self.publish(&event);
            }
        }
    }

    /// Tells the observers and followers of `event`.
    fn publish(&self, event: &Event) {
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
    }

    /// Deletes what `retention` no longer keeps, and journals what went
    /// (`journal_pruned`): events older than `keep`, then, when the events
    /// take more than `max_bytes`, the oldest until they take 90 % of it;
    /// never a decision the reset budget counts. It deletes in batches and
    /// lets go of the writer between them, so events recorded meanwhile
    /// wait milliseconds, not the whole pass.
    pub fn prune(&self, retention: &Retention) -> Result<Pruned, JournalError> {
        let db = |source| JournalError::Database {
            path: self.path.clone(),
            source,
        };
        let now = SystemTime::now();
        let before = |age: Duration| now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
        let (cutoff, protect) = (before(retention.keep), before(retention.protect));
        let mut pruned = Pruned::default();
        loop {
            let deleted = store::delete_oldest(&self.lock(), Some(cutoff), protect, PRUNE_BATCH)
                .map_err(db)?;
            if deleted == 0 {
                break;
            }
            pruned.by_age += deleted;
        }
        if store::used_bytes(&self.lock()).map_err(db)? > retention.max_bytes {
            let target = retention.max_bytes / 10 * 9;
            while store::used_bytes(&self.lock()).map_err(db)? > target {
                let deleted =
                    store::delete_oldest(&self.lock(), None, protect, PRUNE_BATCH).map_err(db)?;
                if deleted == 0 {
                    break;
                }
                pruned.by_size += deleted;
            }
        }
        if pruned == Pruned::default() {
            return Ok(pruned);
        }
        while store::give_back(&self.lock(), VACUUM_PAGES).map_err(db)? {}
        self.record(Event::new(
            None,
            Kind::JournalPruned,
            serde_json::json!({"by_age": pruned.by_age, "by_size": pruned.by_size}),
        ));
        Ok(pruned)
    }

    /// How many events [`Journal::record`] could not write since medic
    /// started (`medic_journal_write_failures_total`).
    pub fn write_failures(&self) -> u64 {
        self.write_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The file this journal writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every later write that needs a new page fail as on a full
    /// disk (`SQLITE_FULL`), for tests of what a full disk refuses.
    #[cfg(test)]
    pub(crate) fn refuse_growth(&self) {
        let connection = self.lock();
        let pages: i64 = connection
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap_or(1);
        let _ = connection.pragma_update(None, "max_page_count", pages);
        // Fill what room the pages have left, so no event fits any more.
        let filler = Event {
            ts: SystemTime::UNIX_EPOCH,
            app: None,
            kind: Kind::DaemonStarted,
            detail: serde_json::Value::Null,
        };
        while store::insert(&connection, &filler).is_ok() {}
    }
}

/// What [`read`] found in a journal.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Contents {
    /// The events, oldest first.
    pub events: Vec<Event>,
    /// Events that could not be read (a line torn by a crash in a legacy
    /// file, a kind from a newer medic) and were skipped.
    pub skipped: usize,
}

/// Calls `each` with every event of the journal in `state_dir` that
/// `filter` selects, oldest first, and returns how many were skipped.
/// Before the daemon has imported a legacy `journal.jsonl`, that file is
/// read instead. A missing journal is empty.
pub fn query(
    state_dir: &Path,
    filter: &Filter,
    mut each: impl FnMut(Event),
) -> Result<usize, JournalError> {
    let path = state_dir.join(FILE_NAME);
    let db = |source| JournalError::Database {
        path: path.clone(),
        source,
    };
    if let Some(connection) = store::open_reader(state_dir).map_err(db)? {
        return store::select(&connection, filter, each).map_err(db);
    }
    let legacy = state_dir.join(legacy::FILE_NAME);
    let mut newest = std::collections::VecDeque::new();
    let limit = filter
        .limit
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let skipped = legacy::each_event(&legacy, |event| {
        if !filter.matches(&event) {
            return;
        }
        match limit {
            None => each(event),
            Some(limit) => {
                newest.push_back(event);
                if newest.len() > limit {
                    newest.pop_front();
                }
            }
        }
    })
    .map_err(|source| JournalError::Io {
        path: legacy.clone(),
        source,
    })?
    .unwrap_or(0);
    newest.into_iter().for_each(each);
    Ok(skipped)
}

/// Reads every event of the journal in `state_dir`, oldest first, and
/// counts those skipped.
pub fn read(state_dir: &Path) -> Result<Contents, JournalError> {
    let mut contents = Contents::default();
    contents.skipped = query(state_dir, &Filter::default(), |e| contents.events.push(e))?;
    Ok(contents)
}

/// Reads the events `filter` selects, oldest first, as [`query`] does;
/// skipped ones are logged as one warning.
pub fn read_filtered(state_dir: &Path, filter: &Filter) -> Result<Vec<Event>, JournalError> {
    let mut events = Vec::new();
    let skipped = query(state_dir, filter, |e| events.push(e))?;
    if skipped > 0 {
        tracing::warn!(
            path = %state_dir.join(FILE_NAME).display(),
            "journal: {skipped} unreadable events skipped"
        );
    }
    Ok(events)
}

/// Reads every event of the journal in `state_dir`, oldest first.
pub fn read_all(state_dir: &Path) -> Result<Vec<Event>, JournalError> {
    read_filtered(state_dir, &Filter::default())
}

#[cfg(test)]
mod tests;
