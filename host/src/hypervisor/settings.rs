//! The settings of an inventory (`[hypervisor]` in a unit controller's
//! file): which backend, its table, and how long calls may take. Read with
//! the same spanned reader as `medic.toml`, so every problem is reported as
//! `FILE:LINE:COL: field: message`.

use std::path::Path;
use std::time::Duration;

use super::libvirt::{self, LibvirtInventorySettings};
use super::vsphere::settings::{self as vsphere, Purpose, VsphereSettings};
use crate::config::backend::{choice, without_libvirt};
use crate::config::reader::{Doc, Read, Table};
use crate::config::{ConfigErrors, Source};

/// How long one inventory call may take unless `timeout` says.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a clone may take unless `clone_timeout` says: a full copy of
/// a large template on slow storage takes many minutes.
const DEFAULT_CLONE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// `[hypervisor]`: the inventory a unit controller works with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventorySettings {
    /// `backend` and its table.
    pub backend: InventoryBackend,
    /// `timeout`: deadline of one call (list, power operation, destroy).
    pub timeout: Duration,
    /// `clone_timeout`: deadline of one clone, after which it is given up
    /// and what it made removed.
    pub clone_timeout: Duration,
}

/// `[hypervisor] backend`: the backends that can name many VMs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryBackend {
    /// vCenter or ESXi, `[hypervisor.vsphere]`: the keys of
    /// `[escalation.vsphere]` (`vm` and `dmi_uuid_file` are not used), SOAP only.
    Vsphere(VsphereSettings),
    /// libvirt hosts, `[hypervisor.libvirt]`: `uris` and `pool_dir`.
    Libvirt(LibvirtInventorySettings),
}

impl InventoryBackend {
    /// The name used in the file (`"vsphere"`, `"libvirt"`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Vsphere(_) => "vsphere",
            Self::Libvirt(_) => "libvirt",
        }
    }

    /// Where the backend's credentials come from, if it takes any: what a
    /// long-running caller withdraws from its environment at start.
    pub fn credentials(&self) -> Option<&crate::credentials::Source> {
        match self {
            Self::Vsphere(vsphere) => Some(&vsphere.credentials),
            Self::Libvirt(_) => None,
        }
    }
}

/// Which backend `backend` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vsphere,
    Libvirt,
}

const KINDS: [(&str, Kind); 2] = [("vsphere", Kind::Vsphere), ("libvirt", Kind::Libvirt)];

/// Reads `backend`, `timeout`, `clone_timeout` and the chosen backend's
/// table from `table` (a `[hypervisor]` table); relative paths resolve
/// against `base`. `None` when something was wrong (already reported in
/// `doc`). The other backend's table is allowed and left unchecked; the
/// caller finishes `table` itself, so it may keep keys of its own there.
pub(crate) fn read_inventory_settings(
    doc: &Doc<'_>,
    table: &mut Table<'_, '_>,
    base: &Path,
) -> Option<InventorySettings> {
    let kind = choice(table, "backend", &KINDS);
    let timeout = table
        .duration("timeout", Duration::from_millis(100))
        .or(DEFAULT_TIMEOUT);
    let clone_timeout = table
        .duration("clone_timeout", Duration::from_secs(1))
        .or(DEFAULT_CLONE_TIMEOUT);
    let backend = match kind {
        Read::Valid(Kind::Libvirt, at) if !cfg!(feature = "libvirt") => {
            without_libvirt(doc, table, at);
            None
        }
        Read::Valid(Kind::Libvirt, _) => {
            libvirt::read_inventory(doc, table, base).map(InventoryBackend::Libvirt)
        }
        Read::Valid(Kind::Vsphere, _) => {
            vsphere::read(doc, table, base, Purpose::Inventory).map(InventoryBackend::Vsphere)
        }
        Read::Absent => {
            table.missing(
                "backend",
                "required key is missing; expected vsphere or libvirt",
            );
            None
        }
        Read::Invalid => None,
    };
    for (name, other) in KINDS {
        if !matches!(kind, Read::Valid(chosen, _) if chosen == other) {
            table.table(name);
        }
    }
    Some(InventorySettings {
        backend: backend?,
        timeout,
        clone_timeout,
    })
}

