//! Recovery kit `{{name}}`: the app is up while a GET of `url` answers 200
//! and, if `expect_body` is set, the body contains it. The GET is done by
//! medic (`host.http-get`), which checks the URL's `host:port` against the
//! app's `[grants] connect`.
//!
//! Built against the WIT in `wit/` (the version of the medic that wrote
//! this template) with `wit-bindgen`; `sh build.sh` makes `{{name}}.wasm`.

wit_bindgen::generate!({ path: "wit", world: "recovery-kit" });

use exports::medic::kit::kit::Guest;
use medic::kit::host;
use medic::kit::types::{Capability, Context, Health, KitInfo, NextStep, SettingDoc};

/// Longest wait for the GET; keep it below the app's `timeout` (default 5 s)
/// so that a hung server is `failed`, not a kit fault.
const TIMEOUT_MS: u32 = 2000;
/// How much of the body is searched for `expect_body`.
const MAX_BODY: u32 = 64 * 1024;

/// The kit; all state lives in the app's settings.
struct Kit;

impl Guest for Kit {
    fn describe() -> KitInfo {
        let doc = |key: &str, required, doc: &str| SettingDoc {
            key: key.into(),
            required,
            default: None,
            doc: doc.into(),
        };
        KitInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Checks that a GET of a URL answers 200 with the expected body.".into(),
            settings: vec![
                doc("url", true, "The URL to GET, `http://host:port/path`; its `host:port` must be in `[grants] connect`."),
                doc("expect_body", false, "Text the first 64 KiB of the body must contain."),
            ],
            wants: vec![Capability::Connect("host:port of url".into())],
        }
    }

    fn check(ctx: Context) -> Health {
        match probe(&ctx) {
            Ok(()) => Health::Healthy,
            Err(reason) => Health::Failed(reason),
        }
    }

    fn recover(_ctx: Context) -> Result<NextStep, String> {
        // No repair of its own: medic runs the app's `stop` and `start`.
        Ok(NextStep::RestartApp)
    }
}

/// The value of `key` in the app's `[settings]`.
fn setting<'a>(ctx: &'a Context, key: &str) -> Option<&'a str> {
    ctx.settings
        .iter()
        .rev()
        .find(|s| s.key == key)
        .map(|s| s.value.as_str())
}

/// Does the GET; `Err` is the reason the app is failed.
fn probe(ctx: &Context) -> Result<(), String> {
    let url = setting(ctx, "url").ok_or("missing required setting `url`")?;
    let response = host::http_get(url, TIMEOUT_MS, MAX_BODY).map_err(|e| format!("GET {url}: {e}"))?;
    if response.status != 200 {
        return Err(format!("status {}, expected 200", response.status));
    }
    if let Some(needle) = setting(ctx, "expect_body") {
        if !String::from_utf8_lossy(&response.body).contains(needle) {
            return Err(format!("body lacks {needle:?}"));
        }
    }
    Ok(())
}

export!(Kit);
