//! `medic unit roll UNIT --version V`: a rolling update behind HAProxy. For
//! each member in turn (at most `max_unavailable` out of service at once):
//! drain it in HAProxy until its sessions end, `medic update` it on its
//! agent (which proves it healthy with the app's own check, or rolls it
//! back), put it back `ready` and wait until HAProxy's health check says UP.
//! A failure stops the roll with that member left drained; members not yet
//! touched keep the old version.
//!
//! Every step is journaled (`unit_roll`) before the next one starts, so
//! `--resume` continues an interrupted roll from where it stood: a member
//! already back in service is skipped, and one whose update may have run
//! is asked for its version first, so no member is ever updated twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::Controller;
use super::config::{LoadBalancer, Member, Unit};
use super::haproxy::Haproxy;
use crate::api::messages::UpdateRequest;
use crate::journal::{Event, Filter, Kind};

/// How long one runtime API call to HAProxy may take.
const HAPROXY_TIMEOUT: Duration = Duration::from_secs(5);

/// How a roll goes.
#[derive(Debug, Clone)]
pub struct RollPlan {
    /// The version to roll out.
    pub version: String,
    /// Members out of service at once.
    pub max_unavailable: usize,
    /// How long a member's sessions may take to end before it is updated
    /// anyway (the sessions left are reported).
    pub drain_timeout: Duration,
    /// How long a member may take to be healthy after its update, and UP
    /// in HAProxy after it is back.
    pub health_timeout: Duration,
    /// Continue the last interrupted roll of the unit.
    pub resume: bool,
}

/// One step of the roll, as printed (`--json`: one object per step) and
/// journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The member's VM.
    pub vm: String,
    /// `draining`, `drained`, `updating`, `updated`, `ready`, `skipped`
    /// or `failed`.
    pub step: String,
    /// What happened, for people.
    pub detail: String,
}

/// A roll of a unit that started and has not ended: running now, or
/// interrupted (then `--resume` continues it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InProgress {
    /// The version being rolled out.
    pub version: String,
    /// Each member's last step, by VM.
    pub steps: BTreeMap<String, String>,
}

impl InProgress {
    /// One line for people: `roll to v4 in progress: web-1 ready, web-2 updating`.
    pub fn text(&self) -> String {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|(vm, step)| format!("{vm} {step}"))
            .collect();
        format!(
            "roll to {} in progress (or interrupted: --resume continues it): {}",
            self.version,
            if steps.is_empty() {
                "no member touched yet".to_owned()
            } else {
                steps.join(", ")
            }
        )
    }
}

/// The roll of `unit` in progress, if its last one started and never
/// ended.
pub fn in_progress(controller: &Controller, unit: &str) -> Option<InProgress> {
    let (version, events) = last_roll(controller, unit).ok()?;
    if events.iter().any(|e| e.detail["phase"] == "ended") {
        return None;
    }
    let steps = events
        .iter()
        .filter_map(|e| {
            Some((
                e.detail["vm"].as_str()?.to_owned(),
                e.detail["step"].as_str()?.to_owned(),
            ))
        })
        .collect();
    Some(InProgress { version, steps })
}

/// The events of the last roll of `unit` (from its start), and its version.
fn last_roll(controller: &Controller, unit: &str) -> Result<(String, Vec<Event>), String> {
    let filter = Filter {
        app: Some(unit.to_owned()),
        kinds: vec![Kind::UnitRoll],
        ..Filter::default()
    };
    let mut events = crate::journal::read_filtered(&controller.file.controller.state_dir, &filter)
        .map_err(|e| e.to_string())?;
    let started = events
        .iter()
        .rposition(|e| e.detail["phase"] == "started")
        .ok_or_else(|| format!("no roll of `{unit}` yet"))?;
    let roll = events.split_off(started);
    let version = roll[0].detail["version"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((version, roll))
}

/// Where each member of an interrupted roll stood.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stood {
    /// Back in service on the new version: nothing to do.
    Done,
    /// Updated but not back in service yet.
    Updated,
    /// Drained (its update may have started).
    Drained,
}

/// Why a roll did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollError {
    /// Refused before any member was touched.
    #[error("{0}")]
    Refused(String),
    /// Stopped at a member: which, and why.
    #[error("{0}")]
    Stopped(String),
}

