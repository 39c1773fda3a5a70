//! medic's configuration: `medic.toml` plus one `apps.d/NAME.toml` per app.
//!
//! Loading checks everything and reports every problem at once, each with
//! its file, line, column and field, so a broken config is fixed in one pass
//! instead of one daemon restart per typo. See [`load`] and [`load_from`].

mod alert;
mod app_file;
pub(crate) mod backend;
mod dependencies;
mod error;
mod main_file;
pub(crate) mod reader;

pub use app_file::SECRET_NAME_MAX;
pub use reader::{DURATION_MAX, parse_duration};
#[cfg(test)]
mod tests;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) use dependencies::problems as dependency_problems;
pub use dependencies::{Dependent, start_order};
pub use error::{ConfigError, ConfigErrors};
// Each hypervisor backend owns its settings and their parser; they are
// named here too, where the rest of the configuration is.
pub use crate::hypervisor::libvirt::{LibvirtInventorySettings, LibvirtSettings};
pub use crate::hypervisor::vsphere::settings::{VmSelector, VsphereApi, VsphereSettings};
pub use crate::hypervisor::{InventoryBackend, InventorySettings};

/// A fully checked configuration: the daemon's settings and every app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where `medic.toml` came from, for logs and error messages.
    pub source: PathBuf,
    /// Where the daemon finds kits and apps and keeps its state.
    pub daemon: DaemonSettings,
    /// What happens when an app cannot be recovered locally.
    pub escalation: EscalationSettings,
    /// Where events are sent besides the journal (`[[alert]]`).
    pub alerts: Vec<crate::alerts::SinkSettings>,
    /// The supervised apps, sorted by name so runs are deterministic.
    pub apps: Vec<AppSpec>,
}

/// The `[daemon]` table of `medic.toml`; paths are already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSettings {
    /// Directory of `*.wasm` recovery kits; kit `http` is `<plugins_dir>/http.wasm`.
    pub plugins_dir: PathBuf,
    /// Directory of the per-app `*.toml` files.
    pub apps_dir: PathBuf,
    /// Directory for the journal and the precompiled-kit cache.
    pub state_dir: PathBuf,
    /// Default memory cap of one kit instance, in MiB, so a misbehaving kit
    /// cannot exhaust the host.
    pub kit_memory_mib: u32,
    /// `host:port` of the Prometheus endpoint (`/metrics`); none when unset.
    pub metrics: Option<String>,
    /// The admin API's unix socket, which every client verb talks to.
    pub socket: PathBuf,
    /// Members of this group (its gid) may use the admin API besides root
    /// and medic's own user; the socket file gets this group.
    pub socket_group: Option<u32>,
    /// Events each alert sink may have waiting before new ones are dropped.
    pub alert_queue: u32,
    /// Reload when a file in `plugins_dir` or `apps_dir` changes (besides
    /// SIGHUP and `medic reload`).
    pub reload_on_change: bool,
    /// Glob patterns (absolute) of the minisign public keys whose kit
    /// signatures medic trusts; the files are read at each start and reload.
    pub trusted_keys: Vec<String>,
    /// Refuse a kit that a trusted key did not sign.
    pub require_signed: bool,
    /// Journal events older than this are deleted.
    pub journal_keep: Duration,
    /// The journal's events may take this many bytes; the oldest beyond
    /// it are deleted.
    pub journal_max: u64,
    /// The admin API over TCP with mutual TLS (`listen` and the keys it
    /// needs), for a controller on another host; none when unset, and the
    /// API is then on the unix socket only.
    pub listen: Option<TlsListen>,
}

