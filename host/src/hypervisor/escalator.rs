//! The guard in front of the hypervisor: at most `max_resets` per
//! `reset_window`, counted from the journal so the count survives a restart
//! of medic and the reset itself, and decisions serialised across apps.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::sync::Mutex;

use super::Hypervisor;
use crate::config::EscalationSettings;
use crate::journal::{Event, Journal, Kind};
use crate::supervisor::ResetOutcome;

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

    /// Reads past resets from the journal's `vm_reset` events.
    pub fn from_journal(settings: &EscalationSettings, events: &[Event]) -> Self {
        let resets = events
            .iter()
            .filter(|e| e.kind == Kind::VmReset)
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

/// Decides on and carries out VM resets for every app.
pub struct Escalator {
    backend: Box<dyn Hypervisor>,
    journal: Arc<Journal>,
    budget: Mutex<ResetBudget>,
}

impl Escalator {
    /// An escalator over `backend` with the budget read back from `events`.
    pub fn new(backend: Box<dyn Hypervisor>, journal: Arc<Journal>, budget: ResetBudget) -> Self {
        Self {
            backend,
            journal,
            budget: Mutex::new(budget),
        }
    }

    /// Resets the VM for `app` if the budget allows. The `vm_reset` event is
    /// on disk before the backend is called; a refusal is journaled as
    /// `reset_refused`.
    pub async fn request_reset(&self, app: &str, reason: &str) -> ResetOutcome {
        let mut budget = self.budget.lock().await;
        let now = SystemTime::now();
        if budget.remaining(now) == 0 {
            let why = format!(
                "reset budget spent: {} of {} in the window",
                budget.used(now),
                budget.max_resets
            );
            self.journal.record(Event::new(
                Some(app),
                Kind::ResetRefused,
                json!({"reason": why, "backend": self.backend.name(), "max_resets": budget.max_resets, "reset_window": humantime::format_duration(budget.window).to_string()}),
            ));
            return ResetOutcome::Refused(why);
        }
        let event = Event::new(
            Some(app),
            Kind::VmReset,
            json!({"backend": self.backend.name(), "dry_run": self.backend.is_dry_run(), "reason": reason}),
        );
        if let Err(e) = self.journal.append(&event) {
            // Without the record the budget could not survive the reset:
            // resetting now could start a loop.
            let why = format!("cannot journal the reset first: {e}");
            tracing::error!("{why}");
            return ResetOutcome::Refused(why);
        }
        budget.spend(event.ts);
        match self.backend.reset().await {
            Ok(()) => ResetOutcome::Reset,
            Err(e) => {
                let why = e.to_string();
                self.journal.record(Event::new(
                    Some(app),
                    Kind::ResetRefused,
                    json!({"reason": why, "backend": self.backend.name(), "retryable": e.is_retryable()}),
                ));
                ResetOutcome::Refused(why)
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
    use crate::hypervisor::DryRun;

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

    #[tokio::test]
    async fn second_reset_is_refused_and_both_are_journaled_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(dir.path()).unwrap());
        let settings = EscalationSettings {
            backend: crate::config::Backend::DryRun,
            max_resets: 1,
            reset_window: HOUR,
        };
        let escalator = Escalator::new(
            Box::new(DryRun),
            journal.clone(),
            ResetBudget::from_journal(&settings, &[]),
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
        assert_eq!(kinds, vec![Kind::VmReset, Kind::ResetRefused]);
        assert_eq!(events[0].detail["dry_run"], json!(true));
        assert_eq!(events[0].detail["backend"], json!("dry-run"));
        let reread = ResetBudget::from_journal(&settings, &events);
        assert_eq!(
            reread.remaining(SystemTime::now()),
            0,
            "a restarted medic sees the spent budget"
        );
    }
}
