//! Delivery by HTTP POST of the event's JSON.

use std::error::Error as _;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;

use super::error::DeliveryError;

/// A webhook receiver with its HTTP client, built once per sink so
/// connections are reused between events.
#[derive(Debug)]
pub(crate) struct Webhook {
    /// `Err` holds why the sink cannot work; every attempt reports it.
    client: Result<(reqwest::Client, reqwest::Url), String>,
    timeout: Duration,
}

impl Webhook {
    /// Checks the URL and builds the client; problems are reported by each
    /// attempt so the sink's failures are counted like any other.
    pub(crate) fn new(url: &str, timeout: Duration) -> Self {
        let client = parse(url).and_then(|url| {
            reqwest::Client::builder()
                .user_agent(concat!("medic/", env!("CARGO_PKG_VERSION")))
                // A redirected POST turns into a GET; report it instead.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map(|client| (client, url))
                .map_err(|e| format!("cannot build HTTP client: {}", describe(e)))
        });
        Self { client, timeout }
    }

    /// One POST of `body`.
    pub(crate) async fn attempt(&self, body: &Bytes) -> Result<(), DeliveryError> {
        let (client, url) = self
            .client
            .as_ref()
            .map_err(|e| DeliveryError::Setup(e.clone()))?;
        let response = client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .timeout(self.timeout)
            .body(body.clone())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    DeliveryError::Timeout(self.timeout)
                } else {
                    DeliveryError::Request(describe(e))
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(status.as_u16()))
        }
    }
}

fn parse(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid webhook URL: {e}"))?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(format!("webhook URL scheme {other:?} is not http or https")),
    }
}

/// The error and its causes on one line, without the URL.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The URL as it may be logged: scheme, host and port only. Userinfo and
/// query strings carry credentials, and so do the paths of many hosted
/// webhooks (Slack, Discord), so none of them are shown.
pub(crate) fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or("");
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if parsed.path() == "/" && parsed.query().is_none() {
                ""
            } else {
                "/…"
            };
            format!("{}://{host}{port}{rest}", parsed.scheme())
        }
        Err(_) => "<invalid URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_credentials_path_and_query() {
        assert_eq!(
            redact("https://user:secret@hooks.example.com:8443/services/T0/B0/XYZ?token=abc"),
            "https://hooks.example.com:8443/…"
        );
        assert_eq!(redact("http://127.0.0.1/"), "http://127.0.0.1");
        assert_eq!(redact("not a url"), "<invalid URL>");
    }

    #[test]
    fn bad_scheme_is_a_setup_error() {
        assert!(parse("ftp://example.com/").is_err());
        assert!(parse("https://example.com/hook").is_ok());
    }
}
