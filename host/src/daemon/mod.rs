//! The daemon: wires config → kit registry → supervisors → escalation, and
//! runs until SIGTERM or Ctrl-C.

mod registry;
mod systemd;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use tokio::sync::watch;

use crate::alerts::Alerts;
use crate::api::{self, ApiState};
use crate::config::{self, Config};
use crate::hypervisor::Escalator;
use crate::journal::{self, Event, Journal, Kind};
use crate::maintenance::Book;
use crate::metrics::Metrics;
use crate::sandbox::KitEngine;
use crate::supervisor::{AppHandle, Shared, channels, supervise};

pub use registry::{build_runtime, load_kits};

/// How long running checks and recoveries get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long queued alerts get to be delivered at shutdown.
const ALERT_GRACE: Duration = Duration::from_secs(5);

/// Runs the daemon on a validated config until a termination signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let state_dir = &config.daemon.state_dir;
    let journal = Arc::new(Journal::open(state_dir)?);
    let past = journal::read_all(state_dir)?;
    let escalator = Arc::new(
        Escalator::from_settings(&config.escalation, journal.clone(), &past)
            .context("setting up the escalation backend")?,
    );
    let listener =
        api::bind(&config.daemon.socket, config.daemon.socket_group).context("[daemon] socket")?;
    let engine =
        KitEngine::new(Some(state_dir.join("cache"))).context("starting the Wasm engine")?;
    journal.record(Event::new(
        None,
        Kind::DaemonStarted,
        json!({
            "config": config.source.display().to_string(),
            "apps": config.apps.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            "backend": config.escalation.backend.name(),
            "resets_left": escalator.remaining().await,
        }),
    ));

    let probe = escalator.clone();
    tokio::spawn(async move { probe.probe().await });

    let kits = load_kits(&engine, &config, &journal).await;
    let started = std::time::Instant::now();
    let (stop, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let alerts = Alerts::start(
        config.alerts.clone(),
        usize::try_from(config.daemon.alert_queue).unwrap_or(usize::MAX),
    );
    let offered = alerts.clone();
    journal.observe(Box::new(move |event| offered.offer(event)));
    let metrics = match &config.daemon.metrics {
        Some(address) => Some(serve_metrics(address, &journal, &escalator, &alerts).await?),
        None => None,
    };
    let maintenance = Arc::new(Book::open(state_dir));
    tokio::spawn(expire_maintenance(maintenance.clone(), journal.clone()));
    let shared = Shared {
        journal: journal.clone(),
        escalator: escalator.clone(),
        metrics,
        maintenance: maintenance.clone(),
    };
    let mut handles = std::collections::BTreeMap::new();
    // In dependency order, so what an app needs is watched before it is.
    for spec in config::start_order(&config.apps) {
        let Some(kit) = kits.get(&spec.kit_path) else {
            tracing::error!(app = %spec.name, kit = %spec.kit_path.display(), "not watched: its kit did not load");
            continue;
        };
        let runtime = Arc::new(build_runtime(
            spec,
            kit.clone(),
            state_dir,
            started,
            config.escalation.min_uptime,
        ));
        tracing::info!(
            app = %spec.name, kit = %spec.kit, interval = %humantime::format_duration(spec.interval),
            then = spec.recovery.then.name(), "watching"
        );
        let (handle, channels) = channels(&runtime);
        let dependencies = spec
            .depends_on
            .iter()
            .filter_map(|name| handles.get(name).map(|h: &AppHandle| h.status.clone()))
            .collect();
        handles.insert(spec.name.clone(), handle);
        tasks.spawn(supervise(
            runtime,
            shared.clone(),
            channels,
            dependencies,
            stopped.clone(),
        ));
    }

    let api_state = Arc::new(ApiState {
        apps: std::sync::RwLock::new(handles),
        journal: journal.clone(),
        escalator: escalator.clone(),
        escalation: config.escalation.clone(),
        maintenance,
        state_dir: state_dir.clone(),
        socket_group: config.daemon.socket_group,
    });
    let api = tokio::spawn(api::serve(listener, api_state));
    systemd::spawn_watchdog();
    systemd::ready(&format!(
        "watching {} of {} apps",
        tasks.len(),
        config.apps.len()
    ));

    shutdown_signal().await?;
    systemd::stopping();
    api.abort();
    let _ = std::fs::remove_file(&config.daemon.socket);
    tracing::info!("shutting down");
    let _ = stop.send(true);
    if tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("supervisors still busy after {SHUTDOWN_GRACE:?}; cancelling them");
        tasks.shutdown().await;
    }
    journal.record(Event::new(None, Kind::DaemonStopped, json!({})));
    alerts.shutdown(ALERT_GRACE).await;
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// Starts the Prometheus endpoint at `address`, fed by every journal event.
async fn serve_metrics(
    address: &str,
    journal: &Journal,
    escalator: &Arc<Escalator>,
    alerts: &Alerts,
) -> anyhow::Result<Arc<Metrics>> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("[daemon] metrics: cannot listen on {address}"))?;
    let metrics = Arc::new(Metrics::new());
    metrics.set_resets_left(escalator.remaining().await);
    let observer = metrics.clone();
    journal.observe(Box::new(move |event| observer.record(event)));
    let sinks = alerts.clone();
    metrics.on_scrape(move |metrics| {
        for sink in sinks.stats() {
            metrics.set_alert_stats(&sink.name, sink.delivered, sink.failed, sink.dropped);
        }
    });
    tokio::spawn(metrics.clone().serve(listener));
    tracing::info!("metrics on http://{address}/metrics");
    Ok(metrics)
}

/// Ends maintenance windows at their expiry and journals it; checks once a
/// second (windows last minutes to hours, so a second is precise enough).
async fn expire_maintenance(book: Arc<Book>, journal: Arc<Journal>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        match book.expire(std::time::SystemTime::now()) {
            Ok(ended) => {
                for (app, window) in ended {
                    journal.record(Event::new(
                        app.as_deref(),
                        Kind::MaintenanceEnded,
                        json!({"why": "expired", "reason": window.reason, "by": window.by}),
                    ));
                }
            }
            Err(e) => tracing::error!("maintenance: {e}"),
        }
    }
}
