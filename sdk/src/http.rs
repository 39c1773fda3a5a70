//! HTTP for kits: [`send`], one request of any kind through the host's
//! `http-send`; [`get`], one GET (the host's `http-get` for `http://`,
//! `wasi:http/outgoing-handler` for `https://`); and [`probe`], the whole
//! check every web kit starts with.
//!
//! Enabled by the `http` feature. Kits that probe web endpoints all need the
//! same few dozen lines of resource juggling; this module keeps them in one
//! tested place. The host decides whether the request may go out (the app's
//! `[grants] connect` must list the URL's `host:port`); a denied request
//! comes back as [`Error::Request`] with `ErrorCode::HttpRequestDenied`.

use std::fmt;
use std::time::Duration;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingResponse, Method, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::StreamError;

use crate::Health;

mod probe;

pub use crate::bindings::medic::kit::types::{
    HttpAnswer as Answer, HttpAuth as Auth, HttpRequest as Request, PeerCertificate,
};
pub use probe::{HEADER_PREFIX, PROBE_MAX_BODY, PROBE_TIMEOUT_MS, Probe, probe, probe_settings};

/// The parts of a response a health check looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The start of the body, at most the `max_body` bytes asked for.
    pub body: Vec<u8>,
    /// Whether reading stopped at `max_body` before the end of the body was
    /// seen, so a missing substring may simply lie beyond what was read.
    pub truncated: bool,
}

/// Why a GET did not produce a [`Response`].
#[derive(Debug, Clone)]
pub enum Error {
    /// The URL is not `http://host[:port]/path` or `https://...`; the text
    /// says what is wrong.
    InvalidUrl(String),
    /// The request failed (denied, DNS, refused, timed out, ...) before a
    /// response arrived.
    Request(ErrorCode),
    /// The response arrived but reading its body failed; the text says how.
    Body(String),
    /// The host's `http-get` failed (denied, refused, timed out, ...).
    Host(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUrl(msg) => f.write_str(msg),
            Error::Request(code) => f.write_str(&worded(code)),
            Error::Body(msg) => write!(f, "reading body: {msg}"),
            Error::Host(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

/// What a wasi:http error code means, in the words of the admin's message
/// ("connection refused"), not the code's name. A host that knows more
/// (why a TLS handshake failed) says it in `internal-error`'s text.
fn worded(code: &ErrorCode) -> String {
    let said = match code {
        ErrorCode::InternalError(Some(reason)) => return reason.clone(),
        ErrorCode::ConnectionRefused => "connection refused",
        ErrorCode::ConnectionTimeout => "no connection within the timeout",
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            "no answer within the timeout"
        }
        ErrorCode::ConnectionTerminated => "the server closed the connection",
        ErrorCode::ConnectionLimitReached => "the server accepts no more connections",
        ErrorCode::DnsTimeout => "name lookup timed out",
        ErrorCode::DnsError(payload) => {
            return match &payload.rcode {
                Some(rcode) => format!("name lookup failed: {rcode}"),
                None => "name lookup failed".to_owned(),
            };
        }
        ErrorCode::DestinationNotFound => "no such destination",
        ErrorCode::DestinationUnavailable | ErrorCode::DestinationIpUnroutable => {
            "destination unreachable"
        }
        ErrorCode::HttpRequestDenied => "not granted: the host:port is not in [grants] connect",
        ErrorCode::TlsCertificateError => "the server's TLS certificate is not valid",
        ErrorCode::TlsProtocolError => "the TLS handshake failed",
        ErrorCode::HttpResponseIncomplete => "the response ended early",
        other => return format!("{other:?}"),
    };
    said.to_owned()
}

/// A URL split into what `wasi:http` wants separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Whether to use TLS.
    pub https: bool,
    /// `host` or `host:port`, as written in the URL.
    pub authority: String,
    /// The path and query, always starting with `/`.
    pub path_with_query: String,
}

impl Url {
    /// Splits an `http://` or `https://` URL; the fragment is dropped and
    /// user info is refused, since neither belongs in a health check.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let invalid = |why: &str| Error::InvalidUrl(format!("invalid URL {url:?}: {why}"));
        let (https, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err(invalid("must start with http:// or https://"));
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(invalid("no host"));
        }
        if authority.contains('@') {
            return Err(invalid("user info is not supported"));
        }
        let path_with_query = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        Ok(Self {
            https,
            authority: authority.to_string(),
            path_with_query,
        })
    }

    /// `host:port` with the scheme's default port filled in, the form a
    /// `[grants] connect` entry takes.
    pub fn host_port(&self) -> String {
        let has_port = match self.authority.rsplit_once(':') {
            // An IPv6 literal without a port ends in `]`.
            Some((_, port)) => !port.contains(']'),
            None => false,
        };
        if has_port {
            self.authority.clone()
        } else {
            let port = if self.https { 443 } else { 80 };
            format!("{}:{port}", self.authority)
        }
    }
}

