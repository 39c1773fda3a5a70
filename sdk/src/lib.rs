//! SDK for writing medic recovery kits.
//!
//! A recovery kit is a sandboxed WebAssembly component that checks one kind
//! of application and, when asked, tries one local repair step. This crate
//! hides the component-model plumbing so that a kit is one trait impl plus
//! one macro call:
//!
//! ```no_run
//! use medic_kit::{CheckResult, Context, Health, Kit, KitInfo, SettingDoc, export, host};
//!
//! struct Sshd;
//!
//! impl Kit for Sshd {
//!     fn describe() -> KitInfo {
//!         KitInfo {
//!             name: "sshd".into(),
//!             version: "0.1.0".into(),
//!             summary: "Checks that an sshd process runs.".into(),
//!             settings: vec![SettingDoc::required("name", "Process name.")],
//!             wants: vec![],
//!         }
//!     }
//!
//!     fn check(ctx: &Context) -> Health {
//!         medic_kit::verdict(sshd(ctx))
//!     }
//! }
//!
//! /// The check, written with `?`: a missing setting ends it as `unknown`,
//! /// since no restart can write it; a missing process is `failed`.
//! fn sshd(ctx: &Context) -> CheckResult {
//!     let name = ctx.require("name")?;
//!     if host::processes(name).is_empty() {
//!         return Err(Health::Failed(format!("no process named {name}")));
//!     }
//!     Ok(Health::Healthy)
//! }
//!
//! export!(Sshd);
//! ```
//!
//! Build it as a `cdylib` with `cargo build --target wasm32-wasip2 --release`;
//! the resulting `.wasm` file is the component medic loads.
//!
//! # Failed or unknown: one question
//!
//! A check that finds something wrong answers one question: **could
//! restarting the app fix this?**
//!
//! - Yes: [`Health::Failed`]. The server is down, refuses connections, does
//!   not answer in time, answers with the wrong status or body. Only this
//!   answer leads to recovery.
//! - No: [`Health::Unknown`]. A setting is missing or bad, a secret file
//!   cannot be read, the server refuses the kit's credentials, or it answers
//!   something the kit does not understand. Restarting the app would not
//!   change any of that, so medic alerts and waits instead of restarting a
//!   healthy app over and over.
//!
//! The SDK makes the second answer the easy one: the setting helpers
//! ([`Context::require`], [`Context::parse_or`], [`Context::timeout_ms_setting`])
//! and [`read_secret`] fail with [`CannotJudge`], which `?` turns into
//! [`Health::Unknown`] inside a function returning [`CheckResult`].
//!
//! # Deadlines
//!
//! Every call has a deadline, the app's `timeout`; a call still running
//! then is cut off as a *kit fault*, which never counts as the app being
//! down. So a kit ends its own waits a margin before it and reports what it
//! saw: [`Context::time_left`] and [`Context::wait_ms`] say how long a wait
//! may last, and [`Context::timeout_ms_setting`] turns a `timeout_ms` setting
//! into such a wait.
//!
//! Besides the `host` functions re-exported here, a kit may use WASI 0.2
//! through Rust's `std` (files, sockets, clocks, randomness) and, with the
//! `http` feature, outgoing HTTP. Everything is denied unless the app's
//! `[grants]` open it, so a kit should turn every error into a clear
//! reason instead of panicking: a panic is a kit fault, never a verdict
//! about the application.

#![warn(missing_docs)]

mod command;
mod context;
mod deadline;
#[cfg(feature = "expect")]
pub mod expect;
#[cfg(feature = "http")]
pub mod http;
mod judge;
mod legacy;
#[cfg(feature = "net")]
pub mod net;
pub mod testing;

pub use command::{Command, DEFAULT_TIMEOUT_MS};
pub use context::read_secret;
pub use deadline::{DEADLINE_NOT_TOLD, DEFAULT_DEADLINE_MS, deadline_margin};
pub use judge::{CannotJudge, CheckResult, verdict};
/// The regular-expression engine of `expect_regex` settings, for kits that
/// match answers themselves.
#[cfg(feature = "expect")]
pub use regex_lite;

