//! A TCP connection through `wasi:sockets` whose every wait, name lookup
//! included, ends at one deadline: what a kit speaking a server's own
//! protocol needs, so that a hung server is `failed` at the kit's timeout
//! instead of a kit fault at the call's deadline.
//!
//! Enabled by the `net` feature. `std::net` is not enough on wasm32-wasip2:
//! `TcpStream::connect_timeout` reports success for refused connections,
//! and a plain `connect` has no bound. So this module connects and moves
//! bytes with `wasi:sockets` and `wasi:io` directly, polling each wait
//! together with a timer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use wasi::clocks::monotonic_clock;
use wasi::io::poll::{Pollable, poll};
use wasi::io::streams::{InputStream, OutputStream, StreamError};
use wasi::sockets::instance_network::instance_network;
use wasi::sockets::ip_name_lookup::resolve_addresses;
use wasi::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
    Network,
};
use wasi::sockets::tcp::TcpSocket;
use wasi::sockets::tcp_create_socket::create_tcp_socket;

use crate::bindings::medic::kit::host::{TlsStream, tls_connect};
use crate::bindings::medic::kit::types::PeerCertificate;

/// The most bytes asked for in one read.
const READ_CHUNK: u64 = 16 * 1024;

/// Why talking to the server stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// The deadline passed before the server answered.
    TimedOut,
    /// The server closed the connection.
    Closed,
    /// Anything else, worded for the admin ("connection refused").
    Failed(String),
}

/// The monotonic clock's now, in nanoseconds: [`deadline_after`]'s clock,
/// to time an exchange by.
pub fn now() -> u64 {
    monotonic_clock::now()
}

/// A monotonic-clock instant `millis` milliseconds from now.
pub fn deadline_after(millis: u64) -> u64 {
    monotonic_clock::now().saturating_add(millis.saturating_mul(1_000_000))
}

/// An open connection; reads and writes give up at its deadline.
pub struct Conn {
    /// What the server sends.
    input: InputStream,
    /// What the kit sends.
    output: OutputStream,
    /// Owns the streams: declared last so that it is dropped after them.
    _socket: TcpSocket,
    /// When every wait ends, on the monotonic clock.
    deadline: u64,
}

/// Connects to the first address of `host` that accepts, by `deadline`.
pub fn connect(host: &str, port: u16, deadline: u64) -> Result<Conn, NetError> {
    let network = instance_network();
    let mut last_error = NetError::Failed(format!("{host} resolves to no address"));
    for ip in lookup(host, deadline)? {
        match connect_one(&network, ip, port, deadline) {
            Ok(conn) => return Ok(conn),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// The addresses of `host`: itself when it is an IP address, else a name
/// lookup through `wasi:sockets/ip-name-lookup` that ends by `deadline`
/// (which std's `ToSocketAddrs` cannot).
pub fn lookup(host: &str, deadline: u64) -> Result<Vec<IpAddr>, NetError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let lookup_failed = |e| NetError::Failed(format!("lookup of {host}: {}", describe(e)));
    let stream = resolve_addresses(&instance_network(), host).map_err(lookup_failed)?;
    let mut ips = Vec::new();
    loop {
        match stream.resolve_next_address() {
            Ok(Some(ip)) => ips.push(from_wasi(ip)),
            Ok(None) => return Ok(ips),
            Err(ErrorCode::WouldBlock) => {
                // The pollable is a child of the stream: it must go first.
                let ready = stream.subscribe();
                if !wait(&ready, deadline) {
                    return Err(NetError::TimedOut);
                }
            }
            Err(e) => return Err(lookup_failed(e)),
        }
    }
}

/// One connection attempt to `ip:port`.
fn connect_one(network: &Network, ip: IpAddr, port: u16, deadline: u64) -> Result<Conn, NetError> {
    let (family, remote) = to_wasi(ip, port);
    let failed = |e| NetError::Failed(describe(e));
    let socket = create_tcp_socket(family).map_err(failed)?;
    socket.start_connect(network, remote).map_err(failed)?;
    loop {
        match socket.finish_connect() {
            Ok((input, output)) => {
                return Ok(Conn {
                    input,
                    output,
                    _socket: socket,
                    deadline,
                });
            }
            Err(ErrorCode::WouldBlock) => {
                // The pollable is a child of the socket: it must go first.
                let ready = socket.subscribe();
                if !wait(&ready, deadline) {
                    return Err(NetError::TimedOut);
                }
            }
            Err(e) => return Err(failed(e)),
        }
    }
}

impl Conn {
    /// Whether the deadline has passed.
    fn expired(&self) -> bool {
        monotonic_clock::now() >= self.deadline
    }

    /// Waits until the output stream takes at least one byte; returns how
    /// many it takes now.
    fn writable(&self) -> Result<usize, NetError> {
        loop {
            let permitted = self.output.check_write().map_err(stream_error)?;
            if permitted > 0 {
                return Ok(usize::try_from(permitted).unwrap_or(usize::MAX));
            }
            let ready = self.output.subscribe();
            if !wait(&ready, self.deadline) {
                return Err(NetError::TimedOut);
            }
        }
    }
}

impl Conn {
    /// Writes all of `bytes` and flushes them, by the deadline.
    pub fn send(&mut self, mut bytes: &[u8]) -> Result<(), NetError> {
        while !bytes.is_empty() {
            let n = self.writable()?.min(bytes.len());
            let (now, later) = bytes.split_at(n);
            self.output.write(now).map_err(stream_error)?;
            bytes = later;
        }
        self.output.flush().map_err(stream_error)?;
        // The stream takes writes again once the flush is done.
        self.writable().map(|_| ())
    }

    /// Waits, until the deadline, for what the server sends next and
    /// appends it to `buf` (at least one byte).
    pub fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), NetError> {
        loop {
            if self.expired() {
                return Err(NetError::TimedOut);
            }
            let bytes = self.input.read(READ_CHUNK).map_err(stream_error)?;
            if !bytes.is_empty() {
                buf.extend_from_slice(&bytes);
                return Ok(());
            }
            let ready = self.input.subscribe();
            if !wait(&ready, self.deadline) {
                return Err(NetError::TimedOut);
            }
        }
    }
}

/// What a protocol check does with a connection, plain ([`Conn`]) or TLS
/// ([`TlsConn`]) alike.
pub trait Connection {
    /// Writes all of `bytes`, by the deadline.
    fn send(&mut self, bytes: &[u8]) -> Result<(), NetError>;
    /// Waits, until the deadline, for what the server sends next and
    /// appends it to `buf` (at least one byte).
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), NetError>;
}

