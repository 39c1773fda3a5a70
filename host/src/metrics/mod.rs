//! Prometheus metrics: per-app check results and states, and daemon-wide
//! recovery, reset and alert numbers, served as text on a TCP address.
//!
//! The metric names and labels are a public contract (dashboards and alert
//! rules match on them): add series, never rename one.
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `medic_check_duration_seconds` | histogram | `app` |
//! | `medic_checks_total` | counter | `app`, `outcome` (healthy, degraded, failed, unknown, kit_fault) |
//! | `medic_restarts_total` | counter | `app` |
//! | `medic_kit_faults_total` | counter | `app` |
//! | `medic_app_state` | gauge, one-hot | `app`, `state` |
//! | `medic_resets_total` | counter | |
//! | `medic_reset_refusals_total` | counter | |
//! | `medic_reset_budget_left` | gauge | |
//! | `medic_plugin_load_errors_total` | counter | |
//! | `medic_alerts_total` | counter | `app` (empty for daemon-wide alerts) |
//! | `medic_alert_deliveries_total` | counter | `sink`, `result` (delivered, failed, dropped) |
//! | `medic_journal_write_failures_total` | counter | |
//!
//! The same listener serves a read-only HTML status page at `/` once one
//! is given ([`Metrics::show_page`]; the daemon gives `web::DaemonPage`).

mod server;

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::journal::{Event, Kind};
pub use crate::status::CheckResult;
use crate::status::State;
use crate::web::StatusPage;

/// Upper bounds of the check duration buckets, in seconds: from 100 µs
/// (a kit answering from memory) to 10 s (a check near its timeout).
const CHECK_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    app: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    app: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    sink: String,
    result: &'static str,
}

type HistogramFamily = Family<AppLabels, Histogram, fn() -> Histogram>;

fn check_histogram() -> Histogram {
    Histogram::new(CHECK_BUCKETS)
}

/// A callback run before each scrape, e.g. to copy in alert sink counters.
type ScrapeHook = Box<dyn Fn(&Metrics) + Send + Sync>;

