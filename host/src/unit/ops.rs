//! Bulk start and stop of units: units in `depends_on` order (stop in
//! reverse), the members of a unit in parallel, each member's steps in
//! order. A member that fails is reported and the others go on; every step
//! is journaled in the controller's journal.

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::json;

use super::agents::Agents;
use super::config::{Member, Unit};
use crate::api::messages::StopRequest;
use crate::config::start_order;
use crate::hypervisor::{Inventory, PowerState};
use crate::journal::{Event, Journal, Kind};
use crate::status::State;

/// How long to wait between two looks at something that takes time (an
/// agent coming up, a check passing, a guest shutting down).
const POLL: Duration = Duration::from_millis(500);

/// The verb being done, as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    /// `medic unit start`.
    Start,
    /// `medic unit stop`.
    Stop,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
        }
    }
}

/// How a start or stop goes.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Start or stop.
    pub verb: Verb,
    /// Stop: also shut the VMs down (a guest shutdown, then power off
    /// after `shutdown_timeout`).
    pub power_off: bool,
    /// Start: how long a powered-on VM's agent may take to answer.
    pub boot_timeout: Duration,
    /// Start: how long the app may take to pass its check after `start`.
    pub health_timeout: Duration,
    /// Stop with power-off: how long a guest shutdown may take.
    pub shutdown_timeout: Duration,
}

impl Plan {
    /// A start that waits `boot_timeout` for agents of VMs it powered on
    /// and `health_timeout` for the app's check to pass.
    pub fn start(boot_timeout: Duration, health_timeout: Duration) -> Self {
        Self {
            verb: Verb::Start,
            power_off: false,
            boot_timeout,
            health_timeout,
            shutdown_timeout: Duration::ZERO,
        }
    }

    /// A stop, with `power_off` a guest shutdown given `shutdown_timeout`.
    pub fn stop(power_off: bool, shutdown_timeout: Duration) -> Self {
        Self {
            verb: Verb::Stop,
            power_off,
            boot_timeout: Duration::ZERO,
            health_timeout: Duration::ZERO,
            shutdown_timeout,
        }
    }
}

/// What became of one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberOutcome {
    /// The member's unit.
    pub unit: String,
    /// The VM.
    pub vm: String,
    /// Whether its part succeeded.
    pub ok: bool,
    /// What was done, or why it failed.
    pub detail: String,
    /// How long it took, in milliseconds.
    pub took_ms: u64,
}

impl MemberOutcome {
    /// The progress line printed as the member finishes.
    pub fn line(&self) -> String {
        format!(
            "{}/{}: {} {} ({:.1} s)",
            self.unit,
            self.vm,
            if self.ok { "ok" } else { "FAILED" },
            self.detail,
            self.took_ms as f64 / 1000.0
        )
    }
}

/// Everything an operation uses.
pub struct Operation<'a> {
    /// The agents.
    pub agents: &'a Agents,
    /// The hypervisor, if one is configured.
    pub inventory: Option<&'a dyn Inventory>,
    /// The controller's journal.
    pub journal: &'a Journal,
    /// Who asked, for the journal.
    pub by: String,
}