impl Connection for Conn {
    fn send(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        Conn::send(self, bytes)
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), NetError> {
        Conn::recv(self, buf)
    }
}

/// A TLS connection the host holds for the kit (`host.tls-connect`,
/// medic:kit 0.1.3), trusting the server as the app's `[tls]` says; its
/// waits end at its deadline.
pub struct TlsConn {
    stream: TlsStream,
    deadline: u64,
}

/// Connects to `address` (`host:port`) over TLS by `deadline`.
pub fn connect_tls(address: &str, deadline: u64) -> Result<TlsConn, NetError> {
    let stream = tls_connect(address, millis_until(deadline)).map_err(host_error)?;
    Ok(TlsConn { stream, deadline })
}

impl TlsConn {
    /// The server's certificate, for expiry warnings.
    pub fn certificate(&self) -> Option<PeerCertificate> {
        self.stream.certificate()
    }
}

impl Connection for TlsConn {
    fn send(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        for chunk in bytes.chunks(TLS_CHUNK) {
            self.stream.send(chunk).map_err(host_error)?;
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), NetError> {
        let millis = millis_until(self.deadline);
        if millis == 0 {
            return Err(NetError::TimedOut);
        }
        let bytes = self
            .stream
            .recv(TLS_CHUNK as u32, millis)
            .map_err(host_error)?;
        if bytes.is_empty() {
            return Err(NetError::Closed);
        }
        buf.extend_from_slice(&bytes);
        Ok(())
    }
}

/// The most bytes one TLS `send` or `recv` moves, as the host caps them.
const TLS_CHUNK: usize = 64 * 1024;

/// Milliseconds from now until the monotonic `deadline`, 0 once passed.
fn millis_until(deadline: u64) -> u32 {
    let left = deadline.saturating_sub(monotonic_clock::now()) / 1_000_000;
    u32::try_from(left).unwrap_or(u32::MAX)
}

/// A host error as a [`NetError`]: a wait that ran out is `TimedOut`.
fn host_error(reason: String) -> NetError {
    if reason.starts_with("no answer within") || reason.starts_with("no TLS connection within") {
        NetError::TimedOut
    } else {
        NetError::Failed(reason)
    }
}

/// Waits for `ready` until the monotonic `deadline`; false on timeout.
fn wait(ready: &Pollable, deadline: u64) -> bool {
    let timer = monotonic_clock::subscribe_instant(deadline);
    poll(&[ready, &timer]).contains(&0)
}

/// Turns a stream's error into a [`NetError`].
fn stream_error(e: StreamError) -> NetError {
    match e {
        StreamError::Closed => NetError::Closed,
        StreamError::LastOperationFailed(e) => NetError::Failed(e.to_debug_string()),
    }
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
fn from_wasi(ip: IpAddress) -> IpAddr {
    match ip {
        IpAddress::Ipv4((a, b, c, d)) => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => {
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h))
        }
    }
}
