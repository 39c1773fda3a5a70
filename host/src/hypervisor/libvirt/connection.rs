//! What every libvirt operation shares: connections, the thread each
//! blocking call runs on, finding a domain on one or several hosts, and
//! mapping libvirt's errors and states onto medic's.
//!
//! libvirt's calls block, so each operation runs on threads of its own
//! with fresh connections; a hung connection costs one parked thread, never
//! the runtime, and the caller's timeout still ends the wait.

use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::ErrorNumber;

use crate::hypervisor::inventory::{is_uuid, pick};
use crate::hypervisor::{ErrorKind, HypervisorError, PowerState};

/// An open connection to one libvirt host, closed when dropped.
pub(super) struct Connection {
    connect: Connect,
    /// The URI it was opened with, for messages.
    pub uri: String,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.connect.close();
    }
}

impl Connection {
    /// Connects to `uri`.
    pub(super) fn open(uri: &str) -> Result<Self, HypervisorError> {
        // libvirt prints every error to stderr by default; medic reports
        // them itself, with context.
        virt::error::clear_error_callback();
        let connect =
            Connect::open(Some(uri)).map_err(|e| classify(&e, &format!("connect {uri}")))?;
        Ok(Self {
            connect,
            uri: uri.to_owned(),
        })
    }

    /// The libvirt connection itself.
    pub(super) fn connect(&self) -> &Connect {
        &self.connect
    }

    /// The name of the physical host: what libvirt reports
    /// (`virConnectGetHostname`), else the URI's host, else the URI.
    pub(super) fn host_name(&self) -> String {
        self.connect
            .get_hostname()
            .ok()
            .filter(|name| !name.is_empty())
            .or_else(|| {
                reqwest::Url::parse(&self.uri)
                    .ok()
                    .and_then(|url| url.host_str().map(str::to_owned))
            })
            .unwrap_or_else(|| self.uri.clone())
    }

    /// The domain `reference` names here: by uuid when it has a uuid's
    /// form, else by name; `None` when this host has no such domain.
    pub(super) fn find(&self, reference: &str) -> Result<Option<Domain>, HypervisorError> {
        let found = if is_uuid(reference) {
            Domain::lookup_by_uuid_string(&self.connect, reference)
        } else {
            Domain::lookup_by_name(&self.connect, reference)
        };
        match found {
            Ok(domain) => Ok(Some(domain)),
            Err(e) if e.code() == ErrorNumber::NoDomain => Ok(None),
            Err(e) => Err(classify(
                &e,
                &format!("look up domain `{reference}` on {}", self.uri),
            )),
        }
    }
}

/// Runs `operation` on a thread of its own and waits for its answer.
pub(super) async fn blocking<T: Send + 'static>(
    operation: impl FnOnce() -> Result<T, HypervisorError> + Send + 'static,
) -> Result<T, HypervisorError> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("medic-libvirt".to_owned())
        .spawn(move || {
            let _ = done.send(operation());
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

/// Runs `per_host` on a fresh connection to each of `uris`, all at once
/// (a thread each), and gives each URI's result in the order of `uris`.
pub(super) async fn on_each_host<T: Send + 'static>(
    uris: &[String],
    per_host: impl Fn(Connection) -> Result<T, HypervisorError> + Send + Sync + Clone + 'static,
) -> Vec<(String, Result<T, HypervisorError>)> {
    let calls: Vec<_> = uris
        .iter()
        .map(|uri| {
            let (uri, per_host) = (uri.clone(), per_host.clone());
            let call = blocking({
                let uri = uri.clone();
                move || per_host(Connection::open(&uri)?)
            });
            (uri, call)
        })
        .collect();
    let mut results = Vec::with_capacity(calls.len());
    for (uri, call) in calls {
        results.push((uri, call.await));
    }
    results
}

/// A domain found on one of several hosts, with the connection it was found through.
pub(super) struct Found {
    pub connection: Connection,
    pub domain: Domain,
    /// Its name, for messages.
    pub name: String,
    /// The host's name, for messages and [`crate::hypervisor::VmInfo::host`].
    pub host: String,
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "domain `{}` on {}", self.name, self.host)
    }
}

/// The one domain `reference` names on any of `uris`. A domain defined on
/// several hosts (after a migration) is the one running there; with none
/// or several running it is ambiguous. A host that cannot be asked is an
/// error unless the domain was found elsewhere.
/// A domain's name and uuid, the two things every answer about it names.
pub(super) fn name_and_uuid(
    domain: &virt::domain::Domain,
) -> Result<(String, String), HypervisorError> {
    let name = domain
        .get_name()
        .map_err(|e| classify(&e, "read the name"))?;
    let uuid = domain
        .get_uuid_string()
        .map_err(|e| classify(&e, "read the uuid"))?;
    Ok((name, uuid))
}

pub(super) async fn find_on_hosts(
    uris: &[String],
    reference: &str,
) -> Result<Found, HypervisorError> {
    let wanted = reference.to_owned();
    let answers = on_each_host(uris, move |connection| {
        let Some(domain) = connection.find(&wanted)? else {
            return Ok(None);
        };
        let (name, uuid) = name_and_uuid(&domain)?;
        let active = domain.is_active().unwrap_or(false);
        let host = connection.host_name();
        Ok(Some((
            Found {
                connection,
                domain,
                name,
                host,
            },
            uuid,
            active,
        )))
    })
    .await;
    let mut candidates = Vec::new();
    let mut unreachable = None;
    for (_, answer) in answers {
        match answer {
            Ok(Some(candidate)) => candidates.push(candidate),
            Ok(None) => {}
            Err(err) => {
                unreachable.get_or_insert(err);
            }
        }
    }
    match (candidates.is_empty(), unreachable) {
        (true, Some(err)) => Err(HypervisorError::new(
            err.kind,
            format!("{}; domain `{reference}` is on no other host", err.message),
        )),
        _ => pick(
            reference,
            candidates,
            |(found, uuid, _)| (found.name.as_str(), uuid.as_str()),
            |(_, _, active)| *active,
            |(found, _, active)| format!("{found}{}", if *active { ", running" } else { "" }),
        )
        .map(|(found, _, _)| found),
    }
}

/// Maps libvirt's error codes onto medic's retry decision.
pub(super) fn classify(error: &virt::error::Error, context: &str) -> HypervisorError {
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
        ErrorNumber::DomExist => ErrorKind::AlreadyExists,
        _ => ErrorKind::Failed,
    };
    HypervisorError::new(kind, format!("libvirt: {context}: {}", error.message()))
}

/// The domain's power state.
pub(super) fn state_of(domain: &Domain) -> Result<PowerState, HypervisorError> {
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

/// Resets a running domain, or power-cycles it on a driver without reset.
pub(super) fn reset_domain(domain: &Domain) -> Result<String, HypervisorError> {
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
}
