//! The admin API over TCP with mutual TLS only (`[daemon] listen`), and the
//! client side that reaches it.
//!
//! A caller on another host has no peer credentials to show, so its
//! certificate stands for them. The agent presents `tls_cert`; a client
//! must present a certificate signed by `client_ca` whose name is in
//! `clients`. Anything else fails the TLS handshake (no certificate, one
//! from another CA, a name not listed: the client gets the TLS alert), and
//! the refusal is logged with the client's address and why. There is no
//! plaintext TCP listener: a plain HTTP request is a failed handshake too.
//!
//! A certificate's *name* is its subject's common name (CN) or any DNS
//! name of its subjectAltName, compared exactly with `clients`: a
//! certificate made with `openssl req -subj "/CN=controller"` and one made
//! with rcgen's `CertificateParams::new(["controller"])` (a DNS name) are
//! both named `controller`. The listed name is the caller's name in the
//! journal (`by`: `cert controller`).
//!
//! Connections are bounded ([`MAX_CONNECTIONS`], handshakes included) and
//! so is the handshake's time ([`HANDSHAKE_TIMEOUT`]), so a flood of
//! clients cannot exhaust the daemon.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName,
    RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::peer::{Peer, Remote};
use super::server::{ApiState, router};
use crate::config::TlsListen;

/// Connections served at once, TLS handshakes included; more are closed at
/// once, so a flood of clients cannot exhaust medic's file descriptors.
pub const MAX_CONNECTIONS: usize = 32;

/// A client that has not finished its TLS handshake by then is dropped, so
/// a slow or silent one cannot hold one of [`MAX_CONNECTIONS`] for long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client that does not send its request headers within this is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a refused connection is kept open, reading and dropping what
/// the client still sends, so that it reads the TLS alert (see
/// [`close_refused`]).
const LINGER: Duration = Duration::from_secs(1);

/// Pause after a failed accept, so a shortage of descriptors does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// How long a client waits for the TCP connection and the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The only application protocol either side speaks: the API is HTTP/1.1.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Why certificates or keys could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("{}: {source}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Group or others may access the key file, or a stranger owns it.
    #[error("{}: {problem}; make it `chmod 600` and owned by root or medic's user", .path.display())]
    Unsafe {
        /// The key file.
        path: PathBuf,
        /// What is wrong with its permissions.
        problem: String,
    },
    /// The file holds no PEM certificate or key of the kind wanted.
    #[error("{}: {problem}", .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the key itself).
        problem: String,
    },
    /// rustls refused what the files hold (a key that is not the
    /// certificate's, a CA certificate it cannot use).
    #[error("{what}: {source}")]
    Refused {
        /// The files, named as the config names them.
        what: String,
        /// What rustls said.
        source: rustls::Error,
    },
}

/// The certificates in the PEM file at `path`, in order; at least one.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = std::fs::read(path).map_err(|source| TlsError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let malformed = |problem: String| TlsError::Malformed {
        path: path.to_path_buf(),
        problem,
    };
    let certificates = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed(format!("not PEM certificates: {e}")))?;
    if certificates.is_empty() {
        return Err(malformed(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    Ok(certificates)
}

/// The private key in the PEM file at `path`, held to the rules of
/// credentials files: opened once without following a symbolic link, and
/// refused when group or others may access it or a stranger owns it.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    use crate::credentials::{SecretFileError, read_secret_file};
    let text = read_secret_file(path).map_err(|e| match e {
        SecretFileError::Unreadable(source) => TlsError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
        SecretFileError::Unsafe(problem) => TlsError::Unsafe {
            path: path.to_path_buf(),
            problem,
        },
    })?;
    // The parser's message never quotes the key.
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| TlsError::Malformed {
        path: path.to_path_buf(),
        problem: format!("holds no PEM private key ({e})"),
    })
}

/// The CA certificates of the PEM file at `path`, as trust anchors.
fn root_store(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    add_roots(&mut roots, path)?;
    Ok(roots)
}

