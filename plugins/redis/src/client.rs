//! A RESP2 connection whose waits all end by one deadline.
//!
//! Plain `std::net::TcpStream`, which works on wasm32-wasip2 with two
//! caveats handled here: `connect` has no timeout (so `connect_timeout` is
//! used), and `connect_timeout` reports success for a refused connection,
//! leaving the refusal in `take_error`. Read and write timeouts work and are
//! set to what is left until the deadline before every wait, so a server
//! that answers byte by byte cannot stretch the check.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use medic_kit::net::{self, NetError};
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::{BorrowedFrame, OwnedFrame};

/// The longest reply read; `INFO replication` is far below it.
const MAX_REPLY: usize = 64 * 1024;

/// Why a command got no usable reply.
#[derive(Debug)]
pub enum Fault {
    /// The deadline passed; holds the whole check's timeout.
    TimedOut(Duration),
    /// The server closed the connection before a whole reply.
    Closed,
    /// The reply does not fit in [`MAX_REPLY`] bytes.
    TooLong,
    /// The bytes are not RESP2.
    Protocol(String),
    /// Any other socket error.
    Io(io::Error),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut(timeout) => write!(f, "no answer within {} ms", timeout.as_millis()),
            Self::Closed => f.write_str("connection closed by the server"),
            Self::TooLong => write!(f, "reply longer than {MAX_REPLY} bytes"),
            Self::Protocol(e) => write!(f, "not a RESP reply: {e}"),
            Self::Io(e) => f.write_str(&describe_io(e)),
        }
    }
}

/// One connection to a redis server.
pub struct Connection {
    /// The socket.
    stream: TcpStream,
    /// When every wait must have ended.
    deadline: Instant,
    /// The timeout the deadline came from, for messages.
    timeout: Duration,
    /// Bytes read but not yet decoded.
    buf: Vec<u8>,
}

impl Connection {
    /// Resolves `host` and connects to the first of its addresses that
    /// accepts, all within `timeout`, which then also bounds every
    /// [`Connection::call`]. The error is the reason for the admin.
    pub fn open(host: &str, port: u16, timeout: Duration) -> Result<Self, String> {
        let deadline = Instant::now() + timeout;
        let target = display_address(host, port);
        let addrs = resolve(host, port, deadline, timeout)?;
        let mut last = Fault::Protocol(format!("{host} resolves to no address"));
        for addr in addrs {
            let Some(left) = left_until(deadline) else {
                last = Fault::TimedOut(timeout);
                break;
            };
            match connect_one(&addr, left) {
                Ok(stream) => {
                    return Ok(Self {
                        stream,
                        deadline,
                        timeout,
                        buf: Vec::new(),
                    });
                }
                Err(e) => last = io_fault(e, timeout),
            }
        }
        Err(format!("connect {target}: {last}"))
    }

    /// Sends one command and reads its reply. An error reply (`-ERR ...`)
    /// is a reply, returned as [`OwnedFrame::Error`].
    pub fn call(&mut self, args: &[&[u8]]) -> Result<OwnedFrame, Fault> {
        self.send(args)?;
        self.receive()
    }

    /// Writes one command as an array of bulk strings.
    fn send(&mut self, args: &[&[u8]]) -> Result<(), Fault> {
        let request = encode_command(args)?;
        let left = self.left()?;
        self.stream
            .set_write_timeout(Some(left))
            .map_err(|e| io_fault(e, self.timeout))?;
        self.stream
            .write_all(&request)
            .map_err(|e| io_fault(e, self.timeout))
    }

    /// Reads until one whole reply has arrived, and returns it.
    fn receive(&mut self) -> Result<OwnedFrame, Fault> {
        loop {
            if let Some((frame, used)) = decode(&self.buf).map_err(protocol_fault)? {
                self.buf.drain(..used);
                return Ok(frame);
            }
            if self.buf.len() >= MAX_REPLY {
                return Err(Fault::TooLong);
            }
            self.read_more()?;
        }
    }