/// Raw bindings generated from `wit/` by `wit-bindgen`.
///
/// Public only because [`export!`] expands to code that names them; kits use
/// the re-exports at the crate root and in [`host`] instead.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        // Every export: `kit` (for hosts before 0.1.2), the optional
        // `inspect` (see `Kit::app_settings`) and `calls`, which 0.1.2
        // hosts call instead of `kit.check` and `kit.recover`.
        world: "full-recovery-kit",
        pub_export_macro: true,
        export_macro_name: "__export_recovery_kit",
        default_bindings_module: "medic_kit::bindings",
        additional_derives: [PartialEq, Eq],
    });
}

pub use bindings::medic::kit::types::{
    Capability, ExecOutput, ExecRequest, HttpResponse, KitInfo, Level, NextStep, PeerCertificate,
    Setting, SettingDoc,
};

/// What one check found: the WIT `verdict`, which is `health` plus
/// [`Health::Unknown`] for a check that cannot judge.
///
/// Named `Health` so that kits written before `unknown` existed keep
/// compiling. Choose by one question: could restarting the app fix what the
/// check found? Yes: [`Health::Failed`]. No: [`Health::Unknown`].
pub use bindings::medic::kit::types::Verdict as Health;

/// Everything a kit learns about the app it is called for: the WIT
/// `call-context`, which is `context` plus the call's `deadline_ms`.
///
/// A kit instance is never reused across calls, so this is the only input
/// besides [`host::state_get`].
pub use bindings::medic::kit::types::CallContext as Context;

/// What medic itself offers a kit beyond WASI.
///
/// Every call is checked against the app's `[grants]`; a denied call returns
/// an error (or an empty answer) and is journaled as a kit fault, so a kit
/// reports such errors instead of retrying them.
pub mod host {
    pub use crate::bindings::medic::kit::host::{
        TlsStream, annotate, exec, http_get, http_send, log, pid_alive, processes, run, state_get,
        state_set, tls_connect, watch_process,
    };
}

/// A recovery kit: implement this once and pass the type to [`export!`].
///
/// Every function is called on a fresh instance, so a kit keeps nothing in
/// memory between calls; [`host::state_get`] and [`host::state_set`] are the
/// only way to remember something.
pub trait Kit {
    /// Says what the kit watches, which settings it reads and which
    /// capabilities it will ask for, so `medic kit inspect` can show an admin
    /// what to write in the app's `[settings]` and `[grants]`. Must not touch
    /// the network, files or programs.
    fn describe() -> KitInfo;

    /// Checks the application once, before [`Context::time_left`] runs out.
    ///
    /// Only [`Health::Failed`] leads to recovery, so use it when restarting
    /// the app could fix what the check found; [`Health::Unknown`] when it
    /// could not (a bad setting, a refused credential); and
    /// [`Health::Degraded`] for "works, but something is off".
    fn check(ctx: &Context) -> Health;

    /// Runs one local recovery step after a failed check.
    ///
    /// The default has no repair of its own and asks the host to restart the
    /// app with its `stop` and `start` commands, which suits most kits.
    fn recover(ctx: &Context) -> Result<NextStep, String> {
        let _ = ctx;
        Ok(NextStep::RestartApp)
    }

    /// The environment variables the kit sets for the programs it runs
    /// through [`Command`] / [`host::run`]: names, or prefixes ending in
    /// `*` (`OCF_RESKEY_*`). The app's `[grants] env` must open each, so
    /// `medic kit inspect` lists them among the grants the kit wants. The
    /// default is none. Like `describe`, it must not touch anything.
    fn env_wanted() -> Vec<String> {
        Vec::new()
    }

    /// The settings the kit reads for one app's settings, which
    /// `medic kit inspect KIT --app APP.toml` shows. A kit that wraps
    /// something it can only describe by asking it (an OCF agent's
    /// `meta-data`) overrides it; it runs with the app's grants, like
    /// `check`. The default is `describe`'s own list.
    fn app_settings(ctx: &Context) -> Result<Vec<SettingDoc>, String> {
        let _ = ctx;
        Ok(Self::describe().settings)
    }
}

