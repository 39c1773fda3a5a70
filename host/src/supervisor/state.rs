//! The recovery ladder as a pure function: `next(state, event, policy) ->
//! actions`. No IO and no clock: time comes in with each event, so every
//! transition is unit-tested on its own and the executor only does what it
//! is told.
//!
//! healthy → `failures_before_action` failed checks in a row → local
//! recovery (kit `recover`, then `stop`+`start` when asked or when the kit
//! has no recovery of its own), at most `local_attempts` per `window` with
//! exponential backoff → `then` (`vm-reset`, `alert`, `none`). A refused
//! reset, an alert or `none` hold the app in *manual* state.
//!
//! Only evidence moves the app down the ladder. Kit faults are reported and
//! never count as the app being down, except a check that hits its deadline
//! `timeouts_before_failure` times in a row (a hung app hangs its check). A
//! check that cannot judge (`unknown`) is reported once and never acted on.
//! A VM reset needs a failed check after a finished local recovery step.

use crate::hypervisor::ResetOutcome;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::config::Then;
use crate::journal::Kind;

/// The thresholds of one app, fixed while its config is unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Time between checks while nothing is wrong.
    pub interval: Duration,
    /// Failed checks in a row before recovery starts.
    pub failures_before_action: u32,
    /// Local recovery attempts allowed per `window`.
    pub local_attempts: u32,
    /// The window over which attempts are counted.
    pub window: Duration,
    /// Wait after the first attempt before re-checking; doubled each attempt.
    pub backoff: Duration,
    /// What follows when local recovery is spent.
    pub then: Then,
    /// Whether the app has `start` (so a restart is possible).
    pub can_restart: bool,
    /// After a start or restart, failed checks do not count for this long
    /// (or until a check passes): a slow starter is not killed for being
    /// slow.
    pub start_grace: Duration,
    /// More than this many failures within `flap_window` hold the app in
    /// manual with an alert instead of restarting it forever; 0 disables.
    pub max_flaps: u32,
    /// The window `max_flaps` counts over.
    pub flap_window: Duration,
    /// Checks that hit their deadline this many times in a row count as a
    /// failed check, each one from then on: a hung app hangs its check.
    pub timeouts_before_failure: u32,
    /// No escalation before this instant: medic's start plus the larger of
    /// `min_uptime` and `interval × failures_before_action`, so a freshly
    /// started medic (or a freshly reset VM) never resets on stale evidence.
    pub no_escalation_before: Instant,
}

/// Where the app is on the ladder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Serving, or failing fewer than `failures_before_action` times in a row.
    Healthy,
    /// Local recovery under way; the next failed check uses another attempt.
    Recovering,
    /// Waiting for the escalation backend's answer.
    Escalating,
    /// Held until an admin acts (or the app passes a check on its own).
    Manual(String),
}

/// What a check found, including the kit itself failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The app is fine.
    Healthy,
    /// The app works with a problem.
    Degraded(String),
    /// The app is down.
    Failed(String),
    /// The check cannot judge (bad setting, refused credential): nothing a
    /// restart could fix, so nothing is done but report it.
    Unknown(String),
    /// The kit failed; nothing is known about the app.
    KitFault(String),
    /// The kit call hit its deadline: a kit fault, unless it keeps
    /// happening (see [`Policy::timeouts_before_failure`]).
    TimedOut(String),
}

impl CheckOutcome {
    /// The result it is shown and counted as; a timeout is a kit fault.
    pub fn result(&self) -> crate::status::CheckResult {
        use crate::status::CheckResult;
        match self {
            Self::Healthy => CheckResult::Healthy,
            Self::Degraded(_) => CheckResult::Degraded,
            Self::Failed(_) => CheckResult::Failed,
            Self::Unknown(_) => CheckResult::Unknown,
            Self::KitFault(_) | Self::TimedOut(_) => CheckResult::KitFault,
        }
    }
}

/// How the kit's `recover` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KitRecovery {
    /// The kit repaired the app.
    Done,
    /// The kit asks for `stop` + `start`.
    RestartApp,
    /// The kit gives up on local recovery.
    Escalate(String),
    /// The recovery step failed.
    Failed(String),
    /// The kit faulted while recovering.
    KitFault(String),
}

/// Something that happened to the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A check finished.
    Checked(CheckOutcome),
    /// The kit's `recover` finished.
    KitRecovered(KitRecovery),
    /// `stop` + `start` finished; `Err` says what failed.
    Restarted(Result<(), String>),
    /// The escalation backend answered.
    ResetDone(ResetOutcome),
    /// The app's process exited (seen through its pidfd): down for sure,
    /// without waiting for more checks.
    ProcessExited(String),
    /// An admin asked for local recovery now (`medic recover`); the text
    /// says who. It does not use up an attempt and releases a held app.
    AdminRecover(String),
}

