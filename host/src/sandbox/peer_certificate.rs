//! What an HTTPS check reports of the server's certificate: when it
//! expires and who issued it, so a kit can warn days before it does.

use super::bindings::PeerCertificate;

/// The expiry, issuer and subject of the DER certificate `der`; `None`
/// when it does not parse (the handshake verified it, unless `insecure`).
pub fn describe(der: &[u8]) -> Option<PeerCertificate> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(PeerCertificate {
        not_after: certificate.validity().not_after.timestamp(),
        issuer: certificate.issuer().to_string(),
        subject: certificate.subject().to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_tells_its_expiry_and_issuer() {
        let mut params = rcgen::CertificateParams::new(vec!["web.test".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 5, 17);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "web.test");
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let described = describe(certificate.der()).unwrap();
        assert_eq!(described.not_after, 1_936_742_400);
        assert_eq!(described.issuer, "CN=web.test");
        assert_eq!(described.subject, "CN=web.test");
        assert_eq!(describe(b"not a certificate"), None);
    }
}
