//! Recovery kit `http`: the app is up while one GET answers as expected.
//!
//! The check is the SDK's `http::probe`: the GET goes through the host
//! (which enforces the app's `[grants] connect`), bounded by `timeout_ms`.

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
        match http::probe(ctx) {
            Ok(_) => Health::Healthy,
            Err(reason) => Health::Failed(reason),
        }
    }
}

export!(Http);
