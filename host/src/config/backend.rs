//! `[escalation] backend` and its own table (`[escalation.qmp]`,
//! `[escalation.libvirt]`...). Only the chosen backend's table is checked,
//! so an admin may keep the others written down for a later switch. The
//! libvirt and vSphere tables are read by their backends' own parsers
//! (`hypervisor::libvirt`, `hypervisor::vsphere`), which an inventory's
//! `[hypervisor]` table shares; the helpers for keys several backends have
//! live here.

use std::path::{Path, PathBuf};

use super::reader::{Doc, Read, Table, non_empty};
use super::{Backend, FenceAgentSettings, QmpTarget};
use crate::credentials;
use crate::hypervisor::{libvirt, vsphere};

/// Options a fence agent must not get from `options`: medic sets the action,
/// and a password belongs in a credentials file, not in `medic.toml`.
const RESERVED_AGENT_OPTIONS: [&str; 5] = ["action", "username", "login", "password", "passwd"];

/// Which backend `backend` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    DryRun,
    Qmp,
    Libvirt,
    Vsphere,
    FenceAgent,
}

const KINDS: [(&str, Kind); 5] = [
    ("dry-run", Kind::DryRun),
    ("qmp", Kind::Qmp),
    ("libvirt", Kind::Libvirt),
    ("vsphere", Kind::Vsphere),
    ("fence-agent", Kind::FenceAgent),
];

/// Reads `backend` and the chosen backend's table from `[escalation]`;
/// `None` when something was wrong (already reported).
pub(super) fn read(doc: &Doc<'_>, escalation: &mut Table<'_, '_>, base: &Path) -> Option<Backend> {
    let (kind, at) = match choice(escalation, "backend", &KINDS) {
        Read::Valid(kind, at) => (kind, at),
        Read::Absent => (Kind::DryRun, 0),
        Read::Invalid => return None,
    };
    let backend = match kind {
        Kind::DryRun => Some(Backend::DryRun),
        Kind::Qmp => qmp(doc, escalation, base, at).map(Backend::Qmp),
        Kind::Libvirt if !cfg!(feature = "libvirt") => {
            without_libvirt(doc, escalation, at);
            None
        }
        Kind::Libvirt => libvirt::read(escalation).map(Backend::Libvirt),
        Kind::Vsphere => vsphere::settings::read(
            doc,
            escalation,
            base,
            vsphere::settings::Purpose::Escalation,
        )
        .map(Backend::Vsphere),
        Kind::FenceAgent => fence_agent(doc, escalation, base).map(Backend::FenceAgent),
    };
    // The other backends' tables are allowed (and left unchecked).
    for (name, other) in KINDS {
        if other != kind && other != Kind::DryRun {
            escalation.table(name);
        }
    }
    backend
}

/// `[escalation.qmp]`: exactly one of `socket` and `address`.
fn qmp(doc: &Doc<'_>, escalation: &mut Table<'_, '_>, base: &Path, at: usize) -> Option<QmpTarget> {
    let mut qmp = escalation.table("qmp");
    let socket = qmp.path("socket", base);
    let address = qmp.parsed("address", super::app_file::address);
    qmp.finish();
    match (socket, address) {
        (Read::Valid(path, _), Read::Absent) => Some(QmpTarget::Socket(path)),
        (Read::Absent, Read::Valid(addr, _)) => Some(QmpTarget::Address(addr)),
        (Read::Absent, Read::Absent) => {
            doc.error(
                at,
                "escalation.qmp",
                "backend `qmp` needs [escalation.qmp] with `socket` or `address`",
            );
            None
        }
        (Read::Valid(_, at), Read::Valid(..)) => {
            doc.error(
                at,
                "escalation.qmp",
                "set either `socket` or `address`, not both",
            );
            None
        }
        _ => None,
    }
}

/// Reads `key` as one of the names in `choices`; anything else is
/// reported with every name it could have been.
pub(crate) fn choice<T: Copy>(
    table: &mut Table<'_, '_>,
    key: &'static str,
    choices: &[(&str, T)],
) -> Read<T> {
    table.parsed(key, |name| {
        choices
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| {
                let names: Vec<_> = choices.iter().map(|(name, _)| *name).collect();
                format!(
                    "unknown {key} `{name}`; expected one of: {}",
                    names.join(", ")
                )
            })
    })
}

/// Reports, at `at`, that `table`'s `backend = "libvirt"` cannot work in a
/// build without the `libvirt` feature.
pub(crate) fn without_libvirt(doc: &Doc<'_>, table: &Table<'_, '_>, at: usize) {
    doc.error(
        at,
        &table.field("backend"),
        "this medic was built without libvirt (cargo feature `libvirt`); \
         use another backend or a build with it",
    );
}

/// `[escalation.fence-agent]`.
fn fence_agent(
    doc: &Doc<'_>,
    escalation: &mut Table<'_, '_>,
    base: &Path,
) -> Option<FenceAgentSettings> {
    let mut agent = escalation.table("fence-agent");
    let program = agent.required("agent", |s| executable(&base.join(non_empty(s)?)));
    let credentials = credentials_key(doc, &mut agent, base);
    let mut reserved_used = false;
    let options = agent.scalars("options", |key, _| {
        if RESERVED_AGENT_OPTIONS.contains(&key) {
            reserved_used = true;
            return Err("medic sets this itself: the action per operation, username and password from `credentials`".to_owned());
        }
        Ok(())
    });
    agent.finish();
    if reserved_used {
        return None;
    }
    Some(FenceAgentSettings {
        agent: program?,
        credentials: match credentials {
            Read::Valid(source, _) => Some(source),
            Read::Absent => None,
            Read::Invalid => return None,
        },
        options,
    })
}

/// A `credentials` key: a file that must be safe to read now (checked here
/// so `medic config validate` names an unsafe file), or `env:PREFIX`.
pub(crate) fn credentials_key(
    doc: &Doc<'_>,
    table: &mut Table<'_, '_>,
    base: &Path,
) -> Read<credentials::Source> {
    let read = table.parsed("credentials", |s| {
        Ok(credentials::Source::parse(non_empty(s)?, base))
    });
    match read {
        Read::Valid(credentials::Source::File(path), at) => {
            let source = credentials::Source::File(path);
            match source.load() {
                Ok(_) => Read::Valid(source, at),
                Err(e) => {
                    doc.error(at, &table.field("credentials"), e.to_string());
                    Read::Invalid
                }
            }
        }
        read => read,
    }
}

/// An optional path key whose file must exist.
pub(crate) fn existing_file(
    doc: &Doc<'_>,
    table: &mut Table<'_, '_>,
    key: &'static str,
    base: &Path,
) -> Read<PathBuf> {
    match table.path(key, base) {
        Read::Valid(path, at) if !path.is_file() => {
            doc.error(
                at,
                &table.field(key),
                format!("file {} not found", path.display()),
            );
            Read::Invalid
        }
        read => read,
    }
}

/// `path` if it is a file someone may execute.
fn executable(path: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
            Ok(path.to_path_buf())
        }
        Ok(_) => Err(format!("{} is not an executable file", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}
