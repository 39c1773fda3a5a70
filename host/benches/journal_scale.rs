//! The journal at 2 million events of history, SQLite (`journal.db`) next to
//! the JSON-lines file it replaced (`journal.jsonl`):
//!
//! 1. Reading the history: what the daemon's start read (the whole file
//!    before, in a bare process; the reset budget's query now), and
//!    `medic events --app web --since 1h` as a whole process on each.
//! 2. A real `medic daemon` started on the 2M-event journal, one app checked
//!    by the `http` kit against a server in this process: spawn to the first
//!    check's GET, spawn to `status` showing the check's result, and the
//!    daemon's memory after start; the same on an empty journal.
//! 3. `medic events --follow`: from an admin check request to a follower
//!    process printing the event it journals.
//! 4. The cost of one durable append: `Journal::append` next to the old
//!    `write_all` + `sync_data` of one line to an `O_APPEND` file.
//!
//! Run: `cargo bench -p medic --bench journal_scale`; `MEDIC_BENCH_QUICK=1`
//! builds 200,000 events instead of 2,000,000. Results go in
//! docs/benchmarks.md. It fails when a measured tool did no work.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use medic::journal::{self, Event, Filter, Journal, Kind};
use serde_json::json;
use support::median;

/// Apps the history is spread over; `web` is the one the daemon watches.
const APPS: u64 = 40;
/// How far back the history goes (inside the default `journal_keep`).
const SPAN: Duration = Duration::from_secs(60 * 24 * 3600);
/// Events per transaction while building the history.
const BATCH: usize = 50_000;
/// Warm daemon starts measured (after one that compiles the kit).
const STARTS: usize = 5;
/// `medic events` runs on the database, and on the legacy file.
const QUERIES: usize = 10;
const LEGACY_QUERIES: usize = 2;
/// Events sent through a follower.
const FOLLOWED: usize = 50;

/// The child mode: read a legacy journal whole as the old daemon's start
/// did (`read_all`: every event into memory), then print the time taken,
/// the events read and the peak resident memory.
const LEGACY_READ: &str = "legacy-read";

fn quick() -> bool {
    std::env::var_os("MEDIC_BENCH_QUICK").is_some()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// `field` (`VmRSS`, `VmHWM`) of process `pid` (or `self`) in MiB.
fn memory_mib(pid: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

/// The app of history event `i`: `web` or `app01`..`app39`.
fn app_of(i: u64) -> String {
    match i % APPS {
        0 => "web".to_owned(),
        n => format!("app{n:02}"),
    }
}

/// Event `i` of an `n`-event history ending at `end`: evenly spaced over
/// [`SPAN`], the kinds a flapping fleet journals, and a reset decision now
/// and then (one 43 minutes ago, for the budget's query).
fn history_event(i: u64, n: u64, end: SystemTime) -> Event {
    let ago = SPAN.as_millis() as u64 * (n - i) / n;
    let (kind, detail) = if i.is_multiple_of(10_000) || n - i == n / 2_000 {
        (
            Kind::ResetDecided,
            json!({"reason": "app still failing after local recovery", "backend": "dry-run", "resets_left": 1}),
        )
    } else {
        match (i / APPS) % 10 {
            0 | 1 => (
                Kind::AppFailed,
                json!({"reason": format!("HTTP 503 from http://127.0.0.1:8080/healthz ({i})"), "failures": 3}),
            ),
            2 | 3 => (
                Kind::RecoveryAttempt,
                json!({"step": "restart", "attempt": i % 3 + 1}),
            ),
            4 | 5 => (Kind::AppRecovered, json!({"after_ms": i % 5_000})),
            6 => (Kind::AppDegraded, json!({"reason": "answered in 1.8 s"})),
            7 => (
                Kind::KitFault,
                json!({"fault": "timed out after 5s", "streak": 1}),
            ),
            8 => (
                Kind::AppUnknown,
                json!({"reason": "connection refused by 127.0.0.1:8080"}),
            ),
            _ => (Kind::AdminAction, json!({"action": "check", "by": "root"})),
        }
    };
    Event {
        ts: end - Duration::from_millis(ago),
        app: Some(app_of(i)),
        kind,
        detail,
    }
}

/// Writes the same `n` events into `state_dir/journal.db` (in transactions
/// of [`BATCH`]) and, as lines, into `legacy_dir/journal.jsonl`.
fn build_history(state_dir: &Path, legacy_dir: &Path, n: u64) -> Duration {
    let started = Instant::now();
    let journal = Journal::open(state_dir).unwrap();
    let mut lines =
        BufWriter::new(File::create(legacy_dir.join(journal::legacy::FILE_NAME)).unwrap());
    let end = SystemTime::now();
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..n {
        let event = history_event(i, n, end);
        serde_json::to_writer(&mut lines, &event).unwrap();
        lines.write_all(b"\n").unwrap();
        batch.push(event);
        if batch.len() == BATCH || i + 1 == n {
            journal.append_batch(&batch).unwrap();
            batch.clear();
        }
    }
    lines.into_inner().unwrap().sync_all().unwrap();
    started.elapsed()
}

fn file_mib(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / (1 << 20) as f64)
}

/// Child mode: see [`LEGACY_READ`].
fn legacy_read(path: &Path) {
    let started = Instant::now();
    let mut events = Vec::new();
    let skipped = journal::legacy::each_event(path, |event| events.push(event))
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    println!(
        "{} {} {skipped} {}",
        ms(took),
        events.len(),
        memory_mib("self", "VmHWM")
    );
}

/// Milliseconds and peak MiB of reading `path` whole in a fresh process;
/// fails unless it read all `n` events.
fn legacy_start_read(path: &Path, n: u64) -> (f64, f64) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg(LEGACY_READ)
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<f64> = text
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(
        (fields[1] as u64, fields[2] as u64),
        (n, 0),
        "the legacy read did not read every event"
    );
    (fields[0], fields[3])
}

