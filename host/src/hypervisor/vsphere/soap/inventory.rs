//! The many-VM calls of a SOAP session: the inventory through a container
//! view, idempotent power operations, clone with guest customization, and
//! destroy. The single-VM escalation uses the same session (`locate`,
//! `power_state`, `reset`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::requests::{self, Customization};
use super::response::{Object, objects, returnval};
use super::{Session, power_state_of};
use crate::hypervisor::inventory::{CloneSpec, StaticIp, VmInfo, pick};
use crate::hypervisor::vsphere::target::{FoundVm, VmTarget};
use crate::hypervisor::xml::Element;
use crate::hypervisor::{ErrorKind, HypervisorError, PowerState};

/// How long removing a failed clone (or waiting for a cancelled clone task
/// to end) may take, on top of the clone's own deadline.
const CLEANUP_WAIT: Duration = Duration::from_secs(60);

/// The properties of a VM the inventory shows.
const VM_PROPERTIES: &[&str] = &[
    "name",
    "config.uuid",
    "config.template",
    "runtime.powerState",
    "runtime.host",
];

/// What a power method is for.
#[derive(Debug, Clone, Copy)]
pub(in crate::hypervisor::vsphere) enum Power {
    /// `PowerOnVM_Task`.
    On,
    /// `PowerOffVM_Task`.
    Off,
    /// `ShutdownGuest`: the guest is asked; no task to wait for.
    ShutdownGuest,
}

impl Power {
    fn method(self) -> &'static str {
        match self {
            Self::On => "PowerOnVM_Task",
            Self::Off => "PowerOffVM_Task",
            Self::ShutdownGuest => "ShutdownGuest",
        }
    }

    /// The state in which the VM needs nothing more.
    fn wanted(self) -> PowerState {
        match self {
            Self::On => PowerState::On,
            Self::Off | Self::ShutdownGuest => PowerState::Off,
        }
    }
}

/// Where a clone goes: the template's folder, and a resource pool on the
/// template's host or cluster.
struct Placement {
    folder: String,
    pool: String,
    /// How many network cards the template has: the customization names each.
    cards: usize,
}

