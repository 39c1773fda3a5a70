//! The names medic shows for an app's state and a check's result, typed
//! once for `medic status`, the admin API, metrics and the CLI. The serde
//! names are the strings admins' scripts and dashboards already match.
//!
//! This module depends on nothing else in medic, so the supervisor, the
//! metrics and the API can all use it without depending on each other.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The state an app is in, as `medic status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// No check yet, or in its start grace.
    Starting,
    /// The last check passed.
    Healthy,
    /// The app works, but not well.
    Degraded,
    /// Failed checks, fewer than `failures_before_action`.
    Failing,
    /// The check cannot judge: nothing is done until it can.
    Unknown,
    /// Local recovery is under way.
    Recovering,
    /// A VM reset was asked for.
    Escalating,
    /// Held: nothing is done until an admin acts or a check passes.
    Manual,
    /// In a maintenance window: checked, never recovered.
    Maintenance,
    /// A dependency is down.
    Blocked,
    /// An admin stopped it (`medic stop`): neither checked nor recovered
    /// until `medic start`.
    Stopped,
}

impl State {
    /// Every state, so each app has a `medic_app_state` series for all.
    pub const ALL: [Self; 11] = [
        Self::Healthy,
        Self::Degraded,
        Self::Failing,
        Self::Unknown,
        Self::Recovering,
        Self::Escalating,
        Self::Manual,
        Self::Blocked,
        Self::Maintenance,
        Self::Starting,
        Self::Stopped,
    ];

    /// The name admins see (`recovering`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Failing => "failing",
            Self::Unknown => "unknown",
            Self::Recovering => "recovering",
            Self::Escalating => "escalating",
            Self::Manual => "manual",
            Self::Maintenance => "maintenance",
            Self::Blocked => "blocked",
            Self::Stopped => "stopped",
        }
    }

    /// Whether an app in this state is down for the apps that depend on
    /// it (they are then `blocked`).
    pub fn is_down(self) -> bool {
        matches!(
            self,
            Self::Failing
                | Self::Recovering
                | Self::Escalating
                | Self::Manual
                | Self::Blocked
                | Self::Stopped
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// What one check concluded, as `last_check.result` and the `outcome`
/// label of `medic_checks_total` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckResult {
    /// The app works.
    Healthy,
    /// The app works but not well.
    Degraded,
    /// The app does not work.
    Failed,
    /// The check cannot judge (a bad setting, a refused credential).
    Unknown,
    /// The kit itself failed (trap, timeout, denied capability), so the
    /// app's health is unknown.
    KitFault,
}

impl CheckResult {
    /// Every result, so an app's series all exist from its first check
    /// and `rate()` sees the first failure.
    pub const ALL: [Self; 5] = [
        Self::Healthy,
        Self::Degraded,
        Self::Failed,
        Self::Unknown,
        Self::KitFault,
    ];

    /// The name admins and dashboards see (`kit_fault`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::KitFault => "kit_fault",
        }
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are a public contract: serde and `name` agree, and no
    /// two states share one.
    #[test]
    fn names_are_the_serde_names() {
        for state in State::ALL {
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.name())
            );
        }
        for result in CheckResult::ALL {
            assert_eq!(
                serde_json::to_value(result).unwrap(),
                serde_json::json!(result.as_str())
            );
        }
        let mut names: Vec<_> = State::ALL.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), State::ALL.len());
    }
}
