//! `wasi:sockets/ip-name-lookup` answered from the app's grants, never
//! from DNS.
//!
//! wasmtime-wasi's own lookup is all or nothing: once allowed, a kit could
//! resolve any name, and every query for `<secret>.attacker.example`
//! carries the secret out through the host's resolver, grants or not. It
//! offers no hook to filter names, so medic replaces the interface in the
//! linker: an IP address is answered as itself, a granted name with the
//! addresses its grant resolved to when the app loaded, and any other name
//! is denied (recorded, so the call is a kit fault) without a query.

use std::net::IpAddr;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    self, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddress};
use wasmtime_wasi::p2::{DynPollable, Network, Pollable, SocketError};

use super::policy::{ConnectPolicy, Denials};
use super::store::KitStore;

/// What the lookup of one kit call sees: the app's grants, where denials
/// go, and the call's resource table.
pub struct GrantedNames<'a> {
    /// The grants, with the addresses resolved at load.
    pub connect: &'a ConnectPolicy,
    /// Where a lookup of an ungranted name is recorded.
    pub denials: &'a Denials,
    /// The call's resources (the streams of answers live there).
    pub table: &'a mut ResourceTable,
}

/// Replaces wasmtime-wasi's `wasi:sockets/ip-name-lookup` in `linker`
/// (added before, with the rest of WASI) by [`GrantedNames`].
pub fn add_to_linker(linker: &mut Linker<KitStore>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = ip_name_lookup::add_to_linker::<KitStore, GrantedLookup>(linker, |store| {
        store.granted_names()
    });
    linker.allow_shadowing(false);
    added
}

/// The `HasData` of [`add_to_linker`].
struct GrantedLookup;

impl HasData for GrantedLookup {
    type Data<'a> = GrantedNames<'a>;
}

/// The answer to one lookup, handed out one address at a time. It lives
/// in the table under the rep of the guest's `resolve-address-stream`
/// (wasmtime-wasi's own type cannot be built outside it).
struct Answer(std::vec::IntoIter<IpAddr>);

#[wasmtime_wasi::async_trait]
impl Pollable for Answer {
    /// Always ready: nothing is ever waited for.
    async fn ready(&mut self) {}
}

/// The table entry behind the guest's handle `stream`.
fn answer(stream: &Resource<ResolveAddressStream>) -> Resource<Answer> {
    Resource::new_borrow(stream.rep())
}

// ip-name-lookup uses network's types, so its bindings need these; only
// `convert_error_code` is called through this view (wasmtime-wasi serves
// `wasi:sockets/network` itself), the others mirror wasmtime-wasi's.
impl network::Host for GrantedNames<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        error.downcast()
    }

    fn network_error_code(
        &mut self,
        error: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        let error = self.table.get(&error)?;
        Ok(error.downcast_ref::<std::io::Error>().map(ErrorCode::from))
    }
}

impl network::HostNetwork for GrantedNames<'_> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        self.table.delete(network)?;
        Ok(())
    }
}

impl ip_name_lookup::Host for GrantedNames<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        // The network is the capability to look names up; it must be real.
        self.table.get(&network)?;
        let Some(ips) = self.connect.lookup(&name) else {
            self.denials.record(format!("lookup {name}"));
            return Err(ErrorCode::AccessDenied.into());
        };
        let stream = self.table.push(Answer(ips.into_iter()))?;
        Ok(Resource::new_own(stream.rep()))
    }
}

impl HostResolveAddressStream for GrantedNames<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        let answer = self.table.get_mut(&answer(&stream))?;
        Ok(answer.0.next().map(IpAddress::from))
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, answer(&stream))
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        self.table
            .delete(Resource::<Answer>::new_own(stream.rep()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ip_name_lookup::Host as _;
    use wasmtime_wasi::p2::bindings::sockets::instance_network::Host as _;

    fn grants(list: &[&str]) -> ConnectPolicy {
        ConnectPolicy::new(&list.iter().map(|g| g.to_string()).collect::<Vec<_>>())
    }

    /// Looks `name` up as a kit would; the addresses, or the error and
    /// what was denied.
    fn look_up(connect: &ConnectPolicy, name: &str) -> Result<Vec<IpAddr>, (String, Vec<String>)> {
        let mut table = ResourceTable::new();
        let denials = Denials::default();
        let mut sockets = wasmtime_wasi::sockets::WasiSocketsCtx::default();
        let network = wasmtime_wasi::sockets::WasiSocketsCtxView {
            ctx: &mut sockets,
            table: &mut table,
        }
        .instance_network()
        .unwrap();
        let mut names = GrantedNames {
            connect,
            denials: &denials,
            table: &mut table,
        };
        let stream = match names.resolve_addresses(network, name.into()) {
            Ok(stream) => stream,
            Err(e) => {
                let code = e.downcast().map(|c| c.name().to_owned());
                let code = code.unwrap_or_default();
                return Err((code, denials.take()));
            }
        };
        let mut ips = Vec::new();
        while let Some(ip) = names
            .resolve_next_address(Resource::new_borrow(stream.rep()))
            .unwrap()
        {
            ips.push(match ip {
                IpAddress::Ipv4((a, b, c, d)) => IpAddr::from([a, b, c, d]),
                IpAddress::Ipv6(_) => "::1".parse().unwrap(),
            });
        }
        names.drop(stream).unwrap();
        assert!(denials.take().is_empty());
        Ok(ips)
    }

    #[test]
    fn an_ungranted_name_is_denied_and_never_resolved() {
        let connect = grants(&["127.0.0.1:8080"]);
        assert_eq!(
            look_up(&connect, "exfil-secret.example"),
            Err((
                "access-denied".into(),
                vec!["lookup exfil-secret.example".into()]
            ))
        );
    }

    #[test]
    fn a_granted_name_gets_what_it_resolved_to_at_load() {
        let connect = grants(&["localhost:8080"]);
        let ips = look_up(&connect, "localhost").unwrap();
        assert!(ips.contains(&IpAddr::from([127, 0, 0, 1])), "{ips:?}");
    }

    #[test]
    fn an_address_is_its_own_answer() {
        let connect = grants(&[]);
        assert_eq!(
            look_up(&connect, "192.0.2.7"),
            Ok(vec![IpAddr::from([192, 0, 2, 7])])
        );
    }
}
