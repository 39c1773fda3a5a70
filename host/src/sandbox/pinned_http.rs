//! Sends a kit's wasi-http request over a connection medic opens to
//! addresses it already knows.
//!
//! wasmtime-wasi-http's default sender resolves the request's authority
//! again for every request, so a DNS answer that changed since the app
//! loaded (rebinding) would move a granted name to another address, and a
//! `user@host` authority would go to the resolver as written. This sender
//! resolves nothing: it connects to the addresses the grant resolved to at
//! load, speaks TLS under the request's host name for `https` (the same
//! rustls and webpki roots as the default sender), and lets hyper do the
//! rest, with the request's three timeouts.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{Either, select};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Sleep, timeout};

use super::tls_trust::{TlsFailure, TlsTrust};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// What a sent request gives wasi-http: the response, and the future that
/// drives the rest of the connection (the body) to its end.
pub type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
);

/// How long each stage of one request may wait.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// For the TCP connection, then again for TLS and the HTTP handshake.
    pub connect: Duration,
    /// From sending the request to the response's head.
    pub first_byte: Duration,
    /// Between two frames of the response body.
    pub between_bytes: Duration,
}

/// Sends `request` to the first of `to` that accepts a connection, over
/// TLS as the app's `tls` trusts servers for `https`.
pub async fn send(
    mut request: http::Request<WasiBody>,
    to: Vec<SocketAddr>,
    waits: Waits,
    tls: &TlsTrust,
) -> Result<Sent, HttpError> {
    let tcp = timeout(waits.connect, tokio::net::TcpStream::connect(&to[..]))
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Connect)?;
    if request.uri().scheme() != Some(&http::uri::Scheme::HTTPS) {
        return exchange(tcp, request, waits).await;
    }
    if let Some(value) = tls.host_header(request.uri().port_u16()) {
        let value =
            http::HeaderValue::try_from(value).map_err(|_| HttpError::HttpRequestUriInvalid)?;
        request.headers_mut().insert(http::header::HOST, value);
    }
    let stream = timeout(waits.connect, tls.handshake(tcp, request.uri()))
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(|failure| match failure {
            TlsFailure::Unusable(why) => HttpError::InternalError(Some(why)),
            TlsFailure::Handshake(e) => HttpError::Tls(e),
        })?;
    exchange(stream, request, waits).await
}

/// HTTP/1.1 over `stream`: the handshake, the request, the response head;
/// the body is read later, through the returned connection future.
async fn exchange<S>(
    stream: S,
    mut request: http::Request<WasiBody>,
    waits: Waits,
) -> Result<Sent, HttpError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = timeout(
        waits.connect,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;
    // To a server that is not a proxy the request line carries only the
    // path; the authority went into the `Host` header.
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let head = Box::pin(timeout(waits.first_byte, sender.send_request(request)));
    // Drive the connection while waiting for the head; what is left of it
    // goes to wasi-http, which drives it while the kit reads the body.
    let (head, rest): (_, Box<dyn Future<Output = Result<(), HttpError>> + Send>) =
        match select(head, Box::pin(connection)).await {
            Either::Left((head, connection)) => (
                head,
                Box::new(async move { connection.await.map_err(HttpError::from) }),
            ),
            Either::Right((closed, head)) => {
                closed?;
                (head.await, Box::new(std::future::ready(Ok(()))))
            }
        };
    let response = head.map_err(|_| HttpError::ConnectionReadTimeout)??;
    let paced = response.map(|body| Paced::new(body, waits.between_bytes).boxed_unsync());
    Ok((paced, rest))
}

/// A response body whose every wait for the next frame is bounded.
struct Paced {
    body: Incoming,
    gap: Duration,
    timer: Pin<Box<Sleep>>,
}

impl Paced {
    fn new(body: Incoming, gap: Duration) -> Self {
        Self {
            body,
            gap,
            timer: Box::pin(tokio::time::sleep(gap)),
        }
    }
}

impl Body for Paced {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.timer = Box::pin(tokio::time::sleep(this.gap));
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) if e.is_timeout() => {
                Poll::Ready(Some(Err(HttpError::HttpResponseTimeout)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on 127.0.0.1 that answers every request 200, with the
    /// request's `Host` header as the body; its port.
    pub(in crate::sandbox) async fn host_echo() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let host = head
                    .lines()
                    .find_map(|line| line.strip_prefix("host: "))
                    .unwrap_or_default()
                    .to_owned();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{host}",
                    host.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            }
        });
        port
    }

    /// An empty GET of `url` as wasi-http hands it over (`Host` set).
    pub(in crate::sandbox) fn get_request(url: &str) -> http::Request<WasiBody> {
        let uri: http::Uri = url.parse().unwrap();
        let host = uri.authority().unwrap().to_string();
        http::Request::get(uri)
            .header(http::header::HOST, host)
            .body(
                http_body_util::Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap()
    }

    /// Status and body of what a sender gave, driving its connection.
    pub(in crate::sandbox) async fn read(sent: Sent) -> (u16, String) {
        let (response, connection) = sent;
        let connection = tokio::spawn(Pin::from(connection));
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        connection.await.unwrap().unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    const WAITS: Waits = Waits {
        connect: Duration::from_secs(5),
        first_byte: Duration::from_secs(5),
        between_bytes: Duration::from_secs(5),
    };

    fn localhost(port: u16) -> Vec<SocketAddr> {
        vec![SocketAddr::from(([127, 0, 0, 1], port))]
    }

    #[tokio::test]
    async fn a_name_goes_to_the_given_address_and_keeps_its_host_header() {
        let port = host_echo().await;
        // `app.test` resolves nowhere: only the address given can serve.
        let request = get_request(&format!("http://app.test:{port}/health"));
        let sent = send(request, localhost(port), WAITS, &TlsTrust::default())
            .await
            .unwrap();
        assert_eq!(read(sent).await, (200, format!("app.test:{port}")));
    }

    #[tokio::test]
    async fn https_to_a_name_asks_the_given_address_for_that_name() {
        // Not a TLS server: it keeps what the client says first (its
        // hello, which names the server it wants) and hangs up.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hello = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut hello = vec![0u8; 4096];
            let n = stream.read(&mut hello).await.unwrap();
            hello.truncate(n);
            hello
        });
        let request = get_request(&format!("https://app.test:{port}/"));
        let sent = send(request, localhost(port), WAITS, &TlsTrust::default()).await;
        assert!(matches!(sent, Err(HttpError::Tls(_))), "{:?}", sent.err());
        let hello = hello.await.unwrap();
        assert!(
            hello.windows(8).any(|w| w == b"app.test"),
            "the server name in the hello"
        );
    }
}
