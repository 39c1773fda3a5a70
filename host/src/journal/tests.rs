use super::*;
use serde_json::json;

fn event_at(app: &str, kind: Kind, ts: SystemTime) -> Event {
    Event {
        ts,
        app: Some(app.to_owned()),
        kind,
        detail: json!({"n": 1}),
    }
}

fn kinds(events: &[Event]) -> Vec<Kind> {
    events.iter().map(|e| e.kind).collect()
}

/// One event as the legacy journal wrote it, `\n` included.
fn line(kind: Kind) -> Vec<u8> {
    let mut line = serde_json::to_vec(&Event::new(Some("web"), kind, json!({}))).unwrap();
    line.push(b'\n');
    line
}

#[test]
fn appended_events_read_back_in_order_exactly_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let first = Event::new(Some("web"), Kind::AppFailed, json!({"reason": "down"}));
    let second = Event::new(None, Kind::DaemonStarted, json!({"apps": ["web"]}));
    journal.append(&first).unwrap();
    journal.append(&second).unwrap();
    let events = read_all(dir.path()).unwrap();
    // The JSON lines are what `medic events --json` printed before.
    let lines: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            serde_json::to_string(&first).unwrap(),
            serde_json::to_string(&second).unwrap()
        ]
    );
}

#[test]
fn filters_select_by_app_kind_time_and_keep_the_newest_when_limited() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let at = |s: u64| t0 + Duration::from_secs(s);
    for (s, app, kind) in [
        (0, "web", Kind::AppFailed),
        (10, "db", Kind::AppFailed),
        (20, "web", Kind::RecoveryAttempt),
        (30, "web", Kind::AppRecovered),
        (40, "web", Kind::AppFailed),
    ] {
        journal.append(&event_at(app, kind, at(s))).unwrap();
    }
    let select = |filter: Filter| read_filtered(dir.path(), &filter).unwrap();
    let web = select(Filter {
        app: Some("web".into()),
        ..Filter::default()
    });
    assert_eq!(web.len(), 4);
    let failed = select(Filter {
        kinds: vec![Kind::AppFailed],
        since: Some(at(10)),
        until: Some(at(40)),
        ..Filter::default()
    });
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].app.as_deref(), Some("db"));
    let newest = select(Filter {
        app: Some("web".into()),
        limit: Some(2),
        ..Filter::default()
    });
    assert_eq!(kinds(&newest), [Kind::AppRecovered, Kind::AppFailed]);
    assert_eq!(newest[0].ts, at(30));
    let several = select(Filter {
        kinds: vec![Kind::RecoveryAttempt, Kind::AppRecovered],
        ..Filter::default()
    });
    assert_eq!(several.len(), 2);
    for filter in [
        Filter {
            app: Some("web".into()),
            ..Filter::default()
        },
        Filter {
            kinds: vec![Kind::AppFailed],
            since: Some(at(10)),
            ..Filter::default()
        },
    ] {
        let matched: Vec<Event> = read_all(dir.path())
            .unwrap()
            .into_iter()
            .filter(|e| filter.matches(e))
            .collect();
        assert_eq!(select(filter), matched, "the SQL and matches() agree");
    }
}

/// A journal from an older medic, with a torn line (invalid UTF-8) between
/// two reset decisions: both are imported, the bad line is counted, the
/// file is kept beside as `.imported`, and a second start imports nothing.
#[test]
fn a_legacy_journal_is_imported_once_with_its_torn_line_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let legacy_file = dir.path().join(legacy::FILE_NAME);
    let mut bytes = line(Kind::ResetDecided);
    bytes.extend_from_slice(b"{\"ts\":\"2026-01-01T00:00:00.000Z\",\"app\":\"w\xff\xfe\x80\n\n");
    bytes.extend(line(Kind::ResetDecided));
    std::fs::write(&legacy_file, &bytes).unwrap();

    // Before the daemon imports it, readers read the file itself.
    let before = read(dir.path()).unwrap();
    assert_eq!(
        kinds(&before.events),
        [Kind::ResetDecided, Kind::ResetDecided]
    );
    assert_eq!(before.skipped, 1);

    drop(Journal::open(dir.path()).unwrap());
    assert!(!legacy_file.exists());
    let kept = dir.path().join("journal.jsonl.imported");
    assert_eq!(std::fs::read(&kept).unwrap(), bytes, "kept byte for byte");
    let events = read_all(dir.path()).unwrap();
    assert_eq!(
        kinds(&events),
        [
            Kind::ResetDecided,
            Kind::ResetDecided,
            Kind::JournalImported
        ]
    );
    assert_eq!(events[2].detail["events"], 2);
    assert_eq!(events[2].detail["skipped"], 1);

    drop(Journal::open(dir.path()).unwrap());
    assert_eq!(read_all(dir.path()).unwrap().len(), 3, "imported once");
}

/// A crash after the import committed but before the rename: the next
/// start renames the file without importing it again.
#[test]
fn an_import_interrupted_before_the_rename_is_not_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let legacy_file = dir.path().join(legacy::FILE_NAME);
    std::fs::write(&legacy_file, line(Kind::ResetDecided)).unwrap();
    drop(Journal::open(dir.path()).unwrap());
    let kept = dir.path().join("journal.jsonl.imported");
    std::fs::rename(&kept, &legacy_file).unwrap();
    drop(Journal::open(dir.path()).unwrap());
    let decided = read_all(dir.path())
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == Kind::ResetDecided)
        .count();
    assert_eq!(decided, 1);
    assert!(kept.exists() && !legacy_file.exists());
}

