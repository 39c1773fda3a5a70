//! The journal as medic wrote it before the database:
//! `state_dir/journal.jsonl`, one JSON event per line. It is read to import
//! it into the database on the first start, and by readers until then.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::Event;

/// File name of the legacy journal inside `state_dir`.
pub const FILE_NAME: &str = "journal.jsonl";

/// What the legacy file is renamed to once imported.
pub const IMPORTED_SUFFIX: &str = ".imported";

/// Calls `each` with every event of the JSON-lines file at `path`, oldest
/// first, and returns how many lines were skipped; `None` when there is no
/// such file.
///
/// Lines are split on bytes and each is parsed on its own, so a line that
/// is not an event (torn by a crash, invalid UTF-8, half a JSON object, a
/// kind from a newer medic) is skipped and counted, and reading goes on:
/// stopping there would hide every later `reset_decided` and refill the
/// reset budget. Blank lines are ignored and not counted. An I/O error
/// while reading is an error, not a shorter journal, for the same reason.
pub fn each_event(path: &Path, mut each: impl FnMut(Event)) -> std::io::Result<Option<usize>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(file);
    let mut skipped = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(Some(skipped));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Event>(&line) {
            Ok(event) => each(event),
            Err(_) => skipped += 1,
        }
    }
}

/// A name beside `path` that no file has yet, for the imported legacy
/// journal: `journal.jsonl.imported`, else `.imported.2`, `.3`...
pub fn imported_name(path: &Path) -> PathBuf {
    let mut base = path.as_os_str().to_owned();
    base.push(IMPORTED_SUFFIX);
    let first = PathBuf::from(&base);
    if !first.exists() {
        return first;
    }
    (2_u32..)
        .map(|n| {
            let mut name = base.clone();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        })
        .find(|candidate| !candidate.exists())
        .unwrap_or(first)
}
