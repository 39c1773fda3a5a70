//! Calling a loaded kit: a fresh store per call, guest code that yields at
//! every epoch tick, one deadline (a tokio timeout) over the whole call
//! including blocking host calls, and the outcome classified as the kit's
//! answer or a [`KitFault`].

use std::time::Duration;

use wasmtime::component::{ComponentExportIndex, Instance, InstancePre};
use wasmtime::{Store, Trap, UpdateDeadline};

use super::KitFault;
use super::bindings::{
    CallContext, Context, KitInfo, NextStep, RecoveryKit, RecoveryKitIndices, Setting, SettingDoc,
    Verdict,
};
use super::engine::EPOCH_TICK;
use super::kit_text::{REASON_MAX, Tamed, tame};
use super::store::{CallDeadline, CallScope, KitStore};
use crate::process::PinnedProcess;
use crate::signing::Provenance;

/// The optional export of the `inspectable-recovery-kit` world, and its
/// function.
pub(super) const INSPECT: (&str, &str) = ("medic:kit/inspect@0.1.3", "app-settings");

/// The optional `calls` export of a 0.1.2 kit, and its functions.
pub(super) const CALLS: (&str, [&str; 3]) =
    ("medic:kit/calls@0.1.3", ["check", "recover", "env-wanted"]);

/// Where a 0.1.2 kit's `calls.check` and `calls.recover` are: called instead
/// of `kit.check` and `kit.recover`, they tell the kit its deadline and let
/// it answer `unknown`.
#[derive(Clone, Copy)]
pub(super) struct CallsIndices {
    /// `calls.check`.
    pub(super) check: ComponentExportIndex,
    /// `calls.recover`.
    pub(super) recover: ComponentExportIndex,
    /// `calls.env-wanted`.
    pub(super) env_wanted: ComponentExportIndex,
}

/// A compiled, linked kit, ready to be instantiated for each call.
#[derive(Clone)]
pub struct Kit {
    /// The sha256 of the file.
    pub(super) sha256: String,
    /// Who signed the file, as judged when it loaded.
    pub(super) provenance: Provenance,
    /// Places for calls in flight, shared with every kit of the engine.
    pub(super) places: std::sync::Arc<tokio::sync::Semaphore>,
    /// The linked component, instantiated afresh for each call.
    pub(super) pre: InstancePre<KitStore>,
    /// Where the `kit` interface's exports are, found once at load.
    pub(super) indices: RecoveryKitIndices,
    /// `inspect.app-settings`, for a kit that exports it.
    pub(super) app_settings: Option<ComponentExportIndex>,
    /// `calls`, for a 0.1.2 kit that exports it.
    pub(super) calls: Option<CallsIndices>,
}

/// What one `check` found.
#[derive(Debug)]
pub struct Checked {
    /// The kit's verdict on the app (a kit built before 0.1.2 never
    /// answers `unknown`).
    pub health: Verdict,
    /// The app's main process, when the kit reported it with
    /// `host.watch-process`: pinned, so the supervisor can react the moment
    /// it exits.
    pub process: Option<PinnedProcess>,
    /// What the kit added to the record of the check (`host.annotate`),
    /// in the order given.
    pub annotations: Vec<(String, String)>,
}

impl Tamed for Checked {
    fn tamed(self) -> Self {
        // Annotations were tamed as they were added.
        Self {
            health: self.health.tamed(),
            ..self
        }
    }
}

/// One of the kit's exports with its arguments, and what it answers.
trait Export {
    /// The export's answer, tamed before the host keeps it.
    type Output: Tamed;
    /// Calls the export on `instance`, a fresh instance of `kit`.
    fn invoke<'a>(
        self,
        kit: &'a Kit,
        instance: Instance,
        store: &'a mut Store<KitStore>,
    ) -> impl Future<Output = wasmtime::Result<Self::Output>> + Send + 'a;
}

/// `describe()`.
struct Describe;
/// `check(ctx)`.
struct Check(CallContext);
/// `recover(ctx)`.
struct Recover(CallContext);
/// `inspect.app-settings(ctx)`.
struct AppSettings(CallContext);
/// `calls.env-wanted()`.
struct EnvWanted;

