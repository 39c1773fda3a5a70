//! Recovery kit `tcp`: the app is up while it accepts TCP connections.
//!
//! Connecting proves the listener is there and the accept queue is not
//! stuck; it says nothing about the protocol, for that use a specific kit.
//!
//! Connecting goes through the SDK's `net`, which bounds name lookup and
//! connecting by one deadline (std's `connect_timeout` on wasm32-wasip2
//! reports success for refused connections): `timeout_ms`, and never past
//! the call's own deadline less its margin.

use medic_kit::net::{self, NetError};
use medic_kit::{
    CannotJudge, Capability, CheckResult, Context, Health, Kit, KitInfo, SettingDoc, export,
};

/// How long connecting may take when neither `timeout_ms` nor the call's
/// deadline says (a host before medic:kit 0.1.2).
const TIMEOUT_MS: u32 = 1000;

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
                SettingDoc::optional(
                    "timeout_ms",
                    "How long name lookup and connecting may take together, in \
                     milliseconds. They always end shortly before the app's `timeout`; \
                     set this only to give up sooner. Default: all of that time \
                     (1000 on hosts before medic:kit 0.1.2).",
                ),
            ],
            wants: vec![Capability::Connect("address".into())],
        }
    }

    fn check(ctx: &Context) -> Health {
        medic_kit::verdict(probe(ctx))
    }
}

/// Reads the settings and connects: `unknown` when the settings do not
/// say where to, `failed` when nothing accepts there.
fn probe(ctx: &Context) -> CheckResult {
    let address = ctx.require("address")?;
    let (host, port) = split_host_port(address)?;
    let timeout_ms = ctx.timeout_ms_setting("timeout_ms", TIMEOUT_MS)?;
    net::connect(host, port, net::deadline_after(timeout_ms.into()))
        .map_err(|e| refused(address, e))?;
    Ok(Health::Healthy)
}

/// The answer when connecting to `address` failed: whatever the reason
/// (refused, timed out, unreachable, no such name), a restart of the app
/// may cure it, so it is `failed`.
fn refused(address: &str, e: NetError) -> Health {
    let reason = match e {
        NetError::TimedOut => "timed out".into(),
        NetError::Closed => "connection closed".into(),
        NetError::Failed(reason) => reason,
    };
    Health::Failed(format!("connect {address}: {reason}"))
}

/// Splits `host:port`, accepting `[v6]:port`.
fn split_host_port(address: &str) -> Result<(&str, u16), CannotJudge> {
    let bad = || {
        CannotJudge::new(format!(
            "setting `address` = {address:?} is not `host:port`"
        ))
    };
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_like_grants() {
        assert_eq!(
            split_host_port("127.0.0.1:514").unwrap(),
            ("127.0.0.1", 514)
        );
        assert_eq!(split_host_port("[::1]:80").unwrap(), ("::1", 80));
        assert_eq!(
            split_host_port("relay.lan:6514").unwrap(),
            ("relay.lan", 6514)
        );
    }

    #[test]
    fn settings_that_say_nowhere_are_unknown() {
        medic_kit::testing::assert_unknown_for(
            &[
                &[],
                &[("address", "127.0.0.1")],
                &[("address", ":514")],
                &[("address", "[::1:514")],
                &[("address", "h:99999")],
                &[("address", "h:1"), ("timeout_ms", "0")],
                &[("address", "h:1"), ("timeout_ms", "1s")],
            ],
            probe,
        );
    }

    #[test]
    fn nothing_accepting_is_failed() {
        assert_eq!(
            refused(
                "127.0.0.1:514",
                NetError::Failed("connection refused".into())
            ),
            Health::Failed("connect 127.0.0.1:514: connection refused".into())
        );
        assert_eq!(
            refused("127.0.0.1:514", NetError::TimedOut),
            Health::Failed("connect 127.0.0.1:514: timed out".into())
        );
    }
}