/// Adds the CA certificates of the PEM file at `path` to `roots`.
pub fn add_roots(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsError> {
    for certificate in read_certificates(path)? {
        roots.add(certificate).map_err(|source| TlsError::Refused {
            what: format!("{} (a CA certificate)", path.display()),
            source,
        })?;
    }
    Ok(())
}

/// The one crypto provider both sides use (ring, as everywhere in medic).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The agent's side: its certificate and key, and the clients it lets in.
pub struct TlsServer {
    acceptor: TlsAcceptor,
    clients: Arc<[String]>,
}

impl TlsServer {
    /// Reads `tls_cert`, `tls_key` (held to the credentials rules) and
    /// `client_ca`; an error names the file.
    pub fn load(settings: &TlsListen) -> Result<Self, TlsError> {
        let clients: Arc<[String]> = settings.clients.clone().into();
        let roots = root_store(&settings.client_ca)?;
        let rejected = |what: String| move |source| TlsError::Refused { what, source };
        let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| TlsError::Refused {
                what: format!("client_ca {}", settings.client_ca.display()),
                source: rustls::Error::General(e.to_string()),
            })?;
        let verifier = Arc::new(ListedClients {
            inner: webpki,
            clients: clients.clone(),
        });
        let certificates = read_certificates(&settings.cert)?;
        let key = read_private_key(&settings.key)?;
        let pair = format!(
            "tls_cert {} and tls_key {}",
            settings.cert.display(),
            settings.key.display()
        );
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(rejected(pair.clone()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certificates, key)
            .map_err(rejected(pair))?;
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            clients,
        })
    }

    /// Serves the admin API on `listener` until the future is dropped
    /// (which ends every connection): the same routes as on the unix
    /// socket, each caller named by its certificate.
    pub async fn serve(self, listener: TcpListener, state: Arc<ApiState>) {
        let router = router(state);
        // Owned here, so dropping this future aborts every connection task.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, addr)) => {
                        if connections.len() >= MAX_CONNECTIONS {
                            refused(addr, &format!("{MAX_CONNECTIONS} connections are open already"));
                            continue;
                        }
                        let acceptor = self.acceptor.clone();
                        let clients = self.clients.clone();
                        let router = router.clone();
                        connections.spawn(async move {
                            if let Some((tls, caller)) = handshake(&acceptor, &clients, stream, addr).await {
                                serve_connection(tls, caller, router).await;
                            }
                        });
                    }
                    Err(error) => {
                        tracing::warn!(%error, "admin API over TLS: cannot accept a connection");
                        tokio::time::sleep(ACCEPT_PAUSE).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }
}

/// A TLS stream accepted from a client.
type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;

/// The TLS handshake with the client at `addr`, within
/// [`HANDSHAKE_TIMEOUT`], and the caller its certificate names; a refusal
/// is logged with the address and why, and gives `None`.
async fn handshake(
    acceptor: &TlsAcceptor,
    clients: &[String],
    stream: TcpStream,
    addr: SocketAddr,
) -> Option<(ServerStream, Remote)> {
    let accepted =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream).into_fallible()).await;
    let tls = match accepted {
        Ok(Ok(tls)) => tls,
        Ok(Err((error, stream))) => {
            refused(addr, &handshake_failure(&error));
            close_refused(stream).await;
            return None;
        }
        Err(_) => {
            let waited = humantime::format_duration(HANDSHAKE_TIMEOUT);
            refused(addr, &format!("no TLS handshake within {waited}"));
            return None;
        }
    };
    // The verifier let in only certificates with a listed name.
    let listed = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|own| listed_name(own, clients));
    let Some(name) = listed else {
        refused(
            addr,
            "its certificate has no name listed in [daemon] clients",
        );
        let (stream, _) = tls.into_inner();
        close_refused(stream).await;
        return None;
    };
    tracing::debug!(%addr, name, "admin API over TLS: client let in");
    Some((tls, Remote { name, addr }))
}

/// Logs a refused client: the admin sees who was refused and why.
fn refused(addr: SocketAddr, why: &str) {
    tracing::warn!("admin API over TLS: refused {addr}: {why}");
}