/// What the executor must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write this event to the journal (before the actions after it).
    Journal(Kind, serde_json::Value),
    /// Call the kit's `recover` with this attempt number.
    KitRecover(u32),
    /// Run the app's `stop` then `start`.
    Restart(u32),
    /// Ask the escalation backend for a VM reset (it applies the budget).
    RequestReset(String),
    /// Check again after this long instead of after `interval`.
    CheckAfter(Duration),
}

/// The app's state on the ladder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppState {
    /// Where the app is.
    pub phase: Phase,
    /// Failed checks in a row.
    pub consecutive_failures: u32,
    /// When each local attempt of the current window started.
    pub attempts: Vec<Instant>,
    /// Whether the last check said degraded (to journal only transitions).
    pub degraded: bool,
    /// Kit faults in a row; only the first of a streak is journaled so a
    /// broken kit cannot flood the journal.
    pub kit_faults: u32,
    /// Failed checks do not count before this (start grace).
    pub grace_until: Option<Instant>,
    /// When the app went down, within `flap_window`.
    pub failures_at: Vec<Instant>,
    /// Checks in a row that hit their deadline.
    pub timeouts: u32,
    /// Whether the last check could not judge (to journal only the first
    /// of a streak).
    pub unknown: bool,
    /// Whether a local recovery step (kit `recover`, restart) finished in
    /// this episode of being down.
    pub local_step_done: bool,
    /// Whether a failed check came after such a step: the evidence a VM
    /// reset needs, that local recovery ran and did not help.
    pub down_after_local_step: bool,
}

impl Default for AppState {
    fn default() -> Self {
        Self {
            phase: Phase::Healthy,
            consecutive_failures: 0,
            attempts: Vec::new(),
            degraded: false,
            kit_faults: 0,
            grace_until: None,
            failures_at: Vec::new(),
            timeouts: 0,
            unknown: false,
            local_step_done: false,
            down_after_local_step: false,
        }
    }
}

impl AppState {
    /// A fresh ladder for an app an admin just started: in its start grace,
    /// so a slow starter is not taken for a failed one.
    pub fn starting(policy: &Policy, now: Instant) -> Self {
        Self {
            grace_until: (!policy.start_grace.is_zero()).then(|| now + policy.start_grace),
            ..Self::default()
        }
    }
}

/// Moves the app along the ladder. `now` is when `event` happened.
pub fn next(state: &mut AppState, event: Event, policy: &Policy, now: Instant) -> Vec<Action> {
    state
        .attempts
        .retain(|at| now.saturating_duration_since(*at) < policy.window);
    state
        .failures_at
        .retain(|at| now.saturating_duration_since(*at) < policy.flap_window);
    match event {
        Event::Checked(CheckOutcome::Failed(_))
            if state.grace_until.is_some_and(|end| now < end) =>
        {
            // Still starting: not down yet.
            Vec::new()
        }
        Event::Checked(outcome) => checked(state, outcome, policy, now),
        Event::ProcessExited(reason) => {
            // No need to wait for more failed checks: the process is gone.
            state.grace_until = None;
            state.consecutive_failures = state
                .consecutive_failures
                .max(policy.failures_before_action.saturating_sub(1));
            checked(state, CheckOutcome::Failed(reason), policy, now)
        }
        Event::KitRecovered(recovery) => {
            state.local_step_done = true;
            kit_recovered(state, recovery, policy, now)
        }
        Event::Restarted(result) => {
            state.local_step_done = true;
            let mut actions = Vec::new();
            match result {
                Ok(()) if !policy.start_grace.is_zero() => {
                    state.grace_until = Some(now + policy.start_grace);
                }
                Ok(()) => {}
                Err(error) => actions.push(Action::Journal(
                    Kind::RecoveryFailed,
                    json!({"step": "restart", "error": error}),
                )),
            }
            actions.push(Action::CheckAfter(backoff(state, policy)));
            actions
        }
        Event::AdminRecover(_) if state.phase == Phase::Escalating => Vec::new(),
        Event::AdminRecover(by) => {
            state.phase = Phase::Recovering;
            state.consecutive_failures = 0;
            state.grace_until = None;
            vec![
                Action::Journal(
                    Kind::RecoveryAttempt,
                    json!({"attempt": 0, "of": policy.local_attempts, "reason": "asked by an admin", "by": by}),
                ),
                Action::KitRecover(0),
            ]
        }
        Event::ResetDone(ResetOutcome::Reset) => {
            // The VM was (or, in dry-run, would have been) reset: whatever
            // runs next starts from a clean slate.
            *state = AppState::default();
            Vec::new()
        }
        Event::ResetDone(ResetOutcome::Refused(reason)) => {
            hold(state, format!("reset refused: {reason}"))
        }
    }
}

