//! `medic update APP --version V`: inside a maintenance window, `stop`,
//! `update`, `start`, then the app's own check must pass `healthy_checks`
//! times in a row; on failure `rollback` puts the previous version back and
//! the app is checked again. Runs in the app's supervisor task, so no other
//! check or recovery of the app interleaves with it.

use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use super::commands::{last_line, run_command};
use super::executor::{AppRuntime, Shared};
use super::pidfd::ProcessWatch;
use super::state::CheckOutcome;
use crate::journal::{Event, Kind};
use crate::maintenance::Window;

/// What an admin asked `medic update` for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateOrder {
    /// The version to install.
    pub version: String,
    /// How long the app may take to pass its checks after `start`.
    pub health_timeout: Duration,
    /// Passed checks in a row that prove it healthy; the app file's
    /// `healthy_checks` when `None`.
    pub healthy_checks: Option<u32>,
}

/// Which step failed and how.
struct Failed {
    step: &'static str,
    error: String,
    last_line: Option<String>,
}

/// Updates `app` as `order` says; the answer for the admin.
pub(super) async fn run(
    app: &AppRuntime,
    shared: &Shared,
    by: &str,
    order: &UpdateOrder,
    watched: Option<ProcessWatch>,
) -> Result<String, String> {
    let name = &app.spec.name;
    let update = app
        .spec
        .updates
        .update
        .as_ref()
        .ok_or_else(|| format!("{name} has no `update` command in its app file"))?;
    let previous = shared.versions.of(name).map(|installed| installed.version);
    let started = Instant::now();
    open_window(app, shared, by, order);
    shared.journal.record(Event::new(
        Some(name),
        Kind::AppUpdateStarted,
        json!({"by": by, "version": order.version, "from": previous}),
    ));
    let result = match install(app, shared, update, &order.version, watched).await {
        Ok(()) => healthy(app, order).await,
        Err(failed) => Err(failed),
    };
    let answer = match result {
        Ok(()) => {
            let recorded = shared
                .versions
                .installed(name, &order.version, previous.clone());
            if let Err(e) = &recorded {
                tracing::error!(app = %name, "{e}");
            }
            let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            shared.journal.record(Event::new(
                Some(name),
                Kind::AppUpdated,
                json!({"version": order.version, "from": previous, "took_ms": took_ms}),
            ));
            Ok(format!(
                "{name} updated to {} ({} checks passed)",
                order.version,
                needed_checks(app, order)
            ))
        }
        Err(failed) => {
            shared.journal.record(Event::new(
                Some(name),
                Kind::AppUpdateFailed,
                json!({"version": order.version, "step": failed.step, "error": failed.error,
                       "last_line": failed.last_line}),
            ));
            let rolled_back = roll_back(app, shared, order, previous.as_deref()).await;
            Err(format!(
                "update of {name} to {} failed at {}: {}; {rolled_back}",
                order.version, failed.step, failed.error
            ))
        }
    };
    close_window(shared, name);
    answer
}

/// `stop`, `update` (with `{version}`), `start`.
async fn install(
    app: &AppRuntime,
    shared: &Shared,
    argv: &[String],
    version: &str,
    watched: Option<ProcessWatch>,
) -> Result<(), Failed> {
    app.stop(watched, &shared.journal).await;
    let log = app.log_dir.join(format!("{}.update.log", app.spec.name));
    run_command(&with_version(argv, version), app.spec.command_timeout, &log)
        .await
        .map_err(|error| Failed {
            step: "update",
            error,
            last_line: last_line(&log),
        })?;
    app.start().await.map_err(|error| Failed {
        step: "start",
        last_line: last_line(&app.log_dir.join(format!("{}.start.log", app.spec.name))),
        error,
    })
}

/// Checks until `healthy_checks` pass in a row, or `health_timeout` ends.
async fn healthy(app: &AppRuntime, order: &UpdateOrder) -> Result<(), Failed> {
    let needed = needed_checks(app, order);
    let deadline = Instant::now() + order.health_timeout;
    let mut passed = 0;
    let mut last = String::from("no check finished");
    loop {
        match app.check().await.outcome {
            CheckOutcome::Healthy => passed += 1,
            other => {
                passed = 0;
                last = format!("{other:?}");
            }
        }
        if passed >= needed {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Failed {
                step: "health",
                error: format!(
                    "{passed} of {needed} checks in a row passed within {}; last: {last}",
                    humantime::format_duration(order.health_timeout)
                ),
                last_line: None,
            });
        }
        tokio::time::sleep(app.policy.interval.min(Duration::from_secs(1))).await;
    }
}

