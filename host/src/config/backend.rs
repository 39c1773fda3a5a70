//! `[escalation] backend` and its own table (`[escalation.qmp]`,
//! `[escalation.libvirt]`...). Only the chosen backend's table is checked,
//! so an admin may keep the others written down for a later switch.

use std::path::{Path, PathBuf};

use super::reader::{Doc, Read, Table, non_empty};
use super::{
    Backend, FenceAgentSettings, LibvirtSettings, QmpTarget, VmSelector, VsphereApi,
    VsphereSettings,
};
use crate::credentials;

/// Where `vm = "auto"` reads the SMBIOS UUID unless `dmi_uuid_file` says.
const DMI_UUID_FILE: &str = "/sys/class/dmi/id/product_uuid";

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
    let kind = escalation.parsed("backend", |name| {
        KINDS
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| {
                let names: Vec<_> = KINDS.iter().map(|(name, _)| *name).collect();
                format!(
                    "unknown backend `{name}`; expected one of: {}",
                    names.join(", ")
                )
            })
    });
    let (kind, at) = match kind {
        Read::Valid(kind, at) => (kind, at),
        Read::Absent => (Kind::DryRun, 0),
        Read::Invalid => return None,
    };
    let backend = match kind {
        Kind::DryRun => Some(Backend::DryRun),
        Kind::Qmp => qmp(doc, escalation, base, at).map(Backend::Qmp),
        Kind::Libvirt if !cfg!(feature = "libvirt") => {
            doc.error(
                at,
                "escalation.backend",
                "this medic was built without libvirt (cargo feature `libvirt`); \
                 use another backend or a build with it",
            );
            None
        }
        Kind::Libvirt => libvirt(escalation).map(Backend::Libvirt),
        Kind::Vsphere => vsphere(doc, escalation, base).map(Backend::Vsphere),
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

/// `[escalation.libvirt]`: `uri` and `domain`, both required.
fn libvirt(escalation: &mut Table<'_, '_>) -> Option<LibvirtSettings> {
    let mut libvirt = escalation.table("libvirt");
    let uri = libvirt.required("uri", |s| non_empty(s).map(str::to_owned));
    let domain = libvirt.required("domain", |s| non_empty(s).map(str::to_owned));
    libvirt.finish();
    Some(LibvirtSettings {
        uri: uri?,
        domain: domain?,
    })
}

/// `[escalation.vsphere]`.
fn vsphere(doc: &Doc<'_>, escalation: &mut Table<'_, '_>, base: &Path) -> Option<VsphereSettings> {
    let mut vsphere = escalation.table("vsphere");
    let url = vsphere.required("url", |s| match s.split_once("://") {
        Some(("https", rest)) if !rest.is_empty() => Ok(s.to_owned()),
        Some(("http", _)) => Err(format!(
            "url {s:?} is plain http: the vSphere password would cross the network in clear text; use https://HOST[:PORT]/sdk"
        )),
        _ => Err(format!(
            "invalid url {s:?}: expected https://HOST[:PORT]/sdk"
        )),
    });
    let api = vsphere
        .parsed("api", |s| match s {
            "soap" => Ok(VsphereApi::Soap),
            "rest" => Ok(VsphereApi::Rest),
            _ => Err(format!("unknown api `{s}`; expected soap or rest")),
        })
        .or(VsphereApi::Soap);
    let vm = vsphere.parsed("vm", vm_selector).or(VmSelector::Auto);
    let credentials = credentials_key(doc, &mut vsphere, base);
    let ca_file = existing_file(doc, &mut vsphere, "ca_file", base);
    let insecure = vsphere.bool("insecure").or(false);
    let dmi_uuid_file = vsphere
        .path("dmi_uuid_file", base)
        .or(PathBuf::from(DMI_UUID_FILE));
    let missing_credentials = matches!(credentials, Read::Absent);
    vsphere.finish();
    if missing_credentials {
        doc.error(
            0,
            "escalation.vsphere.credentials",
            "required key is missing",
        );
    }
    Some(VsphereSettings {
        url: url?,
        api,
        vm,
        credentials: credentials.ok()?,
        ca_file: ca_file.ok(),
        insecure,
        dmi_uuid_file,
    })
}

fn vm_selector(s: &str) -> Result<VmSelector, String> {
    let selector = match s.split_once(':') {
        _ if s == "auto" => return Ok(VmSelector::Auto),
        Some(("uuid", uuid)) if !uuid.is_empty() => VmSelector::Uuid(uuid.to_ascii_lowercase()),
        Some(("moref", moref)) if !moref.is_empty() => VmSelector::Moref(moref.to_owned()),
        Some(("path", path)) if path.starts_with('/') => VmSelector::Path(path.to_owned()),
        _ => {
            return Err(format!(
                "invalid vm {s:?}: expected auto, uuid:UUID, moref:vm-N or path:/DC/vm/NAME"
            ));
        }
    };
    Ok(selector)
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
fn credentials_key(
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
fn existing_file(
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
