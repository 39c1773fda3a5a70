//! Recovery kit `{{name}}`: the app is up while a GET of `url` answers 200
//! and, if `expect_body` is set, the body contains it. The GET is done by
//! medic (`host.http-get`), which checks the URL's `host:port` against the
//! app's `[grants] connect`.
//!
//! Built against the WIT in `wit/` (the version of the medic that wrote
//! this template) with `wit-bindgen`; `sh build.sh` makes `{{name}}.wasm`.
//!
//! A failing check answers one question: could restarting the app fix
//! this? Yes (no answer, a wrong status or body): `failed`, and medic
//! recovers the app. No (a missing `url`): `unknown`, and medic alerts and
//! waits.

wit_bindgen::generate!({ path: "wit", world: "full-recovery-kit" });

use exports::medic::kit::{calls, inspect, kit};
use medic::kit::host;
use medic::kit::types::{
    CallContext, Capability, Context, Health, KitInfo, NextStep, Setting, SettingDoc, Verdict,
};

/// Longest wait for the GET when medic does not say how long the call may
/// take (hosts before medic:kit 0.1.2 call `kit.check`, without a deadline).
const TIMEOUT_MS: u32 = 2000;
/// How much of the body is searched for `expect_body`.
const MAX_BODY: u32 = 64 * 1024;

/// The kit; all state lives in the app's settings.
struct Kit;

/// What hosts of medic:kit 0.1.2 and later call: the check knows its
/// deadline and can answer `unknown`.
impl calls::Guest for Kit {
    fn check(ctx: CallContext) -> Verdict {
        let timeout_ms = wait_ms(ctx.deadline_ms);
        match probe(&ctx.settings, timeout_ms) {
            Ok(()) => Verdict::Healthy,
            Err(verdict) => verdict,
        }
    }

    fn recover(_ctx: CallContext) -> Result<NextStep, String> {
        // No repair of its own: medic runs the app's `stop` and `start`.
        Ok(NextStep::RestartApp)
    }

    fn env_wanted() -> Vec<String> {
        // It runs no programs, so it sets no environment.
        Vec::new()
    }
}

/// What older hosts call, and `describe` for all.
impl kit::Guest for Kit {
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
                doc(
                    "url",
                    true,
                    "The URL to GET, `http://host:port/path`; its `host:port` must be in `[grants] connect`.",
                ),
                doc(
                    "expect_body",
                    false,
                    "Text the first 64 KiB of the body must contain.",
                ),
            ],
            wants: vec![Capability::Connect("host:port of url".into())],
        }
    }

    fn check(ctx: Context) -> Health {
        let call = CallContext {
            app: ctx.app,
            settings: ctx.settings,
            attempt: ctx.attempt,
            deadline_ms: u32::MAX,
        };
        match <Kit as calls::Guest>::check(call) {
            Verdict::Healthy => Health::Healthy,
            Verdict::Degraded(why) => Health::Degraded(why),
            Verdict::Failed(why) => Health::Failed(why),
            // An older host has no `unknown`; `degraded` is never acted on.
            Verdict::Unknown(why) => Health::Degraded(format!("cannot judge: {why}")),
        }
    }

    fn recover(_ctx: Context) -> Result<NextStep, String> {
        Ok(NextStep::RestartApp)
    }
}

/// `medic kit inspect --app` asks this; the settings are always the same.
impl inspect::Guest for Kit {
    fn app_settings(_ctx: Context) -> Result<Vec<SettingDoc>, String> {
        Ok(<Kit as kit::Guest>::describe().settings)
    }
}

/// How long the GET may wait, asked at the start of the call: until a
/// margin before its deadline (a tenth of it, at least 20 ms and at most
/// 500 ms: medic's own rule for its host calls), so a hung server is
/// `failed` and not a kit fault. `u32::MAX` means medic did not say.
fn wait_ms(deadline_ms: u32) -> u32 {
    if deadline_ms == u32::MAX {
        return TIMEOUT_MS;
    }
    let margin = (deadline_ms / 10).clamp(20, 500).min(deadline_ms / 2);
    (deadline_ms - margin).max(1)
}

/// The value of `key` in the app's `[settings]`.
fn setting<'a>(settings: &'a [Setting], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .rev()
        .find(|s| s.key == key)
        .map(|s| s.value.as_str())
}

/// Does the GET; `Err` is the check's answer.
fn probe(settings: &[Setting], timeout_ms: u32) -> Result<(), Verdict> {
    // No restart writes a missing setting: `unknown`.
    let url = setting(settings, "url")
        .ok_or_else(|| Verdict::Unknown("missing required setting `url`".into()))?;
    let response = host::http_get(url, timeout_ms, MAX_BODY)
        .map_err(|e| Verdict::Failed(format!("GET {url}: {e}")))?;
    if response.status != 200 {
        return Err(Verdict::Failed(format!(
            "status {}, expected 200",
            response.status
        )));
    }
    if let Some(needle) = setting(settings, "expect_body")
        && !String::from_utf8_lossy(&response.body).contains(needle)
    {
        return Err(Verdict::Failed(format!("body lacks {needle:?}")));
    }
    Ok(())
}

export!(Kit);
