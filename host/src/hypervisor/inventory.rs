//! Naming and acting on many VMs: what a unit controller needs to show
//! where its VMs run, start and stop them in bulk and build new ones.
//!
//! [`Inventory`] is the many-VM face of a hypervisor: list every VM with
//! its power state and the physical host (and cluster) it runs on, power one
//! on or off, shut its guest down, reset it, clone one from a template and
//! remove one. The single-VM escalation ([`super::Hypervisor`]) is one user
//! of the same backend code. Power operations are idempotent (powering on a
//! VM that is on succeeds), because bulk verbs apply them to VMs in any
//! state; and a clone that fails leaves nothing behind.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{ErrorKind, HypervisorError, PowerState};

/// One VM as the hypervisor reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmInfo {
    /// Its BIOS uuid (vSphere `config.uuid`, libvirt's domain uuid): what
    /// the guest sees in `/sys/class/dmi/id/product_uuid`, and stable across
    /// renames, so a controller can key its maps by it.
    pub uuid: String,
    /// Its display name (vSphere) or domain name (libvirt).
    pub name: String,
    /// Its power state.
    pub power: PowerState,
    /// The physical host it runs (or is registered) on: the vSphere
    /// HostSystem's name, or the libvirt host's name; what a host failure's
    /// impact is computed from. `None` when the hypervisor did not say.
    pub host: Option<String>,
    /// The vSphere cluster of that host; `None` for a standalone host and
    /// for libvirt, which has no clusters.
    pub cluster: Option<String>,
    /// Whether it is a vSphere template (which cannot be powered on, only
    /// cloned), so bulk verbs can leave templates out.
    #[serde(default)]
    pub template: bool,
}

/// What a new VM made by [`Inventory::clone_vm`] is called and how its
/// guest is set up (vSphere guest customization, libvirt cloud-init).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneSpec {
    /// The new VM's name; no VM of that name may exist yet.
    pub name: String,
    /// The guest's host name (`web-01` or `web-01.example.com`).
    pub host_name: String,
    /// A fixed IP address for the first network card with its prefix
    /// length (`10.0.0.21/24`); DHCP when `None`.
    pub ip: Option<String>,
    /// The default gateway with the fixed address; only with `ip`.
    #[serde(default)]
    pub gateway: Option<String>,
}

/// A fixed address of a [`CloneSpec`], checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StaticIp {
    /// The address.
    pub address: IpAddr,
    /// Its prefix length (24 in `/24`).
    pub prefix: u8,
    /// The default gateway, of the same family.
    pub gateway: Option<IpAddr>,
}

impl StaticIp {
    /// The IPv4 netmask of the prefix (`255.255.255.0` for 24); `None` for IPv6.
    pub(crate) fn netmask_v4(&self) -> Option<std::net::Ipv4Addr> {
        match self.address {
            IpAddr::V4(_) => Some(std::net::Ipv4Addr::from(
                u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0),
            )),
            IpAddr::V6(_) => None,
        }
    }
}

impl CloneSpec {
    /// Checks the spec before anything is made, so a typo costs nothing:
    /// the name and host name must be usable as such, the address must be
    /// `ADDRESS/PREFIX` and the gateway of the same family. Returns the
    /// fixed address, if any.
    pub(crate) fn check(&self) -> Result<Option<StaticIp>, HypervisorError> {
        let invalid = |message: String| HypervisorError::new(ErrorKind::Failed, message);
        if self.name.is_empty()
            || self.name.len() > 80
            || self.name.chars().any(char::is_control)
            || self.name.contains('/')
            || self.name.starts_with('.')
        {
            return Err(invalid(format!(
                "invalid VM name {:?}: 1 to 80 characters, no `/`, no control character, not starting with `.`",
                self.name
            )));
        }
        if !is_host_name(&self.host_name) {
            return Err(invalid(format!(
                "invalid host name {:?}: letters, digits and `-` in dot-separated labels of at most 63 characters",
                self.host_name
            )));
        }
        let Some(ip) = &self.ip else {
            if self.gateway.is_some() {
                return Err(invalid(
                    "a gateway needs a fixed ip (ADDRESS/PREFIX)".to_owned(),
                ));
            }
            return Ok(None);
        };
        let (address, prefix) = ip
            .split_once('/')
            .and_then(|(address, prefix)| Some((address.parse::<IpAddr>().ok()?, prefix)))
            .ok_or_else(|| {
                invalid(format!(
                    "invalid ip {ip:?}: expected ADDRESS/PREFIX such as 10.0.0.21/24"
                ))
            })?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=max).contains(p))
            .ok_or_else(|| {
                invalid(format!(
                    "invalid prefix length in ip {ip:?}: expected 1 to {max}"
                ))
            })?;
        let gateway = self
            .gateway
            .as_deref()
            .map(|gateway| {
                gateway
                    .parse::<IpAddr>()
                    .ok()
                    .filter(|g| g.is_ipv4() == address.is_ipv4())
                    .ok_or_else(|| {
                        invalid(format!(
                            "invalid gateway {gateway:?}: expected an address of the same family as {ip}"
                        ))
                    })
            })
            .transpose()?;
        Ok(Some(StaticIp {
            address,
            prefix,
            gateway,
        }))
    }

    /// The host name's first label (`web-01` of `web-01.example.com`).
    pub(crate) fn short_host_name(&self) -> &str {
        self.host_name
            .split_once('.')
            .map_or(self.host_name.as_str(), |(short, _)| short)
    }

    /// The host name's domain (`example.com` of `web-01.example.com`), if any.
    pub(crate) fn domain(&self) -> Option<&str> {
        self.host_name.split_once('.').map(|(_, domain)| domain)
    }
}