impl Kit {
    /// The `kit` interface of a fresh instance.
    fn guest(
        &self,
        store: &mut Store<KitStore>,
        instance: &Instance,
    ) -> wasmtime::Result<RecoveryKit> {
        self.indices.load(store, instance)
    }
}

impl Export for Describe {
    type Output = KitInfo;
    async fn invoke(
        self,
        kit: &Kit,
        instance: Instance,
        store: &mut Store<KitStore>,
    ) -> wasmtime::Result<KitInfo> {
        let guest = kit.guest(store, &instance)?;
        guest.medic_kit_kit().call_describe(store).await
    }
}

impl Export for Check {
    type Output = Checked;
    async fn invoke(
        self,
        kit: &Kit,
        instance: Instance,
        store: &mut Store<KitStore>,
    ) -> wasmtime::Result<Checked> {
        let health = match kit.calls {
            Some(calls) => {
                let func = instance
                    .get_typed_func::<(&CallContext,), (Verdict,)>(&mut *store, calls.check)?;
                func.call_async(&mut *store, (&self.0,)).await?.0
            }
            None => kit
                .guest(store, &instance)?
                .medic_kit_kit()
                .call_check(&mut *store, &Context::from(&self.0))
                .await?
                .into(),
        };
        let data = store.data_mut();
        Ok(Checked {
            health,
            process: data.reported_process.take(),
            annotations: std::mem::take(&mut data.annotations),
        })
    }
}

impl Export for Recover {
    type Output = Result<NextStep, String>;
    async fn invoke(
        self,
        kit: &Kit,
        instance: Instance,
        store: &mut Store<KitStore>,
    ) -> wasmtime::Result<Result<NextStep, String>> {
        match kit.calls {
            Some(calls) => {
                let func = instance
                    .get_typed_func::<(&CallContext,), (Result<NextStep, String>,)>(
                        &mut *store,
                        calls.recover,
                    )?;
                Ok(func.call_async(&mut *store, (&self.0,)).await?.0)
            }
            None => {
                let guest = kit.guest(store, &instance)?;
                guest
                    .medic_kit_kit()
                    .call_recover(store, &Context::from(&self.0))
                    .await
            }
        }
    }
}

impl Export for AppSettings {
    type Output = Option<Result<Vec<SettingDoc>, String>>;
    async fn invoke(
        self,
        kit: &Kit,
        instance: Instance,
        store: &mut Store<KitStore>,
    ) -> wasmtime::Result<Self::Output> {
        let Some(index) = kit.app_settings else {
            return Ok(None);
        };
        let func = instance.get_typed_func::<(&Context,), (Result<Vec<SettingDoc>, String>,)>(
            &mut *store,
            index,
        )?;
        let (answer,) = func
            .call_async(&mut *store, (&Context::from(&self.0),))
            .await?;
        Ok(Some(answer))
    }
}

impl Export for EnvWanted {
    type Output = Vec<String>;
    async fn invoke(
        self,
        kit: &Kit,
        instance: Instance,
        store: &mut Store<KitStore>,
    ) -> wasmtime::Result<Vec<String>> {
        let Some(calls) = kit.calls else {
            return Ok(Vec::new());
        };
        let func = instance.get_typed_func::<(), (Vec<String>,)>(&mut *store, calls.env_wanted)?;
        Ok(func.call_async(&mut *store, ()).await?.0)
    }
}

impl Kit {
    /// The sha256 of the kit file, which identifies exactly what runs.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Who signed the kit file, for the journal and `medic kit inspect`.
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// Calls `describe`.
    pub async fn describe(&self, scope: CallScope, timeout: Duration) -> Result<KitInfo, KitFault> {
        self.call(scope, timeout, Describe).await
    }

    /// Calls `calls.env-wanted`: the environment names the kit sets for the
    /// programs it runs, for `[grants] env`; empty for a kit before 0.1.2.
    pub async fn env_wanted(
        &self,
        scope: CallScope,
        timeout: Duration,
    ) -> Result<Vec<String>, KitFault> {
        self.call(scope, timeout, EnvWanted).await
    }

    /// Calls `check` for the app in `scope`.
    pub async fn check(
        &self,
        scope: CallScope,
        timeout: Duration,
        settings: &[(String, String)],
    ) -> Result<Checked, KitFault> {
        let ctx = context(&scope, settings, 0, timeout);
        self.call(scope, timeout, Check(ctx)).await
    }