/// Median milliseconds of 10 in-process reads of what `filter` (made
/// anew for each, times being relative to now) selects, and how many
/// events the last found; none found fails.
fn query_ms(state_dir: &Path, filter: impl Fn(SystemTime) -> Filter) -> (f64, usize) {
    let mut found = 0;
    let times = (0..10)
        .map(|_| {
            let filter = filter(SystemTime::now() - Duration::from_secs(3600));
            let started = Instant::now();
            found = journal::read_filtered(state_dir, &filter).unwrap().len();
            ms(started.elapsed())
        })
        .collect();
    assert!(found > 0, "the query found no event");
    (median(times), found)
}

/// Median wall milliseconds of `medic --version`: a process's start alone.
fn process_floor(runs: usize) -> f64 {
    let times = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let out = common::medic().arg("--version").output().unwrap();
            assert!(out.status.success());
            ms(started.elapsed())
        })
        .collect();
    median(times)
}

/// Wall milliseconds of `runs` runs of `medic events --app web --since 1h`
/// on `setup`'s journal, and the events the last run printed.
fn events_cli(setup: &common::Setup, runs: usize) -> (Vec<f64>, usize) {
    let mut printed = 0;
    let times = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let out = setup.run(&["events", "--app", "web", "--since", "1h"]);
            let took = ms(started.elapsed());
            assert!(out.status.success(), "{out:?}");
            printed = out
                .stdout
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count();
            assert!(printed > 0, "medic events printed no event");
            took
        })
        .collect();
    (times, printed)
}

/// A plain HTTP server for the app's check, answering `ok`; it keeps the
/// time each request arrived.
struct AppServer {
    port: u16,
    requests: Arc<Mutex<Vec<Instant>>>,
}

impl AppServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                let mut request = Vec::new();
                let mut chunk = [0_u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(read) => request.extend_from_slice(&chunk[..read]),
                    }
                }
                seen.lock().unwrap().push(Instant::now());
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        });
        Self { port, requests }
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    fn nth(&self, n: usize) -> Option<Instant> {
        self.requests.lock().unwrap().get(n).copied()
    }
}

/// One HTTP/1.1 exchange with the daemon's admin API; the whole reply, or
/// `None` while nothing answers at `socket`.
fn ask(socket: &Path, method: &str, path: &str) -> Option<String> {
    let mut stream = UnixStream::connect(socket).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: medic\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    Some(reply)
}

