//! The host's own HTTP client behind `host.http-get` (a plain GET) and
//! `host.http-send` (any request, over TLS as the app's `[tls]` trusts
//! servers, reporting the server's certificate).
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
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::bindings::{HttpResponse, PeerCertificate};
use super::kit_text::tame;
use super::tls_trust::TlsTrust;

/// Why a request produced no response.
pub type GetError = String;

/// Response headers handed to a kit, at most.
pub const ANSWER_HEADERS_MAX: usize = 64;

/// Bytes of one response header's value handed to a kit, at most.
pub const ANSWER_HEADER_VALUE_MAX: usize = 1024;

/// Parses `url` as `http://host[:port]/path`.
pub fn parse_url(url: &str) -> Result<http::Uri, GetError> {
    let uri = parse_target(url)?;
    match uri.scheme_str() {
        Some("https") => Err(format!(
            "{url}: host.http-get is plain HTTP; use wasi:http for https"
        )),
        _ => Ok(uri),
    }
}

/// Parses `url` as `http://host[:port]/path` or `https://...`.
pub fn parse_target(url: &str) -> Result<http::Uri, GetError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(format!(
            "invalid URL {url:?}: expected http://host[:port]/path or https://..."
        )),
    }
}

/// One request the host sends for a kit.
#[derive(Debug)]
pub struct Outgoing {
    /// GET, POST, ...
    pub method: http::Method,
    /// The absolute `http://` or `https://` URI.
    pub uri: http::Uri,
    /// The kit's headers; a `Host` among them stands for the URI's.
    pub headers: http::HeaderMap,
    /// The body, empty for none.
    pub body: Bytes,
}

/// What came back of a request.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The first [`ANSWER_HEADERS_MAX`] headers, values cut at
    /// [`ANSWER_HEADER_VALUE_MAX`].
    pub headers: Vec<(String, String)>,
    /// The start of the body.
    pub body: Vec<u8>,
    /// Whether the body went on beyond what was kept.
    pub truncated: bool,
    /// From the start of connecting until the body was read.
    pub elapsed: Duration,
    /// The server's certificate, for `https`.
    pub certificate: Option<PeerCertificate>,
}

/// GETs `uri` from the first of `to` that accepts, with
/// `Connection: close`, keeping at most `max_body` bytes.
pub async fn get(
    uri: &http::Uri,
    to: &[SocketAddr],
    timeout: Duration,
    max_body: usize,
) -> Result<HttpResponse, GetError> {
    let request = Outgoing {
        method: http::Method::GET,
        uri: uri.clone(),
        headers: http::HeaderMap::new(),
        body: Bytes::new(),
    };
    let answer = send(request, to, &TlsTrust::default(), timeout, max_body).await?;
    Ok(HttpResponse {
        status: answer.status,
        body: answer.body,
        truncated: answer.truncated,
    })
}

/// Sends `request` to the first of `to` that accepts, over TLS as `tls`
/// trusts servers for `https`, with `Connection: close`, keeping at most
/// `max_body` bytes of the body; all of it within `timeout`.
pub async fn send(
    request: Outgoing,
    to: &[SocketAddr],
    tls: &TlsTrust,
    timeout: Duration,
    max_body: usize,
) -> Result<Answer, GetError> {
    tokio::time::timeout(timeout, connect_and_send(request, to, tls, max_body))
        .await
        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
}

async fn connect_and_send(
    request: Outgoing,
    to: &[SocketAddr],
    tls: &TlsTrust,
    max_body: usize,
) -> Result<Answer, GetError> {
    let started = Instant::now();
    if request.uri.scheme() != Some(&http::uri::Scheme::HTTPS) {
        let stream = connect(to).await?;
        let request = hyper_request(request, None)?;
        return exchange(Closing(stream), request, max_body, started, None).await;
    }
    let (stream, certificate) = connect_tls(to, &request.uri, tls).await?;
    let renamed = tls.host_header(request.uri.port_u16());
    let request = hyper_request(request, renamed)?;
    exchange(Closing(stream), request, max_body, started, certificate).await
}

