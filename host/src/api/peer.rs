//! Who is calling, from the socket's peer credentials or the client's
//! certificate, and whether they may.
//!
//! Everything is read from the accepted connection itself when it is
//! accepted: the kernel fixed those credentials when the caller connected.
//! Nothing is looked up by pid later, so a caller that exits (and whose pid
//! is reused) cannot lend another process's groups to its connection.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use nix::libc;
use tokio::net::{UnixListener, UnixStream};

/// The caller of one connection: every handler's `ConnectInfo`, so the
/// same routes serve the unix socket and the TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A process on the unix socket, as the kernel reports it.
    Local(Local),
    /// A client over TCP that passed mutual TLS: its certificate is signed
    /// by `client_ca` and its name is in `clients` (`api::tls`).
    Remote(Remote),
}

/// A client over TCP, named by its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The certificate's name listed in `[daemon] clients`.
    pub name: String,
    /// Where it connected from, for the log.
    pub addr: SocketAddr,
}

/// A process on the unix socket, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// The caller's user id.
    pub uid: u32,
    /// The caller's primary group id.
    pub gid: u32,
    /// The caller's supplementary groups when it connected
    /// (`SO_PEERGROUPS`), so a member of `socket_group` by a supplementary
    /// group is recognised without reading `/proc` per request.
    pub groups: Arc<[u32]>,
}

impl Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        Self::Local(Local::of(stream.io()))
    }
}

impl Peer {
    /// Whether this caller may use the API: a local one as
    /// [`Local::is_permitted`] says; a remote one always, since only a
    /// listed certificate gets through the TLS handshake.
    pub fn is_permitted(&self, group: Option<u32>) -> bool {
        match self {
            Self::Local(local) => local.is_permitted(group),
            Self::Remote(_) => true,
        }
    }

    /// How the journal names this caller (`by`): `uid 0`, or
    /// `cert controller` for the certificate named `controller`.
    pub fn name(&self) -> String {
        match self {
            Self::Local(local) => format!("uid {}", local.uid),
            Self::Remote(remote) => format!("cert {}", remote.name),
        }
    }
}

impl Local {
    /// The caller at the other end of `stream`, read once when the
    /// connection is accepted. Credentials the kernel cannot give make the
    /// caller nobody (refused); groups it cannot give make none.
    pub fn of(stream: &UnixStream) -> Self {
        let groups = peer_groups(stream.as_fd()).unwrap_or_else(|e| {
            tracing::warn!("admin API: cannot read the caller's groups (SO_PEERGROUPS): {e}");
            Vec::new()
        });
        match stream.peer_cred() {
            Ok(cred) => Self {
                uid: cred.uid(),
                gid: cred.gid(),
                groups: groups.into(),
            },
            Err(_) => Self {
                uid: u32::MAX,
                gid: u32::MAX,
                groups: Arc::new([]),
            },
        }
    }

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
        self.gid == group || self.groups.contains(&group)
    }
}

/// Groups asked for at first: more than most users are in.
const GROUPS_FIRST_TRY: usize = 64;

/// The supplementary groups of the process at the other end of the unix
/// socket `socket`, as the kernel recorded them when it connected
/// (`getsockopt(SO_PEERGROUPS)`, Linux 4.13).
///
/// Neither rustix nor nix wraps this option, so this is the one raw
/// `getsockopt` call: the kernel writes at most `len` bytes of `gid_t`s into
/// the buffer, or says how many it needs (`ERANGE`), and the buffer is grown
/// to that and asked again.
#[allow(unsafe_code)]
fn peer_groups(socket: BorrowedFd<'_>) -> std::io::Result<Vec<u32>> {
    use std::os::fd::AsRawFd;
    const GID: usize = std::mem::size_of::<libc::gid_t>();
    let mut groups: Vec<libc::gid_t> = vec![0; GROUPS_FIRST_TRY];
    loop {
        let mut len = libc::socklen_t::try_from(groups.len() * GID)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: `groups` is a live, writable buffer of exactly `len`
        // bytes for the duration of the call, `len` is a valid
        // `socklen_t` the kernel may update, and `socket` is an open
        // descriptor borrowed for the call.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let wanted = usize::try_from(len).unwrap_or(usize::MAX) / GID;
        if rc == 0 {
            groups.truncate(wanted);
            return Ok(groups);
        }
        let error = std::io::Error::last_os_error();
        // The peer's groups never change, so one bigger buffer is enough;
        // a kernel asking for less than it got is not asked again.
        if error.raw_os_error() != Some(libc::ERANGE) || wanted <= groups.len() {
            return Err(error);
        }
        groups.resize(wanted, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32) -> Local {
        Local {
            uid,
            gid,
            groups: Arc::new([]),
        }
    }

    #[test]
    fn root_self_and_primary_group_members_only() {
        let own = rustix::process::geteuid().as_raw();
        assert!(peer(0, 0).is_permitted(None));
        assert!(peer(own, own).is_permitted(None));
        let stranger = own.wrapping_add(4242);
        assert!(!peer(stranger, 5000).is_permitted(None));
        assert!(!peer(stranger, 5000).is_permitted(Some(6000)));
        assert!(peer(stranger, 6000).is_permitted(Some(6000)));
    }

    #[test]
    fn a_remote_caller_is_permitted_and_named_by_its_certificate() {
        let remote = Peer::Remote(Remote {
            name: "controller".to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 4242)),
        });
        assert!(remote.is_permitted(None));
        assert_eq!(remote.name(), "cert controller");
        assert_eq!(Peer::Local(peer(0, 0)).name(), "uid 0");
    }

    /// A supplementary group the test can give the connecting side: one it
    /// sets on its own thread when it may (root), else one it already has.
    const GIVEN_GROUP: u32 = 4242;

    /// One end of a socket pair made on a thread whose supplementary groups
    /// are `[GIVEN_GROUP]` when the test runs as root (the thread's own
    /// credentials only, not the test process's), else this process's.
    fn pair_made_by_a_group_member() -> (
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
        Vec<u32>,
    ) {
        std::thread::spawn(|| {
            if rustix::process::geteuid().is_root() {
                let given = [rustix::process::Gid::from_raw(GIVEN_GROUP)];
                rustix::thread::set_thread_groups(&given).unwrap();
            }
            let groups = rustix::process::getgroups()
                .unwrap()
                .into_iter()
                .map(|g| g.as_raw())
                .collect();
            let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
            (ours, theirs, groups)
        })
        .join()
        .unwrap()
    }

    #[tokio::test]
    async fn a_supplementary_group_from_so_peergroups_permits() {
        let (ours, _theirs, groups) = pair_made_by_a_group_member();
        ours.set_nonblocking(true).unwrap();
        let from_socket = Local::of(&UnixStream::from_std(ours).unwrap());
        let mut seen = from_socket.groups.to_vec();
        let mut expected = groups.clone();
        seen.sort_unstable();
        expected.sort_unstable();
        assert_eq!(seen, expected, "the groups the connecting thread had");
        if rustix::process::geteuid().is_root() {
            assert_eq!(seen, [GIVEN_GROUP], "not the test process's own groups");
        }
        // Judged as a stranger whose primary group is not the socket group,
        // so only the supplementary groups can let it in.
        let stranger = rustix::process::geteuid().as_raw().wrapping_add(4242);
        let as_stranger = Local {
            uid: stranger,
            gid: 5000,
            ..from_socket
        };
        for group in &groups {
            assert!(as_stranger.is_permitted(Some(*group)), "group {group}");
        }
        assert!(!as_stranger.is_permitted(Some(6000)));
    }
}
