//! Who is calling, from the socket's peer credentials, and whether they
//! may.

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::UnixListener;

/// The caller of one connection, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The caller's user id.
    pub uid: u32,
    /// The caller's primary group id.
    pub gid: u32,
    /// The caller's pid, to read its supplementary groups.
    pub pid: Option<i32>,
}

impl Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(cred) => Self {
                uid: cred.uid(),
                gid: cred.gid(),
                pid: cred.pid(),
            },
            // Unknown callers are nobody, and refused.
            Err(_) => Self {
                uid: u32::MAX,
                gid: u32::MAX,
                pid: None,
            },
        }
    }
}

impl Peer {
    /// Whether this caller may use the API: root, the daemon's own user,
    /// or a member (primary or supplementary) of `group`.
    pub fn is_permitted(&self, group: Option<u32>) -> bool {
        let own = rustix::process::geteuid().as_raw();
        if self.uid == 0 || self.uid == own {
            return true;
        }
        let Some(group) = group else {
            return false;
        };
        self.gid == group
            || self
                .pid
                .is_some_and(|pid| supplementary_groups(pid).contains(&group))
    }

    /// How the journal names this caller.
    pub fn name(&self) -> String {
        format!("uid {}", self.uid)
    }
}

/// The supplementary groups of process `pid`, from `/proc/PID/status`.
fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("Groups:").map(|groups| {
                    groups
                        .split_whitespace()
                        .filter_map(|g| g.parse().ok())
                        .collect()
                })
            })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_self_and_group_members_only() {
        let peer = |uid, gid| Peer {
            uid,
            gid,
            pid: None,
        };
        let own = rustix::process::geteuid().as_raw();
        assert!(peer(0, 0).is_permitted(None));
        assert!(peer(own, own).is_permitted(None));
        let stranger = own.wrapping_add(4242);
        assert!(!peer(stranger, 5000).is_permitted(None));
        assert!(!peer(stranger, 5000).is_permitted(Some(6000)));
        assert!(peer(stranger, 6000).is_permitted(Some(6000)));
        let with_groups = Peer {
            uid: stranger,
            gid: 5000,
            pid: Some(std::process::id() as i32),
        };
        let mine = supplementary_groups(std::process::id() as i32);
        if let Some(group) = mine.first() {
            assert!(with_groups.is_permitted(Some(*group)));
        }
    }
}
