//! The sandbox that runs recovery kits.
//!
//! Every kit call gets a fresh store with the app's grants and nothing more
//! (deny by default), a memory cap and a deadline. Anything that goes wrong
//! inside a kit is a [`KitFault`], which the supervisor reports but never
//! mistakes for the application being down.

mod bindings;
mod engine;
pub mod env_grant;
mod host_impl;
mod http;
mod http_send;
mod kit;
mod kit_state;
mod kit_text;
pub mod lean_http;
mod name_lookup;
mod peer_certificate;
mod pinned_http;
mod policy;
mod secrets;
mod store;
mod tls_failure;
mod tls_socket;
mod tls_trust;
mod trusted;

use std::path::PathBuf;
use std::time::Duration;

pub use bindings::{Capability, HttpResponse, KitInfo, NextStep, SettingDoc, Verdict};
pub use engine::{KitEngine, LoadProgress};
pub use kit::{Checked, Kit};
pub use store::{CallScope, deadline_margin};

/// A line of text from outside medic (an app's output), shown to admins:
/// control characters escaped and cut at 1 KiB, as kits' reasons are.
pub fn tame_text(text: &str) -> String {
    kit_text::tame(text, kit_text::REASON_MAX)
}

/// Something went wrong inside a kit (not in the app it watches).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KitFault {
    /// The call did not finish within the app's `timeout`, mostly waiting
    /// (on a server, a program, a sleep): what a hung app does to its check.
    #[error("kit call exceeded its deadline of {0:?}")]
    Timeout(Duration),
    /// The call did not finish within the app's `timeout` because the kit
    /// kept computing (a loop): a kit bug that says nothing about the app.
    #[error("kit call exceeded its deadline of {0:?} while computing")]
    Spinning(Duration),
    /// The kit tried to grow its memory past the cap.
    #[error("kit hit its memory limit of {} MiB", .0 >> 20)]
    MemoryLimit(usize),
    /// The kit trapped (panic, unreachable, bad memory access...).
    #[error("kit trapped: {0}")]
    Trap(String),
    /// The kit used a capability that the app's grants do not open.
    #[error("kit was denied: {}", .0.join(", "))]
    Denied(Vec<String>),
    /// The store could not be set up (e.g. a granted directory is missing).
    #[error("kit sandbox setup failed: {0}")]
    Setup(String),
}

/// Why a kit file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The kit file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not WebAssembly at all.
    #[error("not a WebAssembly file (no \\0asm header)")]
    NotWasm,
    /// The bytes are WebAssembly but not a valid component.
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    /// The component imports something this host does not provide.
    #[error("component needs imports medic does not provide: {0}")]
    Link(String),
    /// The component does not export the `medic:kit/kit` interface.
    #[error("component is not a medic kit (world medic:kit/recovery-kit): {0}")]
    NotAKit(String),
    /// The kit's signature refused it (`require_signed`, `trusted_keys`).
    #[error("signature: {0}")]
    Signature(#[from] crate::signing::SigningError),
}
