//! `medic check`: one check of one app, printed as one line, with the Nagios
//! plugin exit-code convention so monitoring can run it directly.

use std::path::Path;
use std::process::ExitCode;

use crate::sandbox::KitEngine;
use crate::supervisor::CheckOutcome;

/// Nagios plugin exit codes.
const OK: u8 = 0;
const WARNING: u8 = 1;
const CRITICAL: u8 = 2;
const UNKNOWN: u8 = 3;

pub(super) fn run(config_path: &Path, app: &str) -> ExitCode {
    let (code, line) = check(config_path, app);
    let label = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][usize::from(code)];
    println!("{label} - {app}: {line}");
    ExitCode::from(code)
}

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
            let kit = engine.load(&spec.kit_path)?;
            let runtime = crate::daemon::build_runtime(
                spec,
                kit,
                state_dir,
                std::time::Instant::now(),
                std::time::Duration::ZERO,
            );
            Ok(runtime.check().await)
        })
    });
    match outcome {
        Ok(CheckOutcome::Healthy) => (OK, "healthy".into()),
        Ok(CheckOutcome::Degraded(reason)) => (WARNING, format!("degraded: {reason}")),
        Ok(CheckOutcome::Failed(reason)) => (CRITICAL, format!("failed: {reason}")),
        Ok(CheckOutcome::KitFault(fault)) => (UNKNOWN, format!("kit fault: {fault}")),
        Err(e) => (UNKNOWN, format!("kit {}: {e:#}", spec.kit_path.display())),
    }
}