/// An RFC 1123 host name: dot-separated labels of letters, digits and
/// inner hyphens, each 1 to 63 characters, 253 in all.
fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A hypervisor seen as many VMs (every vSphere VM the account may see, or
/// the domains of several libvirt hosts).
///
/// `vm` names a VM by its name or by its uuid (the form [`VmInfo::uuid`]
/// shows, any case); a name that several VMs share is refused as
/// ambiguous rather than guessed. Power operations succeed when the VM is
/// already in the state asked for, and return what was done, for a log.
#[async_trait::async_trait]
pub trait Inventory: Send + Sync {
    /// The backend's config name (`vsphere`, `libvirt`).
    fn name(&self) -> &'static str;
    /// Every VM (templates included), sorted by name.
    async fn list(&self) -> Result<Vec<VmInfo>, HypervisorError>;
    /// Powers the VM on (or resumes it); already on is fine.
    async fn power_on(&self, vm: &str) -> Result<String, HypervisorError>;
    /// Asks the guest OS to shut down (ACPI, VMware Tools) and returns
    /// without waiting; already off is fine. A guest may ignore it (and
    /// vSphere refuses it without running VMware Tools), so a caller that
    /// needs the VM off waits and then uses [`Inventory::power_off`].
    async fn shutdown_guest(&self, vm: &str) -> Result<String, HypervisorError>;
    /// Powers the VM off at once, like pulling the plug; already off is fine.
    async fn power_off(&self, vm: &str) -> Result<String, HypervisorError>;
    /// Resets a running VM (a hard reset); a VM that is off is
    /// `WrongPowerState`, since a reset would not start it.
    async fn reset(&self, vm: &str) -> Result<String, HypervisorError>;
    /// Makes a new VM from `template` (a template or a powered-off VM),
    /// set up as `spec` says, and leaves it powered off. It runs on the
    /// template's host or cluster. A clone that fails, at any step and also
    /// when it runs out of time, is removed again with whatever it had made.
    async fn clone_vm(&self, template: &str, spec: &CloneSpec) -> Result<VmInfo, HypervisorError>;
    /// Removes a powered-off VM and the disks it owns (vSphere deletes its
    /// files; libvirt undefines the domain and deletes the disks a
    /// [`Inventory::clone_vm`] made for it). A running VM is
    /// `WrongPowerState`: power it off first, so no running VM is removed
    /// by mistake.
    async fn destroy(&self, vm: &str) -> Result<String, HypervisorError>;
}

/// Whether `text` has the 8-4-4-4-12 hex form of a uuid, so a VM reference
/// is looked up as a uuid rather than as a name.
pub(crate) fn is_uuid(text: &str) -> bool {
    let lengths: Vec<usize> = text.split('-').map(str::len).collect();
    lengths == [8, 4, 4, 4, 12] && text.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

/// Picks the one VM `reference` names out of `candidates` (name, uuid and
/// whatever the backend keeps): by uuid (any case) when it has a uuid's
/// form, else by name. None is `NotFound`. Of several, the only one that
/// is `decisive` wins (libvirt: the running one of a domain defined on two
/// hosts); otherwise they are `NotFound` too, listed by `describe`, since
/// acting on a guess could hit the wrong VM.
pub(crate) fn pick<T>(
    reference: &str,
    candidates: Vec<T>,
    key: impl Fn(&T) -> (&str, &str),
    decisive: impl Fn(&T) -> bool,
    describe: impl Fn(&T) -> String,
) -> Result<T, HypervisorError> {
    let by_uuid = is_uuid(reference);
    let mut matching: Vec<T> = candidates
        .into_iter()
        .filter(|candidate| {
            let (name, uuid) = key(candidate);
            if by_uuid {
                uuid.eq_ignore_ascii_case(reference)
            } else {
                name == reference
            }
        })
        .collect();
    if matching.len() > 1 && matching.iter().filter(|c| decisive(c)).count() == 1 {
        matching.retain(&decisive);
    }
    match matching.len() {
        0 => Err(HypervisorError::new(
            ErrorKind::NotFound,
            format!(
                "no VM {} {reference:?}",
                if by_uuid { "with uuid" } else { "named" }
            ),
        )),
        1 => Ok(matching.remove(0)),
        _ => Err(HypervisorError::new(
            ErrorKind::NotFound,
            format!(
                "{} VMs answer to {reference:?} ({}); name one by its uuid",
                matching.len(),
                matching.iter().map(describe).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(name: &str, host: &str, ip: Option<&str>, gateway: Option<&str>) -> CloneSpec {
        CloneSpec {
            name: name.to_owned(),
            host_name: host.to_owned(),
            ip: ip.map(str::to_owned),
            gateway: gateway.map(str::to_owned),
        }
    }

    #[test]
    fn a_good_spec_gives_its_address() {
        let ip = spec(
            "web-01",
            "web-01.example.com",
            Some("10.0.0.21/24"),
            Some("10.0.0.1"),
        )
        .check()
        .unwrap()
        .unwrap();
        assert_eq!(ip.address.to_string(), "10.0.0.21");
        assert_eq!(ip.prefix, 24);
        assert_eq!(ip.netmask_v4().unwrap().to_string(), "255.255.255.0");
        assert_eq!(ip.gateway.unwrap().to_string(), "10.0.0.1");
        let v6 = spec("a", "a", Some("fd00::5/64"), None)
            .check()
            .unwrap()
            .unwrap();
        assert_eq!(v6.netmask_v4(), None);
        assert_eq!(spec("a", "a", None, None).check().unwrap(), None);
    }

    #[test]
    fn host_name_parts() {
        let s = spec("a", "web-01.example.com", None, None);
        assert_eq!(s.short_host_name(), "web-01");
        assert_eq!(s.domain(), Some("example.com"));
        let s = spec("a", "web", None, None);
        assert_eq!(s.short_host_name(), "web");
        assert_eq!(s.domain(), None);
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        for (bad, says) in [
            (spec("", "h", None, None), "invalid VM name"),
            (spec("../x", "h", None, None), "invalid VM name"),
            (spec("a/b", "h", None, None), "invalid VM name"),
            (spec("a", "h_1", None, None), "invalid host name"),
            (spec("a", "-h", None, None), "invalid host name"),
            (spec("a", "h", None, Some("10.0.0.1")), "needs a fixed ip"),
            (spec("a", "h", Some("10.0.0.21"), None), "ADDRESS/PREFIX"),
            (spec("a", "h", Some("10.0.0.21/33"), None), "1 to 32"),
            (
                spec("a", "h", Some("10.0.0.21/24"), Some("fd00::1")),
                "same family",
            ),
        ] {
            let err = bad.check().unwrap_err();
            assert!(err.message.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn pick_by_uuid_or_name_and_refuse_ambiguity() {
        let vms = || {
            vec![
                ("web", "6695EB01-F6A4-8304-79AA-97F2502E193F"),
                ("db", "11111111-2222-3333-4444-555555555555"),
                ("db", "11111111-2222-3333-4444-666666666666"),
            ]
        };
        fn key<'a>(vm: &'a (&str, &str)) -> (&'a str, &'a str) {
            (vm.0, vm.1)
        }
        let none = |_: &(&str, &str)| false;
        let describe = |vm: &(&str, &str)| vm.1.to_owned();
        assert_eq!(pick("web", vms(), key, none, describe).unwrap().0, "web");
        assert_eq!(
            pick(
                "6695eb01-f6a4-8304-79aa-97f2502e193f",
                vms(),
                key,
                none,
                describe
            )
            .unwrap()
            .0,
            "web"
        );
        let err = pick("db", vms(), key, none, describe).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert!(err.message.contains("2 VMs"), "{err}");
        let err = pick("nope", vms(), key, none, describe).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        // The one decisive candidate of several wins.
        let last = |vm: &(&str, &str)| vm.1.ends_with('6');
        assert!(
            pick("db", vms(), key, last, describe)
                .unwrap()
                .1
                .ends_with('6')
        );
    }
}
