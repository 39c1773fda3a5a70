//! A real HAProxy started by the test in front of the test's servers, with
//! its runtime API on a unix socket and a TCP address, and a steady HTTP
//! client that counts every request through it: the load balancer of
//! `medic unit roll`, where "no failed request" is measured, not assumed.
//!
//! Both read HAProxy and HTTP with std only, independently of the client in
//! `medic::unit::haproxy` they test.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// HAProxy's binary on Debian.
pub const HAPROXY: &str = "/usr/sbin/haproxy";

/// The backend every fixture configures, as `[unit.lb] backend` names it.
pub const BACKEND: &str = "web_back";

/// A test's own HAProxy (`-db`: in the foreground, one process, in its own
/// process group). Dropping it kills it by its pid.
pub struct Haproxy {
    /// The frontend's port on 127.0.0.1.
    pub port: u16,
    /// The runtime API's unix socket (`level admin`).
    pub socket: PathBuf,
    /// The runtime API's TCP address (`level admin`).
    pub admin: SocketAddr,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// Starts HAProxy with backend [`BACKEND`] balancing over `servers`
    /// (name, address), each checked with `GET /healthz` every 200 ms;
    /// returns once its runtime API answers.
    pub fn start(servers: &[(&str, SocketAddr)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("admin.sock");
        let admin = SocketAddr::from(([127, 0, 0, 1], super::free_port()));
        let port = super::free_port();
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(&config, Self::config(&socket, admin, port, servers)).unwrap();
        let log = dir.path().join("haproxy.log");
        let output = std::fs::File::create(&log).unwrap();
        let child = Command::new(HAPROXY)
            .arg("-f")
            .arg(&config)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .process_group(0)
            .spawn()
            .unwrap();
        let mut haproxy = Self {
            port,
            socket,
            admin,
            child,
            log,
            _dir: dir,
        };
        let answers = super::wait_for(Duration::from_secs(5), || {
            haproxy.child.try_wait().unwrap().is_none() && haproxy.try_command("show info").is_ok()
        });
        assert!(answers, "haproxy does not answer:\n{}", haproxy.log_text());
        haproxy
    }

    fn config(
        socket: &std::path::Path,
        admin: SocketAddr,
        port: u16,
        servers: &[(&str, SocketAddr)],
    ) -> String {
        let servers: String = servers
            .iter()
            .map(|(name, address)| format!("  server {name} {address} check\n"))
            .collect();
        format!(
            "global\n  stats socket {socket} mode 600 level admin\n  stats socket ipv4@{admin} level admin\n\n\
             defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n  timeout check 1s\n  \
             option redispatch\n  retries 3\n\n\
             frontend web\n  bind 127.0.0.1:{port}\n  default_backend {BACKEND}\n\n\
             backend {BACKEND}\n  balance roundrobin\n  option httpchk GET /healthz\n  http-check expect status 200\n  \
             default-server inter 200ms fall 2 rise 2\n{servers}",
            socket = socket.display(),
        )
    }

    /// One runtime API command over the unix socket, and its answer.
    pub fn command(&self, command: &str) -> String {
        self.try_command(command).unwrap()
    }

    fn try_command(&self, command: &str) -> std::io::Result<String> {
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(format!("{command}\n").as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// Each server of [`BACKEND`] with its `show stat` status.
    pub fn statuses(&self) -> BTreeMap<String, String> {
        let answer = self.command("show stat -1 4 -1");
        let mut lines = answer.lines();
        let header: Vec<&str> = lines
            .next()
            .and_then(|line| line.strip_prefix("# "))
            .unwrap_or_else(|| panic!("no show stat header: {answer}"))
            .split(',')
            .collect();
        let column = |name| header.iter().position(|n| *n == name).unwrap();
        let (pxname, svname, status) = (column("pxname"), column("svname"), column("status"));
        lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .filter(|row| row.len() > status && row[pxname] == BACKEND)
            .map(|row| (row[svname].to_owned(), row[status].to_owned()))
            .collect()
    }

    /// Waits until HAProxy's checks report every server `UP`; panics with
    /// their statuses if they do not within `timeout`.
    pub fn wait_all_up(&self, timeout: Duration) {
        let up = super::wait_for(timeout, || {
            self.statuses().values().all(|status| status == "UP")
        });
        assert!(up, "not all UP: {:?}", self.statuses());
    }

    /// HAProxy's output (warnings such as servers going up and down).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// At most this many failures are kept with their reasons (all are counted).
const MAX_FAILURES: usize = 100;

/// At most this many runs of one body are kept in order (all responses are
/// counted per body).
const MAX_RUNS: usize = 10_000;

/// The longest body kept (the fixtures' pages are a word or two).
const MAX_BODY: usize = 64;

/// What a [`SteadyClient`] saw.
#[derive(Debug, Clone, Default)]
pub struct ClientReport {
    /// Requests answered `200`.
    pub ok: u64,
    /// Failed requests: all of them counted.
    pub failures: u64,
    /// The first [`MAX_FAILURES`] failures: time since the start and why.
    pub failed: Vec<String>,
    /// Responses per body.
    pub bodies: BTreeMap<String, u64>,
    /// The bodies in the order answered, each with how many came in a row
    /// (at most [`MAX_RUNS`] runs).
    pub bodies_in_order: Vec<(String, u64)>,
}

impl ClientReport {
    /// The distinct bodies answered after the first `skip` successful
    /// responses: which servers answered since a moment of the test.
    pub fn bodies_after(&self, skip: u64) -> Vec<String> {
        let mut seen = 0;
        let mut after: Vec<String> = Vec::new();
        for (body, count) in &self.bodies_in_order {
            seen += count;
            if seen > skip && !after.contains(body) {
                after.push(body.clone());
            }
        }
        after
    }

    fn record(&mut self, started: Instant, result: Result<String, String>) {
        match result {
            Ok(body) => {
                self.ok += 1;
                *self.bodies.entry(body.clone()).or_default() += 1;
                let runs = self.bodies_in_order.len();
                match self.bodies_in_order.last_mut() {
                    Some((last, count)) if *last == body => *count += 1,
                    _ if runs < MAX_RUNS => self.bodies_in_order.push((body, 1)),
                    _ => {}
                }
            }
            Err(reason) => {
                self.failures += 1;
                if self.failed.len() < MAX_FAILURES {
                    let at = started.elapsed().as_secs_f64();
                    self.failed.push(format!("{at:.3}s: {reason}"));
                }
            }
        }
    }
}

/// A client sending `GET /` through a frontend every ~20 ms from its own
/// thread until stopped. Each request opens its own connection and says
/// `Connection: close`, so each is balanced afresh and a failure is one
/// request's, never a kept-alive connection's closed by an idle timeout.
pub struct SteadyClient {
    report: Arc<Mutex<ClientReport>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SteadyClient {
    /// Starts sending to `127.0.0.1:port`.
    pub fn start(port: u16) -> Self {
        let report = Arc::new(Mutex::new(ClientReport::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (report, stop) = (report.clone(), stop.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let result = get(port);
                    report.lock().unwrap().record(started, result);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Self {
            report,
            stop,
            thread: Some(thread),
        }
    }

    /// What it saw so far, while it goes on.
    pub fn snapshot(&self) -> ClientReport {
        self.report.lock().unwrap().clone()
    }

    /// Waits until a response says `body` (true), or `timeout` passes.
    pub fn wait_body(&self, body: &str, timeout: Duration) -> bool {
        self.wait_bodies(body, 1, timeout)
    }

    /// Waits until `count` responses have said `body` (true), or `timeout`
    /// passes.
    pub fn wait_bodies(&self, body: &str, count: u64, timeout: Duration) -> bool {
        super::wait_for(timeout, || {
            self.snapshot()
                .bodies
                .get(body)
                .is_some_and(|n| *n >= count)
        })
    }

    /// Stops after the request in flight; what it saw.
    pub fn stop(mut self) -> ClientReport {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.snapshot()
    }
}

impl Drop for SteadyClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One `GET /` through `127.0.0.1:port`: the body (trimmed, cut at
/// [`MAX_BODY`]) of a `200`, or why it failed.
fn get(port: u16) -> Result<String, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    let timeout = Some(Duration::from_secs(3));
    stream.set_read_timeout(timeout).unwrap();
    stream.set_write_timeout(timeout).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let response = String::from_utf8_lossy(&response);
    let status = response.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200 ") {
        return Err(format!("status `{status}`"));
    }
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim())
        .ok_or_else(|| "no end of headers".to_owned())?;
    Ok(body.chars().take(MAX_BODY).collect())
}
