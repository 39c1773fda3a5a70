//! The pieces of a libvirt clone that touch no connection: reading the
//! template's definition, writing the clone's, new identities, the files a
//! clone makes (removed again unless it succeeds) and the metadata that
//! lets a later destroy find them.
//!
//! A clone's disk is a qcow2 overlay whose backing file is the template's
//! only disk, the master image: the template must have exactly one disk,
//! of a file, and must never run again while clones use it. The clone's
//! definition is the template's with a new name, a new uuid, a new MAC on
//! every network card, the overlay as its disk, no NVRAM file of the
//! template's (libvirt makes its own) and the cloud-init seed as its only
//! CD-ROM.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::hypervisor::xml::{self, Element};
use crate::hypervisor::{ErrorKind, HypervisorError};

/// The namespace of medic's element in a clone's `<metadata>`.
pub(super) const METADATA_NS: &str = "https://medic.invalid/libvirt/clone/1";
/// The prefix libvirt writes medic's element with.
pub(super) const METADATA_PREFIX: &str = "medic";

/// A template's definition, checked for cloning.
#[derive(Debug)]
pub(super) struct Template {
    root: Element,
    /// The master image: the file of the template's one disk.
    pub master: PathBuf,
    /// Its format as the definition says (`raw` when it does not, as
    /// libvirt then assumes).
    pub format: String,
    /// How many network cards it has (each clone gets new MACs).
    pub cards: usize,
}

/// What a clone is, to write its definition.
#[derive(Debug)]
pub(super) struct NewDomain<'a> {
    pub name: &'a str,
    pub uuid: &'a str,
    /// One MAC per network card, in order.
    pub macs: &'a [String],
    pub overlay: &'a Path,
    pub seed: &'a Path,
}

fn refused(template: &str, why: impl std::fmt::Display) -> HypervisorError {
    HypervisorError::new(
        ErrorKind::Failed,
        format!("domain `{template}` cannot be cloned: {why}"),
    )
}

/// `device` of a `<disk>`, `disk` when unset.
fn disk_device(disk: &Element) -> &str {
    disk.attribute("device").unwrap_or("disk")
}

impl Template {
    /// Reads `template`'s inactive definition `text`.
    pub(super) fn read(text: &str, template: &str) -> Result<Self, HypervisorError> {
        let root = xml::parse(text).map_err(|e| refused(template, format!("its XML: {e}")))?;
        let devices = root
            .child("devices")
            .ok_or_else(|| refused(template, "it has no <devices>"))?;
        let disks: Vec<&Element> = devices
            .children_named("disk")
            .filter(|disk| disk_device(disk) == "disk")
            .collect();
        let [disk] = disks.as_slice() else {
            return Err(refused(
                template,
                format!(
                    "it has {} disks; a clone is an overlay of one master image, so a template has exactly one",
                    disks.len()
                ),
            ));
        };
        if disk.attribute("type").is_some_and(|ty| ty != "file") {
            return Err(refused(
                template,
                "its disk is not a file (only a file can be a qcow2 backing file here)",
            ));
        }
        let master = disk
            .child("source")
            .and_then(|source| source.attribute("file"))
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
            .ok_or_else(|| refused(template, "its disk names no absolute source file"))?;
        let format = disk
            .child("driver")
            .and_then(|driver| driver.attribute("type"))
            .unwrap_or("raw")
            .to_owned();
        let cards = devices.children_named("interface").count();
        Ok(Self {
            root,
            master,
            format,
            cards,
        })
    }

    /// The clone's definition.
    pub(super) fn clone_xml(&self, new: &NewDomain<'_>) -> String {
        let mut root = self.root.clone();
        set_text(&mut root, "name", new.name);
        set_text(&mut root, "uuid", new.uuid);
        if let Some(os) = root.child_mut("os") {
            os.children.retain(|child| child.name != "nvram");
        }
        let q35 = root
            .path(&["os", "type"])
            .and_then(|ty| ty.attribute("machine"))
            .is_some_and(|machine| machine.contains("q35"));
        if let Some(devices) = root.child_mut("devices") {
            rewrite_devices(devices, new, q35);
        }
        root.write()
    }
}