/// Closes a refused connection so that the client reads the TLS alert
/// already sent: a socket closed with unread data makes the kernel send a
/// reset, which can destroy the alert before the client reads it. So the
/// sending side is shut first, then what the client still sends is read
/// and dropped, for at most [`LINGER`].
async fn close_refused(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let drain = async {
        let mut sink = [0_u8; 1024];
        while matches!(stream.read(&mut sink).await, Ok(read) if read > 0) {}
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Serves the API's routes on one client's connection, with `caller` as
/// every request's caller.
async fn serve_connection(tls: ServerStream, caller: Remote, router: axum::Router) {
    let addr = caller.addr;
    let peer = ConnectInfo(Peer::Remote(caller));
    let service = TowerToHyperService::new(router.layer(Extension(peer)));
    if let Err(error) = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(%addr, %error, "admin API over TLS: connection ended with an error");
    }
}

/// A failed handshake in words, for the log: what the client did wrong,
/// as far as it can be told.
fn handshake_failure(error: &io::Error) -> String {
    let Some(tls) = rustls_error(error) else {
        return match error.kind() {
            io::ErrorKind::UnexpectedEof => {
                "it closed the connection during the TLS handshake".to_owned()
            }
            _ => format!("TLS handshake: {error}"),
        };
    };
    match tls {
        rustls::Error::NoCertificatesPresented => "it presented no client certificate".to_owned(),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "its certificate is not signed by [daemon] client_ca".to_owned()
        }
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => other.0.to_string(),
        rustls::Error::InvalidCertificate(problem) => {
            format!("its certificate is refused: {problem}")
        }
        rustls::Error::AlertReceived(alert) => format!(
            "it ended the handshake with the alert {alert:?} (does it trust the CA of [daemon] tls_cert?)"
        ),
        rustls::Error::InvalidMessage(_) => {
            format!("it does not speak TLS (a plaintext request?): {tls}")
        }
        other => format!("TLS handshake: {other}"),
    }
}

/// The rustls error an I/O error (or an error it is the cause of) carries,
/// if any: tokio-rustls and hyper report TLS failures as I/O errors, whose
/// `source` skips the error they wrap.
fn rustls_error<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match error
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

/// The client verifier: a certificate signed by `client_ca` (webpki's
/// verifier) whose name is one of `clients`. Refusing a name here, in the
/// handshake, rather than after it, gives the client a TLS alert instead
/// of a closed connection, and the log the reason.
#[derive(Debug)]
struct ListedClients {
    inner: Arc<dyn ClientCertVerifier>,
    clients: Arc<[String]>,
}

/// A client certificate whose names are not in `clients`.
#[derive(Debug, thiserror::Error)]
#[error("its certificate's names ({}) are not in [daemon] clients", names_text(.names))]
struct NotListed {
    /// The names the certificate carries.
    names: Vec<String>,
}

