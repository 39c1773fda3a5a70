//! Recovery kit `tcp`: the app is up while it accepts TCP connections.
//!
//! Connecting proves the listener is there and the accept queue is not
//! stuck; it says nothing about the protocol, for that use a specific kit.
//!
//! Connecting goes through the SDK's `net`, which bounds name lookup and
//! connecting by one deadline (std's `connect_timeout` on wasm32-wasip2
//! reports success for refused connections).

use medic_kit::net::{self, NetError};
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
        match connect(address, timeout_ms) {
            Ok(()) => Health::Healthy,
            Err(e) => Health::Failed(format!("connect {address}: {e}")),
        }
    }
}

/// Connects to the first address `address` resolves to that accepts, and
/// closes the connection right away. The whole attempt ends after
/// `timeout_ms`.
fn connect(address: &str, timeout_ms: u64) -> Result<(), String> {
    let (host, port) = split_host_port(address)?;
    match net::connect(host, port, net::deadline_after(timeout_ms)) {
        Ok(_conn) => Ok(()),
        Err(NetError::TimedOut) => Err("timed out".into()),
        Err(NetError::Closed) => Err("connection closed".into()),
        Err(NetError::Failed(reason)) => Err(reason),
    }
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

export!(Tcp);
