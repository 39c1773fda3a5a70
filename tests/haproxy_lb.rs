//! `medic::unit::haproxy` against a real HAProxy in front of real nginx
//! servers, with a steady client counting every request through it: a
//! member drained, stopped, started with a new version and put back loses
//! no request; a drain that times out says how many sessions are left; a
//! wrong name is a clear error; a name that could inject a command never
//! leaves the controller.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::haproxy::{BACKEND, Haproxy, SteadyClient};
use common::nginx::{NGINX, Nginx};
use medic::unit::haproxy::{self as lb, AdminState, Endpoint, HaproxyError};

/// Runs one call of the client under test.
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// A real nginx whose `GET /` answers `body`.
fn nginx_serving(body: &str) -> Nginx {
    let nginx = Nginx::start();
    serve(&nginx, body);
    nginx
}

fn serve(nginx: &Nginx, body: &str) {
    std::fs::write(nginx.prefix.join("html/index.html"), format!("{body}\n")).unwrap();
}

fn address(nginx: &Nginx) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], nginx.port))
}

/// HAProxy balancing over `web1` → `a` and `web2` → `b`, both UP.
fn balancer(a: &Nginx, b: &Nginx) -> Haproxy {
    let haproxy = Haproxy::start(&[("web1", address(a)), ("web2", address(b))]);
    haproxy.wait_all_up(Duration::from_secs(10));
    haproxy
}

fn client(endpoint: Endpoint) -> lb::Haproxy {
    lb::Haproxy::new(endpoint, Duration::from_secs(2))
}

fn server(api: &lb::Haproxy, name: &str) -> lb::ServerStatus {
    block_on(api.server(BACKEND, name)).unwrap()
}

#[test]
fn a_member_drained_stopped_and_put_back_loses_no_request() {
    let a = nginx_serving("a v1");
    let b = nginx_serving("b v1");
    let haproxy = balancer(&a, &b);
    let steady = SteadyClient::start(haproxy.port);
    let both = steady.wait_bodies("a v1", 5, Duration::from_secs(5))
        && steady.wait_bodies("b v1", 5, Duration::from_secs(5));
    assert!(both, "{:?}", steady.snapshot());
    let api = client(Endpoint::Socket(haproxy.socket.clone()));

    let heard = Mutex::new(Vec::new());
    let outcome = block_on(api.drain(BACKEND, "web1", Duration::from_secs(5), |left| {
        heard.lock().unwrap().push(left);
    }))
    .unwrap();
    assert_eq!(outcome.sessions_left, 0, "{outcome:?}");
    assert_eq!(heard.lock().unwrap().last(), Some(&0));
    let drained = server(&api, "web1");
    assert_eq!(drained.status, "DRAIN", "{drained:?}");
    assert!(drained.admin_drain && !drained.is_up(), "{drained:?}");

    // a response on its way when the drain ended is counted before the mark
    std::thread::sleep(Duration::from_millis(100));
    let mark = steady.snapshot().ok;
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(steady.snapshot().bodies_after(mark), ["b v1"]);

    common::terminate(a.master_pid().unwrap());
    assert!(common::wait_for(Duration::from_secs(5), || !a.serves()));
    // HAProxy's checks see it down, and only the admin state says drained
    let down = common::wait_for(Duration::from_secs(5), || {
        server(&api, "web1").status == "DOWN"
    });
    assert!(down, "{:?}", server(&api, "web1"));
    assert!(server(&api, "web1").admin_drain);

    serve(&a, "a v2");
    let started = Command::new(NGINX).args(a.start_args()).status().unwrap();
    assert!(started.success() && common::wait_for(Duration::from_secs(5), || a.serves()));
    let waited = block_on(api.ready_and_up(BACKEND, "web1", Duration::from_secs(10))).unwrap();
    let up = server(&api, "web1");
    assert!(
        up.is_fully_up() && !up.admin_drain,
        "{up:?} after {waited:?}"
    );
    assert!(
        steady.wait_bodies("a v2", 5, Duration::from_secs(5)),
        "{:?}",
        steady.snapshot()
    );

    let report = steady.stop();
    eprintln!(
        "{} requests ok, drain heard {:?}, UP {waited:?} after ready, bodies {:?}",
        report.ok,
        heard.lock().unwrap(),
        report.bodies
    );
    assert_eq!(
        report.failures,
        0,
        "{:?}\n{}",
        report.failed,
        haproxy.log_text()
    );
    assert!(report.ok > 50, "{report:?}");
}

