//! The vSphere backend's settings and their TOML table: `[escalation.vsphere]`
//! in `medic.toml`, and the same keys as `[hypervisor.vsphere]` wherever a
//! unit controller reads an inventory, so one table can be copied between
//! them.

use std::path::{Path, PathBuf};

use crate::config::backend::{credentials_key, existing_file};
use crate::config::reader::{Doc, Read, Table};

/// Where `vm = "auto"` reads the SMBIOS UUID unless `dmi_uuid_file` says.
const DMI_UUID_FILE: &str = "/sys/class/dmi/id/product_uuid";

/// `[escalation.vsphere]`: which vCenter, which VM, and how to trust it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VsphereSettings {
    /// The SOAP endpoint (`https://vcenter.example/sdk`); the REST API is
    /// reached at the same scheme, host and port under `/api`.
    pub url: String,
    /// Which of vSphere's APIs to use.
    pub api: VsphereApi,
    /// How to find this VM (escalation only; an inventory names its VMs
    /// per call).
    pub vm: VmSelector,
    /// Where the username and password come from.
    pub credentials: crate::credentials::Source,
    /// A PEM file of CA certificates to trust besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification; only when written, and logged.
    pub insecure: bool,
    /// Where `vm = "auto"` reads this VM's SMBIOS UUID.
    pub dmi_uuid_file: PathBuf,
}

/// `[escalation.vsphere] api`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VsphereApi {
    /// The vim25 SOAP API every vCenter and ESXi has.
    Soap,
    /// The vSphere Automation REST API (`/api`, vSphere 7+).
    Rest,
}

/// `[escalation.vsphere] vm`: how medic finds the VM it runs in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VmSelector {
    /// By the SMBIOS UUID this VM reports (`dmi_uuid_file`).
    Auto,
    /// `uuid:…`: by BIOS UUID.
    Uuid(String),
    /// `moref:vm-42`: by managed object id.
    Moref(String),
    /// `path:/DC0/vm/name`: by inventory path.
    Path(String),
}

/// What the settings are read for, which decides whether `api = "rest"` is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Resetting the one VM medic runs in: both APIs can.
    Escalation,
    /// An inventory of many VMs: listing hosts and clusters, guest
    /// shutdown and cloning with guest customization are SOAP calls, so
    /// `api = "rest"` is refused at its line.
    Inventory,
}

/// Reads the `vsphere` table of `parent` (`[escalation]`, `[hypervisor]`);
/// relative paths resolve against `base`. `None` when something was wrong
/// (already reported with the table's own path, e.g.
/// `hypervisor.vsphere.url`).
pub(crate) fn read(
    doc: &Doc<'_>,
    parent: &mut Table<'_, '_>,
    base: &Path,
    purpose: Purpose,
) -> Option<VsphereSettings> {
    let mut vsphere = parent.table("vsphere");
    let url = vsphere.required("url", |s| match s.split_once("://") {
        Some(("https", rest)) if !rest.is_empty() => Ok(s.to_owned()),
        Some(("http", _)) => Err(format!(
            "url {s:?} is plain http: the vSphere password would cross the network in clear text; use https://HOST[:PORT]/sdk"
        )),
        _ => Err(format!(
            "invalid url {s:?}: expected https://HOST[:PORT]/sdk"
        )),
    });
    let api = vsphere.parsed("api", |s| match (s, purpose) {
        ("soap", _) => Ok(VsphereApi::Soap),
        ("rest", Purpose::Escalation) => Ok(VsphereApi::Rest),
        ("rest", Purpose::Inventory) => Err(
            "the inventory (VM list with hosts and clusters, guest shutdown, clone with \
             customization) speaks the SOAP API only, which every vCenter and ESXi has; \
             use api = \"soap\""
                .to_owned(),
        ),
        _ => Err(format!("unknown api `{s}`; expected soap or rest")),
    });
    let api_invalid = matches!(api, Read::Invalid);
    let api = api.or(VsphereApi::Soap);
    let vm = vsphere.parsed("vm", vm_selector).or(VmSelector::Auto);
    let credentials = credentials_key(doc, &mut vsphere, base);
    let ca_file = existing_file(doc, &mut vsphere, "ca_file", base);
    let insecure = vsphere.bool("insecure").or(false);
    let dmi_uuid_file = vsphere
        .path("dmi_uuid_file", base)
        .or(PathBuf::from(DMI_UUID_FILE));
    if matches!(credentials, Read::Absent) {
        vsphere.missing("credentials", "required key is missing");
    }
    vsphere.finish();
    if api_invalid && purpose == Purpose::Inventory {
        return None;
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