/// `names` as shown in a refusal.
fn names_text(names: &[String]) -> String {
    if names.is_empty() {
        return "none: no common name, no DNS subjectAltName".to_owned();
    }
    names
        .iter()
        .map(|name| format!("`{}`", name.escape_debug()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ClientCertVerifier for ListedClients {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if listed_name(end_entity, &self.clients).is_some() {
            return Ok(verified);
        }
        let names = certificate_names(end_entity);
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            rustls::OtherError(Arc::new(NotListed { names })),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The first of the certificate's names (see [`certificate_names`]) that
/// `clients` lists.
fn listed_name(certificate: &CertificateDer<'_>, clients: &[String]) -> Option<String> {
    certificate_names(certificate)
        .into_iter()
        .find(|name| clients.contains(name))
}

/// The names a certificate (DER) carries: its subject's common names, then
/// the DNS names of its subjectAltName; none when it cannot be read.
///
/// webpki checks a certificate's signature and validity but gives no
/// access to its subject, and its own name check reads only the
/// subjectAltName; `x509-parser` reads both. Only certificates already
/// verified against `client_ca` are read.
fn certificate_names(certificate: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(certificate) else {
        return Vec::new();
    };
    let mut names: Vec<String> = parsed
        .subject()
        .iter_common_name()
        .filter_map(|name| directory_string(name.attr_value()))
        .collect();
    if let Ok(Some(alt_names)) = parsed.subject_alternative_name() {
        names.extend(
            alt_names
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    _ => None,
                }),
        );
    }
    names
}

/// The text of a `DirectoryString`, if `value` is one: UTF-8, printable,
/// IA5, ASCII teletex or BMP (UTF-16), as issuers write common names.
fn directory_string(value: &x509_parser::asn1_rs::Any<'_>) -> Option<String> {
    use x509_parser::asn1_rs::Tag;
    let bytes = value.data;
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
            String::from_utf8(bytes.to_vec()).ok()
        }
        Tag::TeletexString if bytes.is_ascii() => String::from_utf8(bytes.to_vec()).ok(),
        Tag::BmpString if bytes.len().is_multiple_of(2) => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// Where an agent's admin API listens, `https://HOST:PORT` (443 when the
/// port is left out), checked once: the host is the name (or IP address)
/// the agent's certificate must be valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentUrl {
    /// The URL as given, for messages.
    text: String,
    /// The host to connect to, without an IPv6 address's brackets.
    host: String,
    /// The port.
    port: u16,
    /// What the agent's certificate must be valid for.
    server_name: ServerName<'static>,
}

/// Why a text is not an agent's URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?} is not an agent's URL (https://HOST:PORT): {problem}")]
pub struct AgentUrlError {
    /// The text given.
    pub url: String,
    /// What is wrong with it.
    pub problem: String,
}

impl std::str::FromStr for AgentUrl {
    type Err = AgentUrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |problem: &str| AgentUrlError {
            url: text.to_owned(),
            problem: problem.to_owned(),
        };
        let uri: http::Uri = text
            .parse()
            .map_err(|e: http::uri::InvalidUri| error(&e.to_string()))?;
        if uri.scheme_str() != Some("https") {
            return Err(error(
                "the admin API over TCP is served with TLS only: the URL starts with https://",
            ));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(error("a path or query has no place in it"));
        }
        let authority = uri.authority().ok_or_else(|| error("no host"))?;
        if authority.as_str().contains('@') {
            return Err(error("a user name has no place in it"));
        }
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(host);
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| error("the host is neither a DNS name nor an IP address"))?;
        Ok(Self {
            text: text.to_owned(),
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(443),
            server_name,
        })
    }
}

impl AgentUrl {
    /// The agent's port (what `medic unit build` gives new members of a
    /// unit whose agents all listen on one port).
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl std::fmt::Display for AgentUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Which end of a TLS connection refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedBy {
    /// The agent refused this client (its certificate, most often).
    Agent,
    /// This client refused the agent (its certificate, most often).
    Client,
}

impl std::fmt::Display for RefusedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Agent => "the agent",
            Self::Client => "this client",
        })
    }
}

/// A TLS connection one side refused, and why in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS refused by {by}: {reason}")]
pub struct Refusal {
    /// Which side refused.
    pub by: RefusedBy,
    /// Why, as far as this side can tell.
    pub reason: String,
}

