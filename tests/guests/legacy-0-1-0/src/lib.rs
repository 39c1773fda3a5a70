//! Test kit `legacy`: built against the frozen `medic:kit@0.1.0` in `wit/`,
//! with the raw bindings rather than the SDK. Its check uses every host
//! import 0.1.0 had that needs no grant, so a host that stopped linking any
//! of them fails the test that loads this kit.

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "recovery-kit" });
}

use bindings::exports::medic::kit::kit::Guest;
use bindings::medic::kit::host;
use bindings::medic::kit::types::{Context, Health, KitInfo, Level, NextStep, SettingDoc};

/// The kit.
struct Legacy;

impl Guest for Legacy {
    fn describe() -> KitInfo {
        KitInfo {
            name: "legacy".into(),
            version: "0.1.0".into(),
            summary: "A kit built for medic:kit@0.1.0.".into(),
            settings: vec![SettingDoc {
                key: "verdict".into(),
                required: true,
                default: None,
                doc: "`healthy` or anything else, which fails.".into(),
            }],
            wants: vec![],
        }
    }

    fn check(ctx: Context) -> Health {
        host::log(Level::Info, "legacy kit checking");
        let checks = host::state_get("checks")
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0);
        host::state_set("checks", &(checks + 1).to_string());
        if !host::pid_alive(1) || !host::processes("no-such-process-name").is_empty() {
            return Health::Failed("the host's process imports answered wrongly".into());
        }
        let verdict = ctx.settings.iter().find(|s| s.key == "verdict");
        match verdict.map(|s| s.value.as_str()) {
            Some("healthy") => Health::Healthy,
            other => Health::Failed(format!("verdict {other:?}, check {}", checks + 1)),
        }
    }

    fn recover(_ctx: Context) -> Result<NextStep, String> {
        Ok(NextStep::RestartApp)
    }
}

bindings::export!(Legacy with_types_in bindings);
