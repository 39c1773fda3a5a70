//! A small client of HAProxy's runtime API (the "stats socket"), so that
//! `medic unit roll` can take one member at a time out of the load
//! balancer's rotation and put it back without a failed client request.
//!
//! The protocol is HAProxy's non-interactive mode: connect (unix socket or
//! TCP), send one command line ending in `\n`, read the answer until HAProxy
//! closes the connection. One connection per command keeps every call
//! independent; each is bounded in time and in the size of its answer, so a
//! wrong endpoint costs a timeout, not a hang or the controller's memory.
//!
//! What HAProxy 2.6 prints in `show stat`'s `status` column (observed with
//! `option httpchk`, `inter 200ms fall 2 rise 2`):
//!
//! | state | checks pass | checks fail |
//! |-------|-------------|-------------|
//! | `ready` | `UP` (`UP 1/2` after one failed check) | `DOWN` (`DOWN 1/2` after one passed check) |
//! | `drain` | `DRAIN` (`DRAIN 1/2` after one failed check) | `DOWN`: the drain no longer shows |
//! | `maint` | `MAINT` (checks stop) | `MAINT` |
//!
//! A server without `check` reads `no check` when ready, `DRAIN` when
//! drained. Leaving `maint`, HAProxy reads the server `UP 1/2` before any
//! check has run, even when it is dead; only `UP` means every recent check
//! passed. Because a drained server that fails its checks reads `DOWN`, the
//! admin state is read from `show servers state` (its `srv_admin_state`
//! bits), not from the status text.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// The largest answer read: a `show stat` of thousands of servers fits,
/// and an endpoint that is not HAProxy cannot flood the controller.
pub const MAX_ANSWER: u64 = 4 * 1024 * 1024;

/// How often `drain` and `ready_and_up` ask again: HAProxy's own checks
/// run every few hundred milliseconds at best, and the two commands of one
/// [`Haproxy::server`] are cheap at this rate.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The longest name sent: far below HAProxy's command buffer, far above
/// any real backend or server name.
const MAX_NAME: usize = 256;

/// `show stat` of servers only (type 4), of every proxy: asking for one
/// proxy by name could find a frontend of the same name instead.
const SHOW_SERVERS_STAT: &str = "show stat -1 4 -1";

/// `srv_admin_state` bits of a server in maintenance: forced (`maint`),
/// inherited from a tracked server, from the configuration, or for a
/// failed DNS resolution (HAProxy's `SRV_ADMF_MAINT` and `SRV_ADMF_CMAINT`).
const ADMIN_MAINT: u32 = 0x01 | 0x02 | 0x04 | 0x20;

/// `srv_admin_state` bits of a draining server: forced (`drain`) or
/// inherited from a tracked server (HAProxy's `SRV_ADMF_DRAIN`).
const ADMIN_DRAIN: u32 = 0x08 | 0x10;

/// Where HAProxy's runtime API listens: its `stats socket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket (`stats socket /run/haproxy/admin.sock level admin`).
    Socket(PathBuf),
    /// A TCP address (`stats socket ipv4@127.0.0.1:9999 level admin`).
    Address(SocketAddr),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Socket(path) => write!(f, "{}", path.display()),
            Self::Address(address) => write!(f, "{address}"),
        }
    }
}

/// A server's administrative state, as `set server B/S state` sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    /// In rotation: takes new requests while its checks pass.
    Ready,
    /// Takes no new requests (but persistent ones and health checks),
    /// finishes those it has: the way to empty a member before stopping it.
    Drain,
    /// Out of rotation and not checked.
    Maint,
}

impl fmt::Display for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ready => "ready",
            Self::Drain => "drain",
            Self::Maint => "maint",
        })
    }
}

