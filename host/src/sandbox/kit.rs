//! Calling a loaded kit: a fresh store per call, guest code that yields at
//! every epoch tick, one deadline (a tokio timeout) over the whole call
//! including blocking host calls, and the outcome classified as the kit's
//! answer or a [`KitFault`].

use std::time::Duration;

use wasmtime::{Store, Trap};

use super::KitFault;
use super::bindings::{Context, Health, KitInfo, NextStep, RecoveryKitPre, Setting};
use super::store::{CallScope, KitStore};

/// A compiled, linked kit, ready to be instantiated for each call.
#[derive(Clone)]
pub struct Kit {
    sha256: String,
    pre: RecoveryKitPre<KitStore>,
}

/// One of the kit's exports with its arguments.
enum Request {
    Describe,
    Check(Context),
    Recover(Context),
}

/// The answer to a [`Request`].
enum Response {
    Describe(KitInfo),
    Check(Health),
    Recover(Result<NextStep, String>),
}

impl Kit {
    pub(super) fn new(sha256: String, pre: RecoveryKitPre<KitStore>) -> Self {
        Self { sha256, pre }
    }

    /// The sha256 of the kit file, which identifies exactly what runs.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Calls `describe`.
    pub async fn describe(&self, scope: CallScope, timeout: Duration) -> Result<KitInfo, KitFault> {
        match self.call(scope, timeout, Request::Describe).await? {
            Response::Describe(info) => Ok(info),
            _ => unreachable!("describe answers with describe"),
        }
    }

    /// Calls `check` for the app in `scope`.
    pub async fn check(
        &self,
        scope: CallScope,
        timeout: Duration,
        settings: &[(String, String)],
    ) -> Result<Health, KitFault> {
        let ctx = context(&scope, settings, 0);
        match self.call(scope, timeout, Request::Check(ctx)).await? {
            Response::Check(health) => Ok(health),
            _ => unreachable!("check answers with check"),
        }
    }

    /// Calls `recover` for the app in `scope`; `attempt` counts from 1.
    pub async fn recover(
        &self,
        scope: CallScope,
        timeout: Duration,
        settings: &[(String, String)],
        attempt: u32,
    ) -> Result<Result<NextStep, String>, KitFault> {
        let ctx = context(&scope, settings, attempt);
        match self.call(scope, timeout, Request::Recover(ctx)).await? {
            Response::Recover(step) => Ok(step),
            _ => unreachable!("recover answers with recover"),
        }
    }

    async fn call(
        &self,
        scope: CallScope,
        timeout: Duration,
        request: Request,
    ) -> Result<Response, KitFault> {
        let data = KitStore::new(scope).map_err(|e| KitFault::Setup(format!("{e:#}")))?;
        let mut store = Store::new(self.pre.engine(), data);
        store.limiter(|s| &mut s.limits);
        // Guest code yields to the runtime at every epoch tick, so a kit
        // spinning in a loop never holds a worker thread for longer than a
        // tick; the deadline itself is the timeout around the whole call,
        // which also covers blocking host calls.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);

        let run = async {
            let kit = self.pre.instantiate_async(&mut store).await?;
            let guest = kit.medic_kit_kit();
            Ok::<_, wasmtime::Error>(match request {
                Request::Describe => Response::Describe(guest.call_describe(&mut store).await?),
                Request::Check(ctx) => Response::Check(guest.call_check(&mut store, &ctx).await?),
                Request::Recover(ctx) => {
                    Response::Recover(guest.call_recover(&mut store, &ctx).await?)
                }
            })
        };
        let outcome = tokio::time::timeout(timeout, run).await;
        let data = store.data_mut();
        let denied = data.denials.take();
        // The most specific cause wins: running out of time or memory
        // explains a trap, and a denial explains whatever the kit did next.
        let result = match outcome {
            Err(_) => Err(KitFault::Timeout(timeout)),
            Ok(Err(_)) if data.limits.memory_hit => {
                Err(KitFault::MemoryLimit(data.scope.memory_limit))
            }
            _ if !denied.is_empty() => Err(KitFault::Denied(denied)),
            Ok(Err(error)) => Err(KitFault::Trap(trap_reason(&error, &data.stderr.contents()))),
            Ok(Ok(response)) => Ok(response),
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

fn context(scope: &CallScope, settings: &[(String, String)], attempt: u32) -> Context {
    Context {
        app: scope.app.to_string(),
        settings: settings
            .iter()
            .map(|(key, value)| Setting {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        attempt,
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
