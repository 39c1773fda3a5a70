//! Integration tests of the many-VM inventory (`hypervisor::Inventory`).
//!
//! vSphere runs against govmomi's vCenter simulator (tests/vcsim/main.go):
//! the inventory with hosts and clusters, idempotent power operations, a
//! clone with guest customization (checked through the simulator's guest),
//! name clashes and destroy. libvirt runs against libvirt's test driver:
//! `test:///default` (whose state lives as long as a connection to it is
//! open, so each test keeps one) and a node file of the test's own as a
//! second host, with a real `qemu-img` and a real ISO writer for clones.

#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::time::Duration;

use crate::vsphere_fixtures as fixtures;
use fixtures::vcsim::Vcsim;
use medic::config::{VmSelector, VsphereApi};
use medic::hypervisor::{
    CloneSpec, ErrorKind, GuardedInventory, HypervisorError, Inventory, PowerState, VmInfo,
    VsphereInventory,
};

/// The standalone host's VM and a VM of cluster DC0_C0, in the simulator's default model.
const STANDALONE_VM: &str = "DC0_H0_VM0";
const CLUSTER_VM: &str = "DC0_C0_RP0_VM0";

fn vsphere(sim: &Vcsim) -> GuardedInventory {
    let inventory = VsphereInventory::new(
        &sim.settings(VmSelector::Auto),
        fixtures::credentials(),
        Duration::from_secs(60),
    )
    .unwrap();
    GuardedInventory::new(
        Box::new(inventory),
        Duration::from_secs(30),
        Duration::from_secs(60),
    )
}

fn spec(name: &str, host_name: &str, ip: Option<&str>, gateway: Option<&str>) -> CloneSpec {
    CloneSpec {
        name: name.to_owned(),
        host_name: host_name.to_owned(),
        ip: ip.map(str::to_owned),
        gateway: gateway.map(str::to_owned),
    }
}

async fn listed(inventory: &dyn Inventory, name: &str) -> Option<VmInfo> {
    inventory
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|vm| vm.name == name)
}

async fn power_of(inventory: &dyn Inventory, name: &str) -> PowerState {
    listed(inventory, name).await.unwrap().power
}

fn assert_kind(err: &HypervisorError, kind: ErrorKind) {
    assert_eq!(err.kind, kind, "{err}");
}

// ---- vSphere against the simulator ----

#[tokio::test]
async fn vsphere_lists_every_vm_with_its_host_and_cluster() {
    let sim = Vcsim::start();
    let inventory = vsphere(&sim);
    assert_eq!(inventory.name(), "vsphere");
    let vms = inventory.list().await.unwrap();
    let names: Vec<&str> = vms.iter().map(|vm| vm.name.as_str()).collect();
    let expected: Vec<&str> = sim.vms.iter().map(|vm| vm.name.as_str()).collect();
    assert_eq!(names, expected, "every VM, sorted by name");
    for vm in &vms {
        let sim_vm = sim.vm(&vm.name);
        assert_eq!(vm.uuid, sim_vm.uuid, "{vm:?}");
        assert_eq!(vm.power, PowerState::On, "{vm:?}");
        assert!(!vm.template, "{vm:?}");
        let host = vm.host.as_deref().unwrap();
        if vm.name.starts_with("DC0_C0_") {
            assert!(host.starts_with("DC0_C0_H"), "{vm:?}");
            assert_eq!(vm.cluster.as_deref(), Some("DC0_C0"), "{vm:?}");
        } else {
            assert_eq!(vm.cluster, None, "a standalone host has no cluster: {vm:?}");
        }
    }
    let standalone = vms.iter().find(|vm| vm.name == STANDALONE_VM).unwrap();
    assert_eq!(standalone.host.as_deref(), Some("DC0_H0"));
    // What a controller keeps of it survives a round trip.
    let json = serde_json::to_string(standalone).unwrap();
    assert_eq!(&serde_json::from_str::<VmInfo>(&json).unwrap(), standalone);
}