/// Rolls `unit` out to `plan.version`.
pub async fn roll(
    controller: &Controller,
    unit: &Unit,
    plan: &RollPlan,
    progress: &(dyn Fn(&Step) + Sync),
) -> Result<(), RollError> {
    let stood = prepare(controller, unit, plan)
        .await
        .map_err(RollError::Refused)?;
    let Some(lb) = &unit.lb else {
        return Err(RollError::Refused("no [unit.lb]".to_owned()));
    };
    let haproxy = Haproxy::new(lb.endpoint.clone(), HAPROXY_TIMEOUT);
    if !plan.resume {
        journal(
            controller,
            unit,
            json!({"phase": "started", "version": plan.version,
            "by": Controller::by(), "max_unavailable": plan.max_unavailable}),
        );
    }
    let pending: Vec<&Member> = unit
        .members
        .iter()
        .filter(|member| stood.get(&member.vm) != Some(&Stood::Done))
        .collect();
    for batch in pending.chunks(plan.max_unavailable.max(1)) {
        let pairs: Vec<(&Unit, &Member)> = batch.iter().map(|member| (unit, *member)).collect();
        let results = controller
            .agents
            .each(&pairs, |unit, member| {
                let roller = Roller {
                    controller,
                    unit,
                    lb,
                    haproxy: &haproxy,
                    plan,
                    progress,
                };
                let stood = stood.get(&member.vm).cloned();
                async move { roller.member(member, stood).await }
            })
            .await;
        if let Some(error) = results.into_iter().find_map(Result::err) {
            journal(
                controller,
                unit,
                json!({"phase": "ended", "version": plan.version,
                "ok": false, "error": error}),
            );
            return Err(RollError::Stopped(error));
        }
    }
    journal(
        controller,
        unit,
        json!({"phase": "ended", "version": plan.version, "ok": true}),
    );
    Ok(())
}

/// Everything checked before a member is touched: the load balancer maps
/// every member, there is (with --resume) or is not (without) an
/// interrupted roll, and the unit has the healthy members to spare.
/// Gives where each member of an interrupted roll stood.
async fn prepare(
    controller: &Controller,
    unit: &Unit,
    plan: &RollPlan,
) -> Result<BTreeMap<String, Stood>, String> {
    let lb = unit.lb.as_ref().ok_or_else(|| {
        format!(
            "unit `{}` has no [unit.lb]: a rolling update needs the load balancer",
            unit.name
        )
    })?;
    if let Some(member) = unit
        .members
        .iter()
        .find(|m| !lb.servers.contains_key(&m.vm))
    {
        return Err(format!(
            "VM `{}` has no HAProxy server in [unit.lb] members",
            member.vm
        ));
    }
    let stood = if plan.resume {
        interrupted(controller, unit, &plan.version)?
    } else {
        if interrupted(controller, unit, &plan.version).is_ok() {
            return Err(format!(
                "a roll of `{}` to {} was interrupted: continue it with --resume",
                unit.name, plan.version
            ));
        }
        BTreeMap::new()
    };
    enough_healthy(controller, unit, plan, &stood).await?;
    Ok(stood)
}

/// One member's part in a roll.
struct Roller<'a> {
    controller: &'a Controller,
    unit: &'a Unit,
    lb: &'a LoadBalancer,
    haproxy: &'a Haproxy,
    plan: &'a RollPlan,
    progress: &'a (dyn Fn(&Step) + Sync),
}