/// Reads the `[hypervisor]` table of a file that may hold other tables
/// too (a unit controller's): every problem in that table, or none; the
/// file's other tables are left to their reader. Relative paths resolve
/// against `base`.
pub fn read_inventory_file(
    source: &Source,
    base: &Path,
) -> Result<InventorySettings, ConfigErrors> {
    let doc = Doc::new(&source.origin, &source.text);
    let settings = doc.parse().and_then(|parsed| {
        let mut root = Table::root(&doc, parsed.get_ref());
        let mut hypervisor = root.table("hypervisor");
        let settings = read_inventory_settings(&doc, &mut hypervisor, base);
        hypervisor.finish();
        settings
    });
    let errors = doc.into_errors();
    match settings {
        Some(settings) if errors.is_empty() => Ok(settings),
        _ => Err(ConfigErrors(errors)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::ConfigError;

    /// Reads `[hypervisor]` out of `text` (beside a table of the controller's own).
    fn read(text: &str, base: &Path) -> Result<InventorySettings, Vec<String>> {
        let source = Source {
            origin: Path::new("units.toml").to_path_buf(),
            text: format!("{text}[unit.web]\nvms = 3\n"),
        };
        read_inventory_file(&source, base)
            .map_err(|errors| errors.0.iter().map(ConfigError::to_string).collect())
    }

    #[test]
    fn libvirt_hosts_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pool")).unwrap();
        let settings = read(
            "[hypervisor]\nbackend = \"libvirt\"\n[hypervisor.libvirt]\n\
             uris = [\"qemu+ssh://h1/system\", \"qemu+ssh://h2/system\"]\npool_dir = \"pool\"\n\
             [hypervisor.vsphere]\nwhatever = 1\n",
            dir.path(),
        )
        .unwrap();
        assert_eq!(settings.timeout, DEFAULT_TIMEOUT);
        assert_eq!(settings.clone_timeout, DEFAULT_CLONE_TIMEOUT);
        let InventoryBackend::Libvirt(libvirt) = settings.backend else {
            panic!("not libvirt");
        };
        assert_eq!(
            libvirt.uris,
            ["qemu+ssh://h1/system", "qemu+ssh://h2/system"]
        );
        assert_eq!(libvirt.pool_dir, Some(dir.path().join("pool")));
    }

    #[test]
    fn libvirt_errors_name_their_line() {
        let errors = read(
            "[hypervisor]\nbackend = \"libvirt\"\ntimeout = \"1ms\"\n[hypervisor.libvirt]\n\
             uris = [\"a\", \"\", \"a\"]\npool_dir = \"/nonexistent/pool\"\nuri = \"x\"\n",
            Path::new("/"),
        )
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "units.toml:3:11: hypervisor.timeout: duration \"1ms\" is too short; the minimum is 100ms",
                "units.toml:5:14: hypervisor.libvirt.uris[1]: must not be empty",
                "units.toml:6:12: hypervisor.libvirt.pool_dir: directory /nonexistent/pool not found",
                "units.toml:7:1: hypervisor.libvirt.uri: unknown key `uri`; expected one of: uris, pool_dir",
            ]
        );
        let errors = read(
            "[hypervisor]\nbackend = \"libvirt\"\n[hypervisor.libvirt]\nuris = [\"a\", \"a\"]\n",
            Path::new("/"),
        )
        .unwrap_err();
        assert_eq!(
            errors,
            ["units.toml:4:8: hypervisor.libvirt.uris: \"a\" is listed twice"]
        );
        let errors = read(
            "[hypervisor]\nbackend = \"libvirt\"\n[hypervisor.libvirt]\nuris = []\n",
            Path::new("/"),
        )
        .unwrap_err();
        assert_eq!(
            errors,
            ["units.toml:4:8: hypervisor.libvirt.uris: name at least one libvirt URI"]
        );
    }

    #[test]
    fn vsphere_takes_the_escalation_keys_and_refuses_rest() {
        let settings = read(
            "[hypervisor]\nbackend = \"vsphere\"\nclone_timeout = \"1h\"\n[hypervisor.vsphere]\n\
             url = \"https://vc.example/sdk\"\ncredentials = \"env:VC\"\nvm = \"auto\"\n",
            Path::new("/etc/medic"),
        )
        .unwrap();
        assert_eq!(settings.clone_timeout, Duration::from_secs(3600));
        assert_eq!(settings.backend.name(), "vsphere");
        assert!(settings.backend.credentials().is_some());
        let errors = read(
            "[hypervisor]\nbackend = \"vsphere\"\n[hypervisor.vsphere]\n\
             url = \"http://vc.example/sdk\"\napi = \"rest\"\n",
            Path::new("/"),
        )
        .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].starts_with(
                "units.toml:1:1: hypervisor.vsphere.credentials: required key is missing"
            ),
            "{errors:?}"
        );
        assert!(errors[1].starts_with("units.toml:4:7: hypervisor.vsphere.url: url \"http://vc.example/sdk\" is plain http"), "{errors:?}");
        assert!(
            errors[2].starts_with("units.toml:5:7: hypervisor.vsphere.api: the inventory"),
            "{errors:?}"
        );
        assert!(errors[2].contains("use api = \"soap\""), "{errors:?}");
    }

    #[test]
    fn backend_is_required_and_checked() {
        let errors = read("[hypervisor]\n", Path::new("/")).unwrap_err();
        assert_eq!(
            errors,
            [
                "units.toml:1:1: hypervisor.backend: required key is missing; expected vsphere or libvirt"
            ]
        );
        let errors = read("[hypervisor]\nbackend = \"qmp\"\n", Path::new("/")).unwrap_err();
        assert_eq!(
            errors,
            [
                "units.toml:2:11: hypervisor.backend: unknown backend `qmp`; expected one of: vsphere, libvirt"
            ]
        );
    }
}