/// The result of the first app's last check, as `medic status` shows it.
fn last_check(socket: &Path) -> Option<String> {
    let reply = ask(socket, "GET", "/v1/status")?;
    let (_, body) = reply.split_once("\r\n\r\n")?;
    let status: serde_json::Value = serde_json::from_str(body).ok()?;
    status["apps"][0]["last_check"]["result"]
        .as_str()
        .map(str::to_owned)
}

/// What one daemon start took and held.
struct Start {
    /// Spawn to the first check's GET reaching the app.
    to_request: f64,
    /// Spawn to `GET /v1/status` showing that check's result.
    to_status: f64,
    rss: f64,
    peak: f64,
}

/// Starts the daemon on `setup` and waits for its first check; the
/// daemon is returned running.
fn start_daemon(setup: &common::Setup, app: &AppServer) -> (common::Daemon, Start) {
    let socket = setup.dir.path().join("medic.sock");
    let before = app.count();
    let spawned = Instant::now();
    let daemon = setup.daemon_logging("medic=info,warn");
    let mut result = None;
    while result.is_none() && spawned.elapsed() < Duration::from_secs(60) {
        result = last_check(&socket);
        if result.is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let to_status = ms(spawned.elapsed());
    assert_eq!(
        result.as_deref(),
        Some("healthy"),
        "the daemon never checked: {}",
        daemon.log_text()
    );
    let requested = app.nth(before).expect("the check never reached the app");
    // Whatever start-up left running (retention's first pass) is done.
    std::thread::sleep(Duration::from_secs(1));
    let pid = daemon.pid().to_string();
    let start = Start {
        to_request: ms(requested - spawned),
        to_status,
        rss: memory_mib(&pid, "VmRSS"),
        peak: memory_mib(&pid, "VmHWM"),
    };
    (daemon, start)
}

/// Milliseconds from sending `POST /v1/apps/web/check` to a
/// `medic events --follow` process printing the `admin_action` it
/// journals, `rounds` times.
fn follow_latency(setup: &common::Setup, rounds: usize) -> Vec<f64> {
    let socket = setup.dir.path().join("medic.sock");
    let check = || {
        let reply = ask(&socket, "POST", "/v1/apps/web/check").unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    };
    let mut follower = common::medic()
        .args(["events", "--follow", "--json", "--socket"])
        .arg(&socket)
        .args(["--app", "web", "--kind", "admin_action", "--since", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (lines, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    // The follower is subscribed once an event comes through.
    let subscribed = (0..50).any(|_| {
        check();
        printed.recv_timeout(Duration::from_millis(200)).is_ok()
    });
    assert!(subscribed, "the follower never printed an event");
    std::thread::sleep(Duration::from_millis(200));
    while printed.try_recv().is_ok() {}
    let latencies = (0..rounds)
        .map(|_| {
            let sent = Instant::now();
            check();
            let (at, line) = printed
                .recv_timeout(Duration::from_secs(5))
                .expect("the follower printed nothing");
            assert!(line.contains("\"admin_action\""), "{line}");
            ms(at - sent)
        })
        .collect();
    let _ = follower.kill();
    let _ = follower.wait();
    latencies
}

/// Microseconds of each durable append of one event, interleaved: the
/// database's `Journal::append`, and the old way (one JSON line,
/// `write_all` + `sync_data`, to an `O_APPEND` file).
fn write_cost(state_dir: &Path, legacy_file: &Path, events: usize) -> (Vec<f64>, Vec<f64>) {
    const WARM_UP: usize = 20;
    let journal = Journal::open(state_dir).unwrap();
    let mut file = OpenOptions::new().append(true).open(legacy_file).unwrap();
    let length_before = file.metadata().unwrap().len();
    let event = || {
        Event::new(
            Some("web"),
            Kind::AppFailed,
            json!({"reason": "HTTP 503 from http://127.0.0.1:8080/healthz", "failures": 3}),
        )
    };
    let since = SystemTime::now();
    let (mut database, mut lines) = (Vec::new(), Vec::new());
    let mut written = 0;
    for round in 0..WARM_UP + events {
        let one = event();
        let started = Instant::now();
        journal.append(&one).unwrap();
        let appended = started.elapsed();
        let one = event();
        let started = Instant::now();
        let mut line = serde_json::to_vec(&one).unwrap();
        line.push(b'\n');
        file.write_all(&line).unwrap();
        file.sync_data().unwrap();
        let synced = started.elapsed();
        written += line.len() as u64;
        if round >= WARM_UP {
            database.push(appended.as_secs_f64() * 1e6);
            lines.push(synced.as_secs_f64() * 1e6);
        }
    }
    let filter = Filter {
        app: Some("web".to_owned()),
        kinds: vec![Kind::AppFailed],
        since: Some(since),
        ..Filter::default()
    };
    assert_eq!(
        journal::read_filtered(state_dir, &filter).unwrap().len(),
        WARM_UP + events,
        "Journal::append did not write every event"
    );
    assert_eq!(file.metadata().unwrap().len() - length_before, written);
    (database, lines)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(LEGACY_READ) {
        legacy_read(Path::new(&args[2]));
        return;
    }
    let (events, appends) = if quick() {
        (200_000, 300)
    } else {
        (2_000_000, 2_000)
    };
    let app = AppServer::start();
    let setup = watched(&app);
    // The same history as a legacy journal, never opened by a daemon.
    let legacy = common::Setup::new("backend = \"dry-run\"");
    let state_dir = setup.state_dir();
    let legacy_file = legacy.state_dir().join(journal::legacy::FILE_NAME);

    let built = build_history(&state_dir, &legacy.state_dir(), events);
    let db_mib = file_mib(&state_dir.join(journal::FILE_NAME));
    println!(
        "History: {events} events over 60 days, {APPS} apps, built in {:.1} s; \
         journal.db {db_mib:.0} MiB ({:.0} bytes/event), journal.jsonl {:.0} MiB\n",
        built.as_secs_f64(),
        db_mib * (1 << 20) as f64 / events as f64,
        file_mib(&legacy_file),
    );

    let (legacy_ms, legacy_peak) = legacy_start_read(&legacy_file, events);
    // What the daemon's start reads: the reset budget's decisions.
    let (budget_ms, budget_found) = query_ms(&state_dir, |hour_ago| Filter {
        kinds: vec![Kind::ResetDecided],
        since: Some(hour_ago),
        ..Filter::default()
    });
    let (app_hour_ms, _) = query_ms(&state_dir, |hour_ago| Filter {
        app: Some("web".to_owned()),
        since: Some(hour_ago),
        ..Filter::default()
    });
    let floor = process_floor(QUERIES);
    let (mut new_cli, printed) = events_cli(&setup, QUERIES);
    let (mut old_cli, old_printed) = events_cli(&legacy, LEGACY_QUERIES);
    new_cli.sort_by(f64::total_cmp);
    old_cli.sort_by(f64::total_cmp);
    println!("| reading {events} events | old: journal.jsonl | new: journal.db |");
    println!("|---|---:|---:|");
    println!(
        "| daemon start's read: whole file (old), reset budget query (new), ms | {legacy_ms:.0} | {budget_ms:.2} (found {budget_found}) |"
    );
    println!("| memory of that read: peak RSS of a bare process (old), MiB | {legacy_peak:.0} | |");
    println!(
        "| `medic events --app web --since 1h`, whole process, median ms ({old_printed} / {printed} events) | {:.0} | {:.1} |",
        median(old_cli.clone()),
        median(new_cli.clone()),
    );
    println!(
        "| same, slowest of {LEGACY_QUERIES} / {QUERIES} runs, ms | {:.0} | {:.1} |",
        old_cli[old_cli.len() - 1],
        new_cli[new_cli.len() - 1],
    );
    println!(
        "| the same selection in-process (`journal::read_filtered`), median ms | | {app_hour_ms:.2} |"
    );
    println!(
        "| `medic --version`, whole process (start-up alone), median ms | {floor:.1} | {floor:.1} |"
    );
    println!();

    let mut follow = Vec::new();
    let (cold, starts) = daemon_starts(&setup, &app, |setup| {
        follow = follow_latency(setup, FOLLOWED);
    });
    // The same daemon on an empty journal: what the history adds.
    let (_, empty) = daemon_starts(&watched(&app), &app, |_| {});
    print_starts(&starts, &cold, &empty);
    follow.sort_by(f64::total_cmp);
    println!("| follow latency | events | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    println!(
        "| `events --follow`: `POST /v1/apps/web/check` sent → follower prints its `admin_action` | {FOLLOWED} | {:.2} | {:.2} |\n",
        percentile(&follow, 0.5),
        percentile(&follow, 0.99),
    );

    let (mut database, mut lines) = write_cost(&state_dir, &legacy_file, appends);
    println!("| append one event, fsync included | events | mean µs | p50 µs | p99 µs |");
    println!("|---|---:|---:|---:|---:|");
    for (name, times) in [
        (
            "old: JSON line, `write_all` + `sync_data` (O_APPEND)",
            &mut lines,
        ),
        (
            "new: `Journal::append` (SQLite WAL, synchronous = FULL)",
            &mut database,
        ),
    ] {
        times.sort_by(f64::total_cmp);
        println!(
            "| {name} | {appends} | {:.0} | {:.0} | {:.0} |",
            mean(times),
            percentile(times, 0.5),
            percentile(times, 0.99),
        );
    }
}

/// A setup whose daemon watches `web`, checked every 60 s by the `http`
/// kit against `app`.
fn watched(app: &AppServer) -> common::Setup {
    let setup = common::Setup::new("backend = \"dry-run\"")
        .with_kit("http")
        .app(
            "web",
            &format!(
                "kit = \"http\"\ninterval = \"60s\"\ntimeout = \"2s\"\n\
                 [settings]\nurl = \"http://127.0.0.1:{port}/healthz\"\nexpect_body = \"ok\"\n\
                 [grants]\nconnect = [\"127.0.0.1:{port}\"]\n",
                port = app.port
            ),
        );
    // The history must fit: the default journal_max (256 MiB) would have
    // retention delete part of it at start.
    let main = std::fs::read_to_string(setup.config()).unwrap();
    std::fs::write(
        setup.config(),
        main.replace("[daemon]\n", "[daemon]\njournal_max = \"2GiB\"\n"),
    )
    .unwrap();
    setup
}

/// One start that compiles the kit into state_dir/cache, then [`STARTS`]
/// as a restarted daemon starts; `last` runs while the last is up.
fn daemon_starts(
    setup: &common::Setup,
    app: &AppServer,
    last: impl FnOnce(&common::Setup),
) -> (Start, Vec<Start>) {
    let (mut daemon, cold) = start_daemon(setup, app);
    daemon.stop();
    let mut starts = Vec::new();
    for _ in 1..STARTS {
        let (mut daemon, start) = start_daemon(setup, app);
        daemon.stop();
        starts.push(start);
    }
    let (mut daemon, start) = start_daemon(setup, app);
    starts.push(start);
    last(setup);
    daemon.stop();
    (cold, starts)
}

fn print_starts(starts: &[Start], cold: &Start, empty: &[Start]) {
    println!(
        "| `medic daemon` on the journal, {} warm starts | median | worst | first start (kit compiled) | empty journal, median |",
        starts.len()
    );
    println!("|---|---:|---:|---:|---:|");
    let row = |name: &str, value: &dyn Fn(&Start) -> f64| {
        let mut values: Vec<f64> = starts.iter().map(value).collect();
        values.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            median(values.clone()),
            values[values.len() - 1],
            value(cold),
            median(empty.iter().map(value).collect()),
        );
    };
    row("spawn → first check's GET at the app, ms", &|s| {
        s.to_request
    });
    row("spawn → `GET /v1/status` shows its result, ms", &|s| {
        s.to_status
    });
    row("VmRSS 1 s after that, MiB", &|s| s.rss);
    row("VmHWM (peak RSS), MiB", &|s| s.peak);
    println!();
}
