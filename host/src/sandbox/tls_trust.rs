//! How one app's HTTPS requests trust servers, made from its `[tls]` when
//! the app loads: the system's CAs (webpki's) plus the app's `ca_files`, a
//! client certificate for servers that ask for one, the name to present
//! and verify instead of the URL's host, or (`insecure`) no verification.
//! The files are read by medic; a kit never sees them.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::api::tls::{add_roots, read_certificates, read_private_key};
use crate::config::TlsSettings;

/// One app's TLS client.
#[derive(Clone)]
pub struct TlsTrust {
    /// The connector, or why the app's `[tls]` cannot be used (a key file
    /// that changed since the config was checked): every HTTPS request is
    /// then refused with that reason, as a kit fault, never as the app
    /// being down.
    connector: Result<TlsConnector, String>,
    /// `server_name`, when set.
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTrust")
            .field("usable", &self.connector.is_ok())
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl Default for TlsTrust {
    /// The system's CAs, nothing else: an app without `[tls]`.
    fn default() -> Self {
        static SYSTEM: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
        let connector = SYSTEM
            .get_or_init(|| build(&TlsSettings::default()).map(TlsConnector::from))
            .clone();
        Self {
            connector,
            server_name: None,
        }
    }
}

impl TlsTrust {
    /// The TLS client of app `app` with `settings`.
    pub fn of(app: &str, settings: &TlsSettings) -> Self {
        if *settings == TlsSettings::default() {
            return Self::default();
        }
        if settings.insecure {
            tracing::warn!(
                app,
                "[tls] insecure = true: the certificates of the servers this app's checks reach are NOT verified"
            );
        }
        let connector = build(settings)
            .map(TlsConnector::from)
            .map_err(|why| format!("[tls] of app {app}: {why}"));
        if let Err(why) = &connector {
            tracing::error!("{why}");
        }
        Self {
            connector,
            server_name: settings
                .server_name
                .as_deref()
                .and_then(|name| ServerName::try_from(name.to_owned()).ok()),
        }
    }

    /// The connector, or why there is none.
    pub fn connector(&self) -> Result<TlsConnector, String> {
        self.connector.clone()
    }

    /// The name to present and verify: `server_name`, else `host`.
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, String> {
        match &self.server_name {
            Some(name) => Ok(name.clone()),
            None => ServerName::try_from(host.to_owned())
                .map_err(|_| format!("{host:?} is not a name TLS can verify")),
        }
    }

    /// The `Host` header when `server_name` replaces the URL's host (as a
    /// virtual server behind an IP address expects), with `port` unless it
    /// is HTTPS's own.
    pub fn host_header(&self, port: Option<u16>) -> Option<String> {
        let name = self.server_name.as_ref()?.to_str();
        Some(match port {
            Some(port) if port != 443 => format!("{name}:{port}"),
            _ => name.into_owned(),
        })
    }

    /// TLS over `tcp`, presenting and verifying `server_name` or else
    /// `uri`'s host.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        uri: &http::Uri,
    ) -> Result<TlsStream<TcpStream>, TlsFailure> {
        let host = uri.host().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = self.server_name(bare).map_err(TlsFailure::Unusable)?;
        let connector = self.connector().map_err(TlsFailure::Unusable)?;
        connector
            .connect(name, tcp)
            .await
            .map_err(TlsFailure::Handshake)
    }
}

/// Why no TLS connection was made.
#[derive(Debug)]
pub enum TlsFailure {
    /// The app's `[tls]` cannot be used, or the host is no name TLS can
    /// verify: the words say which.
    Unusable(String),
    /// The handshake failed; [`super::tls_failure::describe`] words it.
    Handshake(std::io::Error),
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unusable(why) => f.write_str(why),
            Self::Handshake(e) => f.write_str(&super::tls_failure::describe(e)),
        }
    }
}

fn build(settings: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    for file in &settings.ca_files {
        add_roots(&mut roots, file).map_err(|e| e.to_string())?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if settings.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
    } else {
        builder.with_root_certificates(roots)
    };
    let config = match (&settings.client_cert, &settings.client_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certificates(cert).map_err(|e| e.to_string())?;
            let key = read_private_key(key).map_err(|e| e.to_string())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("{} and its key: {e}", cert.display()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `insecure`: any certificate is taken, though the handshake's own
/// signatures are still checked (so the connection is still encrypted to
/// whoever holds the certificate's key).
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