/// `[daemon] listen` and the keys it needs: the same admin API as on the
/// unix socket, over TCP with mutual TLS only, because a caller on another
/// host has no peer credentials to show: its certificate stands for them.
/// There is no plaintext TCP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListen {
    /// `listen`: the IP address and port to listen on.
    pub addr: std::net::SocketAddr,
    /// `tls_cert`: the agent's certificate chain (PEM, its own first).
    pub cert: PathBuf,
    /// `tls_key`: the agent's private key (PEM), held to the rules of
    /// credentials files (mode 0600 or 0400, owned by root or medic's
    /// user) when the daemon reads it.
    pub key: PathBuf,
    /// `client_ca`: the CA certificates (PEM) a client's certificate must
    /// be signed by.
    pub client_ca: PathBuf,
    /// `clients`: the client certificate names let in (the subject's
    /// common name or a DNS subjectAltName), never empty; the name is the
    /// caller's name in the journal.
    pub clients: Vec<String>,
}

/// The `[escalation]` table of `medic.toml`: resetting the VM when local
/// recovery has failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationSettings {
    /// Who performs a VM reset.
    pub backend: Backend,
    /// At most this many resets within `reset_window`, so a broken app
    /// cannot put its VM into a reset loop.
    pub max_resets: u32,
    /// The window `max_resets` counts over.
    pub reset_window: Duration,
    /// No escalation until medic (and so the VM) has been up this long, so a
    /// VM that comes back from a reset with the app still broken is not
    /// reset again at once; vSphere HA's VM monitoring waits 120 s.
    pub min_uptime: Duration,
    /// Deadline of one call to the hypervisor (status or reset).
    pub timeout: Duration,
    /// Calls of a reset in all when it fails in a way that may pass
    /// (timeout, unreachable, 5xx); other failures are never retried.
    pub attempts: u32,
    /// Wait before the second call, doubled before each further one.
    pub retry_backoff: Duration,
}

impl Default for EscalationSettings {
    /// The settings of an empty `[escalation]`: dry-run, one reset an hour,
    /// none in the first three minutes.
    fn default() -> Self {
        Self {
            backend: Backend::DryRun,
            max_resets: 1,
            reset_window: Duration::from_secs(3600),
            min_uptime: Duration::from_secs(180),
            timeout: Duration::from_secs(30),
            attempts: 3,
            retry_backoff: Duration::from_secs(2),
        }
    }
}

/// The mechanism that performs VM resets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Logs the reset it would perform and does nothing: the default, and
    /// the safe one to try escalation with.
    DryRun,
    /// QEMU's machine protocol, `[escalation.qmp]`.
    Qmp(QmpTarget),
    /// A libvirt connection, `[escalation.libvirt]`.
    Libvirt(LibvirtSettings),
    /// vCenter or ESXi, `[escalation.vsphere]`.
    Vsphere(VsphereSettings),
    /// A Pacemaker fence agent, `[escalation.fence-agent]`.
    FenceAgent(FenceAgentSettings),
}

impl Backend {
    /// The name used in `medic.toml` (`"dry-run"`, `"qmp"`...), for logs
    /// and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::DryRun => "dry-run",
            Backend::Qmp(_) => "qmp",
            Backend::Libvirt(_) => "libvirt",
            Backend::Vsphere(_) => "vsphere",
            Backend::FenceAgent(_) => "fence-agent",
        }
    }

    /// Where the backend's credentials come from, if it takes any: what
    /// the daemon withdraws from its environment at start.
    pub fn credentials(&self) -> Option<&crate::credentials::Source> {
        match self {
            Backend::Vsphere(vsphere) => Some(&vsphere.credentials),
            Backend::FenceAgent(agent) => agent.credentials.as_ref(),
            Backend::DryRun | Backend::Qmp(_) | Backend::Libvirt(_) => None,
        }
    }
}

/// Where QEMU's QMP monitor listens: `[escalation.qmp] socket` or `address`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum QmpTarget {
    /// A unix socket (`-qmp unix:PATH,server=on,wait=off`).
    Socket(PathBuf),
    /// A TCP `host:port` (`-qmp tcp:HOST:PORT,server=on,wait=off`).
    Address(String),
}

/// `[escalation.fence-agent]`: which agent and what to tell it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FenceAgentSettings {
    /// The agent's executable (`/usr/sbin/fence_vmware_rest`).
    pub agent: PathBuf,
    /// Where `username` and `password` come from, if the agent needs them.
    pub credentials: Option<crate::credentials::Source>,
    /// Other `key=value` lines for the agent (`ip`, `plug`...), in the
    /// order written.
    pub options: Vec<(String, String)>,
}

