//! What the server's replies say about it: pure functions, tested on the
//! host.

use medic_kit::Health;
use redis_protocol::resp2::types::OwnedFrame;

use crate::client::Fault;

/// How much of an unexpected reply is quoted in a reason.
const QUOTE: usize = 80;

/// The answer when a command got no usable reply: a reply the kit cannot
/// read (not RESP, or far too long: not a redis server) is `unknown`; a
/// server that does not answer in time or drops the connection is
/// `failed`.
pub fn fault(command: &str, fault: Fault) -> Health {
    match fault {
        Fault::Protocol(_) | Fault::TooLong => Health::Unknown(format!("{command}: {fault}")),
        Fault::TimedOut(_) | Fault::Closed | Fault::Io(_) => {
            Health::Failed(format!("{command}: {fault}"))
        }
    }
}

/// Whether an error reply to a command is about the kit's access, not the
/// server's state: a missing credential (`NOAUTH`), an ACL that denies the
/// command (`NOPERM`), a renamed or disabled command. No restart changes
/// these.
fn refused_access(error: &str) -> bool {
    ["NOAUTH", "NOPERM", "WRONGPASS", "ERR unknown command"]
        .iter()
        .any(|prefix| error.starts_with(prefix))
}

/// The verdict on the reply to `AUTH`: `Err` is the check's answer. A
/// refused login is `unknown` (the credential is wrong, a restart keeps it
/// wrong); only a server too busy to take the connection is `failed`.
pub fn auth(reply: &OwnedFrame) -> Result<(), Health> {
    match reply {
        OwnedFrame::SimpleString(s) if s == b"OK" => Ok(()),
        OwnedFrame::Error(e) if e.starts_with("ERR max number of clients") => {
            Err(Health::Failed(format!("AUTH: {e}")))
        }
        OwnedFrame::Error(e) => Err(Health::Unknown(format!("AUTH: {e}"))),
        other => Err(Health::Unknown(format!(
            "AUTH: unexpected reply {}",
            quote(other)
        ))),
    }
}

/// The verdict on the reply to `PING`. `authenticated` says whether `AUTH`
/// was sent, so a `NOAUTH` can point at the missing setting.
pub fn ping(reply: &OwnedFrame, authenticated: bool) -> Health {
    match reply {
        OwnedFrame::SimpleString(s) if s == b"PONG" => Health::Healthy,
        // Still loading its dataset: up, and will serve once done; a
        // restart would only start the load again.
        OwnedFrame::Error(e) if e.starts_with("LOADING") => Health::Degraded(format!("PING: {e}")),
        // A replica that will not serve stale data while its master is
        // away: a restart cannot bring the master back.
        OwnedFrame::Error(e) if e.starts_with("MASTERDOWN") => {
            Health::Degraded(format!("PING: {e}"))
        }
        OwnedFrame::Error(e) if e.starts_with("NOAUTH") && !authenticated => {
            Health::Unknown(format!("PING: {e} (set `password_file`)"))
        }
        OwnedFrame::Error(e) if refused_access(e) => Health::Unknown(format!("PING: {e}")),
        // BUSY (a script that will not end), max clients, ...: the server
        // does not serve, and a restart ends that.
        OwnedFrame::Error(e) => Health::Failed(format!("PING: {e}")),
        other => Health::Unknown(format!("PING: unexpected reply {}", quote(other))),
    }
}

/// The verdict on the reply to `INFO replication`: degraded for a replica
/// whose link to its master is down. A server that will not tell (an ACL
/// without `+info`, a renamed command) or answers something else leaves
/// the check unable to judge as configured: `unknown`, though `PING` was
/// answered, since a restart would not make it tell.
pub fn replication(reply: &OwnedFrame) -> Health {
    let text = match reply {
        OwnedFrame::BulkString(bytes) => String::from_utf8_lossy(bytes),
        OwnedFrame::Error(e) => {
            return Health::Unknown(format!(
                "INFO replication: {e} (or set `check_replication = false`)"
            ));
        }
        other => {
            return Health::Unknown(format!(
                "INFO replication: unexpected reply {}",
                quote(other)
            ));
        }
    };
    match replica_link_down(&text) {
        Some(reason) => Health::Degraded(reason),
        None => Health::Healthy,
    }
}

/// The reason a replica is degraded, if `info` (the text of `INFO
/// replication`) shows one whose link to its master is down.
pub fn replica_link_down(info: &str) -> Option<String> {
    let field = |key: &str| {
        info.lines()
            .filter_map(|line| line.trim_end().split_once(':'))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    };
    if field("role") != Some("slave") || field("master_link_status") != Some("down") {
        return None;
    }
    let master = format!(
        "{}:{}",
        field("master_host").unwrap_or("?"),
        field("master_port").unwrap_or("?")
    );
    let since = match field("master_link_down_since_seconds").map(str::parse::<i64>) {
        Some(Ok(secs)) if secs >= 0 => format!(" for {secs} s"),
        _ => " (not connected since start)".into(),
    };
    let syncing = match field("master_sync_in_progress") {
        Some("1") => ", sync in progress",
        _ => "",
    };
    Some(format!(
        "replica: link to master {master} is down{since}{syncing}"
    ))
}

