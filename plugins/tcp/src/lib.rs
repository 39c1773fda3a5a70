//! Recovery kit `tcp`: the app is up while it accepts TCP connections and,
//! when asked, answers what it is sent as `check_tcp` judges it.
//!
//! Connecting proves the listener is there and the accept queue is not
//! stuck. With `send` and `expect` (or `expect_regex`) the check also
//! proves the server talks: a banner, a `PING` answered with `PONG`. A
//! slow answer is `degraded` above `warn_ms` and `failed` above `fail_ms`.
//!
//! Connecting goes through the SDK's `net`, which bounds name lookup and
//! connecting by one deadline (std's `connect_timeout` on wasm32-wasip2
//! reports success for refused connections): `timeout_ms`, and never past
//! the call's own deadline less its margin.

use medic_kit::expect::{
    SpeedLimits, annotate_certificate, certificate_concern, is_trust_failure, regex_setting,
};
use medic_kit::net::{self, Connection, NetError};
use medic_kit::regex_lite::Regex;
use medic_kit::{
    CannotJudge, Capability, CheckResult, Context, Health, Kit, KitInfo, SettingDoc, export,
};

/// How long connecting may take when neither `timeout_ms` nor the call's
/// deadline says (a host before medic:kit 0.1.2).
const TIMEOUT_MS: u32 = 1000;

/// The most bytes of the answer read while looking for what is expected.
const ANSWER_MAX: usize = 64 * 1024;

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
                    "How long name lookup, connecting and the answer may take together, in \
                     milliseconds. They always end shortly before the app's `timeout`; \
                     set this only to give up sooner. Default: all of that time \
                     (1000 on hosts before medic:kit 0.1.2).",
                ),
                SettingDoc::optional(
                    "send",
                    "Text to send once connected; `\\r`, `\\n`, `\\t` and `\\\\` stand for \
                     themselves, as `check_tcp -E` reads them.",
                ),
                SettingDoc::optional(
                    "expect",
                    "Text the answer must contain (read until it comes, the server closes \
                     or time runs out; at most 64 KiB).",
                ),
                SettingDoc::optional(
                    "expect_regex",
                    "A regular expression the answer must match, read as `expect` is.",
                ),
                SettingDoc::with_default(
                    "tls",
                    "false",
                    "Speak TLS (as `check_tcp --ssl`), trusting the server as the app's \
                     `[tls]` says; `send` and `expect` then go through it.",
                ),
                SettingDoc::optional(
                    "cert_days_warn",
                    "With `tls`: `degraded` when the server's certificate expires within \
                     this many days (`check_tcp -D`).",
                ),
                SettingDoc::optional(
                    "warn_ms",
                    "Slower than this many milliseconds (connecting and the answer) is `degraded`.",
                ),
                SettingDoc::optional("fail_ms", "Slower than this many milliseconds is `failed`."),
            ],
            wants: vec![Capability::Connect("address".into())],
        }
    }

    fn check(ctx: &Context) -> Health {
        medic_kit::verdict(probe(ctx))
    }
}

/// What a check sends and asks of the answer.
struct Talk<'a> {
    /// Sent once connected, escapes expanded.
    send: Option<String>,
    /// Text the answer must contain.
    expect: Option<&'a str>,
    /// A pattern the answer must match.
    expect_regex: Option<Regex>,
    /// `warn_ms` and `fail_ms`.
    speed: SpeedLimits,
    /// Whether to speak TLS, trusting the server as the app's `[tls]` says.
    tls: bool,
    /// A certificate expiring within this many days is `degraded`.
    cert_days_warn: Option<u32>,
}

impl<'a> Talk<'a> {
    /// Reads the settings; a bad one cannot be judged.
    fn read(ctx: &'a Context) -> Result<Self, CannotJudge> {
        let tls = ctx.parse_or("tls", false)?;
        let cert_days_warn = ctx.parse::<u32>("cert_days_warn")?;
        if cert_days_warn.is_some() && !tls {
            return Err(CannotJudge::new(
                "setting `cert_days_warn` needs `tls = true`",
            ));
        }
        Ok(Self {
            send: ctx.setting("send").map(unescape),
            expect: ctx.setting("expect"),
            expect_regex: regex_setting(ctx, "expect_regex")?,
            speed: SpeedLimits::read(ctx)?,
            tls,
            cert_days_warn,
        })
    }

    /// Whether anything is read back at all.
    fn expects(&self) -> bool {
        self.expect.is_some() || self.expect_regex.is_some()
    }

    /// Whether `answer` holds what is expected.
    fn satisfied_by(&self, answer: &str) -> bool {
        self.expect.is_none_or(|text| answer.contains(text))
            && self
                .expect_regex
                .as_ref()
                .is_none_or(|pattern| pattern.is_match(answer))
    }
}