/// One supervised app, from `apps.d/NAME.toml`; paths are already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    /// The app's name: its file's stem.
    pub name: String,
    /// The file the app was read from, for logs and error messages.
    pub source: PathBuf,
    /// The kit's name as written, e.g. `http`.
    pub kit: String,
    /// The kit's module, `<plugins_dir>/<kit>.wasm`; it existed at load time.
    pub kit_path: PathBuf,
    /// Time between two health checks.
    pub interval: Duration,
    /// Deadline of one kit call, so a hung check cannot stall supervision.
    pub timeout: Duration,
    /// Consecutive failed checks before recovery starts, to ride out blips.
    pub failures_before_action: u32,
    /// Checks in a row that hit `timeout` before each one counts as a failed
    /// check (0: never): a hung app hangs its check, and a kit that cannot
    /// end its own waits must not hide that.
    pub timeouts_before_failure: u32,
    /// Command (argv, no shell) that starts the app, if medic may start it.
    pub start: Option<Vec<String>>,
    /// Command (argv, no shell) that stops the app, if medic may stop it.
    pub stop: Option<Vec<String>>,
    /// How long `start` and `stop` may run before they are killed.
    pub command_timeout: Duration,
    /// How `medic update` changes the app's version (`update`, `rollback`,
    /// `healthy_checks`).
    pub updates: UpdateSpec,
    /// The app's pidfile, if it has one: medic then watches the process
    /// through a pidfd and reacts the moment it exits.
    pub pidfile: Option<PathBuf>,
    /// After a start or restart, failed checks do not count for this long
    /// (or until a check passes).
    pub start_grace: Duration,
    /// How long the app's process (and its process group) may outlive
    /// `stop` (or, without `stop`, a SIGTERM) before medic kills it, so
    /// that `start` never runs beside a hung old instance.
    pub stop_grace: Duration,
    /// Memory cap of this app's kit instance in MiB: the app's override or
    /// the daemon default.
    pub kit_memory_mib: u32,
    /// What to do once the app is considered down.
    pub recovery: RecoveryPolicy,
    /// Free-form settings handed to the kit, as text, in the order written.
    pub settings: Vec<(String, String)>,
    /// What the kit may touch; everything else is denied.
    pub grants: Grants,
    /// How the kit's HTTPS requests trust servers (`[tls]`).
    pub tls: TlsSettings,
    /// Secrets the kit may have medic send for it (`[secrets]`): name and
    /// file, in the order written. medic reads the files; the kit names a
    /// secret in `host.http-send` and never sees its value.
    pub secrets: Vec<(String, PathBuf)>,
    /// Apps this one needs: it starts after them, and while one of them is
    /// down this app is `blocked` (reported, not recovered on its own).
    pub depends_on: Vec<String>,
}

/// How an app is updated to a version: argv (no shell) in which
/// `{version}` stands for the version asked for (for `rollback`: the one
/// that ran before), and how many passed checks in a row prove it healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateSpec {
    /// `update`: installs the version (run between `stop` and `start`).
    pub update: Option<Vec<String>>,
    /// `rollback`: puts the previous version back after a failed update.
    pub rollback: Option<Vec<String>>,
    /// `healthy_checks`: checks that must pass in a row after the update.
    pub healthy_checks: u32,
}

impl Default for UpdateSpec {
    fn default() -> Self {
        Self {
            update: None,
            rollback: None,
            healthy_checks: DEFAULT_HEALTHY_CHECKS,
        }
    }
}

/// Passed checks in a row that prove an updated app healthy unless the
/// app file says: one pass can be luck, three are a trend.
pub const DEFAULT_HEALTHY_CHECKS: u32 = 3;

