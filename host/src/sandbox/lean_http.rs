//! The host's own plain-HTTP GET behind `host.http-get`.
//!
//! A health check needs one request and the start of one response. Done by
//! the host in a single call it costs a connection and a parse; through
//! wasi:http the same GET costs a dozen resources, polls and spawned tasks
//! (several times the CPU, see docs/benchmarks.md). hyper does the HTTP;
//! the connection is driven in the caller's task, nothing is spawned.
//!
//! Nothing is resolved here: the caller says which addresses to connect to
//! (those the app's `connect` grant resolved to when it loaded).
//!
//! The connection is closed once the answer is read, without hyper's
//! half-close (`shutdown`) before it: the request says `Connection: close`,
//! so the server has sent all it will, and the system call cost about a
//! tenth of a check. A reset instead of the close (zero linger, as HAProxy
//! ends its checks) was measured too, and cost more CPU, not less.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::bindings::HttpResponse;

/// Why a GET produced no response.
pub type GetError = String;

/// Parses `url` as `http://host[:port]/path`.
pub fn parse_url(url: &str) -> Result<http::Uri, GetError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => Ok(uri),
        Some("https") => Err(format!(
            "{url}: host.http-get is plain HTTP; use wasi:http for https"
        )),
        _ => Err(format!(
            "invalid URL {url:?}: expected http://host[:port]/path"
        )),
    }
}

/// GETs `uri` from the first of `to` that accepts, with
/// `Connection: close`, keeping at most `max_body` bytes.
pub async fn get(
    uri: &http::Uri,
    to: &[SocketAddr],
    timeout: Duration,
    max_body: usize,
) -> Result<HttpResponse, GetError> {
    tokio::time::timeout(timeout, exchange(uri, to, max_body))
        .await
        .map_err(|_| format!("no complete response within {} ms", timeout.as_millis()))?
}

async fn exchange(
    uri: &http::Uri,
    to: &[SocketAddr],
    max_body: usize,
) -> Result<HttpResponse, GetError> {
    // The kit names the URL in its own reason; errors say only what failed.
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    let stream = TcpStream::connect(to)
        .await
        .map_err(|e| fail("connect", &e))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(Closing(stream)))
            .await
            .map_err(|e| fail("handshake", &e))?;
    let authority = uri.authority().map_or("", |a| a.as_str());
    let request = http::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, authority)
        .header(http::header::CONNECTION, "close")
        .header(http::header::USER_AGENT, "medic")
        .body(Empty::new())
        .map_err(|e| fail("request", &e))?;
    let response = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| fail("send", &e))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut kept = Vec::new();
        let mut truncated = false;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| fail("body", &e))?;
            if let Some(data) = frame.data_ref() {
                let room = max_body.saturating_sub(kept.len());
                kept.extend_from_slice(&data[..data.len().min(room)]);
                if data.len() > room {
                    truncated = true;
                    break;
                }
            }
        }
        Ok(HttpResponse {
            status,
            body: kept,
            truncated,
        })
    };
    // Drive the connection and the exchange together in this task.
    tokio::pin!(connection);
    tokio::pin!(response);
    tokio::select! {
        biased;
        result = &mut response => result,
        done = &mut connection => match done {
            Err(e) => Err(fail("connection", &e)),
            Ok(()) => response.await,
        },
    }
}

/// A connection that is never shut down half-way: hyper's shutdown at the
/// end of a `Connection: close` exchange is skipped, and the drop closes it.
struct Closing(TcpStream);

impl AsyncRead for Closing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Closing {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::pinned_http::tests::host_echo;

    #[tokio::test]
    async fn a_name_is_fetched_from_the_given_address_with_its_host_header() {
        let port = host_echo().await;
        // `app.test` resolves nowhere: only the address given can serve.
        let uri = parse_url(&format!("http://app.test:{port}/health")).unwrap();
        let to = [SocketAddr::from(([127, 0, 0, 1], port))];
        let response = get(&uri, &to, Duration::from_secs(5), 1024).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, format!("app.test:{port}").as_bytes());
    }

    /// The server sees the connection closed once its answer is read, even
    /// when it would keep it open: no connection is left behind.
    #[tokio::test]
    async fn the_connection_is_closed_after_the_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 1024];
            let _ = stream.read(&mut head).await.unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            // Kept open: what ends it is the client.
            stream.read(&mut head).await
        });
        let uri = parse_url(&format!("http://127.0.0.1:{port}/")).unwrap();
        let to = [SocketAddr::from(([127, 0, 0, 1], port))];
        let response = get(&uri, &to, Duration::from_secs(5), 1024).await.unwrap();
        assert_eq!((response.status, &response.body[..]), (200, &b"ok"[..]));
        let ended = server.await.unwrap();
        assert_eq!(ended.unwrap(), 0, "the server reads the end of the stream");
    }

    /// A name that resolved to several addresses is tried on each in turn,
    /// as curl does: a server listening only on ::1 answers although
    /// 127.0.0.1 refuses (`localhost` on a host whose resolver gives both).
    #[tokio::test]
    async fn every_address_of_a_name_is_tried_in_turn() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 1024];
            let _ = stream.read(&mut head).await.unwrap();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        });
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "nothing listens on 127.0.0.1:{port}"
        );
        let uri = parse_url(&format!("http://localhost:{port}/")).unwrap();
        let to = [
            SocketAddr::from(([127, 0, 0, 1], port)),
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
        ];
        let response = get(&uri, &to, Duration::from_secs(5), 1024).await.unwrap();
        assert_eq!((response.status, &response.body[..]), (200, &b"ok"[..]));
    }
}