#[tokio::test]
async fn vsphere_power_operations_are_idempotent() {
    let sim = Vcsim::start();
    let inventory = vsphere(&sim);
    let uuid = sim.vm(STANDALONE_VM).uuid.to_uppercase();

    let proof = inventory.power_off(STANDALONE_VM).await.unwrap();
    assert!(
        proof.contains("PowerOffVM_Task") && proof.contains("succeeded"),
        "{proof}"
    );
    assert_eq!(power_of(&inventory, STANDALONE_VM).await, PowerState::Off);
    let again = inventory.power_off(STANDALONE_VM).await.unwrap();
    assert!(again.contains("already off"), "{again}");
    // A reset would not start a VM that is off.
    assert_kind(
        &inventory.reset(STANDALONE_VM).await.unwrap_err(),
        ErrorKind::WrongPowerState,
    );
    assert!(
        inventory
            .shutdown_guest(STANDALONE_VM)
            .await
            .unwrap()
            .contains("already off")
    );

    // By uuid, in any case, as well as by name.
    inventory.power_on(&uuid).await.unwrap();
    assert_eq!(power_of(&inventory, STANDALONE_VM).await, PowerState::On);
    assert!(
        inventory
            .power_on(STANDALONE_VM)
            .await
            .unwrap()
            .contains("already on")
    );

    let proof = inventory.reset(STANDALONE_VM).await.unwrap();
    assert!(
        proof.starts_with("task task-") && proof.contains("ResetVM_Task"),
        "{proof}"
    );
    assert_eq!(power_of(&inventory, STANDALONE_VM).await, PowerState::On);

    // The simulator's guest always obeys a shutdown request.
    let asked = inventory.shutdown_guest(STANDALONE_VM).await.unwrap();
    assert!(asked.contains("ShutdownGuest"), "{asked}");
    assert_eq!(power_of(&inventory, STANDALONE_VM).await, PowerState::Off);

    for unknown in ["nope", "00000000-1111-2222-3333-444444444444"] {
        let err = inventory.power_on(unknown).await.unwrap_err();
        assert_kind(&err, ErrorKind::NotFound);
        assert!(err.message.contains(unknown), "{err}");
    }
}

#[tokio::test]
async fn vsphere_clone_with_customization_then_destroy() {
    let sim = Vcsim::start();
    let inventory = vsphere(&sim);
    let template = sim.vm(CLUSTER_VM);
    let before = inventory.list().await.unwrap().len();

    let clone = inventory
        .clone_vm(
            CLUSTER_VM,
            &spec(
                "web-01",
                "web-01.example.com",
                Some("10.0.0.21/24"),
                Some("10.0.0.1"),
            ),
        )
        .await
        .unwrap();
    assert_eq!(clone.name, "web-01");
    assert_eq!(clone.power, PowerState::Off, "a clone is left off");
    assert_eq!(clone.cluster.as_deref(), Some("DC0_C0"), "{clone:?}");
    assert_ne!(clone.uuid, template.uuid);
    assert_eq!(listed(&inventory, "web-01").await.unwrap(), clone);
    assert_eq!(inventory.list().await.unwrap().len(), before + 1);
    // The customization waits for the first power-on, then sets the guest.
    assert!(!sim.guest("web-01").await.pending_customization.is_empty());
    inventory.power_on("web-01").await.unwrap();
    let guest = sim.guest("web-01").await;
    assert_eq!(guest.host_name, "web-01");
    assert_eq!(guest.ip_address, "10.0.0.21");
    assert_eq!(guest.pending_customization, "");

    // A running VM is not destroyed; an off one is, and is gone.
    assert_kind(
        &inventory.destroy("web-01").await.unwrap_err(),
        ErrorKind::WrongPowerState,
    );
    inventory.power_off("web-01").await.unwrap();
    let proof = inventory.destroy(&clone.uuid).await.unwrap();
    assert!(proof.contains("Destroy_Task"), "{proof}");
    assert_eq!(listed(&inventory, "web-01").await, None);
    assert_eq!(inventory.list().await.unwrap().len(), before);
}

#[tokio::test]
async fn vsphere_clone_from_a_standalone_host_with_dhcp() {
    let sim = Vcsim::start_with_powered_off(&["DC0_H0_VM1"]);
    let inventory = vsphere(&sim);
    let clone = inventory
        .clone_vm("DC0_H0_VM1", &spec("db-01", "db-01", None, None))
        .await
        .unwrap();
    assert_eq!(clone.host.as_deref(), Some("DC0_H0"));
    assert_eq!(clone.cluster, None);
    inventory.power_on("db-01").await.unwrap();
    let guest = sim.guest("db-01").await;
    assert_eq!(guest.host_name, "db-01");
    assert_eq!(guest.ip_address, "", "DHCP: no fixed address");
}