/// One server as HAProxy sees it, read from `show stat` and
/// `show servers state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// Sessions on the server now (`scur`): requests it has not finished.
    pub sessions: u64,
    /// Requests queued for this server (`qcur`), served by it once a slot
    /// frees, drained or not.
    pub queued: u64,
    /// `show stat`'s `status`: `UP`, `UP 1/2`, `DOWN`, `DRAIN`, `MAINT`,
    /// `no check`... (see the module's table).
    pub status: String,
    /// The last health check's result (`check_status`: `L7OK`, `L4CON`...,
    /// `* ` in front while one runs), empty without checks.
    pub check_status: String,
    /// Whether the server is drained (`set server … state drain`), even
    /// while its status reads `DOWN`.
    pub admin_drain: bool,
    /// Whether the server is in maintenance.
    pub admin_maint: bool,
}

impl ServerStatus {
    /// Whether HAProxy sends it new requests: up by its checks (`UP`, or
    /// `UP 1/2` while failing), neither drained nor in maintenance.
    pub fn is_up(&self) -> bool {
        self.status.starts_with("UP") && !self.admin_drain && !self.admin_maint
    }

    /// Whether it is up with every recent check passed (`UP` exactly): what
    /// a member put back must reach, since leaving `maint` HAProxy reads a
    /// server `UP 1/2` before checking it.
    pub fn is_fully_up(&self) -> bool {
        self.status == "UP" && self.is_up()
    }

    /// Requests still bound to it: sessions and queued requests, what a
    /// drain waits to see reach 0.
    pub fn in_flight(&self) -> u64 {
        self.sessions + self.queued
    }
}

impl fmt::Display for ServerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if !self.check_status.is_empty() {
            write!(f, " (check {})", self.check_status)?;
        }
        write!(f, ", {} sessions", self.sessions)
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Sessions and queued requests the server still had when the drain
    /// stopped waiting: 0 when it emptied, more after the timeout.
    pub sessions_left: u64,
    /// How long the drain waited after setting the state.
    pub waited: Duration,
}

impl DrainOutcome {
    /// Whether the server emptied before the timeout.
    pub fn emptied(&self) -> bool {
        self.sessions_left == 0
    }
}

/// Why a call to HAProxy's runtime API failed, in the words an admin acts on.
#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    /// A backend or server name that cannot go into a command line.
    #[error("{0}")]
    InvalidName(String),
    /// The endpoint does not take connections.
    #[error("cannot reach HAProxy's runtime API at {endpoint}: {source}")]
    Unreachable {
        /// The endpoint tried.
        endpoint: String,
        /// Why the connection failed.
        source: std::io::Error,
    },
    /// The connection broke while sending or reading.
    #[error("HAProxy's runtime API at {endpoint}, `{command}`: {source}")]
    Io {
        /// The endpoint.
        endpoint: String,
        /// The command sent.
        command: String,
        /// What broke.
        source: std::io::Error,
    },
    /// No full answer within the timeout.
    #[error(
        "HAProxy's runtime API at {endpoint} did not answer `{command}` within {}",
        humantime::format_duration(*timeout)
    )]
    Timeout {
        /// The endpoint.
        endpoint: String,
        /// The command sent.
        command: String,
        /// The bound.
        timeout: Duration,
    },
    /// An answer larger than [`MAX_ANSWER`].
    #[error(
        "the answer of {endpoint} to `{command}` is longer than {MAX_ANSWER} bytes: is it HAProxy's runtime API?"
    )]
    TooLong {
        /// The endpoint.
        endpoint: String,
        /// The command sent.
        command: String,
    },
    /// HAProxy has no backend of that name.
    #[error("HAProxy has no backend {backend}: check [unit.lb] backend")]
    NoBackend {
        /// The backend asked for.
        backend: String,
    },
    /// The backend has no server of that name.
    #[error("HAProxy has no server {backend}/{server}: check [unit.lb] members")]
    NoServer {
        /// The backend.
        backend: String,
        /// The server asked for.
        server: String,
    },
    /// HAProxy answered a command with an error message.
    #[error("HAProxy refused `{command}`: {answer}")]
    Refused {
        /// The command, which names the backend and server.
        command: String,
        /// HAProxy's message (and a hint when one helps).
        answer: String,
    },
    /// An answer that is not what the command gives.
    #[error("unexpected answer of {endpoint} to `{command}`: {problem}")]
    Unexpected {
        /// The endpoint.
        endpoint: String,
        /// The command sent.
        command: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A server put back that its checks did not report up in time.
    #[error(
        "{backend}/{server} is not UP within {}: status {status}",
        humantime::format_duration(*within)
    )]
    NotUp {
        /// The backend.
        backend: String,
        /// The server.
        server: String,
        /// How long it was given.
        within: Duration,
        /// How HAProxy saw it last.
        status: Box<ServerStatus>,
    },
}

