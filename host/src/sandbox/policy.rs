//! Turns an app's `[grants]` into what the sandbox enforces.
//!
//! Everything not granted is denied. The same [`ConnectPolicy`] guards WASI
//! sockets (by resolved address) and wasi-http (by the request's authority),
//! because the socket check never sees the connections wasi-http makes.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::env_grant::EnvGrant;
use super::kit_text::tame;
use crate::config::Grants;

/// The grants of one app in the form the sandbox checks them on every call.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Directories preopened read-only, at the same path inside the guest.
    pub read: Vec<PathBuf>,
    /// Where sockets and outgoing HTTP may connect.
    pub connect: ConnectPolicy,
    /// Programs `host.exec` may run, by exact absolute path.
    pub exec: Vec<PathBuf>,
    /// Environment variables a kit may set for the programs it runs.
    pub env: EnvGrant,
}

impl Policy {
    /// Compiles grants once per app load, resolving host names in `connect`
    /// so that each call only does set look-ups.
    pub fn from_grants(grants: &Grants) -> Self {
        Self {
            read: grants.read.clone(),
            connect: ConnectPolicy::new(&grants.connect),
            exec: grants.exec.clone(),
            env: EnvGrant::new(&grants.env),
        }
    }

    /// Whether `host.exec` may run `program`.
    pub fn may_exec(&self, program: &str) -> bool {
        self.exec
            .iter()
            .any(|granted| granted == Path::new(program))
    }
}

/// The `host:port` pairs an app may connect to.
#[derive(Debug, Clone, Default)]
pub struct ConnectPolicy {
    /// Entries as granted, host lower-cased, without IPv6 brackets.
    names: HashSet<(String, u16)>,
    /// The same entries resolved to socket addresses when the app loaded.
    addrs: HashSet<SocketAddr>,
}

impl ConnectPolicy {
    /// Builds the policy from `host:port` grants. An entry that does not
    /// resolve still allows HTTP to that exact name; it just allows no socket.
    pub fn new(grants: &[String]) -> Self {
        let mut policy = Self::default();
        for grant in grants {
            if let Some((host, port)) = split_host_port(grant) {
                policy.names.insert((host.to_ascii_lowercase(), port));
            }
            if let Ok(addrs) = grant.to_socket_addrs() {
                policy.addrs.extend(addrs);
            }
        }
        policy
    }

    /// Whether any connection at all is granted.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether a socket may connect to `addr`.
    pub fn allows_addr(&self, addr: &SocketAddr) -> bool {
        self.addrs.contains(addr)
    }

    /// Whether an HTTP request may go to `host` on `port`: either the name
    /// is granted as written, or it is an IP literal that a grant resolved to.
    pub fn allows_host(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if self.names.contains(&(host.to_ascii_lowercase(), port)) {
            return true;
        }
        host.parse()
            .is_ok_and(|ip| self.addrs.contains(&SocketAddr::new(ip, port)))
    }
}

impl ConnectPolicy {
    /// Checks an HTTP(S) URI by its authority (default port by scheme).
    /// `Err` names the refused `host:port` in the form journaled as denied.
    pub fn allows_uri(&self, uri: &http::Uri) -> Result<(), String> {
        let host = uri
            .host()
            .ok_or_else(|| format!("request to {uri} has no host"))?;
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        });
        if self.allows_host(host, port) {
            Ok(())
        } else {
            Err(format!("http {host}:{port}"))
        }
    }
}

/// Splits `host:port`, `[v6]:port` into the bare host and the port.
fn split_host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host, port.parse().ok()?))
}

/// Denied capability uses seen during one call, shared with callbacks (the
/// socket check) that cannot reach the store. Bounded: a kit that is
/// denied in a loop cannot grow medic's memory or the fault's text.
#[derive(Debug, Clone, Default)]
pub struct Denials(Arc<Mutex<DenialList>>);

/// The first denials of a call, each cut short, and how many more there were.
#[derive(Debug, Default)]
pub struct DenialList {
    kept: Vec<String>,
    more: usize,
}

/// Denials kept per call; the rest are counted.
pub const DENIALS_KEPT: usize = 8;
/// Bytes kept of one denial (a program name or URL may be huge).
pub const DENIAL_MAX: usize = 256;

impl Denials {
    /// Records one denied use, e.g. `connect 10.0.0.1:22`.
    pub fn record(&self, what: String) {
        let Ok(mut list) = self.0.lock() else { return };
        if list.kept.len() < DENIALS_KEPT {
            let what = tame(&what, DENIAL_MAX);
            tracing::debug!(denied = %what, "capability denied");
            list.kept.push(what);
        } else {
            list.more = list.more.saturating_add(1);
        }
    }

    /// What was denied so far (the first few, then how many more).
    pub fn take(&self) -> Vec<String> {
        let Ok(mut list) = self.0.lock() else {
            return Vec::new();
        };
        let DenialList { mut kept, more } = std::mem::take(&mut *list);
        if more > 0 {
            kept.push(format!("{more} more denials"));
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(grants: &[&str]) -> ConnectPolicy {
        ConnectPolicy::new(&grants.iter().map(|g| g.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn granted_ip_allows_socket_and_http_but_not_other_ports() {
        let p = policy(&["127.0.0.1:8080"]);
        assert!(p.allows_addr(&"127.0.0.1:8080".parse().unwrap()));
        assert!(!p.allows_addr(&"127.0.0.1:8081".parse().unwrap()));
        assert!(p.allows_host("127.0.0.1", 8080));
        assert!(!p.allows_host("127.0.0.1", 80));
        assert!(!p.allows_host("127.0.0.2", 8080));
    }

    #[test]
    fn granted_name_allows_its_resolved_addresses() {
        let p = policy(&["localhost:9000"]);
        assert!(p.allows_host("LOCALHOST", 9000));
        assert!(p.allows_addr(&"127.0.0.1:9000".parse().unwrap()));
        assert!(p.allows_host("127.0.0.1", 9000));
    }

    #[test]
    fn ipv6_in_brackets() {
        let p = policy(&["[::1]:80"]);
        assert!(p.allows_host("[::1]", 80));
        assert!(p.allows_addr(&"[::1]:80".parse().unwrap()));
    }

    #[test]
    fn a_flood_of_denials_keeps_a_few_short_ones_and_counts_the_rest() {
        let denials = Denials::default();
        let huge = format!("exec /{}", "x".repeat(1 << 20));
        for _ in 0..10_000 {
            denials.record(huge.clone());
        }
        let kept = denials.take();
        assert_eq!(kept.len(), DENIALS_KEPT + 1);
        assert!(
            kept[..DENIALS_KEPT]
                .iter()
                .all(|d| d.len() <= DENIAL_MAX + 3)
        );
        assert_eq!(kept[DENIALS_KEPT], "9992 more denials");
        assert!(denials.take().is_empty(), "taken");
    }

    #[test]
    fn nothing_granted_denies_everything() {
        let p = policy(&[]);
        assert!(p.is_empty());
        assert!(!p.allows_host("127.0.0.1", 80));
    }
}
