//! Recovery kit `redis`: the app is up while redis answers `PING` with
//! `PONG`.
//!
//! Each check opens one connection, sends `AUTH` when a password file is
//! set, then `PING`, then `INFO replication` to spot a replica cut off from
//! its master. A server that is loading its dataset, or a replica whose
//! master link is down, is `degraded`: it is up, and a restart would not
//! help. A refused login, an ACL that denies the kit, a reply that is not
//! redis's, a bad setting or an unreadable password file is `unknown`: a
//! restart would not help either. Every wait (name lookup, connect, each
//! reply) ends by one deadline: `timeout_ms` after the check starts, and
//! never past the call's own deadline less its margin.

mod client;
mod verdict;

use std::time::Duration;

use medic_kit::{
    CannotJudge, Capability, CheckResult, Context, Health, Kit, KitInfo, SettingDoc, export,
};

use client::Connection;

/// The kit; all state lives in the app's settings.
struct Redis;

impl Kit for Redis {
    fn describe() -> KitInfo {
        KitInfo {
            name: "redis".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Checks that a redis server answers PING, and that a replica is linked \
                      to its master."
                .into(),
            settings: setting_docs(),
            wants: vec![
                Capability::Connect("host:port".into()),
                Capability::Read("the directory of password_file".into()),
            ],
        }
    }

    fn check(ctx: &Context) -> Health {
        medic_kit::verdict(probe(ctx))
    }
}

/// The settings `describe` documents.
fn setting_docs() -> Vec<SettingDoc> {
    vec![
        SettingDoc::with_default(
            "host",
            "127.0.0.1",
            "The server's IP address or name; `host:port` must be in `[grants] connect`.",
        ),
        SettingDoc::with_default("port", "6379", "The server's TCP port."),
        SettingDoc::optional(
            "password_file",
            "A file holding the password for `AUTH` (trailing line breaks are ignored); \
             its directory must be in `[grants] read`. Without it no `AUTH` is sent.",
        ),
        SettingDoc::optional(
            "username",
            "The ACL user for `AUTH username password` (needs `password_file`); \
             without it `AUTH password` logs in as `default`.",
        ),
        SettingDoc::optional(
            "timeout_ms",
            "Longest wait for the whole check (lookup, connect, every reply), in \
             milliseconds. The check always ends shortly before the app's `timeout`, \
             so a hung server is `failed`, not a kit fault; set this only to give up \
             sooner. Default: all of that time (2000 on hosts before medic:kit 0.1.2).",
        ),
        SettingDoc::with_default(
            "check_replication",
            "true",
            "Whether to run `INFO replication` and report a replica whose link to its \
             master is down as `degraded`.",
        ),
    ]
}

/// The app's settings, parsed and checked.
struct Settings {
    /// Where the server listens.
    host: String,
    /// Its port.
    port: u16,
    /// The ACL user, if any.
    username: Option<String>,
    /// Where the password is, if any.
    password_file: Option<String>,
    /// The bound on the whole check.
    timeout: Duration,
    /// Whether to look at `INFO replication`.
    check_replication: bool,
}

/// How long the check may take when neither `timeout_ms` nor the call's
/// deadline says (a host before medic:kit 0.1.2).
const TIMEOUT_MS: u32 = 2000;

impl Settings {
    /// Reads the settings; a bad one cannot be judged.
    fn read(ctx: &Context) -> Result<Self, CannotJudge> {
        let port = match ctx.parse_or("port", 6379u16)? {
            0 => return Err(CannotJudge::new("setting `port` must be above 0")),
            port => port,
        };
        let timeout_ms = ctx.timeout_ms_setting("timeout_ms", TIMEOUT_MS)?;
        let username = ctx.setting("username").map(str::to_string);
        let password_file = ctx.setting("password_file").map(str::to_string);
        if username.is_some() && password_file.is_none() {
            return Err(CannotJudge::new("setting `username` needs `password_file`"));
        }
        Ok(Self {
            host: host(ctx)?,
            port,
            username,
            password_file,
            timeout: Duration::from_millis(timeout_ms.into()),
            check_replication: ctx.parse_or("check_replication", true)?,
        })
    }

    /// The password from `password_file`, if one is set.
    fn password(&self) -> Result<Option<String>, CannotJudge> {
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        medic_kit::read_secret("password_file", path).map(Some)
    }
}

/// The `host` setting, also accepting an IPv6 address in brackets as
/// `[grants] connect` writes it.
fn host(ctx: &Context) -> Result<String, CannotJudge> {
    let host = ctx.setting("host").unwrap_or("127.0.0.1").trim();
    let host = host
        .strip_prefix('[')
        .and_then(|v6| v6.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(CannotJudge::new("setting `host` is empty"));
    }
    Ok(host.to_string())
}