/// Checks a backend or server name before it goes into a command line:
/// HAProxy's own characters for names (letters, digits, `.`, `:`, `_`,
/// `-`), so whitespace, control characters and `;` (which would end the
/// command and start another) never reach it. `units.toml` uses it too.
pub fn valid_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '_' | '-');
    if name.is_empty() {
        return Err("a HAProxy name cannot be empty".to_owned());
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "a HAProxy name is at most {MAX_NAME} bytes, not {}",
            name.len()
        ));
    }
    match name.chars().find(|c| !allowed(*c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "`{}` is not a HAProxy name: {c:?} is not allowed (letters, digits, `.`, `:`, `_` and `-` only)",
            printable(name)
        )),
    }
}

/// A client of one HAProxy's runtime API.
#[derive(Debug, Clone)]
pub struct Haproxy {
    endpoint: Endpoint,
    timeout: Duration,
}

impl Haproxy {
    /// A client of the runtime API at `endpoint`, each command bounded by
    /// `timeout` (connecting, sending and reading the whole answer).
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Self {
        Self { endpoint, timeout }
    }

    /// Sets `backend/server`'s administrative state. HAProxy answers an
    /// empty line when it did; anything else is an error naming the server.
    pub async fn set_state(
        &self,
        backend: &str,
        server: &str,
        state: AdminState,
    ) -> Result<(), HaproxyError> {
        check_names(backend, server)?;
        let command = format!("set server {backend}/{server} state {state}");
        let answer = self.ask(&command).await?;
        match refusal(backend, server, &command, &answer) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// `backend/server` as HAProxy sees it now: its sessions and status
    /// from `show stat`, its admin state from `show servers state`.
    pub async fn server(&self, backend: &str, server: &str) -> Result<ServerStatus, HaproxyError> {
        check_names(backend, server)?;
        let admin = self.admin_state(backend, server).await?;
        let answer = self.ask(SHOW_SERVERS_STAT).await?;
        let table = Table::parse(&answer, split_csv)
            .map_err(|problem| self.unexpected(SHOW_SERVERS_STAT, problem))?;
        let row = table
            .row(&[("pxname", backend), ("svname", server)])
            .map_err(|problem| self.unexpected(SHOW_SERVERS_STAT, problem))?
            .ok_or_else(|| no_server(backend, server))?;
        server_status(&table, row, admin)
            .map_err(|problem| self.unexpected(SHOW_SERVERS_STAT, problem))
    }

    /// Drains `backend/server` and waits until it has no sessions or
    /// queued requests left, or `timeout` passes (the outcome then says
    /// how many are left). `progress` hears the count each time it changes.
    pub async fn drain(
        &self,
        backend: &str,
        server: &str,
        timeout: Duration,
        progress: impl Fn(u64),
    ) -> Result<DrainOutcome, HaproxyError> {
        self.set_state(backend, server, AdminState::Drain).await?;
        let mut last = None;
        let (status, waited, _) = self
            .poll(backend, server, timeout, |status| {
                let left = status.in_flight();
                if last != Some(left) {
                    progress(left);
                    last = Some(left);
                }
                left == 0
            })
            .await?;
        Ok(DrainOutcome {
            sessions_left: status.in_flight(),
            waited,
        })
    }

    /// Puts `backend/server` back in rotation and waits until HAProxy's own
    /// health checks report it fully `UP`; returns how long that took.
    ///
    /// Call it once the member serves again: a status can lag the checks by
    /// `fall × inter`, so a member restarted quicker than that may read `UP`
    /// at once. A server without `check` reads `no check`, never `UP`, and
    /// fails here: nothing would tell that it serves.
    pub async fn ready_and_up(
        &self,
        backend: &str,
        server: &str,
        timeout: Duration,
    ) -> Result<Duration, HaproxyError> {
        self.set_state(backend, server, AdminState::Ready).await?;
        let (status, waited, up) = self
            .poll(backend, server, timeout, ServerStatus::is_fully_up)
            .await?;
        if up {
            Ok(waited)
        } else {
            Err(HaproxyError::NotUp {
                backend: backend.to_owned(),
                server: server.to_owned(),
                within: timeout,
                status: Box::new(status),
            })
        }
    }

    /// Reads the server every [`POLL_INTERVAL`] until `done` says so or
    /// `timeout` passes: the last status, the time waited and whether done.
    async fn poll(
        &self,
        backend: &str,
        server: &str,
        timeout: Duration,
        mut done: impl FnMut(&ServerStatus) -> bool,
    ) -> Result<(ServerStatus, Duration, bool), HaproxyError> {
        let start = Instant::now();
        loop {
            let status = self.server(backend, server).await?;
            let finished = done(&status);
            let waited = start.elapsed();
            if finished || waited >= timeout {
                return Ok((status, waited, finished));
            }
            tokio::time::sleep(POLL_INTERVAL.min(timeout - waited)).await;
        }
    }

    /// The `srv_admin_state` bits of `backend/server`.
    async fn admin_state(&self, backend: &str, server: &str) -> Result<u32, HaproxyError> {
        let command = format!("show servers state {backend}");
        let answer = self.ask(&command).await?;
        // without a table, the answer is HAProxy's message ("Can't find backend.")
        let table = Table::parse(&answer, split_words).map_err(|problem| {
            refusal(backend, server, &command, &answer)
                .unwrap_or_else(|| self.unexpected(&command, problem))
        })?;
        let row = table
            .row(&[("be_name", backend), ("srv_name", server)])
            .map_err(|problem| self.unexpected(&command, problem))?
            .ok_or_else(|| no_server(backend, server))?;
        table
            .number(row, "srv_admin_state")
            .and_then(|bits| u32::try_from(bits).map_err(|e| e.to_string()))
            .map_err(|problem| self.unexpected(&command, problem))
    }

    /// Sends one command and reads the whole answer, within the timeout.
    async fn ask(&self, command: &str) -> Result<String, HaproxyError> {
        match tokio::time::timeout(self.timeout, self.exchange(command)).await {
            Ok(answer) => answer,
            Err(_) => Err(HaproxyError::Timeout {
                endpoint: self.endpoint.to_string(),
                command: command.to_owned(),
                timeout: self.timeout,
            }),
        }
    }

    /// Connects to the endpoint and exchanges `command` for its answer.
    async fn exchange(&self, command: &str) -> Result<String, HaproxyError> {
        let unreachable = |source| HaproxyError::Unreachable {
            endpoint: self.endpoint.to_string(),
            source,
        };
        let answer = match &self.endpoint {
            Endpoint::Socket(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(unreachable)?;
                send_and_read(stream, command).await
            }
            Endpoint::Address(address) => {
                let stream = tokio::net::TcpStream::connect(address)
                    .await
                    .map_err(unreachable)?;
                send_and_read(stream, command).await
            }
        };
        let answer = answer.map_err(|source| HaproxyError::Io {
            endpoint: self.endpoint.to_string(),
            command: command.to_owned(),
            source,
        })?;
        if answer.len() as u64 > MAX_ANSWER {
            return Err(HaproxyError::TooLong {
                endpoint: self.endpoint.to_string(),
                command: command.to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }

    fn unexpected(&self, command: &str, problem: String) -> HaproxyError {
        HaproxyError::Unexpected {
            endpoint: self.endpoint.to_string(),
            command: command.to_owned(),
            problem,
        }
    }
}

/// Writes `command` and a newline, then reads until HAProxy closes the
/// connection, at most one byte more than [`MAX_ANSWER`] (to tell a full
/// answer from a cut one).
async fn send_and_read(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    command: &str,
) -> std::io::Result<Vec<u8>> {
    stream.write_all(format!("{command}\n").as_bytes()).await?;
    stream.flush().await?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER + 1)
        .read_to_end(&mut answer)
        .await?;
    Ok(answer)
}

/// The columns of one `show stat` row a [`ServerStatus`] holds, with
/// `admin`, the server's `srv_admin_state` bits.
fn server_status(table: &Table, row: &[String], admin: u32) -> Result<ServerStatus, String> {
    Ok(ServerStatus {
        sessions: table.number(row, "scur")?,
        queued: table.number(row, "qcur")?,
        status: table.field(row, "status")?.to_owned(),
        check_status: table.field(row, "check_status")?.to_owned(),
        admin_drain: admin & ADMIN_DRAIN != 0,
        admin_maint: admin & ADMIN_MAINT != 0,
    })
}

fn check_names(backend: &str, server: &str) -> Result<(), HaproxyError> {
    valid_name(backend)
        .and_then(|()| valid_name(server))
        .map_err(HaproxyError::InvalidName)
}

fn no_server(backend: &str, server: &str) -> HaproxyError {
    HaproxyError::NoServer {
        backend: backend.to_owned(),
        server: server.to_owned(),
    }
}

/// The error an answer of HAProxy's means, if it is one: success is an
/// empty answer (an empty line), anything else is HAProxy's message.
fn refusal(backend: &str, server: &str, command: &str, answer: &str) -> Option<HaproxyError> {
    let message = answer.trim();
    match message {
        "" => None,
        "No such backend." | "Can't find backend." => Some(HaproxyError::NoBackend {
            backend: backend.to_owned(),
        }),
        "No such server." => Some(no_server(backend, server)),
        _ => Some(HaproxyError::Refused {
            command: command.to_owned(),
            answer: explain(message),
        }),
    }
}

/// HAProxy's message, on one line and short, with a hint when one helps.
fn explain(message: &str) -> String {
    let first: String = message
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let mut line = printable(&first);
    if message.contains("Permission denied") {
        line.push_str(" (the stats socket needs `level admin`)");
    }
    line
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`), so that
/// an answer or a name cannot break the one line a message is.
fn printable(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

/// A table HAProxy prints: a header line `# name name ...` and rows, any
/// line before the header (a version) skipped; fields found by the
/// header's names, not by position, since columns come and go between
/// versions.
struct Table {
    names: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn parse(text: &str, split: fn(&str) -> Vec<String>) -> Result<Self, String> {
        let mut lines = text.lines().skip_while(|line| !line.starts_with("# "));
        let header = lines.next().ok_or_else(|| {
            format!(
                "no header line `# …` in `{}`",
                explain(text).chars().take(80).collect::<String>()
            )
        })?;
        Ok(Self {
            names: split(&header[2..]),
            rows: lines
                .filter(|line| !line.trim().is_empty())
                .map(split)
                .collect(),
        })
    }

    fn column(&self, name: &str) -> Result<usize, String> {
        self.names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| format!("no column `{name}`"))
    }

    /// The first row whose columns hold the values `keys` gives.
    fn row(&self, keys: &[(&str, &str)]) -> Result<Option<&[String]>, String> {
        let keys = keys
            .iter()
            .map(|(name, value)| Ok((self.column(name)?, *value)))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(self
            .rows
            .iter()
            .find(|row| {
                keys.iter()
                    .all(|(i, value)| row.get(*i).is_some_and(|v| v == value))
            })
            .map(Vec::as_slice))
    }

    fn field<'r>(&self, row: &'r [String], name: &str) -> Result<&'r str, String> {
        let i = self.column(name)?;
        row.get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("a row without column `{name}`"))
    }

