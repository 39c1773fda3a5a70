//! Recovery kit `tcp`: the app is up while it accepts TCP connections.
//!
//! Connecting proves the listener is there and the accept queue is not
//! stuck; it says nothing about the protocol, for that use a specific kit.
//!
//! This kit talks to `wasi:sockets` directly instead of using
//! `std::net::TcpStream::connect_timeout`, which on wasm32-wasip2 reports
//! success for refused connections.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use medic_kit::{Capability, Context, Health, Kit, KitInfo, SettingDoc, export};
use wasi::clocks::monotonic_clock;
use wasi::io::poll::{Pollable, poll};
use wasi::sockets::instance_network::instance_network;
use wasi::sockets::ip_name_lookup::resolve_addresses;
use wasi::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress, Network,
};
use wasi::sockets::tcp_create_socket::create_tcp_socket;

/// The kit; all state lives in the app's settings.
struct Tcp;

impl Kit for Tcp {
    fn describe() -> KitInfo {
        KitInfo {
            name: "tcp".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Checks that the app accepts TCP connections on an address.".into(),
            settings: vec![
                SettingDoc::required(
                    "address",
                    "Where the app listens, as `host:port` (IPv6 as `[addr]:port`); \
                     must be in `[grants] connect`.",
                ),
                SettingDoc::with_default(
                    "timeout_ms",
                    "1000",
                    "How long name lookup and connecting may take together, in milliseconds.",
                ),
            ],
            wants: vec![Capability::Connect("address".into())],
        }
    }

    fn check(ctx: &Context) -> Health {
        let address = match ctx.require("address") {
            Ok(address) => address,
            Err(e) => return Health::Failed(e),
        };
        let timeout_ms = match ctx.parse_or("timeout_ms", 1000u64) {
            Ok(0) => return Health::Failed("setting `timeout_ms` must be above 0".into()),
            Ok(ms) => ms,
            Err(e) => return Health::Failed(e),
        };
        match connect(address, Duration::from_millis(timeout_ms)) {
            Ok(()) => Health::Healthy,
            Err(e) => Health::Failed(format!("connect {address}: {e}")),
        }
    }
}

/// Connects to the first address `address` resolves to that accepts, and
/// closes the connection right away. The whole attempt ends by `timeout`.
fn connect(address: &str, timeout: Duration) -> Result<(), String> {
    let (host, port) = split_host_port(address)?;
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    let deadline = monotonic_clock::now().saturating_add(nanos);
    let network = instance_network();
    let ips = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => resolve(&network, host, deadline)?,
    };
    let mut last_error = format!("{host} resolves to no address");
    for ip in ips {
        match connect_one(&network, ip, port, deadline) {
            Ok(()) => return Ok(()),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// Splits `host:port`, accepting `[v6]:port`.
fn split_host_port(address: &str) -> Result<(&str, u16), String> {
    let bad = || format!("setting `address` = {address:?} is not `host:port`");
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']').ok_or_else(bad)?,
        None => host,
    };
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, port))
}

/// Looks `host` up through `wasi:sockets/ip-name-lookup`.
fn resolve(network: &Network, host: &str, deadline: u64) -> Result<Vec<IpAddr>, String> {
    let stream = resolve_addresses(network, host)
        .map_err(|e| format!("lookup of {host}: {}", describe(e)))?;
    let mut ips = Vec::new();
    loop {
        match stream.resolve_next_address() {
            Ok(Some(ip)) => ips.push(from_wasi(ip)),
            Ok(None) => return Ok(ips),
            Err(ErrorCode::WouldBlock) => {
                let ready = stream.subscribe();
                if !wait(&ready, deadline) {
                    return Err(format!("lookup of {host}: timed out"));
                }
            }
            Err(e) => return Err(format!("lookup of {host}: {}", describe(e))),
        }
    }
}

/// One connection attempt; the socket is closed when it returns.
fn connect_one(network: &Network, ip: IpAddr, port: u16, deadline: u64) -> Result<(), String> {
    let (family, remote) = to_wasi(ip, port);
    let socket = create_tcp_socket(family).map_err(describe)?;
    socket.start_connect(network, remote).map_err(describe)?;
    loop {
        match socket.finish_connect() {
            Ok(_streams) => return Ok(()),
            Err(ErrorCode::WouldBlock) => {
                // The pollable is a child of the socket: it must go first.
                let ready = socket.subscribe();
                if !wait(&ready, deadline) {
                    return Err("timed out".into());
                }
            }
            Err(e) => return Err(describe(e)),
        }
    }
}

/// Waits for `ready` until the monotonic `deadline`; false on timeout.
fn wait(ready: &Pollable, deadline: u64) -> bool {
    let timer = monotonic_clock::subscribe_instant(deadline);
    let fired = poll(&[ready, &timer]);
    fired.contains(&0)
}

/// Turns `connection-refused` into "connection refused" for the admin.
fn describe(e: ErrorCode) -> String {
    e.name().replace('-', " ")
}

/// Converts a Rust address into the WASI form.
fn to_wasi(ip: IpAddr, port: u16) -> (IpAddressFamily, IpSocketAddress) {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            (
                IpAddressFamily::Ipv4,
                IpSocketAddress::Ipv4(Ipv4SocketAddress {
                    port,
                    address: (a, b, c, d),
                }),
            )
        }
        IpAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.segments();
            (
                IpAddressFamily::Ipv6,
                IpSocketAddress::Ipv6(Ipv6SocketAddress {
                    port,
                    flow_info: 0,
                    address: (a, b, c, d, e, f, g, h),
                    scope_id: 0,
                }),
            )
        }
    }
}

/// Converts a resolved WASI address into a Rust one.
fn from_wasi(ip: wasi::sockets::network::IpAddress) -> IpAddr {
    use wasi::sockets::network::IpAddress;
    match ip {
        IpAddress::Ipv4((a, b, c, d)) => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => {
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h))
        }
    }
}

export!(Tcp);