/// All of medic's metrics and their registry. `Send + Sync`; share it
/// behind an `Arc` between the supervisors, the journal and the server.
pub struct Metrics {
    registry: Registry,
    check_duration: HistogramFamily,
    checks: Family<CheckLabels, Counter>,
    restarts: Family<AppLabels, Counter>,
    kit_faults: Family<AppLabels, Counter>,
    app_state: Family<StateLabels, Gauge>,
    resets: Counter,
    reset_refusals: Counter,
    reset_budget_left: Gauge,
    plugin_load_errors: Counter,
    alerts: Family<AppLabels, Counter>,
    alert_deliveries: Family<DeliveryLabels, Counter>,
    journal_write_failures: Counter,
    scrape_hook: RwLock<Option<ScrapeHook>>,
    page: RwLock<Option<Arc<dyn StatusPage>>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric, so daemon-wide counters read 0 before
    /// anything happened rather than being absent.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let check_duration = HistogramFamily::new_with_constructor(check_histogram);
        let checks = Family::default();
        let restarts = Family::default();
        let kit_faults = Family::default();
        let app_state = Family::default();
        let resets = Counter::default();
        let reset_refusals = Counter::default();
        let reset_budget_left = Gauge::default();
        let plugin_load_errors = Counter::default();
        let alerts = Family::default();
        let alert_deliveries = Family::default();
        let journal_write_failures = Counter::default();
        // Counters are registered without `_total`: the encoder adds it.
        registry.register(
            "medic_check_duration_seconds",
            "How long each app's checks took",
            check_duration.clone(),
        );
        registry.register(
            "medic_checks",
            "Checks finished, by app and outcome",
            checks.clone(),
        );
        registry.register(
            "medic_restarts",
            "Local recovery attempts (kit recover or restart), by app",
            restarts.clone(),
        );
        registry.register(
            "medic_kit_faults",
            "Kits that trapped, ran out of time or memory, or were denied a capability, by app",
            kit_faults.clone(),
        );
        registry.register(
            "medic_app_state",
            "Each app's current state: 1 for the state it is in, 0 for the others",
            app_state.clone(),
        );
        registry.register("medic_resets", "VM resets done", resets.clone());
        registry.register(
            "medic_reset_refusals",
            "VM resets not done because the reset budget was spent",
            reset_refusals.clone(),
        );
        registry.register(
            "medic_reset_budget_left",
            "VM resets the budget still allows",
            reset_budget_left.clone(),
        );
        registry.register(
            "medic_plugin_load_errors",
            "Kit files that could not be loaded",
            plugin_load_errors.clone(),
        );
        registry.register(
            "medic_alerts",
            "Alerts raised, by app (empty for daemon-wide alerts)",
            alerts.clone(),
        );
        registry.register(
            "medic_alert_deliveries",
            "Events handed to alert sinks, by sink and result",
            alert_deliveries.clone(),
        );
        registry.register(
            "medic_journal_write_failures",
            "Events the journal could not write (a full disk): no reset is made while it fails",
            journal_write_failures.clone(),
        );
        Self {
            registry,
            check_duration,
            checks,
            restarts,
            kit_faults,
            app_state,
            resets,
            reset_refusals,
            reset_budget_left,
            plugin_load_errors,
            alerts,
            alert_deliveries,
            journal_write_failures,
            scrape_hook: RwLock::new(None),
            page: RwLock::new(None),
        }
    }

    /// A check finished: observes its duration and counts its outcome. The
    /// app's other per-app counters are created at 0 on its first check,
    /// so rules on `increase()` see the first restart or fault.
    pub fn check_finished(&self, app: &str, outcome: CheckResult, duration: Duration) {
        let labels = app_labels(app);
        self.check_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
        for each in CheckResult::ALL {
            let counter = self.checks.get_or_create(&CheckLabels {
                app: app.to_owned(),
                outcome: each.as_str(),
            });
            if each == outcome {
                counter.inc();
            }
        }
        drop(self.restarts.get_or_create(&labels));
        drop(self.kit_faults.get_or_create(&labels));
    }

    /// Counts what a journal event says: recovery attempts, kit faults,
    /// resets done, reset refusals, kit load errors and alerts. Other kinds
    /// are ignored, so every event can be passed in.
    pub fn record(&self, event: &Event) {
        let app = || app_labels(event.app.as_deref().unwrap_or(""));
        match event.kind {
            Kind::RecoveryAttempt => {
                self.restarts.get_or_create(&app()).inc();
            }
            Kind::KitFault => {
                self.kit_faults.get_or_create(&app()).inc();
            }
            Kind::VmReset
                if event
                    .detail
                    .get("outcome")
                    .and_then(serde_json::Value::as_str)
                    == Some("done") =>
            {
                self.resets.inc();
            }
            Kind::ResetRefused => {
                self.reset_refusals.inc();
            }
            Kind::ResetDecided => {
                if let Some(left) = event
                    .detail
                    .get("resets_left")
                    .and_then(serde_json::Value::as_u64)
                {
                    self.set_resets_left(u32::try_from(left).unwrap_or(u32::MAX));
                }
            }
            Kind::KitLoadFailed => {
                self.plugin_load_errors.inc();
            }
            Kind::Alert => {
                self.alerts.get_or_create(&app()).inc();
            }
            _ => {}
        }
    }

    /// Sets the app's state: 1 on `state`, 0 on every other [`State`].
    pub fn set_state(&self, app: &str, state: State) {
        for each in State::ALL {
            self.app_state
                .get_or_create(&StateLabels {
                    app: app.to_owned(),
                    state: each.name(),
                })
                .set(i64::from(each == state));
        }
    }

    /// Forgets every series of an app removed by a config reload, so it
    /// does not linger in dashboards with its last values.
    pub fn remove_app(&self, app: &str) {
        let labels = app_labels(app);
        self.check_duration.remove(&labels);
        self.restarts.remove(&labels);
        self.kit_faults.remove(&labels);
        self.alerts.remove(&labels);
        for outcome in CheckResult::ALL {
            self.checks.remove(&CheckLabels {
                app: app.to_owned(),
                outcome: outcome.as_str(),
            });
        }
        for state in State::ALL {
            self.app_state.remove(&StateLabels {
                app: app.to_owned(),
                state: state.name(),
            });
        }
    }

    /// Sets how many VM resets the budget still allows.
    pub fn set_resets_left(&self, n: u32) {
        self.reset_budget_left.set(i64::from(n));
    }

    /// Copies one alert sink's counters in (they are counted by the sink
    /// itself, see `Alerts::stats`). Call it from [`Metrics::on_scrape`] or
    /// whenever convenient.
    pub fn set_alert_stats(&self, sink: &str, delivered: u64, failed: u64, dropped: u64) {
        for (result, value) in [
            ("delivered", delivered),
            ("failed", failed),
            ("dropped", dropped),
        ] {
            self.alert_deliveries
                .get_or_create(&DeliveryLabels {
                    sink: sink.to_owned(),
                    result,
                })
                .inner()
                .store(value, Ordering::Relaxed);
        }
    }

    /// Copies the journal's count of failed writes in (counted by the
    /// journal itself, see `Journal::write_failures`).
    pub fn set_journal_write_failures(&self, failures: u64) {
        self.journal_write_failures
            .inner()
            .store(failures, Ordering::Relaxed);
    }

    /// Runs `hook` before each [`Metrics::encode`], replacing any earlier
    /// hook, so numbers kept elsewhere (alert sink counters) are fresh at
    /// every scrape without a timer. The hook must not call `on_scrape`.
    pub fn on_scrape(&self, hook: impl Fn(&Metrics) + Send + Sync + 'static) {
        *self
            .scrape_hook
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Box::new(hook));
    }

    /// The text exposition, in the OpenMetrics text format as
    /// prometheus-client encodes it (ending in `# EOF`).
    pub fn encode(&self) -> String {
        if let Some(hook) = &*self
            .scrape_hook
            .read()
            .unwrap_or_else(PoisonError::into_inner)
        {
            hook(self);
        }
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        text
    }

    /// Serves `page` at `GET /` and `GET /index.html` from now on,
    /// replacing any earlier page. Until a page is given those paths are
    /// 404, like any path but `/metrics`: the server can start before what
    /// the page reads exists.
    pub fn show_page(&self, page: Arc<dyn StatusPage>) {
        *self.page.write().unwrap_or_else(PoisonError::into_inner) = Some(page);
    }

    /// The page given to [`Metrics::show_page`], if any.
    fn page(&self) -> Option<Arc<dyn StatusPage>> {
        self.page
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Serves `GET /metrics` (and the page given to [`Metrics::show_page`])
    /// on `listener` until the returned future is dropped (which also ends
    /// open connections); any other request gets 404. Accept errors (e.g.
    /// out of file descriptors) are logged and retried after a pause, so
    /// the future only ends by being dropped.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        server::serve(self, listener).await
    }
}

fn app_labels(app: &str) -> AppLabels {
    AppLabels {
        app: app.to_owned(),
    }
}
