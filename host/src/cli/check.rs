//! `medic check`: one check of one app, printed as one line, with the Nagios
//! plugin exit-code convention so monitoring can run it directly.

use std::path::Path;
use std::process::ExitCode;

use super::admin::{self, Target};
use crate::api::client::Client;
use crate::sandbox::KitEngine;
use crate::signing::KitTrust;
use crate::status::CheckResult;
use crate::supervisor::{CheckOutcome, LastCheck};

/// Nagios plugin exit codes.
pub(super) const OK: u8 = 0;
pub(super) const WARNING: u8 = 1;
pub(super) const CRITICAL: u8 = 2;
pub(super) const UNKNOWN: u8 = 3;

/// Checks through the running daemon when one answers (so the result also
/// goes through its ladder), else locally with `--config`.
pub(super) fn run(target: &Target, app: &str) -> ExitCode {
    let (code, line) = match (admin::daemon_socket(target), &target.config) {
        (Some(socket), _) => through_daemon(&socket, app),
        (None, Some(config)) => check(config, app),
        (None, None) => (
            UNKNOWN,
            "no daemon answers and no --config to check without one".to_owned(),
        ),
    };
    let label = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][usize::from(code)];
    println!("{label} - {app}: {line}");
    ExitCode::from(code)
}

/// Asks the daemon at `socket` to check `app` now.
fn through_daemon(socket: &Path, app: &str) -> (u8, String) {
    let client = Client::new(socket);
    match super::runtime().map(|rt| rt.block_on(client.check(app))) {
        Ok(Ok(record)) => verdict(record.result, record.reason.as_deref().unwrap_or_default()),
        Ok(Err(e)) => (UNKNOWN, e.to_string()),
        Err(e) => (UNKNOWN, format!("{e:#}")),
    }
}

/// The exit code and line for a check's result and reason, the same for
/// a local check and one by the daemon.
fn verdict(result: CheckResult, reason: &str) -> (u8, String) {
    match result {
        CheckResult::Healthy => (OK, "healthy".into()),
        CheckResult::Degraded => (WARNING, format!("degraded: {reason}")),
        CheckResult::Failed => (CRITICAL, format!("failed: {reason}")),
        CheckResult::Unknown => (UNKNOWN, format!("unknown: {reason}")),
        CheckResult::KitFault => (UNKNOWN, format!("kit fault: {reason}")),
    }
}

/// The exit code and line for a check done in this process.
pub(super) fn verdict_of(outcome: &CheckOutcome) -> (u8, String) {
    let record = LastCheck::new(outcome, std::time::Duration::ZERO);
    verdict(record.result, record.reason.as_deref().unwrap_or_default())
}

/// Checks `app` in this process, without a daemon.
fn check(config_path: &Path, app: &str) -> (u8, String) {
    let Some(config) = super::load_or_report(config_path) else {
        return (UNKNOWN, format!("bad config {}", config_path.display()));
    };
    let Some(spec) = config.apps.iter().find(|a| a.name == app) else {
        return (
            UNKNOWN,
            format!("no app named {app} in {}", config.daemon.apps_dir.display()),
        );
    };
    let state_dir = &config.daemon.state_dir;
    let outcome = super::runtime().and_then(|rt| {
        rt.block_on(async {
            let engine = KitEngine::new(Some(state_dir.join("cache")))?;
            let trust = KitTrust::load(&config.daemon.trusted_keys, config.daemon.require_signed)?;
            let kit = engine.load_trusted(&spec.kit_path, &trust)?;
            let runtime = crate::daemon::build_runtime(
                spec,
                kit,
                state_dir,
                std::time::Instant::now(),
                std::time::Duration::ZERO,
            );
            Ok(runtime.check().await.outcome)
        })
    });
    match outcome {
        Ok(outcome) => verdict_of(&outcome),
        Err(e) => (UNKNOWN, format!("kit {}: {e:#}", spec.kit_path.display())),
    }
}