/// The `[recovery]` table of an app: local restarts, then escalation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPolicy {
    /// Local recovery attempts before `then`; 0 escalates immediately.
    pub local_attempts: u32,
    /// The window the attempts are counted over.
    pub window: Duration,
    /// First wait between attempts, doubled each time and capped at `window`,
    /// so a crash-looping app is not hammered.
    pub backoff: Duration,
    /// What to do once local attempts are exhausted.
    pub then: Then,
    /// More than this many failures within `flap_window` hold the app in
    /// manual with an alert instead of restarting it forever; 0 disables.
    pub max_flaps: u32,
    /// The window `max_flaps` counts over.
    pub flap_window: Duration,
}

/// The step after local recovery has failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Then {
    /// Reset the VM through the escalation backend.
    VmReset,
    /// Only raise an alert; a human decides.
    Alert,
    /// Do nothing more.
    None,
}

impl Then {
    /// The name used in app files (`"vm-reset"`, `"alert"`, `"none"`), for
    /// logs and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Then::VmReset => "vm-reset",
            Then::Alert => "alert",
            Then::None => "none",
        }
    }
}

/// How an app's HTTPS checks trust servers (`[tls]`): the system's CAs
/// plus `ca_files`, a client certificate for servers that ask for one, the
/// name to verify (and send) instead of the URL's host, or no verification
/// at all. The files are read by medic, never by the kit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// More CA certificates (PEM) to trust, besides the system's.
    pub ca_files: Vec<PathBuf>,
    /// The client certificate (PEM), with `client_key`.
    pub client_cert: Option<PathBuf>,
    /// Its private key (PEM), held to the credentials rules.
    pub client_key: Option<PathBuf>,
    /// The name presented (SNI) and verified instead of the URL's host.
    pub server_name: Option<String>,
    /// Do not verify the server's certificate at all (logged loudly).
    pub insecure: bool,
}

/// What an app's kit is allowed to touch; anything not granted is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Directories the kit may read (absolute; they existed at load time).
    pub read: Vec<PathBuf>,
    /// `host:port` addresses the kit may connect to, as written, e.g.
    /// `127.0.0.1:80`, `[::1]:80`, `localhost:80`.
    pub connect: Vec<String>,
    /// Programs the kit may run (absolute paths).
    pub exec: Vec<PathBuf>,
    /// Environment variables the kit may set for the programs it runs:
    /// names, or prefixes ending in `*` (never one that makes a program
    /// run other code, see `sandbox::env_grant`).
    pub env: Vec<String>,
}

/// The text of one configuration file and the name to show for it in
/// errors; lets configs that are not files (the embedded demo) go through
/// the same checks as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Where the text came from, shown in errors; for an app, its file stem
    /// is the app's name.
    pub origin: PathBuf,
    /// The TOML text.
    pub text: String,
}

/// Reads `medic.toml` at `path` and every `*.toml` in its `apps_dir`
/// (sorted by file name; other files are ignored), reporting every problem
/// found in any of them.
///
/// Relative paths resolve against the directory containing `path`. A
/// missing `apps_dir` is an error at `daemon.apps_dir`; an unreadable file
/// is an error at its 1:1 with field `(file)`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = fs::read_to_string(path)
        .map_err(|e| ConfigErrors(vec![file_error(path, format!("cannot read file: {e}"))]))?;
    let base = base_dir_of(path);
    let main = Source {
        origin: path.to_path_buf(),
        text,
    };
    let (settings, mut errors) = main_file::read(&main, &base);
    let apps = match settings.apps_dir_at {
        Some(at) => read_apps_dir(&main, &settings.daemon.apps_dir, at, &mut errors),
        None => Vec::new(),
    };
    assemble(main.origin, settings, &base, &apps, errors)
}

/// Same checks as [`load`] for text that does not come from files (the
/// embedded demo config): `main` is `medic.toml`'s text, `base_dir`
/// resolves relative paths, and `apps` are the app files' texts (each
/// origin's file stem is the app's name). `apps_dir` is not read.
pub fn load_from(main: Source, base_dir: &Path, apps: Vec<Source>) -> Result<Config, ConfigErrors> {
    let (settings, errors) = main_file::read(&main, base_dir);
    assemble(main.origin, settings, base_dir, &apps, errors)
}