#[tokio::test]
async fn vsphere_clone_refusals_leave_nothing_behind() {
    let sim = Vcsim::start();
    let inventory = vsphere(&sim);
    let before = inventory.list().await.unwrap();

    // A name that exists.
    let err = inventory
        .clone_vm(CLUSTER_VM, &spec(STANDALONE_VM, "web", None, None))
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::AlreadyExists);
    assert!(err.message.contains(STANDALONE_VM), "{err}");
    // A template that does not exist.
    let err = inventory
        .clone_vm("no-such-template", &spec("web-02", "web", None, None))
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::NotFound);
    // A spec that cannot be (checked before anything is asked).
    for bad in [
        spec("web-03", "bad_name", None, None),
        spec("web-03", "web", Some("10.0.0.300/24"), None),
        spec("web-03", "web", Some("fd00::3/64"), None),
    ] {
        let err = inventory.clone_vm(CLUSTER_VM, &bad).await.unwrap_err();
        assert_kind(&err, ErrorKind::Failed);
    }
    assert_eq!(inventory.list().await.unwrap(), before);
}

#[tokio::test]
async fn vsphere_clone_from_a_template_lands_in_its_cluster() {
    const TEMPLATE: &str = "DC0_C0_RP0_VM1";
    let sim = Vcsim::start_with_args(&["-template", TEMPLATE]);
    let inventory = vsphere(&sim);
    let template = listed(&inventory, TEMPLATE).await.unwrap();
    assert!(template.template, "{template:?}");
    assert_eq!(template.power, PowerState::Off);
    // A template cannot run.
    assert_kind(
        &inventory.power_on(TEMPLATE).await.unwrap_err(),
        ErrorKind::Failed,
    );
    // It has no resource pool: the clone goes to its cluster's.
    let clone = inventory
        .clone_vm(
            TEMPLATE,
            &spec("app-01", "app-01", Some("10.0.1.5/16"), None),
        )
        .await
        .unwrap();
    assert!(!clone.template);
    assert_eq!(clone.cluster.as_deref(), Some("DC0_C0"), "{clone:?}");
    inventory.power_on("app-01").await.unwrap();
    assert_eq!(sim.guest("app-01").await.ip_address, "10.0.1.5");
}

#[tokio::test]
async fn vsphere_a_clone_whose_customization_fails_is_removed() {
    let sim = Vcsim::start_with_args(&["-miscount-cards", CLUSTER_VM]);
    let inventory = vsphere(&sim);
    let before = inventory.list().await.unwrap();
    let err = inventory
        .clone_vm(
            CLUSTER_VM,
            &spec("web-04", "web-04", Some("10.0.0.24/24"), None),
        )
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Failed);
    assert!(
        err.message.contains("CustomizeVM_Task") && err.message.contains("NicSettingMismatch"),
        "{err}"
    );
    assert!(!err.message.contains("could not be removed"), "{err}");
    assert_eq!(
        inventory.list().await.unwrap(),
        before,
        "the half-made clone is gone"
    );
}

#[test]
fn vsphere_inventory_refuses_the_rest_api() {
    let settings = fixtures::settings(
        "https://127.0.0.1:1/sdk",
        VsphereApi::Rest,
        VmSelector::Auto,
    );
    let err = VsphereInventory::new(&settings, fixtures::credentials(), Duration::from_secs(1))
        .unwrap_err();
    assert!(err.message.contains("SOAP"), "{err}");
}

#[tokio::test]
async fn vsphere_down_is_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let settings = fixtures::settings(
        &format!("https://127.0.0.1:{port}/sdk"),
        VsphereApi::Soap,
        VmSelector::Auto,
    );
    let inventory =
        VsphereInventory::new(&settings, fixtures::credentials(), Duration::from_secs(1)).unwrap();
    let err = inventory.list().await.unwrap_err();
    assert_kind(&err, ErrorKind::Unreachable);
    assert!(err.is_retryable());
}

// ---- libvirt against its test driver ----

#[cfg(feature = "libvirt")]
mod libvirt {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::Duration;

