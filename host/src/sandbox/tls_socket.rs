//! `host.tls-connect` and its `tls-stream`: TLS over a connection the host
//! opens to a granted address, for protocol checks over TLS (`check_tcp
//! --ssl`) in a kit, which cannot speak TLS itself over `wasi:sockets`.
//!
//! The address is checked against `[grants] connect` and reached at the
//! addresses it resolved to when the app loaded; the server is trusted as
//! the app's `[tls]` says. Every wait ends within its own timeout and the
//! call's deadline, every read and write is capped, and a call holds at
//! most [`STREAMS_MAX`] streams at once.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use wasmtime::component::Resource;

use super::bindings::PeerCertificate;
use super::bindings::medic::kit::host::HostTlsStream;
use super::store::KitStore;

/// The longest address a kit may name.
pub const ADDRESS_MAX: usize = 300;
/// TLS streams one call may hold open at once.
pub const STREAMS_MAX: usize = 4;
/// The most bytes one `send` or `recv` moves.
pub const CHUNK_MAX: usize = 64 * 1024;

/// One open TLS connection, as the kit's `tls-stream` resource.
pub struct KitTls {
    stream: TlsStream<TcpStream>,
    certificate: Option<PeerCertificate>,
}

impl KitStore {
    /// `host.tls-connect`: the grant checked, then TCP and TLS, all within
    /// `timeout_ms` and the call's deadline.
    pub(super) async fn open_tls(
        &mut self,
        address: String,
        timeout_ms: u32,
    ) -> Result<Resource<KitTls>, String> {
        if address.len() > ADDRESS_MAX {
            return Err(format!(
                "tls-connect: address longer than {ADDRESS_MAX} bytes"
            ));
        }
        if self.tls_streams >= STREAMS_MAX {
            return Err(format!(
                "tls-connect: at most {STREAMS_MAX} TLS streams are open at once"
            ));
        }
        let uri: http::Uri = format!("https://{address}/")
            .parse()
            .map_err(|_| format!("tls-connect: {address:?} is not host:port"))?;
        let to = (self.scope.policy.connect)
            .http_destination(&uri, &self.denials)
            .map_err(|refused| refused.to_string())?;
        self.scope.policy.tls_usable_for(&uri, &self.denials)?;
        let timeout = self
            .deadline
            .clamp(Duration::from_millis(timeout_ms.into()));
        let tls = self.scope.policy.tls.clone();
        let (stream, certificate) =
            tokio::time::timeout(timeout, super::lean_http::connect_tls(&to, &uri, &tls))
                .await
                .map_err(|_| format!("no TLS connection within {} ms", timeout.as_millis()))??;
        let resource = self
            .table
            .push(KitTls {
                stream,
                certificate,
            })
            .map_err(|e| format!("tls-connect: {e}"))?;
        self.tls_streams += 1;
        Ok(resource)
    }
}

impl HostTlsStream for KitStore {
    async fn send(&mut self, stream: Resource<KitTls>, bytes: Vec<u8>) -> Result<(), String> {
        if bytes.len() > CHUNK_MAX {
            return Err(format!("send: more than {CHUNK_MAX} bytes at once"));
        }
        let timeout = self.deadline.clamp(Duration::MAX);
        let tls = self.table.get_mut(&stream).map_err(|e| e.to_string())?;
        let write = async {
            tls.stream.write_all(&bytes).await?;
            tls.stream.flush().await
        };
        tokio::time::timeout(timeout, write)
            .await
            .map_err(|_| format!("send: no room within {} ms", timeout.as_millis()))?
            .map_err(|e| format!("send: {e}"))
    }

    async fn recv(
        &mut self,
        stream: Resource<KitTls>,
        max: u32,
        timeout_ms: u32,
    ) -> Result<Vec<u8>, String> {
        let max = usize::try_from(max)
            .unwrap_or(CHUNK_MAX)
            .clamp(1, CHUNK_MAX);
        let timeout = self
            .deadline
            .clamp(Duration::from_millis(timeout_ms.into()));
        let tls = self.table.get_mut(&stream).map_err(|e| e.to_string())?;
        let mut buffer = vec![0; max];
        let read = tokio::time::timeout(timeout, tls.stream.read(&mut buffer))
            .await
            .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
            .map_err(|e| super::tls_failure::find(&e).unwrap_or_else(|| format!("recv: {e}")))?;
        buffer.truncate(read);
        Ok(buffer)
    }

    fn certificate(
        &mut self,
        stream: Resource<KitTls>,
    ) -> wasmtime::Result<Option<PeerCertificate>> {
        Ok(self.table.get(&stream)?.certificate.clone())
    }

    fn drop(&mut self, stream: Resource<KitTls>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        self.tls_streams = self.tls_streams.saturating_sub(1);
        Ok(())
    }
}