    /// Appends what one read brings, waiting at most until the deadline.
    fn read_more(&mut self) -> Result<(), Fault> {
        let left = self.left()?;
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| io_fault(e, self.timeout))?;
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(Fault::Closed),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(io_fault(e, self.timeout)),
        }
    }

    /// The time left until the deadline; an error once it has passed.
    fn left(&self) -> Result<Duration, Fault> {
        left_until(self.deadline).ok_or(Fault::TimedOut(self.timeout))
    }
}

/// The time left until `deadline`, or `None` once nothing is left (a zero
/// socket timeout would mean "wait forever" to some platforms).
fn left_until(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
}

/// Encodes `args` as a RESP2 array of bulk strings, the form every redis
/// command takes.
pub fn encode_command(args: &[&[u8]]) -> Result<Vec<u8>, Fault> {
    let parts: Vec<BorrowedFrame<'_>> = args.iter().map(|a| BorrowedFrame::BulkString(a)).collect();
    let frame = BorrowedFrame::Array(&parts);
    let mut buf = vec![0u8; frame.encode_len(false)];
    let len = encode_borrowed(&mut buf, &frame, false).map_err(protocol_fault)?;
    buf.truncate(len);
    Ok(buf)
}

/// Connects to one address. On wasm32-wasip2, `connect_timeout` returns
/// `Ok` for a refused connection and leaves the refusal in `SO_ERROR`, so
/// that is checked before the stream counts as connected.
fn connect_one(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(addr, timeout)?;
    match stream.take_error()? {
        Some(e) => Err(e),
        None => Ok(stream),
    }
}

/// `host:port` as an admin writes it in `[grants] connect`.
fn display_address(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    }
}

