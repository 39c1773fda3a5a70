//! Recovery kit `http`: the app is up while one GET answers as expected.
//!
//! The request goes through the host's `wasi:http` (which enforces the
//! app's `[grants] connect`), with every wait bounded by `timeout_ms`.

use std::time::Duration;

use medic_kit::http;
use medic_kit::{Capability, Context, Health, Kit, KitInfo, SettingDoc, export};

/// How much of the body is read to look for `expect_body`.
const MAX_BODY: usize = 64 * 1024;

/// The kit; all state lives in the app's settings.
struct Http;

impl Kit for Http {
    fn describe() -> KitInfo {
        KitInfo {
            name: "http".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Checks that a GET of a URL answers with the expected status and body.".into(),
            settings: vec![
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
                SettingDoc::with_default(
                    "timeout_ms",
                    "2000",
                    "Longest wait for the whole GET, in milliseconds; keep it below \
                     the app's `timeout` so a hung server is `failed`, not a kit fault.",
                ),
            ],
            wants: vec![Capability::Connect("host:port of url".into())],
        }
    }

    fn check(ctx: &Context) -> Health {
        match probe(ctx) {
            Ok(()) => Health::Healthy,
            Err(reason) => Health::Failed(reason),
        }
    }
}

/// Does the GET; the error is the reason the app is failed.
fn probe(ctx: &Context) -> Result<(), String> {
    let url = ctx.require("url")?;
    let expect_status = ctx.parse_or("expect_status", 200u16)?;
    let expect_body = ctx.setting("expect_body");
    let timeout_ms = match ctx.parse_or("timeout_ms", 2000u64)? {
        0 => return Err("setting `timeout_ms` must be above 0".into()),
        ms => ms,
    };

    let response = http::get(url, Duration::from_millis(timeout_ms), MAX_BODY)
        .map_err(|e| format!("GET {url}: {e}"))?;
    if response.status != expect_status {
        return Err(format!(
            "status {}, expected {expect_status}",
            response.status
        ));
    }
    if let Some(needle) = expect_body {
        let body = String::from_utf8_lossy(&response.body);
        if !body.contains(needle) {
            let within = if response.truncated {
                " (in its first 64 KiB)"
            } else {
                ""
            };
            return Err(format!("body lacks {needle:?}{within}"));
        }
    }
    Ok(())
}

export!(Http);
