//! CPU cost of one HTTP check of a local nginx, measured side by side in
//! one run: medic's daemon checking 50 apps every 100 ms through the
//! bundled `http` kit, Monit 5's daemon doing the same 50 checks, the floor
//! (a blocking GET on a new connection, back to back and at the daemon's
//! pace), and Nagios `check_http` as a process; then one HTTPS check (a
//! certificate from a CA the app trusts through `[tls]`) through the kit
//! next to `check_http --ssl`. A daemon's cost per check
//! is its CPU divided by the requests its own nginx logged, so a daemon
//! that died or did nothing fails the run instead of reading as free.
//! Only the checking side's CPU is counted (nginx's is the same for all).
//!
//! Run: `cargo xtask bench`, which writes the Markdown this prints into
//! docs/benchmarks.md. `MEDIC_BENCH_QUICK=1` takes shorter samples and
//! skips `check_http`. `MEDIC_BENCH_PROFILE=1` only calls the http kit in a
//! loop for a minute, for `perf record -p`.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::nginx::Nginx;
use medic::config::{Grants, TlsSettings};
use medic::sandbox::{CallScope, KitEngine, Verdict};
use nix::sys::resource::UsageWho;
use support::{DaemonSample, check_http, cpu, median, per_check, sample_daemon};

const CHECKS: u32 = 3_000;
const ROUNDS: usize = 3;
const MONIT: &str = "/usr/bin/monit";
/// Apps (medic) and hosts (Monit) checked by each daemon.
const APPS: usize = 50;
/// medic's interval; Monit's shortest cycle is 1 s.
const INTERVAL: Duration = Duration::from_millis(100);

fn quick() -> bool {
    std::env::var_os("MEDIC_BENCH_QUICK").is_some()
}

fn sample() -> Duration {
    Duration::from_secs(if quick() { 10 } else { 20 })
}

/// One blocking GET of `/healthz` on a new connection, answered `ok`.
fn get_once(port: u16) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200") && response.ends_with(b"ok\n"));
}

/// The floor: GETs back to back, CPU of this thread.
fn floor(port: u16) -> f64 {
    let before = cpu(UsageWho::RUSAGE_THREAD);
    for _ in 0..CHECKS {
        get_once(port);
    }
    per_check(cpu(UsageWho::RUSAGE_THREAD) - before, CHECKS)
}

/// The floor at the pace of medic's daemon below (50 apps every 100 ms):
/// one GET every 2 ms, sleeping in between, so each GET starts cold as a
/// daemon's check does.
fn floor_paced(port: u16) -> f64 {
    let every = INTERVAL / u32::try_from(APPS).unwrap();
    let checks = CHECKS / 2;
    let before = cpu(UsageWho::RUSAGE_THREAD);
    let mut next = Instant::now();
    for _ in 0..checks {
        get_once(port);
        next += every;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    per_check(cpu(UsageWho::RUSAGE_THREAD) - before, checks)
}

/// medic's daemon with 50 apps checking `nginx` through the bundled http
/// kit every 100 ms, at the log level the packaged daemon runs at.
fn medic_daemon() -> DaemonSample {
    let nginx = Nginx::start_logged();
    let mut setup = common::Setup::new("backend = \"dry-run\"").with_kit("http");
    for app in 0..APPS {
        setup = setup.app(
            &format!("app{app:02}"),
            &format!(
                "kit = \"http\"\ninterval = \"{}ms\"\n[settings]\nurl = \"http://127.0.0.1:{port}/healthz?app={app}\"\n\
                 expect_body = \"ok\"\n[grants]\nconnect = [\"127.0.0.1:{port}\"]\n",
                INTERVAL.as_millis(),
                port = nginx.port
            ),
        );
    }
    let mut daemon = setup.daemon_logging("medic=info,warn");
    wait_all_checked(&nginx, APPS, &mut daemon);
    // Past the start-up: every app has found its place in the interval.
    std::thread::sleep(INTERVAL * 3);
    let per_second = APPS as f64 / INTERVAL.as_secs_f64();
    let measured = sample_daemon("medic", daemon.pid(), &[&nginx], sample(), per_second);
    daemon.stop();
    measured
}

/// Waits until each of `apps` apps has been checked at least once.
fn wait_all_checked(nginx: &Nginx, apps: usize, daemon: &mut common::Daemon) {
    let checked = || {
        let uris: std::collections::HashSet<String> =
            nginx.requests().into_iter().map(|(_, uri)| uri).collect();
        uris.iter().filter(|uri| uri.contains("app=")).count()
    };
    assert!(
        common::wait_for(Duration::from_secs(120), || checked() >= apps),
        "only {} of {apps} apps checked: {}",
        checked(),
        daemon.log_text()
    );
}

/// Monit 5 with the same 50 HTTP checks in its daemon, one cycle a second.
fn monit(dir: &std::path::Path) -> DaemonSample {
    assert!(
        std::path::Path::new(MONIT).exists(),
        "{MONIT} is missing: install monit (cargo xtask bench does)"
    );
    let nginx = Nginx::start_logged();
    let rc = dir.join("monitrc");
    let mut conf = format!(
        "set daemon 1\nset pidfile {d}/monit.pid\nset idfile {d}/monit.id\nset statefile {d}/monit.state\nset logfile {d}/monit.log\n",
        d = dir.display()
    );
    for host in 0..APPS {
        conf += &format!(
            "check host h{host} with address 127.0.0.1\n  if failed port {} protocol http request \"/healthz\" content = \"ok\" then alert\n",
            nginx.port
        );
    }
    std::fs::write(&rc, conf).unwrap();
    std::fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut child = Command::new(MONIT)
        .args(["-I", "-c"])
        .arg(&rc)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        common::wait_for(Duration::from_secs(10), || nginx.request_count() >= APPS),
        "Monit did not check: {}",
        std::fs::read_to_string(dir.join("monit.log")).unwrap_or_default()
    );
    let measured = sample_daemon("Monit", child.id(), &[&nginx], sample() * 2, APPS as f64);
    assert!(child.try_wait().unwrap().is_none(), "Monit died");
    common::terminate(child.id());
    let _ = child.wait();
    measured
}