impl Session<'_> {
    /// Every object of the types in `specs` under the root folder, with
    /// the properties `specs` lists, read through one container view (and
    /// every page of the answer).
    async fn retrieve_all(
        &self,
        specs: &[(&str, &[&str])],
    ) -> Result<Vec<Object>, HypervisorError> {
        let types: Vec<&str> = specs.iter().map(|(ty, _)| *ty).collect();
        let what = format!("CreateContainerView of {}", types.join(", "));
        let request = requests::create_container_view(
            &self.content.view_manager,
            &self.content.root_folder,
            &types,
        );
        let (_, response) = self.call(&what, request).await?;
        let view = returnval(&response, &what)?.to_owned();
        let result = self.retrieve_pages(&view, specs).await;
        // The view would go with the session; destroying it keeps the
        // server's collector lean meanwhile.
        if let Err(err) = self
            .call("DestroyView", requests::destroy_view(&view))
            .await
        {
            tracing::debug!(error = %err, "vSphere DestroyView failed");
        }
        result
    }

    async fn retrieve_pages(
        &self,
        view: &str,
        specs: &[(&str, &[&str])],
    ) -> Result<Vec<Object>, HypervisorError> {
        let what = "reading the inventory";
        let collector = &self.content.property_collector;
        let (_, response) = self
            .call(what, requests::retrieve_view(collector, view, specs))
            .await?;
        let (mut all, mut token) = objects(&response, what)?;
        while let Some(next) = token {
            let (_, response) = self
                .call(what, requests::continue_retrieve(collector, &next))
                .await?;
            let (more, after) = objects(&response, what)?;
            all.extend(more);
            token = after;
        }
        Ok(all)
    }

    /// Every VM with its host and cluster, sorted by name, each with its
    /// managed object id.
    pub(in crate::hypervisor::vsphere) async fn list_vms(
        &self,
    ) -> Result<Vec<(String, VmInfo)>, HypervisorError> {
        let objects = self
            .retrieve_all(&[
                ("VirtualMachine", VM_PROPERTIES),
                ("HostSystem", &["name", "parent"]),
                ("ClusterComputeResource", &["name"]),
            ])
            .await?;
        let text = |object: &Object, path: &str| {
            object
                .properties
                .get(path)
                .map(|value| value.value().to_owned())
        };
        let clusters: HashMap<&str, String> = objects
            .iter()
            .filter(|o| o.kind == "ClusterComputeResource")
            .filter_map(|o| Some((o.id.as_str(), text(o, "name")?)))
            .collect();
        let hosts: HashMap<&str, (Option<String>, Option<String>)> = objects
            .iter()
            .filter(|o| o.kind == "HostSystem")
            .map(|o| {
                let cluster = o
                    .properties
                    .get("parent")
                    .filter(|parent| parent.ref_type.as_deref() == Some("ClusterComputeResource"))
                    .and_then(|parent| clusters.get(parent.value()).cloned());
                (o.id.as_str(), (text(o, "name"), cluster))
            })
            .collect();
        let mut vms: Vec<(String, VmInfo)> = objects
            .iter()
            .filter(|o| o.kind == "VirtualMachine")
            .map(|o| {
                let (host, cluster) = o
                    .properties
                    .get("runtime.host")
                    .and_then(|host| hosts.get(host.value()).cloned())
                    .unwrap_or_default();
                let info = VmInfo {
                    uuid: text(o, "config.uuid").unwrap_or_default(),
                    name: text(o, "name").unwrap_or_default(),
                    power: text(o, "runtime.powerState")
                        .map_or(PowerState::Unknown, |s| power_state_of(&s)),
                    host,
                    cluster,
                    template: text(o, "config.template").as_deref() == Some("true"),
                };
                (o.id.clone(), info)
            })
            .collect();
        vms.sort_by(|a, b| a.1.name.cmp(&b.1.name).then_with(|| a.0.cmp(&b.0)));
        Ok(vms)
    }

    /// Every VM's id, name and uuid.
    async fn names(&self) -> Result<Vec<(FoundVm, String)>, HypervisorError> {
        let objects = self
            .retrieve_all(&[("VirtualMachine", &["name", "config.uuid"])])
            .await?;
        Ok(objects
            .into_iter()
            .map(|o| {
                let value = |path: &str| {
                    o.properties
                        .get(path)
                        .map(|v| v.value().to_owned())
                        .unwrap_or_default()
                };
                let vm = FoundVm {
                    name: value("name"),
                    id: o.id.clone(),
                };
                (vm, value("config.uuid"))
            })
            .collect())
    }

    /// The one VM named `name`; none or several is `NotFound`.
    pub(super) async fn find_by_name(&self, name: &str) -> Result<FoundVm, HypervisorError> {
        let (vm, _) = pick(
            name,
            self.names().await?,
            |(vm, uuid)| (vm.name.as_str(), uuid.as_str()),
            |_| false,
            |(vm, uuid)| format!("{} {uuid}", vm.id),
        )?;
        Ok(vm)
    }

    /// The VMs named `name`.
    async fn named(&self, name: &str) -> Result<Vec<FoundVm>, HypervisorError> {
        Ok(self
            .names()
            .await?
            .into_iter()
            .filter_map(|(vm, _)| (vm.name == name).then_some(vm))
            .collect())
    }

    /// Brings `vm` to the state `power` asks for. A VM already there is
    /// success (bulk verbs rely on it); a task refused because the state
    /// changed meanwhile is success too when the VM ended up there.
    pub(in crate::hypervisor::vsphere) async fn power(
        &self,
        vm: &FoundVm,
        power: Power,
    ) -> Result<String, HypervisorError> {
        let method = power.method();
        let result = match power {
            Power::On | Power::Off => self.run_task(vm, method).await,
            Power::ShutdownGuest => {
                let what = format!("{method} on {vm}");
                self.call(&what, requests::vm_method(method, &vm.id))
                    .await
                    .map(|_| format!("{what}: the guest was asked to shut down"))
            }
        };
        match result {
            Err(err) if err.kind == ErrorKind::WrongPowerState => {
                if self.power_state(vm).await? == power.wanted() {
                    Ok(format!("{vm} was already {}", power.wanted()))
                } else {
                    Err(err)
                }
            }
            other => other,
        }
    }

    /// Destroys a VM that is not running, with its files.
    pub(in crate::hypervisor::vsphere) async fn destroy(
        &self,
        vm: &FoundVm,
    ) -> Result<String, HypervisorError> {
        if self.power_state(vm).await? == PowerState::On {
            return Err(HypervisorError::new(
                ErrorKind::WrongPowerState,
                format!("{vm} is running; power it off before destroying it"),
            ));
        }
        self.run_task(vm, "Destroy_Task").await
    }

    /// Clones `template` as `spec` says, customizes the clone and returns
    /// it, powered off. Whatever fails after the clone exists (also the
    /// `deadline` passing) removes the clone again.
    pub(in crate::hypervisor::vsphere) async fn clone_vm(
        &self,
        template: &str,
        spec: &CloneSpec,
        fixed: Option<StaticIp>,
        deadline: Instant,
    ) -> Result<VmInfo, HypervisorError> {
        let customization = customization(spec, fixed)?;
        self.refuse_taken_name(&spec.name).await?;
        let template = self.locate(&VmTarget::from_reference(template)).await?;
        let placement = self.placement(&template).await?;
        let clone = FoundVm {
            id: self
                .start_clone(&template, &placement, &spec.name, deadline)
                .await?,
            name: spec.name.clone(),
        };
        let customized = async {
            let customization = Customization {
                cards: placement.cards,
                ..customization
            };
            let what = format!("CustomizeVM_Task on {clone}");
            let (_, response) = self
                .call(&what, requests::customize_vm(&clone.id, &customization))
                .await?;
            let task = returnval(&response, &what)?.to_owned();
            self.wait_for_task(&task, &what, Some(deadline)).await?;
            let vms = self.list_vms().await?;
            vms.into_iter()
                .find(|(id, _)| *id == clone.id)
                .map(|(_, info)| info)
                .ok_or_else(|| {
                    HypervisorError::new(
                        ErrorKind::Protocol,
                        format!("{clone} is missing from the inventory after its clone"),
                    )
                })
        }
        .await;
        match customized {
            Ok(info) => Ok(info),
            Err(err) => Err(self.remove_failed_clone(&clone, err).await),
        }
    }

    /// `AlreadyExists` when a VM is named `name` already: names are how
    /// VMs are referred to, so two VMs of one name would be ambiguous
    /// (vSphere itself only refuses a duplicate within one folder).
    async fn refuse_taken_name(&self, name: &str) -> Result<(), HypervisorError> {
        match self.named(name).await?.first() {
            Some(vm) => Err(HypervisorError::new(
                ErrorKind::AlreadyExists,
                format!("a VM named {name:?} exists already ({vm}); choose another name"),
            )),
            None => Ok(()),
        }
    }

    /// The template's folder, a resource pool for the clone (the
    /// template's own, or for a template, which has none, the root pool of
    /// its host's cluster or standalone host) and its number of cards.
    async fn placement(&self, template: &FoundVm) -> Result<Placement, HypervisorError> {
        let props = self
            .read(
                "VirtualMachine",
                &template.id,
                &[
                    "parent",
                    "resourcePool",
                    "runtime.host",
                    "summary.config.numEthernetCards",
                ],
            )
            .await?;
        let required = |path: &str| {
            props
                .get(path)
                .map(|v| v.value().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    HypervisorError::new(
                        ErrorKind::Failed,
                        format!("{template} has no {path}; it cannot be cloned from"),
                    )
                })
        };
        let folder = required("parent")?;
        let pool = match props.get("resourcePool").map(Element::value) {
            Some(pool) if !pool.is_empty() => pool.to_owned(),
            _ => {
                let host = required("runtime.host")?;
                let parent = self.read("HostSystem", &host, &["parent"]).await?;
                let compute = parent.get("parent").ok_or_else(|| {
                    HypervisorError::new(
                        ErrorKind::Protocol,
                        format!("host {host} of {template} has no parent"),
                    )
                })?;
                let kind = compute
                    .ref_type
                    .clone()
                    .unwrap_or_else(|| "ComputeResource".to_owned());
                let pool = self.read(&kind, compute.value(), &["resourcePool"]).await?;
                pool.get("resourcePool")
                    .map(|p| p.value().to_owned())
                    .ok_or_else(|| {
                        HypervisorError::new(
                            ErrorKind::Protocol,
                            format!("{kind} {} has no resource pool", compute.value()),
                        )
                    })?
            }
        };
        let cards = props
            .get("summary.config.numEthernetCards")
            .and_then(|n| n.value().parse().ok())
            .unwrap_or(0);
        Ok(Placement {
            folder,
            pool,
            cards,
        })
    }

    /// Runs `CloneVM_Task` until `deadline` and returns the new VM's id.
    /// A task still running then is cancelled, and a clone it made anyway
    /// is removed.
    async fn start_clone(
        &self,
        template: &FoundVm,
        placement: &Placement,
        name: &str,
        deadline: Instant,
    ) -> Result<String, HypervisorError> {
        let what = format!("CloneVM_Task of {template} as {name:?}");
        let request = requests::clone_vm(&template.id, &placement.folder, name, &placement.pool);
        let (_, response) = self.call(&what, request).await?;
        let task = returnval(&response, &what)?.to_owned();
        tracing::info!(template = %template, task = %task, name, "vSphere clone started");
        let result = match self.wait_for_task(&task, &what, Some(deadline)).await {
            Err(err) if err.kind == ErrorKind::Timeout => {
                return Err(self.cancel_clone(&task, name, err).await);
            }
            other => other?,
        };
        result
            .map(|r| r.value().to_owned())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                HypervisorError::new(
                    ErrorKind::Protocol,
                    format!("{what}: task {task} succeeded without naming the new VM"),
                )
            })
    }

    /// Cancels a clone task that ran out of time; if it finished anyway,
    /// removes its clone. Returns `err`, with what could not be undone.
    async fn cancel_clone(&self, task: &str, name: &str, err: HypervisorError) -> HypervisorError {
        if let Err(cancel) = self.call("CancelTask", requests::cancel_task(task)).await {
            tracing::warn!(error = %cancel, task, "vSphere CancelTask failed");
        }
        let what = format!("the cancelled clone task {task}");
        match self
            .wait_for_task(task, &what, Some(Instant::now() + CLEANUP_WAIT))
            .await
        {
            Ok(Some(result)) => {
                let clone = FoundVm {
                    id: result.value().to_owned(),
                    name: name.to_owned(),
                };
                self.remove_failed_clone(&clone, err).await
            }
            Ok(None) | Err(_) => match self.named(name).await {
                Ok(left) if left.is_empty() => err,
                _ => with_leftover(err, &format!("a VM {name:?} may be left from task {task}")),
            },
        }
    }

    /// Destroys a clone that could not be finished and returns `err`,
    /// saying so if the clone could not be removed.
    async fn remove_failed_clone(&self, clone: &FoundVm, err: HypervisorError) -> HypervisorError {
        tracing::warn!(vm = %clone, error = %err, "removing the failed clone");
        let removed = async {
            let what = format!("Destroy_Task on {clone}");
            let (_, response) = self
                .call(&what, requests::vm_method("Destroy_Task", &clone.id))
                .await?;
            let task = returnval(&response, &what)?.to_owned();
            self.wait_for_task(&task, &what, Some(Instant::now() + CLEANUP_WAIT))
                .await
        }
        .await;
        match removed {
            Ok(_) => err,
            Err(cleanup) => with_leftover(
                err,
                &format!("the half-made clone {clone} could not be removed: {cleanup}"),
            ),
        }
    }
}

/// `err` with what was left behind added to its message.
fn with_leftover(mut err: HypervisorError, leftover: &str) -> HypervisorError {
    err.message.push_str("; ");
    err.message.push_str(leftover);
    err
}

/// The customization `spec` asks for (the card count is filled in once the
/// template is known): vSphere's `CustomizationFixedIp` is IPv4 only.
fn customization<'a>(
    spec: &'a CloneSpec,
    fixed: Option<StaticIp>,
) -> Result<Customization<'a>, HypervisorError> {
    let fixed = match fixed {
        None => None,
        Some(ip) => {
            let netmask = ip.netmask_v4().ok_or_else(|| {
                HypervisorError::new(
                    ErrorKind::Failed,
                    format!(
                        "ip {}: vSphere guest customization here sets IPv4 addresses only",
                        ip.address
                    ),
                )
            })?;
            Some((
                ip.address.to_string(),
                netmask.to_string(),
                ip.gateway.map(|g| g.to_string()),
            ))
        }
    };
    Ok(Customization {
        host_name: spec.short_host_name(),
        // LinuxPrep requires a domain; `localdomain` is what a host
        // without one has in /etc/hosts.
        domain: spec.domain().unwrap_or("localdomain"),
        fixed,
        cards: 0,
    })
}
