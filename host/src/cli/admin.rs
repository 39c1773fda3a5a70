//! The client verbs that talk to a running daemon through its admin API:
//! `status`, `recover`, `stop`, `start`, `maintenance`, `reload`, `events
//! --follow` (and `check` when a daemon runs). Each finds the socket through `--socket`, else the
//! `[daemon] socket` of `--config`, else the packaged default.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::api::client::{Client, ClientError};
use crate::api::messages::{
    MaintenanceAnswer, MaintenanceRequest, StatusReport, StopRequest, UpdateRequest,
};

/// Where a client verb finds the daemon.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct Target {
    /// medic.toml whose [daemon] socket to use.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The daemon's socket (overrides --config).
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

impl Target {
    /// The socket to talk to, or `None` after printing why the config is bad.
    pub fn socket(&self) -> Option<PathBuf> {
        match (&self.socket, &self.config) {
            (Some(socket), _) => Some(socket.clone()),
            (None, Some(config)) => super::load_or_report(config).map(|c| c.daemon.socket),
            (None, None) => Some(PathBuf::from(crate::api::DEFAULT_SOCKET)),
        }
    }

    /// Runs `call` against the daemon; prints its error and exits 1 on failure.
    pub fn run<F>(&self, call: impl FnOnce(Client) -> F) -> ExitCode
    where
        F: Future<Output = Result<(), ClientError>>,
    {
        let Some(socket) = self.socket() else {
            return ExitCode::FAILURE;
        };
        let client = Client::new(&socket);
        match super::runtime().map(|rt| rt.block_on(call(client))) {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("medic: {e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("medic: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}

/// `medic status [--json]`.
pub(super) fn status(target: &Target, as_json: bool) -> ExitCode {
    target.run(|client| async move {
        let status = client.status().await?;
        if as_json {
            let json =
                serde_json::to_string(&status).map_err(|e| ClientError::Transport(e.into()))?;
            println!("{json}");
        } else {
            print!("{}", status_text(&status));
        }
        Ok(())
    })
}

/// The status as a table for people.
fn status_text(status: &StatusReport) -> String {
    let mut out = format!(
        "{:<16} {:<12} {:<26} {:>8} {:>8} {:>8}  {:<10} {}\n",
        "APP", "STATE", "LAST CHECK", "FAILURES", "ATTEMPTS", "PID", "VERSION", "DETAIL"
    );
    for app in &status.apps {
        let last = app.last_check.as_ref();
        let last_text = last.map_or_else(
            || "-".to_owned(),
            |last| {
                format!(
                    "{} {}",
                    last.result,
                    humantime::format_rfc3339_millis(last.at)
                )
            },
        );
        let detail = app.detail().unwrap_or("");
        out.push_str(&format!(
            "{:<16} {:<12} {:<26} {:>8} {:>8} {:>8}  {:<10} {detail}\n",
            app.app,
            app.state,
            last_text,
            app.failures,
            format!("{}/{}", app.attempts_used, app.attempts_allowed),
            app.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            app.version.as_deref().unwrap_or("-"),
        ));
    }
    let escalation = &status.escalation;
    out.push_str(&format!(
        "escalation: {}, {} of {} resets left per {}\n",
        escalation.backend, escalation.resets_left, escalation.max_resets, escalation.reset_window
    ));
    if let Some(global) = &status.maintenance.global {
        out.push_str(&format!(
            "maintenance (all apps) until {}: {}\n",
            humantime::format_rfc3339_millis(global.until),
            global.reason
        ));
    }
    out
}

/// `medic reload`: exit 0 when applied, 1 with every reason when refused
/// (the running config stays).
pub(super) fn reload(target: &Target) -> ExitCode {
    target.run(|client| async move {
        let applied = client.reload().await?;
        let names = |names: &[String]| {
            if names.is_empty() {
                "-".to_owned()
            } else {
                names.join(", ")
            }
        };
        println!(
            "reload applied: added {}; removed {}; changed {}",
            names(&applied.added),
            names(&applied.removed),
            names(&applied.changed)
        );
        Ok(())
    })
}

/// `medic recover APP`.
pub(super) fn recover(target: &Target, app: &str) -> ExitCode {
    target.run(|client| async move {
        let answer = client.recover(app).await?;
        println!("{app}: {}", answer.done);
        Ok(())
    })
}

/// `medic stop APP [--reason TEXT]`: exit 0 when the app is stopped (or
/// already was), 1 when it could not be.
pub(super) fn stop(target: &Target, app: &str, reason: Option<String>) -> ExitCode {
    target.run(|client| async move {
        let answer = client.stop(app, &StopRequest { reason }).await?;
        println!("{}", answer.done);
        Ok(())
    })
}

/// `medic update APP --version V`: exit 0 when the app is healthy on the
/// new version, 1 when the update failed (the answer says at which step and
/// what the rollback did).
pub(super) fn update(target: &Target, app: &str, request: UpdateRequest) -> ExitCode {
    target.run(|client| async move {
        let answer = client.update(app, &request).await?;
        println!("{}", answer.done);
        Ok(())
    })
}

/// `medic start APP`: exit 0 when `start` succeeded (or the app was not
/// stopped), 1 when it failed; supervision resumes either way.
pub(super) fn start(target: &Target, app: &str) -> ExitCode {
    target.run(|client| async move {
        let answer = client.start(app).await?;
        println!("{}", answer.done);
        Ok(())
    })
}

/// `medic maintenance on|off [APP] [--for D] [--reason R]`.
pub(super) fn maintenance(target: &Target, request: MaintenanceRequest) -> ExitCode {
    if request.on && request.duration.is_none() {
        eprintln!("medic: maintenance needs an end: add --for DURATION (e.g. --for 30m)");
        return ExitCode::from(2);
    }
    let scope = request.app.clone().unwrap_or_else(|| "all apps".to_owned());
    target.run(|client| async move {
        match client.maintenance(&request).await? {
            MaintenanceAnswer::Started { window } => println!(
                "maintenance on for {scope} until {}",
                humantime::format_rfc3339_millis(window.until)
            ),
            MaintenanceAnswer::Ended { ended: true } => println!("maintenance off for {scope}"),
            MaintenanceAnswer::Ended { ended: false } => {
                println!("{scope} was not in maintenance");
            }
        }
        Ok(())
    })
}

/// `medic events` through the daemon: the journal, then (with `follow`)
/// new events as they happen.
pub(super) fn events(
    target: &Target,
    selection: &super::events::Selection,
    follow: bool,
    as_json: bool,
) -> ExitCode {
    let path = format!("/v1/events?follow={follow}{}", selection.query());
    target.run(|client| async move {
        let mut out = super::events::Output::default();
        client
            .lines(&path, |line| match serde_json::from_str(line) {
                Ok(event) if !as_json => out.event(&event, false),
                _ => out.line(line),
            })
            .await
    })
}

/// Whether the daemon at `socket` answers at all (for `check`'s choice
/// between asking it and checking locally).
pub(super) fn daemon_socket(target: &Target) -> Option<PathBuf> {
    let socket = target.socket()?;
    std::os::unix::net::UnixStream::connect(&socket)
        .is_ok()
        .then_some(socket)
}
