//! The kit registry: every kit the apps name, loaded once, and the runtime
//! of each app built from its spec and kit.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::config::{AppSpec, Config};
use crate::journal::{Event, Journal, Kind};
use crate::sandbox::{CallScope, Kit, KitEngine, LoadError};
use crate::signing::KitTrust;
use crate::supervisor::{AppRuntime, Policy};

/// Loads each distinct kit file the apps name, journaling each outcome. A
/// kit that fails to load only leaves its own apps unwatched.
pub async fn load_kits(
    engine: &KitEngine,
    config: &Config,
    journal: &Journal,
) -> HashMap<PathBuf, Kit> {
    let paths: BTreeSet<&PathBuf> = config.apps.iter().map(|a| &a.kit_path).collect();
    let mut kits = HashMap::new();
    // Key files are read anew each time, so a key added or removed takes
    // effect with a reload; keys that cannot be read refuse every kit.
    let trust = KitTrust::load(&config.daemon.trusted_keys, config.daemon.require_signed)
        .map_err(|e| LoadError::Signature(e).to_string());
    for path in paths {
        let loaded = match &trust {
            Ok(trust) => {
                let loader = engine.clone();
                let owned = path.clone();
                let trust = trust.clone();
                // Compiling a large kit takes seconds of CPU: keep it off the runtime.
                tokio::task::spawn_blocking(move || loader.load_trusted(&owned, &trust))
                    .await
                    .map(|loaded| loaded.map_err(|e| e.to_string()))
            }
            Err(why) => Ok(Err(why.clone())),
        };
        match loaded {
            Ok(Ok(kit)) => {
                journal.record(Event::new(
                    None,
                    Kind::KitLoaded,
                    json!({
                        "path": path.display().to_string(),
                        "sha256": kit.sha256(),
                        "signer": kit.provenance().to_json(),
                    }),
                ));
                kits.insert(path.clone(), kit);
            }
            Ok(Err(e)) => journal.record(Event::new(
                None,
                Kind::KitLoadFailed,
                json!({"path": path.display().to_string(), "error": e}),
            )),
            Err(e) => tracing::error!(path = %path.display(), "kit loader panicked: {e}"),
        }
    }
    kits
}

/// Everything one app's supervisor needs. No escalation happens until
/// medic has run for `min_uptime` and for `interval × failures_before_action`
/// from `medic_started`: a VM that comes back from a reset with the app
/// still broken is not reset again at once, and a fresh medic never acts on
/// stale evidence. medic's uptime never exceeds the VM's, so this also
/// holds the VM's uptime to `min_uptime`.
pub fn build_runtime(
    spec: &AppSpec,
    kit: Kit,
    state_dir: &Path,
    medic_started: Instant,
    min_uptime: Duration,
) -> AppRuntime {
    let scope = call_scope(spec, state_dir);
    let guard = spec
        .interval
        .saturating_mul(spec.failures_before_action)
        .max(min_uptime);
    AppRuntime {
        policy: Policy {
            interval: spec.interval,
            failures_before_action: spec.failures_before_action,
            local_attempts: spec.recovery.local_attempts,
            window: spec.recovery.window,
            backoff: spec.recovery.backoff,
            then: spec.recovery.then,
            can_restart: spec.start.is_some(),
            start_grace: spec.start_grace,
            timeouts_before_failure: spec.timeouts_before_failure,
            max_flaps: spec.recovery.max_flaps,
            flap_window: spec.recovery.flap_window,
            no_escalation_before: medic_started + guard,
        },
        spec: spec.clone(),
        kit,
        scope,
        log_dir: state_dir.join("logs"),
    }
}

/// The sandbox scope of one app's kit calls.
fn call_scope(spec: &AppSpec, state_dir: &Path) -> CallScope {
    CallScope::new(
        &spec.name,
        &spec.grants,
        state_dir
            .join("kit-state")
            .join(format!("{}.json", spec.name)),
        usize::try_from(spec.kit_memory_mib).unwrap_or(usize::MAX) << 20,
    )
}
