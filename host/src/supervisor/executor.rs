//! The per-app task: checks on schedule, runs the actions the ladder asks
//! for, and feeds their outcomes back.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::commands::run_command;
use super::pidfd::ProcessWatch;
use super::schedule::Cadence;
use super::state::{self, Action, AppState, CheckOutcome, Event, KitRecovery, Policy};
use super::status::{AppStatus, LastCheck};
use super::stop::Instance;
use super::update::UpdateOrder;
use crate::config::AppSpec;
use crate::hypervisor::Escalator;
use crate::journal::{self, Journal, Kind};
use crate::maintenance::Book;
use crate::metrics::Metrics;
use crate::process::PinnedProcess;
use crate::sandbox::{CallScope, Checked, Kit, KitFault, NextStep, Verdict};
use crate::status::State;
use crate::stopped::{Hold, Stopped};
use crate::versions::Versions;

/// What one check of an app found.
#[derive(Debug)]
pub struct AppCheck {
    /// The verdict, as the ladder takes it.
    pub outcome: CheckOutcome,
    /// The app's main process, as the kit reported it (pinned).
    pub process: Option<PinnedProcess>,
    /// What the kit added to the record of the check.
    pub annotations: Vec<(String, String)>,
}

impl From<Result<Checked, KitFault>> for AppCheck {
    fn from(checked: Result<Checked, KitFault>) -> Self {
        match checked {
            Ok(Checked {
                health,
                process,
                annotations,
            }) => Self {
                outcome: match health {
                    Verdict::Healthy => CheckOutcome::Healthy,
                    Verdict::Degraded(reason) => CheckOutcome::Degraded(reason),
                    Verdict::Failed(reason) => CheckOutcome::Failed(reason),
                    Verdict::Unknown(reason) => CheckOutcome::Unknown(reason),
                },
                process,
                annotations,
            },
            Err(fault) => Self {
                outcome: match fault {
                    KitFault::Timeout(_) => CheckOutcome::TimedOut(fault.to_string()),
                    _ => CheckOutcome::KitFault(fault.to_string()),
                },
                process: None,
                annotations: Vec::new(),
            },
        }
    }
}

/// Journal kinds that record a check's verdict, and so carry what the kit
/// added to the record of the check.
const CHECK_VERDICTS: [Kind; 2] = [Kind::AppFailed, Kind::AppDegraded];

