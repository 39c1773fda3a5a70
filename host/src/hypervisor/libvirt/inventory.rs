//! The domains of several libvirt hosts (one connection URI per physical
//! host) as one [`Inventory`].
//!
//! A VM's host is the name libvirt reports for the connection that has it;
//! libvirt has no clusters. A clone is made on the template's host: a
//! qcow2 overlay on the template's disk (`qemu-img create -b`), a
//! cloud-init seed ISO, and a domain defined (not started) from the
//! template's definition. The overlay and seed go to `pool_dir`, or next to
//! the master image; `qemu-img` runs where medic runs, so that directory
//! must be the same path on medic's machine and on the host (a local URI,
//! or shared storage).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use virt::domain::Domain;
use virt::error::ErrorNumber;

use super::LibvirtInventorySettings;
use super::clone::{self, MadeFiles, NewDomain, Template};
use super::connection::{
    Found, blocking, classify, find_on_hosts, on_each_host, reset_domain, state_of,
};
use super::{seed, tools};
use crate::hypervisor::inventory::{CloneSpec, Inventory, StaticIp, VmInfo};
use crate::hypervisor::{ErrorKind, HypervisorError, PowerState};

/// The domains of several libvirt hosts.
#[derive(Debug, Clone)]
pub struct LibvirtInventory {
    settings: LibvirtInventorySettings,
    clone_timeout: Duration,
}

/// What a power operation asks of a domain.
#[derive(Debug, Clone, Copy)]
enum Power {
    On,
    ShutdownGuest,
    Off,
}

impl LibvirtInventory {
    /// The domains on every URI of `settings`; a clone gives up after
    /// `clone_timeout` and removes what it made.
    pub fn new(settings: LibvirtInventorySettings, clone_timeout: Duration) -> Self {
        Self {
            settings,
            clone_timeout,
        }
    }

