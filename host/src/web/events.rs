//! The newest journal events for a page, read without holding the page
//! up: both status pages (the daemon's and the unit controller's) show them.

use std::path::PathBuf;
use std::time::Duration;

use crate::journal::{self, Event, Filter};

/// The newest `limit` events of the journal in `state_dir`, newest first.
/// SQLite is read on a blocking thread, and the answer waited for `wait`
/// at most, so a busy disk delays no page by more. The error is a note fit
/// for a page (the details, with paths, go to the log).
pub async fn recent_events(
    state_dir: PathBuf,
    limit: u64,
    wait: Duration,
) -> Result<Vec<Event>, String> {
    let filter = Filter {
        limit: Some(limit),
        ..Filter::default()
    };
    let read = tokio::task::spawn_blocking(move || journal::read_filtered(&state_dir, &filter));
    match tokio::time::timeout(wait, read).await {
        Ok(Ok(Ok(mut events))) => {
            // The journal gives the newest `limit` oldest first.
            events.reverse();
            Ok(events)
        }
        Ok(Ok(Err(error))) => {
            tracing::warn!(%error, "status page: cannot read the journal");
            Err("the journal cannot be read now (medic's log says why)".to_owned())
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "status page: the journal reader failed");
            Err("the journal cannot be read now (medic's log says why)".to_owned())
        }
        Err(_) => Err(format!(
            "the journal did not answer within {}",
            humantime::format_duration(wait)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, Kind};
    use serde_json::json;
    use std::time::SystemTime;

    const WAIT: Duration = Duration::from_secs(2);

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    #[tokio::test]
    async fn recent_events_are_the_newest_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        for i in 0..60 {
            let mut event = Event::new(Some("web"), Kind::AppFailed, json!({"reason": i}));
            event.ts = at(i);
            journal.append(&event).unwrap();
        }
        let events = recent_events(dir.path().to_owned(), 50, WAIT)
            .await
            .unwrap();
        let reasons: Vec<u64> = events
            .iter()
            .map(|e| e.detail["reason"].as_u64().unwrap())
            .collect();
        assert_eq!(reasons, (10..60).rev().collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_missing_journal_is_empty_and_a_broken_one_a_note() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            recent_events(dir.path().to_owned(), 50, WAIT).await,
            Ok(Vec::new())
        );
        std::fs::write(dir.path().join(journal::FILE_NAME), "not a database").unwrap();
        let note = recent_events(dir.path().to_owned(), 50, WAIT)
            .await
            .unwrap_err();
        assert!(note.contains("cannot be read"), "{note}");
        assert!(!note.contains(&dir.path().display().to_string()), "{note}");
    }
}
