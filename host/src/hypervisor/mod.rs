//! Resetting the VM medic runs in, through the hypervisor's API.
//!
//! Escalation is medic's own, never a kit's. Each backend lives in its own
//! module behind [`Hypervisor`]; [`Escalator`] applies the reset budget and
//! journals every decision before acting.

mod dry_run;
mod escalator;
mod qmp;

use crate::config::{Backend, EscalationSettings};

pub use dry_run::DryRun;
pub use escalator::{Escalator, ResetBudget};
pub use qmp::Qmp;

/// The VM's power state as the hypervisor reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    /// Running.
    On,
    /// Powered off.
    Off,
    /// Suspended or paused.
    Suspended,
    /// The backend cannot tell (dry-run).
    Unknown,
}

/// A failed hypervisor operation.
#[derive(Debug, thiserror::Error)]
pub enum HypervisorError {
    /// The reset call failed.
    #[error("reset failed: {message}")]
    Reset {
        /// What the backend said.
        message: String,
        /// Whether trying again later may succeed (timeouts, 5xx...).
        retryable: bool,
    },
    /// Reading the power state failed.
    #[error("power state query failed: {message}")]
    PowerState {
        /// What the backend said.
        message: String,
        /// Whether trying again later may succeed.
        retryable: bool,
    },
}

impl HypervisorError {
    /// Whether the same operation may succeed when tried again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Reset { retryable, .. } | Self::PowerState { retryable, .. } => *retryable,
        }
    }
}

/// A way to reset the VM medic runs in.
#[async_trait::async_trait]
pub trait Hypervisor: Send + Sync {
    /// The backend's config name (`dry-run`, `qmp`...).
    fn name(&self) -> &'static str;
    /// Whether the backend only pretends (journaled as `"dry_run": true`).
    fn is_dry_run(&self) -> bool;
    /// Reads the VM's power state.
    async fn power_state(&self) -> Result<PowerState, HypervisorError>;
    /// Resets the VM (a hard reset, like the reset button).
    async fn reset(&self) -> Result<(), HypervisorError>;
}

/// Builds the backend named in `[escalation]`.
pub fn from_settings(settings: &EscalationSettings) -> Box<dyn Hypervisor> {
    match &settings.backend {
        Backend::DryRun => Box::new(DryRun),
        Backend::Qmp(target) => Box::new(Qmp::new(target.clone())),
    }
}
