//! What an app looks like from outside, for `medic status`, the admin API
//! and metrics: published by its supervisor after every change.

use std::time::SystemTime;

use serde::Serialize;

use super::state::{AppState, CheckOutcome, Phase, Policy};

/// One app's state as shown to admins.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppStatus {
    /// The app's name.
    pub app: String,
    /// `healthy`, `degraded`, `failing` (failed checks below the
    /// threshold), `unknown` (the check cannot judge), `starting` (in its
    /// start grace), `recovering`,
    /// `escalating`, `manual`, `maintenance` or `blocked`.
    pub state: &'static str,
    /// Why the app is held (manual) or blocked, if it is.
    pub reason: Option<String>,
    /// The last check, if one has run.
    pub last_check: Option<LastCheck>,
    /// Failed checks in a row.
    pub failures: u32,
    /// Local recovery attempts used in the current window.
    pub attempts_used: u32,
    /// Local recovery attempts allowed per window.
    pub attempts_allowed: u32,
    /// The watched main process, if the app has a pidfile naming a live one.
    pub pid: Option<u32>,
    /// The maintenance window the app is under, if any.
    pub maintenance: Option<crate::maintenance::Window>,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastCheck {
    /// When it finished.
    #[serde(serialize_with = "crate::journal::rfc3339")]
    pub at: SystemTime,
    /// `healthy`, `degraded`, `failed`, `unknown` or `kit_fault` (a
    /// timeout included).
    pub result: &'static str,
    /// What the kit said, for anything but healthy.
    pub reason: Option<String>,
    /// How long the check took, in milliseconds.
    pub duration_ms: f64,
}

impl LastCheck {
    /// The record of `outcome`, finished now after `duration`.
    pub fn new(outcome: &CheckOutcome, duration: std::time::Duration) -> Self {
        let (result, reason) = match outcome {
            CheckOutcome::Healthy => ("healthy", None),
            CheckOutcome::Degraded(reason) => ("degraded", Some(reason.clone())),
            CheckOutcome::Failed(reason) => ("failed", Some(reason.clone())),
            CheckOutcome::Unknown(reason) => ("unknown", Some(reason.clone())),
            CheckOutcome::KitFault(fault) | CheckOutcome::TimedOut(fault) => {
                ("kit_fault", Some(fault.clone()))
            }
        };
        Self {
            at: SystemTime::now(),
            result,
            reason,
            duration_ms: duration.as_secs_f64() * 1000.0,
        }
    }
}

/// The state name for `state` at `now`.
pub fn state_name(state: &AppState, now: std::time::Instant) -> &'static str {
    match &state.phase {
        Phase::Manual(_) => "manual",
        Phase::Escalating => "escalating",
        Phase::Healthy | Phase::Recovering if state.unknown => "unknown",
        Phase::Recovering if state.grace_until.is_some_and(|end| now < end) => "starting",
        Phase::Recovering => "recovering",
        Phase::Healthy if state.consecutive_failures > 0 => "failing",
        Phase::Healthy if state.degraded => "degraded",
        Phase::Healthy => "healthy",
    }
}

impl AppStatus {
    /// The status of app `name` in `state` under `policy`.
    pub fn of(name: &str, state: &AppState, policy: &Policy, now: std::time::Instant) -> Self {
        Self {
            app: name.to_owned(),
            state: state_name(state, now),
            reason: match &state.phase {
                Phase::Manual(reason) => Some(reason.clone()),
                _ => None,
            },
            last_check: None,
            failures: state.consecutive_failures,
            attempts_used: u32::try_from(state.attempts.len()).unwrap_or(u32::MAX),
            attempts_allowed: policy.local_attempts,
            pid: None,
            maintenance: None,
        }
    }
}
