//! What a failed TLS handshake means, worded for the admin.
//!
//! wasmtime-wasi-http reports every TLS failure to the kit as the bare code
//! `tls-protocol-error`, which a kit can only print as such; the log line
//! underneath (`UnknownIssuer`) is not the kit's to see. This turns the
//! rustls error into the sentence the kit reports, in every kit language:
//! wasi:http's `internal-error` carries it.

use rustls::{AlertDescription, CertificateError};

/// The sentence for `error`, a failed TLS connection.
pub fn describe(error: &std::io::Error) -> String {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return format!("TLS: {error}");
    };
    match tls {
        rustls::Error::InvalidCertificate(certificate) => certificate_problem(certificate),
        rustls::Error::AlertReceived(alert) => alert_received(*alert),
        other => format!("TLS: {other}"),
    }
}

/// The sentence for the TLS failure somewhere in `error`'s chain of
/// sources (hyper's error around the I/O error around rustls's), if any.
pub fn find(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(error);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return Some(describe(io));
        }
        source = error.source();
    }
    None
}

fn certificate_problem(problem: &CertificateError) -> String {
    match problem {
        CertificateError::UnknownIssuer => {
            "certificate signed by an unknown issuer (its CA is not one medic trusts)".to_owned()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "hostname mismatch: the server's certificate is not valid for the name checked"
                .to_owned()
        }
        CertificateError::ExpiredContext { not_after, .. } => {
            format!("certificate expired on {}", date(*not_after))
        }
        CertificateError::Expired => "certificate expired".to_owned(),
        CertificateError::NotValidYetContext { not_before, .. } => {
            format!("certificate not valid before {}", date(*not_before))
        }
        CertificateError::NotValidYet => "certificate not valid yet".to_owned(),
        CertificateError::Revoked => "certificate revoked".to_owned(),
        CertificateError::BadSignature => "certificate with a bad signature".to_owned(),
        other => format!("invalid certificate: {other:?}"),
    }
}

fn alert_received(alert: AlertDescription) -> String {
    match alert {
        AlertDescription::CertificateRequired => {
            "the server requires a client certificate".to_owned()
        }
        AlertDescription::HandshakeFailure => "the server refused the TLS handshake".to_owned(),
        other => format!("the server ended the TLS handshake ({other:?})"),
    }
}

/// `2026-11-30`.
fn date(at: rustls::pki_types::UnixTime) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at.as_secs());
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .chars()
        .take(10)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_io(error: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, error)
    }

    #[test]
    fn certificate_problems_are_worded_for_the_admin() {
        let said = |problem| describe(&as_io(rustls::Error::InvalidCertificate(problem)));
        assert!(
            said(CertificateError::UnknownIssuer)
                .starts_with("certificate signed by an unknown issuer")
        );
        assert!(said(CertificateError::NotValidForName).starts_with("hostname mismatch"));
        let expired = CertificateError::ExpiredContext {
            time: rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                1_800_000_000,
            )),
            not_after: rustls::pki_types::UnixTime::since_unix_epoch(
                std::time::Duration::from_secs(1_700_000_000),
            ),
        };
        assert_eq!(said(expired), "certificate expired on 2023-11-14");
        let required = describe(&as_io(rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired,
        )));
        assert_eq!(required, "the server requires a client certificate");
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert_eq!(describe(&plain), "TLS: reset by peer");
    }
}
