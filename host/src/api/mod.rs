//! The admin API: JSON over HTTP on a unix socket (`[daemon] socket`).
//!
//! A unix socket needs no port, no TLS and no password: the kernel says who
//! is calling (`SO_PEERCRED`), and that uid goes into the journal with every
//! action. Root, medic's own user and members of `[daemon] socket_group`
//! may call; the socket file is mode 0660 as a second fence.
//!
//! With `[daemon] listen`, the same routes are also served over TCP with
//! mutual TLS only ([`tls`]), for a caller on another host: its
//! certificate, signed by `client_ca` and named in `clients`, stands for
//! the peer credentials, and its name goes into the journal.
//!
//! The requests and answers are typed in [`messages`], shared by the server
//! and every client ([`client::Client`]'s typed calls).
//!
//! Routes (all JSON; errors are `{"error": "..."}` with a 4xx/5xx status):
//! - `GET /v1/status`: every app's status, the reset budget, maintenance.
//! - `POST /v1/apps/{app}/check`: a check now; the result.
//! - `POST /v1/apps/{app}/recover`: local recovery now; what ran.
//! - `POST /v1/apps/{app}/stop`: `{"reason"?: "..."}`; runs the app's
//!   `stop` and holds it stopped (not checked, not recovered) until
//!   `POST /v1/apps/{app}/start`, which runs `start` and resumes
//!   supervision. The hold survives a restart of medic.
//! - `POST /v1/maintenance`: `{"on": bool, "app"?: "web", "for"?: "30m",
//!   "reason"?: "..."}`.
//! - `GET /v1/events?app=&follow=`: the journal as JSON lines, then (with
//!   `follow=true`) new events as they are written.
//! - `POST /v1/reload`: like SIGHUP; `{"applied": {...}}` or 422 with
//!   `errors`.

mod calls;
pub mod client;
pub mod messages;
mod peer;
mod server;
#[cfg(test)]
mod tests;
pub mod tls;

pub(crate) use calls::url_escape;
pub use messages::{Changes, MaintenanceRequest};
pub use server::{ApiState, bind, serve};

/// Where the socket is when nothing says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/medic/medic.sock";
