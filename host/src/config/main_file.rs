//! `medic.toml`: the `[daemon]` and `[escalation]` tables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ConfigError;
use super::reader::{Doc, Read, Table};
use super::{Backend, DaemonSettings, EscalationSettings, QmpTarget, Source};

/// What `medic.toml` says, plus how far the rest of loading may trust it.
pub(crate) struct MainFile {
    /// The settings; fields that were invalid hold their defaults.
    pub(crate) daemon: DaemonSettings,
    /// The settings; fields that were invalid hold their defaults.
    pub(crate) escalation: EscalationSettings,
    /// Whether `plugins_dir` is what the user meant, so that missing kit
    /// files are real problems and not noise from an earlier error.
    pub(crate) plugins_dir_ok: bool,
    /// Where `apps_dir` is set in the file (1:1 when defaulted), to report
    /// a missing directory; `None` when it cannot be trusted.
    pub(crate) apps_dir_at: Option<(usize, usize)>,
}

const DEFAULT_PLUGINS_DIR: &str = "/usr/lib/medic/kits";
const DEFAULT_APPS_DIR: &str = "/etc/medic/apps.d";
const DEFAULT_STATE_DIR: &str = "/var/lib/medic";

/// Checks `medic.toml`; relative paths resolve against `base`.
pub(crate) fn read(source: &Source, base: &Path) -> (MainFile, Vec<ConfigError>) {
    let doc = Doc::new(&source.origin, &source.text);
    let Some(parsed) = doc.parse() else {
        return (defaults(), doc.into_errors());
    };
    let mut root = Table::root(&doc, parsed.get_ref());

    let mut daemon = root.table("daemon");
    let plugins_dir = daemon.path("plugins_dir", base);
    let plugins_dir_ok = !matches!(plugins_dir, Read::Invalid);
    let apps_dir = daemon.path("apps_dir", base);
    let apps_dir_at = match apps_dir {
        Read::Absent => Some((1, 1)),
        Read::Invalid => None,
        Read::Valid(_, at) => Some(doc.position(at)),
    };
    let fallback = defaults();
    let daemon_settings = DaemonSettings {
        plugins_dir: plugins_dir.or(fallback.daemon.plugins_dir),
        apps_dir: apps_dir.or(fallback.daemon.apps_dir),
        state_dir: daemon.path("state_dir", base).or(fallback.daemon.state_dir),
        kit_memory_mib: daemon
            .u32_in("kit_memory_mib", 1..=4096)
            .or(fallback.daemon.kit_memory_mib),
    };
    daemon.finish();

    let mut escalation = root.table("escalation");
    let kind = escalation.parsed("backend", backend);
    let qmp = qmp_target(&doc, &mut escalation, base);
    let backend = match kind {
        Read::Valid(BackendKind::Qmp, at) => match qmp {
            Read::Valid(target, _) => Backend::Qmp(target),
            Read::Invalid => fallback.escalation.backend.clone(),
            Read::Absent => {
                doc.error(
                    at,
                    "escalation.qmp",
                    "backend `qmp` needs [escalation.qmp] with `socket` or `address`",
                );
                fallback.escalation.backend.clone()
            }
        },
        _ => fallback.escalation.backend.clone(),
    };
    let escalation_settings = EscalationSettings {
        backend,
        max_resets: escalation
            .u32_in("max_resets", 0..=u32::MAX)
            .or(fallback.escalation.max_resets),
        reset_window: escalation
            .duration("reset_window", Duration::from_secs(1))
            .or(fallback.escalation.reset_window),
    };
    escalation.finish();
    root.finish();

    let settings = MainFile {
        daemon: daemon_settings,
        escalation: escalation_settings,
        plugins_dir_ok,
        apps_dir_at,
    };
    (settings, doc.into_errors())
}

/// The settings of an empty `medic.toml`; after a syntax error nothing in
/// the file can be trusted, so the directories are not used.
fn defaults() -> MainFile {
    MainFile {
        daemon: DaemonSettings {
            plugins_dir: PathBuf::from(DEFAULT_PLUGINS_DIR),
            apps_dir: PathBuf::from(DEFAULT_APPS_DIR),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            kit_memory_mib: 64,
        },
        escalation: EscalationSettings {
            backend: Backend::DryRun,
            max_resets: 1,
            reset_window: Duration::from_secs(3600),
        },
        plugins_dir_ok: false,
        apps_dir_at: None,
    }
}

/// Which backend `backend` names; its own table is read separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackendKind {
    DryRun,
    Qmp,
}

/// `[escalation.qmp]`: exactly one of `socket` and `address` (an invalid
/// one is reported here).
fn qmp_target(doc: &Doc<'_>, escalation: &mut Table<'_, '_>, base: &Path) -> Read<QmpTarget> {
    let mut qmp = escalation.table("qmp");
    let socket = qmp.path("socket", base);
    let address = qmp.parsed("address", super::app_file::address);
    qmp.finish();
    match (socket, address) {
        (Read::Valid(path, at), Read::Absent) => Read::Valid(QmpTarget::Socket(path), at),
        (Read::Absent, Read::Valid(addr, at)) => Read::Valid(QmpTarget::Address(addr), at),
        (Read::Absent, Read::Absent) => Read::Absent,
        (Read::Valid(_, at), Read::Valid(..)) => {
            doc.error(
                at,
                "escalation.qmp",
                "set either `socket` or `address`, not both",
            );
            Read::Invalid
        }
        _ => Read::Invalid,
    }
}

fn backend(name: &str) -> Result<BackendKind, String> {
    match name {
        "dry-run" => Ok(BackendKind::DryRun),
        "qmp" => Ok(BackendKind::Qmp),
        "libvirt" | "vsphere" | "fence-agent" => Err(format!(
            "backend `{name}` is not available yet (dry-run and qmp are)"
        )),
        _ => Err(format!(
            "unknown backend `{name}`; expected one of: dry-run, qmp, libvirt, vsphere, fence-agent"
        )),
    }
}
