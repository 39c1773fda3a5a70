//! One blocking HTTP GET: through the host's own `http-get` for `http://`
//! (one call, the cheapest check there is) and through
//! `wasi:http/outgoing-handler` for `https://`.
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

use crate::{CannotJudge, Context, Health, SettingDoc};

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

/// How much of the body [`probe`] reads to look for `expect_body`.
pub const PROBE_MAX_BODY: usize = 64 * 1024;

/// How long [`probe`] waits when neither `timeout_ms` nor the call's
/// deadline says (a host before 0.1.2).
pub const PROBE_TIMEOUT_MS: u32 = 2000;

/// The settings [`probe`] reads, documented for a kit's `describe`: `url`,
/// `expect_status`, `expect_body` and `timeout_ms`.
pub fn probe_settings() -> Vec<SettingDoc> {
    vec![
        SettingDoc::required(
            "url",
            "The URL to GET, `http://host:port/path` (or https); its `host:port` \
             must be in `[grants] connect`.",
        ),
        SettingDoc::with_default(
            "expect_status",
            "200",
            "The HTTP status the answer must have.",
        ),
        SettingDoc::optional(
            "expect_body",
            "Text the first 64 KiB of the body must contain.",
        ),
        SettingDoc::optional(
            "timeout_ms",
            "Longest wait for the whole GET, in milliseconds. The GET always ends \
             shortly before the app's `timeout` (a tenth of it, 20 to 500 ms, before), \
             so a hung server is `failed`, not a kit fault; set this only to give up \
             sooner. Default: all of that time (2000 on hosts before medic:kit 0.1.2).",
        ),
    ]
}

/// What [`probe`] asks of the answer, read from the settings
/// [`probe_settings`] documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe<'a> {
    /// The URL to GET.
    pub url: &'a str,
    /// The status the answer must have.
    pub expect_status: u16,
    /// Text the start of the body must contain, if any.
    pub expect_body: Option<&'a str>,
    /// The bound of the whole GET, already capped by the call's deadline.
    pub timeout_ms: u32,
}

impl<'a> Probe<'a> {
    /// Reads the settings; a missing or bad one cannot be judged.
    pub fn read(ctx: &'a Context) -> Result<Self, CannotJudge> {
        let url = ctx.require("url")?;
        Url::parse(url).map_err(|e| CannotJudge::new(format!("setting `url`: {e}")))?;
        Ok(Self {
            url,
            expect_status: ctx.parse_or("expect_status", 200u16)?,
            expect_body: ctx.setting("expect_body"),
            timeout_ms: ctx.timeout_ms_setting("timeout_ms", PROBE_TIMEOUT_MS)?,
        })
    }

    /// Whether `response` is the expected one; a wrong status or a missing
    /// text is `failed`, since a restart may well bring the right page back.
    pub fn judge(&self, response: &Response) -> Result<(), Health> {
        if response.status != self.expect_status {
            return Err(Health::Failed(format!(
                "status {}, expected {}",
                response.status, self.expect_status
            )));
        }
        let Some(needle) = self.expect_body else {
            return Ok(());
        };
        if String::from_utf8_lossy(&response.body).contains(needle) {
            return Ok(());
        }
        let within = if response.truncated {
            " (in its first 64 KiB)"
        } else {
            ""
        };
        Err(Health::Failed(format!("body lacks {needle:?}{within}")))
    }
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

/// The HTTP check every web kit starts with: a GET of the setting `url`
/// that must answer `expect_status` with `expect_body` in the first 64 KiB,
/// all within `timeout_ms` and the call's deadline. `Err` is the check's
/// answer: `unknown` for a bad setting, `failed` when the app does not
/// answer as expected.
pub fn probe(ctx: &Context) -> Result<Response, Health> {
    let probe = Probe::read(ctx)?;
    let timeout = Duration::from_millis(probe.timeout_ms.into());
    let response = get(probe.url, timeout, PROBE_MAX_BODY).map_err(|e| e.into_health(probe.url))?;
    probe.judge(&response)?;
    Ok(response)
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

    fn response(status: u16, body: &str, truncated: bool) -> Response {
        Response {
            status,
            body: body.as_bytes().to_vec(),
            truncated,
        }
    }

    #[test]
    fn bad_probe_settings_cannot_be_judged() {
        let read = |pairs: &[(&str, &str)]| {
            let ctx = Context::with_settings("web", pairs);
            Probe::read(&ctx).map(|_| ()).map_err(Health::from)
        };
        let unknown = |reason: &str| Err(Health::Unknown(reason.into()));
        assert_eq!(read(&[]), unknown("missing required setting `url`"));
        assert_eq!(
            read(&[("url", "localhost:80")]),
            unknown(
                "setting `url`: invalid URL \"localhost:80\": must start with http:// or https://"
            )
        );
        let bad_status = read(&[("url", "http://h/"), ("expect_status", "ok")]);
        assert!(
            matches!(bad_status, Err(Health::Unknown(_))),
            "{bad_status:?}"
        );
        assert_eq!(
            read(&[("url", "http://h/"), ("timeout_ms", "0")]),
            unknown("setting `timeout_ms` must be above 0")
        );
        assert_eq!(read(&[("url", "http://h/")]), Ok(()));
    }

    #[test]
    fn probe_timeout_is_capped_by_the_deadline() {
        let ctx = Context::with_settings("web", &[("url", "http://h/"), ("timeout_ms", "9000")]);
        let probe = Probe::read(&ctx).unwrap();
        assert!((4_000..=4_500).contains(&probe.timeout_ms), "{probe:?}");
        let mut old = Context::with_settings("web", &[("url", "http://h/")]);
        old.deadline_ms = crate::DEADLINE_NOT_TOLD;
        assert_eq!(Probe::read(&old).unwrap().timeout_ms, PROBE_TIMEOUT_MS);
    }

    #[test]
    fn a_wrong_answer_is_failed() {
        let ctx = Context::with_settings(
            "web",
            &[
                ("url", "http://h/"),
                ("expect_status", "204"),
                ("expect_body", "ok"),
            ],
        );
        let probe = Probe::read(&ctx).unwrap();
        assert_eq!(probe.judge(&response(204, "all ok", false)), Ok(()));
        assert_eq!(
            probe.judge(&response(500, "ok", false)),
            Err(Health::Failed("status 500, expected 204".into()))
        );
        assert_eq!(
            probe.judge(&response(204, "nope", true)),
            Err(Health::Failed(
                "body lacks \"ok\" (in its first 64 KiB)".into()
            ))
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
