//! The command line's side of the admin API: one HTTP/1 request over the
//! daemon's unix socket, or over TCP with mutual TLS to an agent's
//! `[daemon] listen`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use super::tls::{AgentUrl, ConnectError, Refusal, TlsClient};

/// A connection target: the daemon's socket, or an agent's TLS address.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
}

/// Where the admin API is.
#[derive(Debug, Clone)]
enum Endpoint {
    /// The daemon's unix socket (`[daemon] socket`).
    Socket(PathBuf),
    /// An agent's TCP address with mutual TLS (`[daemon] listen`), and the
    /// client's CA, certificate and key, shared by every agent it calls.
    Agent {
        /// `https://HOST:PORT`.
        url: AgentUrl,
        /// This client's side of TLS.
        tls: Arc<TlsClient>,
    },
}

/// What the HTTP exchange runs over: a unix socket or a TLS stream.
trait Connection: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Connection for T {}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the socket (no daemon), or it may not be opened.
    #[error("cannot reach the medic daemon at {}: {source}{}", .socket.display(), hint(.source))]
    Unreachable {
        /// The socket tried.
        socket: PathBuf,
        /// What connect said.
        source: std::io::Error,
    },
    /// Nothing answers at the agent's address (no medic listening there, a
    /// firewall, a wrong port), or not in time.
    #[error("cannot reach the medic agent at {url}: {source}")]
    AgentUnreachable {
        /// The agent's URL.
        url: String,
        /// What connect said.
        source: std::io::Error,
    },
    /// The agent refused this client's certificate, or this client the
    /// agent's: which side refused and why.
    #[error("{url}: {refusal}")]
    TlsRefused {
        /// The agent's URL.
        url: String,
        /// Who refused and why.
        refusal: Refusal,
    },
    /// The daemon answered with an error.
    #[error("{message} (HTTP {status})")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The daemon's `error` text.
        message: String,
    },
    /// The exchange itself failed.
    #[error("talking to the medic daemon: {0:#}")]
    Transport(anyhow::Error),
}

fn hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::PermissionDenied => {
            " (only root, medic's user and members of [daemon] socket_group may use it)"
        }
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            " (is `medic daemon` running with this config?)"
        }
        _ => "",
    }
}

impl Client {
    /// A client of the daemon listening at `socket`.
    pub fn new(socket: &Path) -> Self {
        Self {
            endpoint: Endpoint::Socket(socket.to_path_buf()),
        }
    }

    /// A client of the agent at `url` (its `[daemon] listen`), over mutual
    /// TLS with `tls`, which many clients may share.
    pub fn tls(url: AgentUrl, tls: Arc<TlsClient>) -> Self {
        Self {
            endpoint: Endpoint::Agent { url, tls },
        }
    }

    /// A connection to the daemon, for hyper's handshake.
    async fn connect(&self) -> Result<Box<dyn Connection>, ClientError> {
        match &self.endpoint {
            Endpoint::Socket(socket) => {
                let stream = tokio::net::UnixStream::connect(socket)
                    .await
                    .map_err(|source| ClientError::Unreachable {
                        socket: socket.clone(),
                        source,
                    })?;
                Ok(Box::new(stream))
            }
            Endpoint::Agent { url, tls } => {
                let stream = tls.connect(url).await.map_err(|error| match error {
                    ConnectError::Unreachable(source) => ClientError::AgentUnreachable {
                        url: url.to_string(),
                        source,
                    },
                    ConnectError::Refused(refusal) => ClientError::TlsRefused {
                        url: url.to_string(),
                        refusal,
                    },
                })?;
                Ok(Box::new(stream))
            }
        }
    }

    /// A failed exchange: the TLS refusal it carries, if any (with TLS 1.3
    /// the agent refuses a certificate after the client's handshake is
    /// done, so the refusal comes with the answer), else a transport
    /// failure.
    fn failed(&self, error: hyper::Error) -> ClientError {
        if let Endpoint::Agent { url, .. } = &self.endpoint
            && let Some(refusal) = Refusal::of(&error)
        {
            return ClientError::TlsRefused {
                url: url.to_string(),
                refusal,
            };
        }
        ClientError::Transport(error.into())
    }

    /// Sends one request and returns the response, with its status checked.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let stream = self.connect().await?;
        let transport = |e: hyper::Error| self.failed(e);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(transport)?;
        tokio::spawn(connection);
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "medic")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .context("building the request")
            .map_err(ClientError::Transport)?;
        let response = sender.send_request(request).await.map_err(transport)?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(transport)?
            .to_bytes();
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        Err(ClientError::Refused { status, message })
    }

    /// A request with a JSON answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let response = self.send(method, path, body).await?;
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.failed(e))?
            .to_bytes();
        serde_json::from_slice(&bytes)
            .context("the daemon's answer is not JSON")
            .map_err(ClientError::Transport)
    }

    /// A request answered with JSON lines, handed to `each` as they come
    /// (for `events --follow`, until the daemon stops or `each` breaks:
    /// the reader of `medic events --follow | head` went away).
    pub async fn lines(
        &self,
        path: &str,
        mut each: impl FnMut(&str) -> std::ops::ControlFlow<()>,
    ) -> Result<(), ClientError> {
        let mut body = self.send(Method::GET, path, None).await?.into_body();
        let mut pending = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.failed(e))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if each(String::from_utf8_lossy(&line[..end]).as_ref()).is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