    /// A count: an empty field (HAProxy leaves some empty) reads 0.
    fn number(&self, row: &[String], name: &str) -> Result<u64, String> {
        match self.field(row, name)? {
            "" => Ok(0),
            text => text
                .parse()
                .map_err(|_| format!("`{name}` is not a count: `{}`", printable(text))),
        }
    }
}

/// One line of `show stat`'s CSV; a field in double quotes may hold
/// commas and doubled quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// One line of `show servers state`: fields between spaces.
fn split_words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `show stat -1 6 -1` of HAProxy 2.6.12 (Debian 12): web1 drained,
    /// web2 in maintenance, web3 without `check`.
    const SHOW_STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,
web_back,web1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN,1,1,0,1,1,1,1,,1,3,1,,0,,2,0,,0,L7OK,200,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check passed,,2,2,3,,,,127.0.0.1:18081,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
web_back,web2,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,1,0,1,1,2,2,,1,3,2,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:18082,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
web_back,web3,0,0,0,0,,0,0,0,,0,,0,0,0,0,no check,1,1,0,,,3,,,1,3,3,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:18083,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
web_back,BACKEND,0,0,0,0,999,0,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,3,0,,1,3,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,1,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,22,22,2409,300,0,0,

";

    /// `show servers state web_back` of the same HAProxy at the same time.
    const SERVERS_STATE: &str = "1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 web_back 1 web1 127.0.0.1 2 8 1 1 1 15 3 3 6 0 0 0 - 18081 - 0 0 - - 0
