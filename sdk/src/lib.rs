//! SDK for writing medic recovery kits.
//!
//! A recovery kit is a sandboxed WebAssembly component that checks one kind
//! of application and, when asked, tries one local repair step. This crate
//! hides the component-model plumbing so that a kit is one trait impl plus
//! one macro call:
//!
//! ```no_run
//! use medic_kit::{Context, Health, Kit, KitInfo, SettingDoc, export, host};
//!
//! struct Sshd;
//!
//! impl Kit for Sshd {
//!     fn describe() -> KitInfo {
//!         KitInfo {
//!             name: "sshd".into(),
//!             version: "0.1.0".into(),
//!             summary: "Checks that an sshd process runs.".into(),
//!             settings: vec![SettingDoc::with_default("name", "sshd", "Process name.")],
//!             wants: vec![],
//!         }
//!     }
//!
//!     fn check(ctx: &Context) -> Health {
//!         let name = ctx.setting("name").unwrap_or("sshd");
//!         if host::processes(name).is_empty() {
//!             Health::Failed(format!("no process named {name}"))
//!         } else {
//!             Health::Healthy
//!         }
//!     }
//! }
//!
//! export!(Sshd);
//! ```
//!
//! Build it as a `cdylib` with `cargo build --target wasm32-wasip2 --release`;
//! the resulting `.wasm` file is the component medic loads.
//!
//! Besides the `host` functions re-exported here, a kit may use WASI 0.2
//! through Rust's `std` (files, sockets, clocks, randomness) and, with the
//! `http` feature, outgoing HTTP. Everything is denied unless the app's
//! `[grants]` open it, so a kit should turn every error into a clear
//! [`Health::Failed`] reason instead of panicking: a panic is a *kit fault*,
//! never a verdict about the application.

#![warn(missing_docs)]

mod command;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "net")]
pub mod net;

pub use command::{Command, DEFAULT_TIMEOUT_MS};

/// Raw bindings generated from `wit/` by `wit-bindgen`.
///
/// Public only because [`export!`] expands to code that names them; kits use
/// the re-exports at the crate root and in [`host`] instead.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        // `recovery-kit` plus the optional `inspect` export, which every
        // SDK kit has (see `Kit::app_settings`).
        world: "inspectable-recovery-kit",
        pub_export_macro: true,
        export_macro_name: "__export_recovery_kit",
        default_bindings_module: "medic_kit::bindings",
        additional_derives: [PartialEq, Eq],
    });
}

pub use bindings::medic::kit::types::{
    Capability, Context, ExecOutput, ExecRequest, Health, HttpResponse, KitInfo, Level, NextStep,
    Setting, SettingDoc,
};

/// What medic itself offers a kit beyond WASI.
///
/// Every call is checked against the app's `[grants]`; a denied call returns
/// an error (or an empty answer) and is journaled as a kit fault, so a kit
/// reports such errors instead of retrying them.
pub mod host {
    pub use crate::bindings::medic::kit::host::{
        annotate, exec, http_get, log, pid_alive, processes, run, state_get, state_set,
        watch_process,
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

    /// Checks the application once. Only [`Health::Failed`] leads to recovery,
    /// so use [`Health::Degraded`] for "works, but something is off".
    fn check(ctx: &Context) -> Health;

    /// Runs one local recovery step after a failed check.
    ///
    /// The default has no repair of its own and asks the host to restart the
    /// app with its `stop` and `start` commands, which suits most kits.
    fn recover(ctx: &Context) -> Result<NextStep, String> {
        let _ = ctx;
        Ok(NextStep::RestartApp)
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

/// Adapts every [`Kit`] to the generated export trait, so kit authors never
/// see the raw bindings and the SDK can change them without breaking kits.
impl<T: Kit> bindings::exports::medic::kit::kit::Guest for T {
    fn describe() -> KitInfo {
        <T as Kit>::describe()
    }

    fn check(ctx: Context) -> Health {
        <T as Kit>::check(&ctx)
    }

    fn recover(ctx: Context) -> Result<NextStep, String> {
        <T as Kit>::recover(&ctx)
    }
}

impl<T: Kit> bindings::exports::medic::kit::inspect::Guest for T {
    fn app_settings(ctx: Context) -> Result<Vec<SettingDoc>, String> {
        <T as Kit>::app_settings(&ctx)
    }
}

/// Exports a [`Kit`] implementation as the component's `kit` interface.
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

/// Reads a secret file (a password) named by a setting: its text without
/// one trailing line break (`\n` or `\r\n`), so a file written by `echo`
/// works while other whitespace stays part of the secret. The file's
/// directory must be in the app's `[grants] read`; the error says so, and
/// names `setting` and the file.
pub fn read_secret(setting: &str, path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                " (is its directory in `[grants] read`?)"
            }
            _ => "",
        };
        format!("cannot read {setting} {path}: {e}{hint}")
    })?;
    let secret = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(format!("{setting} {path} is empty"));
    }
    Ok(secret.to_owned())
}

