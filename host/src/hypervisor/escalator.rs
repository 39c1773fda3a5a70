//! The guard in front of the hypervisor: at most `max_resets` per
//! `reset_window`, counted from the journal so the count survives a restart
//! of medic and the reset itself, and decisions serialised across apps.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::sync::Mutex;

use super::{Hypervisor, HypervisorError};
use crate::config::EscalationSettings;
use crate::journal::{Event, Filter, Journal, Kind};

/// How an escalation to the hypervisor ended, for the app that asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetOutcome {
    /// The reset was done (or, for dry-run, journaled).
    Reset,
    /// The reset was not done; the reason is already journaled.
    Refused(String),
}

/// The journal events the reset budget is counted from: the decisions
/// inside the window, and nothing else, so that reading them costs the
/// same after years of history.
pub fn budget_filter(settings: &EscalationSettings) -> Filter {
    let now = SystemTime::now();
    Filter {
        kinds: vec![Kind::ResetDecided],
        since: Some(
            now.checked_sub(settings.reset_window)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        ),
        ..Filter::default()
    }
}

/// How many resets the window still allows, from the times of past resets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetBudget {
    max_resets: u32,
    window: Duration,
    resets: Vec<SystemTime>,
}

impl ResetBudget {
    /// A budget over past `vm_reset` times (any order).
    pub fn new(max_resets: u32, window: Duration, resets: Vec<SystemTime>) -> Self {
        Self {
            max_resets,
            window,
            resets,
        }
    }

    /// Reads past reset decisions from the journal: a decision counts
    /// whether or not its outcome was ever written, because a real reset
    /// ends medic before it can write one.
    pub fn from_journal(settings: &EscalationSettings, events: &[Event]) -> Self {
        let resets = events
            .iter()
            .filter(|e| e.kind == Kind::ResetDecided)
            .map(|e| e.ts)
            .collect();
        Self::new(settings.max_resets, settings.reset_window, resets)
    }

    /// Resets done within the window ending at `now`.
    pub fn used(&self, now: SystemTime) -> u32 {
        let in_window = self
            .resets
            .iter()
            .filter(|at| {
                now.duration_since(**at)
                    .map_or(true, |age| age < self.window)
            })
            .count();
        u32::try_from(in_window).unwrap_or(u32::MAX)
    }

    /// Resets still allowed at `now`.
    pub fn remaining(&self, now: SystemTime) -> u32 {
        self.max_resets.saturating_sub(self.used(now))
    }

    /// Counts a reset done at `at`.
    pub fn spend(&mut self, at: SystemTime) {
        self.resets.push(at);
    }
}

/// Who asked for a reset and why, as the journal records it.
#[derive(Debug, Clone, Copy)]
pub struct ResetRequest<'a> {
    /// The app whose recovery failed; `None` for a manual reset.
    pub app: Option<&'a str>,
    /// Why: which checks failed, how many local attempts were used, or who
    /// asked from the command line.
    pub reason: &'a str,
    /// Reset even when the budget is spent (`medic vm reset --force`).
    pub force: bool,
}

/// How often and how patiently a failed reset call is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls in all, the first included.
    pub attempts: u32,
    /// Wait before the second call, doubled before each further one.
    pub backoff: Duration,
}

/// Decides on and carries out VM resets for every app.
pub struct Escalator {
    backend: Box<dyn Hypervisor>,
    journal: Arc<Journal>,
    budget: Mutex<ResetBudget>,
    retry: RetryPolicy,
}