/// Sends one `GET url` and reads at most `max_body` bytes of the response:
/// `http://` through the host's `http-get`, `https://` through wasi:http.
///
/// `timeout` bounds the exchange, so a stalled server cannot hold the check
/// until the host kills it.
pub fn get(url: &str, timeout: Duration, max_body: usize) -> Result<Response, Error> {
    if Url::parse(url)?.https {
        return get_wasi(url, timeout, max_body);
    }
    let millis = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let cap = u32::try_from(max_body).unwrap_or(u32::MAX);
    let response = crate::host::http_get(url, millis, cap).map_err(Error::Host)?;
    Ok(Response {
        status: response.status,
        body: response.body,
        truncated: response.truncated,
    })
}

/// [`get`] through `wasi:http` whatever the scheme, for kits that need the
/// standard interface (and for testing that the host guards it too).
///
/// `timeout` bounds connecting, the wait for the first response byte and
/// each wait between body bytes.
pub fn get_wasi(url: &str, timeout: Duration, max_body: usize) -> Result<Response, Error> {
    let url = Url::parse(url)?;
    let request = OutgoingRequest::new(Fields::new());
    let refused = |what: &str| Error::InvalidUrl(format!("the host refused the {what}"));
    request
        .set_method(&Method::Get)
        .map_err(|()| refused("method"))?;
    let scheme = if url.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| refused("scheme"))?;
    request
        .set_authority(Some(&url.authority))
        .map_err(|()| refused("authority"))?;
    request
        .set_path_with_query(Some(&url.path_with_query))
        .map_err(|()| refused("path"))?;

    let options = RequestOptions::new();
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    // A host may not support a timeout; the check's own deadline still holds.
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));

    let pending = outgoing_handler::handle(request, Some(options)).map_err(Error::Request)?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(Error::Request(code)),
        Some(Err(())) => return Err(Error::Body("response already taken".into())),
        None => return Err(Error::Body("response not ready after waiting".into())),
    };
    read_response(response, max_body)
}

/// Reads the status and up to `max_body` bytes of the body.
fn read_response(response: IncomingResponse, max_body: usize) -> Result<Response, Error> {
    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| Error::Body("body already taken".into()))?;
    let stream = body
        .stream()
        .map_err(|()| Error::Body("body stream already taken".into()))?;
    let mut bytes = Vec::new();
    let mut truncated = false;
    loop {
        let want = max_body - bytes.len();
        if want == 0 {
            truncated = true;
            break;
        }
        match stream.blocking_read(want as u64) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(Error::Body(e.to_debug_string()));
            }
        }
    }
    // The stream is a child of the body: drop it first.
    drop(stream);
    drop(body);
    Ok(Response {
        status,
        body: bytes,
        truncated,
    })
}

impl Error {
    /// The check's answer when a GET of `url` got no response: `unknown`
    /// for a URL the kit cannot use (a setting to fix), `failed` for
    /// everything on the way to the server (refused, timed out, reset...),
    /// which a restart of the app may cure.
    pub fn into_health(self, url: &str) -> Health {
        match self {
            Error::InvalidUrl(reason) => Health::Unknown(reason),
            other => Health::Failed(format!("GET {url}: {other}")),
        }
    }
}

/// Sends one request through the host's `http-send` (medic:kit 0.1.3):
/// any method, headers and body, `auth` from the app's `[secrets]`, HTTPS
/// as the app's `[tls]` trusts servers. The answer carries the headers, the
/// time it took and, for HTTPS, the server's certificate.
pub fn send(request: &Request) -> Result<Answer, Error> {
    crate::host::http_send(request).map_err(Error::Host)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = Url::parse("http://127.0.0.1:8080/health?x=1#frag").unwrap();
        assert!(!u.https);
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!(u.path_with_query, "/health?x=1");
        assert_eq!(u.host_port(), "127.0.0.1:8080");

        let u = Url::parse("https://example.org").unwrap();
        assert!(u.https);
        assert_eq!(u.path_with_query, "/");
        assert_eq!(u.host_port(), "example.org:443");

        let u = Url::parse("http://example.org?q").unwrap();
        assert_eq!(u.path_with_query, "/?q");
        assert_eq!(u.host_port(), "example.org:80");

        assert_eq!(Url::parse("http://[::1]/").unwrap().host_port(), "[::1]:80");
        assert_eq!(
            Url::parse("http://[::1]:9/").unwrap().host_port(),
            "[::1]:9"
        );
    }

    #[test]
    fn no_response_is_failed_but_a_bad_url_is_unknown() {
        let refused = Error::Host("connection refused".into());
        assert_eq!(
            refused.into_health("http://h/"),
            Health::Failed("GET http://h/: connection refused".into())
        );
        let timed_out = Error::Request(ErrorCode::ConnectionTimeout);
        assert_eq!(
            timed_out.into_health("https://h/"),
            Health::Failed("GET https://h/: no connection within the timeout".into())
        );
        let untrusted = Error::Request(ErrorCode::InternalError(Some(
            "certificate signed by an unknown issuer".into(),
        )));
        assert_eq!(
            untrusted.to_string(),
            "certificate signed by an unknown issuer"
        );
        let bad = Url::parse("ftp://h/").unwrap_err();
        assert!(matches!(bad.into_health("ftp://h/"), Health::Unknown(_)));
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in ["ftp://x/", "http:///", "http://u@h/", "localhost:80"] {
            assert!(
                matches!(Url::parse(bad), Err(Error::InvalidUrl(_))),
                "{bad}"
            );
        }
    }
}
