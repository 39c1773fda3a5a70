//! The metrics endpoint scraped over real HTTP on 127.0.0.1.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use medic::alerts::{Alerts, SinkSettings, SinkTarget};
use medic::journal::{Event, Kind};
use medic::metrics::{CheckResult, Metrics};
use medic::status::State;
use serde_json::json;

/// One sample line: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition's sample lines (comments skipped).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').unwrap())),
                None => (series, BTreeMap::new()),
            };
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().unwrap(),
            }
        })
        .collect()
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = &after[end..];
    }
    labels
}

/// The value of the one sample named `name` with exactly these labels.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name && s.labels == wanted)
        .map(|s| s.value)
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {labels:?} appears {} times",
        found.len()
    );
    found.first().copied()
}

fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    value(samples, name, labels).unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

/// Starts `serve` on a free loopback port; returns the base URL.
async fn serve(metrics: &Arc<Metrics>) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(Arc::clone(metrics).serve(listener));
    (base, server)
}

async fn scrape(base: &str) -> (String, Vec<Sample>) {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let samples = parse(&text);
    (text, samples)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_shows_checks_states_and_journal_counts() {
    let metrics = Arc::new(Metrics::new());
    let (base, server) = serve(&metrics).await;

    metrics.check_finished("web", CheckResult::Healthy, Duration::from_millis(2));
    metrics.check_finished("web", CheckResult::Healthy, Duration::from_millis(40));
    metrics.check_finished("web", CheckResult::Failed, Duration::from_secs(3));
    metrics.check_finished("db", CheckResult::KitFault, Duration::from_micros(50));

    metrics.set_state("web", State::Failing);
    metrics.set_state("web", State::Recovering);
    metrics.set_state("db", State::Healthy);

    for event in [
        Event::new(
            Some("web"),
            Kind::RecoveryAttempt,
            json!({"step": "restart", "attempt": 1}),
        ),
        Event::new(
            Some("web"),
            Kind::RecoveryAttempt,
            json!({"step": "restart", "attempt": 2}),
        ),
        Event::new(Some("db"), Kind::KitFault, json!({"fault": "trap"})),
        Event::new(None, Kind::ResetDecided, json!({"backend": "qmp"})),
        Event::new(
            None,
            Kind::VmReset,
            json!({"outcome": "done", "proof": "x"}),
        ),
        Event::new(
            None,
            Kind::VmReset,
            json!({"outcome": "failed", "error": "refused"}),
        ),
        Event::new(None, Kind::ResetRefused, json!({"budget": 2})),
        Event::new(None, Kind::KitLoadFailed, json!({"kit": "broken.wasm"})),
        Event::new(Some("web"), Kind::Alert, json!({"message": "web is down"})),
        Event::new(None, Kind::Alert, json!({"message": "budget spent"})),
        Event::new(None, Kind::Alert, json!({"message": "budget spent again"})),
        Event::new(Some("web"), Kind::AppRecovered, json!({})),
    ] {
        metrics.record(&event);
    }
    metrics.set_resets_left(1);
    metrics.set_alert_stats("pager", 5, 1, 2);

    let (_, s) = scrape(&base).await;
    let web = [("app", "web")];

    // Histogram: 3 checks for web, one of them in the 5 ms bucket and below.
    assert_eq!(get(&s, "medic_check_duration_seconds_count", &web), 3.0);
    let sum = get(&s, "medic_check_duration_seconds_sum", &web);
    assert!((sum - 3.042).abs() < 1e-9, "{sum}");
    let bucket = |le: &str| {
        get(
            &s,
            "medic_check_duration_seconds_bucket",
            &[("app", "web"), ("le", le)],
        )
    };
    assert_eq!(bucket("0.0001"), 0.0);
    assert_eq!(bucket("0.0025"), 1.0);
    assert_eq!(bucket("0.05"), 2.0);
    assert_eq!(bucket("5.0"), 3.0);
    assert_eq!(bucket("+Inf"), 3.0);
    let db_bucket = get(
        &s,
        "medic_check_duration_seconds_bucket",
        &[("app", "db"), ("le", "0.0001")],
    );
    assert_eq!(db_bucket, 1.0);

    // Outcomes, all four present per app.
    let checks = |app: &str, outcome: &str| {
        get(
            &s,
            "medic_checks_total",
            &[("app", app), ("outcome", outcome)],
        )
    };
    assert_eq!(checks("web", "healthy"), 2.0);
    assert_eq!(checks("web", "failed"), 1.0);
    assert_eq!(checks("web", "degraded"), 0.0);
    assert_eq!(checks("web", "kit_fault"), 0.0);
    assert_eq!(checks("db", "kit_fault"), 1.0);

    // One-hot state after two changes.
    for state in State::ALL {
        let expected = if state == State::Recovering { 1.0 } else { 0.0 };
        assert_eq!(
            get(
                &s,
                "medic_app_state",
                &[("app", "web"), ("state", state.name())]
            ),
            expected,
            "{state}"
        );
    }
    assert_eq!(
        get(
            &s,
            "medic_app_state",
            &[("app", "db"), ("state", "healthy")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "medic_app_state",
            &[("app", "web"), ("state", "sleepy")]
        ),
        None
    );

    // Counters from journal events.
    assert_eq!(get(&s, "medic_restarts_total", &web), 2.0);
    assert_eq!(get(&s, "medic_restarts_total", &[("app", "db")]), 0.0);
    assert_eq!(get(&s, "medic_kit_faults_total", &[("app", "db")]), 1.0);
    assert_eq!(get(&s, "medic_kit_faults_total", &web), 0.0);
    assert_eq!(get(&s, "medic_resets_total", &[]), 1.0);
    assert_eq!(get(&s, "medic_reset_refusals_total", &[]), 1.0);
    assert_eq!(get(&s, "medic_reset_budget_left", &[]), 1.0);
    assert_eq!(get(&s, "medic_plugin_load_errors_total", &[]), 1.0);
    assert_eq!(get(&s, "medic_alerts_total", &web), 1.0);
    assert_eq!(get(&s, "medic_alerts_total", &[("app", "")]), 2.0);

    // Alert sink counters as set.
    let delivery = |result: &str| {
        get(
            &s,
            "medic_alert_deliveries_total",
            &[("sink", "pager"), ("result", result)],
        )
    };
    assert_eq!(
        (
            delivery("delivered"),
            delivery("failed"),
            delivery("dropped")
        ),
        (5.0, 1.0, 2.0)
    );

    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_wide_series_exist_before_anything_happens() {
    let metrics = Arc::new(Metrics::new());
    let (base, server) = serve(&metrics).await;
    let (_, s) = scrape(&base).await;
    for name in [
        "medic_resets_total",
        "medic_reset_refusals_total",
        "medic_reset_budget_left",
        "medic_plugin_load_errors_total",
    ] {
        assert_eq!(get(&s, name, &[]), 0.0, "{name}");
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_app_loses_all_its_series() {
    let metrics = Arc::new(Metrics::new());
    let (base, server) = serve(&metrics).await;
    for app in ["web", "db"] {
        metrics.check_finished(app, CheckResult::Degraded, Duration::from_millis(5));
        metrics.set_state(app, State::Degraded);
        metrics.record(&Event::new(Some(app), Kind::RecoveryAttempt, json!({})));
        metrics.record(&Event::new(Some(app), Kind::KitFault, json!({})));
        metrics.record(&Event::new(Some(app), Kind::Alert, json!({})));
    }
    let (_, before) = scrape(&base).await;
    assert!(
        before
            .iter()
            .any(|s| s.labels.get("app").map(String::as_str) == Some("web"))
    );

    metrics.remove_app("web");
    let (text, after) = scrape(&base).await;
    assert!(!text.contains("app=\"web\""), "{text}");
    let db_series = |samples: &[Sample]| {
        samples
            .iter()
            .filter(|s| s.labels.get("app").map(String::as_str) == Some("db"))
            .count()
    };
    assert_eq!(db_series(&after), db_series(&before));
    assert!(db_series(&after) > 0);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_and_methods_are_not_found() {
    let metrics = Arc::new(Metrics::new());
    let (base, server) = serve(&metrics).await;
    let client = reqwest::Client::new();
    for response in [
        client.get(format!("{base}/")).send().await.unwrap(),
        client.get(format!("{base}/metricsx")).send().await.unwrap(),
        client.post(format!("{base}/metrics")).send().await.unwrap(),
    ] {
        assert_eq!(response.status(), 404);
    }
    // The query string does not matter to the path.
    let response = client
        .get(format!("{base}/metrics?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_sink_counters_are_copied_in_at_each_scrape() {
    let alerts = Alerts::start(
        vec![SinkSettings {
            name: "script".to_owned(),
            kinds: Vec::new(),
            target: SinkTarget::Exec {
                argv: vec![
                    "/bin/sh".to_owned(),
                    "-c".to_owned(),
                    "cat > /dev/null".to_owned(),
                ],
            },
            timeout: Duration::from_secs(5),
            retries: 0,
        }],
        8,
    );
    let metrics = Arc::new(Metrics::new());
    {
        let alerts = alerts.clone();
        metrics.on_scrape(move |m| {
            for sink in alerts.stats() {
                m.set_alert_stats(&sink.name, sink.delivered, sink.failed, sink.dropped);
            }
        });
    }
    let (base, server) = serve(&metrics).await;
    let event = Event::new(Some("web"), Kind::Alert, json!({}));
    alerts.offer(&event);
    alerts.offer(&event);

    let delivered = |s: &[Sample]| {
        value(
            s,
            "medic_alert_deliveries_total",
            &[("sink", "script"), ("result", "delivered")],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, s) = scrape(&base).await;
        if delivered(&s) == Some(2.0) {
            assert_eq!(
                get(
                    &s,
                    "medic_alert_deliveries_total",
                    &[("sink", "script"), ("result", "failed")]
                ),
                0.0
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never delivered: {:?}",
            delivered(&s)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.abort();
    alerts.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_serve_stops_the_listener() {
    let metrics = Arc::new(Metrics::new());
    let (base, server) = serve(&metrics).await;
    scrape(&base).await;
    server.abort();
    let _ = server.await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    assert!(client.get(format!("{base}/metrics")).send().await.is_err());
}
