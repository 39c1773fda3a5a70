//! `medic vm status` and `medic vm reset`: the escalation path, by hand.
//!
//! Both go through exactly what the daemon uses (the same backend, timeout,
//! journal and budget), so an admin can prove the path works before it is
//! needed, and a manual reset counts against the same budget.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use crate::config::Config;
use crate::hypervisor::{Escalator, HypervisorError, ResetOutcome, ResetRequest, budget_filter};
use crate::journal::{self, Journal};

/// `medic vm status`: exit 0 with backend, VM and power state, or 1 with
/// the reason.
pub(super) fn status(config_path: &Path) -> ExitCode {
    let Some(config) = super::load_or_report(config_path) else {
        return ExitCode::FAILURE;
    };
    report(super::runtime().and_then(|rt| rt.block_on(print_status(&config))))
}

async fn print_status(config: &Config) -> anyhow::Result<()> {
    let escalator = escalator(config)?;
    let backend = escalator.backend();
    println!("backend: {}", backend.name());
    let vm = backend.identify().await.map_err(explained)?;
    println!("vm: {vm}");
    let power = backend.power_state().await.map_err(explained)?;
    println!(
        "power: {}",
        serde_json::to_value(power)?.as_str().unwrap_or("unknown")
    );
    println!(
        "resets left: {} of {} per {}",
        escalator.remaining().await,
        config.escalation.max_resets,
        humantime::format_duration(config.escalation.reset_window)
    );
    Ok(())
}

/// `medic vm reset`: without `yes` only says what would happen.
pub(super) fn reset(config_path: &Path, yes: bool, force: bool) -> ExitCode {
    let Some(config) = super::load_or_report(config_path) else {
        return ExitCode::FAILURE;
    };
    report(super::runtime().and_then(|rt| rt.block_on(manual_reset(&config, yes, force))))
}

async fn manual_reset(config: &Config, yes: bool, force: bool) -> anyhow::Result<()> {
    let escalator = escalator(config)?;
    let backend = escalator.backend();
    let vm = backend.identify().await.map_err(explained)?;
    let left = escalator.remaining().await;
    if !yes {
        println!(
            "would reset {vm} through {} ({} reset{} left in the budget{}); add --yes to do it",
            backend.name(),
            left,
            if left == 1 { "" } else { "s" },
            if force { ", --force ignores it" } else { "" }
        );
        return Ok(());
    }
    let uid = rustix::process::getuid().as_raw();
    let reason = format!("manual reset of {vm} by uid {uid} (medic vm reset)");
    match escalator
        .reset(ResetRequest {
            app: None,
            reason: &reason,
            force,
        })
        .await
    {
        ResetOutcome::Reset => {
            println!("reset {vm} through {}", backend.name());
            Ok(())
        }
        ResetOutcome::Refused(why) => anyhow::bail!("{why}"),
    }
}

fn escalator(config: &Config) -> anyhow::Result<Escalator> {
    let state_dir = &config.daemon.state_dir;
    let journal = Arc::new(Journal::open(state_dir)?);
    let past = journal::read_filtered(state_dir, &budget_filter(&config.escalation))?;
    Escalator::from_settings(&config.escalation, journal, &past)
        .map_err(explained)
        .context("setting up the escalation backend")
}

/// The error with its retry decision, which is what an admin acts on.
fn explained(e: HypervisorError) -> anyhow::Error {
    let retry = if e.is_retryable() {
        "may pass: retryable"
    } else {
        "not retryable"
    };
    let kind = serde_json::to_value(e.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    anyhow::anyhow!("{} ({kind}, {retry})", e.message)
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("medic: {e:#}");
            ExitCode::FAILURE
        }
    }
}