    /// Finds the domain `vm` names on any host and runs `operation` on it,
    /// on a thread of its own.
    async fn on_domain<T: Send + 'static>(
        &self,
        vm: &str,
        operation: impl FnOnce(&Found) -> Result<T, HypervisorError> + Send + 'static,
    ) -> Result<T, HypervisorError> {
        let found = find_on_hosts(&self.settings.uris, vm).await?;
        blocking(move || operation(&found)).await
    }

    /// Brings the domain `vm` names to the state `power` asks for; a
    /// domain already there needs nothing.
    async fn power(&self, vm: &str, power: Power) -> Result<String, HypervisorError> {
        self.on_domain(vm, move |found| {
            let state = state_of(&found.domain)?;
            let domain = &found.domain;
            let done = |call: &str| Ok(format!("{found}: {call} succeeded"));
            match (power, state) {
                (Power::On, PowerState::On) => Ok(format!("{found} was already on")),
                (Power::On, PowerState::Suspended) => {
                    domain.resume().map_err(|e| classify(&e, "resume"))?;
                    done("virDomainResume")
                }
                (Power::On, _) => {
                    domain.create().map_err(|e| classify(&e, "start"))?;
                    done("virDomainCreate")
                }
                (Power::ShutdownGuest | Power::Off, PowerState::Off) => {
                    Ok(format!("{found} was already off"))
                }
                (Power::ShutdownGuest, _) => {
                    domain.shutdown().map_err(|e| classify(&e, "shutdown"))?;
                    done("virDomainShutdown (the guest was asked)")
                }
                (Power::Off, _) => {
                    domain.destroy().map_err(|e| classify(&e, "power off"))?;
                    done("virDomainDestroy")
                }
            }
        })
        .await
    }

    /// `AlreadyExists` when any host has a domain named `name`; a host
    /// that cannot be asked is an error too, since the name may be there.
    async fn refuse_taken_name(&self, name: &str) -> Result<(), HypervisorError> {
        let wanted = name.to_owned();
        let answers = on_each_host(&self.settings.uris, move |connection| {
            Ok(connection.find(&wanted)?.map(|_| connection.host_name()))
        })
        .await;
        for (uri, answer) in answers {
            match answer {
                Ok(None) => {}
                Ok(Some(host)) => {
                    return Err(HypervisorError::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "a domain named `{name}` exists already on {host}; choose another name"
                        ),
                    ));
                }
                Err(err) => {
                    return Err(HypervisorError::new(
                        err.kind,
                        format!(
                            "cannot check that `{name}` is free on {uri}: {}",
                            err.message
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The clone's steps after the checks; every file made is in `made`,
    /// which removes them if this fails or is abandoned.
    async fn make_clone(
        &self,
        found: Found,
        template: Template,
        spec: &CloneSpec,
        fixed: Option<StaticIp>,
        deadline: Instant,
    ) -> Result<VmInfo, HypervisorError> {
        if fixed.is_some() && template.cards == 0 {
            return Err(HypervisorError::new(
                ErrorKind::Failed,
                format!(
                    "{found} has no network card to give the fixed ip {:?}",
                    spec.ip
                ),
            ));
        }
        if !template.master.is_file() {
            return Err(HypervisorError::new(
                ErrorKind::NotFound,
                format!(
                    "the master image {} of {found} is not here: medic makes the clone's overlay \
                     where it runs, so the image must be on storage it shares with {}",
                    template.master.display(),
                    found.host
                ),
            ));
        }
        let dir = self
            .settings
            .pool_dir
            .clone()
            .or_else(|| template.master.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("/"));
        let uuid = clone::new_uuid()?;
        let macs = (0..template.cards)
            .map(|_| clone::new_mac())
            .collect::<Result<Vec<_>, _>>()?;
        let overlay = dir.join(format!("{}.qcow2", spec.name));
        let seed_iso = dir.join(format!("{}-seed.iso", spec.name));
        let mut made = MadeFiles::default();
        made.claim(&overlay)?;
        made.claim(&seed_iso)?;

        let qemu_img = tools::find(&["qemu-img"]).ok_or_else(|| {
            HypervisorError::new(
                ErrorKind::Failed,
                "cannot make the clone's disk: qemu-img is not installed (Debian: apt-get install qemu-utils)",
            )
        })?;
        let args = [
            OsStr::new("create"),
            OsStr::new("-q"),
            OsStr::new("-f"),
            OsStr::new("qcow2"),
            OsStr::new("-b"),
            template.master.as_os_str(),
            OsStr::new("-F"),
            OsStr::new(&template.format),
            overlay.as_os_str(),
        ];
        tools::run(
            &qemu_img,
            &args,
            remaining(deadline)?,
            "making the clone's disk overlay",
        )
        .await?;
        let files = seed::files(
            spec,
            fixed.as_ref(),
            &uuid,
            macs.first().map_or("", String::as_str),
        );
        seed::write_iso(&files, &seed_iso, remaining(deadline)?).await?;

        let xml = template.clone_xml(&NewDomain {
            name: &spec.name,
            uuid: &uuid,
            macs: &macs,
            overlay: &overlay,
            seed: &seed_iso,
        });
        let metadata = clone::metadata(&found.name, made.paths());
        let name = spec.name.clone();
        // The files go to the defining thread, which keeps or removes them
        // however long it takes, also if this call is abandoned meanwhile.
        blocking(move || {
            let domain = Domain::define_xml(found.connection.connect(), &xml)
                .map_err(|e| classify(&e, &format!("define `{name}` on {}", found.host)))?;
            let marked = domain.set_metadata(
                virt::sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
                Some(&metadata),
                Some(clone::METADATA_PREFIX),
                Some(clone::METADATA_NS),
                virt::sys::VIR_DOMAIN_AFFECT_CONFIG,
            );
            if let Err(e) = marked {
                let _ = domain.undefine();
                return Err(classify(&e, &format!("record the files of `{name}`")));
            }
            made.keep();
            Ok(VmInfo {
                uuid,
                name,
                power: PowerState::Off,
                host: Some(found.host.clone()),
                cluster: None,
                template: false,
            })
        })
        .await
    }
}

/// The time left until `deadline`, or `Timeout` when none is.
fn remaining(deadline: Instant) -> Result<Duration, HypervisorError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(HypervisorError::new(
            ErrorKind::Timeout,
            "the clone ran out of time (clone_timeout)",
        ));
    }
    Ok(left)
}

#[async_trait::async_trait]
impl Inventory for LibvirtInventory {
    fn name(&self) -> &'static str {
        "libvirt"
    }

    /// Every host is asked at once; one that cannot be asked fails the
    /// list, since a partial list would make its VMs look gone.
    async fn list(&self) -> Result<Vec<VmInfo>, HypervisorError> {
        let answers = on_each_host(&self.settings.uris, |connection| {
            let host = connection.host_name();
            let domains = connection
                .connect()
                .list_all_domains(0)
                .map_err(|e| classify(&e, &format!("list the domains of {}", connection.uri)))?;
            domains
                .iter()
                .map(|domain| {
                    Ok(VmInfo {
                        uuid: domain
                            .get_uuid_string()
                            .map_err(|e| classify(&e, "read a uuid"))?,
                        name: domain.get_name().map_err(|e| classify(&e, "read a name"))?,
                        power: state_of(domain)?,
                        host: Some(host.clone()),
                        cluster: None,
                        template: false,
                    })
                })
                .collect::<Result<Vec<_>, HypervisorError>>()
        })
        .await;
        let mut vms = Vec::new();
        for (_, answer) in answers {
            vms.extend(answer?);
        }
        vms.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.host.cmp(&b.host)));
        Ok(vms)
    }

    async fn power_on(&self, vm: &str) -> Result<String, HypervisorError> {
        self.power(vm, Power::On).await
    }

    async fn shutdown_guest(&self, vm: &str) -> Result<String, HypervisorError> {
        self.power(vm, Power::ShutdownGuest).await
    }

    async fn power_off(&self, vm: &str) -> Result<String, HypervisorError> {
        self.power(vm, Power::Off).await
    }

    async fn reset(&self, vm: &str) -> Result<String, HypervisorError> {
        self.on_domain(vm, |found| {
            reset_domain(&found.domain).map(|proof| format!("{found}: {proof}"))
        })
        .await
    }

    async fn clone_vm(&self, template: &str, spec: &CloneSpec) -> Result<VmInfo, HypervisorError> {
        let fixed = spec.check()?;
        let deadline = Instant::now() + self.clone_timeout;
        self.refuse_taken_name(&spec.name).await?;
        let found = find_on_hosts(&self.settings.uris, template).await?;
        let (found, xml) = blocking(move || {
            if state_of(&found.domain)? != PowerState::Off {
                return Err(HypervisorError::new(
                    ErrorKind::WrongPowerState,
                    format!(
                        "{found} is not shut off: its disk is the master image of its clones and must not change"
                    ),
                ));
            }
            let xml = found
                .domain
                .get_xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE)
                .map_err(|e| classify(&e, "read the template's definition"))?;
            Ok((found, xml))
        })
        .await?;
        let template = Template::read(&xml, &found.name)?;
        self.make_clone(found, template, spec, fixed, deadline)
            .await
    }

    async fn destroy(&self, vm: &str) -> Result<String, HypervisorError> {
        self.on_domain(vm, |found| {
            let domain = &found.domain;
            if domain.is_active().unwrap_or(true) {
                return Err(HypervisorError::new(
                    ErrorKind::WrongPowerState,
                    format!("{found} is running; power it off before destroying it"),
                ));
            }
            // Only the files medic recorded making and the domain still
            // uses as disks: a definition's metadata alone never makes
            // medic delete a file.
            let owned = match domain.get_metadata(
                virt::sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
                Some(clone::METADATA_NS),
                virt::sys::VIR_DOMAIN_AFFECT_CONFIG,
            ) {
                Ok(text) => clone::metadata_files(&text),
                Err(e) if e.code() == ErrorNumber::NoDomainMetadata => Vec::new(),
                Err(e) => return Err(classify(&e, "read medic's metadata")),
            };
            let disks = domain
                .get_xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE)
                .map(|xml| clone::disk_files(&xml))
                .map_err(|e| classify(&e, "read the definition"))?;
            let files: Vec<PathBuf> = owned.into_iter().filter(|f| disks.contains(f)).collect();
            let flags = virt::sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                | virt::sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                | virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM;
            match domain.undefine_flags(flags) {
                Ok(()) => {}
                // A driver without those flags (no NVRAM, no snapshots).
                Err(e) if matches!(e.code(), ErrorNumber::NoSupport | ErrorNumber::InvalidArg) => {
                    domain.undefine().map_err(|e| classify(&e, "undefine"))?;
                }
                Err(e) => return Err(classify(&e, "undefine")),
            }
            clone::remove_files(&files);
            Ok(format!(
                "{found}: undefined{}",
                if files.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", its files removed ({})",
                        files
                            .iter()
                            .map(|f| f.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ))
        })
        .await
    }
}
