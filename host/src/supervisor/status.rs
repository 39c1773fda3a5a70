//! What an app looks like from outside, for `medic status`, the admin API
//! and metrics: published by its supervisor after every change.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::state::{AppState, CheckOutcome, Phase, Policy};
use crate::status::{CheckResult, State};

/// One app's state as shown to admins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppStatus {
    /// The app's name.
    pub app: String,
    /// Where the app stands.
    pub state: State,
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
    /// The version `medic update` last installed, if it ever ran.
    #[serde(default)]
    pub version: Option<String>,
}

#[cfg(test)]
impl AppStatus {
    /// An app in `state` with nothing else known, for tests of what shows
    /// statuses (the API, the pages).
    pub(crate) fn bare(name: &str, state: State) -> Self {
        Self {
            app: name.to_owned(),
            state,
            reason: None,
            last_check: None,
            failures: 0,
            attempts_used: 0,
            attempts_allowed: 3,
            pid: None,
            maintenance: None,
            version: None,
        }
    }
}

impl AppStatus {
    /// What an admin reads first about the app: why it is held, stopped
    /// or blocked, else why it is in maintenance, else what its last check
    /// said.
    pub fn detail(&self) -> Option<&str> {
        self.reason
            .as_deref()
            .or(self
                .maintenance
                .as_ref()
                .map(|window| window.reason.as_str()))
            .or(self
                .last_check
                .as_ref()
                .and_then(|last| last.reason.as_deref()))
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastCheck {
    /// When it finished.
    #[serde(
        serialize_with = "crate::journal::rfc3339",
        deserialize_with = "crate::journal::from_rfc3339"
    )]
    pub at: SystemTime,
    /// What the check concluded (a timeout is a `kit_fault`).
    pub result: CheckResult,
    /// What the kit said, for anything but healthy.
    pub reason: Option<String>,
    /// How long the check took, in milliseconds.
    pub duration_ms: f64,
}

impl LastCheck {
    /// The record of `outcome`, finished now after `duration`.
    pub fn new(outcome: &CheckOutcome, duration: std::time::Duration) -> Self {
        let reason = match outcome {
            CheckOutcome::Healthy => None,
            CheckOutcome::Degraded(reason)
            | CheckOutcome::Failed(reason)
            | CheckOutcome::Unknown(reason)
            | CheckOutcome::KitFault(reason)
            | CheckOutcome::TimedOut(reason) => Some(reason.clone()),
        };
        Self {
            at: SystemTime::now(),
            result: outcome.result(),
            reason,
            duration_ms: duration.as_secs_f64() * 1000.0,
        }
    }
}

/// The state shown for the ladder's `state` at `now`.
pub fn state_of(state: &AppState, now: std::time::Instant) -> State {
    match &state.phase {
        Phase::Manual(_) => State::Manual,
        Phase::Escalating => State::Escalating,
        Phase::Healthy | Phase::Recovering if state.unknown => State::Unknown,
        Phase::Recovering if state.grace_until.is_some_and(|end| now < end) => State::Starting,
        Phase::Recovering => State::Recovering,
        Phase::Healthy if state.consecutive_failures > 0 => State::Failing,
        Phase::Healthy if state.degraded => State::Degraded,
        Phase::Healthy => State::Healthy,
    }
}

impl AppStatus {
    /// The status of app `name` in `state` under `policy`.
    pub fn of(name: &str, state: &AppState, policy: &Policy, now: std::time::Instant) -> Self {
        Self {
            app: name.to_owned(),
            state: state_of(state, now),
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
            version: None,
        }
    }
}
