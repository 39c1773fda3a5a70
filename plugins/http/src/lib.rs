//! Recovery kit `http`: the app is up while one GET answers as expected.
//!
//! The check is the SDK's `http::probe`: the GET goes through the host
//! (which enforces the app's `[grants] connect`), bounded by `timeout_ms`
//! and the call's deadline. A setting the kit cannot use is `unknown`; no
//! answer, or a wrong one, is `failed`.

use medic_kit::http;
use medic_kit::{Capability, Context, Health, Kit, KitInfo, export};

/// The kit; all state lives in the app's settings.
struct Http;

impl Kit for Http {
    fn describe() -> KitInfo {
        KitInfo {
            name: "http".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Checks that a GET of a URL answers with the expected status and body.".into(),
            settings: http::probe_settings(),
            wants: vec![Capability::Connect("host:port of url".into())],
        }
    }

    fn check(ctx: &Context) -> Health {
        medic_kit::verdict(http::probe(ctx).map(|_| Health::Healthy))
    }
}

export!(Http);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use medic_kit::http::{Error, Probe, Response};

    /// The check's answer for these settings, up to the GET itself.
    fn settings_of(ctx: &Context) -> Result<(), Health> {
        Probe::read(ctx).map(|_| ()).map_err(Health::from)
    }

    #[test]
    fn a_setting_the_kit_cannot_use_is_unknown() {
        medic_kit::testing::assert_unknown_for(
            &[
                &[],
                &[("url", "127.0.0.1:8080/healthz")],
                &[("url", "http://h/"), ("expect_status", "OK")],
                &[("url", "http://h/"), ("timeout_ms", "0")],
            ],
            settings_of,
        );
        assert_eq!(
            settings_of(&Context::with_settings("web", &[("url", "http://h/")])),
            Ok(())
        );
    }

    #[test]
    fn no_answer_or_a_wrong_one_is_failed() {
        let refused = Error::Host("connect: connection refused".into());
        assert!(matches!(
            refused.into_health("http://h/"),
            Health::Failed(_)
        ));
        let ctx = Context::with_settings("web", &[("url", "http://h/"), ("expect_body", "ok")]);
        let probe = Probe::read(&ctx).unwrap();
        let answer = |status, body: &str| {
            probe.judge(&Response {
                status,
                body: body.into(),
                truncated: false,
            })
        };
        assert_eq!(answer(200, "ok"), Ok(()));
        assert!(matches!(answer(503, "ok"), Err(Health::Failed(_))));
        assert!(matches!(answer(200, "maintenance"), Err(Health::Failed(_))));
    }

    #[test]
    fn timeout_ms_only_shortens_the_wait() {
        let ctx = Context::with_settings("web", &[("url", "http://h/"), ("timeout_ms", "300")]);
        assert_eq!(Probe::read(&ctx).unwrap().timeout_ms, 300);
        let ctx = Context::with_settings("web", &[("url", "http://h/")]);
        let whole = Probe::read(&ctx).unwrap().timeout_ms;
        assert!((4_000..=4_500).contains(&whole), "{whole}");
    }
}
