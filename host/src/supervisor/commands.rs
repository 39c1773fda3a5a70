//! Running an app's `start` and `stop` commands.
//!
//! Commands run without a shell, in their own process group (so a signal
//! meant for medic does not take the app down with it), with stdin closed
//! and output kept in `state_dir/logs/APP.STEP.log` for the admin: a daemon
//! that forks keeps its output pipes open, so medic never waits on pipes.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::process::GroupGuard;

/// Runs `argv` and waits for it to exit within `timeout`. `Err` says what
/// failed, with the last line the command wrote.
pub async fn run_command(argv: &[String], timeout: Duration, log: &Path) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let output = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        // Readable by medic's group (admins), whatever the umask.
        .mode(0o640)
        .open(log)
        .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let errors = output.try_clone().map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .process_group(0)
        // An explicit environment: no credential, and systemd's notify
        // socket and watchdog are medic's, not the app's.
        .env_clear()
        .envs(crate::process::child_env())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    // The command runs in its own process group: a timeout ends all of it,
    // while what a `start` that finished started (the app) stays.
    let mut group = GroupGuard::new(child.id());
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => {
            group.disarm();
            status.map_err(|e| format!("{program}: {e}"))?
        }
        Err(_) => {
            group.kill();
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(with_last_line(
                format!(
                    "{program} did not finish within {} (killed with its process group)",
                    humantime::format_duration(timeout)
                ),
                log,
            ));
        }
    };
    if status.success() {
        return Ok(());
    }
    Err(with_last_line(
        format!("{program} exited with {status}"),
        log,
    ))
}

/// `what` failed, followed by the last line the command wrote, the admin's
/// first clue (`could not bind()`, `lock held by pid 42`).
fn with_last_line(what: String, log: &Path) -> String {
    match last_line(log) {
        Some(line) => format!("{what}: {line}"),
        None => what,
    }
}

/// The last non-empty line a command wrote to `log`, control characters
/// escaped.
pub(super) fn last_line(log: &Path) -> Option<String> {
    std::fs::read_to_string(log).ok().and_then(|text| {
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(crate::sandbox::tame_text)
    })
}
