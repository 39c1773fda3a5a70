//! The client verbs that talk to a running daemon through its admin API:
//! `status`, `recover`, `maintenance`, `events --follow` (and `check` when a
//! daemon runs). Each finds the socket through `--socket`, else the
//! `[daemon] socket` of `--config`, else the packaged default.

use std::path::PathBuf;
use std::process::ExitCode;

use hyper::Method;
use serde_json::{Value, json};

use crate::api::client::{Client, ClientError};

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
        let status = client.call(Method::GET, "/v1/status", None).await?;
        if as_json {
            println!("{status}");
        } else {
            print!("{}", status_text(&status));
        }
        Ok(())
    })
}

/// The status as a table for people.
fn status_text(status: &Value) -> String {
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| "-".to_owned())
    };
    let mut out = format!(
        "{:<16} {:<12} {:<26} {:>8} {:>8} {:>8}  {}\n",
        "APP", "STATE", "LAST CHECK", "FAILURES", "ATTEMPTS", "PID", "DETAIL"
    );
    for app in status["apps"].as_array().into_iter().flatten() {
        let last = &app["last_check"];
        let last_text = match last["result"].as_str() {
            Some(result) => format!("{result} {}", text(&last["at"])),
            None => "-".to_owned(),
        };
        let detail = [
            &app["reason"],
            &app["maintenance"]["reason"],
            &last["reason"],
        ]
        .into_iter()
        .find_map(|v| v.as_str())
        .unwrap_or("");
        out.push_str(&format!(
            "{:<16} {:<12} {:<26} {:>8} {:>8} {:>8}  {detail}\n",
            text(&app["app"]),
            text(&app["state"]),
            last_text,
            app["failures"],
            format!("{}/{}", app["attempts_used"], app["attempts_allowed"]),
            app["pid"]
                .as_u64()
                .map_or_else(|| "-".to_owned(), |p| p.to_string()),
        ));
    }
    let escalation = &status["escalation"];
    out.push_str(&format!(
        "escalation: {}, {} of {} resets left per {}\n",
        text(&escalation["backend"]),
        escalation["resets_left"],
        escalation["max_resets"],
        text(&escalation["reset_window"])
    ));
    let global = &status["maintenance"]["global"];
    if global.is_object() {
        out.push_str(&format!(
            "maintenance (all apps) until {}: {}\n",
            text(&global["until"]),
            text(&global["reason"])
        ));
    }
    out
}

/// `medic reload`: exit 0 when applied, 1 with every reason when refused
/// (the running config stays).
pub(super) fn reload(target: &Target) -> ExitCode {
    target.run(|client| async move {
        let answer = client.call(Method::POST, "/v1/reload", None).await?;
        let applied: crate::api::Changes = serde_json::from_value(answer["applied"].clone())
            .map_err(|e| ClientError::Transport(anyhow::anyhow!("the answer to reload: {e}")))?;
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
        let done = client
            .call(Method::POST, &format!("/v1/apps/{app}/recover"), None)
            .await?;
        println!("{app}: {}", done["done"].as_str().unwrap_or("done"));
        Ok(())
    })
}

/// `medic maintenance on|off [APP] [--for D] [--reason R]`.
pub(super) fn maintenance(
    target: &Target,
    on: bool,
    app: Option<&str>,
    duration: Option<&str>,
    reason: Option<&str>,
) -> ExitCode {
    if on && duration.is_none() {
        eprintln!("medic: maintenance needs an end: add --for DURATION (e.g. --for 30m)");
        return ExitCode::from(2);
    }
    let body = json!({"on": on, "app": app, "for": duration, "reason": reason});
    let scope = app.map_or_else(|| "all apps".to_owned(), str::to_owned);
    target.run(|client| async move {
        let answer = client
            .call(Method::POST, "/v1/maintenance", Some(&body))
            .await?;
        match (on, answer["window"]["until"].as_str()) {
            (true, Some(until)) => println!("maintenance on for {scope} until {until}"),
            (true, None) => println!("maintenance on for {scope}"),
            (false, _) if answer["ended"] == true => println!("maintenance off for {scope}"),
            (false, _) => println!("{scope} was not in maintenance"),
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
        client
            .lines(&path, |line| match serde_json::from_str(line) {
                Ok(event) if !as_json => println!("{}", super::events::text(&event)),
                _ => println!("{line}"),
            })
            .await
    })
}

/// App names are `[A-Za-z0-9_.-]+`, which need no escaping in a query; a
/// name outside that set is escaped byte by byte.
pub(super) fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether the daemon at `socket` answers at all (for `check`'s choice
/// between asking it and checking locally).
pub(super) fn daemon_socket(target: &Target) -> Option<PathBuf> {
    let socket = target.socket()?;
    std::os::unix::net::UnixStream::connect(&socket)
        .is_ok()
        .then_some(socket)
}