/// A TCP connection to the first of `to` that accepts. The kit names the
/// address in its own reason; the error says only what failed.
async fn connect(to: &[SocketAddr]) -> Result<TcpStream, GetError> {
    TcpStream::connect(to)
        .await
        .map_err(|e| format!("connect: {}", io_words(&e)))
}

/// [`connect`], then TLS for `uri`'s host as `tls` trusts servers, and the
/// certificate the server showed: for `http-send` and `tls-connect` alike.
pub(super) async fn connect_tls(
    to: &[SocketAddr],
    uri: &http::Uri,
    tls: &TlsTrust,
) -> Result<(TlsStream<TcpStream>, Option<PeerCertificate>), GetError> {
    let stream = tls
        .handshake(connect(to).await?, uri)
        .await
        .map_err(|failure| failure.to_string())?;
    let certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|der| super::peer_certificate::describe(der));
    Ok((stream, certificate))
}

/// What a failed connect means, in the admin's words ("connection
/// refused"), without the OS's error number.
fn io_words(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::TimedOut => "timed out".to_owned(),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            "unreachable".to_owned()
        }
        _ => error.to_string(),
    }
}

/// The request as hyper sends it to a server that is not a proxy: the path
/// in the request line, the authority in `Host` (the kit's own `Host`, else
/// `[tls] server_name`'s, else the URI's), `Connection: close`.
fn hyper_request(
    request: Outgoing,
    host: Option<String>,
) -> Result<http::Request<Full<Bytes>>, GetError> {
    let authority = request.uri.authority().map_or("", |a| a.as_str());
    let host = host.unwrap_or_else(|| authority.to_owned());
    let mut built = http::Request::builder()
        .method(request.method)
        .uri(request.uri.path_and_query().map_or("/", |p| p.as_str()))
        .body(Full::new(request.body))
        .map_err(|e| format!("request: {e}"))?;
    let headers = built.headers_mut();
    headers.insert(
        http::header::HOST,
        http::HeaderValue::try_from(host).map_err(|e| format!("request: {e}"))?,
    );
    headers.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("medic"),
    );
    for (name, value) in &request.headers {
        headers.insert(name, value.clone());
    }
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    Ok(built)
}

/// HTTP/1.1 over `stream`, driven in this task: the request, the head and
/// at most `max_body` bytes of the body.
async fn exchange<S>(
    stream: S,
    request: http::Request<Full<Bytes>>,
    max_body: usize,
    started: Instant,
    certificate: Option<PeerCertificate>,
) -> Result<Answer, GetError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    // A TLS failure after the handshake (a client certificate the server
    // wanted, under TLS 1.3) is said in words too.
    let fail = |what: &str, e: &hyper::Error| {
        super::tls_failure::find(e).unwrap_or_else(|| format!("{what}: {e}"))
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail("handshake", &e))?;
    let response = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| fail("send", &e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .take(ANSWER_HEADERS_MAX)
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes());
                (
                    name.as_str().to_owned(),
                    tame(&value, ANSWER_HEADER_VALUE_MAX),
                )
            })
            .collect();
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
        Ok(Answer {
            status,
            headers,
            body: kept,
            truncated,
            elapsed: started.elapsed(),
            certificate,
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
struct Closing<S>(S);

impl<S: AsyncRead + Unpin> AsyncRead for Closing<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Closing<S> {
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

    #[tokio::test]
    async fn a_refused_connection_is_said_in_words() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let uri = parse_url(&format!("http://127.0.0.1:{port}/")).unwrap();
        let to = [SocketAddr::from(([127, 0, 0, 1], port))];
        let refused = get(&uri, &to, Duration::from_secs(5), 1024).await;
        assert_eq!(refused.unwrap_err(), "connect: connection refused");
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