/// Sets the text of `parent`'s child `name`, adding the child if needed.
fn set_text(parent: &mut Element, name: &str, text: &str) {
    if parent.child_mut(name).is_none() {
        parent.children.insert(0, Element::new(name));
    }
    if let Some(child) = parent.child_mut(name) {
        child.text = text.to_owned();
    }
}

/// The clone's devices: the overlay for the disk, the seed for every
/// CD-ROM and floppy, new MACs for every card. The seed goes on the bus of
/// the template's CD-ROM, else SATA on a q35 machine (which has no IDE),
/// else IDE.
fn rewrite_devices(devices: &mut Element, new: &NewDomain<'_>, q35: bool) {
    let cdrom_bus = devices
        .children_named("disk")
        .find(|disk| disk_device(disk) == "cdrom")
        .and_then(|disk| disk.child("target"))
        .and_then(|target| target.attribute("bus"))
        .map(str::to_owned);
    devices
        .children
        .retain(|child| child.name != "disk" || disk_device(child) == "disk");
    let mut macs = new.macs.iter();
    for device in &mut devices.children {
        match device.name.as_str() {
            "disk" => {
                device.children.retain(|c| c.name != "backingStore");
                if let Some(source) = device.child_mut("source") {
                    source.set_attribute("file", &new.overlay.to_string_lossy());
                }
                if device.child_mut("driver").is_none() {
                    let mut driver = Element::new("driver");
                    driver.set_attribute("name", "qemu");
                    device.children.insert(0, driver);
                }
                if let Some(driver) = device.child_mut("driver") {
                    driver.set_attribute("type", "qcow2");
                }
            }
            "interface" => {
                device
                    .children
                    .retain(|c| c.name != "mac" && c.name != "target");
                if let Some(address) = macs.next() {
                    let mut mac = Element::new("mac");
                    mac.set_attribute("address", address);
                    device.children.insert(0, mac);
                }
            }
            _ => {}
        }
    }
    let bus = cdrom_bus.unwrap_or_else(|| if q35 { "sata" } else { "ide" }.to_owned());
    let prefix = if bus == "ide" { "hd" } else { "sd" };
    let used: Vec<String> = devices
        .children_named("disk")
        .filter_map(|disk| disk.child("target")?.attribute("dev").map(str::to_owned))
        .collect();
    let dev = ('a'..='z')
        .map(|letter| format!("{prefix}{letter}"))
        .find(|dev| !used.contains(dev))
        .unwrap_or_else(|| format!("{prefix}zz"));
    devices.children.push(seed_disk(new.seed, &dev, &bus));
}

/// `<disk type="file" device="cdrom">` of the seed, read-only.
fn seed_disk(seed: &Path, dev: &str, bus: &str) -> Element {
    let mut disk = Element::new("disk");
    disk.set_attribute("type", "file");
    disk.set_attribute("device", "cdrom");
    let mut driver = Element::new("driver");
    driver.set_attribute("name", "qemu");
    driver.set_attribute("type", "raw");
    let mut source = Element::new("source");
    source.set_attribute("file", &seed.to_string_lossy());
    let mut target = Element::new("target");
    target.set_attribute("dev", dev);
    target.set_attribute("bus", bus);
    disk.children = vec![driver, source, target, Element::new("readonly")];
    disk
}