fn checked(
    state: &mut AppState,
    outcome: CheckOutcome,
    policy: &Policy,
    now: Instant,
) -> Vec<Action> {
    if !matches!(
        outcome,
        CheckOutcome::KitFault(_) | CheckOutcome::TimedOut(_)
    ) {
        state.kit_faults = 0;
    }
    if !matches!(outcome, CheckOutcome::TimedOut(_)) {
        state.timeouts = 0;
    }
    if !matches!(outcome, CheckOutcome::Unknown(_)) {
        state.unknown = false;
    }
    match outcome {
        CheckOutcome::TimedOut(fault) => {
            state.timeouts = state.timeouts.saturating_add(1);
            let timeouts = state.timeouts;
            let mut actions = kit_fault(state, "check", fault.clone());
            let starting = state.grace_until.is_some_and(|end| now < end);
            if !starting
                && policy.timeouts_before_failure > 0
                && timeouts >= policy.timeouts_before_failure
            {
                let reason = format!("check timed out {timeouts} times in a row: {fault}");
                actions.extend(failed(state, reason, policy, now));
            }
            actions
        }
        CheckOutcome::KitFault(fault) => kit_fault(state, "check", fault),
        CheckOutcome::Unknown(reason) => {
            // No evidence either way: a failure streak is broken, and
            // nothing is recovered on a verdict no restart could change.
            state.consecutive_failures = 0;
            state.degraded = false;
            if state.unknown {
                return Vec::new();
            }
            state.unknown = true;
            vec![Action::Journal(Kind::AppUnknown, json!({"reason": reason}))]
        }
        CheckOutcome::Healthy | CheckOutcome::Degraded(_) => {
            state.grace_until = None;
            state.local_step_done = false;
            state.down_after_local_step = false;
            let mut actions = Vec::new();
            if state.phase != Phase::Healthy {
                actions.push(Action::Journal(
                    Kind::AppRecovered,
                    json!({"attempts": state.attempts.len()}),
                ));
                state.phase = Phase::Healthy;
            }
            state.consecutive_failures = 0;
            match outcome {
                CheckOutcome::Degraded(reason) if !state.degraded => {
                    state.degraded = true;
                    actions.push(Action::Journal(
                        Kind::AppDegraded,
                        json!({"reason": reason}),
                    ));
                }
                CheckOutcome::Degraded(_) => {}
                _ => state.degraded = false,
            }
            actions
        }
        CheckOutcome::Failed(reason) => failed(state, reason, policy, now),
    }
}

/// A failed check (or a process exit, or a check timing out once too
/// often): counts toward recovery.
fn failed(state: &mut AppState, reason: String, policy: &Policy, now: Instant) -> Vec<Action> {
    state.consecutive_failures = state.consecutive_failures.saturating_add(1);
    state.degraded = false;
    state.down_after_local_step |= state.local_step_done;
    match state.phase {
        Phase::Manual(_) | Phase::Escalating => Vec::new(),
        Phase::Healthy if state.consecutive_failures < policy.failures_before_action => Vec::new(),
        Phase::Healthy => {
            state.phase = Phase::Recovering;
            state.failures_at.push(now);
            let mut actions = vec![Action::Journal(
                Kind::AppFailed,
                json!({"reason": reason, "failures": state.consecutive_failures}),
            )];
            let flaps = u32::try_from(state.failures_at.len()).unwrap_or(u32::MAX);
            if policy.max_flaps > 0 && flaps > policy.max_flaps {
                let why = format!(
                    "flapping: down {flaps} times within {}; last failure: {reason}",
                    humantime::format_duration(policy.flap_window)
                );
                actions.push(Action::Journal(Kind::Alert, json!({"reason": why})));
                actions.extend(hold(state, why));
            } else {
                actions.extend(attempt_or_escalate(state, policy, now, &reason));
            }
            actions
        }
        Phase::Recovering => attempt_or_escalate(state, policy, now, &reason),
    }
}

/// Journals a kit fault, the first of a streak only, so a broken kit cannot
/// flood the journal.
fn kit_fault(state: &mut AppState, call: &str, fault: String) -> Vec<Action> {
    state.kit_faults = state.kit_faults.saturating_add(1);
    if state.kit_faults > 1 {
        return Vec::new();
    }
    vec![Action::Journal(
        Kind::KitFault,
        json!({"call": call, "fault": fault}),
    )]
}

