//! libvirt, through the `virt` crate: any URI libvirt supports
//! (`qemu+ssh://host/system`, `qemu:///system`, `test:///default`...).
//!
//! [`Libvirt`] resets the one domain medic runs in; [`LibvirtInventory`]
//! names and acts on the domains of several hosts (one URI each) and
//! clones new ones from a template. Both share the connection code. The
//! settings and their parsers are built without the `libvirt` feature too,
//! so such a build can refuse the backend at its line.

#[cfg(feature = "libvirt")]
mod clone;
#[cfg(feature = "libvirt")]
mod connection;
#[cfg(feature = "libvirt")]
mod inventory;
#[cfg(feature = "libvirt")]
mod seed;
mod settings;
#[cfg(feature = "libvirt")]
mod single;
#[cfg(feature = "libvirt")]
mod tools;

#[cfg(feature = "libvirt")]
pub use inventory::LibvirtInventory;
pub use settings::{LibvirtInventorySettings, LibvirtSettings};
pub(crate) use settings::{read, read_inventory};
#[cfg(feature = "libvirt")]
pub use single::Libvirt;