    use medic::config::LibvirtInventorySettings;
    use medic::hypervisor::{ErrorKind, Inventory, LibvirtInventory, PowerState};
    use virt::connect::Connect;
    use virt::domain::Domain;

    use super::{assert_kind, listed, power_of, spec};

    const DEFAULT: &str = "test:///default";

    /// A connection to `test:///default` held for a test's length: the
    /// driver's shared state lives as long as one is open, so what the
    /// inventory's own short-lived connections do is kept.
    struct Keeper(Connect);

    impl Keeper {
        fn open() -> Self {
            Self(Connect::open(Some(DEFAULT)).unwrap())
        }

        /// Defines a shut-off test domain `name` with `devices`.
        fn define(&self, name: &str, devices: &str) -> Domain {
            let xml = format!(
                "<domain type='test'><name>{name}</name><memory>65536</memory>\
                 <os><type>hvm</type></os><devices>{devices}</devices></domain>"
            );
            Domain::define_xml(&self.0, &xml).unwrap()
        }

        fn domain(&self, name: &str) -> Option<Domain> {
            Domain::lookup_by_name(&self.0, name).ok()
        }

        fn host_name(&self) -> String {
            self.0.get_hostname().unwrap()
        }
    }

    impl Drop for Keeper {
        fn drop(&mut self) {
            let _ = self.0.close();
        }
    }

    /// A second "host": a test-driver node file with a running and a
    /// shut-off domain (and `extra` domains), whose URI is returned.
    fn node_file(dir: &Path, extra: &str) -> String {
        let path = dir.join("node.xml");
        std::fs::write(
            &path,
            format!(
                "<node>\n\
                 <domain type='test'><name>inv-node-web</name><memory>65536</memory><os><type>hvm</type></os></domain>\n\
                 <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n\
                   <name>inv-node-stopped</name><memory>65536</memory><os><type>hvm</type></os>\n\
                   <test:runstate>5</test:runstate>\n\
                 </domain>\n{extra}</node>\n"
            ),
        )
        .unwrap();
        format!("test://{}", path.display())
    }

    fn inventory(uris: &[&str], pool_dir: Option<PathBuf>) -> LibvirtInventory {
        LibvirtInventory::new(
            LibvirtInventorySettings {
                uris: uris.iter().map(|u| (*u).to_owned()).collect(),
                pool_dir,
            },
            Duration::from_secs(60),
        )
    }

