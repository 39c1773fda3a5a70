//! The cloud-init NoCloud seed of a libvirt clone: `meta-data` (instance
//! id, host name), `user-data` (host name, FQDN) and, for a fixed address,
//! `network-config` (version 2, matched on the clone's MAC), on an ISO 9660
//! volume labelled `cidata` that the clone gets as a CD-ROM.
//!
//! The ISO is written by `xorriso` (Debian package `xorriso`), or by
//! `genisoimage`/`mkisofs` with the same options when that is what is
//! installed.

use std::ffi::OsStr;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::tools;
use crate::hypervisor::inventory::{CloneSpec, StaticIp};
use crate::hypervisor::{ErrorKind, HypervisorError};

/// The ISO writers tried in order, and the arguments that make each speak
/// `mkisofs`.
const ISO_WRITERS: [(&str, &[&str]); 3] = [
    ("xorriso", &["-as", "mkisofs"]),
    ("genisoimage", &[]),
    ("mkisofs", &[]),
];

/// The volume label cloud-init's NoCloud source looks for.
const VOLUME_LABEL: &str = "cidata";

/// The seed's files, by name.
pub(super) fn files(
    spec: &CloneSpec,
    fixed: Option<&StaticIp>,
    instance_id: &str,
    mac: &str,
) -> Vec<(&'static str, String)> {
    // Every value written here was checked (host name, addresses) or made
    // by medic (uuid, MAC), so none needs YAML quoting beyond the quotes.
    let mut files = vec![
        (
            "meta-data",
            format!(
                "instance-id: \"{instance_id}\"\nlocal-hostname: \"{}\"\n",
                spec.host_name
            ),
        ),
        ("user-data", {
            let mut text = format!(
                "#cloud-config\npreserve_hostname: false\nhostname: \"{}\"\n",
                spec.short_host_name()
            );
            if spec.domain().is_some() {
                text.push_str(&format!("fqdn: \"{}\"\n", spec.host_name));
            }
            text
        }),
    ];
    if let Some(ip) = fixed {
        let mut text = format!(
            "version: 2\nethernets:\n  primary:\n    match:\n      macaddress: \"{mac}\"\n    \
             addresses:\n      - \"{}/{}\"\n",
            ip.address, ip.prefix
        );
        if let Some(gateway) = ip.gateway {
            let key = match gateway {
                IpAddr::V4(_) => "gateway4",
                IpAddr::V6(_) => "gateway6",
            };
            text.push_str(&format!("    {key}: \"{gateway}\"\n"));
        }
        files.push(("network-config", text));
    }
    files
}

/// Writes `files` as an ISO 9660 (Joliet, Rock Ridge) volume labelled
/// `cidata` and moves it to `output` (replacing the placeholder there),
/// through a scratch directory in `output`'s own directory; for at most `limit`.
pub(super) async fn write_iso(
    files: &[(&'static str, String)],
    output: &Path,
    limit: Duration,
) -> Result<(), HypervisorError> {
    let (program, prefix) = ISO_WRITERS
        .iter()
        .find_map(|(name, prefix)| Some((tools::find(&[name])?, *prefix)))
        .ok_or_else(|| {
            HypervisorError::new(
                ErrorKind::Failed,
                "cannot write the cloud-init seed: none of xorriso, genisoimage or mkisofs is \
                 installed (Debian: apt-get install xorriso)",
            )
        })?;
    let failed = |what: String| HypervisorError::new(ErrorKind::Failed, what);
    let dir = output.parent().unwrap_or(Path::new("/"));
    let scratch = tempfile::Builder::new()
        .prefix(".medic-seed-")
        .tempdir_in(dir)
        .map_err(|e| {
            failed(format!(
                "cannot make a scratch directory in {}: {e}",
                dir.display()
            ))
        })?;
    let mut paths = Vec::with_capacity(files.len());
    for (name, text) in files {
        let path = scratch.path().join(name);
        std::fs::write(&path, text)
            .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))?;
        paths.push(path);
    }
    let iso = scratch.path().join("seed.iso");
    let mut args: Vec<&OsStr> = prefix.iter().map(OsStr::new).collect();
    args.extend([OsStr::new("-output"), iso.as_os_str()]);
    args.extend(["-volid", VOLUME_LABEL, "-joliet", "-rock", "-quiet"].map(OsStr::new));
    args.extend(paths.iter().map(|p| p.as_os_str()));
    tools::run(&program, &args, limit, "writing the cloud-init seed").await?;
    std::fs::rename(&iso, output).map_err(|e| {
        failed(format!(
            "cannot move the cloud-init seed to {}: {e}",
            output.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn files_say_host_name_and_address() {
        let spec = CloneSpec {
            name: "web-01".into(),
            host_name: "web-01.example.com".into(),
            ip: Some("10.0.0.21/24".into()),
            gateway: Some("10.0.0.1".into()),
        };
        let fixed = spec.check().unwrap();
        let files = files(&spec, fixed.as_ref(), "id-1", "52:54:00:01:02:03");
        let text = |name: &str| files.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        assert_eq!(
            text("meta-data"),
            "instance-id: \"id-1\"\nlocal-hostname: \"web-01.example.com\"\n"
        );
        assert!(text("user-data").starts_with("#cloud-config\n"));
        assert!(text("user-data").contains("hostname: \"web-01\"\n"));
        assert!(text("user-data").contains("fqdn: \"web-01.example.com\"\n"));
        let network = text("network-config");
        assert!(
            network.contains("macaddress: \"52:54:00:01:02:03\""),
            "{network}"
        );
        assert!(network.contains("- \"10.0.0.21/24\""), "{network}");
        assert!(network.contains("gateway4: \"10.0.0.1\""), "{network}");

        let dhcp = CloneSpec {
            ip: None,
            gateway: None,
            host_name: "db".into(),
            ..spec
        };
        let files = super::files(&dhcp, None, "id-2", "52:54:00:01:02:03");
        assert_eq!(
            files.len(),
            2,
            "no network-config: DHCP is cloud-init's default"
        );
        assert!(!files[1].1.contains("fqdn"));
    }
}
