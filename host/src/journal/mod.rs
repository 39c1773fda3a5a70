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
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
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

/// Something told of every event once it is on disk, or once [`Journal::record`]
/// failed to put it there (metrics, alerts); it must return at once, never
/// block.
pub type Observer = Box<dyn Fn(&Event) + Send + Sync>;

/// How many events a follower (`medic events --follow`) may fall behind
/// before it misses some.
const FOLLOW_BUFFER: usize = 1024;

/// An open journal; appends are serialised and durable.
pub struct Journal {
    path: PathBuf,
    file: Mutex<Tail>,
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
    /// Opens (creating if needed) the journal in `state_dir`. A torn last
    /// line left by a crash (no `\n` at the end) is ended first, durably,
    /// so the next event starts a line of its own.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        let path = state_dir.join(FILE_NAME);
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        // Read as well as append: only to look at the last byte.
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            // Readable by medic's group (admins), whatever the umask.
            .mode(0o640)
            .open(&path)
            .map_err(io)?;
        end_torn_tail(&mut file).map_err(io)?;
        Ok(Self {
            path,
            file: Mutex::new(Tail { file, torn: false }),
            observers: std::sync::RwLock::new(Vec::new()),
            followers: tokio::sync::broadcast::channel(FOLLOW_BUFFER).0,
        })
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
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(event).map_err(|e| io(e.into()))?;
        line.push(b'\n');
        let mut tail = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tail.write(&line).map_err(io)?;
        drop(tail);
        self.publish(event);
        Ok(())
    }

    /// Appends an event; a journal that cannot be written (a full disk) is
    /// logged loudly, with the whole event so the log keeps what the
    /// journal could not, but does not stop supervision (an unwatched app
    /// is worse). Observers and followers are told either way: a full
    /// disk is exactly when the alert sinks must still hear of it.
    pub fn record(&self, event: Event) {
        let app = event.app.as_deref().unwrap_or("-");
        match self.append(&event) {
            Ok(()) => tracing::info!(app, kind = %event.kind, detail = %event.detail, "event"),
            Err(e) => {
                tracing::error!(error = %e, app, kind = %event.kind, detail = %event.detail, "event NOT journaled");
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

    /// The file this journal writes.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The journal file and whether a failed append may have left part of a
/// line at its end.
struct Tail {
    file: File,
    torn: bool,
}

impl Tail {
    /// Writes `line` and syncs it. A write that fails part way (a full
    /// disk, a file size limit) leaves a torn line; it is ended before the
    /// next line, or that line would be glued onto it and lost with it
    /// once space is back.
    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.torn {
            end_torn_tail(&mut self.file)?;
            self.torn = false;
        }
        if let Err(e) = self.file.write_all(line) {
            self.torn = true;
            return Err(e);
        }
        self.file.sync_data()
    }
}

/// Ends a torn last line (a crash mid-append: no `\n` at the end) with a
/// `\n`, durably, before anything else is appended. Without it the next
/// event would be glued onto the torn line and lost with it when read,
/// and a lost `reset_decided` refills the reset budget.
fn end_torn_tail(file: &mut File) -> std::io::Result<()> {
    if file.metadata()?.len() == 0 {
        return Ok(());
    }
    let mut last = [0_u8; 1];
    file.seek(SeekFrom::End(-1))?;
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        // O_APPEND: the write goes to the end whatever the read position.
        file.write_all(b"\n")?;
        file.sync_data()?;
    }
    Ok(())
}

/// What [`read`] found in a journal.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Contents {
    /// The events, oldest first.
    pub events: Vec<Event>,
    /// Lines that were not an event (torn by a crash, not UTF-8 or JSON,
    /// or from a newer medic) and were skipped.
    pub skipped: usize,
}

/// Reads every event of the journal in `state_dir`, oldest first, and
/// counts the lines skipped.
///
/// Lines are split on bytes and each is parsed on its own, so a line that
/// is not an event (torn by a crash, invalid UTF-8, half a JSON object, a
/// kind from a newer medic) is skipped and counted, and reading goes on:
/// stopping there would hide every later `reset_decided` and refill the
/// reset budget. Blank lines are ignored and not counted. A missing
/// journal is empty; an I/O error while reading is an error, not a
/// shorter journal, for the same reason.
pub fn read(state_dir: &Path) -> Result<Contents, JournalError> {
    let path = state_dir.join(FILE_NAME);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Contents::default()),
        Err(source) => return Err(JournalError::Io { path, source }),
    };
    let mut reader = BufReader::new(file);
    let mut contents = Contents::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| JournalError::Io {
                path: path.clone(),
                source,
            })?;
        if read == 0 {
            return Ok(contents);
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Event>(&line) {
            Ok(event) => contents.events.push(event),
            Err(_) => contents.skipped += 1,
        }
    }
}