    /// Calls `inspect.app-settings` for the app in `scope`: the settings the
    /// kit reads for this app's settings; `None` when the kit does not
    /// export `inspect`.
    pub async fn app_settings(
        &self,
        scope: CallScope,
        timeout: Duration,
        settings: &[(String, String)],
    ) -> Result<Option<Result<Vec<SettingDoc>, String>>, KitFault> {
        let ctx = context(&scope, settings, 0, timeout);
        self.call(scope, timeout, AppSettings(ctx)).await
    }

    /// Calls `recover` for the app in `scope`; `attempt` counts from 1.
    pub async fn recover(
        &self,
        scope: CallScope,
        timeout: Duration,
        settings: &[(String, String)],
        attempt: u32,
    ) -> Result<Result<NextStep, String>, KitFault> {
        let ctx = context(&scope, settings, attempt, timeout);
        self.call(scope, timeout, Recover(ctx)).await
    }

    async fn call<E: Export>(
        &self,
        scope: CallScope,
        timeout: Duration,
        export: E,
    ) -> Result<E::Output, KitFault> {
        // Waiting for a place is not the kit's time: its deadline starts
        // once it may run. The semaphore is never closed.
        let _place = self
            .places
            .acquire()
            .await
            .map_err(|e| KitFault::Setup(e.to_string()))?;
        let deadline = CallDeadline::after(timeout);
        let data = KitStore::new(scope, deadline).map_err(|e| KitFault::Setup(format!("{e:#}")))?;
        let mut store = Store::new(self.pre.engine(), data);
        store.limiter(|s| &mut s.limits);
        // Guest code yields to the runtime at every epoch tick, so a kit
        // spinning in a loop never holds the thread for longer than a tick;
        // the deadline itself is the timeout around the whole call, which
        // also covers blocking host calls. tokio's own yield lets timers and
        // I/O be polled before the spinning kit runs again.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut store| {
            let data = store.data_mut();
            data.busy_ticks = data.busy_ticks.saturating_add(1);
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });

        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            export.invoke(self, instance, &mut store).await
        };
        let outcome = tokio::time::timeout(timeout, run).await;
        let data = store.data_mut();
        let denied = data.denials.take();
        // The most specific cause wins: running out of time or memory
        // explains a trap, and a denial explains whatever the kit did next.
        let result = match outcome {
            // A kit that computed for a good part of its time was not
            // (only) waiting on the app: its timeout is its own bug, never
            // evidence. A waiting kit runs at a tick or two.
            Err(_) if EPOCH_TICK * data.busy_ticks >= timeout / 4 => {
                Err(KitFault::Spinning(timeout))
            }
            Err(_) => Err(KitFault::Timeout(timeout)),
            Ok(Err(_)) if data.limits.memory_hit => {
                Err(KitFault::MemoryLimit(data.scope.memory_limit))
            }
            _ if !denied.is_empty() => Err(KitFault::Denied(denied)),
            Ok(Err(error)) => Err(KitFault::Trap(tame(
                &trap_reason(&error, &data.stderr.contents()),
                REASON_MAX,
            ))),
            Ok(Ok(response)) => Ok(response.tamed()),
        };
        if data.log_dropped > 0 {
            tracing::warn!(
                app = &*data.scope.app,
                dropped = data.log_dropped,
                "kit log capped"
            );
        }
        result
    }
}

/// The context of one call that may take `timeout`.
fn context(
    scope: &CallScope,
    settings: &[(String, String)],
    attempt: u32,
    timeout: Duration,
) -> CallContext {
    CallContext {
        app: scope.app.to_string(),
        settings: settings
            .iter()
            .map(|(key, value)| Setting {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        attempt,
        deadline_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
    }
}

/// Why the guest trapped, without wasmtime's backtrace, followed by the last
/// lines the kit wrote to stderr (a Rust panic says its message there).
fn trap_reason(error: &wasmtime::Error, stderr: &[u8]) -> String {
    let cause = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    let stderr = String::from_utf8_lossy(stderr);
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("note:"))
        .collect();
    match said.len() {
        0 => cause,
        n => format!(
            "{cause}; the kit wrote: {}",
            said[n.saturating_sub(2)..].join(" ")
        ),
    }
}
