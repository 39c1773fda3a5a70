//! Turns an app's `[grants]` into what the sandbox enforces.
//!
//! Everything not granted is denied. The same [`ConnectPolicy`] guards WASI
//! sockets (by resolved address), WASI name lookups (granted names only)
//! and HTTP (by the request's authority), because the socket check never
//! sees the connections wasi-http and `http-get` make.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
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
    /// How HTTPS requests trust servers (the app's `[tls]`).
    pub tls: super::tls_trust::TlsTrust,
    /// What `host.http-send` may authenticate with (the app's `[secrets]`).
    pub secrets: super::secrets::AppSecrets,
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
            tls: super::tls_trust::TlsTrust::default(),
            secrets: super::secrets::AppSecrets::default(),
        }
    }

    /// Whether an HTTPS request to `uri` can be sent as the app's `[tls]`
    /// says (an `http` one always can). When it cannot (a key file changed
    /// since the config was checked) the app cannot be judged: the refusal
    /// is recorded as a kit fault, never taken for the app being down.
    pub fn tls_usable_for(&self, uri: &http::Uri, denials: &Denials) -> Result<(), String> {
        if uri.scheme() != Some(&http::uri::Scheme::HTTPS) {
            return Ok(());
        }
        self.tls.connector().map(drop).inspect_err(|why| {
            denials.record(format!("https: {why}"));
        })
    }

    /// Whether `host.exec` may run `program`.
    pub fn may_exec(&self, program: &str) -> bool {
        self.exec
            .iter()
            .any(|granted| granted == Path::new(program))
    }
}

/// The `host:port` pairs an app may connect to, each pinned to the
/// addresses it resolved to when the app loaded.
///
/// Only these names are ever resolved, and only then: a kit's name lookups
/// are answered from here (an ungranted name is denied without a DNS
/// query, so lookups are no channel out of the sandbox), and HTTP to a
/// granted name connects to these addresses, so a DNS answer that changes
/// later (rebinding) cannot move a granted name somewhere else.
#[derive(Debug, Clone, Default)]
pub struct ConnectPolicy {
    /// Each grant, host lower-cased without IPv6 brackets, with the
    /// addresses it resolved to (none when it did not resolve).
    granted: BTreeMap<(String, u16), Vec<SocketAddr>>,
    /// All those addresses: where a socket may connect.
    addrs: HashSet<SocketAddr>,
}

/// Why an HTTP request (wasi-http or `http-get`) does not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpRefusal {
    /// The URI names no host at all.
    #[error("request to {0} has no host")]
    NoHost(String),
    /// The authority carries user info (`user@host`). Never sent, whatever
    /// is granted: the host check would see only `host` while the text
    /// before `@` went out in the request (or to a resolver).
    #[error("http {0}: user info (user@host) is refused")]
    UserInfo(String),
    /// `host:port` is not granted.
    #[error("http {0} is not granted")]
    NotGranted(String),
    /// `host:port` is granted, but its name resolved to no address when
    /// the app loaded, and names are not resolved again per request.
    #[error("{0} did not resolve when the app was loaded (reload medic once it does)")]
    Unresolved(String),
}

impl HttpRefusal {
    /// What is journaled as denied: every refusal but [`Self::Unresolved`],
    /// which is granted and so not the kit's doing.
    fn denial(&self) -> Option<String> {
        match self {
            Self::NoHost(_) => Some(self.to_string()),
            Self::UserInfo(authority) => Some(format!("http {authority} (user info)")),
            Self::NotGranted(host_port) => Some(format!("http {host_port}")),
            Self::Unresolved(_) => None,
        }
    }
}