/// CPU per check of `kit` with `grants` and `settings`, called in a loop
/// in this process after a warm-up (the first calls touch fresh pool
/// slots).
fn kit_cost(
    runtime: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    kit: &str,
    grants: Grants,
    tls: &TlsSettings,
    settings: &[(&str, String)],
) -> f64 {
    let engine = KitEngine::new(Some(dir.join("cache"))).unwrap();
    let kit = engine.load(&common::guests::kit(kit)).unwrap();
    let scope =
        CallScope::new("bench", &grants, dir.join("state.json"), 64 << 20).with_files(tls, &[]);
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let check = || async {
        kit.check(scope.clone(), Duration::from_secs(2), &settings)
            .await
            .map(|checked| checked.health)
    };
    runtime.block_on(async {
        for _ in 0..50 {
            assert_eq!(check().await, Ok(Verdict::Healthy));
        }
        let before = cpu(UsageWho::RUSAGE_SELF);
        for _ in 0..CHECKS {
            assert_eq!(check().await, Ok(Verdict::Healthy));
        }
        per_check(cpu(UsageWho::RUSAGE_SELF) - before, CHECKS)
    })
}

/// The bundled http kit checking nginx through the sandbox, in a loop.
fn http_kit(port: u16, runtime: &tokio::runtime::Runtime, dir: &std::path::Path) -> f64 {
    let grants = Grants {
        connect: vec![format!("127.0.0.1:{port}")],
        ..Grants::default()
    };
    let settings = [
        ("url", format!("http://127.0.0.1:{port}/healthz")),
        ("expect_body", "ok".to_string()),
    ];
    kit_cost(
        runtime,
        dir,
        "http",
        grants,
        &TlsSettings::default(),
        &settings,
    )
}

/// The bundled http kit checking `https://127.0.0.1:PORT/healthz` of a
/// server whose CA the app trusts through `[tls] ca_files`, in a loop: a
/// new connection and a full TLS handshake every check.
fn https_kit(
    port: u16,
    ca: &std::path::Path,
    runtime: &tokio::runtime::Runtime,
    dir: &std::path::Path,
) -> f64 {
    let grants = Grants {
        connect: vec![format!("127.0.0.1:{port}")],
        ..Grants::default()
    };
    let tls = TlsSettings {
        ca_files: vec![ca.to_path_buf()],
        ..TlsSettings::default()
    };
    let settings = [
        ("url", format!("https://127.0.0.1:{port}/healthz")),
        ("expect_body", "ok".to_string()),
    ];
    kit_cost(runtime, dir, "http", grants, &tls, &settings)
}

/// The host's own GET behind `host.http-get`, no Wasm.
fn host_get(port: u16, runtime: &tokio::runtime::Runtime) -> f64 {
    let uri =
        medic::sandbox::lean_http::parse_url(&format!("http://127.0.0.1:{port}/healthz")).unwrap();
    runtime.block_on(async {
        let before = cpu(UsageWho::RUSAGE_SELF);
        for _ in 0..CHECKS {
            let to = [std::net::SocketAddr::from(([127, 0, 0, 1], port))];
            let response = medic::sandbox::lean_http::get(&uri, &to, Duration::from_secs(2), 65536)
                .await
                .unwrap();
            assert_eq!(response.status, 200);
        }
        per_check(cpu(UsageWho::RUSAGE_SELF) - before, CHECKS)
    })
}

/// The sandbox alone: a fresh store, instantiation and one call of a check
/// that does no I/O (the misbehave kit's `ok` mode).
fn sandbox_only(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) -> f64 {
    kit_cost(
        runtime,
        dir,
        "misbehave",
        Grants::default(),
        &TlsSettings::default(),
        &[("mode", "ok".to_string())],
    )
}

