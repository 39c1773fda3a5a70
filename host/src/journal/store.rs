//! The journal's storage: one SQLite database in WAL mode,
//! `state_dir/journal.db`.
//!
//! SQLite because the journal must survive years of a flapping app: an
//! index answers "this app, this hour" without reading the history, the
//! reset budget reads only the window's decisions, retention deletes in
//! place, and an admin can open the file with the `sqlite3` shell. WAL
//! mode lets readers (`medic events`, the API, a query tool) read while the
//! daemon writes, neither blocking the other; `synchronous = FULL` makes
//! each event durable (fsynced) before the insert returns, which is what
//! "journaled before the action" needs.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params_from_iter};

use super::{Event, Kind};

/// File name of the journal inside `state_dir`.
pub const FILE_NAME: &str = "journal.db";

/// How long a writer or reader waits for another's lock before failing:
/// `medic vm reset` and the daemon may write at the same moment.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// The schema; `user_version` says which one a file has.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS events (
        id     INTEGER PRIMARY KEY,
        ts_ms  INTEGER NOT NULL,
        app    TEXT,
        kind   TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS events_by_time ON events (ts_ms);
    CREATE INDEX IF NOT EXISTS events_by_app ON events (app, ts_ms);
    CREATE INDEX IF NOT EXISTS events_by_kind ON events (kind, ts_ms);
    CREATE TABLE IF NOT EXISTS imports (
        file  TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        events INTEGER NOT NULL,
        skipped INTEGER NOT NULL,
        ts_ms INTEGER NOT NULL
    );
    PRAGMA user_version = 1;
";

/// Which events a reader wants; empty fields select everything.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Only this app's events.
    pub app: Option<String>,
    /// Only events of these kinds.
    pub kinds: Vec<Kind>,
    /// Only events at or after this time.
    pub since: Option<SystemTime>,
    /// Only events before this time.
    pub until: Option<SystemTime>,
    /// Only the newest this many (still given oldest first).
    pub limit: Option<u64>,
}

impl Filter {
    /// Whether `event` passes (for events not read from the store: the
    /// live ones a follower gets, a legacy file's).
    pub fn matches(&self, event: &Event) -> bool {
        (self.app.is_none() || event.app == self.app)
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && self.since.is_none_or(|since| event.ts >= since)
            && self.until.is_none_or(|until| event.ts < until)
    }

    /// The `WHERE` clause and its parameters.
    fn sql(&self) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value;
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        if let Some(app) = &self.app {
            clauses.push("app = ?".to_owned());
            values.push(Value::Text(app.clone()));
        }
        if !self.kinds.is_empty() {
            let marks = vec!["?"; self.kinds.len()].join(", ");
            clauses.push(format!("kind IN ({marks})"));
            values.extend(self.kinds.iter().map(|k| Value::Text(k.to_string())));
        }
        if let Some(since) = self.since {
            clauses.push("ts_ms >= ?".to_owned());
            values.push(Value::Integer(millis(since)));
        }
        if let Some(until) = self.until {
            clauses.push("ts_ms < ?".to_owned());
            values.push(Value::Integer(millis(until)));
        }
        let clause = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        (clause, values)
    }
}

/// Milliseconds since the epoch, as stored; times before it are 0.
pub(super) fn millis(ts: SystemTime) -> i64 {
    ts.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Opens the database at `path` for writing, making its tables if it has
/// none.
pub(super) fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(BUSY_WAIT)?;
    // Only takes effect on a new, empty file: freed pages can then be
    // given back to the file system after retention.
    connection.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    // The WAL is cut back to this after each checkpoint.
    connection.pragma_update(None, "journal_size_limit", 8 << 20)?;
    connection.execute_batch(SCHEMA)?;
    Ok(connection)
}

/// Opens the database for reading, or `None` when there is none yet.
pub(super) fn open_reader(state_dir: &Path) -> rusqlite::Result<Option<Connection>> {
    let path = state_dir.join(FILE_NAME);
    if !path.exists() {
        return Ok(None);
    }
    let connection = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(BUSY_WAIT)?;
    // A daemon creating the file has not made its tables yet: no events.
    let created: Option<i64> = connection
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(created.map(|_| connection))
}

/// Inserts one event; durable when it returns.
pub(super) fn insert(connection: &Connection, event: &Event) -> rusqlite::Result<()> {
    connection
        .prepare_cached("INSERT INTO events (ts_ms, app, kind, detail) VALUES (?1, ?2, ?3, ?4)")?
        .execute((
            millis(event.ts),
            event.app.as_deref(),
            event.kind.to_string(),
            event.detail.to_string(),
        ))?;
    Ok(())
}

