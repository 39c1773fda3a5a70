//! The programs a libvirt clone runs (`qemu-img`, an ISO 9660 writer):
//! looked up in the system's directories only, run with an explicit
//! environment in a process group of their own, and killed with
//! everything they started when their time is up or the caller gives up.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::hypervisor::{ErrorKind, HypervisorError};
use crate::process::GroupGuard;

/// Where the programs are looked for: the system's directories, never the
/// caller's `PATH`, so what runs does not depend on who started medic.
const PROGRAM_DIRS: [&str; 5] = ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"];

/// The first of `names` installed in [`PROGRAM_DIRS`].
pub(super) fn find(names: &[&str]) -> Option<PathBuf> {
    names.iter().find_map(|name| {
        PROGRAM_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|path| path.is_file())
    })
}

/// Runs `program` with `args` for at most `limit`; returns its stdout, or
/// the failure with the last line it printed on stderr. `what` names the
/// step in messages.
pub(super) async fn run(
    program: &Path,
    args: &[&OsStr],
    limit: Duration,
    what: &str,
) -> Result<Vec<u8>, HypervisorError> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .env_clear()
        .envs(crate::process::child_env())
        .env("LC_ALL", "C")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            HypervisorError::new(
                ErrorKind::Failed,
                format!("{what}: cannot run {}: {e}", program.display()),
            )
        })?;
    // Whatever the program left running goes with it, when this returns
    // or is dropped.
    let _group = GroupGuard::new(child.id());
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| {
            HypervisorError::new(
                ErrorKind::Timeout,
                format!(
                    "{what}: {} did not finish within {}",
                    program.display(),
                    humantime::format_duration(limit)
                ),
            )
        })?
        .map_err(|e| HypervisorError::new(ErrorKind::Failed, format!("{what}: {e}")))?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let said = String::from_utf8_lossy(&output.stderr)
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(crate::sandbox::tame_text)
        .unwrap_or_default();
    Err(HypervisorError::new(
        ErrorKind::Failed,
        format!(
            "{what}: {} failed ({}): {said}",
            program.display(),
            output.status
        ),
    ))
}