/// Reads one app file on its own, for trying a kit against it (`medic kit
/// test`): relative paths resolve against the file's own directory, the
/// memory cap defaults as in `medic.toml`, and its `kit` key is not looked
/// up (the kit under test comes from elsewhere).
pub fn load_app(path: &Path) -> Result<AppSpec, ConfigErrors> {
    let text = fs::read_to_string(path)
        .map_err(|e| ConfigErrors(vec![file_error(path, format!("cannot read file: {e}"))]))?;
    let source = Source {
        origin: path.to_path_buf(),
        text,
    };
    let context = app_file::Context {
        base_dir: &base_dir_of(path),
        plugins_dir: None,
        kit_memory_mib: main_file::DEFAULT_KIT_MEMORY_MIB,
    };
    app_file::read(&source, &context)
        .map(|(spec, _)| spec)
        .map_err(ConfigErrors)
}

/// The directory relative paths in `medic.toml` resolve against: the
/// file's own directory, made absolute so it survives a change of working
/// directory.
fn base_dir_of(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    absolute.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// An error about a whole file (unreadable, badly named), at its 1:1.
fn file_error(file: &Path, message: String) -> ConfigError {
    ConfigError {
        file: file.to_path_buf(),
        line: 1,
        col: 1,
        field: "(file)".to_owned(),
        message,
    }
}

/// The `*.toml` files of `dir`, sorted by file name. Problems with the
/// directory are reported against `daemon.apps_dir` in `main` (at `at`);
/// unreadable app files against themselves.
fn read_apps_dir(
    main: &Source,
    dir: &Path,
    at: (usize, usize),
    errors: &mut Vec<ConfigError>,
) -> Vec<Source> {
    let dir_error = |message: String| ConfigError {
        file: main.origin.clone(),
        line: at.0,
        col: at.1,
        field: "daemon.apps_dir".to_owned(),
        message,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            errors.push(dir_error(format!("directory {} not found", dir.display())));
            return Vec::new();
        }
        Err(e) => {
            errors.push(dir_error(format!(
                "cannot read directory {}: {e}",
                dir.display()
            )));
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml") && path.is_file())
        .collect();
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    paths
        .into_iter()
        .filter_map(|path| match fs::read_to_string(&path) {
            Ok(text) => Some(Source { origin: path, text }),
            Err(e) => {
                errors.push(file_error(&path, format!("cannot read file: {e}")));
                None
            }
        })
        .collect()
}

/// Checks every app against the main settings and builds the [`Config`],
/// or returns every error found (the main file's first).
fn assemble(
    source: PathBuf,
    settings: main_file::MainFile,
    base_dir: &Path,
    apps: &[Source],
    mut errors: Vec<ConfigError>,
) -> Result<Config, ConfigErrors> {
    let context = app_file::Context {
        base_dir,
        plugins_dir: settings
            .plugins_dir_ok
            .then_some(settings.daemon.plugins_dir.as_path()),
        kit_memory_mib: settings.daemon.kit_memory_mib,
    };
    let mut specs: Vec<AppSpec> = Vec::with_capacity(apps.len());
    let mut depends_at = std::collections::BTreeMap::new();
    for app in apps {
        match app_file::read(app, &context) {
            Ok((spec, at)) => match specs.iter().find(|other| other.name == spec.name) {
                Some(other) => errors.push(file_error(
                    &spec.source,
                    format!(
                        "app `{}` is already defined in {}",
                        spec.name,
                        other.source.display()
                    ),
                )),
                None => {
                    depends_at.insert(spec.name.clone(), at);
                    specs.push(spec);
                }
            },
            Err(app_errors) => errors.extend(app_errors),
        }
    }
    if errors.is_empty() {
        errors.extend(dependencies::check(&specs, &depends_at));
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Config {
        source,
        daemon: settings.daemon,
        escalation: settings.escalation,
        alerts: settings.alerts,
        apps: specs,
    })
}