/// Calls `each` with every event `filter` selects, oldest first, and
/// returns how many rows were skipped (a kind from a newer medic, a detail
/// that is not JSON).
pub(super) fn select(
    connection: &Connection,
    filter: &Filter,
    mut each: impl FnMut(Event),
) -> rusqlite::Result<usize> {
    let (clause, mut values) = filter.sql();
    let columns = "id, ts_ms, app, kind, detail";
    let sql = match filter.limit {
        Some(limit) => {
            values.push(rusqlite::types::Value::Integer(
                i64::try_from(limit).unwrap_or(i64::MAX),
            ));
            format!(
                "SELECT {columns} FROM (SELECT {columns} FROM events {clause} ORDER BY id DESC LIMIT ?) ORDER BY id"
            )
        }
        None => format!("SELECT {columns} FROM events {clause} ORDER BY id"),
    };
    let mut statement = connection.prepare(&sql)?;
    let mut rows = statement.query(params_from_iter(values))?;
    let mut skipped = 0;
    while let Some(row) = rows.next()? {
        let kind: String = row.get(3)?;
        let detail: String = row.get(4)?;
        let parsed = serde_json::from_value::<Kind>(serde_json::Value::String(kind))
            .ok()
            .zip(serde_json::from_str(&detail).ok());
        match parsed {
            Some((kind, detail)) => each(Event {
                ts: from_millis(row.get(1)?),
                app: row.get(2)?,
                kind,
                detail,
            }),
            None => skipped += 1,
        }
    }
    Ok(skipped)
}

/// Whether the legacy file of `bytes` bytes was imported already (a crash
/// between the import and the rename).
pub(super) fn imported(connection: &Connection, file: &str, bytes: u64) -> rusqlite::Result<bool> {
    connection
        .query_row(
            "SELECT 1 FROM imports WHERE file = ?1 AND bytes = ?2",
            (file, i64::try_from(bytes).unwrap_or(i64::MAX)),
            |_| Ok(()),
        )
        .optional()
        .map(|found| found.is_some())
}

/// Records that `file` (`bytes` long) was imported, in the transaction that
/// inserted its events.
pub(super) fn mark_imported(
    connection: &Connection,
    file: &str,
    bytes: u64,
    events: usize,
    skipped: usize,
) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO imports (file, bytes, events, skipped, ts_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        (
            file,
            i64::try_from(bytes).unwrap_or(i64::MAX),
            i64::try_from(events).unwrap_or(i64::MAX),
            i64::try_from(skipped).unwrap_or(i64::MAX),
            millis(SystemTime::now()),
        ),
    )?;
    Ok(())
}

/// What one pass of retention deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Events older than `journal_keep`.
    pub by_age: u64,
    /// The oldest events beyond `journal_max`.
    pub by_size: u64,
}

/// The events retention never deletes, as SQL on a row: reset decisions
/// (and their outcomes) still inside the reset window, which the budget
/// counts.
const PROTECTED: &str = "(kind IN ('reset_decided', 'vm_reset') AND ts_ms >= :protect)";

/// Deletes up to `batch` of the oldest events that are not [`PROTECTED`]
/// from `protect_since`, only those before `older_than` when given, and
/// returns how many went. Small batches, so the writer is held briefly.
pub(super) fn delete_oldest(
    connection: &Connection,
    older_than: Option<SystemTime>,
    protect_since: SystemTime,
    batch: u64,
) -> rusqlite::Result<u64> {
    let deleted = connection.execute(
        &format!(
            "DELETE FROM events WHERE id IN (SELECT id FROM events \
             WHERE ts_ms < :cutoff AND NOT {PROTECTED} ORDER BY id LIMIT :batch)"
        ),
        rusqlite::named_params! {
            ":cutoff": older_than.map_or(i64::MAX, millis),
            ":protect": millis(protect_since),
            ":batch": i64::try_from(batch).unwrap_or(i64::MAX),
        },
    )?;
    Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
}

/// Gives up to `pages` free pages back to the file system; whether it is
/// worth another step (pages were freed and free ones are left; a file
/// made without `auto_vacuum` frees none, and that ends it too).
pub(super) fn give_back(connection: &Connection, pages: u32) -> rusqlite::Result<bool> {
    let free = || -> rusqlite::Result<i64> {
        connection.query_row("PRAGMA freelist_count", [], |r| r.get(0))
    };
    let before = free()?;
    // Each step of the pragma frees a page; step it to the end.
    let mut vacuum = connection.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
    let mut steps = vacuum.query([])?;
    while steps.next()?.is_some() {}
    let after = free()?;
    Ok(after > 0 && after < before)
}

/// Bytes the events take in the file: its pages less the free ones.
pub(super) fn used_bytes(connection: &Connection) -> rusqlite::Result<u64> {
    let pragma = |name: &str| -> rusqlite::Result<u64> {
        let value: i64 = connection.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?;
        Ok(u64::try_from(value).unwrap_or(0))
    };
    let pages = pragma("page_count")?.saturating_sub(pragma("freelist_count")?);
    Ok(pages.saturating_mul(pragma("page_size")?))
}