/// Reads every event of the journal in `state_dir`, oldest first, as
/// [`read`] does; skipped lines are logged as one warning.
pub fn read_all(state_dir: &Path) -> Result<Vec<Event>, JournalError> {
    let contents = read(state_dir)?;
    if contents.skipped > 0 {
        tracing::warn!(
            path = %state_dir.join(FILE_NAME).display(),
            "journal: {} unreadable lines skipped",
            contents.skipped
        );
    }
    Ok(contents.events)
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
        assert_eq!(read(dir.path()).unwrap().skipped, 1);
    }

    /// One event as the journal writes it, `\n` included.
    fn line(kind: Kind) -> Vec<u8> {
        let mut line = serde_json::to_vec(&Event::new(Some("web"), kind, json!({}))).unwrap();
        line.push(b'\n');
        line
    }

    /// Issue 12 item 6: a torn line with invalid UTF-8 in the middle of the
    /// journal is skipped and counted; the events after it are still read.
    #[test]
    fn a_torn_line_with_invalid_utf8_hides_no_later_event() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = line(Kind::ResetDecided);
        bytes.extend_from_slice(b"{\"ts\":\"2026-01-01T00:00:00.000Z\",\"app\":\"w\xff\xfe\x80\n");
        bytes.extend_from_slice(b"\n");
        bytes.extend(line(Kind::ResetDecided));
        std::fs::write(dir.path().join(FILE_NAME), bytes).unwrap();

        let contents = read(dir.path()).unwrap();
        let kinds: Vec<_> = contents.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [Kind::ResetDecided, Kind::ResetDecided]);
        assert_eq!(contents.skipped, 1, "the torn line, not the blank one");
        assert_eq!(read_all(dir.path()).unwrap(), contents.events);
    }

    /// Issue 12 item 6: opening a journal whose last line is torn (no
    /// `\n`) ends that line first, so the next event is not glued onto it.
    #[test]
    fn open_ends_a_torn_tail_so_the_next_event_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut bytes = line(Kind::ResetDecided);
        bytes.extend_from_slice(b"{\"ts\":\"2026-01-01T00:00:00.000Z\",\"app\":\"w\xff");
        std::fs::write(&path, bytes).unwrap();

        let journal = Journal::open(dir.path()).unwrap();
        journal
            .append(&Event::new(Some("web"), Kind::ResetDecided, json!({})))
            .unwrap();
        let contents = read(dir.path()).unwrap();
        let kinds: Vec<_> = contents.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [Kind::ResetDecided, Kind::ResetDecided]);
        assert_eq!(contents.skipped, 1);

        // An intact journal is left as it is: no blank lines on reopening.
        let before = std::fs::read(&path).unwrap();
        drop(Journal::open(dir.path()).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_new_journal_is_not_readable_by_others_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        drop(Journal::open(dir.path()).unwrap());
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777 & !0o640, 0, "mode {mode:o}");
    }

    mod any_bytes {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Whatever bytes the file holds (a crash, a disk error, an
            /// editor), reading never panics, every valid event line is
            /// read, and opening it for appending works.
            #[test]
            fn any_file_reads_without_panic(
                noise in prop::collection::vec(any::<u8>(), 0..2048),
                at in 0usize..4,
            ) {
                let dir = tempfile::tempdir().unwrap();
                let valid = serde_json::to_vec(&Event::new(None, Kind::ResetDecided, json!({}))).unwrap();
                let mut bytes = Vec::new();
                for i in 0..4 {
                    if i == at {
                        bytes.extend_from_slice(&noise);
                        bytes.push(b'\n');
                    }
                    bytes.extend_from_slice(&valid);
                    bytes.push(b'\n');
                }
                std::fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
                let contents = read(dir.path()).unwrap();
                prop_assert!(contents.events.iter().filter(|e| e.kind == Kind::ResetDecided).count() >= 4);
                prop_assert!(Journal::open(dir.path()).is_ok());
            }
        }
    }
}
