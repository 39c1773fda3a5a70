//! What alert sinks log about failures. A test binary of its own: tracing
//! caches per call site whether anyone listens, so a subscriber set in one
//! test races with other tests hitting the same call sites first.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use medic::alerts::{Alerts, Backoff, SinkSettings, SinkTarget};
use medic::journal::{Event, Kind};
use serde_json::json;

/// Collects what the fmt subscriber writes.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_logged_with_the_sink_name_and_without_secrets() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let app = Router::new().route("/hook", post(|| async { StatusCode::SERVICE_UNAVAILABLE }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let sink = SinkSettings {
        name: "pager".to_owned(),
        kinds: Vec::new(),
        target: SinkTarget::Webhook {
            url: format!("http://admin:hunter2@{addr}/hook?token=s3cret"),
        },
        timeout: Duration::from_secs(5),
        retries: 1,
    };
    let backoff = Backoff {
        first: Duration::from_millis(10),
        max: Duration::from_millis(10),
    };
    let alerts = Alerts::start_with_backoff(vec![sink], 8, backoff);
    alerts.offer(&Event::new(Some("web"), Kind::Escalation, json!({})));
    let deadline = Instant::now() + Duration::from_secs(10);
    while alerts.stats()[0].failed == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("sink=pager"), "{text}");
    assert!(text.contains("retrying"), "{text}");
    assert!(text.contains("alert not delivered"), "{text}");
    assert!(text.contains("kind=escalation"), "{text}");
    assert!(text.contains("503"), "{text}");
    assert!(text.contains(&format!("target=http://{addr}/…")), "{text}");
    for secret in ["hunter2", "admin", "token", "s3cret", "/hook"] {
        assert!(!text.contains(secret), "{secret} logged: {text}");
    }
}
