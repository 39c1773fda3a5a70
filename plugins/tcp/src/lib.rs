//! Recovery kit `tcp`: the app is up while it accepts TCP connections.
//!
//! Connecting proves the listener is there and the accept queue is not
//! stuck; it says nothing about the protocol, for that use a specific kit.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use medic_kit::{Capability, Context, Health, Kit, KitInfo, SettingDoc, export};

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
                    "Where the app listens, as `host:port`; must be in `[grants] connect`.",
                ),
                SettingDoc::with_default(
                    "timeout_ms",
                    "1000",
                    "How long to wait for the connection, in milliseconds.",
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
/// closes the connection right away.
fn connect(address: &str, timeout: Duration) -> io::Result<()> {
    let mut last_error = None;
    for addr in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_stream) => return Ok(()),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address")
    }))
}

export!(Tcp);
