//! The libvirt backend's settings and their TOML tables: `[escalation.libvirt]`
//! (one domain on one connection) and `[hypervisor.libvirt]` (an inventory
//! over one connection per physical host). Compiled without the `libvirt`
//! feature too, so such a build can still read a config and refuse the
//! backend at its line.

use std::path::{Path, PathBuf};

use crate::config::reader::{Doc, Read, Table, non_empty};

/// `[escalation.libvirt]`: which libvirt and which domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LibvirtSettings {
    /// The connection URI (`qemu+ssh://host/system`, `test:///default`).
    pub uri: String,
    /// The domain's name or UUID.
    pub domain: String,
}

/// `[hypervisor.libvirt]`: the libvirt hosts whose domains make up the
/// inventory, and where clones keep their disks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LibvirtInventorySettings {
    /// `uris`: one connection URI per physical host
    /// (`qemu+ssh://host1/system`...), never empty, no duplicates.
    pub uris: Vec<String>,
    /// `pool_dir`: where a clone's disk overlay and cloud-init seed are
    /// written; next to the template's master image when unset. Either way
    /// the directory must be the same path for medic and for the host that
    /// runs the clone (a local URI, or storage shared by both), since
    /// `qemu-img` runs where medic runs.
    pub pool_dir: Option<PathBuf>,
}

/// Reads the `libvirt` table of `parent` (`[escalation]`): `uri` and
/// `domain`, both required.
pub(crate) fn read(parent: &mut Table<'_, '_>) -> Option<LibvirtSettings> {
    let mut libvirt = parent.table("libvirt");
    let uri = libvirt.required("uri", |s| non_empty(s).map(str::to_owned));
    let domain = libvirt.required("domain", |s| non_empty(s).map(str::to_owned));
    libvirt.finish();
    Some(LibvirtSettings {
        uri: uri?,
        domain: domain?,
    })
}

/// Reads the `libvirt` table of `parent` (`[hypervisor]`): `uris`
/// (required, at least one, each once) and `pool_dir` (relative to `base`).
pub(crate) fn read_inventory(
    doc: &Doc<'_>,
    parent: &mut Table<'_, '_>,
    base: &Path,
) -> Option<LibvirtInventorySettings> {
    let mut libvirt = parent.table("libvirt");
    let field = libvirt.field("uris");
    let uris = match libvirt.list("uris", |s| non_empty(s).map(str::to_owned)) {
        Read::Valid(uris, at) if uris.is_empty() => {
            doc.error(at, &field, "name at least one libvirt URI");
            None
        }
        Read::Valid(uris, at) => {
            let mut seen = std::collections::HashSet::new();
            match uris.iter().find(|uri| !seen.insert(uri.as_str())) {
                Some(twice) => {
                    doc.error(at, &field, format!("{twice:?} is listed twice"));
                    None
                }
                None => Some(uris),
            }
        }
        Read::Absent => {
            libvirt.missing("uris", "required key is missing");
            None
        }
        Read::Invalid => None,
    };
    let pool_dir = match libvirt.path("pool_dir", base) {
        Read::Valid(dir, at) if !dir.is_dir() => {
            doc.error(
                at,
                &libvirt.field("pool_dir"),
                format!("directory {} not found", dir.display()),
            );
            None
        }
        Read::Valid(dir, _) => Some(Some(dir)),
        Read::Absent => Some(None),
        Read::Invalid => None,
    };
    libvirt.finish();
    Some(LibvirtInventorySettings {
        uris: uris?,
        pool_dir: pool_dir?,
    })
}
