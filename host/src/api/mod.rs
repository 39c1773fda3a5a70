//! The admin API: JSON over HTTP on a unix socket (`[daemon] socket`).
//!
//! A unix socket needs no port, no TLS and no password: the kernel says who
//! is calling (`SO_PEERCRED`), and that uid goes into the journal with every
//! action. Root, medic's own user and members of `[daemon] socket_group`
//! may call; the socket file is mode 0660 as a second fence.
//!
//! Routes (all JSON; errors are `{"error": "..."}` with a 4xx/5xx status):
//! - `GET /v1/status`: every app's status, the reset budget, maintenance.
//! - `POST /v1/apps/{app}/check`: a check now; the result.
//! - `POST /v1/apps/{app}/recover`: local recovery now; what ran.
//! - `POST /v1/maintenance`: `{"on": bool, "app"?: "web", "for"?: "30m",
//!   "reason"?: "..."}`.
//! - `GET /v1/events?app=&follow=`: the journal as JSON lines, then (with
//!   `follow=true`) new events as they are written.
//! - `POST /v1/reload`: like SIGHUP; `{"applied": {...}}` or 422 with
//!   `errors`.

pub mod client;
mod peer;
mod server;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use server::{ApiState, bind, serve};

/// Where the socket is when nothing says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/medic/medic.sock";

/// The body of `POST /v1/maintenance`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MaintenanceRequest {
    /// Start (`true`) or end (`false`) a window.
    pub on: bool,
    /// The app, or `None` for the global window.
    pub app: Option<String>,
    /// How long (humantime, e.g. `30m`); required to start one.
    #[serde(rename = "for")]
    pub duration: Option<String>,
    /// Why, for the journal and `medic status`.
    pub reason: Option<String>,
}

/// What a reload changed, by app name: the daemon's answer to `POST
/// /v1/reload`, journaled as `reload_applied`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Changes {
    /// Apps now watched that were not.
    pub added: Vec<String>,
    /// Apps no longer watched.
    pub removed: Vec<String>,
    /// Apps whose spec or kit changed (or that depend on one that did):
    /// their supervisor was replaced.
    pub changed: Vec<String>,
}
