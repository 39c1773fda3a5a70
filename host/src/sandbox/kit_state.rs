//! The small per-app key/value store behind `host.state-get`/`state-set`.
//!
//! Values survive restarts of medic (a kit may count things across checks,
//! e.g. "slow responses in a row"). Each app has one JSON file written
//! atomically; caps keep a kit from filling the disk through it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Longest key accepted, in bytes.
pub const KEY_MAX: usize = 256;
/// Longest value accepted, in bytes.
pub const VALUE_MAX: usize = 4 * 1024;
/// Most keys one app may hold.
pub const KEYS_MAX: usize = 64;

/// One app's persisted kit state.
#[derive(Debug)]
pub struct KitStateStore {
    path: PathBuf,
    values: Mutex<BTreeMap<String, String>>,
}

impl KitStateStore {
    /// Opens (or starts empty) the state kept in `path`. A damaged file is
    /// logged and replaced: kit state is a convenience, never a reason to stop
    /// watching an app.
    pub fn open(path: PathBuf) -> Self {
        let values = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "kit state unreadable; starting empty");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        Self {
            path,
            values: Mutex::new(values),
        }
    }

    /// The stored value of `key`, if any.
    pub fn get(&self, key: &str) -> Option<String> {
        self.values.lock().ok()?.get(key).cloned()
    }

    /// Stores `value` under `key` and writes the file. Returns why it was
    /// refused when a cap is exceeded or the file cannot be written.
    pub fn set(&self, key: &str, value: &str) -> Result<(), String> {
        if key.len() > KEY_MAX || value.len() > VALUE_MAX {
            return Err(format!(
                "state-set refused: key over {KEY_MAX} or value over {VALUE_MAX} bytes"
            ));
        }
        let mut values = self
            .values
            .lock()
            .map_err(|_| "kit state lock poisoned".to_string())?;
        if !values.contains_key(key) && values.len() >= KEYS_MAX {
            return Err(format!("state-set refused: more than {KEYS_MAX} keys"));
        }
        values.insert(key.to_owned(), value.to_owned());
        let bytes = serde_json::to_vec(&*values).map_err(|e| e.to_string())?;
        crate::fsutil::write_atomic(&self.path, &bytes).map_err(|e| format!("state-set: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopen_and_caps_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.json");
        let store = KitStateStore::open(path.clone());
        store.set("count", "3").unwrap();
        assert_eq!(
            KitStateStore::open(path.clone()).get("count").as_deref(),
            Some("3")
        );
        assert!(store.set("big", &"x".repeat(VALUE_MAX + 1)).is_err());
        for i in 0..KEYS_MAX - 1 {
            store.set(&format!("k{i}"), "v").unwrap();
        }
        assert!(store.set("one-too-many", "v").is_err());
        assert!(
            store.set("count", "4").is_ok(),
            "updating an existing key stays allowed"
        );
    }
}
