//! Building the HTTPS client: which certificates are trusted and how long to wait.

use std::time::Duration;

use crate::config::VsphereSettings;
use crate::hypervisor::{ErrorKind, HypervisorError};

/// How long the client waits; the caller also wraps each operation in its own timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// Time allowed to open a TCP connection (and so to notice a dead vCenter).
    pub connect: Duration,
    /// Time allowed for one HTTP request, from sending to the end of the answer.
    pub request: Duration,
}

impl ClientTimeouts {
    /// Connect timeout used by `Vsphere::new`.
    pub const DEFAULT_CONNECT: Duration = Duration::from_secs(10);
    /// Per-request timeout used by `Vsphere::new`.
    pub const DEFAULT_REQUEST: Duration = Duration::from_secs(60);
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        Self {
            connect: Self::DEFAULT_CONNECT,
            request: Self::DEFAULT_REQUEST,
        }
    }
}

/// Builds the client: system roots plus `ca_file` (PEM, possibly several
/// certificates), or no verification at all when `insecure` is set.
pub(super) fn build_client(
    settings: &VsphereSettings,
    timeouts: ClientTimeouts,
) -> Result<reqwest::Client, HypervisorError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .pool_idle_timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("medic/", env!("CARGO_PKG_VERSION")));

    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|err| {
            HypervisorError::new(
                ErrorKind::Tls,
                format!("cannot read CA file {}: {err}", path.display()),
            )
        })?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| {
            HypervisorError::new(
                ErrorKind::Tls,
                format!("CA file {} is not valid PEM: {err}", path.display()),
            )
        })?;
        if certificates.is_empty() {
            return Err(HypervisorError::new(
                ErrorKind::Tls,
                format!("CA file {} holds no certificate", path.display()),
            ));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }

    if settings.insecure {
        tracing::warn!(
            url = %settings.url,
            "vSphere certificate verification is disabled (insecure = true): anyone on the path can impersonate the server"
        );
        builder = builder.danger_accept_invalid_certs(true);
    }

    builder.build().map_err(|err| {
        let about = match &settings.ca_file {
            Some(path) => format!(" with CA file {}", path.display()),
            None => String::new(),
        };
        HypervisorError::new(
            ErrorKind::Tls,
            format!("cannot build the HTTPS client{about}: {err}"),
        )
    })
}
