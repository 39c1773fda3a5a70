//! libvirt, through the `virt` crate: any URI libvirt supports
//! (`qemu+ssh://host/system`, `qemu:///system`, `test:///default`...).
//!
//! libvirt's calls block, so each operation runs on its own thread with a
//! fresh connection; a hung connection costs one parked thread, never the
//! runtime, and the escalation timeout still ends the wait.

use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::ErrorNumber;

use super::{ErrorKind, Hypervisor, HypervisorError, PowerState};
use crate::config::LibvirtSettings;

/// Resets a libvirt domain.
#[derive(Debug, Clone)]
pub struct Libvirt {
    settings: LibvirtSettings,
}

/// An open connection, closed when dropped.
struct Connection(Connect);

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.0.close();
    }
}

impl Libvirt {
    /// A backend for `settings.domain` at `settings.uri`.
    pub fn new(settings: LibvirtSettings) -> Self {
        // libvirt prints every error to stderr by default; medic reports
        // them itself, with context.
        virt::error::clear_error_callback();
        Self { settings }
    }

    /// Runs `operation` on the domain on a thread of its own.
    async fn on_domain<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&Domain) -> Result<T, HypervisorError> + Send + 'static,
    ) -> Result<T, HypervisorError> {
        let settings = self.settings.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("medic-libvirt".to_owned())
            .spawn(move || {
                let _ = done.send(
                    open_domain(&settings).and_then(|(_connection, domain)| operation(&domain)),
                );
            })
            .map_err(|e| {
                HypervisorError::new(
                    ErrorKind::Failed,
                    format!("libvirt: cannot start a thread: {e}"),
                )
            })?;
        result.await.map_err(|_| {
            HypervisorError::new(
                ErrorKind::Failed,
                "libvirt: the call's thread ended without an answer",
            )
        })?
    }
}

/// Connects and finds the domain by UUID or name.
fn open_domain(settings: &LibvirtSettings) -> Result<(Connection, Domain), HypervisorError> {
    let connection = Connection(
        Connect::open(Some(&settings.uri))
            .map_err(|e| classify(&e, &format!("connect {}", settings.uri)))?,
    );
    let domain = Domain::lookup_by_uuid_string(&connection.0, &settings.domain)
        .or_else(|_| Domain::lookup_by_name(&connection.0, &settings.domain))
        .map_err(|e| classify(&e, &format!("domain `{}`", settings.domain)))?;
    Ok((connection, domain))
}

/// Maps libvirt's error codes onto medic's retry decision.
fn classify(error: &virt::error::Error, context: &str) -> HypervisorError {
    let kind = match error.code() {
        ErrorNumber::NoDomain => ErrorKind::NotFound,
        ErrorNumber::AuthFailed | ErrorNumber::AuthCancelled | ErrorNumber::AuthUnavailable => {
            ErrorKind::BadCredentials
        }
        ErrorNumber::OperationInvalid => ErrorKind::WrongPowerState,
        ErrorNumber::OperationTimeout => ErrorKind::Timeout,
        ErrorNumber::SystemError | ErrorNumber::NoConnect | ErrorNumber::Rpc => {
            ErrorKind::Unreachable
        }
        _ => ErrorKind::Failed,
    };
    HypervisorError::new(kind, format!("libvirt: {context}: {}", error.message()))
}

fn state_of(domain: &Domain) -> Result<PowerState, HypervisorError> {
    let (state, _reason) = domain
        .get_state()
        .map_err(|e| classify(&e, "read the power state"))?;
    Ok(match state {
        virt::sys::VIR_DOMAIN_RUNNING | virt::sys::VIR_DOMAIN_BLOCKED => PowerState::On,
        virt::sys::VIR_DOMAIN_SHUTOFF
        | virt::sys::VIR_DOMAIN_SHUTDOWN
        | virt::sys::VIR_DOMAIN_CRASHED => PowerState::Off,
        virt::sys::VIR_DOMAIN_PAUSED | virt::sys::VIR_DOMAIN_PMSUSPENDED => PowerState::Suspended,
        _ => PowerState::Unknown,
    })
}

#[async_trait::async_trait]
impl Hypervisor for Libvirt {
    fn name(&self) -> &'static str {
        "libvirt"
    }

    async fn identify(&self) -> Result<String, HypervisorError> {
        let uri = self.settings.uri.clone();
        self.on_domain(move |domain| {
            let name = domain
                .get_name()
                .map_err(|e| classify(&e, "read the name"))?;
            let uuid = domain
                .get_uuid_string()
                .map_err(|e| classify(&e, "read the uuid"))?;
            Ok(format!("domain `{name}` ({uuid}) on {uri}"))
        })
        .await
    }

    async fn power_state(&self) -> Result<PowerState, HypervisorError> {
        self.on_domain(state_of).await
    }

    async fn reset(&self) -> Result<String, HypervisorError> {
        self.on_domain(|domain| {
            if state_of(domain)? != PowerState::On {
                return Err(HypervisorError::new(
                    ErrorKind::WrongPowerState,
                    "libvirt: the domain is not running; a reset would not start it",
                ));
            }
            match domain.reset() {
                Ok(_) => Ok("virDomainReset succeeded".to_owned()),
                Err(e) if e.code() == ErrorNumber::NoSupport => {
                    // Some drivers have no reset: a hard power cycle is the
                    // same for the guest.
                    tracing::warn!("libvirt: the driver has no reset; using destroy + create");
                    domain.destroy().map_err(|e| classify(&e, "destroy"))?;
                    domain.create().map_err(|e| classify(&e, "create"))?;
                    Ok("the driver has no reset: destroy + create succeeded".to_owned())
                }
                Err(e) => Err(classify(&e, "reset")),
            }
        })
        .await
    }
}