impl Context {
    /// A context for `app` with `pairs` as its settings, for a kit's unit
    /// tests that call its functions without a host.
    pub fn with_settings(app: &str, pairs: &[(&str, &str)]) -> Self {
        Self {
            app: app.into(),
            settings: pairs
                .iter()
                .map(|(key, value)| Setting {
                    key: (*key).into(),
                    value: (*value).into(),
                })
                .collect(),
            attempt: 0,
        }
    }

    /// The value of setting `key`, if the app's `[settings]` has it.
    ///
    /// When a key is written twice, the last one wins, as a reader of the
    /// file would expect.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }

    /// The value of a setting the kit cannot work without.
    ///
    /// The error is worded for the admin, so a kit can return it as is:
    /// `Err(e) => return Health::Failed(e)`.
    pub fn require(&self, key: &str) -> Result<&str, String> {
        self.setting(key)
            .ok_or_else(|| format!("missing required setting `{key}`"))
    }

    /// Parses setting `key`, or returns `default` when it is absent.
    ///
    /// Settings are always strings; this turns a bad number or boolean into
    /// an admin-readable error instead of a silent fallback.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T, String>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match self.setting(key) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|e| format!("setting `{key}` = {value:?}: {e}")),
        }
    }
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> Context {
        Context::with_settings("web", pairs)
    }

    #[test]
    fn a_secret_loses_one_line_break_only() {
        let dir = std::env::temp_dir().join(format!("medic-kit-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        let path = file.to_str().unwrap();
        for (raw, want) in [
            ("pw\n", Ok("pw")),
            ("pw\r\n", Ok("pw")),
            ("pw\n\n", Ok("pw\n")),
            (" two words ", Ok(" two words ")),
            ("\n", Err(format!("password_file {path} is empty"))),
        ] {
            std::fs::write(&file, raw).unwrap();
            assert_eq!(
                read_secret("password_file", path).as_deref(),
                want.as_deref()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = read_secret("password_file", path).unwrap_err();
        assert!(
            missing.ends_with("(is its directory in `[grants] read`?)"),
            "{missing}"
        );
    }

    #[test]
    fn setting_finds_last_value() {
        let c = ctx(&[("a", "1"), ("b", "2"), ("a", "3")]);
        assert_eq!(c.setting("a"), Some("3"));
        assert_eq!(c.setting("b"), Some("2"));
        assert_eq!(c.setting("c"), None);
    }

    #[test]
    fn require_names_the_missing_key() {
        let c = ctx(&[("a", "1")]);
        assert_eq!(c.require("a"), Ok("1"));
        assert_eq!(
            c.require("url"),
            Err("missing required setting `url`".to_string())
        );
    }

    #[test]
    fn parse_or_defaults_and_reports() {
        let c = ctx(&[("n", " 42 "), ("bad", "x")]);
        assert_eq!(c.parse_or("n", 7u32), Ok(42));
        assert_eq!(c.parse_or("absent", 7u32), Ok(7));
        let err = c.parse_or("bad", 7u32).unwrap_err();
        assert!(err.starts_with("setting `bad` = \"x\": "), "{err}");
    }

    #[test]
    fn setting_doc_constructors() {
        let d = SettingDoc::with_default("timeout_ms", "1000", "Connect timeout.");
        assert!(!d.required);
        assert_eq!(d.default.as_deref(), Some("1000"));
        assert!(SettingDoc::required("url", "URL.").required);
        assert_eq!(SettingDoc::optional("x", "X.").default, None);
    }
}
