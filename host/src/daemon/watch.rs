//! Reload on change: `plugins_dir` and `apps_dir` are watched (inotify, via
//! the notify crate), and a burst of changes becomes one reload once the
//! files have been quiet for a moment, so a file copied in several writes
//! is read whole.

use std::path::Path;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// How long the directories must be quiet before a reload.
const QUIET: Duration = Duration::from_millis(500);

/// Changes in the watched directories; dropped, it stops watching.
pub struct DirWatch {
    _watcher: notify::RecommendedWatcher,
    changes: mpsc::Receiver<()>,
}

impl DirWatch {
    /// Watches `dirs`; a directory that cannot be watched is logged and
    /// skipped (SIGHUP and `medic reload` still work).
    pub fn new(dirs: &[&Path]) -> Option<Self> {
        let (tx, changes) = mpsc::channel(1);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let relevant = event.is_ok_and(|event| !event.kind.is_access());
                if relevant {
                    // A full channel already holds a pending change.
                    let _ = tx.try_send(());
                }
            })
            .map_err(|e| tracing::warn!("cannot watch config directories: {e}"))
            .ok()?;
        for dir in dirs {
            if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), "cannot watch for changes: {e}");
            }
        }
        Some(Self {
            _watcher: watcher,
            changes,
        })
    }

    /// Resolves after a change once the directories have been quiet for
    /// half a second.
    pub async fn settled(&mut self) {
        if self.changes.recv().await.is_none() {
            return std::future::pending().await;
        }
        while tokio::time::timeout(QUIET, self.changes.recv())
            .await
            .is_ok()
        {}
    }
}

/// Waits for the next settled change of `watch`, or forever without one.
pub async fn next_change(watch: &mut Option<DirWatch>) {
    match watch {
        Some(watch) => watch.settled().await,
        None => std::future::pending().await,
    }
}
