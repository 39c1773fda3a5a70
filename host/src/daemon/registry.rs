//! The kit registry: every kit the apps name, loaded concurrently, and the
//! runtime of each app built from its spec and kit.
//!
//! Each distinct kit file loads on its own blocking thread, so a kit that
//! takes seconds to compile (an 18 MB Python kit on first load) holds up
//! only the apps that use it: the others are watched as soon as their own
//! kit is ready.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use serde_json::json;

use crate::config::{AppSpec, Config};
use crate::journal::{Event, Journal, Kind};
use crate::sandbox::{CallScope, Kit, KitEngine, LoadError};
use crate::signing::KitTrust;
use crate::supervisor::{AppRuntime, Policy};

/// A kit file as it loads: resolves once, to the kit or to why it did not
/// load, for every app that uses it. Cheap to clone.
#[derive(Clone)]
pub struct KitSlot(Shared<BoxFuture<'static, Result<Kit, String>>>);

impl KitSlot {
    /// The sha256 of the kit, once it has loaded.
    pub fn sha256(&self) -> Option<String> {
        match self.0.peek() {
            Some(Ok(kit)) => Some(kit.sha256().to_owned()),
            _ => None,
        }
    }

    /// Waits until the kit has loaded or failed.
    pub async fn loaded(self) -> Result<Kit, String> {
        self.0.await
    }
}

/// Starts loading each distinct kit file the apps name, each on its own
/// blocking thread, and journals each outcome as it comes. A kit that fails
/// to load only leaves its own apps unwatched.
pub fn start_loading(
    engine: &KitEngine,
    config: &Config,
    journal: &std::sync::Arc<Journal>,
) -> HashMap<PathBuf, KitSlot> {
    let paths: BTreeSet<&PathBuf> = config.apps.iter().map(|a| &a.kit_path).collect();
    // Key files are read anew each time, so a key added or removed takes
    // effect with a reload; keys that cannot be read refuse every kit.
    let trust = KitTrust::load(&config.daemon.trusted_keys, config.daemon.require_signed)
        .map_err(|e| LoadError::Signature(e).to_string());
    paths
        .into_iter()
        .map(|path| {
            let loading = load_one(engine.clone(), path.clone(), trust.clone(), journal.clone());
            // Spawned, so that the kit loads (and is journaled) whether or
            // not an app is waiting for it yet.
            let task = tokio::spawn(loading);
            let slot = async move {
                task.await
                    .unwrap_or_else(|e| Err(format!("kit loader panicked: {e}")))
            };
            (path.clone(), KitSlot(slot.boxed().shared()))
        })
        .collect()
}

/// Loads every kit `config` names, all at once, and waits for all of them.
pub async fn load_kits(
    engine: &KitEngine,
    config: &Config,
    journal: &std::sync::Arc<Journal>,
) -> HashMap<PathBuf, KitSlot> {
    let slots = start_loading(engine, config, journal);
    futures_util::future::join_all(slots.values().cloned().map(KitSlot::loaded)).await;
    slots
}

async fn load_one(
    engine: KitEngine,
    path: PathBuf,
    trust: Result<KitTrust, String>,
    journal: std::sync::Arc<Journal>,
) -> Result<Kit, String> {
    let loaded = match trust {
        Ok(trust) => {
            let owned = path.clone();
            // Compiling a large kit takes seconds of CPU: keep it off the runtime.
            tokio::task::spawn_blocking(move || engine.load_trusted(&owned, &trust))
                .await
                .map_err(|e| format!("kit loader panicked: {e}"))
                .and_then(|loaded| loaded.map_err(|e| e.to_string()))
        }
        Err(why) => Err(why),
    };
    match &loaded {
        Ok(kit) => journal.record(Event::new(
            None,
            Kind::KitLoaded,
            json!({
                "path": path.display().to_string(),
                "sha256": kit.sha256(),
                "signer": kit.provenance().to_json(),
            }),
        )),
        Err(e) => journal.record(Event::new(
            None,
            Kind::KitLoadFailed,
            json!({"path": path.display().to_string(), "error": e}),
        )),
    }
    loaded
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
    AppRuntime {
        policy: policy_of(spec, medic_started, min_uptime),
        spec: spec.clone(),
        kit,
        scope: call_scope(spec, state_dir),
        log_dir: state_dir.join("logs"),
    }
}

/// The ladder's thresholds for `spec`, known before its kit has loaded.
pub fn policy_of(spec: &AppSpec, medic_started: Instant, min_uptime: Duration) -> Policy {
    let guard = spec
        .interval
        .saturating_mul(spec.failures_before_action)
        .max(min_uptime);
    Policy {
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
    .with_files(&spec.tls, &spec.secrets)
}
