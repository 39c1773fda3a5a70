//! The VM's own SMBIOS uuid, and the byte-swapped form older VM hardware shows.
//!
//! vSphere's BIOS uuid (`config.uuid`) is what the guest sees in
//! `/sys/class/dmi/id/product_uuid`, but older virtual hardware versions
//! present the first three fields little-endian, so the guest reads
//! `ddccbbaa-ffee-hhgg-...` for a VM whose uuid is `aabbccdd-eeff-gghh-...`.
//! Looking up both forms finds the VM either way.

use std::path::Path;

use crate::hypervisor::inventory::is_uuid;
use crate::hypervisor::{ErrorKind, HypervisorError};

/// Reads the SMBIOS uuid from `path`, trimmed and lowercased.
///
/// A missing or unreadable file is `NotFound`: without it `auto` cannot
/// know which VM it runs in, and retrying will not help.
pub async fn read_dmi_uuid(path: &Path) -> Result<String, HypervisorError> {
    let text = tokio::fs::read_to_string(path).await.map_err(|err| {
        HypervisorError::new(
            ErrorKind::NotFound,
            format!("cannot read the VM's uuid from {}: {err}", path.display()),
        )
    })?;
    let uuid = text.trim().to_ascii_lowercase();
    if !is_uuid(&uuid) {
        return Err(HypervisorError::new(
            ErrorKind::NotFound,
            format!("{} does not hold a uuid (found {uuid:?})", path.display()),
        ));
    }
    Ok(uuid)
}

/// The uuid with its first three fields byte-swapped, or `None` if it is not
/// a uuid in the 8-4-4-4-12 hex form. Applying it twice gives the input back.
pub fn byte_swapped(uuid: &str) -> Option<String> {
    if !is_uuid(uuid) {
        return None;
    }
    let fields: Vec<&str> = uuid.split('-').collect();
    let swap = |field: &str| -> String {
        let bytes: Vec<&str> = (0..field.len())
            .step_by(2)
            .filter_map(|i| field.get(i..i + 2))
            .collect();
        bytes.into_iter().rev().collect()
    };
    Some(format!(
        "{}-{}-{}-{}-{}",
        swap(fields.first()?),
        swap(fields.get(1)?),
        swap(fields.get(2)?),
        fields.get(3)?,
        fields.get(4)?
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn swaps_the_first_three_fields() {
        assert_eq!(
            byte_swapped("aabbccdd-eeff-0011-2233-445566778899").unwrap(),
            "ddccbbaa-ffee-1100-2233-445566778899"
        );
    }

    #[test]
    fn swapping_twice_is_identity() {
        let uuid = "265104de-1472-547c-b873-6dc7883fb6cb";
        assert_eq!(byte_swapped(&byte_swapped(uuid).unwrap()).unwrap(), uuid);
    }

    #[test]
    fn rejects_non_uuids() {
        assert_eq!(byte_swapped("not-a-uuid"), None);
        assert_eq!(byte_swapped("zzbbccdd-eeff-0011-2233-445566778899"), None);
    }

    #[tokio::test]
    async fn reads_trimmed_lowercase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("product_uuid");
        std::fs::write(&path, "AABBCCDD-EEFF-0011-2233-445566778899\n").unwrap();
        assert_eq!(
            read_dmi_uuid(&path).await.unwrap(),
            "aabbccdd-eeff-0011-2233-445566778899"
        );
    }

    #[tokio::test]
    async fn missing_file_names_the_file() {
        let err = read_dmi_uuid(Path::new("/nonexistent/product_uuid"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert!(err.message.contains("/nonexistent/product_uuid"));
    }
}