fn kit_recovered(
    state: &mut AppState,
    recovery: KitRecovery,
    policy: &Policy,
    now: Instant,
) -> Vec<Action> {
    let attempt = attempt_number(state);
    match recovery {
        KitRecovery::Done => vec![Action::CheckAfter(backoff(state, policy))],
        KitRecovery::RestartApp if policy.can_restart => vec![Action::Restart(attempt)],
        KitRecovery::RestartApp => vec![
            Action::Journal(
                Kind::RecoveryFailed,
                json!({"step": "restart", "error": "the app has no `start` command"}),
            ),
            Action::CheckAfter(backoff(state, policy)),
        ],
        KitRecovery::Escalate(reason) => escalate(state, policy, now, &format!("kit: {reason}")),
        KitRecovery::Failed(error) => vec![
            Action::Journal(Kind::RecoveryFailed, json!({"step": "kit", "error": error})),
            Action::CheckAfter(backoff(state, policy)),
        ],
        KitRecovery::KitFault(fault) => {
            // A broken kit recovery is no reason to give up on the app: fall
            // back to the plain restart when there is one.
            let mut actions = vec![Action::Journal(
                Kind::KitFault,
                json!({"call": "recover", "fault": fault}),
            )];
            if policy.can_restart {
                actions.push(Action::Restart(attempt));
            } else {
                actions.push(Action::CheckAfter(backoff(state, policy)));
            }
            actions
        }
    }
}

/// Uses one local attempt if the window allows, otherwise escalates.
fn attempt_or_escalate(
    state: &mut AppState,
    policy: &Policy,
    now: Instant,
    reason: &str,
) -> Vec<Action> {
    let used = u32::try_from(state.attempts.len()).unwrap_or(u32::MAX);
    if used >= policy.local_attempts {
        return escalate(
            state,
            policy,
            now,
            &format!("{used} local attempts spent; last failure: {reason}"),
        );
    }
    state.attempts.push(now);
    let attempt = used + 1;
    vec![
        Action::Journal(
            Kind::RecoveryAttempt,
            json!({"attempt": attempt, "of": policy.local_attempts, "reason": reason}),
        ),
        Action::KitRecover(attempt),
    ]
}

fn escalate(state: &mut AppState, policy: &Policy, now: Instant, reason: &str) -> Vec<Action> {
    let mut actions = vec![Action::Journal(
        Kind::Escalation,
        json!({"then": policy.then.name(), "reason": reason}),
    )];
    match policy.then {
        Then::VmReset if now < policy.no_escalation_before => {
            // Stay in recovery: the next failed check after the guard
            // escalates again.
            actions[0] = Action::Journal(
                Kind::EscalationDeferred,
                json!({"then": "vm-reset", "reason": reason, "why": "medic has run for less than min_uptime or interval × failures_before_action"}),
            );
        }
        Then::VmReset if !state.down_after_local_step => {
            // The last safety net: a reset is a weapon, used only once a
            // local step has run and a check after it still found the app
            // down. Without that evidence, run (or wait for) local recovery.
            let why = "no evidence yet that local recovery ran and did not help: a VM reset needs a failed check after a finished local recovery step";
            if state.local_step_done {
                actions[0] = Action::Journal(
                    Kind::EscalationDeferred,
                    json!({"then": "vm-reset", "reason": reason, "why": why}),
                );
                actions.push(Action::CheckAfter(backoff(state, policy)));
            } else {
                let held = format!(
                    "vm-reset refused: {why} (local_attempts = {})",
                    policy.local_attempts
                );
                actions.push(Action::Journal(Kind::Alert, json!({"reason": held})));
                actions.extend(hold(state, held));
            }
        }
        Then::VmReset => {
            state.phase = Phase::Escalating;
            actions.push(Action::RequestReset(reason.to_owned()));
        }
        Then::Alert => {
            actions.push(Action::Journal(Kind::Alert, json!({"reason": reason})));
            actions.extend(hold(state, reason.to_owned()));
        }
        Then::None => actions.extend(hold(state, reason.to_owned())),
    }
    actions
}

fn hold(state: &mut AppState, reason: String) -> Vec<Action> {
    let action = Action::Journal(Kind::Manual, json!({"reason": reason}));
    state.phase = Phase::Manual(reason);
    vec![action]
}

/// The number of the attempt in progress (the last one started).
fn attempt_number(state: &AppState) -> u32 {
    u32::try_from(state.attempts.len())
        .unwrap_or(u32::MAX)
        .max(1)
}

/// Wait before re-checking after attempt n: `backoff × 2^(n-1)`, capped at
/// the window.
fn backoff(state: &AppState, policy: &Policy) -> Duration {
    let doublings = attempt_number(state).saturating_sub(1).min(16);
    policy
        .backoff
        .saturating_mul(1 << doublings)
        .min(policy.window)
}

#[cfg(test)]
mod tests;
