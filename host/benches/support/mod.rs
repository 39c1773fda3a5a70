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
pub fn check_http(port: u16, runs: u32, extra: &[&str]) -> f64 {
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
            .args(extra)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    per_check(cpu(UsageWho::RUSAGE_CHILDREN) - before, runs)
}

/// KiB of `field` (`VmRSS:`, `RssAnon:`) in /proc/PID/status.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// CPU seconds (user + system, every thread, also those that ended) and
/// resident KiB of process `pid`, from /proc.
pub fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("process {pid} is gone: {e}"));
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    (ticks as f64 / 100.0, status_kib(pid, "VmRSS:")) // USER_HZ is 100 on Linux
}

/// What a daemon (medic or Monit) spent per check of `servers` over
/// `sample`: CPU of process `pid` divided by the requests the servers
/// logged meanwhile. Panics when the daemon died or did no work, so a
/// missing or broken compared tool can never read as free.
pub struct DaemonSample {
    /// µs of CPU per request the servers logged.
    pub per_check: f64,
    /// Requests logged during the sample.
    pub requests: usize,
    /// CPU % of one core.
    pub cpu_percent: f64,
    /// Resident memory at the end, MiB.
    pub rss_mib: f64,
    /// The anonymous part of it (heap, stacks, Wasm memories), MiB; the
    /// rest is the binary and shared libraries, mapped from their files.
    pub anon_mib: f64,
}

pub fn sample_daemon(
    what: &str,
    pid: u32,
    servers: &[&crate::common::nginx::Nginx],
    sample: Duration,
    expected_per_second: f64,
) -> DaemonSample {
    let logged = || servers.iter().map(|s| s.request_count()).sum::<usize>();
    let (cpu_before, _) = usage(pid);
    let requests_before = logged();
    let started = std::time::Instant::now();
    std::thread::sleep(sample);
    let (cpu_after, rss) = usage(pid);
    let requests = logged() - requests_before;
    let elapsed = started.elapsed().as_secs_f64();
    let expected = expected_per_second * elapsed;
    assert!(
        requests as f64 >= expected * 0.8,
        "{what} did not do its work: {requests} requests logged in {elapsed:.1} s, {expected:.0} expected"
    );
    let cpu = cpu_after - cpu_before;
    assert!(cpu > 0.0, "{what} used no CPU at all: it is not running");
    DaemonSample {
        per_check: cpu * 1e6 / requests as f64,
        requests,
        cpu_percent: cpu / elapsed * 100.0,
        rss_mib: rss as f64 / 1024.0,
        anon_mib: status_kib(pid, "RssAnon:") as f64 / 1024.0,
    }
}