#[test]
fn a_drain_that_times_out_reports_the_sessions_left() {
    let a = nginx_serving("a v1");
    let b = nginx_serving("b v1");
    std::fs::write(a.prefix.join("html/big"), vec![b'x'; 64 << 20]).unwrap();
    let haproxy = balancer(&a, &b);
    let api = client(Endpoint::Socket(haproxy.socket.clone()));

    // a download from web1 that the client stops reading holds a session
    block_on(api.set_state(BACKEND, "web2", AdminState::Drain)).unwrap();
    let download = slow_download(haproxy.port);
    block_on(api.set_state(BACKEND, "web2", AdminState::Ready)).unwrap();
    assert_eq!(server(&api, "web1").sessions, 1);

    let heard = Mutex::new(Vec::new());
    let progress = |left| heard.lock().unwrap().push(left);
    let timeout = Duration::from_millis(800);
    let outcome = block_on(api.drain(BACKEND, "web1", timeout, progress)).unwrap();
    assert_eq!(outcome.sessions_left, 1, "{outcome:?}");
    assert!(
        !outcome.emptied() && outcome.waited >= timeout,
        "{outcome:?}"
    );
    assert_eq!(*heard.lock().unwrap(), [1], "heard once, not every poll");

    drop(download);
    let outcome = block_on(api.drain(BACKEND, "web1", Duration::from_secs(5), |_| ())).unwrap();
    assert!(outcome.emptied(), "{outcome:?}");
    block_on(api.ready_and_up(BACKEND, "web1", Duration::from_secs(5))).unwrap();
}

/// A `GET /big` through the frontend, of which only the first bytes are read.
fn slow_download(port: u16) -> TcpStream {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut start = [0; 1024];
    stream.read_exact(&mut start).unwrap();
    assert!(start.starts_with(b"HTTP/1.1 200 "));
    stream
}

#[test]
fn wrong_names_are_clear_errors_over_the_tcp_address_too() {
    let a = nginx_serving("a v1");
    let dead = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    let haproxy = Haproxy::start(&[("web1", address(&a)), ("web2", dead)]);
    let api = client(Endpoint::Address(haproxy.admin));

    let no_server = "HAProxy has no server web_back/web9: check [unit.lb] members";
    let error = block_on(api.server(BACKEND, "web9")).unwrap_err();
    assert_eq!(error.to_string(), no_server);
    let error = block_on(api.set_state(BACKEND, "web9", AdminState::Drain)).unwrap_err();
    assert_eq!(error.to_string(), no_server);
    let no_backend = "HAProxy has no backend web_bak: check [unit.lb] backend";
    let error = block_on(api.server("web_bak", "web1")).unwrap_err();
    assert_eq!(error.to_string(), no_backend);
    let error = block_on(api.set_state("web_bak", "web1", AdminState::Drain)).unwrap_err();
    assert_eq!(error.to_string(), no_backend);

    // maint and back over TCP
    let up = common::wait_for(Duration::from_secs(5), || {
        server(&api, "web1").is_fully_up()
    });
    assert!(up, "{:?}", server(&api, "web1"));
    block_on(api.set_state(BACKEND, "web1", AdminState::Maint)).unwrap();
    let maint = server(&api, "web1");
    assert!(
        maint.status == "MAINT" && maint.admin_maint && !maint.is_up(),
        "{maint:?}"
    );
    block_on(api.ready_and_up(BACKEND, "web1", Duration::from_secs(5))).unwrap();

    // a server whose checks fail is not called UP, even leaving maint
    let down = common::wait_for(Duration::from_secs(5), || {
        server(&api, "web2").status == "DOWN"
    });
    assert!(down, "{:?}", server(&api, "web2"));
    block_on(api.set_state(BACKEND, "web2", AdminState::Maint)).unwrap();
    let within = Duration::from_secs(1);
    let error = block_on(api.ready_and_up(BACKEND, "web2", within)).unwrap_err();
    assert!(matches!(error, HaproxyError::NotUp { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with("web_back/web2 is not UP within 1s: status DOWN"),
        "{message}"
    );
}

#[test]
fn a_name_with_a_newline_is_refused_before_anything_is_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let api = client(Endpoint::Address(listener.local_addr().unwrap()));
    let injected = "web1\nset server web_back/web2 state maint";
    let error = block_on(api.set_state(BACKEND, injected, AdminState::Drain)).unwrap_err();
    assert!(matches!(error, HaproxyError::InvalidName(_)), "{error}");
    assert!(
        error.to_string().starts_with(r"`web1\nset server"),
        "{error}"
    );
    let error = block_on(api.server("web_back;show info", "web1")).unwrap_err();
    assert!(matches!(error, HaproxyError::InvalidName(_)), "{error}");
    let error = block_on(api.drain(BACKEND, "web 1", Duration::from_secs(1), |_| ())).unwrap_err();
    assert!(matches!(error, HaproxyError::InvalidName(_)), "{error}");
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the client connected: {accepted:?}"
    );
}
