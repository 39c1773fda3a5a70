//! CPU cost of one HTTP check of a local nginx, measured four ways in one
//! run: medic's http kit through the sandbox, the floor (a plain in-process
//! GET on a new connection), Nagios `check_http` as a process, and Monit 5
//! doing the same checks in its daemon. Client-side CPU only (nginx's own CPU
//! is the same for all and not counted). Run: `cargo xtask bench`; results go
//! in docs/benchmarks.md.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use medic::config::Grants;
use medic::sandbox::{CallScope, KitEngine, Verdict};
use nix::sys::resource::UsageWho;
use support::{check_http, cpu, median, per_check};

const CHECKS: u32 = 3_000;
const ROUNDS: usize = 3;
const MONIT: &str = "/usr/bin/monit";

fn floor(port: u16) -> f64 {
    let before = cpu(UsageWho::RUSAGE_SELF);
    for _ in 0..CHECKS {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        assert!(response.starts_with(b"HTTP/1.1 200"));
    }
    per_check(cpu(UsageWho::RUSAGE_SELF) - before, CHECKS)
}

/// CPU per check of `kit` with `grants` and `settings`, after a warm-up
/// (the first instantiations touch fresh pool slots).
fn kit_cost(
    runtime: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    kit: &str,
    grants: Grants,
    settings: &[(&str, String)],
) -> f64 {
    let engine = KitEngine::new(Some(dir.join("cache"))).unwrap();
    let kit = engine.load(&common::guests::kit(kit)).unwrap();
    let scope = CallScope::new("bench", &grants, dir.join("state.json"), 64 << 20);
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

/// The bundled http kit checking nginx through the sandbox.
fn http_kit(port: u16, runtime: &tokio::runtime::Runtime, dir: &std::path::Path) -> f64 {
    let grants = Grants {
        connect: vec![format!("127.0.0.1:{port}")],
        ..Grants::default()
    };
    let settings = [
        ("url", format!("http://127.0.0.1:{port}/healthz")),
        ("expect_body", "ok".to_string()),
    ];
    kit_cost(runtime, dir, "http", grants, &settings)
}

/// The host's own GET behind `host.http-get` (tokio + hyper), no Wasm.
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
        &[("mode", "ok".to_string())],
    )
}

/// Monit with `hosts` identical http checks, one cycle per second; its CPU
/// is read from /proc over `seconds` cycles.
fn monit(port: u16, dir: &std::path::Path) -> f64 {
    const HOSTS: u32 = 100;
    const SECONDS: u32 = 10;
    let rc = dir.join("monitrc");
    let mut conf = format!(
        "set daemon 1\nset pidfile {d}/monit.pid\nset idfile {d}/monit.id\nset statefile {d}/monit.state\nset logfile {d}/monit.log\n",
        d = dir.display()
    );
    for i in 0..HOSTS {
        conf += &format!(
            "check host h{i} with address 127.0.0.1\n  if failed port {port} protocol http request \"/healthz\" content = \"ok\" then alert\n"
        );
    }
    std::fs::write(&rc, conf).unwrap();
    let mut perms = std::fs::metadata(&rc).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&rc, perms).unwrap();
    let mut child = Command::new(MONIT)
        .args(["-I", "-c"])
        .arg(&rc)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ticks = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    std::thread::sleep(Duration::from_secs(3));
    let before = ticks();
    std::thread::sleep(Duration::from_secs(u64::from(SECONDS)));
    let used = ticks() - before;
    common::terminate(child.id());
    let _ = child.wait();
    let hz = 100.0; // USER_HZ on Linux
    used as f64 / hz * 1e6 / f64::from(HOSTS * SECONDS)
}

/// `MEDIC_BENCH_QUICK=1` measures only medic and the floor (for iterating).
fn main() {
    let quick = std::env::var_os("MEDIC_BENCH_QUICK").is_some();
    let dir = tempfile::tempdir().unwrap();
    let nginx = common::nginx::Nginx::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        ("floor: Rust TcpStream GET, new connection", vec![]),
        ("medic http kit (sandboxed Wasm)", vec![]),
        ("Nagios check_http as a process", vec![]),
        ("(medic sandbox alone: instantiate + call, no I/O)", vec![]),
        ("(host GET alone: tokio + hyper, no Wasm)", vec![]),
    ];
    for _ in 0..ROUNDS {
        rows[0].1.push(floor(nginx.port));
        rows[1].1.push(http_kit(nginx.port, &runtime, dir.path()));
        if !quick {
            rows[2].1.push(check_http(nginx.port, CHECKS / 10));
        }
        rows[3].1.push(sandbox_only(&runtime, dir.path()));
        rows[4].1.push(host_get(nginx.port, &runtime));
    }
    let monit_cost = if !quick && std::path::Path::new(MONIT).exists() {
        Some(monit(nginx.port, dir.path()))
    } else {
        None
    };
    let floor_cost = median(rows[0].1.clone());
    println!("| way of checking | µs CPU per check (median of {ROUNDS}) | × floor |");
    println!("|---|---:|---:|");
    for (name, values) in rows.into_iter().filter(|(_, v)| !v.is_empty()) {
        let m = median(values);
        println!("| {name} | {m:.0} | {:.2} |", m / floor_cost);
    }
    if let Some(m) = monit_cost {
        println!(
            "| Monit 5 http check in its daemon | {m:.0} | {:.2} |",
            m / floor_cost
        );
    }
}