/// Adds a check's annotations to a journal event's detail, as `"check"`.
fn with_annotations(
    kind: Kind,
    mut detail: serde_json::Value,
    annotations: &[(String, String)],
) -> serde_json::Value {
    if annotations.is_empty() || !CHECK_VERDICTS.contains(&kind) {
        return detail;
    }
    if let Some(object) = detail.as_object_mut() {
        let check = annotations
            .iter()
            .map(|(key, value)| (key.clone(), serde_json::Value::from(value.as_str())))
            .collect();
        object.insert("check".to_owned(), serde_json::Value::Object(check));
    }
    detail
}

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
    pub async fn check(&self) -> AppCheck {
        self.kit
            .check(self.scope.clone(), self.spec.timeout, &self.spec.settings)
            .await
            .into()
    }

    /// Watches the process the app's pidfile names, if it has one.
    fn watch_process(&self) -> Option<ProcessWatch> {
        self.spec.pidfile.as_deref().and_then(ProcessWatch::open)
    }

    /// What to watch after a check: the process the kit reported, when the
    /// app is up and has no pidfile of its own (which takes precedence) and
    /// the process is not the one already watched.
    fn adopt_reported(
        &self,
        outcome: &CheckOutcome,
        reported: Option<PinnedProcess>,
        watched: Option<ProcessWatch>,
    ) -> Option<ProcessWatch> {
        let up = matches!(outcome, CheckOutcome::Healthy | CheckOutcome::Degraded(_));
        match reported {
            Some(reported)
                if up
                    && self.spec.pidfile.is_none()
                    && watched.as_ref().map(ProcessWatch::pid) != Some(reported.pid()) =>
            {
                ProcessWatch::pinned(reported).or(watched)
            }
            _ => watched,
        }
    }

    /// Runs the kit's `recover` once (attempt counts from 1) and classifies
    /// the result.
    pub async fn kit_recover(&self, attempt: u32) -> KitRecovery {
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

    /// Stops the app, makes sure its old instance is gone, and starts it.
    /// `watched` is the app's main process as last seen (the pidfile is
    /// read when there is none); whatever of it outlives `stop` by
    /// `stop_grace` is killed, and that is journaled.
    async fn restart(
        &self,
        watched: Option<ProcessWatch>,
        journal: &Journal,
    ) -> Result<(), String> {
        self.stop(watched, journal).await;
        self.start().await
    }

    /// Whether [`AppRuntime::stop`] has anything to stop with: a `stop`
    /// command or a process medic knows.
    fn can_stop(&self, watched: Option<&ProcessWatch>) -> bool {
        self.spec.stop.is_some() || watched.is_some() || self.spec.pidfile.is_some()
    }

    /// Runs `stop` (or, without one, terminates the known process) and
    /// makes sure the old instance is gone, killing what outlives
    /// `stop_grace` (journaled). A failed `stop` is logged, not returned:
    /// it is expected when the app is already down.
    pub(super) async fn stop(&self, watched: Option<ProcessWatch>, journal: &Journal) {
        let name = &self.spec.name;
        let instance = watched
            .or_else(|| self.watch_process())
            .and_then(Instance::of);
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
        } else if let Some(instance) = &instance {
            instance.terminate();
        }
        if let Some(instance) = instance
            && let Some(killed) = instance.ensure_gone(self.spec.stop_grace).await
        {
            let after = humantime::format_duration(self.spec.stop_grace).to_string();
            tracing::warn!(app = %name, pid = killed.pid, "still running {after} after stop: killed");
            journal.record(journal::Event::new(
                Some(name),
                Kind::AppKilled,
                serde_json::json!({"pid": killed.pid, "pgid": killed.pgid, "after": after}),
            ));
        }
    }

    /// Runs `start`.
    pub(super) async fn start(&self) -> Result<(), String> {
        let name = &self.spec.name;
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

/// What every supervisor shares: where events go and who resets the VM.
#[derive(Clone)]
pub struct Shared {
    /// The durable journal.
    pub journal: Arc<Journal>,
    /// The one escalator of this VM.
    pub escalator: Arc<Escalator>,
    /// Prometheus numbers, when `[daemon] metrics` is set.
    pub metrics: Option<Arc<Metrics>>,
    /// Maintenance windows: checks are reported but not acted on.
    pub maintenance: Arc<Book>,
    /// Apps an admin stopped: neither checked nor recovered.
    pub stopped: Arc<Stopped>,
    /// The version each app runs, as `medic update` installed it.
    pub versions: Arc<Versions>,
}

/// Something an admin asks of a running supervisor.
#[derive(Debug)]
pub enum Command {
    /// Run a check now (it goes through the ladder like any other) and
    /// report it.
    CheckNow(oneshot::Sender<LastCheck>),
    /// Run local recovery now; `by` names who asked. Replies with what ran.
    RecoverNow {
        /// Who asked, for the journal (`uid 1000`).
        by: String,
        /// What ran, or why nothing did.
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Stop the app and hold it stopped (`medic stop`).
    Stop {
        /// Who asked, for the journal.
        by: String,
        /// Why, as the admin wrote it.
        reason: Option<String>,
        /// What was done, or why nothing was.
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Update the app to a version (`medic update`); replies when it is
    /// healthy on it, or the update failed (and was rolled back).
    Update {
        /// Who asked, for the journal.
        by: String,
        /// What to install and how to judge it.
        update: UpdateOrder,
        /// What was done, or why it failed.
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Start a stopped app and watch it again (`medic start`).
    Start {
        /// Who asked, for the journal.
        by: String,
        /// What was done, or why it failed.
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// The outside of a running supervisor: its commands and its status.
#[derive(Debug, Clone)]
pub struct AppHandle {
    /// Where commands go.
    pub commands: mpsc::Sender<Command>,
    /// The app's status, updated after every change.
    pub status: watch::Receiver<AppStatus>,
}

/// The inside of a running supervisor, the other ends of an [`AppHandle`].
pub struct AppChannels {
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) status: watch::Sender<AppStatus>,
}

/// A handle and the channels that serve it, for app `app` watched under
/// `policy`; made before its kit has loaded.
pub fn channels(app: &str, policy: &Policy) -> (AppHandle, AppChannels) {
    let (commands_tx, commands) = mpsc::channel(16);
    let mut initial = AppStatus::of(app, &AppState::default(), policy, std::time::Instant::now());
    // Nothing is known before the first check.
    initial.state = State::Starting;
    let (status, status_rx) = watch::channel(initial);
    (
        AppHandle {
            commands: commands_tx,
            status: status_rx,
        },
        AppChannels { commands, status },
    )
}

/// Why the supervisor woke up.
enum Wake {
    Check(Option<oneshot::Sender<LastCheck>>),
    Exited(u32),
    Recover(String, oneshot::Sender<Result<String, String>>),
    Stop(Hold, oneshot::Sender<Result<String, String>>),
    Start(String, oneshot::Sender<Result<String, String>>),
    Update(String, UpdateOrder, oneshot::Sender<Result<String, String>>),
    Dependencies,
}

/// Why the app is blocked: the first dependency that is down.
fn blocked_by(dependencies: &[watch::Receiver<AppStatus>]) -> Option<String> {
    dependencies.iter().find_map(|dependency| {
        let status = dependency.borrow();
        status
            .state
            .is_down()
            .then(|| format!("waiting for {} ({})", status.app, status.state))
    })
}

/// Resolves when a dependency's status changes; never without one. A
/// dependency whose supervisor ended is dropped.
async fn dependency_changed(dependencies: &mut Vec<watch::Receiver<AppStatus>>) {
    if dependencies.is_empty() {
        return std::future::pending().await;
    }
    let (result, index, rest) = futures_util::future::select_all(
        dependencies
            .iter_mut()
            .map(|dependency| Box::pin(dependency.changed())),
    )
    .await;
    drop(rest);
    if result.is_err() {
        dependencies.remove(index);
    }
}

/// Resolves when the watched process exits; never without one.
async fn exited(watch: &Option<ProcessWatch>) -> u32 {
    match watch {
        Some(watch) => {
            watch.exited().await;
            watch.pid()
        }
        None => std::future::pending().await,
    }
}

/// Watches one app until `shutdown` turns true. The first check runs at
/// once; a check also runs when an admin asks, and the ladder reacts at
/// once when the app's watched process exits.
pub async fn supervise(
    app: Arc<AppRuntime>,
    shared: Shared,
    mut channels: AppChannels,
    mut dependencies: Vec<watch::Receiver<AppStatus>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = app.spec.name.clone();
    let mut ladder = AppState::default();
    let mut next_check = Instant::now();
    let mut cadence = Cadence::new(&name, app.policy.interval);
    let mut process = app.watch_process();
    let mut last_check = None;
    let mut blocked = blocked_by(&dependencies);
    // An app an admin stopped stays stopped across restarts of medic.
    let mut held = shared.stopped.hold_of(&name);
    if let Some(hold) = &held {
        process = None;
        // No check will run to publish it: say so now.
        channels.status.send_modify(|status| {
            status.state = State::Stopped;
            status.reason = Some(hold.describe());
        });
        if let Some(metrics) = &shared.metrics {
            metrics.set_state(&name, State::Stopped);
        }
    }
    loop {
        let mut wake = tokio::select! {
            _ = tokio::time::sleep_until(next_check), if held.is_none() => Wake::Check(None),
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(command) = channels.commands.recv() => match command {
                Command::CheckNow(reply) => Wake::Check(Some(reply)),
                Command::RecoverNow { by, reply } => Wake::Recover(by, reply),
                Command::Stop { by, reason, reply } => {
                    Wake::Stop(Hold { since: SystemTime::now(), reason, by }, reply)
                }
                Command::Start { by, reply } => Wake::Start(by, reply),
                Command::Update { by, update, reply } => Wake::Update(by, update, reply),
            },
            pid = exited(&process) => Wake::Exited(pid),
            () = dependency_changed(&mut dependencies), if held.is_none() => Wake::Dependencies,
        };
        if let Wake::Dependencies = wake {
            let was_blocked = blocked.take().is_some();
            blocked = blocked_by(&dependencies);
            if was_blocked && blocked.is_none() {
                // What it waited for is back: see at once how it is.
                wake = Wake::Check(None);
            }
        }
        let mut recovery_reply = None;
        let mut annotations = Vec::new();
        let first = match wake {
            Wake::Check(reply) => {
                let started = Instant::now();
                let AppCheck {
                    outcome,
                    process: reported,
                    annotations: noted,
                } = app.check().await;
                let took = started.elapsed();
                process = app.adopt_reported(&outcome, reported, process.take());
                annotations = noted;
                tracing::debug!(app = %name, ?outcome, "checked");
                if let Some(metrics) = &shared.metrics {
                    metrics.check_finished(&name, outcome.result(), took);
                }
                let record = LastCheck::new(&outcome, took);
                if let Some(reply) = reply {
                    let _ = reply.send(record.clone());
                }
                last_check = Some(record);
                next_check = cadence.next_after(Instant::now());
                Some(Event::Checked(outcome))
            }
            Wake::Exited(pid) => {
                process = None;
                Some(Event::ProcessExited(format!("process {pid} exited")))
            }
            Wake::Recover(_, reply) if held.is_some() => {
                let _ = reply.send(Err(format!(
                    "{name} is stopped; `medic start {name}` starts it"
                )));
                None
            }
            Wake::Recover(by, reply) => {
                recovery_reply = Some(reply);
                Some(Event::AdminRecover(by))
            }
            Wake::Stop(hold, reply) => {
                let answer = if held.is_some() {
                    Ok(format!("{name} is already stopped"))
                } else if !app.can_stop(process.as_ref()) {
                    Err(format!(
                        "{name} has no `stop` command and no pidfile: medic cannot stop it"
                    ))
                } else {
                    hold_stopped(&app, &shared, &hold, process.take())
                        .await
                        .inspect(|_| {
                            ladder = AppState::default();
                            held = Some(hold);
                        })
                };
                let _ = reply.send(answer);
                None
            }
            Wake::Start(by, reply) => {
                let answer = match held.take() {
                    None => Ok(format!("{name} is not stopped; nothing to do")),
                    Some(hold) => {
                        let started = release_and_start(&app, &shared, &by).await;
                        if started.is_err() && shared.stopped.hold_of(&name).is_some() {
                            // Still held: the book could not be written.
                            held = Some(hold);
                        } else {
                            ladder = AppState::starting(&app.policy, Instant::now().into_std());
                            process = app.watch_process();
                            blocked = blocked_by(&dependencies);
                            next_check = Instant::now();
                        }
                        started
                    }
                };
                let _ = reply.send(answer);
                None
            }
            Wake::Update(_, _, reply) if held.is_some() => {
                let _ = reply.send(Err(format!(
                    "{name} is stopped; `medic start {name}` first"
                )));
                None
            }
            Wake::Update(by, order, reply) => {
                let updating = format!("updating to {}", order.version);
                channels.status.send_modify(|status| {
                    status.state = State::Maintenance;
                    status.reason = Some(updating);
                });
                let answer = super::update::run(&app, &shared, &by, &order, process.take()).await;
                ladder = AppState::default();
                process = app.watch_process();
                next_check = cadence.next_after(Instant::now());
                let _ = reply.send(answer);
                None
            }
            Wake::Dependencies => None,
        };
        let maintenance = shared.maintenance.active(&name, SystemTime::now());
        let mut done = Vec::new();
        let mut events = VecDeque::new();
        match first {
            // Reported, not acted on: no recovery, no escalation (and a
            // dependent waits for what it needs).
            Some(Event::Checked(_) | Event::ProcessExited(_))
                if maintenance.is_some() || blocked.is_some() || held.is_some() => {}
            Some(first) => events.push_back(first),
            None => {}
        }
        while let Some(event) = events.pop_front() {
            for action in state::next(&mut ladder, event, &app.policy, Instant::now().into_std()) {
                match action {
                    Action::Journal(kind, detail) => shared.journal.record(journal::Event::new(
                        Some(&name),
                        kind,
                        with_annotations(kind, detail, &annotations),
                    )),
                    Action::KitRecover(attempt) => {
                        let recovery = app.kit_recover(attempt).await;
                        done.push(format!("kit recover: {recovery:?}"));
                        events.push_back(Event::KitRecovered(recovery));
                    }
                    Action::Restart(_) => {
                        let result = app.restart(process.take(), &shared.journal).await;
                        done.push(match &result {
                            Ok(()) => "restart: ok".to_owned(),
                            Err(e) => format!("restart: {e}"),
                        });
                        // The pid is new after a restart.
                        process = app.watch_process();
                        events.push_back(Event::Restarted(result));
                    }
                    Action::RequestReset(reason) => {
                        // The call may take as long as the escalation
                        // timeout: meanwhile the app shows as escalating.
                        let state = super::status::state_of(&ladder, std::time::Instant::now());
                        channels.status.send_modify(|status| status.state = state);
                        if let Some(metrics) = &shared.metrics {
                            metrics.set_state(&name, state);
                        }
                        events.push_back(Event::ResetDone(
                            shared.escalator.request_reset(&name, &reason).await,
                        ));
                    }
                    Action::CheckAfter(wait) => next_check = Instant::now() + wait,
                }
            }
        }
        if let Some(reply) = recovery_reply {
            let _ = reply.send(match done.is_empty() {
                true => Err("an escalation is under way".to_owned()),
                false => Ok(done.join("; ")),
            });
        }
        if process.is_none() && held.is_none() && ladder.phase == state::Phase::Healthy {
            process = app.watch_process();
        }
        let mut status = AppStatus::of(&name, &ladder, &app.policy, std::time::Instant::now());
        status.last_check = last_check.clone();
        status.pid = process.as_ref().map(ProcessWatch::pid);
        if let Some(hold) = &held {
            status.state = State::Stopped;
            status.reason = Some(hold.describe());
        } else if maintenance.is_some() {
            status.state = State::Maintenance;
        } else if let Some(why) = &blocked {
            status.state = State::Blocked;
            status.reason = Some(why.clone());
        }
        status.maintenance = maintenance;
        status.version = shared.versions.of(&name).map(|installed| installed.version);
        if let Some(metrics) = &shared.metrics {
            metrics.set_state(&name, status.state);
        }
        channels.status.send_replace(status);
    }
}

/// `medic stop`: the hold is written and journaled before the app is
/// stopped, so a crash in between does not bring the app back.
async fn hold_stopped(
    app: &AppRuntime,
    shared: &Shared,
    hold: &Hold,
    watched: Option<ProcessWatch>,
) -> Result<String, String> {
    let name = &app.spec.name;
    shared
        .stopped
        .hold(name, hold.clone())
        .map_err(|e| e.to_string())?;
    shared.journal.record(journal::Event::new(
        Some(name),
        Kind::AppStopped,
        serde_json::json!({"by": hold.by, "reason": hold.reason}),
    ));
    app.stop(watched, &shared.journal).await;
    Ok(format!("{name} stopped"))
}

/// `medic start`: releases the hold (journaled) and runs `start`; an app
/// without `start` is only watched again. A failed `start` is reported,
/// and supervision resumes either way: the admin asked for the app to run.
async fn release_and_start(app: &AppRuntime, shared: &Shared, by: &str) -> Result<String, String> {
    let name = &app.spec.name;
    shared.stopped.release(name).map_err(|e| e.to_string())?;
    shared.journal.record(journal::Event::new(
        Some(name),
        Kind::AppStarted,
        serde_json::json!({"by": by}),
    ));
    if app.spec.start.is_none() {
        return Ok(format!("{name} has no `start` command; watched again"));
    }
    app.start()
        .await
        .map(|()| format!("{name} started"))
        .map_err(|e| format!("start: {e} (the app is watched again)"))
}
