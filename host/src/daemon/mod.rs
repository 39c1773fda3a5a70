//! The daemon: wires config → kit registry → supervisors → escalation, and
//! runs until SIGTERM or Ctrl-C.

mod fleet;
mod lock;
pub mod page;
mod registry;
mod systemd;
mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::alerts::Alerts;
use crate::api::tls::TlsServer;
use crate::api::{self, ApiState, Changes};
use crate::config::{Config, DaemonSettings, TlsListen};
use crate::hypervisor::{Escalator, budget_filter};
use crate::journal::{self, Event, Journal, Kind};
use crate::maintenance::Book;
use crate::metrics::Metrics;
use crate::sandbox::KitEngine;
use crate::supervisor::Shared;

use fleet::Fleet;
pub use registry::{KitSlot, build_runtime, load_kits, start_loading};

/// How long running checks and recoveries get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long queued alerts get to be delivered at shutdown.
const ALERT_GRACE: Duration = Duration::from_secs(5);

/// Runs the daemon on a validated config until a termination signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let state_dir = &config.daemon.state_dir;
    // A file size limit (`LimitFSIZE=`, `ulimit -f`) reached by the journal
    // must fail that write, which refuses a reset, not kill medic with
    // SIGXFSZ. A handler, not SIG_IGN: programs medic starts get the default
    // back at exec.
    let _file_size_limit = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(
        rustix::process::Signal::XFSZ.as_raw(),
    ))
    .context("handling SIGXFSZ")?;
    // Before anything is touched: the socket, the journal, the apps.
    let _lock = lock::StateLock::acquire(state_dir)?;
    let journal = Arc::new(Journal::open(state_dir)?);
    let past = journal::read_filtered(state_dir, &budget_filter(&config.escalation))?;
    keep_pruned(
        &journal,
        journal::Retention {
            keep: config.daemon.journal_keep,
            max_bytes: config.daemon.journal_max,
            protect: config.escalation.reset_window,
        },
    );
    let escalator = Arc::new(
        Escalator::from_settings(&config.escalation, journal.clone(), &past)
            .context("setting up the escalation backend")?,
    );
    let listener =
        api::bind(&config.daemon.socket, config.daemon.socket_group).context("[daemon] socket")?;
    let remote = match &config.daemon.listen {
        Some(settings) => Some(listen_tls(settings).await?),
        None => None,
    };
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

    // Each app is watched as soon as its own kit is ready.
    let kits = start_loading(&engine, &config, &journal);
    tokio::spawn(clean_cache_when_loaded(engine.clone(), kits.clone()));
    let started = std::time::Instant::now();
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
        metrics: metrics.clone(),
        maintenance: maintenance.clone(),
        stopped: Arc::new(crate::stopped::Stopped::open(state_dir)),
        versions: Arc::new(crate::versions::Versions::open(state_dir)),
    };
    let mut fleet = Fleet::new(shared, &config, started);
    fleet.apply(&config, &kits);

    let (reload_requests, mut reloads) = mpsc::channel(4);
    let api_state = Arc::new(ApiState {
        apps: std::sync::RwLock::new(fleet.handles()),
        journal: journal.clone(),
        escalator: escalator.clone(),
        escalation: config.escalation.clone(),
        maintenance,
        state_dir: state_dir.clone(),
        socket_group: config.daemon.socket_group,
        reload: reload_requests,
    });
    let api = tokio::spawn(api::serve(listener, api_state.clone()));
    let remote_api =
        remote.map(|(server, listener)| tokio::spawn(server.serve(listener, api_state.clone())));
    if let Some(metrics) = &metrics {
        metrics.show_page(Arc::new(page::DaemonPage::new(api_state.clone())));
    }
    systemd::spawn_watchdog();
    let watching = |fleet: &Fleet, config: &Config| {
        format!("watching {} of {} apps", fleet.len(), config.apps.len())
    };
    systemd::ready(&watching(&fleet, &config));

    let mut dir_watch = if config.daemon.reload_on_change && !crate::demo::is_demo(&config) {
        watch::DirWatch::new(&[&config.daemon.plugins_dir, &config.daemon.apps_dir])
    } else {
        None
    };
    let mut config = config;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let reply = tokio::select! {
            result = &mut shutdown => { result?; break; }
            _ = hangup.recv() => None,
            () = watch::next_change(&mut dir_watch) => None,
            Some(reply) = reloads.recv() => Some(reply),
        };
        let outcome = reload(&mut config, &mut fleet, &engine, &journal).await;
        if let (Ok(changes), Some(metrics)) = (&outcome, &metrics) {
            for app in &changes.removed {
                metrics.remove_app(app);
            }
        }
        *api_state
            .apps
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fleet.handles();
        systemd::status(&watching(&fleet, &config));
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    }
    systemd::stopping();
    api.abort();
    if let Some(remote_api) = &remote_api {
        remote_api.abort();
    }
    let _ = std::fs::remove_file(&config.daemon.socket);
    tracing::info!("shutting down");
    fleet.shutdown(SHUTDOWN_GRACE).await;
    journal.record(Event::new(None, Kind::DaemonStopped, json!({})));
    alerts.shutdown(ALERT_GRACE).await;
    Ok(())
}