#[test]
fn a_new_journal_is_not_readable_by_others_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    journal
        .append(&Event::new(None, Kind::DaemonStarted, json!({})))
        .unwrap();
    for name in [FILE_NAME, "journal.db-wal"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777 & !0o640, 0, "{name}: mode {mode:o}");
    }
}

/// Retention by age deletes old events but never a reset decision still
/// inside the reset window, even one older than everything it deletes.
#[test]
fn retention_by_age_keeps_the_decisions_the_budget_counts() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let now = SystemTime::now();
    let ago = |h: u64| now - Duration::from_secs(h * 3600);
    journal
        .append(&event_at("web", Kind::ResetDecided, ago(30)))
        .unwrap();
    journal
        .append(&event_at("web", Kind::ResetDecided, ago(100)))
        .unwrap();
    for h in [50, 40, 1] {
        journal
            .append(&event_at("web", Kind::AppFailed, ago(h)))
            .unwrap();
    }
    let pruned = journal
        .prune(&Retention {
            keep: Duration::from_secs(24 * 3600),
            max_bytes: 1 << 30,
            protect: Duration::from_secs(48 * 3600),
        })
        .unwrap();
    assert_eq!(
        pruned,
        Pruned {
            by_age: 3,
            by_size: 0
        }
    );
    let events = read_all(dir.path()).unwrap();
    assert_eq!(
        kinds(&events),
        [Kind::ResetDecided, Kind::AppFailed, Kind::JournalPruned]
    );
    assert_eq!(store::millis(events[0].ts), store::millis(ago(30)));
    assert_eq!(events[2].detail, json!({"by_age": 3, "by_size": 0}));
}

/// Retention by size deletes the oldest events until the journal fits, and
/// gives the space back to the file system; a protected decision older
/// than all of them survives.
#[test]
fn retention_by_size_deletes_the_oldest_and_shrinks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let now = SystemTime::now();
    journal
        .append(&event_at(
            "web",
            Kind::ResetDecided,
            now - Duration::from_secs(60),
        ))
        .unwrap();
    let flapping = Event {
        ts: now,
        app: Some("web".into()),
        kind: Kind::AppFailed,
        detail: json!({"reason": "x".repeat(500)}),
    };
    journal.append_batch(&vec![flapping; 20_000]).unwrap();
    journal
        .lock()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let size = || std::fs::metadata(journal.path()).unwrap().len();
    let before = size();
    assert!(before > 10 << 20, "{before}");
    let max_bytes = 2 << 20;
    let pruned = journal
        .prune(&Retention {
            keep: Duration::from_secs(3600),
            max_bytes,
            protect: Duration::from_secs(3600),
        })
        .unwrap();
    assert_eq!(pruned.by_age, 0);
    assert!(pruned.by_size > 15_000, "{pruned:?}");
    journal
        .lock()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    assert!(size() <= max_bytes + (512 << 10), "{} bytes left", size());
    let events = read_all(dir.path()).unwrap();
    assert_eq!(events[0].kind, Kind::ResetDecided, "the decision survives");
    assert_eq!(events.last().unwrap().kind, Kind::JournalPruned);
    // The newest events are the ones kept.
    assert!(events.len() > 100);
}

mod any_bytes {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Whatever bytes a legacy journal holds (a crash, a disk error,
        /// an editor), reading and importing it never panics and every
        /// valid event line is kept.
        #[test]
        fn any_legacy_file_reads_and_imports_without_panic(
            noise in prop::collection::vec(any::<u8>(), 0..2048),
            at in 0usize..4,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let valid = line(Kind::ResetDecided);
            let mut bytes = Vec::new();
            for i in 0..4 {
                if i == at {
                    bytes.extend_from_slice(&noise);
                    bytes.push(b'\n');
                }
                bytes.extend_from_slice(&valid);
            }
            std::fs::write(dir.path().join(legacy::FILE_NAME), &bytes).unwrap();
            let decided = |events: &[Event]| events.iter().filter(|e| e.kind == Kind::ResetDecided).count();
            prop_assert!(decided(&read(dir.path()).unwrap().events) >= 4);
            prop_assert!(Journal::open(dir.path()).is_ok());
            prop_assert!(decided(&read_all(dir.path()).unwrap()) >= 4);
        }
    }
}

/// A journal that cannot be written tells the observers (the alert sinks)
/// once per streak with an `alert`, passes every event on anyway, and
/// counts the failures for the metrics.
#[test]
fn a_journal_that_cannot_be_written_alerts_once_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let told = std::sync::Arc::new(Mutex::new(Vec::new()));
    let observed = told.clone();
    journal.observe(Box::new(move |event| {
        observed.lock().unwrap().push(event.kind);
    }));
    journal.refuse_growth();
    for _ in 0..2 {
        journal.record(Event::new(
            Some("web"),
            Kind::AppFailed,
            json!({"reason": "x".repeat(4000)}),
        ));
    }
    assert_eq!(journal.write_failures(), 2);
    assert_eq!(
        *told.lock().unwrap(),
        [Kind::Alert, Kind::AppFailed, Kind::AppFailed]
    );
}