impl Refusal {
    /// The refusal a failed TLS exchange reports, if it is one: from a
    /// connect, or from the first request (with TLS 1.3 the agent judges
    /// the client's certificate after the client's handshake is done, so
    /// its alert arrives with the first answer).
    pub fn of(error: &(dyn std::error::Error + 'static)) -> Option<Self> {
        let (by, reason) = match rustls_error(error)? {
            rustls::Error::AlertReceived(alert) => (RefusedBy::Agent, alert_reason(*alert)),
            rustls::Error::InvalidCertificate(problem) => {
                (RefusedBy::Client, agent_certificate_reason(problem))
            }
            other => (RefusedBy::Client, other.to_string()),
        };
        Some(Self { by, reason })
    }
}

/// What the agent's alert means for this client.
fn alert_reason(alert: AlertDescription) -> String {
    match alert {
        AlertDescription::CertificateRequired => "it requires a client certificate".to_owned(),
        AlertDescription::UnknownCA => {
            "it does not trust the CA that signed this client's certificate (its [daemon] client_ca)"
                .to_owned()
        }
        AlertDescription::CertificateUnknown | AlertDescription::AccessDenied => {
            "it does not let this client's certificate in: its name is not in the agent's [daemon] clients (the agent's log says which names it carries)"
                .to_owned()
        }
        AlertDescription::CertificateExpired => {
            "this client's certificate has expired or is not valid yet".to_owned()
        }
        AlertDescription::DecryptError | AlertDescription::BadCertificate => format!(
            "it refused this client's certificate (TLS alert {alert:?}): is it from another CA of the same name as its [daemon] client_ca?"
        ),
        other => format!("it sent the TLS alert {other:?}"),
    }
}

/// Why this client refused the agent's certificate, in words.
fn agent_certificate_reason(problem: &CertificateError) -> String {
    match problem {
        CertificateError::UnknownIssuer => {
            "the agent's certificate is not signed by the CA this client trusts".to_owned()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the agent's certificate is not valid for the host in the URL".to_owned()
        }
        other => format!("the agent's certificate: {other}"),
    }
}

/// Why a TLS connection to an agent could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Nothing answered at the address (no agent, a firewall, a wrong
    /// port), or not within the connect timeout.
    #[error("{0}")]
    Unreachable(io::Error),
    /// One side refused the TLS connection.
    #[error(transparent)]
    Refused(Refusal),
}