impl Roller<'_> {
    /// Drain, update, ready: from where an interrupted roll left the member.
    async fn member(&self, member: &Member, stood: Option<Stood>) -> Result<(), String> {
        let server = &self.lb.servers[&member.vm];
        let failed = |detail: String| {
            self.step(member, "failed", &detail);
            format!("{}: {detail}", member.vm)
        };
        if stood.is_none() {
            self.step(member, "draining", &format!("{}/{server}", self.lb.backend));
            let drained = self
                .haproxy
                .drain(&self.lb.backend, server, self.plan.drain_timeout, |_| {})
                .await
                .map_err(|e| failed(e.to_string()))?;
            let detail = if drained.emptied() {
                format!(
                    "no session left after {:.1} s",
                    drained.waited.as_secs_f64()
                )
            } else {
                format!(
                    "{} sessions still open after {}; updating anyway",
                    drained.sessions_left,
                    humantime::format_duration(self.plan.drain_timeout)
                )
            };
            self.step(member, "drained", &detail);
        }
        if stood != Some(Stood::Updated) && !self.already_updated(member).await? {
            self.step(member, "updating", &format!("to {}", self.plan.version));
            let started = Instant::now();
            let request = UpdateRequest {
                version: self.plan.version.clone(),
                health_timeout: Some(
                    humantime::format_duration(self.plan.health_timeout).to_string(),
                ),
                healthy_checks: None,
            };
            let app = &self.unit.app;
            let within = self.update_timeout();
            let done = self
                .controller
                .agents
                .call_within(member, within, |client| async move {
                    client.update(app, &request).await
                })
                .await
                .map_err(failed)?;
            self.step(
                member,
                "updated",
                &format!("{} ({:.1} s)", done.done, started.elapsed().as_secs_f64()),
            );
        }
        let waited = self
            .haproxy
            .ready_and_up(&self.lb.backend, server, self.plan.health_timeout)
            .await
            .map_err(|e| failed(e.to_string()))?;
        self.step(
            member,
            "ready",
            &format!("UP in HAProxy after {:.1} s", waited.as_secs_f64()),
        );
        Ok(())
    }

    /// Whether the member already runs the version (an update that ran
    /// while the controller was gone); waits for one still running.
    async fn already_updated(&self, member: &Member) -> Result<bool, String> {
        let app = &self.unit.app;
        let deadline = Instant::now() + self.update_timeout();
        loop {
            let report = self.controller.agents.status(member).await?;
            let status = report
                .app(app)
                .ok_or_else(|| format!("{}: the agent does not watch `{app}`", member.vm))?;
            let updating = status
                .maintenance
                .as_ref()
                .is_some_and(|window| window.reason.starts_with("update to "));
            if !updating {
                return Ok(status.version.as_deref() == Some(self.plan.version.as_str()));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{}: an update is still running on the agent",
                    member.vm
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// How long an agent's update may take: its health wait, its
    /// rollback's, and its commands.
    fn update_timeout(&self) -> Duration {
        self.plan.health_timeout * 2 + Duration::from_secs(300)
    }

    fn step(&self, member: &Member, step: &str, detail: &str) {
        let step = Step {
            vm: member.vm.clone(),
            step: step.to_owned(),
            detail: detail.to_owned(),
        };
        journal(
            self.controller,
            self.unit,
            json!({"phase": "member", "version": self.plan.version, "vm": step.vm,
                   "step": step.step, "detail": step.detail}),
        );
        (self.progress)(&step);
    }
}

/// Refuses a roll that would take the unit below what `max_unavailable`
/// allows: members already unhealthy (not counting those an interrupted
/// roll left out of service) plus one batch must fit.
async fn enough_healthy(
    controller: &Controller,
    unit: &Unit,
    plan: &RollPlan,
    stood: &BTreeMap<String, Stood>,
) -> Result<(), String> {
    let survey = super::survey::Survey::take(&[unit], &controller.agents, None).await;
    let down: Vec<&str> = survey
        .members
        .iter()
        .filter(|member| !member.is_healthy() && !stood.contains_key(&member.vm))
        .map(|member| member.vm.as_str())
        .collect();
    if down.len() >= plan.max_unavailable {
        return Err(format!(
            "unit `{}` already has {} member(s) not healthy ({}): a roll with --max-unavailable {} would take more out of service",
            unit.name,
            down.len(),
            down.join(", "),
            plan.max_unavailable
        ));
    }
    Ok(())
}

/// Where each member of the last roll of `unit` to `version` stood, if
/// that roll started and never ended; `Err` when there is none to resume.
fn interrupted(
    controller: &Controller,
    unit: &Unit,
    version: &str,
) -> Result<BTreeMap<String, Stood>, String> {
    let roll = in_progress(controller, &unit.name)
        .ok_or_else(|| format!("no interrupted roll of `{}` to resume", unit.name))?;
    if roll.version != version {
        return Err(format!(
            "the interrupted roll of `{}` is to {}, not {version}",
            unit.name, roll.version
        ));
    }
    Ok(roll
        .steps
        .into_iter()
        .map(|(vm, step)| {
            let stood = match step.as_str() {
                "ready" => Stood::Done,
                "updated" => Stood::Updated,
                _ => Stood::Drained,
            };
            (vm, stood)
        })
        .collect())
}

fn journal(controller: &Controller, unit: &Unit, detail: serde_json::Value) {
    controller
        .journal
        .record(Event::new(Some(&unit.name), Kind::UnitRoll, detail));
}
