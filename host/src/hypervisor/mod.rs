//! Resetting the VM medic runs in, through the hypervisor's API, and naming
//! and acting on many VMs for a unit controller.
//!
//! Escalation is medic's own, never a kit's. Each backend lives in its own
//! module behind [`Hypervisor`]; [`Escalator`] applies the reset guard and
//! journals every decision before acting. The backends that can see many
//! VMs (vSphere, libvirt over several hosts) are also an [`Inventory`]: list,
//! power operations, clone from a template, destroy; the single-VM
//! escalation is one user of the same code. Every backend classifies its
//! failures with [`ErrorKind`], which is what decides whether medic tries
//! again: a timeout may pass, a wrong password will not. Each backend owns
//! its settings type and their TOML parser.

mod dry_run;
mod escalator;
mod fence_agent;
mod guarded;
mod inventory;
pub mod libvirt;
mod qmp;
pub(crate) mod settings;
pub mod vsphere;
mod xml;

use crate::config::{Backend, EscalationSettings};
use crate::credentials;

pub use dry_run::DryRun;
pub use escalator::{
    Escalator, ResetBudget, ResetOutcome, ResetRequest, RetryPolicy, budget_filter,
};
pub use fence_agent::FenceAgent;
pub use guarded::{Guarded, GuardedInventory};
pub use inventory::{CloneSpec, Inventory, VmInfo};
#[cfg(feature = "libvirt")]
pub use libvirt::{Libvirt, LibvirtInventory};
pub use qmp::Qmp;
pub(crate) use settings::read_inventory_settings;
pub use settings::{InventoryBackend, InventorySettings, read_inventory_file};
pub use vsphere::{Vsphere, VsphereInventory};

/// The VM's power state as the hypervisor reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

impl std::fmt::Display for PowerState {
    /// The state as its serialised name says it (`on`, `off`...), for messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::On => "on",
            Self::Off => "off",
            Self::Suspended => "suspended",
            Self::Unknown => "unknown",
        })
    }
}

/// What kind of failure, which decides whether trying again may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Nothing answered: connection refused, socket absent, name unknown.
    Unreachable,
    /// The hypervisor took longer than `[escalation] timeout`.
    Timeout,
    /// The hypervisor failed on its side (HTTP 5xx, a transient fault).
    ServerError,
    /// The credentials were refused.
    BadCredentials,
    /// The VM (or another named object) does not exist.
    NotFound,
    /// The VM is in a power state that does not allow the operation.
    WrongPowerState,
    /// The hypervisor's certificate could not be verified.
    Tls,
    /// The hypervisor answered something medic does not understand.
    Protocol,
    /// The operation ran and failed (a task error, an agent's failure).
    Failed,
    /// What was to be made exists already (a clone's name is taken).
    AlreadyExists,
}

/// A failed hypervisor operation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HypervisorError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What the backend said, with context; never a credential.
    pub message: String,
}

impl HypervisorError {
    /// A failure of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether the same operation may succeed when tried again: only
    /// failures that can pass on their own (timeouts, unreachable, 5xx).
    /// Retrying bad credentials or a missing VM would only loop.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Unreachable | ErrorKind::Timeout | ErrorKind::ServerError
        )
    }
}

/// A way to reset the VM medic runs in.
#[async_trait::async_trait]
pub trait Hypervisor: Send + Sync {
    /// The backend's config name (`dry-run`, `qmp`...).
    fn name(&self) -> &'static str;
    /// Whether the backend only pretends (journaled as `"dry_run": true`).
    fn is_dry_run(&self) -> bool {
        false
    }
    /// Names the VM as the hypervisor knows it (`vm-42 (web-01)`), which
    /// proves the connection, the credentials and the VM lookup work.
    async fn identify(&self) -> Result<String, HypervisorError>;
    /// Reads the VM's power state.
    async fn power_state(&self) -> Result<PowerState, HypervisorError>;
    /// Resets the VM (a hard reset, like the reset button) and returns what
    /// proves it happened (`RESET event seen`, `task task-7 succeeded`).
    async fn reset(&self) -> Result<String, HypervisorError>;
}

/// Builds the backend named in `[escalation]`, with every call bounded by
/// `timeout`. Credentials are read here, so a file that became unsafe since
/// the config was validated is refused before any use.
pub fn from_settings(settings: &EscalationSettings) -> Result<Guarded, HypervisorError> {
    let backend: Box<dyn Hypervisor> = match &settings.backend {
        Backend::DryRun => Box::new(DryRun),
        Backend::Qmp(target) => Box::new(Qmp::new(target.clone())),
        #[cfg(feature = "libvirt")]
        Backend::Libvirt(libvirt) => Box::new(Libvirt::new(libvirt.clone())),
        // The config reader refuses the backend in such a build.
        #[cfg(not(feature = "libvirt"))]
        Backend::Libvirt(_) => {
            return Err(HypervisorError::new(
                ErrorKind::Failed,
                "this medic was built without the `libvirt` feature",
            ));
        }
        Backend::Vsphere(vsphere) => {
            let credentials = load_credentials(&vsphere.credentials)?;
            Box::new(Vsphere::new(vsphere, credentials)?)
        }
        Backend::FenceAgent(agent) => {
            let credentials = agent
                .credentials
                .as_ref()
                .map(load_credentials)
                .transpose()?;
            Box::new(FenceAgent::new(agent.clone(), credentials))
        }
    };
    Ok(Guarded::new(backend, settings.timeout))
}

/// Builds the inventory `[hypervisor]` names, with every call bounded by
/// `timeout` and every clone by `clone_timeout`. Credentials are read here,
/// as for [`from_settings`].
pub fn inventory_from_settings(
    settings: &InventorySettings,
) -> Result<GuardedInventory, HypervisorError> {
    let backend: Box<dyn Inventory> = match &settings.backend {
        InventoryBackend::Vsphere(vsphere) => {
            let credentials = load_credentials(&vsphere.credentials)?;
            Box::new(VsphereInventory::new(
                vsphere,
                credentials,
                settings.clone_timeout,
            )?)
        }
        #[cfg(feature = "libvirt")]
        InventoryBackend::Libvirt(libvirt) => Box::new(LibvirtInventory::new(
            libvirt.clone(),
            settings.clone_timeout,
        )),
        // The settings reader refuses the backend in such a build.
        #[cfg(not(feature = "libvirt"))]
        InventoryBackend::Libvirt(_) => {
            return Err(HypervisorError::new(
                ErrorKind::Failed,
                "this medic was built without the `libvirt` feature",
            ));
        }
    };
    Ok(GuardedInventory::new(
        backend,
        settings.timeout,
        settings.clone_timeout,
    ))
}

fn load_credentials(
    source: &credentials::Source,
) -> Result<credentials::Credentials, HypervisorError> {
    source
        .load()
        .map_err(|e| HypervisorError::new(ErrorKind::BadCredentials, e.to_string()))
}