/// The client side: the CA that signs agents' certificates and this
/// client's own certificate and key, for every agent it calls.
pub struct TlsClient {
    connector: TlsConnector,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

impl TlsClient {
    /// A client trusting the agents' certificates that `ca_file` signed,
    /// presenting `cert_file` with its key `key_file` (held to the rules
    /// of credentials files); an error names the file.
    pub fn new(ca_file: &Path, cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let roots = root_store(ca_file)?;
        let certificates = read_certificates(cert_file)?;
        let key = read_private_key(key_file)?;
        let refused = |source| TlsError::Refused {
            what: format!("{} and {}", cert_file.display(), key_file.display()),
            source,
        };
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(refused)?
            .with_root_certificates(roots)
            .with_client_auth_cert(certificates, key)
            .map_err(refused)?;
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// A TLS connection to `agent`, its certificate checked against the CA
    /// and the URL's host, within a connect timeout.
    pub async fn connect(
        &self,
        agent: &AgentUrl,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
        let connect = async {
            let tcp = TcpStream::connect((agent.host.as_str(), agent.port))
                .await
                .map_err(ConnectError::Unreachable)?;
            self.connector
                .connect(agent.server_name.clone(), tcp)
                .await
                .map_err(|error| match Refusal::of(&error) {
                    Some(refusal) => ConnectError::Refused(refusal),
                    None => ConnectError::Unreachable(error),
                })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .unwrap_or_else(|_| {
                Err(ConnectError::Unreachable(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no TLS connection within {}",
                        humantime::format_duration(CONNECT_TIMEOUT)
                    ),
                )))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rcgen::{CertificateParams, CertifiedIssuer, DnType, KeyPair};

    /// A CA in a temp dir, and the certificates it signs as PEM files
    /// (keys mode 0600).
    struct Pki {
        dir: tempfile::TempDir,
        ca: CertifiedIssuer<'static, KeyPair>,
    }

    impl Pki {
        fn new(name: &str) -> Self {
            let mut params = CertificateParams::default();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
            Self { dir, ca }
        }

        fn ca_file(&self) -> PathBuf {
            self.dir.path().join("ca.pem")
        }

        /// `file.pem` and `file.key`, a certificate made from `params`.
        fn issue(&self, file: &str, params: &CertificateParams) -> (PathBuf, PathBuf) {
            use std::os::unix::fs::PermissionsExt as _;
            let key = KeyPair::generate().unwrap();
            let certificate = params.signed_by(&key, &self.ca).unwrap();
            let (cert_file, key_file) = (
                self.dir.path().join(format!("{file}.pem")),
                self.dir.path().join(format!("{file}.key")),
            );
            std::fs::write(&cert_file, certificate.pem()).unwrap();
            std::fs::write(&key_file, key.serialize_pem()).unwrap();
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
            (cert_file, key_file)
        }
    }

    /// Certificate parameters with `names` as DNS names or IP addresses.
    fn alt_names(names: &[&str]) -> CertificateParams {
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    /// Certificate parameters with `name` as the subject's common name.
    fn common_name(name: &str) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params
    }

    fn names_of(params: &CertificateParams) -> Vec<String> {
        let key = KeyPair::generate().unwrap();
        certificate_names(params.self_signed(&key).unwrap().der())
    }

    #[test]
    fn a_certificate_is_named_by_its_common_name_and_dns_alt_names() {
        assert_eq!(names_of(&common_name("controller")), ["controller"]);
        let mut both = alt_names(&["ctl.example", "10.0.0.1", "ctl2.example"]);
        both.distinguished_name = rcgen::DistinguishedName::new();
        both.distinguished_name
            .push(DnType::OrganizationName, "ops");
        both.distinguished_name
            .push(DnType::CommonName, "controller");
        assert_eq!(
            names_of(&both),
            ["controller", "ctl.example", "ctl2.example"],
            "the CN, then the DNS names (not the IP address)"
        );
        let mut printable = CertificateParams::default();
        printable.distinguished_name.push(
            DnType::CommonName,
            rcgen::DnValue::PrintableString("web-admin".try_into().unwrap()),
        );
        assert_eq!(names_of(&printable), ["web-admin"]);
        let mut bmp = CertificateParams::default();
        bmp.distinguished_name.push(
            DnType::CommonName,
            rcgen::DnValue::BmpString("web-admin".try_into().unwrap()),
        );
        assert_eq!(names_of(&bmp), ["web-admin"], "a BMP (UTF-16) common name");
        let mut nameless = alt_names(&["10.0.0.1"]);
        nameless.distinguished_name = rcgen::DistinguishedName::new();
        assert!(names_of(&nameless).is_empty());
    }

    proptest! {
        /// Reading names never panics, whatever the bytes.
        #[test]
        fn any_bytes_read_as_a_certificate_give_names_or_none(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = certificate_names(&bytes);
        }
    }

    #[test]
    fn agent_urls_are_https_with_a_host() {
        let url: AgentUrl = "https://127.0.0.11:8443".parse().unwrap();
        assert_eq!((url.host.as_str(), url.port), ("127.0.0.11", 8443));
        assert_eq!(url.to_string(), "https://127.0.0.11:8443");
        let url: AgentUrl = "https://[::1]:8443/".parse().unwrap();
        assert_eq!(url.host, "::1");
        let url: AgentUrl = "https://agent.example".parse().unwrap();
        assert_eq!((url.host.as_str(), url.port), ("agent.example", 443));
        for (bad, why) in [
            ("http://127.0.0.1:8443", "TLS only"),
            ("127.0.0.1:8443", "TLS only"),
            ("https://127.0.0.1:8443/v1/status", "path"),
            ("https://a@127.0.0.1:8443", "user name"),
            ("https://", "https://HOST:PORT"),
        ] {
            let error = bad.parse::<AgentUrl>().unwrap_err().to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn a_key_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let pki = Pki::new("test CA");
        let (_, key) = pki.issue("agent", &alt_names(&["127.0.0.1"]));
        assert!(read_private_key(&key).is_ok());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = read_private_key(&key).unwrap_err().to_string();
        assert!(
            error.contains("mode 0640") && error.contains("agent.key"),
            "{error}"
        );
        let error = read_certificates(&key).unwrap_err().to_string();
        assert!(error.contains("no PEM certificate"), "{error}");
    }

    /// An agent's TLS side on a loopback port, listing `controller`, and
    /// what each handshake ended with: the caller's name or a refusal.
    async fn agent(pki: &Pki) -> (AgentUrl, tokio::sync::mpsc::Receiver<Option<String>>) {
        let (cert, key) = pki.issue("agent", &alt_names(&["127.0.0.1"]));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = TlsServer::load(&TlsListen {
            addr,
            cert,
            key,
            client_ca: pki.ca_file(),
            clients: vec!["controller".to_owned()],
        })
        .unwrap();
        let (results, received) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let caller = handshake(&server.acceptor, &server.clients, stream, peer).await;
                let _ = results.send(caller.map(|(_, caller)| caller.name)).await;
            }
        });
        let url = format!("https://127.0.0.1:{}", addr.port())
            .parse()
            .unwrap();
        (url, received)
    }

    /// A request over a connection from `client` and the refusal it met,
    /// if any (with TLS 1.3 the agent's alert comes with the first read).
    async fn exchange(client: &TlsClient, url: &AgentUrl) -> Option<Refusal> {
        let mut stream = match client.connect(url).await {
            Ok(stream) => stream,
            Err(ConnectError::Refused(refusal)) => return Some(refusal),
            Err(ConnectError::Unreachable(e)) => panic!("unreachable: {e}"),
        };
        stream.write_all(b"x").await.unwrap();
        let mut byte = [0_u8; 1];
        match stream.read(&mut byte).await {
            Err(error) => Refusal::of(&error),
            Ok(_) => None,
        }
    }

    #[tokio::test]
    async fn only_a_listed_certificate_signed_by_client_ca_gets_through() {
        let pki = Pki::new("test CA");
        let (url, mut results) = agent(&pki).await;
        let client = |file: &str, params: &CertificateParams, ca: &Path| {
            let (cert, key) = pki.issue(file, params);
            TlsClient::new(ca, &cert, &key).unwrap()
        };

        let controller = client("controller", &common_name("controller"), &pki.ca_file());
        let stream = controller.connect(&url).await.unwrap();
        assert_eq!(results.recv().await.unwrap().as_deref(), Some("controller"));
        drop(stream);

        let by_alt_name = client("alt", &alt_names(&["controller"]), &pki.ca_file());
        let _stream = by_alt_name.connect(&url).await.unwrap();
        assert_eq!(results.recv().await.unwrap().as_deref(), Some("controller"));

        let intruder = client("intruder", &common_name("intruder"), &pki.ca_file());
        let refusal = exchange(&intruder, &url).await.expect("refused");
        assert_eq!(refusal.by, RefusedBy::Agent);
        assert!(refusal.reason.contains("[daemon] clients"), "{refusal}");
        assert_eq!(results.recv().await.unwrap(), None);

        let foreign = Pki::new("foreign CA");
        let (cert, key) = foreign.issue("controller", &common_name("controller"));
        let stranger = TlsClient::new(&pki.ca_file(), &cert, &key).unwrap();
        let refusal = exchange(&stranger, &url).await.expect("refused");
        assert_eq!(refusal.by, RefusedBy::Agent);
        assert!(
            refusal.reason.contains("does not trust the CA"),
            "{refusal}"
        );
        assert_eq!(results.recv().await.unwrap(), None);

        let distrustful = client(
            "controller2",
            &common_name("controller"),
            &foreign.ca_file(),
        );
        let refusal = exchange(&distrustful, &url).await.expect("refused");
        assert_eq!(refusal.by, RefusedBy::Client);
        assert!(refusal.reason.contains("not signed by the CA"), "{refusal}");
        assert_eq!(results.recv().await.unwrap(), None);
    }

    #[test]
    fn handshake_failures_say_what_the_client_did() {
        let failure = |error: rustls::Error| {
            handshake_failure(&io::Error::new(io::ErrorKind::InvalidData, error))
        };
        assert_eq!(
            failure(rustls::Error::NoCertificatesPresented),
            "it presented no client certificate"
        );
        assert_eq!(
            failure(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            )),
            "its certificate is not signed by [daemon] client_ca"
        );
        let not_listed = rustls::Error::InvalidCertificate(CertificateError::Other(
            rustls::OtherError(Arc::new(NotListed {
                names: vec!["intruder".to_owned()],
            })),
        ));
        assert_eq!(
            failure(not_listed),
            "its certificate's names (`intruder`) are not in [daemon] clients"
        );
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(handshake_failure(&eof).contains("closed the connection"));
    }
}