/// The addresses of `host`: itself when it is an IP address, else a name
/// lookup that ends by `deadline` (the SDK's, through `wasi:sockets`).
fn resolve(
    host: &str,
    port: u16,
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let left_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
    let ips = net::lookup(host, net::deadline_after(left_ms)).map_err(|e| match e {
        NetError::TimedOut => format!("lookup of {host}: {}", Fault::TimedOut(timeout)),
        NetError::Closed => format!("lookup of {host}: closed"),
        NetError::Failed(reason) => reason,
    })?;
    Ok(ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

/// Classifies a socket error; a timeout of a read or write is
/// `WouldBlock` on wasm32-wasip2 and on unix, `TimedOut` on others.
fn io_fault(e: io::Error, timeout: Duration) -> Fault {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Fault::TimedOut(timeout),
        ErrorKind::UnexpectedEof => Fault::Closed,
        _ => Fault::Io(e),
    }
}

/// Wraps a RESP codec error.
fn protocol_fault(e: redis_protocol::error::RedisProtocolError) -> Fault {
    Fault::Protocol(e.details().to_string())
}

/// Words the common socket errors for the admin, without `(os error N)`.
fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::ConnectionReset => "connection reset by the server".into(),
        ErrorKind::ConnectionAborted => "connection aborted".into(),
        ErrorKind::NotConnected => "not connected".into(),
        ErrorKind::BrokenPipe => "connection closed by the server".into(),
        ErrorKind::AddrNotAvailable => "address not available".into(),
        ErrorKind::PermissionDenied => "not permitted (is it in `[grants] connect`?)".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use super::*;

    /// A server on a loopback port that reads one request, then plays
    /// `script`: `Some(bytes)` writes them, `None` pauses 50 ms.
    fn server(script: Vec<Option<&'static [u8]>>) -> (u16, thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = vec![0u8; 256];
            let n = stream.read(&mut request).unwrap();
            request.truncate(n);
            for step in script {
                match step {
                    Some(bytes) => stream.write_all(bytes).unwrap(),
                    None => thread::sleep(Duration::from_millis(50)),
                }
            }
            thread::sleep(Duration::from_millis(400));
            request
        });
        (port, handle)
    }

    /// Connects to the test server on `port` with a `ms` timeout.
    fn open(port: u16, ms: u64) -> Connection {
        Connection::open("127.0.0.1", port, Duration::from_millis(ms)).unwrap()
    }

    #[test]
    fn encodes_commands_as_bulk_string_arrays() {
        let wire = encode_command(&[b"AUTH", b"alice", b"p a\r\ns"]).unwrap();
        assert_eq!(
            wire,
            b"*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$6\r\np a\r\ns\r\n".to_vec()
        );
    }

    #[test]
    fn reads_a_reply_that_arrives_in_pieces() {
        let (port, server) = server(vec![Some(b"+PO"), None, Some(b"NG\r\n")]);
        let mut conn = open(port, 2000);
        let reply = conn.call(&[b"PING"]).unwrap();
        assert_eq!(reply, OwnedFrame::SimpleString(b"PONG".to_vec()));
        assert_eq!(server.join().unwrap(), b"*1\r\n$4\r\nPING\r\n".to_vec());
    }

    #[test]
    fn reads_a_bulk_reply_and_errors_as_replies() {
        let (port, _server) = server(vec![Some(b"$5\r\nab"), None, Some(b"\r\nc\r\n")]);
        let reply = open(port, 2000).call(&[b"INFO"]).unwrap();
        assert_eq!(reply, OwnedFrame::BulkString(b"ab\r\nc".to_vec()));

        let (port, _server) = server(vec![Some(b"-LOADING Redis is loading\r\n")]);
        let reply = open(port, 2000).call(&[b"PING"]).unwrap();
        assert_eq!(reply, OwnedFrame::Error("LOADING Redis is loading".into()));
    }

    #[test]
    fn a_silent_server_times_out_at_the_deadline() {
        let (port, _server) = server(vec![]);
        let started = Instant::now();
        let fault = open(port, 150).call(&[b"PING"]).unwrap_err();
        let took = started.elapsed();
        assert!(matches!(fault, Fault::TimedOut(_)), "{fault:?}");
        assert_eq!(fault.to_string(), "no answer within 150 ms");
        assert!(took >= Duration::from_millis(140), "{took:?}");
        assert!(took < Duration::from_millis(400), "{took:?}");
    }

    #[test]
    fn a_dribbling_server_cannot_stretch_the_deadline() {
        let (port, _server) = server(vec![Some(b"+"), None, Some(b"P"), None, Some(b"O"), None]);
        let started = Instant::now();
        let fault = open(port, 120).call(&[b"PING"]).unwrap_err();
        assert!(matches!(fault, Fault::TimedOut(_)), "{fault:?}");
        assert!(started.elapsed() < Duration::from_millis(300));
    }

    #[test]
    fn a_closed_connection_and_garbage_are_faults() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let closer = thread::spawn(move || drop(listener.accept().unwrap()));
        let mut conn = open(port, 2000);
        closer.join().unwrap();
        let fault = conn.call(&[b"PING"]).unwrap_err();
        assert!(matches!(fault, Fault::Closed | Fault::Io(_)), "{fault:?}");

        let (port, _server) = server(vec![Some(b"HTTP/1.1 400 Bad Request\r\n")]);
        let fault = open(port, 2000).call(&[b"PING"]).unwrap_err();
        assert!(matches!(fault, Fault::Protocol(_)), "{fault:?}");
    }

    #[test]
    fn a_refused_connection_says_so() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = Connection::open("127.0.0.1", port, Duration::from_secs(1))
            .err()
            .unwrap();
        assert_eq!(err, format!("connect 127.0.0.1:{port}: connection refused"));
    }

    #[test]
    fn addresses_are_shown_as_granted() {
        assert_eq!(display_address("::1", 6379), "[::1]:6379");
        assert_eq!(display_address("cache.lan", 6380), "cache.lan:6380");
    }
}