/// How a grant's name is resolved when the app loads: the system resolver.
fn resolve_now(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

impl ConnectPolicy {
    /// Builds the policy from `host:port` grants, resolving each name now
    /// with the system resolver, once. An entry that does not resolve
    /// allows no socket, and HTTP to it fails until the next load.
    pub fn new(grants: &[String]) -> Self {
        Self::resolving(grants, resolve_now)
    }

    /// [`Self::new`] with names resolved by `resolve` (tests stand in for
    /// DNS with it).
    pub fn resolving(
        grants: &[String],
        resolve: impl Fn(&str, u16) -> std::io::Result<Vec<SocketAddr>>,
    ) -> Self {
        let mut policy = Self::default();
        for grant in grants {
            let Some((host, port)) = split_host_port(grant) else {
                continue;
            };
            let addrs = resolve(host, port).unwrap_or_else(|e| {
                tracing::warn!(grant, "connect grant does not resolve: {e}");
                Vec::new()
            });
            policy.addrs.extend(&addrs);
            policy
                .granted
                .entry((host.to_ascii_lowercase(), port))
                .or_default()
                .extend(addrs);
        }
        policy
    }

    /// Whether a socket may connect to `addr`.
    pub fn allows_addr(&self, addr: &SocketAddr) -> bool {
        self.addrs.contains(addr)
    }

    /// What a kit's name lookup of `name` answers: an IP address itself
    /// (nothing to resolve), a granted name the addresses its grants
    /// resolved to at load, any other name `None` (denied; nothing is
    /// asked of DNS).
    pub fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Some(vec![ip]);
        }
        let name = name.to_ascii_lowercase();
        let mut found = None;
        for ((host, _), addrs) in &self.granted {
            if *host == name {
                let ips: &mut Vec<IpAddr> = found.get_or_insert_with(Vec::new);
                for ip in addrs.iter().map(SocketAddr::ip) {
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
            }
        }
        found
    }

    /// Where an HTTP(S) request to `uri` connects: the addresses its
    /// granted `host:port` resolved to at load (default port by scheme),
    /// or the address itself when the host is an IP address a grant
    /// resolved to. A refusal that is a denial is recorded in `denials`.
    pub fn http_destination(
        &self,
        uri: &http::Uri,
        denials: &Denials,
    ) -> Result<Vec<SocketAddr>, HttpRefusal> {
        let destination = self.destination(uri);
        if let Some(denied) = destination.as_ref().err().and_then(HttpRefusal::denial) {
            denials.record(denied);
        }
        destination
    }

    fn destination(&self, uri: &http::Uri) -> Result<Vec<SocketAddr>, HttpRefusal> {
        let (Some(authority), Some(host)) = (uri.authority(), uri.host()) else {
            return Err(HttpRefusal::NoHost(uri.to_string()));
        };
        if authority.as_str().contains('@') {
            return Err(HttpRefusal::UserInfo(authority.to_string()));
        }
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        });
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Some(addrs) = self.granted.get(&(host.to_ascii_lowercase(), port)) {
            if addrs.is_empty() {
                return Err(HttpRefusal::Unresolved(format!("{host}:{port}")));
            }
            return Ok(addrs.clone());
        }
        match host.parse() {
            Ok(ip) if self.addrs.contains(&SocketAddr::new(ip, port)) => {
                Ok(vec![SocketAddr::new(ip, port)])
            }
            _ => Err(HttpRefusal::NotGranted(format!("{host}:{port}"))),
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

    /// A policy whose names resolve through a fake DNS: `app.test` to
    /// 10.1.2.3 and 10.1.2.4, `down.test` to nothing.
    fn pinned(grants: &[&str]) -> ConnectPolicy {
        let grants: Vec<String> = grants.iter().map(|g| g.to_string()).collect();
        ConnectPolicy::resolving(&grants, |host, port| match host {
            "app.test" => Ok(vec![
                SocketAddr::from(([10, 1, 2, 3], port)),
                SocketAddr::from(([10, 1, 2, 4], port)),
            ]),
            _ => Err(std::io::Error::other("NXDOMAIN")),
        })
    }

    fn uri(text: &str) -> http::Uri {
        text.parse().unwrap()
    }

    /// Where `url` may go under `p`, and what was denied on the way.
    fn destination(
        p: &ConnectPolicy,
        url: &str,
    ) -> (Result<Vec<SocketAddr>, HttpRefusal>, Vec<String>) {
        let denials = Denials::default();
        let result = p.http_destination(&uri(url), &denials);
        (result, denials.take())
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn granted_ip_allows_socket_and_http_but_not_other_ports() {
        let p = policy(&["127.0.0.1:8080"]);
        assert!(p.allows_addr(&addr("127.0.0.1:8080")));
        assert!(!p.allows_addr(&addr("127.0.0.1:8081")));
        assert_eq!(
            destination(&p, "http://127.0.0.1:8080/").0,
            Ok(vec![addr("127.0.0.1:8080")])
        );
        assert_eq!(
            destination(&p, "http://127.0.0.1/"),
            (
                Err(HttpRefusal::NotGranted("127.0.0.1:80".into())),
                vec!["http 127.0.0.1:80".to_string()]
            )
        );
        assert!(destination(&p, "http://127.0.0.2:8080/").0.is_err());
    }

    #[test]
    fn granted_name_allows_its_resolved_addresses() {
        let p = policy(&["localhost:9000"]);
        assert!(p.allows_addr(&addr("127.0.0.1:9000")));
        let to = destination(&p, "http://LOCALHOST:9000/x").0.unwrap();
        assert!(to.contains(&addr("127.0.0.1:9000")), "{to:?}");
        assert_eq!(
            destination(&p, "http://127.0.0.1:9000/").0,
            Ok(vec![addr("127.0.0.1:9000")])
        );
    }

    #[test]
    fn http_to_a_granted_name_goes_to_the_addresses_resolved_at_load() {
        // The system resolver cannot resolve `app.test`: only what the
        // grant resolved to when the policy was built can answer.
        let p = pinned(&["app.test:8080"]);
        assert_eq!(
            destination(&p, "https://app.test:8080/health"),
            (
                Ok(vec![addr("10.1.2.3:8080"), addr("10.1.2.4:8080")]),
                vec![]
            )
        );
        assert!(p.allows_addr(&addr("10.1.2.4:8080")));
    }

    #[test]
    fn a_granted_name_that_did_not_resolve_is_refused_but_not_denied() {
        let p = pinned(&["down.test:80"]);
        assert_eq!(
            destination(&p, "http://down.test/"),
            (Err(HttpRefusal::Unresolved("down.test:80".into())), vec![])
        );
        assert_eq!(p.lookup("down.test"), Some(vec![]));
    }

    #[test]
    fn user_info_is_a_denial_naming_it_even_for_a_granted_host() {
        let p = policy(&["127.0.0.1:8080"]);
        assert_eq!(
            destination(&p, "http://exfil:secret@127.0.0.1:8080/"),
            (
                Err(HttpRefusal::UserInfo("exfil:secret@127.0.0.1:8080".into())),
                vec!["http exfil:secret@127.0.0.1:8080 (user info)".to_string()]
            )
        );
    }

    #[test]
    fn lookups_answer_granted_names_only_from_what_load_resolved() {
        let p = pinned(&["app.test:8080", "APP.test:9090", "10.9.9.9:22"]);
        let ips = |list: &[&str]| {
            list.iter()
                .map(|ip| ip.parse::<IpAddr>().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            p.lookup("App.Test"),
            Some(ips(&["10.1.2.3", "10.1.2.4"])),
            "each address once, whatever the port or case"
        );
        assert_eq!(p.lookup("exfil-secret.example"), None);
        assert_eq!(p.lookup("app.test.attacker.example"), None);
        assert_eq!(p.lookup("192.0.2.1"), Some(ips(&["192.0.2.1"])), "no DNS");
        assert_eq!(p.lookup("[::1]"), Some(ips(&["::1"])));
    }

    #[test]
    fn ipv6_in_brackets() {
        let p = policy(&["[::1]:80"]);
        assert_eq!(
            destination(&p, "http://[::1]/").0,
            Ok(vec![addr("[::1]:80")])
        );
        assert!(p.allows_addr(&addr("[::1]:80")));
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
        assert!(!p.allows_addr(&addr("127.0.0.1:80")));
        assert!(destination(&p, "http://127.0.0.1/").0.is_err());
        assert_eq!(p.lookup("localhost"), None);
    }
}
