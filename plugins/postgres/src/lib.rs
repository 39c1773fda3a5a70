//! Recovery kit `postgres`: the app is up while PostgreSQL lets the kit log
//! in and answers a query.
//!
//! The kit speaks the PostgreSQL wire protocol itself (messages and
//! SCRAM-SHA-256/md5 from the `postgres-protocol` crate) over a plain TCP
//! connection, logs in with trust or a password from a file, runs one query
//! with the simple query protocol and, if the admin asks, reports the
//! server as `degraded` while it is in recovery or read-only. One deadline,
//! `timeout_ms` but never past the call's own deadline less its margin,
//! bounds the whole conversation, so a hung server is `failed`, not a kit
//! fault.
//!
//! A server that does not answer, says it is starting up or shutting down,
//! or fails the admin's query, is `failed`: a restart may cure it. A login
//! it refuses, a database it does not have, an authentication method or an
//! answer the kit does not know, a bad setting and an unreadable password
//! file are `unknown`: no restart changes them.

mod session;

use medic_kit::{
    CannotJudge, Capability, CheckResult, Context, Health, Kit, KitInfo, SettingDoc, export,
};

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
        medic_kit::verdict(
            Settings::read(ctx)
                .map_err(Health::from)
                .and_then(|s| probe(&s)),
        )
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
        SettingDoc::optional(
            "timeout_ms",
            "Longest wait for the whole check (connect, login, queries), in milliseconds. \
             The check always ends shortly before the app's `timeout`, so a hung server is \
             `failed`, not a kit fault; set this only to give up sooner. Default: all of \
             that time (2000 on hosts before medic:kit 0.1.2).",
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
    timeout_ms: u32,
}

/// How long the check may take when neither `timeout_ms` nor the call's
/// deadline says (a host before medic:kit 0.1.2).
const TIMEOUT_MS: u32 = 2000;

