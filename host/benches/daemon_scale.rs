//! The whole daemon, at scale:
//!
//! 1. **1,000 apps with real HTTP checks** (the bundled `http` kit) every
//!    second against four nginx: CPU % of one core, CPU per check (the
//!    daemon's CPU over the requests the servers logged), resident memory,
//!    and how late checks come (each app's gaps between requests in nginx's
//!    log, less the interval). Sampled only once every app was checked.
//! 2. **Crash to restart**: `kill -9` of an app's process until its `start`
//!    command runs, with the pidfd watch alone, with the pidfd watch among
//!    999 HTTP apps, and without a pidfile, the kit reporting the process it
//!    found (p50 and p99).
//! 3. **Start-up**: 20 apps on 20 kits already in the cache, then the same
//!    with an uncached 18 MB Python kit among them: when each app's first
//!    check reached nginx, counted from the daemon's start.
//!
//! Run: `cargo xtask bench` (or `cargo bench --profile dev -p medic --bench
//! daemon_scale`); `MEDIC_BENCH_QUICK=1` does fewer kills and a shorter
//! sample. A trailing `-- apps`, `-- restart` or `-- startup` runs only that
//! part. The Markdown it prints goes into docs/benchmarks.md.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::nginx::Nginx;
use medic::journal::Kind;
use support::sample_daemon;

const APPS: usize = 1000;
const SERVERS: usize = 4;

fn quick() -> bool {
    std::env::var_os("MEDIC_BENCH_QUICK").is_some()
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// An app checking `server` through the bundled http kit, every `interval`;
/// its requests carry `?app=TAG` so nginx's log tells the apps apart.
fn http_app(kit: &str, server: &Nginx, tag: &str, interval: &str) -> String {
    format!(
        "kit = \"{kit}\"\ninterval = \"{interval}\"\ntimeout = \"5s\"\n\
         [settings]\nurl = \"http://127.0.0.1:{port}/healthz?app={tag}\"\nexpect_body = \"ok\"\n\
         [grants]\nconnect = [\"127.0.0.1:{port}\"]\n",
        port = server.port
    )
}

/// `setup` with `APPS - skip` HTTP apps spread over `servers`, every second.
fn with_http_apps(mut setup: common::Setup, servers: &[Nginx], skip: usize) -> common::Setup {
    for i in skip..APPS {
        setup = setup.app(
            &format!("app{i:04}"),
            &http_app("http", &servers[i % servers.len()], &i.to_string(), "1s"),
        );
    }
    setup
}

/// Each app's request times (`?app=TAG`), from every server's log.
fn times_by_app(servers: &[Nginx]) -> HashMap<String, Vec<f64>> {
    let mut by_app: HashMap<String, Vec<f64>> = HashMap::new();
    for server in servers {
        for (at, uri) in server.requests() {
            if let Some((_, tag)) = uri.split_once("app=") {
                by_app.entry(tag.to_owned()).or_default().push(at);
            }
        }
    }
    for times in by_app.values_mut() {
        times.sort_by(f64::total_cmp);
    }
    by_app
}

/// Waits until `apps` distinct apps reached the servers.
fn wait_all_checked(servers: &[Nginx], apps: usize, daemon: &common::Daemon) {
    assert!(
        common::wait_for(Duration::from_secs(180), || times_by_app(servers).len()
            >= apps),
        "only {} of {apps} apps were checked: {}",
        times_by_app(servers).len(),
        daemon.log_text()
    );
}

fn servers() -> Vec<Nginx> {
    (0..SERVERS).map(|_| Nginx::start_logged()).collect()
}

/// Part 1: 1,000 apps with real HTTP checks every second.
fn apps_table(sample: Duration) {
    let servers = servers();
    let setup = with_http_apps(
        common::Setup::new("backend = \"dry-run\"").with_kit("http"),
        &servers,
        0,
    );
    // The log level the packaged daemon runs at: a debug line per check
    // would be measured as part of the check.
    let mut daemon = setup.daemon_logging("medic=info,warn");
    wait_all_checked(&servers, APPS, &daemon);
    // Past the first gap: every app has found its place in the interval.
    std::thread::sleep(Duration::from_secs(3));
    let from = now_secs();
    let server_refs: Vec<&Nginx> = servers.iter().collect();
    let measured = sample_daemon("medic", daemon.pid(), &server_refs, sample, APPS as f64);
    let until = now_secs();
    daemon.stop();

    let mut lateness = Vec::new();
    let mut on_schedule = 0;
    let expected = ((until - from) - 1.0).floor() as usize;
    for times in times_by_app(&servers).values() {
        let window: Vec<f64> = times
            .iter()
            .copied()
            .filter(|t| (from..until).contains(t))
            .collect();
        if window.len() >= expected {
            on_schedule += 1;
        }
        lateness.extend(
            window
                .windows(2)
                .map(|w| (w[1] - w[0] - 1.0).max(0.0) * 1000.0),
        );
    }
    lateness.sort_by(f64::total_cmp);
    assert!(!lateness.is_empty(), "no gaps between checks were logged");
    println!("### 1,000 apps in one daemon\n");
    println!(
        "| 1,000 apps, bundled `http` kit, 1 s interval, {SERVERS} nginx | CPU % of one core | µs CPU per check | RSS MiB (anonymous) | late p50 ms | late p99 ms | late max ms | apps on schedule |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} s sample, {} checks | {:.1} | {:.0} | {:.0} ({:.0}) | {:.1} | {:.1} | {:.1} | {on_schedule} of {APPS} |",
        sample.as_secs(),
        measured.requests,
        measured.cpu_percent,
        measured.per_check,
        measured.rss_mib,
        measured.anon_mib,
        percentile(&lateness, 0.5),
        percentile(&lateness, 0.99),
        lateness[lateness.len() - 1],
    );
    println!(
        "\nTargets: ≤ 6 % of a core ({}), ≤ 48 MiB ({}), lateness p99 ≤ 50 ms ({}). An app is on schedule when \
         it was checked at least once per second of the sample; lateness is each gap between two of an app's \
         requests in nginx's log, less the 1 s interval.\n",
        met(measured.cpu_percent <= 6.0),
        met(measured.rss_mib <= 48.0),
        met(percentile(&lateness, 0.99) <= 50.0),
    );
}

fn met(yes: bool) -> &'static str {
    if yes { "met" } else { "not met" }
}

