//! The unit controller (`medic unit`): all the VMs of one application
//! handled as one management unit. It runs on an admin host, reads
//! `units.toml`, talks to every member's medic over mutual TLS (the agents'
//! `[daemon] listen`) and to the hypervisor's inventory, and keeps its own
//! journal in `[controller] state_dir`.
//!
//! Every verb is a view of, or an action over, the same two sources: a
//! [`survey::Survey`] (each agent's status of the unit's app, joined with
//! the inventory's power state and physical host) for `list`, `status`,
//! `map`, `impact` and the web page; [`ops::Operation`] for bulk `start` and
//! `stop`; [`build`] for new members from a master image.

pub mod agents;
pub mod build;
pub mod config;
pub mod haproxy;
pub mod ops;
pub mod page;
pub mod roll;
pub mod survey;
pub mod topology;

use std::path::Path;

use crate::fsutil::{FileLock, LockError};
use crate::hypervisor::{HypervisorError, Inventory};
use crate::journal::Journal;

pub use agents::Agents;
pub use config::{DEFAULT_UNITS, Member, Unit, UnitsFile};

/// Why the controller cannot start on its files.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// `units.toml` is wrong (every error, one per line).
    #[error("{0}")]
    Config(crate::config::ConfigErrors),
    /// The controller's certificate, key or CA is unusable.
    #[error("[controller]: {0}")]
    Tls(#[from] crate::api::tls::TlsError),
    /// The hypervisor's settings cannot be used (credentials...).
    #[error("[hypervisor]: {0}")]
    Hypervisor(#[from] HypervisorError),
    /// The controller's journal cannot be opened.
    #[error("[controller] state_dir: {0}")]
    Journal(#[from] crate::journal::JournalError),
}

/// Everything a verb works with, opened once.
pub struct Controller {
    /// The file as read.
    pub file: UnitsFile,
    /// The agents, with the controller's identity.
    pub agents: Agents,
    /// The hypervisor's inventory, when `[hypervisor]` is configured.
    pub inventory: Option<Box<dyn Inventory>>,
    /// The controller's own journal.
    pub journal: Journal,
}

impl Controller {
    /// Reads `path` and opens what it names.
    pub fn open(path: &Path) -> Result<Self, ControllerError> {
        let file = config::load(path).map_err(ControllerError::Config)?;
        let agents = Agents::new(&file.controller)?;
        let inventory = file
            .hypervisor
            .as_ref()
            .map(|settings| {
                crate::hypervisor::inventory_from_settings(settings)
                    .map(|inventory| Box::new(inventory) as Box<dyn Inventory>)
            })
            .transpose()?;
        let journal = Journal::open(&file.controller.state_dir)?;
        Ok(Self {
            file,
            agents,
            inventory,
            journal,
        })
    }

    /// The inventory, or the reason a verb that needs one cannot run.
    pub fn require_inventory(&self, verb: &str) -> Result<&dyn Inventory, String> {
        self.inventory.as_deref().ok_or_else(|| {
            format!(
                "{}: `medic unit {verb}` needs the hypervisor's inventory: add a [hypervisor] table",
                self.file.path.display()
            )
        })
    }

    /// Takes the lock of each unit in `names` (in `state_dir/locks`), so
    /// two bulk operations on one unit never interleave; the error names
    /// the unit and the pid holding it.
    pub fn lock_units<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<FileLock>, String> {
        let dir = self.file.controller.state_dir.join("locks");
        names
            .into_iter()
            .map(|name| {
                FileLock::acquire(&dir.join(format!("{name}.lock"))).map_err(|e| match e {
                    LockError::Held { pid, .. } => {
                        format!("unit `{name}` is busy: another operation on it runs (pid {pid})")
                    }
                    LockError::Io { .. } => format!("locking unit `{name}`: {e}"),
                })
            })
            .collect()
    }

    /// Who this controller acts as, for journals: the local user.
    pub fn by() -> String {
        format!("uid {}", rustix::process::geteuid().as_raw())
    }
}