/// A short, printable rendering of a reply for a reason.
fn quote(frame: &OwnedFrame) -> String {
    let text = match frame {
        OwnedFrame::SimpleString(s) => format!("+{}", String::from_utf8_lossy(s)),
        OwnedFrame::BulkString(b) => format!("${:?}", String::from_utf8_lossy(b)),
        OwnedFrame::Error(e) => format!("-{e}"),
        OwnedFrame::Integer(i) => format!(":{i}"),
        OwnedFrame::Array(items) => format!("an array of {}", items.len()),
        OwnedFrame::Null => "nil".into(),
    };
    match text.char_indices().nth(QUOTE) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A simple-string reply.
    fn simple(s: &str) -> OwnedFrame {
        OwnedFrame::SimpleString(s.as_bytes().to_vec())
    }

    /// An error reply.
    fn error(s: &str) -> OwnedFrame {
        OwnedFrame::Error(s.into())
    }

    /// `INFO replication` of a redis 7.0 replica whose master never answered.
    const REPLICA_DOWN: &str = "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\n\
        master_port:6380\r\nmaster_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\n\
        master_sync_in_progress:0\r\nslave_read_repl_offset:1\r\n\
        master_link_down_since_seconds:-1\r\nslave_priority:100\r\n";

    #[test]
    fn a_refused_login_is_unknown() {
        assert_eq!(auth(&simple("OK")), Ok(()));
        assert_eq!(
            auth(&error(
                "WRONGPASS invalid username-password pair or user is disabled."
            )),
            Err(Health::Unknown(
                "AUTH: WRONGPASS invalid username-password pair or user is disabled.".into()
            ))
        );
        let unset = "ERR AUTH <password> called without any password configured for the \
                     default user. Are you sure your configuration is correct?";
        assert!(matches!(auth(&error(unset)), Err(Health::Unknown(_))));
        assert_eq!(
            auth(&OwnedFrame::Integer(1)),
            Err(Health::Unknown("AUTH: unexpected reply :1".into()))
        );
        assert!(matches!(
            auth(&error("ERR max number of clients reached")),
            Err(Health::Failed(_))
        ));
    }

    #[test]
    fn ping_verdicts() {
        assert_eq!(ping(&simple("PONG"), false), Health::Healthy);
        assert_eq!(
            ping(
                &error("LOADING Redis is loading the dataset in memory"),
                false
            ),
            Health::Degraded("PING: LOADING Redis is loading the dataset in memory".into())
        );
        assert!(matches!(
            ping(&error("MASTERDOWN Link with MASTER is down"), false),
            Health::Degraded(_)
        ));
        assert_eq!(
            ping(&error("NOAUTH Authentication required."), false),
            Health::Unknown("PING: NOAUTH Authentication required. (set `password_file`)".into())
        );
        assert_eq!(
            ping(&error("NOAUTH Authentication required."), true),
            Health::Unknown("PING: NOAUTH Authentication required.".into())
        );
        assert!(matches!(
            ping(
                &error("NOPERM User bob has no permissions to run the 'ping' command"),
                true
            ),
            Health::Unknown(_)
        ));
        assert!(matches!(
            ping(
                &error("ERR unknown command 'PING', with args beginning with: "),
                false
            ),
            Health::Unknown(_)
        ));
        assert_eq!(
            ping(&error("BUSY Redis is busy running a script."), false),
            Health::Failed("PING: BUSY Redis is busy running a script.".into())
        );
        assert_eq!(
            ping(&simple("OK"), false),
            Health::Unknown("PING: unexpected reply +OK".into())
        );
    }

    #[test]
    fn no_reply_is_failed_but_a_foreign_one_is_unknown() {
        use std::time::Duration;
        assert_eq!(
            fault("PING", Fault::TimedOut(Duration::from_millis(2000))),
            Health::Failed("PING: no answer within 2000 ms".into())
        );
        assert!(matches!(fault("PING", Fault::Closed), Health::Failed(_)));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(matches!(
            fault("AUTH", Fault::Io(refused)),
            Health::Failed(_)
        ));
        assert!(matches!(
            fault("PING", Fault::Protocol("bad type".into())),
            Health::Unknown(_)
        ));
        assert!(matches!(fault("INFO", Fault::TooLong), Health::Unknown(_)));
    }

    #[test]
    fn a_replica_whose_link_is_down_is_degraded() {
        assert_eq!(
            replica_link_down(REPLICA_DOWN).as_deref(),
            Some("replica: link to master 127.0.0.1:6380 is down (not connected since start)")
        );
        let lost = REPLICA_DOWN
            .replace("since_seconds:-1", "since_seconds:42")
            .replace("in_progress:0", "in_progress:1");
        assert_eq!(
            replica_link_down(&lost).as_deref(),
            Some("replica: link to master 127.0.0.1:6380 is down for 42 s, sync in progress")
        );
        let reply = OwnedFrame::BulkString(REPLICA_DOWN.as_bytes().to_vec());
        assert!(matches!(replication(&reply), Health::Degraded(_)));
    }

    #[test]
    fn masters_and_linked_replicas_are_healthy() {
        let up = REPLICA_DOWN.replace("status:down", "status:up");
        assert_eq!(replica_link_down(&up), None);
        let master = "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n";
        assert_eq!(replica_link_down(master), None);
        let reply = OwnedFrame::BulkString(master.as_bytes().to_vec());
        assert_eq!(replication(&reply), Health::Healthy);
    }

    #[test]
    fn an_unanswered_info_is_unknown_not_failed() {
        let reply = error("NOPERM User bob has no permissions to run the 'info' command");
        assert_eq!(
            replication(&reply),
            Health::Unknown(
                "INFO replication: NOPERM User bob has no permissions to run the 'info' \
                 command (or set `check_replication = false`)"
                    .into()
            )
        );
        assert!(matches!(replication(&OwnedFrame::Null), Health::Unknown(_)));
    }

    #[test]
    fn quotes_are_short() {
        let long = OwnedFrame::SimpleString(vec![b'x'; 500]);
        assert_eq!(quote(&long).len(), QUOTE + 3);
        assert_eq!(quote(&OwnedFrame::Array(vec![])), "an array of 0");
    }
}
