//! The vSphere backend: resets the VM medic runs in through vCenter or ESXi
//! ([`Vsphere`]), and names and acts on every VM the account sees
//! ([`VsphereInventory`], SOAP only); the first uses the second's code.
//!
//! It speaks either the vim25 SOAP API (every vSphere version, and the only
//! one ESXi has) or the Automation REST API, as configured. Each operation
//! opens its own session and closes it at the end, even after a failure, so
//! no session that may have expired is relied on when a reset is needed.

mod errors;
mod http_client;
mod inventory;
mod rest;
pub mod settings;
mod soap;
mod target;
pub mod vm_uuid;

use std::path::PathBuf;

pub use http_client::ClientTimeouts;
pub use inventory::VsphereInventory;

use crate::credentials::Credentials;
use crate::hypervisor::{ErrorKind, Hypervisor, HypervisorError, PowerState};
use rest::RestClient;
use settings::{VmSelector, VsphereApi, VsphereSettings};
use soap::SoapClient;
use target::{FoundVm, VmTarget};

/// The vSphere hypervisor backend.
#[derive(Debug)]
pub struct Vsphere {
    api: Api,
    vm: VmSelector,
    dmi_uuid_file: PathBuf,
}

/// The configured API and its client: SOAP through the inventory's code,
/// which finds and resets any VM, this one among them.
#[derive(Debug)]
enum Api {
    Soap(VsphereInventory),
    Rest(RestClient),
}

impl Vsphere {
    /// Builds the backend and its HTTPS client with the default timeouts.
    ///
    /// A `ca_file` that cannot be read or holds no certificate is a `Tls` error naming the file.
    pub fn new(
        settings: &VsphereSettings,
        credentials: Credentials,
    ) -> Result<Self, HypervisorError> {
        Self::with_timeouts(settings, credentials, ClientTimeouts::default())
    }

    /// Like [`Vsphere::new`], with the connect and per-request timeouts given.
    pub fn with_timeouts(
        settings: &VsphereSettings,
        credentials: Credentials,
        timeouts: ClientTimeouts,
    ) -> Result<Self, HypervisorError> {
        let (http, url) = endpoint(settings, timeouts)?;
        let api = match settings.api {
            VsphereApi::Soap => Api::Soap(VsphereInventory::from_client(SoapClient::new(
                http,
                url,
                credentials,
            ))),
            VsphereApi::Rest => Api::Rest(RestClient::new(http, &url, credentials)),
        };
        Ok(Self {
            api,
            vm: settings.vm.clone(),
            dmi_uuid_file: settings.dmi_uuid_file.clone(),
        })
    }

    /// The VM to look for (reads the DMI uuid for `auto`, every time: it is cheap and never stale).
    async fn target(&self) -> Result<VmTarget, HypervisorError> {
        VmTarget::resolve(&self.vm, &self.dmi_uuid_file).await
    }

    /// Logs in, finds the VM, runs `operation` on it and logs out, also
    /// when finding the VM or the operation failed.
    async fn on_vm<T>(
        &self,
        operation: impl AsyncFnOnce(Session<'_, '_>, &FoundVm) -> Result<T, HypervisorError>,
    ) -> Result<T, HypervisorError> {
        let target = self.target().await?;
        match &self.api {
            Api::Soap(inventory) => {
                inventory
                    .on_vm(&target, async |session, vm| {
                        operation(Session::Soap(session), vm).await
                    })
                    .await
            }
            Api::Rest(client) => {
                let session = client.login().await?;
                let result = match session.locate(&target).await {
                    Ok(vm) => operation(Session::Rest(&session), &vm).await,
                    Err(err) => Err(err),
                };
                session.logout().await;
                result
            }
        }
    }
}

/// The URL and HTTPS client `settings` ask for, checked: what both the
/// single-VM backend and the inventory talk through.
fn endpoint(
    settings: &VsphereSettings,
    timeouts: ClientTimeouts,
) -> Result<(reqwest::Client, reqwest::Url), HypervisorError> {
    let url = reqwest::Url::parse(&settings.url).map_err(|err| {
        HypervisorError::new(
            ErrorKind::Protocol,
            format!("invalid vSphere url {:?}: {err}", settings.url),
        )
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(HypervisorError::new(
            ErrorKind::Protocol,
            format!(
                "vSphere url {:?} must be http(s)://host[:port]/...",
                settings.url
            ),
        ));
    }
    Ok((http_client::build_client(settings, timeouts)?, url))
}

/// A logged-in session of either API.
#[derive(Clone, Copy)]
enum Session<'s, 'a> {
    Soap(&'s soap::Session<'a>),
    Rest(&'s rest::RestSession<'a>),
}

impl Session<'_, '_> {
    async fn power_state(self, vm: &FoundVm) -> Result<PowerState, HypervisorError> {
        match self {
            Self::Soap(session) => session.power_state(vm).await,
            Self::Rest(session) => session.power_state(vm).await,
        }
    }

    async fn reset(self, vm: &FoundVm) -> Result<String, HypervisorError> {
        match self {
            Self::Soap(session) => session.reset(vm).await,
            Self::Rest(session) => session.reset(vm).await,
        }
    }
}

#[async_trait::async_trait]
impl Hypervisor for Vsphere {
    fn name(&self) -> &'static str {
        "vsphere"
    }

    async fn identify(&self) -> Result<String, HypervisorError> {
        self.on_vm(async |_, vm| Ok(vm.to_string())).await
    }

    async fn power_state(&self) -> Result<PowerState, HypervisorError> {
        self.on_vm(async |session, vm| session.power_state(vm).await)
            .await
    }

    async fn reset(&self) -> Result<String, HypervisorError> {
        self.on_vm(async |session, vm| session.reset(vm).await)
            .await
    }
}