    fn qemu_img(args: &[&str]) -> String {
        let out = Command::new("qemu-img")
            .args(args)
            .output()
            .expect("qemu-img (apt-get install qemu-utils)");
        assert!(out.status.success(), "qemu-img {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// A file of the seed ISO, read back with xorriso.
    fn iso_file(iso: &Path, name: &str, dir: &Path) -> String {
        let out_path = dir.join(format!("extracted-{name}"));
        let out = Command::new("xorriso")
            .args(["-osirrox", "on", "-indev"])
            .arg(iso)
            .arg("-extract")
            .arg(format!("/{name}"))
            .arg(&out_path)
            .output()
            .expect("xorriso (apt-get install xorriso)");
        assert!(out.status.success(), "xorriso: {out:?}");
        std::fs::read_to_string(out_path).unwrap()
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn libvirt_lists_the_domains_of_every_host() {
        let keeper = Keeper::open();
        keeper.define("inv-list-a", "");
        let dir = tempfile::tempdir().unwrap();
        let node = node_file(dir.path(), "");
        let inventory = inventory(&[DEFAULT, &node], None);
        assert_eq!(inventory.name(), "libvirt");
        let vms = inventory.list().await.unwrap();
        let sorted = {
            let mut names: Vec<&str> = vms.iter().map(|vm| vm.name.as_str()).collect();
            names.sort_unstable();
            names
        };
        assert_eq!(
            vms.iter().map(|vm| vm.name.as_str()).collect::<Vec<_>>(),
            sorted
        );
        let host = keeper.host_name();
        for (name, power) in [
            ("test", PowerState::On),
            ("inv-list-a", PowerState::Off),
            ("inv-node-web", PowerState::On),
            ("inv-node-stopped", PowerState::Off),
        ] {
            let vm = vms.iter().find(|vm| vm.name == name).unwrap();
            assert_eq!(vm.power, power, "{vm:?}");
            assert_eq!(vm.host.as_deref(), Some(host.as_str()), "{vm:?}");
            assert_eq!(vm.cluster, None);
            assert!(medic_is_uuid(&vm.uuid), "{vm:?}");
        }
        keeper.domain("inv-list-a").unwrap().undefine().unwrap();
    }

    fn medic_is_uuid(text: &str) -> bool {
        text.len() == 36 && text.split('-').count() == 5
    }

    #[tokio::test]
    async fn libvirt_a_host_that_is_down_fails_the_list_and_names_itself() {
        let down = format!("qemu+tcp://127.0.0.1:{}/system", crate::common::free_port());
        let inventory = inventory(&[DEFAULT, &down], None);
        let err = inventory.list().await.unwrap_err();
        assert_kind(&err, ErrorKind::Unreachable);
        assert!(err.message.contains(&down), "{err}");
        // A VM found on a host that answers is acted on all the same.
        assert!(
            inventory
                .power_on("test")
                .await
                .unwrap()
                .contains("already on")
        );
        // One that is nowhere else says the host could not be asked.
        let err = inventory.power_on("inv-nowhere").await.unwrap_err();
        assert_kind(&err, ErrorKind::Unreachable);
    }

    #[tokio::test]
    async fn libvirt_power_operations_are_idempotent() {
        let keeper = Keeper::open();
        let uuid = keeper.define("inv-power", "").get_uuid_string().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let node = node_file(dir.path(), "");
        let inventory = inventory(&[DEFAULT, &node], None);
        let name = "inv-power";

        assert_kind(
            &inventory.reset(name).await.unwrap_err(),
            ErrorKind::WrongPowerState,
        );
        assert!(
            inventory
                .power_off(name)
                .await
                .unwrap()
                .contains("already off")
        );
        assert!(
            inventory
                .shutdown_guest(name)
                .await
                .unwrap()
                .contains("already off")
        );
        let proof = inventory.power_on(&uuid.to_uppercase()).await.unwrap();
        assert!(proof.contains("virDomainCreate"), "{proof}");
        assert_eq!(power_of(&inventory, name).await, PowerState::On);
        assert!(
            inventory
                .power_on(name)
                .await
                .unwrap()
                .contains("already on")
        );
        assert!(inventory.reset(name).await.unwrap().contains("succeeded"));
        let asked = inventory.shutdown_guest(name).await.unwrap();
        assert!(asked.contains("virDomainShutdown"), "{asked}");
        assert_eq!(power_of(&inventory, name).await, PowerState::Off);
        inventory.power_on(name).await.unwrap();
        assert!(
            inventory
                .power_off(name)
                .await
                .unwrap()
                .contains("virDomainDestroy")
        );
        assert_eq!(power_of(&inventory, name).await, PowerState::Off);

        let err = inventory.power_on("inv-no-such").await.unwrap_err();
        assert_kind(&err, ErrorKind::NotFound);

        // Destroy refuses a running domain, undefines a shut-off one.
        inventory.power_on(name).await.unwrap();
        assert_kind(
            &inventory.destroy(name).await.unwrap_err(),
            ErrorKind::WrongPowerState,
        );
        inventory.power_off(name).await.unwrap();
        inventory.destroy(name).await.unwrap();
        assert!(keeper.domain(name).is_none());
        assert_eq!(listed(&inventory, name).await, None);
    }

    #[tokio::test]
    async fn libvirt_a_domain_on_two_hosts_is_the_running_one_or_ambiguous() {
        let keeper = Keeper::open();
        keeper.define("inv-moved", "");
        keeper.define("inv-twin", "");
        let dir = tempfile::tempdir().unwrap();
        let node = node_file(
            dir.path(),
            "<domain type='test'><name>inv-moved</name><memory>65536</memory><os><type>hvm</type></os></domain>\n\
             <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>inv-twin</name>\
             <memory>65536</memory><os><type>hvm</type></os><test:runstate>5</test:runstate></domain>\n",
        );
        let inventory = inventory(&[DEFAULT, &node], None);
        // Running on the node file's host only: that one is meant.
        assert!(
            inventory
                .power_on("inv-moved")
                .await
                .unwrap()
                .contains("already on")
        );
        // Shut off on both: which one to start cannot be told.
        let err = inventory.power_on("inv-twin").await.unwrap_err();
        assert_kind(&err, ErrorKind::NotFound);
        assert!(err.message.contains("2 VMs"), "{err}");
        for name in ["inv-moved", "inv-twin"] {
            keeper.domain(name).unwrap().undefine().unwrap();
        }
    }

    /// A template whose disk is a real qcow2 master image, in `dir`.
    fn template(keeper: &Keeper, name: &str, master: &Path, format: &str) -> Domain {
        keeper.define(
            name,
            &format!(
                "<disk type='file' device='disk'><driver name='qemu' type='{format}'/>\
                 <source file='{}'/><target dev='vda' bus='virtio'/></disk>\
                 <interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='default'/></interface>",
                master.display()
            ),
        )
    }

    /// A 16 MiB qcow2 master image in `dir`, made by the real qemu-img.
    fn master_image(dir: &std::path::Path) -> std::path::PathBuf {
        let master = dir.join("master.qcow2");
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            master.to_str().unwrap(),
            "16M",
        ]);
        master
    }

    #[tokio::test]
    async fn libvirt_clone_makes_an_overlay_a_seed_and_a_new_domain() {
        let keeper = Keeper::open();
        let dir = tempfile::tempdir().unwrap();
        let master = master_image(dir.path());
        let tmpl = template(&keeper, "inv-tmpl", &master, "qcow2");
        let pool = dir.path().join("pool");
        std::fs::create_dir(&pool).unwrap();
        let node = node_file(dir.path(), "");
        let inventory = inventory(&[DEFAULT, &node], Some(pool.clone()));

        let clone = inventory
            .clone_vm(
                "inv-tmpl",
                &spec(
                    "inv-web-01",
                    "web-01.example.com",
                    Some("10.0.0.21/24"),
                    Some("10.0.0.1"),
                ),
            )
            .await
            .unwrap();
        assert_eq!(clone.name, "inv-web-01");
        assert_eq!(clone.power, PowerState::Off);
        assert_eq!(clone.host.as_deref(), Some(keeper.host_name().as_str()));
        assert_ne!(clone.uuid, tmpl.get_uuid_string().unwrap());
        assert_eq!(listed(&inventory, "inv-web-01").await.unwrap(), clone);

        // The overlay's backing file is the master image.
        let overlay = pool.join("inv-web-01.qcow2");
        let info: serde_json::Value = serde_json::from_str(&qemu_img(&[
            "info",
            "--output=json",
            overlay.to_str().unwrap(),
        ]))
        .unwrap();
        assert_eq!(info["format"], "qcow2");
        assert_eq!(info["backing-filename"], master.to_str().unwrap());
        assert_eq!(info["backing-filename-format"], "qcow2");

        // The domain: new uuid and MAC, the overlay as disk, the seed as CD-ROM.
        let domain = keeper.domain("inv-web-01").unwrap();
        assert_eq!(domain.get_uuid_string().unwrap(), clone.uuid);
        let xml = domain.get_xml_desc(0).unwrap();
        let seed = pool.join("inv-web-01-seed.iso");
        assert!(
            xml.contains(&format!("<source file='{}'", overlay.display())),
            "{xml}"
        );
        assert!(
            xml.contains(&format!("<source file='{}'", seed.display())),
            "{xml}"
        );
        assert!(xml.contains("device='cdrom'"), "{xml}");
        assert!(
            !xml.contains("52:54:00:aa:bb:cc"),
            "the template's MAC: {xml}"
        );
        let mac = xml
            .split("<mac address='")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap();
        assert!(mac.starts_with("52:54:00:"), "{mac}");

        // The seed: host name and the address on that MAC.
        let meta = iso_file(&seed, "meta-data", dir.path());
        assert!(
            meta.contains("local-hostname: \"web-01.example.com\""),
            "{meta}"
        );
        assert!(
            meta.contains(&format!("instance-id: \"{}\"", clone.uuid)),
            "{meta}"
        );
        let network = iso_file(&seed, "network-config", dir.path());
        assert!(network.contains("- \"10.0.0.21/24\""), "{network}");
        assert!(network.contains("gateway4: \"10.0.0.1\""), "{network}");
        assert!(
            network.contains(&format!("macaddress: \"{mac}\"")),
            "{network}"
        );
        let user = iso_file(&seed, "user-data", dir.path());
        assert!(user.starts_with("#cloud-config\n"), "{user}");
        let volume = Command::new("xorriso")
            .args(["-indev"])
            .arg(&seed)
            .arg("-pvd_info")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&volume.stdout);
        assert!(said.contains("Volume Id    : cidata"), "{said}");

        // The template is untouched and the clone can run.
        assert!(
            keeper
                .domain("inv-tmpl")
                .unwrap()
                .get_xml_desc(0)
                .unwrap()
                .contains("52:54:00:aa:bb:cc")
        );
        inventory.power_on("inv-web-01").await.unwrap();
        inventory.power_off("inv-web-01").await.unwrap();

        // Destroy removes the domain and the files the clone made, nothing else.
        let proof = inventory.destroy("inv-web-01").await.unwrap();
        assert!(proof.contains("files removed"), "{proof}");
        assert!(keeper.domain("inv-web-01").is_none());
        assert_eq!(files_in(&pool), Vec::<String>::new());
        assert!(master.exists());
        tmpl.undefine().unwrap();
    }

