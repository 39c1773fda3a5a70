//! What the benchmarks share: CPU time from getrusage, per-check and
//! median arithmetic, and Nagios `check_http` as the process to compare
//! against.
#![allow(dead_code, clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::resource::{UsageWho, getrusage};

const CHECK_HTTP: &str = "/usr/lib/nagios/plugins/check_http";

/// CPU time (user + system) of this process, or of its reaped children.
pub fn cpu(who: UsageWho) -> Duration {
    let usage = getrusage(who).unwrap();
    let micros = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    Duration::from_micros(micros(usage.user_time()) + micros(usage.system_time()))
}

pub fn per_check(total: Duration, checks: u32) -> f64 {
    total.as_secs_f64() * 1e6 / f64::from(checks)
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// CPU per run of Nagios `check_http` checking nginx's `/healthz` for `ok`,
/// as a process (`runs` runs).
pub fn check_http(port: u16, runs: u32) -> f64 {
    let before = cpu(UsageWho::RUSAGE_CHILDREN);
    for _ in 0..runs {
        let status = Command::new(CHECK_HTTP)
            .args([
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-u",
                "/healthz",
                "-s",
                "ok",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    per_check(cpu(UsageWho::RUSAGE_CHILDREN) - before, runs)
}
