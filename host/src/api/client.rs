//! The command line's side of the admin API: one HTTP/1 request over the
//! daemon's unix socket.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// A connection target: the daemon's socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

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
            socket: socket.to_path_buf(),
        }
    }

    /// Sends one request and returns the response, with its status checked.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ClientError::Unreachable {
                socket: self.socket.clone(),
                source,
            })?;
        let transport = |e: hyper::Error| ClientError::Transport(e.into());
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
            .map_err(|e| ClientError::Transport(e.into()))?
            .to_bytes();
        serde_json::from_slice(&bytes)
            .context("the daemon's answer is not JSON")
            .map_err(ClientError::Transport)
    }

    /// A request answered with JSON lines, handed to `each` as they come
    /// (for `events --follow`, until the daemon stops).
    pub async fn lines(&self, path: &str, mut each: impl FnMut(&str)) -> Result<(), ClientError> {
        let mut body = self.send(Method::GET, path, None).await?.into_body();
        let mut pending = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Transport(e.into()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                each(String::from_utf8_lossy(&line[..end]).as_ref());
            }
        }
        Ok(())
    }
}