impl Operation<'_> {
    /// Runs `plan` over `units` (in dependency order for a start, reverse
    /// for a stop), calling `progress` as each member finishes; returns
    /// every member's outcome.
    pub async fn run(
        &self,
        plan: &Plan,
        units: &[Unit],
        progress: &(dyn Fn(&MemberOutcome) + Sync),
    ) -> Vec<MemberOutcome> {
        let mut order = start_order(units);
        if plan.verb == Verb::Stop {
            order.reverse();
        }
        let names: Vec<&str> = order.iter().map(|unit| unit.name.as_str()).collect();
        let first = names.first().copied();
        self.journal.record(Event::new(
            first,
            Kind::UnitOperation,
            json!({"verb": plan.verb, "units": names, "phase": "started", "by": self.by}),
        ));
        let mut outcomes = Vec::new();
        for unit in order {
            let pairs: Vec<(&Unit, &Member)> =
                unit.members.iter().map(|member| (unit, member)).collect();
            let done = self
                .agents
                .each(&pairs, |unit, member| async move {
                    let started = Instant::now();
                    let result = match plan.verb {
                        Verb::Start => self.start_member(plan, unit, member).await,
                        Verb::Stop => self.stop_member(plan, unit, member).await,
                    };
                    let outcome = MemberOutcome {
                        unit: unit.name.clone(),
                        vm: member.vm.clone(),
                        ok: result.is_ok(),
                        detail: result.unwrap_or_else(|e| e),
                        took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    };
                    self.journal.record(Event::new(
                        Some(&unit.name),
                        Kind::UnitMember,
                        json!({"verb": plan.verb, "vm": outcome.vm, "ok": outcome.ok, "detail": outcome.detail}),
                    ));
                    progress(&outcome);
                    outcome
                })
                .await;
            outcomes.extend(done);
        }
        let failed: Vec<String> = outcomes
            .iter()
            .filter(|outcome| !outcome.ok)
            .map(|outcome| format!("{}/{}", outcome.unit, outcome.vm))
            .collect();
        self.journal.record(Event::new(
            first,
            Kind::UnitOperation,
            json!({"verb": plan.verb, "units": names, "phase": "ended", "ok": failed.is_empty(), "failed": failed}),
        ));
        outcomes
    }

    /// Power on (when off), wait for the agent, `start` the app, wait for
    /// its check to pass.
    async fn start_member(
        &self,
        plan: &Plan,
        unit: &Unit,
        member: &Member,
    ) -> Result<String, String> {
        let mut done = Vec::new();
        if let Some(inventory) = self.inventory
            && self.power(inventory, &member.vm).await? != PowerState::On
        {
            inventory
                .power_on(&member.vm)
                .await
                .map_err(|e| format!("power on: {e}"))?;
            done.push("powered on".to_owned());
        }
        wait_until(plan.boot_timeout, "the agent to answer", || async {
            self.agents.status(member).await.ok().map(|_| ())
        })
        .await?;
        let asked = SystemTime::now();
        let started = self
            .agents
            .call(
                member,
                |client| async move { client.start(&unit.app).await },
            )
            .await?;
        done.push(started.done);
        wait_until(plan.health_timeout, "the app's check to pass", || async {
            let report = self.agents.status(member).await.ok()?;
            let app = report.app(&unit.app)?;
            let checked_since = app.last_check.as_ref().is_some_and(|last| last.at >= asked);
            (checked_since && matches!(app.state, State::Healthy | State::Degraded)).then_some(())
        })
        .await?;
        done.push("healthy".to_owned());
        Ok(done.join(", "))
    }

    /// `stop` the app (held stopped), then with `power_off` a guest
    /// shutdown, and power off if the guest does not go down in time.
    async fn stop_member(
        &self,
        plan: &Plan,
        unit: &Unit,
        member: &Member,
    ) -> Result<String, String> {
        let off = match (plan.power_off, self.inventory) {
            (true, Some(inventory)) => Some(inventory),
            (true, None) => {
                return Err("--power-off needs a [hypervisor] in units.toml".to_owned());
            }
            (false, _) => None,
        };
        if let Some(inventory) = off
            && self.power(inventory, &member.vm).await? == PowerState::Off
        {
            return Ok("already powered off".to_owned());
        }
        let request = StopRequest {
            reason: Some(format!("unit stop by {}", self.by)),
        };
        let stopped = self
            .agents
            .call(member, |client| async move {
                client.stop(&unit.app, &request).await
            })
            .await?;
        let Some(inventory) = off else {
            return Ok(stopped.done);
        };
        inventory
            .shutdown_guest(&member.vm)
            .await
            .map_err(|e| format!("guest shutdown: {e}"))?;
        let shut_down = wait_until(plan.shutdown_timeout, "the guest to shut down", || async {
            (self.power(inventory, &member.vm).await.ok()? == PowerState::Off).then_some(())
        })
        .await;
        match shut_down {
            Ok(()) => Ok(format!("{}, shut down", stopped.done)),
            Err(waited) => {
                inventory
                    .power_off(&member.vm)
                    .await
                    .map_err(|e| format!("{waited}; power off: {e}"))?;
                Ok(format!("{}, powered off ({waited})", stopped.done))
            }
        }
    }

    /// The power state of `vm`.
    async fn power(&self, inventory: &dyn Inventory, vm: &str) -> Result<PowerState, String> {
        inventory
            .list()
            .await
            .map_err(|e| format!("inventory: {e}"))?
            .into_iter()
            .find(|info| info.name == vm)
            .map(|info| info.power)
            .ok_or_else(|| format!("the hypervisor has no VM `{vm}`"))
    }
}

/// Polls `ready` until it gives `Some` or `timeout` passes.
async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut ready: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if ready().await.is_some() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "waited {} for {what}",
                humantime::format_duration(timeout)
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
