//! The escalation backend: resets the one domain medic runs in, on one
//! connection, with the code the inventory shares.

use virt::domain::Domain;

use super::LibvirtSettings;
use super::connection::{Connection, blocking, classify, reset_domain, state_of};
use crate::hypervisor::{Hypervisor, HypervisorError, PowerState};

/// Resets a libvirt domain.
#[derive(Debug, Clone)]
pub struct Libvirt {
    settings: LibvirtSettings,
}

impl Libvirt {
    /// A backend for `settings.domain` at `settings.uri`.
    pub fn new(settings: LibvirtSettings) -> Self {
        Self { settings }
    }

    /// Runs `operation` on the domain on a thread of its own.
    async fn on_domain<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&Domain) -> Result<T, HypervisorError> + Send + 'static,
    ) -> Result<T, HypervisorError> {
        let settings = self.settings.clone();
        blocking(move || {
            let (_connection, domain) = open_domain(&settings)?;
            operation(&domain)
        })
        .await
    }
}

/// Connects and finds the domain by UUID or name.
fn open_domain(settings: &LibvirtSettings) -> Result<(Connection, Domain), HypervisorError> {
    let connection = Connection::open(&settings.uri)?;
    let domain = Domain::lookup_by_uuid_string(connection.connect(), &settings.domain)
        .or_else(|_| Domain::lookup_by_name(connection.connect(), &settings.domain))
        .map_err(|e| classify(&e, &format!("domain `{}`", settings.domain)))?;
    Ok((connection, domain))
}

#[async_trait::async_trait]
impl Hypervisor for Libvirt {
    fn name(&self) -> &'static str {
        "libvirt"
    }

    async fn identify(&self) -> Result<String, HypervisorError> {
        let uri = self.settings.uri.clone();
        self.on_domain(move |domain| {
            let (name, uuid) = super::connection::name_and_uuid(domain)?;
            Ok(format!("domain `{name}` ({uuid}) on {uri}"))
        })
        .await
    }

    async fn power_state(&self) -> Result<PowerState, HypervisorError> {
        self.on_domain(state_of).await
    }

    async fn reset(&self) -> Result<String, HypervisorError> {
        self.on_domain(reset_domain).await
    }
}
