//! Two numbers of the whole daemon:
//!
//! 1. Crash-to-restart latency: `kill -9` of an app's process until its
//!    `start` command runs (the command writes the time it started), with
//!    the pidfd watch (`pidfile` set, 60 s interval) and with polling (the
//!    `process` kit checking the pidfile every 1 s), p50 and p99.
//! 2. 1,000 apps, each with a cheap kit (`misbehave` in `ok` mode) checked
//!    every second, in one daemon: CPU % of one core and resident memory.
//!
//! Run: `cargo xtask bench` (or `cargo bench --profile dev -p medic --bench
//! daemon_scale`); `MEDIC_BENCH_QUICK=1` does fewer kills and a shorter
//! sample. A trailing `-- restart` or `-- apps` runs only that part.
//! Results go in docs/benchmarks.md.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use medic::journal::Kind;

fn quick() -> bool {
    std::env::var_os("MEDIC_BENCH_QUICK").is_some()
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Milliseconds from each kill to the restart, over `kills` kills.
fn restart_latency(watched: bool, kills: usize) -> Vec<f64> {
    let setup = common::Setup::new("backend = \"dry-run\"").with_kit("process");
    let run = setup.dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let pidfile = run.join("app.pid");
    let starts = setup.dir.path().join("starts");
    let start = format!(
        "date +%s%N >> {}; sleep 100000 & echo $! > {}",
        starts.display(),
        pidfile.display()
    );
    let (interval, watch) = if watched {
        ("60s", format!("pidfile = \"{}\"\n", pidfile.display()))
    } else {
        ("1s", String::new())
    };
    let app = format!(
        "kit = \"process\"\ninterval = \"{interval}\"\nfailures_before_action = 1\n{watch}\
         start = [\"/bin/sh\", \"-c\", {start:?}]\n\
         [recovery]\nlocal_attempts = 1000000\nwindow = \"1s\"\nbackoff = \"10ms\"\nmax_flaps = 0\nthen = \"none\"\n\
         [settings]\npidfile = \"{}\"\n[grants]\nread = [\"{}\"]\n",
        pidfile.display(),
        run.display()
    );
    let setup = setup.app("app", &app);
    // The first instance, started by hand.
    std::process::Command::new("/bin/sh")
        .args(["-c", &start])
        .status()
        .unwrap();
    let mut daemon = setup.daemon();
    let lines = |path: &Path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let recovered = |setup: &common::Setup| {
        setup
            .kinds("app")
            .iter()
            .filter(|k| **k == Kind::AppRecovered)
            .count()
    };
    // The kit is compiled and the first check has run.
    assert!(common::wait_for(Duration::from_secs(60), || setup
        .events()
        .iter()
        .any(|e| e.kind == Kind::KitLoaded)));
    std::thread::sleep(Duration::from_millis(300));
    let mut latencies = Vec::with_capacity(kills);
    for round in 0..kills {
        let before = lines(&starts).len();
        let pid = common::read_pid(&pidfile).unwrap();
        let killed = now_ns();
        common::kill9(pid);
        assert!(
            common::wait_for(Duration::from_secs(30), || lines(&starts).len() > before),
            "no restart: {}",
            daemon.log_text()
        );
        let started: u128 = lines(&starts)[before].trim().parse().unwrap();
        latencies.push((started.saturating_sub(killed)) as f64 / 1e6);
        assert!(common::wait_for(Duration::from_secs(30), || recovered(
            &setup
        ) > round));
        // Let the ladder settle (the check after the restart has passed).
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.stop();
    if let Some(pid) = common::read_pid(&pidfile) {
        common::kill9(pid);
    }
    latencies
}

/// CPU seconds (user + system) and resident KiB of process `pid`.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    (ticks as f64 / 100.0, rss)
}

/// CPU % of one core and RSS in MiB of a daemon watching `apps` apps.
fn many_apps(apps: usize, sample: Duration) -> (f64, f64) {
    let mut setup = common::Setup::new("backend = \"dry-run\"").with_kit("misbehave");
    for i in 0..apps {
        setup = setup.app(
            &format!("app{i:04}"),
            "kit = \"misbehave\"\ninterval = \"1s\"\n[settings]\nmode = \"ok\"\n",
        );
    }
    // The log level the packaged daemon runs at: a debug line per check
    // would be measured as part of the check.
    let mut daemon = setup.daemon_logging("medic=info,warn");
    assert!(common::wait_for(Duration::from_secs(120), || setup
        .dir
        .path()
        .join("medic.sock")
        .exists()));
    // Every app has been checked a few times.
    std::thread::sleep(Duration::from_secs(5));
    let pid = daemon.pid();
    let (cpu_before, _) = usage(pid);
    let started = Instant::now();
    std::thread::sleep(sample);
    let (cpu_after, rss) = usage(pid);
    let percent = (cpu_after - cpu_before) / started.elapsed().as_secs_f64() * 100.0;
    daemon.stop();
    (percent, rss as f64 / 1024.0)
}

/// Whether the part named `part` was asked for: every part when the
/// command line names none (`cargo bench` itself passes `--bench`).
fn wanted(part: &str) -> bool {
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    named.is_empty() || named.iter().any(|name| name == part)
}

fn main() {
    let (watched_kills, polled_kills, sample) = if quick() {
        (20, 5, Duration::from_secs(10))
    } else {
        (100, 20, Duration::from_secs(30))
    };
    if wanted("restart") {
        restart_table(watched_kills, polled_kills);
    }
    if wanted("apps") {
        apps_table(sample);
    }
}

fn restart_table(watched_kills: usize, polled_kills: usize) {
    println!("| restart after kill -9 | kills | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    for (name, watched, kills) in [
        ("pidfd watch (60 s interval)", true, watched_kills),
        ("polling, 1 s interval", false, polled_kills),
    ] {
        let mut latencies = restart_latency(watched, kills);
        latencies.sort_by(f64::total_cmp);
        println!(
            "| {name} | {kills} | {:.1} | {:.1} |",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    println!();
}

fn apps_table(sample: Duration) {
    let (cpu, rss) = many_apps(1000, sample);
    println!("| 1,000 apps, 1 s interval | CPU % of one core | RSS MiB |");
    println!("|---|---:|---:|");
    println!("| misbehave `ok` kit | {cpu:.1} | {rss:.0} |");
    println!();
}