impl Escalator {
    /// An escalator over `backend` with the budget read back from the
    /// journal.
    pub fn new(
        backend: Box<dyn Hypervisor>,
        journal: Arc<Journal>,
        budget: ResetBudget,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            backend,
            journal,
            budget: Mutex::new(budget),
            retry,
        }
    }

    /// The escalator `[escalation]` describes, with the budget read back
    /// from the journal's past `events`.
    pub fn from_settings(
        settings: &EscalationSettings,
        journal: Arc<Journal>,
        events: &[Event],
    ) -> Result<Self, HypervisorError> {
        Ok(Self::new(
            Box::new(super::from_settings(settings)?),
            journal,
            ResetBudget::from_journal(settings, events),
            RetryPolicy {
                attempts: settings.attempts,
                backoff: settings.retry_backoff,
            },
        ))
    }

    /// Tries the escalation path once (connect, credentials, VM lookup) and
    /// logs the result, so a broken path shows at start and not at the
    /// moment a reset is needed.
    pub async fn probe(&self) {
        match self.backend.identify().await {
            Ok(vm) => tracing::info!(backend = self.backend.name(), "escalation reaches {vm}"),
            Err(e) => tracing::warn!(
                backend = self.backend.name(),
                retryable = e.is_retryable(),
                "escalation cannot reach the VM; a reset would fail now: {e}"
            ),
        }
    }

    /// The backend, for status and identification.
    pub fn backend(&self) -> &dyn Hypervisor {
        self.backend.as_ref()
    }

    /// Resets the VM for `app` if the budget allows.
    pub async fn request_reset(&self, app: &str, reason: &str) -> ResetOutcome {
        self.reset(ResetRequest {
            app: Some(app),
            reason,
            force: false,
        })
        .await
    }

    /// Resets the VM if the budget allows (or `request.force`). The
    /// `reset_decided` event is on disk before the backend is called, so the
    /// budget survives the reset; a refusal is journaled as `reset_refused`
    /// and the outcome, verified against the power state, as `vm_reset`.
    pub async fn reset(&self, request: ResetRequest<'_>) -> ResetOutcome {
        let mut budget = self.budget.lock().await;
        let now = SystemTime::now();
        let backend = self.backend.name();
        if budget.remaining(now) == 0 && !request.force {
            let why = format!(
                "reset budget spent: {} of {} in the window",
                budget.used(now),
                budget.max_resets
            );
            self.journal.record(Event::new(
                request.app,
                Kind::ResetRefused,
                json!({"reason": why, "backend": backend, "max_resets": budget.max_resets, "reset_window": humantime::format_duration(budget.window).to_string()}),
            ));
            return ResetOutcome::Refused(why);
        }
        let decision = Event::new(
            request.app,
            Kind::ResetDecided,
            json!({"backend": backend, "dry_run": self.backend.is_dry_run(), "reason": request.reason, "forced": request.force, "resets_left": budget.remaining(now).saturating_sub(1)}),
        );
        if let Err(e) = self.journal.append(&decision) {
            // Without the record the budget could not survive the reset:
            // resetting now could start a loop.
            let why = format!("cannot journal the reset decision first: {e}");
            tracing::error!("{why}");
            // The app is down and the last resort is refused: a human must
            // act. The alert sinks hear of it even if the journal cannot.
            self.journal.record(Event::new(
                request.app,
                Kind::Alert,
                json!({"reason": format!("vm-reset refused: {why}")}),
            ));
            return ResetOutcome::Refused(why);
        }
        budget.spend(decision.ts);
        drop(budget);

        let (result, attempts) = self.call_with_retries().await;
        let mut detail =
            json!({"backend": backend, "dry_run": self.backend.is_dry_run(), "attempts": attempts});
        match result {
            Ok(proof) => {
                let power_state = self.backend.power_state().await;
                detail["outcome"] = json!("done");
                detail["proof"] = json!(proof);
                detail["power_state"] = match &power_state {
                    Ok(state) => json!(state),
                    Err(e) => json!(format!("unknown: {e}")),
                };
                self.journal
                    .record(Event::new(request.app, Kind::VmReset, detail));
                ResetOutcome::Reset
            }
            Err(e) => {
                let why = format!("{backend}: reset failed: {e}");
                tracing::error!(retryable = e.is_retryable(), "{why}");
                detail["outcome"] = json!("failed");
                detail["error"] = json!(e.message);
                detail["error_kind"] = json!(e.kind);
                detail["retryable"] = json!(e.is_retryable());
                self.journal
                    .record(Event::new(request.app, Kind::VmReset, detail));
                // The app is down and the last resort failed: a human must act.
                self.journal
                    .record(Event::new(request.app, Kind::Alert, json!({"reason": why})));
                ResetOutcome::Refused(why)
            }
        }
    }

    /// Calls the backend's reset until it succeeds, fails for good, or the
    /// attempts are spent; returns the last result and the calls made.
    async fn call_with_retries(&self) -> (Result<String, HypervisorError>, u32) {
        let mut wait = self.retry.backoff;
        let mut attempt = 1;
        loop {
            match self.backend.reset().await {
                Err(e) if e.is_retryable() && attempt < self.retry.attempts => {
                    tracing::warn!(attempt, "reset call failed, trying again in {wait:?}: {e}");
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                    attempt += 1;
                }
                result => return (result, attempt),
            }
        }
    }

    /// Resets the budget still allows now (for status output).
    pub async fn remaining(&self) -> u32 {
        self.budget.lock().await.remaining(SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::{DryRun, ErrorKind, PowerState};
    use std::sync::atomic::{AtomicU32, Ordering};

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn budget_counts_only_resets_inside_the_window() {
        let now = SystemTime::now();
        let budget = ResetBudget::new(2, HOUR, vec![now - 2 * HOUR, now - HOUR / 2]);
        assert_eq!(budget.used(now), 1);
        assert_eq!(budget.remaining(now), 1);
        assert_eq!(budget.remaining(now + HOUR), 2, "both resets aged out");
    }

    #[test]
    fn a_spent_budget_stays_spent_until_the_window_passes() {
        let now = SystemTime::now();
        let mut budget = ResetBudget::new(1, HOUR, Vec::new());
        assert_eq!(budget.remaining(now), 1);
        budget.spend(now);
        assert_eq!(budget.remaining(now + HOUR / 2), 0);
        assert_eq!(budget.remaining(now + HOUR), 1);
    }

    const NO_RETRY: RetryPolicy = RetryPolicy {
        attempts: 1,
        backoff: Duration::ZERO,
    };

    fn settings(max_resets: u32) -> EscalationSettings {
        EscalationSettings {
            max_resets,
            reset_window: HOUR,
            ..EscalationSettings::default()
        }
    }

    #[tokio::test]
    async fn second_reset_is_refused_and_both_are_journaled_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(dir.path()).unwrap());
        let settings = settings(1);
        let escalator = Escalator::new(
            Box::new(DryRun),
            journal.clone(),
            ResetBudget::from_journal(&settings, &[]),
            NO_RETRY,
        );
        assert_eq!(
            escalator.request_reset("web", "spent").await,
            ResetOutcome::Reset
        );
        assert!(matches!(
            escalator.request_reset("web", "spent").await,
            ResetOutcome::Refused(_)
        ));
        let events = crate::journal::read_all(dir.path()).unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![Kind::ResetDecided, Kind::VmReset, Kind::ResetRefused]
        );
        assert_eq!(events[0].detail["dry_run"], json!(true));
        assert_eq!(events[0].detail["backend"], json!("dry-run"));
        assert_eq!(events[1].detail["outcome"], json!("done"));
        let reread = ResetBudget::from_journal(&settings, &events);
        assert_eq!(
            reread.remaining(SystemTime::now()),
            0,
            "a restarted medic sees the spent budget"
        );
    }

    #[tokio::test]
    async fn force_resets_past_a_spent_budget_and_is_journaled_as_forced() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(dir.path()).unwrap());
        let escalator = Escalator::new(
            Box::new(DryRun),
            journal,
            ResetBudget::new(0, HOUR, Vec::new()),
            NO_RETRY,
        );
        let request = ResetRequest {
            app: None,
            reason: "manual",
            force: true,
        };
        assert_eq!(escalator.reset(request).await, ResetOutcome::Reset);
        let events = crate::journal::read_all(dir.path()).unwrap();
        assert_eq!(events[0].kind, Kind::ResetDecided);
        assert_eq!(events[0].detail["forced"], json!(true));
    }

    /// Issue 12 item 6: a line torn by a crash, invalid UTF-8 included,
    /// must not hide the `reset_decided` events after it, or a restarted
    /// medic would see a refilled budget and reset the VM too often.
    /// A legacy journal's decisions, around a torn line, are imported and
    /// counted by the budget read through `budget_filter`.
    #[test]
    fn imported_decisions_around_a_torn_line_keep_the_budget_spent() {
        let dir = tempfile::tempdir().unwrap();
        let decided = || {
            let event = Event::new(Some("web"), Kind::ResetDecided, json!({"reason": "test"}));
            let mut line = serde_json::to_vec(&event).unwrap();
            line.push(b'\n');
            line
        };
        let mut bytes = decided();
        bytes.extend_from_slice(b"{\"ts\":\"2026-01-01T00:00:00.000Z\",\"app\":\"w\xff\xfe\x80");
        bytes.push(b'\n');
        bytes.extend(decided());
        std::fs::write(dir.path().join(crate::journal::legacy::FILE_NAME), bytes).unwrap();
        drop(Journal::open(dir.path()).unwrap());

        let events =
            crate::journal::read_filtered(dir.path(), &budget_filter(&settings(2))).unwrap();
        let budget = ResetBudget::from_journal(&settings(2), &events);
        let now = SystemTime::now();
        assert_eq!(budget.used(now), 2, "both decisions count");
        assert_eq!(budget.remaining(now), 0, "the budget stays spent");
    }

    /// A backend whose reset fails with the given kinds, in order, then
    /// succeeds; a unit-test double for the retry logic (the real backends
    /// are tested against real hypervisors in tests/).
    struct Scripted {
        failures: std::sync::Mutex<Vec<ErrorKind>>,
        calls: Arc<AtomicU32>,
    }

    #[async_trait::async_trait]
    impl Hypervisor for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        async fn identify(&self) -> Result<String, HypervisorError> {
            Ok("scripted".into())
        }
        async fn power_state(&self) -> Result<PowerState, HypervisorError> {
            Ok(PowerState::On)
        }
        async fn reset(&self) -> Result<String, HypervisorError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut failures = self.failures.lock().unwrap();
            if failures.is_empty() {
                return Ok("done".into());
            }
            let kind = failures.remove(0);
            Err(HypervisorError::new(kind, format!("{kind:?}")))
        }
    }

    /// A `reset_decided` that cannot be written (the journal on a full
    /// disk, here a database that may not grow) refuses the reset before
    /// the backend is called, and the alerts saying why still reach the
    /// observers (the alert sinks), though they are not on disk either.
    #[tokio::test]
    async fn a_decision_that_cannot_be_journaled_is_no_reset_and_is_alerted() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(dir.path()).unwrap());
        journal.refuse_growth();
        let told = Arc::new(std::sync::Mutex::new(Vec::new()));
        let observed = told.clone();
        journal.observe(Box::new(move |event| {
            observed.lock().unwrap().push(event.clone());
        }));
        let calls = Arc::new(AtomicU32::new(0));
        let backend = Scripted {
            failures: std::sync::Mutex::new(Vec::new()),
            calls: calls.clone(),
        };
        let escalator = Escalator::new(
            Box::new(backend),
            journal,
            ResetBudget::new(1, HOUR, Vec::new()),
            NO_RETRY,
        );
        let outcome = escalator.request_reset("web", "test").await;
        let ResetOutcome::Refused(why) = outcome else {
            panic!("reset without its decision on disk: {outcome:?}");
        };
        assert!(
            why.starts_with("cannot journal the reset decision first")
                && why.contains("disk is full"),
            "{why}"
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "the backend was not called"
        );
        let told = told.lock().unwrap();
        let kinds: Vec<_> = told.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [Kind::Alert, Kind::Alert],
            "no reset_decided is told of"
        );
        assert_eq!(told[0].app, None);
        assert!(
            told[0].detail["reason"]
                .as_str()
                .unwrap()
                .starts_with("the journal cannot be written"),
            "{:?}",
            told[0]
        );
        assert_eq!(told[1].app.as_deref(), Some("web"));
        assert_eq!(
            told[1].detail["reason"],
            json!(format!("vm-reset refused: {why}"))
        );
    }

    /// Escalates once over [`Scripted`]; returns the outcome, the calls
    /// made, the `vm_reset` event and the kinds journaled.
    async fn run_scripted(failures: Vec<ErrorKind>) -> (ResetOutcome, u32, Event, Vec<Kind>) {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(dir.path()).unwrap());
        let calls = Arc::new(AtomicU32::new(0));
        let backend = Scripted {
            failures: std::sync::Mutex::new(failures),
            calls: calls.clone(),
        };
        let escalator = Escalator::new(
            Box::new(backend),
            journal,
            ResetBudget::new(1, HOUR, Vec::new()),
            RetryPolicy {
                attempts: 3,
                backoff: Duration::from_millis(1),
            },
        );
        let outcome = escalator.request_reset("web", "test").await;
        let events = crate::journal::read_all(dir.path()).unwrap();
        let outcome_event = events.iter().find(|e| e.kind == Kind::VmReset).unwrap();
        let kinds = events.iter().map(|e| e.kind).collect();
        (
            outcome,
            calls.load(Ordering::SeqCst),
            outcome_event.clone(),
            kinds,
        )
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_up_to_the_attempts() {
        use ErrorKind::{Timeout, Unreachable};
        let (outcome, calls, last, _) = run_scripted(vec![Timeout, Unreachable]).await;
        assert_eq!(outcome, ResetOutcome::Reset);
        assert_eq!(calls, 3);
        assert_eq!(last.detail["attempts"], json!(3));
        assert_eq!(last.detail["power_state"], json!("on"));

        let (outcome, calls, last, _) = run_scripted(vec![Timeout, Timeout, Timeout]).await;
        assert!(matches!(outcome, ResetOutcome::Refused(_)));
        assert_eq!(calls, 3, "never more than the attempts");
        assert_eq!(last.kind, Kind::VmReset);
        assert_eq!(last.detail["outcome"], json!("failed"));
        assert_eq!(last.detail["retryable"], json!(true));
    }

    #[tokio::test]
    async fn a_non_retryable_failure_is_not_retried() {
        use ErrorKind::BadCredentials;
        let (outcome, calls, last, _) = run_scripted(vec![BadCredentials]).await;
        assert!(matches!(outcome, ResetOutcome::Refused(_)));
        assert_eq!(calls, 1);
        assert_eq!(last.detail["error_kind"], json!("bad_credentials"));
        assert_eq!(last.detail["retryable"], json!(false));
    }

    #[tokio::test]
    async fn a_failed_reset_raises_an_alert() {
        let (_, _, _, kinds) = run_scripted(vec![ErrorKind::NotFound]).await;
        assert_eq!(kinds, [Kind::ResetDecided, Kind::VmReset, Kind::Alert]);
    }
}