/// The checks in a row an update needs: asked for, else the app file's.
fn needed_checks(app: &AppRuntime, order: &UpdateOrder) -> u32 {
    order
        .healthy_checks
        .unwrap_or(app.spec.updates.healthy_checks)
}

/// Runs `rollback` to `previous` and checks again; what happened, in words
/// (journaled as `app_rolled_back`).
async fn roll_back(
    app: &AppRuntime,
    shared: &Shared,
    order: &UpdateOrder,
    previous: Option<&str>,
) -> String {
    let name = &app.spec.name;
    let Some(argv) = &app.spec.updates.rollback else {
        return "the app has no `rollback`: it is left as the failed step left it".to_owned();
    };
    let needs_version = argv.iter().any(|arg| arg.contains("{version}"));
    let Some(version) = previous.or((!needs_version).then_some("")) else {
        return "no rollback: medic does not know the version that ran before".to_owned();
    };
    let result = match install(app, shared, argv, version, app_process(app)).await {
        Ok(()) => healthy(app, order).await,
        Err(failed) => Err(failed),
    };
    if result.is_ok() && !version.is_empty() {
        let before = shared.versions.of(name).and_then(|i| i.previous);
        if let Err(e) = shared.versions.installed(name, version, before) {
            tracing::error!(app = %name, "{e}");
        }
    }
    let error = result
        .as_ref()
        .err()
        .map(|failed| format!("{} at {}", failed.error, failed.step));
    shared.journal.record(Event::new(
        Some(name),
        Kind::AppRolledBack,
        json!({"version": version, "ok": result.is_ok(), "error": error}),
    ));
    match error {
        None => format!("rolled back to {version}, which is healthy"),
        Some(error) => format!("the rollback to {version} failed too: {error}"),
    }
}

/// The app's process as its pidfile names it now, to stop before rollback.
fn app_process(app: &AppRuntime) -> Option<ProcessWatch> {
    app.spec.pidfile.as_deref().and_then(ProcessWatch::open)
}

/// `argv` with `{version}` replaced in every argument.
fn with_version(argv: &[String], version: &str) -> Vec<String> {
    argv.iter()
        .map(|arg| arg.replace("{version}", version))
        .collect()
}

/// The update's maintenance window: nothing recovers the app while it is
/// stopped on purpose, and `status` says why. It ends with the update;
/// its own end is a bound in case medic dies in between.
fn open_window(app: &AppRuntime, shared: &Shared, by: &str, order: &UpdateOrder) {
    let name = &app.spec.name;
    let bound = order.health_timeout * 2 + app.spec.command_timeout * 6;
    let window = Window {
        until: SystemTime::now() + bound,
        reason: format!("update to {}", order.version),
        by: by.to_owned(),
    };
    match shared.maintenance.start(Some(name), window.clone()) {
        Ok(()) => shared.journal.record(Event::new(
            Some(name),
            Kind::MaintenanceStarted,
            serde_json::to_value(&window).unwrap_or_default(),
        )),
        Err(e) => tracing::error!(app = %name, "{e}"),
    }
}

fn close_window(shared: &Shared, name: &str) {
    match shared.maintenance.end(Some(name)) {
        Ok(Some(window)) => shared.journal.record(Event::new(
            Some(name),
            Kind::MaintenanceEnded,
            json!({"why": "the update ended", "reason": window.reason}),
        )),
        Ok(None) => {}
        Err(e) => tracing::error!(app = %name, "{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_replaces_every_placeholder() {
        let argv: Vec<String> = ["/usr/bin/deploy", "--to={version}", "pkg-{version}.deb"]
            .map(str::to_owned)
            .to_vec();
        assert_eq!(
            with_version(&argv, "2.1"),
            ["/usr/bin/deploy", "--to=2.1", "pkg-2.1.deb"]
        );
    }
}
