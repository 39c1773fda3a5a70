//! Alert sinks against real receivers: an HTTP server on 127.0.0.1 and
//! real commands run through /bin/sh.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use medic::alerts::{Alerts, Backoff, SinkSettings, SinkStats, SinkTarget};
use medic::journal::{Event, Kind};
use serde_json::json;

/// Records what a webhook receiver was sent and answers with `status`.
struct Receiver {
    status: StatusCode,
    delay: Duration,
    requests: Mutex<Vec<(HeaderMap, Bytes)>>,
}

impl Receiver {
    fn bodies(&self) -> Vec<Bytes> {
        let requests = self.requests.lock().unwrap();
        requests.iter().map(|(_, body)| body.clone()).collect()
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

async fn hook(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    tokio::time::sleep(receiver.delay).await;
    receiver.requests.lock().unwrap().push((headers, body));
    receiver.status
}

/// Starts a receiver answering `status` after `delay`; returns its URL.
async fn receiver(status: u16, delay: Duration) -> (String, Arc<Receiver>) {
    let receiver = Arc::new(Receiver {
        status: StatusCode::from_u16(status).unwrap(),
        delay,
        requests: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(Arc::clone(&receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook?token=secret"), receiver)
}

fn webhook(url: &str, kinds: Vec<Kind>, retries: u32) -> SinkSettings {
    SinkSettings {
        name: "pager".to_owned(),
        kinds,
        target: SinkTarget::Webhook {
            url: url.to_owned(),
        },
        timeout: Duration::from_secs(5),
        retries,
    }
}

fn exec(argv: &[&str], timeout: Duration, retries: u32) -> SinkSettings {
    SinkSettings {
        name: "script".to_owned(),
        kinds: Vec::new(),
        target: SinkTarget::Exec {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        },
        timeout,
        retries,
    }
}

fn fast() -> Backoff {
    Backoff {
        first: Duration::from_millis(10),
        max: Duration::from_millis(50),
    }
}

fn escalation() -> Event {
    Event::new(
        Some("web"),
        Kind::Escalation,
        json!({"then": "reset", "reason": "3 failed checks"}),
    )
}

/// Waits until the only sink's stats satisfy `done`; returns them.
async fn wait_for(alerts: &Alerts, done: impl Fn(&SinkStats) -> bool) -> SinkStats {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = alerts.stats().remove(0);
        if done(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting; stats: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_receives_the_event_as_the_journal_writes_it() {
    let (url, receiver) = receiver(200, Duration::ZERO).await;
    let alerts = Alerts::start_with_backoff(vec![webhook(&url, Vec::new(), 0)], 8, fast());
    let event = escalation();
    alerts.offer(&event);

    let stats = wait_for(&alerts, |s| s.delivered == 1).await;
    assert_eq!(
        (stats.name.as_str(), stats.failed, stats.dropped),
        ("pager", 0, 0)
    );
    let requests = receiver.requests.lock().unwrap();
    let (headers, body) = &requests[0];
    assert_eq!(
        body.as_ref(),
        serde_json::to_vec(&event).unwrap().as_slice()
    );
    assert_eq!(headers["content-type"], "application/json");
    let agent = headers["user-agent"].to_str().unwrap();
    assert_eq!(agent, format!("medic/{}", env!("CARGO_PKG_VERSION")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_configured_kinds_are_delivered() {
    let (url, receiver) = receiver(200, Duration::ZERO).await;
    let alerts = Alerts::start_with_backoff(vec![webhook(&url, vec![Kind::Alert], 0)], 8, fast());
    // Offered first: had it been queued it would be delivered first.
    alerts.offer(&Event::new(Some("web"), Kind::AppDegraded, json!({})));
    alerts.offer(&Event::new(
        Some("web"),
        Kind::Alert,
        json!({"message": "down"}),
    ));

    let stats = wait_for(&alerts, |s| s.delivered == 1).await;
    assert_eq!((stats.failed, stats.dropped), (0, 0));
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1);
    let sent: serde_json::Value = serde_json::from_slice(&bodies[0]).unwrap();
    assert_eq!(sent["kind"], "alert");
    assert_eq!(sent["app"], "web");
    assert_eq!(sent["detail"]["message"], "down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_webhook_never_delays_offer_and_overflow_is_dropped() {
    // Accepts connections, says so, and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (accepted, mut accepts) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
            let _ = accepted.send(());
        }
    });
    let mut sink = webhook(&url, Vec::new(), 0);
    sink.timeout = Duration::from_secs(30);
    let alerts = Alerts::start_with_backoff(vec![sink], 4, fast());
    // Once the receiver holds the first delivery, the queue is empty.
    alerts.offer(&escalation());
    tokio::time::timeout(Duration::from_secs(10), accepts.recv())
        .await
        .unwrap()
        .unwrap();

    let started = Instant::now();
    for _ in 0..1000 {
        alerts.offer(&escalation());
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "1000 offers took {took:?}"
    );

    // One event is in flight, 4 are queued, the other 996 are dropped.
    let stats = alerts.stats().remove(0);
    assert_eq!((stats.delivered, stats.failed, stats.dropped), (0, 0, 996));

    // Shutdown gives up on the hung receiver after its grace.
    let started = Instant::now();
    alerts.clone().shutdown(Duration::from_millis(100)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    alerts.offer(&escalation());
    assert_eq!(
        alerts.stats()[0].dropped,
        997,
        "offers after shutdown are dropped"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_then_counted_failed() {
    let (url, receiver) = receiver(500, Duration::ZERO).await;
    let alerts = Alerts::start_with_backoff(vec![webhook(&url, Vec::new(), 2)], 8, fast());
    alerts.offer(&escalation());

    let stats = wait_for(&alerts, |s| s.failed == 1).await;
    assert_eq!((stats.delivered, stats.dropped), (0, 0));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.count(), 3, "the first attempt and 2 retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_not_retried() {
    let (url, receiver) = receiver(404, Duration::ZERO).await;
    let alerts = Alerts::start_with_backoff(vec![webhook(&url, Vec::new(), 3)], 8, fast());
    alerts.offer(&escalation());

    wait_for(&alerts, |s| s.failed == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_webhook_is_retried_then_failed() {
    // A port that was just free: connections are refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    let alerts = Alerts::start_with_backoff(vec![webhook(&url, Vec::new(), 1)], 8, fast());
    alerts.offer(&escalation());
    let stats = wait_for(&alerts, |s| s.failed == 1).await;
    assert_eq!(stats.delivered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_sink_gets_the_event_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("event.json");
    let script = exec(
        &[
            "/bin/sh",
            "-c",
            "cat > \"$1\"",
            "sh",
            file.to_str().unwrap(),
        ],
        Duration::from_secs(5),
        0,
    );
    let alerts = Alerts::start_with_backoff(vec![script], 8, fast());
    let event = escalation();
    alerts.offer(&event);

    wait_for(&alerts, |s| s.delivered == 1).await;
    let mut expected = serde_json::to_vec(&event).unwrap();
    expected.push(b'\n');
    assert_eq!(std::fs::read(&file).unwrap(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_sink_failing_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("runs");
    let script = exec(
        &[
            "/bin/sh",
            "-c",
            "echo run >> \"$1\"; echo 'receiver down' >&2; exit 3",
            "sh",
            file.to_str().unwrap(),
        ],
        Duration::from_secs(5),
        2,
    );
    let alerts = Alerts::start_with_backoff(vec![script], 8, fast());
    alerts.offer(&escalation());

    wait_for(&alerts, |s| s.failed == 1).await;
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_sink_is_killed_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pid");
    let script = exec(
        &[
            "/bin/sh",
            "-c",
            "echo $$ > \"$1\"; exec sleep 30",
            "sh",
            file.to_str().unwrap(),
        ],
        Duration::from_secs(1),
        0,
    );
    let alerts = Alerts::start_with_backoff(vec![script], 8, fast());
    let started = Instant::now();
    alerts.offer(&escalation());

    let stats = wait_for(&alerts, |s| s.failed == 1).await;
    assert_eq!(stats.delivered, 0);
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid: i32 = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!pid_alive(pid), "pid {pid} still exists after the timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_queued_events() {
    let (url, receiver) = receiver(200, Duration::from_millis(30)).await;
    let alerts = Alerts::start_with_backoff(vec![webhook(&url, Vec::new(), 0)], 16, fast());
    let events: Vec<Event> = (0..10)
        .map(|n| Event::new(Some("web"), Kind::Alert, json!({ "n": n })))
        .collect();
    for event in &events {
        alerts.offer(event);
    }
    // Nearly all are still queued: each answer takes 30 ms.
    assert!(receiver.count() < 10);

    alerts.clone().shutdown(Duration::from_secs(10)).await;
    let stats = alerts.stats().remove(0);
    assert_eq!((stats.delivered, stats.failed, stats.dropped), (10, 0, 0));
    let expected: Vec<Vec<u8>> = events
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap())
        .collect();
    let bodies: Vec<Vec<u8>> = receiver.bodies().iter().map(|b| b.to_vec()).collect();
    assert_eq!(bodies, expected, "all delivered, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sink_counts_on_its_own() {
    let (url, receiver) = receiver(200, Duration::ZERO).await;
    let mut pager = webhook(&url, vec![Kind::ResetRefused], 0);
    pager.name = "pager".to_owned();
    let mut all = webhook(&url, Vec::new(), 0);
    all.name = "all".to_owned();
    let alerts = Alerts::start_with_backoff(vec![pager, all], 8, fast());
    alerts.offer(&Event::new(None, Kind::ResetRefused, json!({"budget": 2})));
    alerts.offer(&Event::new(Some("web"), Kind::AppFailed, json!({})));

    let deadline = Instant::now() + Duration::from_secs(10);
    while alerts.stats().iter().map(|s| s.delivered).sum::<u64>() < 3 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = alerts.stats();
    assert_eq!((stats[0].name.as_str(), stats[0].delivered), ("pager", 1));
    assert_eq!((stats[1].name.as_str(), stats[1].delivered), ("all", 2));
    assert_eq!(receiver.count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_timeout_also_ends_what_the_command_started() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pid");
    // The shell stays; its background child must not outlive the timeout.
    let script = exec(
        &[
            "/bin/sh",
            "-c",
            "sleep 30 & echo $! > \"$1\"; wait",
            "sh",
            file.to_str().unwrap(),
        ],
        Duration::from_secs(1),
        0,
    );
    let alerts = Alerts::start_with_backoff(vec![script], 8, fast());
    alerts.offer(&escalation());

    wait_for(&alerts, |s| s.failed == 1).await;
    let pid: i32 = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Orphaned by the shell's death, it is reaped by init: allow a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "background pid {pid} survived the timeout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