    #[tokio::test]
    async fn libvirt_failed_clones_leave_no_file_and_no_domain() {
        let keeper = Keeper::open();
        let dir = tempfile::tempdir().unwrap();
        let master = master_image(dir.path());
        let good = template(&keeper, "inv-fail-tmpl", &master, "qcow2");
        let missing = template(
            &keeper,
            "inv-fail-missing",
            Path::new("/nonexistent/master.qcow2"),
            "qcow2",
        );
        // A master that is not what its definition says: qemu-img fails
        // after the clone's files were claimed.
        let garbage = dir.path().join("garbage.qcow2");
        std::fs::write(&garbage, "not an image").unwrap();
        let broken = template(&keeper, "inv-fail-broken", &garbage, "qcow2");
        let pool = dir.path().join("pool");
        std::fs::create_dir(&pool).unwrap();
        let inventory = inventory(&[DEFAULT], Some(pool.clone()));
        let web = |name: &str| spec(name, "web", Some("10.0.0.5/24"), None);

        // A name that is taken.
        let err = inventory
            .clone_vm("inv-fail-tmpl", &web("test"))
            .await
            .unwrap_err();
        assert_kind(&err, ErrorKind::AlreadyExists);
        // A master image that is not there.
        let err = inventory
            .clone_vm("inv-fail-missing", &web("inv-fail-1"))
            .await
            .unwrap_err();
        assert_kind(&err, ErrorKind::NotFound);
        assert!(err.message.contains("/nonexistent/master.qcow2"), "{err}");
        // qemu-img refuses the backing file.
        let err = inventory
            .clone_vm("inv-fail-broken", &web("inv-fail-2"))
            .await
            .unwrap_err();
        assert_kind(&err, ErrorKind::Failed);
        assert!(err.message.contains("qemu-img"), "{err}");
        // A running template: its disk must not change under its clones.
        good.create().unwrap();
        let err = inventory
            .clone_vm("inv-fail-tmpl", &web("inv-fail-3"))
            .await
            .unwrap_err();
        assert_kind(&err, ErrorKind::WrongPowerState);
        good.destroy().unwrap();
        // A file of that name in the pool is never overwritten.
        std::fs::write(pool.join("inv-fail-4.qcow2"), "someone's disk").unwrap();
        let err = inventory
            .clone_vm("inv-fail-tmpl", &web("inv-fail-4"))
            .await
            .unwrap_err();
        assert_kind(&err, ErrorKind::AlreadyExists);
        assert_eq!(
            std::fs::read_to_string(pool.join("inv-fail-4.qcow2")).unwrap(),
            "someone's disk"
        );
        std::fs::remove_file(pool.join("inv-fail-4.qcow2")).unwrap();

        assert_eq!(files_in(&pool), Vec::<String>::new());
        for name in ["inv-fail-1", "inv-fail-2", "inv-fail-3", "inv-fail-4"] {
            assert!(keeper.domain(name).is_none(), "{name} was left defined");
        }
        for domain in [good, missing, broken] {
            domain.undefine().unwrap();
        }
    }
}