/// Reads the settings, connects and talks: `unknown` when the settings do
/// not say where to or what, `failed` when nothing accepts there or the
/// answer is wrong or too slow, `degraded` when it is slow.
fn probe(ctx: &Context) -> CheckResult {
    let address = ctx.require("address")?;
    let (host, port) = split_host_port(address)?;
    let timeout_ms = ctx.timeout_ms_setting("timeout_ms", TIMEOUT_MS)?;
    let talk = Talk::read(ctx)?;
    let mut concern = None;
    let started = net::now();
    let deadline = net::deadline_after(timeout_ms.into());
    let mut plain;
    let mut tls;
    let conn: &mut dyn Connection = if talk.tls {
        tls = net::connect_tls(address, deadline).map_err(|e| refused(address, e))?;
        if let Some(certificate) = tls.certificate() {
            annotate_certificate(&certificate);
            if let Some(warn_days) = talk.cert_days_warn {
                concern = certificate_concern(&certificate, warn_days)?;
            }
        }
        &mut tls
    } else {
        plain = net::connect(host, port, deadline).map_err(|e| refused(address, e))?;
        &mut plain
    };
    if let Some(text) = &talk.send {
        conn.send(text.as_bytes())
            .map_err(|e| Health::Failed(format!("send to {address}: {}", said(e))))?;
    }
    if talk.expects() {
        read_expected(conn, address, &talk)?;
    }
    let elapsed_ms =
        u32::try_from(net::now().saturating_sub(started) / 1_000_000).unwrap_or(u32::MAX);
    let slow = talk.speed.judge(elapsed_ms)?;
    let concerns: Vec<String> = slow.into_iter().chain(concern).collect();
    Ok(if concerns.is_empty() {
        Health::Healthy
    } else {
        Health::Degraded(concerns.join("; "))
    })
}

/// Reads until the answer holds what `talk` expects; `failed` when the
/// server closes, stalls or says 64 KiB without it.
fn read_expected(conn: &mut dyn Connection, address: &str, talk: &Talk<'_>) -> Result<(), Health> {
    let mut answer = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&answer);
        if talk.satisfied_by(&text) {
            return Ok(());
        }
        if answer.len() >= ANSWER_MAX {
            return Err(Health::Failed(format!(
                "{address} answered {} bytes without what is expected",
                answer.len()
            )));
        }
        if let Err(e) = conn.recv(&mut answer) {
            let text = String::from_utf8_lossy(&answer);
            return Err(Health::Failed(format!(
                "{address}: {} before the expected answer; it said {:?}",
                said(e),
                excerpt(&text)
            )));
        }
    }
}

/// The first line of what a server said, cut for a reason.
fn excerpt(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(120)
        .collect()
}

/// A [`NetError`] in words.
fn said(e: NetError) -> String {
    match e {
        NetError::TimedOut => "no answer in time".into(),
        NetError::Closed => "the server closed the connection".into(),
        NetError::Failed(reason) => reason,
    }
}

/// `\r`, `\n`, `\t` and `\\` as the characters they stand for.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => {
                if other != '\\' {
                    out.push('\\');
                }
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// The answer when connecting to `address` failed: whatever the reason
/// (refused, timed out, unreachable, no such name, an expired certificate),
/// a restart of the app may cure it, so it is `failed`; but a TLS server
/// medic does not trust (an unknown issuer, a hostname mismatch) is no
/// restart's to fix: `unknown`.
fn refused(address: &str, e: NetError) -> Health {
    let reason = match e {
        NetError::TimedOut => "timed out".into(),
        other => said(other),
    };
    let said = format!("connect {address}: {reason}");
    if is_trust_failure(&said) {
        Health::Unknown(format!("{said}; a restart cannot cure this: see [tls]"))
    } else {
        Health::Failed(said)
    }
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
                &[("address", "h:1"), ("expect_regex", "(")],
                &[("address", "h:1"), ("warn_ms", "0")],
                &[("address", "h:1"), ("cert_days_warn", "5")],
                &[("address", "h:1"), ("tls", "yes")],
                &[("address", "h:1"), ("warn_ms", "9"), ("fail_ms", "5")],
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

    #[test]
    fn escapes_in_send_are_the_characters_they_name() {
        assert_eq!(unescape("PING\\r\\n"), "PING\r\n");
        assert_eq!(unescape("a\\\\b\\tc\\x"), "a\\b\tc\\x");
        assert_eq!(unescape("end\\"), "end\\");
    }

    #[test]
    fn what_is_expected_and_how_fast() {
        let ctx = Context::with_settings(
            "relay",
            &[
                ("address", "h:1"),
                ("expect", "+PONG"),
                ("expect_regex", "^\\+P"),
                ("warn_ms", "100"),
                ("fail_ms", "500"),
            ],
        );
        let talk = Talk::read(&ctx).unwrap();
        assert!(talk.expects());
        assert!(talk.satisfied_by("+PONG\r\n"));
        assert!(!talk.satisfied_by("-ERR\r\n"));
        assert_eq!(talk.speed.verdict(50), Ok(Health::Healthy));
        assert!(matches!(talk.speed.verdict(200), Ok(Health::Degraded(_))));
        assert!(matches!(talk.speed.verdict(600), Err(Health::Failed(_))));
    }
}