/// Milliseconds from each kill to the restart, over `kills` kills, with
/// 999 HTTP apps checked every second beside the app when `load` is given.
fn restart_latency(watched: bool, kills: usize, load: Option<&[Nginx]>) -> Vec<f64> {
    let mut setup = common::Setup::new("backend = \"dry-run\"")
        .with_kit("process")
        .with_kit("http");
    if let Some(servers) = load {
        setup = with_http_apps(setup, servers, 1);
    }
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
    let mut daemon = setup.daemon_logging("medic=info,warn");
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
    // The kits are loaded and the first checks have run.
    assert!(common::wait_for(Duration::from_secs(60), || setup
        .events()
        .iter()
        .any(|e| e.kind == Kind::KitLoaded)));
    if let Some(servers) = load {
        wait_all_checked(servers, APPS - 1, &daemon);
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut latencies = Vec::with_capacity(kills);
    for round in 0..kills {
        let before = lines(&starts).len();
        let pid = common::read_pid(&pidfile).unwrap();
        let killed = now_secs();
        common::kill9(pid);
        assert!(
            common::wait_for(Duration::from_secs(30), || lines(&starts).len() > before),
            "no restart: {}",
            daemon.log_text()
        );
        let started: f64 = lines(&starts)[before].trim().parse::<f64>().unwrap() / 1e9;
        latencies.push((started - killed).max(0.0) * 1000.0);
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

/// Part 2: crash to restart.
fn restart_table(watched_kills: usize, polled_kills: usize) {
    let servers = servers();
    println!("### Crash to restart\n");
    println!("| restart after kill -9 | kills | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    for (name, watched, kills, load) in [
        ("pidfd watch (60 s interval)", true, watched_kills, None),
        (
            "pidfd watch, among 999 HTTP apps checked every second",
            true,
            watched_kills,
            Some(servers.as_slice()),
        ),
        (
            "no pidfile: the `process` kit checks every 1 s and reports the pid (`host.watch-process`)",
            false,
            polled_kills,
            None,
        ),
    ] {
        let mut latencies = restart_latency(watched, kills, load);
        latencies.sort_by(f64::total_cmp);
        println!(
            "| {name} | {kills} | {:.1} | {:.1} |",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    println!("\nTarget: p99 ≤ 20 ms with 1,000 apps loaded.\n");
}

/// Milliseconds from the daemon's start to each app's first request.
fn first_checks(setup: &common::Setup, server: &Nginx, apps: usize) -> HashMap<String, f64> {
    let logged_before = server.request_count();
    let started = now_secs();
    let mut daemon = setup.daemon_logging("medic=info,warn");
    let firsts = || {
        let mut firsts: HashMap<String, f64> = HashMap::new();
        for (at, uri) in server.requests().into_iter().skip(logged_before) {
            if let Some((_, tag)) = uri.split_once("app=") {
                firsts
                    .entry(tag.to_owned())
                    .or_insert((at - started) * 1000.0);
            }
        }
        firsts
    };
    assert!(
        common::wait_for(Duration::from_secs(180), || firsts().len() >= apps),
        "only {} of {apps} apps were checked: {}",
        firsts().len(),
        daemon.log_text()
    );
    daemon.stop();
    firsts()
}

/// Part 3: start-up with kits in the cache, and with one that is not.
fn startup_table() {
    const KITS: usize = 20;
    let server = Nginx::start_logged();
    let mut setup = common::Setup::new("backend = \"dry-run\"");
    let http = common::guests::kit("http");
    for i in 0..KITS {
        let kit = format!("k{i:02}");
        std::fs::write(
            setup.dir.path().join(format!("kits/{kit}.wasm")),
            common::guests::rebuilt(&http, &kit),
        )
        .unwrap();
        setup = setup.app(&kit, &http_app(&kit, &server, &kit, "1s"));
    }
    // The first start compiles the 20 kits into the cache.
    first_checks(&setup, &server, KITS);
    let cached = first_checks(&setup, &server, KITS);

    std::fs::copy(
        common::examples::kit("python"),
        setup.dir.path().join("kits/python.wasm"),
    )
    .unwrap();
    let setup = setup.app("python", &http_app("python", &server, "python", "1s"));
    let mut with_python = first_checks(&setup, &server, KITS + 1);
    let python = with_python.remove("python").unwrap();

    let slowest = |firsts: &HashMap<String, f64>| firsts.values().copied().fold(0.0, f64::max);
    println!("### Start-up\n");
    println!("| daemon start to first checks | apps | last of them ms | target |");
    println!("|---|---:|---:|---|");
    println!(
        "| {KITS} kits in the cache | {KITS} | {:.0} | ≤ 300 ms: {} |",
        slowest(&cached),
        met(slowest(&cached) <= 300.0)
    );
    println!(
        "| the same with an uncached 18 MB Python kit among them: the others | {KITS} | {:.0} | ≤ 500 ms: {} |",
        slowest(&with_python),
        met(slowest(&with_python) <= 500.0)
    );
    println!("| … and the app on the Python kit (compiled first) | 1 | {python:.0} | |\n");
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
    if wanted("apps") {
        apps_table(sample);
    }
    if wanted("restart") {
        restart_table(watched_kills, polled_kills);
    }
    if wanted("startup") {
        startup_table();
    }
}