/// The file of every disk a definition has.
pub(super) fn disk_files(text: &str) -> Vec<PathBuf> {
    let Ok(root) = xml::parse(text) else {
        return Vec::new();
    };
    root.child("devices")
        .map(|devices| {
            devices
                .children_named("disk")
                .filter_map(|disk| disk.child("source")?.attribute("file"))
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

/// medic's metadata element of a clone of `template` made of `files`.
pub(super) fn metadata(template: &str, files: &[PathBuf]) -> String {
    let mut clone = Element::new("clone");
    clone.set_attribute("template", template);
    clone.children = files
        .iter()
        .map(|file| {
            let mut element = Element::new("file");
            element.text = file.to_string_lossy().into_owned();
            element
        })
        .collect();
    clone.write()
}

/// The files medic's metadata element `text` says the clone owns.
pub(super) fn metadata_files(text: &str) -> Vec<PathBuf> {
    xml::parse(text)
        .map(|clone| {
            clone
                .children_named("file")
                .map(|file| PathBuf::from(file.value()))
                .collect()
        })
        .unwrap_or_default()
}

/// Random bytes from the kernel.
fn random<const N: usize>() -> Result<[u8; N], HypervisorError> {
    let mut bytes = [0; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut bytes))
        .map_err(|e| {
            HypervisorError::new(ErrorKind::Failed, format!("cannot read /dev/urandom: {e}"))
        })?;
    Ok(bytes)
}

/// A new random (version 4) uuid.
pub(super) fn new_uuid() -> Result<String, HypervisorError> {
    let mut b: [u8; 16] = random()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// A new MAC in QEMU's locally administered range, `52:54:00:xx:xx:xx`.
pub(super) fn new_mac() -> Result<String, HypervisorError> {
    let [a, b, c]: [u8; 3] = random()?;
    Ok(format!("52:54:00:{a:02x}:{b:02x}:{c:02x}"))
}

/// The files a clone has made so far, removed when dropped unless
/// [`MadeFiles::keep`] was called: a clone that fails or is abandoned at
/// any step leaves no file behind.
#[derive(Debug, Default)]
pub(super) struct MadeFiles {
    paths: Vec<PathBuf>,
}

impl MadeFiles {
    /// Claims `path` by creating it empty, which fails if it exists, so a
    /// clone never overwrites another VM's disk.
    pub(super) fn claim(&mut self, path: &Path) -> Result<(), HypervisorError> {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| {
                let kind = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    ErrorKind::AlreadyExists
                } else {
                    ErrorKind::Failed
                };
                HypervisorError::new(kind, format!("cannot create {}: {e}", path.display()))
            })?;
        self.paths.push(path.to_path_buf());
        Ok(())
    }

    /// The files made so far.
    pub(super) fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Keeps the files: the clone exists.
    pub(super) fn keep(mut self) {
        self.paths.clear();
    }
}

impl Drop for MadeFiles {
    fn drop(&mut self) {
        remove_files(&self.paths);
    }
}

/// Removes `paths`, logging (not failing on) what cannot be removed.
pub(super) fn remove_files(paths: &[PathBuf]) {
    for path in paths {
        match std::fs::remove_file(path) {
            Ok(()) => tracing::info!(path = %path.display(), "removed a clone's file"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a clone's file")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const TEMPLATE: &str = r#"<domain type="kvm" xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0">
  <name>tmpl</name>
  <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>
  <memory unit="KiB">65536</memory>
  <os><type arch="x86_64" machine="pc-q35-7.2">hvm</type><loader readonly="yes" type="pflash">/usr/share/OVMF/OVMF_CODE.fd</loader><nvram>/var/lib/libvirt/qemu/nvram/tmpl_VARS.fd</nvram></os>
  <devices>
    <disk type="file" device="disk"><driver name="qemu" type="raw"/><source file="/images/master.img"/><target dev="vda" bus="virtio"/></disk>
    <disk type="file" device="cdrom"><source file="/iso/installer.iso"/><target dev="sda" bus="sata"/><readonly/></disk>
    <interface type="network"><mac address="52:54:00:aa:bb:cc"/><source network="default"/><model type="virtio"/></interface>
    <interface type="network"><mac address="52:54:00:aa:bb:cd"/><source network="default"/></interface>
  </devices>
  <qemu:commandline><qemu:arg value="-x"/></qemu:commandline>
</domain>"#;

    #[test]
    fn reads_the_master_image_and_writes_the_clone() {
        let template = Template::read(TEMPLATE, "tmpl").unwrap();
        assert_eq!(template.master, Path::new("/images/master.img"));
        assert_eq!(template.format, "raw");
        assert_eq!(template.cards, 2);
        let macs = [
            "52:54:00:00:00:01".to_owned(),
            "52:54:00:00:00:02".to_owned(),
        ];
        let text = template.clone_xml(&NewDomain {
            name: "web-01",
            uuid: "11111111-2222-4333-8444-555555555555",
            macs: &macs,
            overlay: Path::new("/pool/web-01.qcow2"),
            seed: Path::new("/pool/web-01-seed.iso"),
        });
        let clone = xml::parse(&text).unwrap();
        assert_eq!(clone.child("name").unwrap().value(), "web-01");
        assert_eq!(
            clone.child("uuid").unwrap().value(),
            "11111111-2222-4333-8444-555555555555"
        );
        assert!(clone.path(&["os", "nvram"]).is_none(), "{text}");
        assert!(clone.path(&["os", "loader"]).is_some(), "{text}");
        let devices = clone.child("devices").unwrap();
        let disks: Vec<_> = devices.children_named("disk").collect();
        assert_eq!(disks.len(), 2, "{text}");
        assert_eq!(
            disks[0].child("source").unwrap().attribute("file"),
            Some("/pool/web-01.qcow2")
        );
        assert_eq!(
            disks[0].child("driver").unwrap().attribute("type"),
            Some("qcow2")
        );
        assert_eq!(disks[1].attribute("device"), Some("cdrom"));
        assert_eq!(
            disks[1].child("source").unwrap().attribute("file"),
            Some("/pool/web-01-seed.iso")
        );
        // The installer's bus, the first free name on it.
        assert_eq!(
            disks[1].child("target").unwrap().attribute("bus"),
            Some("sata")
        );
        assert_eq!(
            disks[1].child("target").unwrap().attribute("dev"),
            Some("sda")
        );
        let cards: Vec<_> = devices
            .children_named("interface")
            .map(|i| i.child("mac").unwrap().attribute("address").unwrap())
            .collect();
        assert_eq!(cards, ["52:54:00:00:00:01", "52:54:00:00:00:02"]);
        // What medic does not know is kept, prefixes and all.
        assert!(
            text.contains(r#"<qemu:commandline><qemu:arg value="-x"/></qemu:commandline>"#),
            "{text}"
        );
    }

    #[test]
    fn templates_that_cannot_be_cloned_say_why() {
        for (text, says) in [
            ("<domain><name>t</name></domain>", "no <devices>"),
            ("<domain><devices/></domain>", "has 0 disks"),
            (
                r#"<domain><devices><disk><source file="/a"/></disk><disk device="disk"><source file="/b"/></disk></devices></domain>"#,
                "has 2 disks",
            ),
            (
                r#"<domain><devices><disk type="block"><source dev="/dev/vg/a"/></disk></devices></domain>"#,
                "not a file",
            ),
            (
                r#"<domain><devices><disk type="file"><source file="rel.img"/></disk></devices></domain>"#,
                "absolute",
            ),
        ] {
            let err = Template::read(text, "t").unwrap_err();
            assert!(err.message.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn metadata_round_trip() {
        let files = [PathBuf::from("/p/a.qcow2"), PathBuf::from("/p/a & b.iso")];
        assert_eq!(metadata_files(&metadata("tmpl", &files)), files);
    }

    #[test]
    fn identities_are_fresh_and_well_formed() {
        let (a, b) = (new_uuid().unwrap(), new_uuid().unwrap());
        assert_ne!(a, b);
        assert!(crate::hypervisor::inventory::is_uuid(&a), "{a}");
        assert_eq!(&a[14..15], "4");
        let mac = new_mac().unwrap();
        assert!(mac.starts_with("52:54:00:") && mac.len() == 17, "{mac}");
    }

    #[test]
    fn made_files_go_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let mut made = MadeFiles::default();
        made.claim(&a).unwrap();
        assert_eq!(made.claim(&a).unwrap_err().kind, ErrorKind::AlreadyExists);
        drop(made);
        assert!(!a.exists());
        let mut made = MadeFiles::default();
        made.claim(&b).unwrap();
        made.keep();
        assert!(b.exists());
    }
}