/// The HTTPS rows: the kit in a loop and `check_http --ssl` as a process,
/// against an nginx whose certificate a CA made here signed. Every kit
/// check must be healthy and every `check_http` OK, so neither can read as
/// free by doing nothing.
fn https_rows(
    runtime: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    row: &dyn Fn(&str, f64, String),
) {
    let ca = common::tls::Ca::new(&dir.join("tls"), "bench-ca");
    let (cert, key) = ca.server("web", &["127.0.0.1"]);
    let nginx = Nginx::start_tls(&cert, &key, "");
    let mut kit = Vec::new();
    let mut processes = Vec::new();
    for _ in 0..ROUNDS {
        kit.push(https_kit(nginx.port, &ca.file(), runtime, dir));
        if !quick() {
            processes.push(check_http(nginx.port, CHECKS / 10, &["--ssl"]));
        }
    }
    row(
        "HTTPS: medic's http kit called in a loop (CA trusted through `[tls]`)",
        median(kit),
        format!("{ROUNDS} × {CHECKS}"),
    );
    if !processes.is_empty() {
        row(
            "HTTPS: Nagios `check_http --ssl` as a process",
            median(processes),
            format!("{ROUNDS} × {}", CHECKS / 10),
        );
    }
}

fn verdict(ratio: f64, target: f64) -> &'static str {
    if ratio <= target { "met" } else { "not met" }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if std::env::var_os("MEDIC_BENCH_PROFILE").is_some() {
        for _ in 0..20 {
            http_kit(nginx.port, &runtime, dir.path());
        }
        return;
    }
    let mut floors = Vec::new();
    let mut paced = Vec::new();
    let mut loop_rows: Vec<(&str, Vec<f64>)> = vec![
        ("(medic's http kit called in a loop, no daemon)", vec![]),
        (
            "(the sandbox alone: instantiate + a call that does no I/O)",
            vec![],
        ),
        ("(the host's GET alone: tokio + hyper, no Wasm)", vec![]),
    ];
    let mut processes = Vec::new();
    for _ in 0..ROUNDS {
        floors.push(floor(nginx.port));
        paced.push(floor_paced(nginx.port));
        loop_rows[0]
            .1
            .push(http_kit(nginx.port, &runtime, dir.path()));
        loop_rows[1].1.push(sandbox_only(&runtime, dir.path()));
        loop_rows[2].1.push(host_get(nginx.port, &runtime));
        if !quick() {
            processes.push(check_http(nginx.port, CHECKS / 10, &[]));
        }
    }
    let medic = medic_daemon();
    let monit = monit(dir.path());
    let floor = median(floors);
    let row = |name: &str, cost: f64, checks: String| {
        println!("| {name} | {cost:.0} | {:.2} | {checks} |", cost / floor);
    };
    println!("### What one HTTP check costs\n");
    println!("| way of checking | µs CPU per check | × floor | checks measured |");
    println!("|---|---:|---:|---:|");
    row(
        "**floor**: blocking GET on a new connection, back to back",
        floor,
        format!("{ROUNDS} × {CHECKS}"),
    );
    row(
        "floor at the daemon's pace: one GET every 2 ms",
        median(paced),
        format!("{ROUNDS} × {}", CHECKS / 2),
    );
    row(
        &format!(
            "**medic daemon**: {APPS} apps every {} ms, bundled `http` kit",
            INTERVAL.as_millis()
        ),
        medic.per_check,
        medic.requests.to_string(),
    );
    row(
        &format!("**Monit 5 daemon**: the same {APPS} checks every 1 s"),
        monit.per_check,
        monit.requests.to_string(),
    );
    if !processes.is_empty() {
        row(
            "Nagios `check_http` as a process",
            median(processes),
            format!("{ROUNDS} × {}", CHECKS / 10),
        );
    }
    for (name, values) in loop_rows {
        row(name, median(values), format!("{ROUNDS} × {CHECKS}"));
    }
    https_rows(&runtime, dir.path(), &row);
    let to_floor = medic.per_check / floor;
    let to_monit = medic.per_check / monit.per_check;
    println!(
        "\nmedic's daemon per check: {to_floor:.2}× the floor (target ≤ 2.0: {}), \
         {to_monit:.2}× Monit's (target ≤ 0.7: {}). Daemons: CPU of the process over \
         {} s (Monit {} s) divided by the requests their own nginx logged; medic at \
         {:.1} % of a core and {:.0} MiB resident, Monit at {:.1} % and {:.0} MiB.\n",
        verdict(to_floor, 2.0),
        verdict(to_monit, 0.7),
        sample().as_secs(),
        sample().as_secs() * 2,
        medic.cpu_percent,
        medic.rss_mib,
        monit.cpu_percent,
        monit.rss_mib,
    );
}
