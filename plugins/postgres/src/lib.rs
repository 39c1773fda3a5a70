//! Recovery kit `postgres`: the app is up while PostgreSQL lets the kit log
//! in and answers a query.
//!
//! The kit speaks the PostgreSQL wire protocol itself (messages and
//! SCRAM-SHA-256/md5 from the `postgres-protocol` crate) over a plain TCP
//! connection, logs in with trust or a password from a file, runs one query
//! with the simple query protocol and, if the admin asks, reports the
//! server as `degraded` while it is in recovery or read-only. One deadline,
//! `timeout_ms`, bounds the whole conversation, so a hung server is
//! `failed`, not a kit fault.

mod session;

use medic_kit::{Capability, Context, Health, Kit, KitInfo, SettingDoc, export};

use crate::session::{Error, Login, ServerState, Wire};
use medic_kit::net::{self, NetError};

/// The kit; all state lives in the app's settings.
struct Postgres;

impl Kit for Postgres {
    fn describe() -> KitInfo {
        KitInfo {
            name: "postgres".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Checks that PostgreSQL accepts a login and answers a query.".into(),
            settings: setting_docs(),
            wants: vec![
                Capability::Connect("host:port of host and port".into()),
                Capability::Read("directory of password_file".into()),
            ],
        }
    }

    fn check(ctx: &Context) -> Health {
        match Settings::read(ctx).and_then(|settings| probe(&settings)) {
            Ok(health) => health,
            Err(reason) => Health::Failed(reason),
        }
    }
}

/// Documents every setting, for `medic kit inspect`.
fn setting_docs() -> Vec<SettingDoc> {
    vec![
        SettingDoc::with_default(
            "host",
            "127.0.0.1",
            "The server's address or name; `host:port` must be in `[grants] connect`.",
        ),
        SettingDoc::with_default("port", "5432", "The server's TCP port."),
        SettingDoc::required("user", "The role to log in as."),
        SettingDoc::optional(
            "database",
            "The database to connect to; the default is the value of `user`.",
        ),
        SettingDoc::optional(
            "password_file",
            "A file holding the role's password (one trailing newline is ignored), for \
             scram-sha-256, md5 or password login; its directory must be in `[grants] read`. \
             Without it only trust login works.",
        ),
        SettingDoc::with_default(
            "query",
            "SELECT 1",
            "The SQL run after login (simple query protocol); an error fails the check.",
        ),
        SettingDoc::with_default(
            "degraded_in_recovery",
            "false",
            "Report `degraded` while the server is in recovery (a standby).",
        ),
        SettingDoc::with_default(
            "degraded_read_only",
            "false",
            "Report `degraded` while new transactions are read-only \
             (`transaction_read_only`, e.g. a standby or `default_transaction_read_only`).",
        ),
        SettingDoc::with_default(
            "timeout_ms",
            "2000",
            "Longest wait for the whole check (connect, login, queries), in milliseconds; \
             keep it below the app's `timeout` so a hung server is `failed`, not a kit fault.",
        ),
    ]
}

/// The app's settings, parsed and checked.
struct Settings<'a> {
    /// The server's address or name, without brackets.
    host: &'a str,
    /// The server's port.
    port: u16,
    /// The role to log in as.
    user: &'a str,
    /// The database to connect to.
    database: &'a str,
    /// Where the password is, if the server may ask for one.
    password_file: Option<&'a str>,
    /// The SQL the check runs.
    query: &'a str,
    /// Whether recovery makes the server `degraded`.
    degraded_in_recovery: bool,
    /// Whether read-only transactions make the server `degraded`.
    degraded_read_only: bool,
    /// The bound of the whole check.
    timeout_ms: u64,
}

impl<'a> Settings<'a> {
    /// Reads the settings; the error is worded for the admin.
    fn read(ctx: &'a Context) -> Result<Self, String> {
        let user = ctx.require("user")?;
        let host = ctx.setting("host").unwrap_or("127.0.0.1").trim();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err("setting `host` is empty".into());
        }
        let timeout_ms = match ctx.parse_or("timeout_ms", 2000u64)? {
            0 => return Err("setting `timeout_ms` must be above 0".into()),
            ms => ms,
        };
        Ok(Self {
            host,
            port: ctx.parse_or("port", 5432u16)?,
            user,
            database: ctx.setting("database").unwrap_or(user),
            password_file: ctx.setting("password_file"),
            query: ctx.setting("query").unwrap_or("SELECT 1"),
            degraded_in_recovery: ctx.parse_or("degraded_in_recovery", false)?,
            degraded_read_only: ctx.parse_or("degraded_read_only", false)?,
            timeout_ms,
        })
    }

    /// `host:port` as an admin writes it in `[grants] connect`.
    fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether the check must read the server's state at all.
    fn wants_state(&self) -> bool {
        self.degraded_in_recovery || self.degraded_read_only
    }
}

/// Where in the check a failure happened.
#[derive(Clone, Copy)]
enum Step {
    /// Opening the TCP connection.
    Connect,
    /// Start-up and authentication.
    Login,
    /// The admin's query.
    Query,
    /// The query that reads recovery and read-only state.
    State,
}