/// The 0.1.2 entry points: every call of a 0.1.2 host comes in here, and
/// the `kit` and `inspect` exports below lead here too, so that a kit
/// behaves the same whichever host calls it.
impl<T: Kit> bindings::exports::medic::kit::calls::Guest for T {
    fn check(ctx: Context) -> Health {
        deadline::start_call();
        <T as Kit>::check(&ctx)
    }

    fn recover(ctx: Context) -> Result<NextStep, String> {
        deadline::start_call();
        <T as Kit>::recover(&ctx)
    }

    fn env_wanted() -> Vec<String> {
        <T as Kit>::env_wanted()
    }
}

/// The `kit` export, which hosts before 0.1.2 call (and 0.1.2 hosts only
/// for `describe`): the old context and health, converted by
/// [`legacy::upgrade`] and [`legacy::downgrade`].
impl<T: Kit> bindings::exports::medic::kit::kit::Guest for T {
    fn describe() -> KitInfo {
        <T as Kit>::describe()
    }

    fn check(ctx: legacy::OldContext) -> legacy::OldHealth {
        let health =
            <T as bindings::exports::medic::kit::calls::Guest>::check(legacy::upgrade(ctx));
        legacy::downgrade(health)
    }

    fn recover(ctx: legacy::OldContext) -> Result<NextStep, String> {
        <T as bindings::exports::medic::kit::calls::Guest>::recover(legacy::upgrade(ctx))
    }
}

impl<T: Kit> bindings::exports::medic::kit::inspect::Guest for T {
    fn app_settings(ctx: legacy::OldContext) -> Result<Vec<SettingDoc>, String> {
        deadline::start_call();
        <T as Kit>::app_settings(&legacy::upgrade(ctx))
    }
}

/// Exports a [`Kit`] implementation as the component's `kit`, `inspect`
/// and `calls` interfaces.
///
/// Call it exactly once, at the top level of the kit crate, with the name of
/// the type that implements [`Kit`]: `medic_kit::export!(MyKit);`.
#[macro_export]
macro_rules! export {
    ($kit:ident) => {
        $crate::bindings::__export_recovery_kit!($kit with_types_in $crate::bindings);
    };
}

/// Logs a formatted message at the given [`Level`] through [`host::log`].
///
/// Prefer the level macros ([`info!`], [`warn!`], ...); this one is for a
/// level chosen at run time. Messages go to medic's log tagged with the app
/// and kit, so they need not repeat either.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)+) => {
        $crate::host::log($level, &::std::format!($($arg)+))
    };
}

/// Logs a formatted message at [`Level::Trace`]; see [`log!`].
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log!($crate::Level::Trace, $($arg)+) };
}

/// Logs a formatted message at [`Level::Debug`]; see [`log!`].
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log!($crate::Level::Debug, $($arg)+) };
}

/// Logs a formatted message at [`Level::Info`]; see [`log!`].
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log!($crate::Level::Info, $($arg)+) };
}

/// Logs a formatted message at [`Level::Warn`]; see [`log!`].
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log!($crate::Level::Warn, $($arg)+) };
}

/// Logs a formatted message at [`Level::Error`]; see [`log!`].
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log!($crate::Level::Error, $($arg)+) };
}

impl SettingDoc {
    /// Documents a setting the kit cannot work without.
    pub fn required(key: &str, doc: &str) -> Self {
        Self {
            key: key.into(),
            required: true,
            default: None,
            doc: doc.into(),
        }
    }

    /// Documents an optional setting that has no default (absent means
    /// "don't do that part").
    pub fn optional(key: &str, doc: &str) -> Self {
        Self {
            key: key.into(),
            required: false,
            default: None,
            doc: doc.into(),
        }
    }

    /// Documents an optional setting and the value used when it is absent.
    pub fn with_default(key: &str, default: &str, doc: &str) -> Self {
        Self {
            key: key.into(),
            required: false,
            default: Some(default.into()),
            doc: doc.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_doc_constructors() {
        let d = SettingDoc::with_default("timeout_ms", "1000", "Connect timeout.");
        assert!(!d.required);
        assert_eq!(d.default.as_deref(), Some("1000"));
        assert!(SettingDoc::required("url", "URL.").required);
        assert_eq!(SettingDoc::optional("x", "X.").default, None);
    }
}
