//! Turning transport failures into `HypervisorError`s of the right kind.
//!
//! The kind decides whether the caller tries again, so a refused connection
//! (vCenter restarting) must stay apart from a certificate that will never
//! verify.

use std::error::Error as _;

use crate::hypervisor::{ErrorKind, HypervisorError};

/// Classifies a failed HTTP exchange; `what` names the request for the message.
pub(super) fn transport_error(err: &reqwest::Error, what: &str) -> HypervisorError {
    let detail = error_chain(err);
    let kind = if err.is_timeout() || has_io_kind(err, std::io::ErrorKind::TimedOut) {
        ErrorKind::Timeout
    } else if has_tls_error(err) {
        ErrorKind::Tls
    } else if err.is_builder() {
        ErrorKind::Protocol
    } else if err.is_connect() || err.is_request() {
        ErrorKind::Unreachable
    } else if err.is_body() || err.is_decode() {
        ErrorKind::Protocol
    } else {
        ErrorKind::Unreachable
    };
    let summary = match kind {
        ErrorKind::Timeout => "timed out",
        ErrorKind::Tls => "TLS failure",
        ErrorKind::Unreachable => "cannot reach the server",
        _ => "failed",
    };
    HypervisorError::new(kind, format!("{what}: {summary}: {detail}"))
}

/// Classifies an HTTP status that carried no answer we could read.
pub(super) fn status_error(status: reqwest::StatusCode, what: &str, body: &str) -> HypervisorError {
    let kind = if status.is_server_error() {
        ErrorKind::ServerError
    } else if status == reqwest::StatusCode::UNAUTHORIZED {
        ErrorKind::BadCredentials
    } else {
        ErrorKind::Protocol
    };
    HypervisorError::new(
        kind,
        format!("{what}: unexpected answer HTTP {status}: {}", snippet(body)),
    )
}

/// The start of a response body, enough to recognise it in a log.
pub(super) fn snippet(body: &str) -> String {
    const MAX: usize = 300;
    let body = body.trim();
    match body.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &body[..end]),
        None => body.to_string(),
    }
}

/// The error and all its causes, joined by ": " (reqwest's own message is terse).
fn error_chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether a rustls error is among the causes.
fn has_tls_error(err: &reqwest::Error) -> bool {
    err.source().is_some_and(is_or_wraps_tls)
}

/// Whether `err` or one of its causes is a rustls error. `io::Error`s (which
/// hyper nests) hide the error they wrap from `source()`, so their inner
/// error is looked into as well.
fn is_or_wraps_tls(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(cause) = source {
        if cause.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && is_or_wraps_tls(inner)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Whether an `io::Error` of the given kind is among the causes.
fn has_io_kind(err: &reqwest::Error, kind: std::io::ErrorKind) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == kind)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_cuts_long_bodies() {
        let long = "x".repeat(1000);
        assert!(snippet(&long).chars().count() <= 301);
        assert_eq!(snippet("  short \n"), "short");
    }

    #[test]
    fn statuses_map_to_kinds() {
        use reqwest::StatusCode;
        assert_eq!(
            status_error(StatusCode::SERVICE_UNAVAILABLE, "x", "").kind,
            ErrorKind::ServerError
        );
        assert_eq!(
            status_error(StatusCode::UNAUTHORIZED, "x", "").kind,
            ErrorKind::BadCredentials
        );
        assert_eq!(
            status_error(StatusCode::IM_A_TEAPOT, "x", "").kind,
            ErrorKind::Protocol
        );
    }
}
