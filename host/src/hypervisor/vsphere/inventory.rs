//! Every VM of a vCenter (or ESXi) as an [`Inventory`], through the vim25
//! SOAP API: the REST API has no guest customization of a clone nor
//! a host and cluster per VM in one call, so the inventory does not use it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::settings::{VsphereApi, VsphereSettings};
use super::soap::{self, Power, SoapClient};
use super::target::{FoundVm, VmTarget};
use super::{ClientTimeouts, endpoint};
use crate::credentials::Credentials;
use crate::hypervisor::inventory::{CloneSpec, Inventory, VmInfo};
use crate::hypervisor::{ErrorKind, HypervisorError};

/// How long a clone may take when the caller did not say (the single-VM
/// backend never clones).
const DEFAULT_CLONE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The VMs of one vCenter or ESXi.
#[derive(Debug)]
pub struct VsphereInventory {
    /// Shared with a clone's own task, which outlives a caller that stops
    /// waiting so it can always clean up.
    client: Arc<SoapClient>,
    clone_timeout: Duration,
}

impl VsphereInventory {
    /// The inventory of the vCenter `settings` name (`vm` and
    /// `dmi_uuid_file` are not used), with the default HTTP timeouts; a
    /// clone gives up after `clone_timeout` and removes what it made.
    /// `api = "rest"` is refused: the inventory speaks SOAP.
    pub fn new(
        settings: &VsphereSettings,
        credentials: Credentials,
        clone_timeout: Duration,
    ) -> Result<Self, HypervisorError> {
        Self::with_timeouts(
            settings,
            credentials,
            ClientTimeouts::default(),
            clone_timeout,
        )
    }

    /// Like [`VsphereInventory::new`], with the connect and per-request timeouts given.
    pub fn with_timeouts(
        settings: &VsphereSettings,
        credentials: Credentials,
        timeouts: ClientTimeouts,
        clone_timeout: Duration,
    ) -> Result<Self, HypervisorError> {
        if settings.api == VsphereApi::Rest {
            return Err(HypervisorError::new(
                ErrorKind::Failed,
                "the vSphere inventory speaks the SOAP API only (VM hosts and clusters, guest \
                 shutdown, clone with customization); set api = \"soap\"",
            ));
        }
        let (http, url) = endpoint(settings, timeouts)?;
        Ok(Self {
            client: Arc::new(SoapClient::new(http, url, credentials)),
            clone_timeout,
        })
    }

    /// The inventory over an already built client (the single-VM backend's).
    pub(super) fn from_client(client: SoapClient) -> Self {
        Self {
            client: Arc::new(client),
            clone_timeout: DEFAULT_CLONE_TIMEOUT,
        }
    }

    /// Logs in, finds the VM `target` names, runs `operation` on it and
    /// logs out, also when finding the VM or the operation failed.
    pub(super) async fn on_vm<T>(
        &self,
        target: &VmTarget,
        operation: impl AsyncFnOnce(&soap::Session<'_>, &FoundVm) -> Result<T, HypervisorError>,
    ) -> Result<T, HypervisorError> {
        let session = self.client.login().await?;
        let result = match session.locate(target).await {
            Ok(vm) => operation(&session, &vm).await,
            Err(err) => Err(err),
        };
        session.logout().await;
        result
    }

    /// [`VsphereInventory::on_vm`] for an inventory call's `vm` (a name or a uuid).
    async fn on_named<T>(
        &self,
        vm: &str,
        operation: impl AsyncFnOnce(&soap::Session<'_>, &FoundVm) -> Result<T, HypervisorError>,
    ) -> Result<T, HypervisorError> {
        self.on_vm(&VmTarget::from_reference(vm), operation).await
    }
}

#[async_trait::async_trait]
impl Inventory for VsphereInventory {
    fn name(&self) -> &'static str {
        "vsphere"
    }

    async fn list(&self) -> Result<Vec<VmInfo>, HypervisorError> {
        let session = self.client.login().await?;
        let result = session.list_vms().await;
        session.logout().await;
        Ok(result?.into_iter().map(|(_, info)| info).collect())
    }

    async fn power_on(&self, vm: &str) -> Result<String, HypervisorError> {
        self.on_named(vm, async |session, vm| session.power(vm, Power::On).await)
            .await
    }

    async fn shutdown_guest(&self, vm: &str) -> Result<String, HypervisorError> {
        self.on_named(vm, async |session, vm| {
            session.power(vm, Power::ShutdownGuest).await
        })
        .await
    }

    async fn power_off(&self, vm: &str) -> Result<String, HypervisorError> {
        self.on_named(vm, async |session, vm| session.power(vm, Power::Off).await)
            .await
    }

    async fn reset(&self, vm: &str) -> Result<String, HypervisorError> {
        self.on_named(vm, async |session, vm| session.reset(vm).await)
            .await
    }

    /// Runs on a task of its own, so that a caller that stops waiting
    /// (its own timeout) does not stop the clean-up of a failed clone.
    async fn clone_vm(&self, template: &str, spec: &CloneSpec) -> Result<VmInfo, HypervisorError> {
        let fixed = spec.check()?;
        let client = Arc::clone(&self.client);
        let deadline = Instant::now() + self.clone_timeout;
        let (template, spec) = (template.to_owned(), spec.clone());
        tokio::spawn(async move {
            let session = client.login().await?;
            let result = session.clone_vm(&template, &spec, fixed, deadline).await;
            session.logout().await;
            result
        })
        .await
        .map_err(|err| {
            HypervisorError::new(
                ErrorKind::Failed,
                format!("vSphere: the clone's task ended abnormally: {err}"),
            )
        })?
    }

    async fn destroy(&self, vm: &str) -> Result<String, HypervisorError> {
        self.on_named(vm, async |session, vm| session.destroy(vm).await)
            .await
    }
}