3 web_back 2 web2 127.0.0.1 0 1 1 1 2 8 2 0 14 0 0 0 - 18082 - 0 0 - - 0
3 web_back 3 web3 127.0.0.1 2 0 1 1 3 1 0 2 0 0 0 0 - 18083 - 0 0 - - 0

";

    fn stat(server: &str, field: &str) -> String {
        let table = Table::parse(SHOW_STAT, split_csv).unwrap();
        let row = table
            .row(&[("pxname", "web_back"), ("svname", server)])
            .unwrap()
            .unwrap();
        table.field(row, field).unwrap().to_owned()
    }

    #[test]
    fn show_stat_is_read_by_column_names() {
        assert_eq!(stat("web1", "status"), "DRAIN");
        assert_eq!(stat("web1", "check_status"), "L7OK");
        assert_eq!(stat("web1", "addr"), "127.0.0.1:18081");
        assert_eq!(stat("web2", "status"), "MAINT");
        assert_eq!(stat("web3", "status"), "no check");
        assert_eq!(stat("BACKEND", "slim"), "999");
        let table = Table::parse(SHOW_STAT, split_csv).unwrap();
        let row = table
            .row(&[("pxname", "web_back"), ("svname", "web1")])
            .unwrap()
            .unwrap();
        assert_eq!(table.number(row, "scur"), Ok(0));
        assert_eq!(table.number(row, "slim"), Ok(0), "an empty count is 0");
        assert_eq!(table.number(row, "check_code"), Ok(200));
    }

    #[test]
    fn columns_are_found_wherever_they_are() {
        let text = "# svname,status,pxname,scur\nweb1,UP,web_back,7\n";
        let table = Table::parse(text, split_csv).unwrap();
        let row = table
            .row(&[("pxname", "web_back"), ("svname", "web1")])
            .unwrap()
            .unwrap();
        assert_eq!(table.number(row, "scur"), Ok(7));
        assert_eq!(
            table.row(&[("pxname", "web_back"), ("svname", "web9")]),
            Ok(None)
        );
        assert_eq!(table.field(row, "qcur"), Err("no column `qcur`".to_owned()));
        assert!(Table::parse("Unknown command.\n", split_csv).is_err());
    }

    #[test]
    fn quoted_csv_fields_keep_their_commas() {
        assert_eq!(split_csv(r#"a,"b, ""c""",,d"#), ["a", r#"b, "c""#, "", "d"]);
    }

    #[test]
    fn servers_state_gives_the_admin_bits() {
        let table = Table::parse(SERVERS_STATE, split_words).unwrap();
        let admin = |server| {
            let row = table
                .row(&[("be_name", "web_back"), ("srv_name", server)])
                .unwrap()
                .unwrap();
            table.number(row, "srv_admin_state").unwrap() as u32
        };
        assert_eq!(admin("web1") & ADMIN_DRAIN, 8);
        assert_eq!(admin("web1") & ADMIN_MAINT, 0);
        assert_eq!(admin("web2") & ADMIN_MAINT, 1);
        assert_eq!(admin("web3"), 0);
    }

    fn status(text: &str) -> ServerStatus {
        ServerStatus {
            sessions: 0,
            queued: 0,
            status: text.to_owned(),
            check_status: String::new(),
            admin_drain: false,
            admin_maint: false,
        }
    }

    #[test]
    fn up_means_up_by_checks_and_in_rotation() {
        assert!(status("UP").is_up());
        assert!(status("UP").is_fully_up());
        assert!(status("UP 1/2").is_up());
        assert!(!status("UP 1/2").is_fully_up());
        for text in ["DOWN", "DOWN 1/2", "DRAIN", "MAINT", "no check", "NOLB"] {
            assert!(!status(text).is_up(), "{text}");
        }
        let drained = ServerStatus {
            admin_drain: true,
            ..status("UP")
        };
        assert!(!drained.is_up());
    }

    #[test]
    fn names_that_could_break_a_command_line_are_refused() {
        for name in ["web1", "web-2", "web_back", "be.app:8080"] {
            assert_eq!(valid_name(name), Ok(()), "{name}");
        }
        for name in [
            "",
            "web 1",
            "web1\nshutdown sessions server web_back/web2",
            "web1;disable server web_back/web2",
            "web\t1",
            "web_back/web1",
            "wéb",
        ] {
            let error = valid_name(name).unwrap_err();
            assert!(!error.contains('\n'), "{error}");
        }
        assert_eq!(
            valid_name("web1;x").unwrap_err(),
            "`web1;x` is not a HAProxy name: ';' is not allowed (letters, digits, `.`, `:`, `_` and `-` only)"
        );
        assert!(valid_name("a\nb").unwrap_err().contains(r"'\n'"));
        assert!(valid_name(&"a".repeat(MAX_NAME + 1)).is_err());
    }

    #[test]
    fn haproxy_s_error_answers_are_errors_naming_the_server() {
        let answer = |text| {
            refusal(
                "web_back",
                "web9",
                "set server web_back/web9 state drain",
                text,
            )
            .map(|e| e.to_string())
        };
        assert_eq!(answer("\n"), None);
        assert_eq!(
            answer("No such server.\n\n").as_deref(),
            Some("HAProxy has no server web_back/web9: check [unit.lb] members")
        );
        assert_eq!(
            answer("No such backend.\n\n").as_deref(),
            Some("HAProxy has no backend web_back: check [unit.lb] backend")
        );
        assert_eq!(
            answer("Permission denied\n\n").as_deref(),
            Some(
                "HAProxy refused `set server web_back/web9 state drain`: Permission denied (the stats socket needs `level admin`)"
            )
        );
        assert_eq!(
            answer("'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n").as_deref(),
            Some(
                "HAProxy refused `set server web_back/web9 state drain`: 'set server <srv> state' expects 'ready', 'drain' and 'maint'."
            )
        );
    }

    #[tokio::test]
    async fn an_invalid_name_is_refused_before_connecting() {
        let client = Haproxy::new(
            Endpoint::Socket(PathBuf::from("/nonexistent/haproxy.sock")),
            Duration::from_secs(1),
        );
        let error = client
            .set_state("web_back", "web1\nshutdown frontend web", AdminState::Ready)
            .await
            .unwrap_err();
        assert!(matches!(error, HaproxyError::InvalidName(_)), "{error}");
        let error = client.server("web back", "web1").await.unwrap_err();
        assert!(matches!(error, HaproxyError::InvalidName(_)), "{error}");
    }

    #[tokio::test]
    async fn a_silent_endpoint_costs_the_timeout_and_a_flood_is_cut() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // the first connection hangs, the second floods
            let (_silent, _) = listener.accept().await.unwrap();
            let (mut flood, _) = listener.accept().await.unwrap();
            let chunk = vec![b'x'; 64 * 1024];
            while flood.write_all(&chunk).await.is_ok() {}
        });
        let client = Haproxy::new(Endpoint::Address(address), Duration::from_millis(300));
        let error = client.server("web_back", "web1").await.unwrap_err();
        assert!(matches!(error, HaproxyError::Timeout { .. }), "{error}");
        let client = Haproxy::new(Endpoint::Address(address), Duration::from_secs(10));
        let error = client.server("web_back", "web1").await.unwrap_err();
        assert!(matches!(error, HaproxyError::TooLong { .. }), "{error}");
        server.abort();
    }
}