impl Step {
    /// The step as the end of a sentence: "while logging in".
    fn during(self) -> &'static str {
        match self {
            Self::Connect => "while connecting",
            Self::Login => "while logging in",
            Self::Query => "while running the query",
            Self::State => "while reading recovery and read-only state",
        }
    }

    /// The step as the start of a reason: "login to 127.0.0.1:5432".
    fn prefix(self, settings: &Settings<'_>) -> String {
        let address = settings.address();
        match self {
            Self::Connect => format!("connect {address}"),
            Self::Login => format!("login to {address}"),
            Self::Query => format!("query {:?}", settings.query),
            Self::State => "reading recovery and read-only state".into(),
        }
    }
}

/// Runs the whole check; the error is the reason the app is failed.
fn probe(settings: &Settings<'_>) -> Result<Health, String> {
    let password = settings
        .password_file
        .map(|path| medic_kit::read_secret("password_file", path).map(String::into_bytes))
        .transpose()?;
    let fail = |step, e| failure(settings, step, e);
    let deadline = net::deadline_after(settings.timeout_ms);
    let conn = net::connect(settings.host, settings.port, deadline)
        .map_err(|e| fail(Step::Connect, Error::Net(e)))?;
    let mut wire = Wire::new(conn);
    let login = Login {
        user: settings.user,
        database: settings.database,
        password: password.as_deref(),
    };
    wire.login(&login).map_err(|e| fail(Step::Login, e))?;
    wire.query(settings.query)
        .map_err(|e| fail(Step::Query, e))?;
    let health = if settings.wants_state() {
        let state = wire.server_state().map_err(|e| fail(Step::State, e))?;
        judge(settings, state)
    } else {
        Health::Healthy
    };
    wire.terminate();
    Ok(health)
}

/// Turns the server's state into the check's answer, as the settings ask.
fn judge(settings: &Settings<'_>, state: ServerState) -> Health {
    if settings.degraded_in_recovery && state.in_recovery {
        Health::Degraded("server is in recovery (a standby, or replaying WAL)".into())
    } else if settings.degraded_read_only && state.read_only {
        let why = if state.in_recovery {
            "it is in recovery"
        } else {
            "transaction_read_only is on"
        };
        Health::Degraded(format!("server is read-only: {why}"))
    } else {
        Health::Healthy
    }
}

/// Words a failure at `step` for the admin.
fn failure(settings: &Settings<'_>, step: Step, error: Error) -> String {
    let address = settings.address();
    match error {
        Error::Net(NetError::TimedOut) => format!(
            "{address}: no answer within {} ms {}",
            settings.timeout_ms,
            step.during()
        ),
        Error::Net(NetError::Closed) => {
            format!("{address} closed the connection {}", step.during())
        }
        Error::Server(e) if matches!(step, Step::Login) => format!("login refused: {e}"),
        Error::Server(e) => format!("{} failed: {e}", step.prefix(settings)),
        Error::Net(NetError::Failed(e)) | Error::Protocol(e) => {
            format!("{}: {e}", step.prefix(settings))
        }
    }
}

export!(Postgres);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> Context {
        Context::with_settings("db", pairs)
    }

    #[test]
    fn defaults_and_errors() {
        let c = ctx(&[("user", "app")]);
        let s = Settings::read(&c).unwrap();
        assert_eq!((s.host, s.port, s.database), ("127.0.0.1", 5432, "app"));
        assert_eq!((s.query, s.timeout_ms), ("SELECT 1", 2000));
        assert!(!s.wants_state());
        assert_eq!(s.address(), "127.0.0.1:5432");

        let c = ctx(&[("user", "app"), ("host", "[::1]"), ("port", "6432")]);
        assert_eq!(Settings::read(&c).unwrap().address(), "[::1]:6432");

        let err = Settings::read(&ctx(&[])).err().unwrap();
        assert_eq!(err, "missing required setting `user`");
        let c = ctx(&[("user", "app"), ("timeout_ms", "0")]);
        assert!(Settings::read(&c).is_err());
        let c = ctx(&[("user", "app"), ("degraded_read_only", "yes")]);
        assert!(Settings::read(&c).is_err());
    }

    #[test]
    fn judge_follows_the_settings() {
        let c = ctx(&[("user", "app"), ("degraded_read_only", "true")]);
        let s = Settings::read(&c).unwrap();
        let standby = ServerState {
            in_recovery: true,
            read_only: true,
        };
        let primary = ServerState {
            in_recovery: false,
            read_only: false,
        };
        assert_eq!(
            judge(&s, standby),
            Health::Degraded("server is read-only: it is in recovery".into())
        );
        assert_eq!(judge(&s, primary), Health::Healthy);
        let c = ctx(&[("user", "app")]);
        assert_eq!(
            judge(&Settings::read(&c).unwrap(), standby),
            Health::Healthy
        );
    }

    #[test]
    fn failures_read_well() {
        let c = ctx(&[("user", "app")]);
        let s = Settings::read(&c).unwrap();
        let timeout = failure(&s, Step::Login, Error::Net(NetError::TimedOut));
        assert_eq!(
            timeout,
            "127.0.0.1:5432: no answer within 2000 ms while logging in"
        );
        let refused = Error::Net(NetError::Failed("connection refused".into()));
        assert_eq!(
            failure(&s, Step::Connect, refused),
            "connect 127.0.0.1:5432: connection refused"
        );
        let gss = Error::Protocol("server asks for GSSAPI authentication".into());
        assert_eq!(
            failure(&s, Step::Login, gss),
            "login to 127.0.0.1:5432: server asks for GSSAPI authentication"
        );
    }
}
