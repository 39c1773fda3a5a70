//! Kits in every language, in one run: for each language's example kit
//! (the same job everywhere: a GET of nginx's `/healthz` with a body
//! match), the component's size, its cold load (compiling it, no cache) and
//! its warm check cost (CPU per check, a fresh instance each, as the daemon
//! runs it), next to Nagios `check_http` and the OCF `heartbeat/nginx`
//! agent's `monitor` at `OCF_CHECK_LEVEL=10` doing the same job as
//! processes.
//!
//! Run: `cargo xtask bench` (or `cargo bench --profile dev -p medic --bench
//! kit_languages`); `MEDIC_BENCH_QUICK=1` checks fewer times. The examples
//! are built as the tests build them (`sdk/build-example.sh`), so the
//! toolchains must be there (`cargo xtask test` or `dist` installs them).
//! Results go in docs/benchmarks.md.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use medic::config::Grants;
use medic::sandbox::{CallScope, KitEngine, Verdict};
use nix::sys::resource::UsageWho;
use support::{check_http, cpu, per_check};

const OCF_NGINX: &str = "/usr/lib/ocf/resource.d/heartbeat/nginx";

/// Size in KiB, cold load in ms (wall), and µs of CPU per warm check.
fn measure(lang: &str, nginx: &common::nginx::Nginx, checks: u32) -> (f64, f64, f64) {
    let file = common::examples::kit(lang);
    let size = std::fs::metadata(&file).unwrap().len() as f64 / 1024.0;
    let started = Instant::now();
    let kit = KitEngine::new(None).unwrap().load(&file).unwrap();
    let cold = started.elapsed().as_secs_f64() * 1000.0;

    let dir = tempfile::tempdir().unwrap();
    let grants = Grants {
        connect: vec![format!("127.0.0.1:{}", nginx.port)],
        ..Grants::default()
    };
    let scope = CallScope::new("bench", &grants, dir.path().join("state.json"), 256 << 20);
    let settings = vec![
        (
            "url".to_owned(),
            format!("http://127.0.0.1:{}/healthz", nginx.port),
        ),
        ("expect_body".to_owned(), "ok".to_owned()),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let check = || async {
        kit.check(scope.clone(), Duration::from_secs(10), &settings)
            .await
            .map(|checked| checked.health)
    };
    let warm = runtime.block_on(async {
        for _ in 0..10 {
            assert_eq!(check().await, Ok(Verdict::Healthy), "{lang}");
        }
        let before = cpu(UsageWho::RUSAGE_SELF);
        for _ in 0..checks {
            assert_eq!(check().await, Ok(Verdict::Healthy), "{lang}");
        }
        per_check(cpu(UsageWho::RUSAGE_SELF) - before, checks)
    });
    (size, cold, warm)
}

/// CPU per run of the OCF nginx agent's `monitor` at level 10 (its status
/// URL fetched with curl or wget and matched), as Pacemaker would run it.
fn ocf_monitor(nginx: &common::nginx::Nginx, runs: u32) -> f64 {
    let before = cpu(UsageWho::RUSAGE_CHILDREN);
    for _ in 0..runs {
        let status = Command::new(OCF_NGINX)
            .arg("monitor")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("OCF_ROOT", "/usr/lib/ocf")
            .env("OCF_RESOURCE_INSTANCE", "web")
            .env("OCF_CHECK_LEVEL", "10")
            .env(
                "OCF_RESKEY_configfile",
                nginx.prefix.join("nginx.conf").display().to_string(),
            )
            .env("OCF_RESKEY_httpd", common::nginx::NGINX)
            .env(
                "OCF_RESKEY_status10url",
                format!("http://127.0.0.1:{}/healthz", nginx.port),
            )
            .env("OCF_RESKEY_status10regex", "ok")
            .output()
            .unwrap();
        assert!(status.status.success(), "{status:?}");
    }
    per_check(cpu(UsageWho::RUSAGE_CHILDREN) - before, runs)
}

fn main() {
    let quick = std::env::var_os("MEDIC_BENCH_QUICK").is_some();
    let (light, heavy, processes) = if quick {
        (300, 30, 20)
    } else {
        (2000, 200, 100)
    };
    let nginx = common::nginx::Nginx::start();
    println!("### Kits in every language\n");
    println!("| kit | size KiB | cold load ms | µs CPU per warm check |");
    println!("|---|---:|---:|---:|");
    for (lang, checks) in [
        ("rust", light),
        ("c", light),
        ("python", heavy),
        ("js", heavy),
    ] {
        let (size, cold, warm) = measure(lang, &nginx, checks);
        println!("| {lang}-http | {size:.0} | {cold:.0} | {warm:.0} |");
    }
    println!(
        "| Nagios check_http (a process) | | | {:.0} |",
        check_http(nginx.port, processes, &[])
    );
    println!(
        "| OCF heartbeat/nginx monitor, level 10 (a process) | | | {:.0} |",
        ocf_monitor(&nginx, processes / 5)
    );
}
