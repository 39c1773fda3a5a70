//! What medic needs to know about processes on this machine, read from
//! `/proc`: used by the `host.processes`/`pid-alive` kit imports.

/// Pids of processes whose `/proc/PID/comm` equals `name`. `comm` is what
/// `ps -o comm` and `pgrep` match by default; it is cut at 15 bytes, so a
/// longer `name` is compared on its first 15 bytes.
pub fn pids_by_name(name: &str) -> Vec<u32> {
    let wanted = name.as_bytes().get(..15).unwrap_or(name.as_bytes());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.strip_suffix(b"\n").unwrap_or(&comm) == wanted)
        })
        .filter(|pid| is_alive(*pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether `pid` names a live process. A zombie (exited, not yet reaped)
/// counts as gone: the application it was is no longer running.
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself
    // contain spaces and parentheses.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_itself_and_not_a_dead_pid() {
        let me = std::process::id();
        assert!(is_alive(me));
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert!(pids_by_name(comm.trim()).contains(&me));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!is_alive(pid), "a reaped child is gone");
    }
}
