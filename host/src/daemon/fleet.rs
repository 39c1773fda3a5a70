//! The running supervisors, one per app, and how a new config changes them:
//! an unchanged app keeps its supervisor (state and schedule), a changed
//! app or kit gets a new one, a removed app's supervisor stops.
//!
//! A supervisor starts before its kit has loaded: its handle answers (and
//! its dependents can wait on it) while the kit compiles, and its first
//! check runs the moment the kit is ready.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::registry::{KitSlot, build_runtime, policy_of};
use crate::api::Changes;
use crate::config::{self, AppSpec, Config};
use crate::supervisor::{AppHandle, Shared, await_kit, channels, supervise};

/// One running supervisor.
struct Running {
    spec: AppSpec,
    kit: KitSlot,
    handle: AppHandle,
    stop: watch::Sender<bool>,
}

/// Every app's supervisor.
pub(crate) struct Fleet {
    running: BTreeMap<String, Running>,
    tasks: JoinSet<()>,
    shared: Shared,
    state_dir: PathBuf,
    started: Instant,
    min_uptime: Duration,
}

impl Fleet {
    /// An empty fleet; `started` anchors the escalation guard.
    pub fn new(shared: Shared, config: &Config, started: Instant) -> Self {
        Self {
            running: BTreeMap::new(),
            tasks: JoinSet::new(),
            shared,
            state_dir: config.daemon.state_dir.clone(),
            started,
            min_uptime: config.escalation.min_uptime,
        }
    }

    /// Makes the running supervisors match `config`'s apps, with `kits`
    /// loading (or loaded) for them.
    pub fn apply(&mut self, config: &Config, kits: &HashMap<PathBuf, KitSlot>) -> Changes {
        let sha = |path: &Path| kits.get(path).and_then(KitSlot::sha256);
        let wanted: BTreeMap<&str, &AppSpec> =
            config.apps.iter().map(|a| (a.name.as_str(), a)).collect();
        let mut changes = Changes::default();
        for (name, running) in &self.running {
            match wanted.get(name.as_str()) {
                None => changes.removed.push(name.clone()),
                Some(spec)
                    if **spec != running.spec || sha(&spec.kit_path) != running.kit.sha256() =>
                {
                    changes.changed.push(name.clone());
                }
                Some(_) => {}
            }
        }
        // A dependent holds its dependencies' status channels: it is
        // replaced with them.
        let replaced: Vec<String> = changes
            .removed
            .iter()
            .chain(&changes.changed)
            .cloned()
            .collect();
        for (name, running) in &self.running {
            if !changes.changed.contains(name)
                && !changes.removed.contains(name)
                && running.spec.depends_on.iter().any(|d| replaced.contains(d))
                && wanted.contains_key(name.as_str())
            {
                changes.changed.push(name.clone());
            }
        }
        for name in changes.removed.iter().chain(&changes.changed) {
            if let Some(running) = self.running.remove(name) {
                let _ = running.stop.send(true);
            }
        }
        for spec in config::start_order(&config.apps) {
            if self.running.contains_key(&spec.name) {
                continue;
            }
            let Some(kit) = kits.get(&spec.kit_path) else {
                tracing::error!(app = %spec.name, kit = %spec.kit_path.display(), "not watched: its kit was not loaded");
                continue;
            };
            if !changes.changed.contains(&spec.name) {
                changes.added.push(spec.name.clone());
            }
            self.start(spec, kit.clone());
        }
        changes.changed.sort();
        changes
    }

    fn start(&mut self, spec: &AppSpec, kit: KitSlot) {
        let policy = policy_of(spec, self.started, self.min_uptime);
        let (handle, mut channels) = channels(&spec.name, &policy);
        let dependencies = spec
            .depends_on
            .iter()
            .filter_map(|name| self.running.get(name).map(|r| r.handle.status.clone()))
            .collect();
        let (stop, mut stopped) = watch::channel(false);
        let (owned, loading) = (spec.clone(), kit.clone());
        let (state_dir, started, min_uptime) =
            (self.state_dir.clone(), self.started, self.min_uptime);
        let shared = self.shared.clone();
        self.tasks.spawn(async move {
            let Some(kit) = await_kit(loading.loaded(), &mut channels, &mut stopped).await else {
                return;
            };
            let runtime = Arc::new(build_runtime(&owned, kit, &state_dir, started, min_uptime));
            tracing::info!(
                app = %owned.name, kit = %owned.kit, interval = %humantime::format_duration(owned.interval),
                then = owned.recovery.then.name(), "watching"
            );
            supervise(runtime, shared, channels, dependencies, stopped).await;
        });
        self.running.insert(
            spec.name.clone(),
            Running {
                spec: spec.clone(),
                kit,
                handle,
                stop,
            },
        );
    }

    /// The running supervisors' handles, for the admin API.
    pub fn handles(&self) -> BTreeMap<String, AppHandle> {
        self.running
            .iter()
            .map(|(name, running)| (name.clone(), running.handle.clone()))
            .collect()
    }

    /// How many apps are watched.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// Stops every supervisor, giving running checks and recoveries `grace`
    /// to finish before they are cancelled.
    pub async fn shutdown(mut self, grace: Duration) {
        for running in self.running.values() {
            let _ = running.stop.send(true);
        }
        if tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!("supervisors still busy after {grace:?}; cancelling them");
            self.tasks.shutdown().await;
        }
    }
}
