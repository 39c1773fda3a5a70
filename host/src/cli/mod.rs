//! The `medic` command line. Verbs, flags and exit codes are a public
//! contract that admins' scripts rely on: extend, never rename.

mod admin;
mod check;
mod events;
mod inspect;
mod kit_new;
mod kit_test;
mod unit;
mod vm;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config, ConfigErrors};

/// Keeps applications on this server or VM alive through sandboxed
/// WebAssembly recovery kits.
#[derive(Debug, Parser)]
#[command(name = "medic", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon in the foreground (without --config: the embedded demo).
    Daemon {
        /// medic.toml to run with.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run one app's check now: through the daemon when one answers, else
    /// locally with --config. Exit 0 healthy, 1 degraded, 2 failed, 3
    /// unknown (kit fault, kit missing, bad config).
    Check {
        #[command(flatten)]
        target: admin::Target,
        /// The app's name (its file name in apps.d without .toml).
        app: String,
    },
    /// Every app's state, last check, failures, attempts, pid and
    /// maintenance, and the reset budget left (from the daemon).
    Status {
        #[command(flatten)]
        target: admin::Target,
        /// The daemon's JSON answer instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run local recovery of APP now (the daemon's kit recover, restart if
    /// asked); releases an app held in manual.
    Recover {
        #[command(flatten)]
        target: admin::Target,
        /// The app's name.
        app: String,
    },
    /// Stop APP (its `stop` command) and hold it stopped: neither checked
    /// nor recovered, across restarts of medic, until `medic start APP`.
    /// Exit 0 stopped (or already), 1 when it could not be.
    Stop {
        #[command(flatten)]
        target: admin::Target,
        /// The app's name.
        app: String,
        /// Why, for the journal and `medic status`.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Start a stopped APP (its `start` command) and resume supervision.
    /// Exit 0 started (or was not stopped), 1 when `start` failed.
    Start {
        #[command(flatten)]
        target: admin::Target,
        /// The app's name.
        app: String,
    },
    /// Update APP to a version: in a maintenance window, its `stop`,
    /// `update` (with {version}) and `start`, then its check must pass
    /// `healthy_checks` times in a row; on failure its `rollback` runs and
    /// it is checked again. Exit 0 updated, 1 failed (rolled back or not).
    Update {
        #[command(flatten)]
        target: admin::Target,
        /// The app's name.
        app: String,
        /// The version to install.
        #[arg(long)]
        version: String,
        /// How long the app may take to pass its checks (default 2m).
        #[arg(long)]
        health_timeout: Option<String>,
        /// Checks in a row that must pass (default: the app's
        /// healthy_checks).
        #[arg(long)]
        healthy_checks: Option<u32>,
    },
    /// Reload the daemon's config (same as SIGHUP): apply what changed, or
    /// refuse it whole and keep the running one. Exit 0 applied, 1 refused.
    Reload {
        #[command(flatten)]
        target: admin::Target,
    },
    /// Start or end a maintenance window (global without APP): checks go
    /// on, no recovery and no escalation happen until it ends.
    Maintenance {
        #[command(flatten)]
        target: admin::Target,
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        action: String,
        /// The app; without it, every app.
        app: Option<String>,
        /// How long (required with `on`), e.g. 30m.
        #[arg(long = "for")]
        duration: Option<String>,
        /// Why, for the journal and `medic status`.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Work with kit files.
    Kit {
        #[command(subcommand)]
        command: KitCommand,
    },
    /// Print the journal, oldest first (from the file with --config, else
    /// from the daemon); --follow then streams new events as they happen.
    Events {
        #[command(flatten)]
        target: admin::Target,
        #[command(flatten)]
        selection: events::Selection,
        /// One JSON object per line: ts, app, kind, detail.
        #[arg(long)]
        json: bool,
        /// Keep printing new events as the daemon writes them.
        #[arg(long)]
        follow: bool,
    },
    /// Management units: all the VMs of one application as one thing,
    /// through their agents (mutual TLS) and the hypervisor's inventory.
    Unit {
        /// The controller's file.
        #[arg(long, global = true, default_value = crate::unit::DEFAULT_UNITS)]
        units: PathBuf,
        #[command(subcommand)]
        command: unit::UnitCommand,
    },
    /// The VM and its hypervisor, through the escalation backend.
    Vm {
        #[command(subcommand)]
        command: VmCommand,
    },
}

#[derive(Debug, Subcommand)]
enum VmCommand {
    /// Connect, identify the VM and print backend, VM and power state;
    /// exit 0 ok, 1 with the reason (bad credentials, VM not found, TLS...).
    Status {
        /// medic.toml with the [escalation] to use.
        #[arg(long)]
        config: PathBuf,
    },
    /// Reset the VM now through the same path as the daemon: journaled, and
    /// inside the reset budget unless --force. Without --yes it only says
    /// what it would do.
    Reset {
        /// medic.toml with the [escalation] to use.
        #[arg(long)]
        config: PathBuf,
        /// Really reset.
        #[arg(long)]
        yes: bool,
        /// Reset even if the budget is spent (still journaled and counted).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check medic.toml and every app file; exit 0 when valid, else 1 with
    /// every error as FILE:LINE:COL: field: message.
    Validate {
        /// medic.toml to check.
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum KitCommand {
    /// Show what a kit says about itself; exit 1 if it is not a valid kit.
    /// With --app, also what the kit reads for that app (an OCF agent's
    /// parameters), asked with the app's settings and grants.
    Inspect {
        /// The kit's .wasm file.
        file: PathBuf,
        /// An app file (as in apps.d/) to ask the kit about.
        #[arg(long)]
        app: Option<PathBuf>,
        /// Judge the kit's signature as the daemon with this medic.toml
        /// would (its trusted_keys and require_signed).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a ready-to-build kit (an HTTP check with a body match) in
    /// LANG into DIR/NAME (default ./NAME), with this medic's WIT.
    New {
        /// The kit's language.
        #[arg(long, value_enum)]
        lang: kit_new::Lang,
        /// The kit's name: lower-case letters, digits and `-`.
        name: String,
        /// Where to create the kit's directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Wrap a wasm32-wasi core module (a C kit's, with its component type
    /// embedded by wit-bindgen's bindings) into a component with the WASI
    /// preview1 adapter.
    Componentize {
        /// The core module.
        core: PathBuf,
        /// The component to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Run a kit's describe and check (and recover with --recover) once
    /// against an app file, with the app's grants, and print what happened,
    /// denied capabilities included. Exit as `medic check`: 0 healthy,
    /// 1 degraded, 2 failed, 3 kit fault or bad input.
    Test {
        /// The kit's .wasm file (the app file's `kit` key is not used).
        file: PathBuf,
        /// The app file (as in apps.d/) whose settings and grants to use.
        #[arg(long)]
        app: PathBuf,
        /// Also run the kit's recover once (attempt 1); medic's own stop,
        /// start and escalation never run.
        #[arg(long)]
        recover: bool,
    },
}

impl Cli {
    /// Runs the parsed command and returns the process's exit code.
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Daemon { config } => daemon(config),
            Command::Config {
                command: ConfigCommand::Validate { config },
            } => validate(&config),
            Command::Check { target, app } => check::run(&target, &app),
            Command::Status { target, json } => admin::status(&target, json),
            Command::Recover { target, app } => admin::recover(&target, &app),
            Command::Stop {
                target,
                app,
                reason,
            } => admin::stop(&target, &app, reason),
            Command::Start { target, app } => admin::start(&target, &app),
            Command::Update {
                target,
                app,
                version,
                health_timeout,
                healthy_checks,
            } => admin::update(
                &target,
                &app,
                crate::api::messages::UpdateRequest {
                    version,
                    health_timeout,
                    healthy_checks,
                },
            ),
            Command::Reload { target } => admin::reload(&target),
            Command::Maintenance {
                target,
                action,
                app,
                duration,
                reason,
            } => admin::maintenance(
                &target,
                crate::api::MaintenanceRequest {
                    on: action == "on",
                    app,
                    duration,
                    reason,
                },
            ),
            Command::Kit {
                command:
                    KitCommand::Inspect {
                        file,
                        app,
                        config,
                        json,
                    },
            } => inspect::run(&file, app.as_deref(), config.as_deref(), json),
            Command::Kit {
                command: KitCommand::Test { file, app, recover },
            } => kit_test::run(&file, &app, recover),
            Command::Kit {
                command: KitCommand::New { lang, name, dir },
            } => kit_new::new(lang, &name, dir.as_deref()),
            Command::Kit {
                command: KitCommand::Componentize { core, output },
            } => kit_new::componentize(&core, &output),
            Command::Events {
                target,
                selection,
                json,
                follow,
            } => match (&target.config, follow) {
                (Some(config), false) => events::run(config, &selection, json),
                _ => admin::events(&target, &selection, follow, json),
            },
            Command::Unit { units, command } => unit::run(&units, command),
            Command::Vm {
                command: VmCommand::Status { config },
            } => vm::status(&config),
            Command::Vm {
                command: VmCommand::Reset { config, yes, force },
            } => vm::reset(&config, yes, force),
        }
    }
}

fn validate(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            // Building the backend reads its credentials and CA file
            // without connecting: what the daemon would refuse at start.
            if let Err(e) = crate::hypervisor::from_settings(&config.escalation) {
                eprintln!(
                    "{}: escalation.{}: {e}",
                    path.display(),
                    config.escalation.backend.name()
                );
                return ExitCode::FAILURE;
            }
            let count = config.apps.len();
            println!(
                "{}: valid ({count} app{})",
                path.display(),
                if count == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{}", with_newlines(&errors));
            ExitCode::FAILURE
        }
    }
}

fn daemon(path: Option<PathBuf>) -> ExitCode {
    let config = match path {
        Some(path) => config::load(&path),
        None => crate::demo::config(),
    };
    let config = match config {
        Ok(config) => config,
        Err(errors) => {
            eprint!("{}", with_newlines(&errors));
            return ExitCode::FAILURE;
        }
    };
    if crate::demo::is_demo(&config) {
        crate::demo::print_banner(&config);
    }
    // Before the runtime starts threads: only then may the environment change.
    withdraw_credentials(&config);
    match runtime().and_then(|rt| rt.block_on(crate::daemon::run(config))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("medic: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Takes the escalation backend's `env:PREFIX` credentials out of medic's
/// environment into memory, so no program the daemon starts can inherit
/// them. What cannot be hidden is logged, and the daemon runs on: the
/// programs it starts get an explicit environment regardless.
fn withdraw_credentials(config: &Config) {
    match crate::credentials::withdraw_from_environment(config.escalation.backend.credentials()) {
        Ok(names) if !names.is_empty() => {
            tracing::info!(
                "credentials: {} moved out of the environment",
                names.join(", ")
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("{e}"),
    }
}

/// Loads a config for a one-shot command, or prints its errors.
fn load_or_report(path: &std::path::Path) -> Option<Config> {
    config::load(path)
        .map_err(|errors| eprint!("{}", with_newlines(&errors)))
        .ok()
}

fn with_newlines(errors: &ConfigErrors) -> String {
    errors.0.iter().map(|e| format!("{e}\n")).collect()
}

/// One thread runs every supervisor: medic's work is short kit calls and
/// waiting, guests yield at every epoch tick so none can hold the thread,
/// compiling runs on the blocking pool, and a single thread costs markedly
/// less CPU per check than work stealing across threads (docs/benchmarks.md).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Where the kit tools (`kit inspect`, `kit test`) keep precompiled kits:
/// the user's own cache (`$XDG_CACHE_HOME/medic/kits`, else
/// `~/.cache/medic/kits`), so that trying a large kit again does not
/// compile it again. An artifact there runs only if it and the directory
/// belong to medic's effective user and nobody else can write them (see
/// `sandbox::trusted`); `None` (no caching) when neither variable is set.
fn user_kit_cache() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("medic").join("kits"))
}

/// Loads the kit `file` through the user's kit cache. When it is not in the
/// cache and must be compiled first (seconds for a large Python or
/// JavaScript kit), the person waiting is told on stderr, with the time so
/// far every few seconds.
fn load_kit_reporting(
    file: &std::path::Path,
    trust: &crate::signing::KitTrust,
) -> anyhow::Result<crate::sandbox::Kit> {
    use crate::sandbox::{KitEngine, LoadProgress};
    const TICK: std::time::Duration = std::time::Duration::from_secs(2);
    let engine = KitEngine::new(user_kit_cache())?;
    std::thread::scope(|scope| {
        let (running, stopped) = std::sync::mpsc::channel::<()>();
        let ticker = std::sync::Mutex::new(Some(stopped));
        let progress = |step: LoadProgress| match step {
            LoadProgress::Compiling { bytes } => {
                eprintln!(
                    "compiling {} ({:.1} MB; first load, cached for the next one)...",
                    file.display(),
                    bytes as f64 / 1e6
                );
                let stopped = ticker
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                if let Some(stopped) = stopped {
                    let since = std::time::Instant::now();
                    scope.spawn(move || {
                        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                            stopped.recv_timeout(TICK)
                        {
                            eprintln!("  still compiling: {} s", since.elapsed().as_secs());
                        }
                    });
                }
            }
            LoadProgress::Compiled { took } => {
                eprintln!("compiled in {:.1} s", took.as_secs_f64());
            }
        };
        let loaded = engine.load_reporting(file, trust, &progress);
        drop(running);
        Ok(loaded?)
    })
}
