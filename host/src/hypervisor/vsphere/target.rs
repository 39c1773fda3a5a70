//! Which VM to look for, once `auto` has been resolved from the DMI uuid.

use std::path::Path;

use crate::config::VmSelector;
use crate::hypervisor::HypervisorError;

use super::vm_uuid;

/// A VM to look up, in the terms the APIs search by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum VmTarget {
    /// BIOS uuids (lowercase) to try in order; `auto` gives the DMI form and its byte-swapped form.
    Uuids(Vec<String>),
    /// A managed object id such as "vm-42".
    Moref(String),
    /// An inventory path such as "/DC0/vm/name".
    Path(String),
    /// A display name, which must be unique among the VMs the account sees.
    Name(String),
}

impl VmTarget {
    /// Resolves the configured selector; `auto` reads `dmi_uuid_file`.
    pub(super) async fn resolve(
        selector: &VmSelector,
        dmi_uuid_file: &Path,
    ) -> Result<Self, HypervisorError> {
        Ok(match selector {
            VmSelector::Uuid(uuid) => Self::Uuids(vec![uuid.trim().to_ascii_lowercase()]),
            VmSelector::Auto => {
                let uuid = vm_uuid::read_dmi_uuid(dmi_uuid_file).await?;
                let mut uuids = vec![uuid.clone()];
                if let Some(swapped) = vm_uuid::byte_swapped(&uuid)
                    && swapped != uuid
                {
                    uuids.push(swapped);
                }
                Self::Uuids(uuids)
            }
            VmSelector::Moref(moref) => Self::Moref(moref.trim().to_string()),
            VmSelector::Path(path) => Self::Path(path.clone()),
        })
    }

    /// An inventory call's reference to a VM: a uuid (any case) when it has
    /// a uuid's form, else a display name.
    pub(super) fn from_reference(reference: &str) -> Self {
        if crate::hypervisor::inventory::is_uuid(reference) {
            Self::Uuids(vec![reference.to_ascii_lowercase()])
        } else {
            Self::Name(reference.to_owned())
        }
    }

    /// What was searched for, for "not found" messages.
    pub(super) fn describe(&self) -> String {
        match self {
            Self::Uuids(uuids) => format!("BIOS uuid {}", uuids.join(" or ")),
            Self::Moref(moref) => format!("managed object {moref}"),
            Self::Path(path) => format!("inventory path {path}"),
            Self::Name(name) => format!("name {name:?}"),
        }
    }
}

/// A VM found on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FoundVm {
    /// Its managed object id, e.g. "vm-42".
    pub id: String,
    /// Its display name.
    pub name: String,
}

impl std::fmt::Display for FoundVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.id, self.name)
    }
}
