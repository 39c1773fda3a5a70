//! The per-app task: checks on schedule, runs the actions the ladder asks
//! for, and feeds their outcomes back.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use super::commands::run_command;
use super::state::{self, Action, AppState, CheckOutcome, Event, KitRecovery, Policy};
use crate::config::AppSpec;
use crate::hypervisor::Escalator;
use crate::journal::{self, Journal};
use crate::sandbox::{CallScope, Health, Kit, NextStep};

/// Everything needed to watch one app.
pub struct AppRuntime {
    /// The app's validated config.
    pub spec: AppSpec,
    /// Its kit, loaded and linked.
    pub kit: Kit,
    /// What its kit calls may touch.
    pub scope: CallScope,
    /// The ladder's thresholds.
    pub policy: Policy,
    /// Where `start`/`stop` output goes.
    pub log_dir: std::path::PathBuf,
}

impl AppRuntime {
    /// Runs the kit's check once and classifies the result.
    pub async fn check(&self) -> CheckOutcome {
        match self
            .kit
            .check(self.scope.clone(), self.spec.timeout, &self.spec.settings)
            .await
        {
            Ok(Health::Healthy) => CheckOutcome::Healthy,
            Ok(Health::Degraded(reason)) => CheckOutcome::Degraded(reason),
            Ok(Health::Failed(reason)) => CheckOutcome::Failed(reason),
            Err(fault) => CheckOutcome::KitFault(fault.to_string()),
        }
    }

    async fn kit_recover(&self, attempt: u32) -> KitRecovery {
        match self
            .kit
            .recover(
                self.scope.clone(),
                self.spec.timeout,
                &self.spec.settings,
                attempt,
            )
            .await
        {
            Ok(Ok(NextStep::Done)) => KitRecovery::Done,
            Ok(Ok(NextStep::RestartApp)) => KitRecovery::RestartApp,
            Ok(Ok(NextStep::Escalate(reason))) => KitRecovery::Escalate(reason),
            Ok(Err(error)) => KitRecovery::Failed(error),
            Err(fault) => KitRecovery::KitFault(fault.to_string()),
        }
    }

    async fn restart(&self) -> Result<(), String> {
        let name = &self.spec.name;
        if let Some(stop) = &self.spec.stop {
            // A failed stop is expected when the app is already down.
            if let Err(e) = run_command(
                stop,
                self.spec.command_timeout,
                &self.log_dir.join(format!("{name}.stop.log")),
            )
            .await
            {
                tracing::info!(app = %name, "stop: {e}");
            }
        }
        let start = self
            .spec
            .start
            .as_ref()
            .ok_or("the app has no `start` command")?;
        run_command(
            start,
            self.spec.command_timeout,
            &self.log_dir.join(format!("{name}.start.log")),
        )
        .await
    }
}

/// Watches one app until `shutdown` turns true. The first check runs at once.
pub async fn supervise(
    app: Arc<AppRuntime>,
    journal: Arc<Journal>,
    escalator: Arc<Escalator>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = app.spec.name.clone();
    let mut ladder = AppState::default();
    let mut next_check = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_check) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        let outcome = app.check().await;
        tracing::debug!(app = %name, ?outcome, "checked");
        next_check = Instant::now() + app.policy.interval;
        let mut events = VecDeque::from([Event::Checked(outcome)]);
        while let Some(event) = events.pop_front() {
            for action in state::next(&mut ladder, event, &app.policy, Instant::now().into_std()) {
                match action {
                    Action::Journal(kind, detail) => {
                        journal.record(journal::Event::new(Some(&name), kind, detail))
                    }
                    Action::KitRecover(attempt) => {
                        events.push_back(Event::KitRecovered(app.kit_recover(attempt).await))
                    }
                    Action::Restart(_) => events.push_back(Event::Restarted(app.restart().await)),
                    Action::RequestReset(reason) => {
                        events.push_back(Event::ResetDone(
                            escalator.request_reset(&name, &reason).await,
                        ));
                    }
                    Action::CheckAfter(wait) => next_check = Instant::now() + wait,
                }
            }
        }
    }
}