/// Reads the config again and applies what changed, or refuses it whole
/// (journaled with every reason) and keeps the running one: a bad file or a
/// bad kit never takes down what works.
async fn reload(
    config: &mut Config,
    fleet: &mut Fleet,
    engine: &KitEngine,
    journal: &Arc<Journal>,
) -> Result<Changes, Vec<String>> {
    let outcome = async {
        if crate::demo::is_demo(config) {
            return Err(vec![
                "the embedded demo config cannot be reloaded".to_owned(),
            ]);
        }
        let new = crate::config::load(&config.source)
            .map_err(|errors| errors.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        let mut refused = Vec::new();
        for (section, same) in [
            ("[daemon]", same_but_listen(&new.daemon, &config.daemon)),
            ("[escalation]", new.escalation == config.escalation),
            ("[[alert]]", new.alerts == config.alerts),
        ] {
            if !same {
                refused.push(format!(
                    "{}: {section} changed; that needs a restart of medic",
                    new.source.display()
                ));
            }
        }
        if !refused.is_empty() {
            return Err(refused);
        }
        let kits = load_kits(engine, &new, journal).await;
        let unloaded: Vec<String> = new
            .apps
            .iter()
            .filter(|app| kits.get(&app.kit_path).and_then(KitSlot::sha256).is_none())
            .map(|app| {
                format!(
                    "{}: kit {} did not load (see kit_load_failed)",
                    app.name,
                    app.kit_path.display()
                )
            })
            .collect();
        if !unloaded.is_empty() {
            return Err(unloaded);
        }
        let changes = fleet.apply(&new, &kits);
        *config = new;
        clean_cache_when_loaded(engine.clone(), kits).await;
        Ok(changes)
    }
    .await;
    match &outcome {
        Ok(changes) => journal.record(Event::new(None, Kind::ReloadApplied, json!(changes))),
        Err(errors) => journal.record(Event::new(
            None,
            Kind::ReloadRefused,
            json!({"errors": errors}),
        )),
    }
    outcome
}

/// Whether `[daemon]` is the same in `new` as in `old` but for `listen`,
/// which a reload does not apply: the TLS listener keeps its address,
/// certificates and clients until medic restarts, and a change is logged.
fn same_but_listen(new: &DaemonSettings, old: &DaemonSettings) -> bool {
    if new.listen != old.listen {
        tracing::warn!(
            "[daemon] listen or its TLS keys changed: the admin API over TLS keeps listening as it started until medic restarts"
        );
    }
    let unchanged = DaemonSettings {
        listen: old.listen.clone(),
        ..new.clone()
    };
    unchanged == *old
}

/// Reads the TLS listener's certificates and key (errors name the file)
/// and binds its address (`[daemon] listen`): the admin API for callers on
/// other hosts.
async fn listen_tls(settings: &TlsListen) -> anyhow::Result<(TlsServer, TcpListener)> {
    let server = TlsServer::load(settings).context("[daemon] listen")?;
    let listener = TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("[daemon] listen: cannot listen on {}", settings.addr))?;
    tracing::info!(
        "admin API on https://{} (mutual TLS; clients: {})",
        settings.addr,
        settings.clients.join(", ")
    );
    Ok((server, listener))
}

/// Once every kit in `kits` has loaded or failed, removes the compiled
/// artifacts of kits none of them is any more (a rebuilt 18 MB kit leaves
/// 35 MB behind otherwise).
async fn clean_cache_when_loaded(engine: KitEngine, kits: HashMap<PathBuf, KitSlot>) {
    let loaded = futures_util::future::join_all(kits.into_values().map(KitSlot::loaded)).await;
    let kept: Vec<String> = loaded
        .iter()
        .filter_map(|kit| kit.as_ref().ok().map(|kit| kit.sha256().to_owned()))
        .collect();
    match tokio::task::spawn_blocking(move || engine.remove_cached_except(&kept)).await {
        Ok(removed) if !removed.is_empty() => {
            tracing::info!("kit cache: removed {} stale artifact(s)", removed.len());
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("kit cache cleaning panicked: {e}"),
    }
}

/// How often retention runs (and once at start).
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Applies `retention` to the journal now and every [`PRUNE_EVERY`], on a
/// blocking thread: deleting a year of events takes a while.
fn keep_pruned(journal: &Arc<Journal>, retention: journal::Retention) {
    let journal = journal.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PRUNE_EVERY);
        loop {
            every.tick().await;
            let pruner = journal.clone();
            match tokio::task::spawn_blocking(move || pruner.prune(&retention)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("journal retention: {e}"),
                Err(e) => tracing::error!("journal retention panicked: {e}"),
            }
        }
    });
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
    journal: &Arc<Journal>,
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
    let written = journal.clone();
    metrics.on_scrape(move |metrics| {
        for sink in sinks.stats() {
            metrics.set_alert_stats(&sink.name, sink.delivered, sink.failed, sink.dropped);
        }
        metrics.set_journal_write_failures(written.write_failures());
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
