//! Recovery kit `http`: the app is up while one request answers as
//! expected, as `check_http` judges it.
//!
//! The check is the SDK's `http::probe`: the request goes through the
//! host's `http-send` (which enforces the app's `[grants] connect`, trusts
//! servers as its `[tls]` says and adds the `[secrets]` it names), bounded
//! by `timeout_ms` and the call's deadline. A setting the kit cannot use,
//! refused credentials or a server medic cannot trust are `unknown`; no
//! answer, a wrong one or too slow a one is `failed`; a slow answer or a
//! certificate close to its end is `degraded`.

use medic_kit::http;
use medic_kit::{Capability, Context, Health, Kit, KitInfo, export};

/// The kit; all state lives in the app's settings.
struct Http;

impl Kit for Http {
    fn describe() -> KitInfo {
        KitInfo {
            name: "http".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Checks that a request to a URL answers as expected: status, body, headers, speed, certificate.".into(),
            settings: http::probe_settings(),
            wants: vec![Capability::Connect("host:port of url".into())],
        }
    }

    fn check(ctx: &Context) -> Health {
        medic_kit::verdict(http::probe(ctx))
    }
}

export!(Http);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn describe_lists_every_setting_the_probe_reads() {
        let info = Http::describe();
        let keys: Vec<&str> = info.settings.iter().map(|s| s.key.as_str()).collect();
        for key in [
            "url",
            "method",
            "header_NAME",
            "body",
            "basic_auth",
            "bearer_token",
            "expect_status",
            "expect_body",
            "expect_regex",
            "expect_header",
            "warn_ms",
            "fail_ms",
            "cert_days_warn",
            "follow_redirects",
            "timeout_ms",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
    }
}