impl<'a> Settings<'a> {
    /// Reads the settings; a bad one cannot be judged.
    fn read(ctx: &'a Context) -> Result<Self, CannotJudge> {
        let user = ctx.require("user")?;
        let host = ctx.setting("host").unwrap_or("127.0.0.1").trim();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(CannotJudge::new("setting `host` is empty"));
        }
        Ok(Self {
            host,
            port: ctx.parse_or("port", 5432u16)?,
            user,
            database: ctx.setting("database").unwrap_or(user),
            password_file: ctx.setting("password_file"),
            query: ctx.setting("query").unwrap_or("SELECT 1"),
            degraded_in_recovery: ctx.parse_or("degraded_in_recovery", false)?,
            degraded_read_only: ctx.parse_or("degraded_read_only", false)?,
            timeout_ms: ctx.timeout_ms_setting("timeout_ms", TIMEOUT_MS)?,
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

/// Runs the whole check, stopping at the first step that decides it.
fn probe(settings: &Settings<'_>) -> CheckResult {
    let password = settings
        .password_file
        .map(|path| medic_kit::read_secret("password_file", path).map(String::into_bytes))
        .transpose()?;
    let fail = |step, e| failure(settings, step, e);
    let deadline = net::deadline_after(settings.timeout_ms.into());
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

/// The check's answer to a failure at `step`, worded for the admin: what
/// the connection did is `failed`; what the server refused or the kit
/// could not follow is `unknown`, unless the server's SQLSTATE says a
/// restart may help (see [`restart_may_help`]).
fn failure(settings: &Settings<'_>, step: Step, error: Error) -> Health {
    let address = settings.address();
    match error {
        Error::Net(NetError::TimedOut) => Health::Failed(format!(
            "{address}: no answer within {} ms {}",
            settings.timeout_ms,
            step.during()
        )),
        Error::Net(NetError::Closed) => {
            Health::Failed(format!("{address} closed the connection {}", step.during()))
        }
        Error::Net(NetError::Failed(e)) => {
            Health::Failed(format!("{}: {e}", step.prefix(settings)))
        }
        Error::Server(e) => {
            let reason = match step {
                Step::Login => format!("login refused: {e}"),
                _ => format!("{} failed: {e}", step.prefix(settings)),
            };
            if restart_may_help(&e.code) {
                Health::Failed(reason)
            } else {
                Health::Unknown(format!("{reason} (SQLSTATE {})", e.code))
            }
        }
        Error::Protocol(e) => Health::Unknown(format!("{}: {e}", step.prefix(settings))),
    }
}

/// Whether an error the server sent, by its SQLSTATE, is one a restart of
/// the server may cure. Not those about who the kit is and where it logs
/// in: class 28 (a refused login: `28P01` a wrong password, `28000` no
/// `pg_hba.conf` entry or no such role) and `3D000` (no such database).
/// Every other error is `failed`: the server's state (`57P03` starting up,
/// shutting down or in recovery, `53300` too many connections, `53100`
/// disk full, `XX000` an internal error, ...) and an error of the admin's
/// query, which is what the admin asked to be told about.
fn restart_may_help(sqlstate: &str) -> bool {
    !(sqlstate.starts_with("28") || sqlstate == "3D000")
}

export!(Postgres);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::session::ServerError;

    fn ctx(pairs: &[(&str, &str)]) -> Context {
        Context::with_settings("db", pairs)
    }

    #[test]
    fn defaults_and_errors() {
        let c = ctx(&[("user", "app")]);
        let s = Settings::read(&c).unwrap();
        assert_eq!((s.host, s.port, s.database), ("127.0.0.1", 5432, "app"));
        assert_eq!(s.query, "SELECT 1");
        assert!((4000..=4500).contains(&s.timeout_ms), "{}", s.timeout_ms);
        assert!(!s.wants_state());
        assert_eq!(s.address(), "127.0.0.1:5432");

        let mut old = ctx(&[("user", "app")]);
        old.deadline_ms = medic_kit::DEADLINE_NOT_TOLD;
        assert_eq!(Settings::read(&old).unwrap().timeout_ms, 2000);

        let c = ctx(&[("user", "app"), ("host", "[::1]"), ("port", "6432")]);
        assert_eq!(Settings::read(&c).unwrap().address(), "[::1]:6432");
    }

    #[test]
    fn bad_settings_and_password_files_are_unknown() {
        let check = |pairs: &[(&str, &str)]| {
            let c = ctx(pairs);
            Settings::read(&c)
                .map_err(Health::from)
                .and_then(|s| probe(&s))
        };
        assert_eq!(
            check(&[]),
            Err(Health::Unknown("missing required setting `user`".into()))
        );
        medic_kit::testing::assert_unknown_for(
            &[
                &[("user", "app"), ("timeout_ms", "0")],
                &[("user", "app"), ("degraded_read_only", "yes")],
                &[("user", "app"), ("host", "[]")],
                &[("user", "app"), ("password_file", "/nonexistent/medic/pw")],
            ],
            |c| {
                Settings::read(c)
                    .map_err(Health::from)
                    .and_then(|s| probe(&s))
            },
        );
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

    /// A server error with this SQLSTATE and message.
    fn server(code: &str, message: &str) -> Error {
        Error::Server(ServerError {
            code: code.into(),
            message: message.into(),
        })
    }

    #[test]
    fn what_the_connection_does_is_failed() {
        let c = ctx(&[("user", "app"), ("timeout_ms", "2000")]);
        let s = Settings::read(&c).unwrap();
        assert_eq!(
            failure(&s, Step::Login, Error::Net(NetError::TimedOut)),
            Health::Failed("127.0.0.1:5432: no answer within 2000 ms while logging in".into())
        );
        let refused = Error::Net(NetError::Failed("connection refused".into()));
        assert_eq!(
            failure(&s, Step::Connect, refused),
            Health::Failed("connect 127.0.0.1:5432: connection refused".into())
        );
        assert!(matches!(
            failure(&s, Step::Query, Error::Net(NetError::Closed)),
            Health::Failed(_)
        ));
    }

    #[test]
    fn a_server_starting_or_stopping_is_failed() {
        let c = ctx(&[("user", "app")]);
        let s = Settings::read(&c).unwrap();
        for (code, message) in [
            ("57P03", "the database system is starting up"),
            ("57P03", "the database system is shutting down"),
            ("53300", "sorry, too many clients already"),
            ("XX000", "could not read block 0"),
        ] {
            assert_eq!(
                failure(&s, Step::Login, server(code, message)),
                Health::Failed(format!("login refused: {message}")),
                "{code}"
            );
        }
        // The admin's query failing is what the admin asked to hear about.
        assert_eq!(
            failure(
                &s,
                Step::Query,
                server("42703", "column \"nope\" does not exist")
            ),
            Health::Failed("query \"SELECT 1\" failed: column \"nope\" does not exist".into())
        );
    }

    #[test]
    fn what_the_server_refuses_the_kit_is_unknown() {
        let c = ctx(&[("user", "app")]);
        let s = Settings::read(&c).unwrap();
        assert_eq!(
            failure(
                &s,
                Step::Login,
                server("28P01", "password authentication failed for user \"app\"")
            ),
            Health::Unknown(
                "login refused: password authentication failed for user \"app\" \
                 (SQLSTATE 28P01)"
                    .into()
            )
        );
        for code in ["28000", "3D000"] {
            let answer = failure(&s, Step::Login, server(code, "no"));
            assert!(matches!(answer, Health::Unknown(_)), "{code}: {answer:?}");
        }
        let gss = Error::Protocol("server asks for GSSAPI authentication".into());
        assert_eq!(
            failure(&s, Step::Login, gss),
            Health::Unknown(
                "login to 127.0.0.1:5432: server asks for GSSAPI authentication".into()
            )
        );
    }
}