/// Runs the check, stopping at the first reply that decides it.
fn probe(ctx: &Context) -> CheckResult {
    let settings = Settings::read(ctx)?;
    let password = settings.password()?;
    let mut conn = Connection::open(&settings.host, settings.port, settings.timeout)
        .map_err(Health::Failed)?;
    if let Some(password) = &password {
        let args = auth_args(settings.username.as_deref(), password);
        let reply = conn.call(&args).map_err(|e| verdict::fault("AUTH", e))?;
        verdict::auth(&reply)?;
    }
    let reply = conn
        .call(&[b"PING"])
        .map_err(|e| verdict::fault("PING", e))?;
    let health = verdict::ping(&reply, password.is_some());
    if health != Health::Healthy || !settings.check_replication {
        return Ok(health);
    }
    let reply = conn
        .call(&[b"INFO", b"replication"])
        .map_err(|e| verdict::fault("INFO replication", e))?;
    Ok(verdict::replication(&reply))
}

/// `AUTH [username] password`.
fn auth_args<'a>(username: Option<&'a str>, password: &'a str) -> Vec<&'a [u8]> {
    let mut args: Vec<&[u8]> = vec![b"AUTH"];
    args.extend(username.map(str::as_bytes));
    args.push(password.as_bytes());
    args
}

export!(Redis);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A context for the app `cache` with these settings.
    fn ctx(pairs: &[(&str, &str)]) -> Context {
        Context::with_settings("cache", pairs)
    }

    #[test]
    fn settings_have_defaults() {
        let s = Settings::read(&ctx(&[])).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 6379));
        assert!(s.check_replication);
        assert_eq!(s.password().unwrap(), None);
        let v6 = Settings::read(&ctx(&[("host", "[::1]")])).unwrap();
        assert_eq!(v6.host, "::1");
    }

    #[test]
    fn the_timeout_ends_before_the_deadline() {
        // Told the deadline (5 s): all of it less the 500 ms margin.
        let whole = Settings::read(&ctx(&[])).unwrap().timeout;
        assert!(whole <= Duration::from_millis(4500), "{whole:?}");
        assert!(whole > Duration::from_millis(4000), "{whole:?}");
        let short = Settings::read(&ctx(&[("timeout_ms", "300")])).unwrap();
        assert_eq!(short.timeout, Duration::from_millis(300));
        // Not told (a 0.1.1 host): the kit's own default.
        let mut old = ctx(&[]);
        old.deadline_ms = medic_kit::DEADLINE_NOT_TOLD;
        let s = Settings::read(&old).unwrap();
        assert_eq!(s.timeout, Duration::from_millis(2000));
    }

    #[test]
    fn bad_settings_cannot_be_judged() {
        let err = |pairs| Settings::read(&ctx(pairs)).err().unwrap().to_string();
        assert_eq!(err(&[("port", "0")]), "setting `port` must be above 0");
        assert!(err(&[("port", "70000")]).starts_with("setting `port` = \"70000\""));
        assert_eq!(
            err(&[("timeout_ms", "0")]),
            "setting `timeout_ms` must be above 0"
        );
        assert!(err(&[("check_replication", "yes")]).starts_with("setting `check_replication`"));
        assert_eq!(err(&[("host", " ")]), "setting `host` is empty");
        assert_eq!(
            err(&[("username", "bob")]),
            "setting `username` needs `password_file`"
        );
        let answer = probe(&ctx(&[("port", "0")]));
        assert!(matches!(answer, Err(Health::Unknown(_))), "{answer:?}");
    }

    #[test]
    fn an_unreadable_or_empty_password_file_cannot_be_judged() {
        let dir = std::env::temp_dir().join(format!("kit-redis-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "\n").unwrap();
        let c = ctx(&[("password_file", file.to_str().unwrap())]);
        let s = Settings::read(&c).unwrap();
        assert!(s.password().unwrap_err().reason().ends_with("is empty"));
        std::fs::write(&file, "hunter2\n").unwrap();
        assert_eq!(s.password().unwrap().as_deref(), Some("hunter2"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(s.password().unwrap_err().reason().contains("[grants] read"));
        let answer = probe(&c);
        assert!(matches!(answer, Err(Health::Unknown(_))), "{answer:?}");
    }

    #[test]
    fn auth_sends_the_user_only_when_set() {
        assert_eq!(auth_args(None, "pw"), vec![&b"AUTH"[..], b"pw"]);
        assert_eq!(
            auth_args(Some("bob"), "pw"),
            vec![&b"AUTH"[..], b"bob", b"pw"]
        );
    }

    #[test]
    fn describe_documents_every_setting_read() {
        let keys: Vec<String> = setting_docs().into_iter().map(|d| d.key).collect();
        for key in [
            "host",
            "port",
            "password_file",
            "username",
            "timeout_ms",
            "check_replication",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} undocumented");
        }
    }
}
