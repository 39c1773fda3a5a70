//! The PostgreSQL side of a check: start-up, authentication and simple
//! queries, with messages encoded, decoded and authenticated by
//! `postgres-protocol`.
//!
//! Everything here works on a [`Transport`], so the conversation can be
//! tested against a scripted server.

use std::fmt;
use std::io;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::{
    AuthenticationSaslBody, DataRowBody, ErrorResponseBody, Message,
};
use postgres_protocol::message::frontend;

use medic_kit::net::{Conn, NetError};

/// Moves bytes to and from the server.
pub trait Transport {
    /// Sends all of `bytes`.
    fn send(&mut self, bytes: &[u8]) -> Result<(), NetError>;
    /// Appends at least one byte from the server to `buf`.
    fn recv(&mut self, buf: &mut BytesMut) -> Result<(), NetError>;
}

impl Transport for Conn {
    fn send(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        Conn::send(self, bytes)
    }

    fn recv(&mut self, buf: &mut BytesMut) -> Result<(), NetError> {
        let mut chunk = Vec::new();
        Conn::recv(self, &mut chunk)?;
        buf.extend_from_slice(&chunk);
        Ok(())
    }
}

/// Why a conversation with the server ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The connection failed, closed or timed out.
    Net(NetError),
    /// The server answered with an error.
    Server(ServerError),
    /// The server asked for something the kit cannot do, or sent something
    /// that is not PostgreSQL; worded for the admin.
    Protocol(String),
}

impl From<NetError> for Error {
    fn from(e: NetError) -> Self {
        Self::Net(e)
    }
}

/// An `ErrorResponse` from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The SQLSTATE code, e.g. `28P01`.
    pub code: String,
    /// The primary message, e.g. `password authentication failed for user "app"`.
    pub message: String,
}

impl ServerError {
    /// Reads the code and message fields of an `ErrorResponse`.
    fn parse(body: &ErrorResponseBody) -> Self {
        let mut error = Self {
            code: String::new(),
            message: String::new(),
        };
        let mut fields = body.fields();
        while let Ok(Some(field)) = fields.next() {
            let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
            match field.type_() {
                b'C' => error.code = value,
                b'M' => error.message = value,
                _ => {}
            }
        }
        if error.message.is_empty() {
            error.message = "error without a message".into();
        }
        error
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Who logs in where, and with which password.
pub struct Login<'a> {
    /// The role to log in as.
    pub user: &'a str,
    /// The database to connect to.
    pub database: &'a str,
    /// The password, when the server may ask for one.
    pub password: Option<&'a [u8]>,
}

/// The server's state, as the kit's state query reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerState {
    /// `pg_is_in_recovery()`: a standby, or a primary replaying WAL.
    pub in_recovery: bool,
    /// `transaction_read_only` of a new transaction: the server takes no
    /// writes from this user (in recovery, or `default_transaction_read_only`).
    pub read_only: bool,
}

/// Reads both parts of [`ServerState`] in one round trip.
pub const STATE_QUERY: &str =
    "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')";

/// One row of a result in text format; `None` is SQL NULL.
type Row = Vec<Option<String>>;

/// A connection speaking the PostgreSQL protocol over a [`Transport`].
pub struct Wire<T> {
    /// Where the bytes go.
    transport: T,
    /// Bytes received and not yet parsed into a message.
    buf: BytesMut,
}

impl<T: Transport> Wire<T> {
    /// Wraps a fresh connection.
    pub fn new(transport: T) -> Self {
        Self {
            transport,
            buf: BytesMut::new(),
        }
    }

    /// Encodes one frontend message with `build` and sends it.
    fn send<F>(&mut self, build: F) -> Result<(), Error>
    where
        F: FnOnce(&mut BytesMut) -> io::Result<()>,
    {
        let mut out = BytesMut::new();
        build(&mut out).map_err(|e| Error::Protocol(format!("cannot encode a message: {e}")))?;
        Ok(self.transport.send(&out)?)
    }

    /// The next message from the server, waiting for more bytes as needed.
    fn next(&mut self) -> Result<Message, Error> {
        loop {
            let parsed = Message::parse(&mut self.buf)
                .map_err(|e| Error::Protocol(format!("not a PostgreSQL answer ({e})")))?;
            if let Some(message) = parsed {
                return Ok(message);
            }
            self.transport.recv(&mut self.buf)?;
        }
    }

    /// Starts a session: start-up message, authentication, and the
    /// server's parameters up to its first `ReadyForQuery`.
    pub fn login(&mut self, login: &Login<'_>) -> Result<(), Error> {
        let parameters = [
            ("user", login.user),
            ("database", login.database),
            ("application_name", "medic"),
            ("client_encoding", "UTF8"),
        ];
        self.send(|out| frontend::startup_message(parameters, out))?;
        self.authenticate(login)?;
        self.until_ready()
    }

    /// Answers the server's authentication requests until it says `Ok`.
    fn authenticate(&mut self, login: &Login<'_>) -> Result<(), Error> {
        loop {
            match self.next()? {
                Message::AuthenticationOk => return Ok(()),
                Message::AuthenticationCleartextPassword => {
                    let password = need_password(login, "a password")?;
                    self.send(|out| frontend::password_message(password, out))?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let password = need_password(login, "an md5 password")?;
                    let hash = md5_hash(login.user.as_bytes(), password, body.salt());
                    self.send(|out| frontend::password_message(hash.as_bytes(), out))?;
                }
                Message::AuthenticationSasl(body) => {
                    let password = need_password(login, "a SCRAM password")?;
                    self.scram(&body, password)?;
                }
                Message::ErrorResponse(body) => {
                    return Err(Error::Server(ServerError::parse(&body)));
                }
                other => return Err(unsupported_auth(&other)),
            }
        }
    }

    /// Runs a SCRAM-SHA-256 exchange up to the server's final message,
    /// whose signature proves that the server knows the password too.
    fn scram(&mut self, offer: &AuthenticationSaslBody, password: &[u8]) -> Result<(), Error> {
        let mechanisms: Vec<&str> = offer
            .mechanisms()
            .collect()
            .map_err(|e| Error::Protocol(format!("bad SASL offer ({e})")))?;
        if !mechanisms.contains(&SCRAM_SHA_256) {
            return Err(Error::Protocol(format!(
                "server offers SASL {}, the kit speaks {SCRAM_SHA_256} only",
                mechanisms.join(", ")
            )));
        }
        // No TLS, so no channel binding to offer.
        let mut scram = ScramSha256::new(password, ChannelBinding::unsupported());
        self.send(|out| frontend::sasl_initial_response(SCRAM_SHA_256, scram.message(), out))?;
        let Message::AuthenticationSaslContinue(body) = self.expect_auth()? else {
            return Err(unexpected("SCRAM"));
        };
        scram.update(body.data()).map_err(bad_scram)?;
        self.send(|out| frontend::sasl_response(scram.message(), out))?;
        let Message::AuthenticationSaslFinal(body) = self.expect_auth()? else {
            return Err(unexpected("SCRAM"));
        };
        scram.finish(body.data()).map_err(bad_scram)
    }

    /// The next message, unless it is an error, which becomes [`Error::Server`].
    fn expect_auth(&mut self) -> Result<Message, Error> {
        match self.next()? {
            Message::ErrorResponse(body) => Err(Error::Server(ServerError::parse(&body))),
            message => Ok(message),
        }
    }

    /// Reads messages up to `ReadyForQuery`; an error ends the wait.
    fn until_ready(&mut self) -> Result<(), Error> {
        loop {
            match self.next()? {
                Message::ReadyForQuery(_) => return Ok(()),
                Message::ErrorResponse(body) => {
                    return Err(Error::Server(ServerError::parse(&body)));
                }
                _ => {}
            }
        }
    }

    /// Runs `sql` with the simple query protocol and returns its first row
    /// (of the first statement that returns rows), if any. An error
    /// response ends the query with [`Error::Server`].
    pub fn query(&mut self, sql: &str) -> Result<Option<Row>, Error> {
        self.send(|out| frontend::query(sql, out))?;
        let mut first = None;
        loop {
            match self.next()? {
                Message::ReadyForQuery(_) => return Ok(first),
                Message::ErrorResponse(body) => {
                    return Err(Error::Server(ServerError::parse(&body)));
                }
                Message::DataRow(row) if first.is_none() => first = Some(decode_row(&row)?),
                Message::CopyInResponse(_) => {
                    // The server would wait for data forever: refuse, and
                    // the server answers with an error.
                    self.send(|out| frontend::copy_fail("medic sends no COPY data", out))?;
                }
                _ => {}
            }
        }
    }

    /// Reads whether the server is in recovery and read-only.
    pub fn server_state(&mut self) -> Result<ServerState, Error> {
        let row = self.query(STATE_QUERY)?.unwrap_or_default();
        match row.as_slice() {
            [Some(recovery), Some(read_only)] => Ok(ServerState {
                in_recovery: recovery == "t",
                read_only: read_only == "on",
            }),
            _ => Err(Error::Protocol(format!(
                "unexpected answer to `{STATE_QUERY}`: {row:?}"
            ))),
        }
    }

    /// Says goodbye, so the server logs a clean disconnect; errors are
    /// ignored, the check is over.
    pub fn terminate(mut self) {
        let mut out = BytesMut::new();
        frontend::terminate(&mut out);
        let _ = self.transport.send(&out);
    }
}

/// The password, or the reason there is none for the server's `request`.
fn need_password<'a>(login: &Login<'a>, request: &str) -> Result<&'a [u8], Error> {
    login.password.ok_or_else(|| {
        Error::Protocol(format!(
            "server asks for {request} but setting `password_file` is not set"
        ))
    })
}

/// Names an authentication method the kit does not speak.
fn unsupported_auth(message: &Message) -> Error {
    let method = match message {
        Message::AuthenticationGss | Message::AuthenticationGssContinue(_) => "GSSAPI",
        Message::AuthenticationKerberosV5 => "Kerberos V5",
        Message::AuthenticationSspi => "SSPI",
        Message::AuthenticationScmCredential => "SCM credentials",
        _ => return unexpected("authentication"),
    };
    Error::Protocol(format!(
        "server asks for {method} authentication, which the kit does not speak \
         (use trust, md5, scram-sha-256 or password)"
    ))
}

/// A message that has no place at this step of `step`.
fn unexpected(step: &str) -> Error {
    Error::Protocol(format!("unexpected message from the server during {step}"))
}

/// A SCRAM message that does not check out.
fn bad_scram(e: io::Error) -> Error {
    Error::Protocol(format!("SCRAM exchange failed: {e}"))
}

/// Decodes a text-format data row.
fn decode_row(row: &DataRowBody) -> Result<Row, Error> {
    let buffer = row.buffer();
    row.ranges()
        .map(|range| {
            Ok(range
                .and_then(|r| buffer.get(r))
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned()))
        })
        .collect()
        .map_err(|e: io::Error| Error::Protocol(format!("bad data row ({e})")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::VecDeque;

    use bytes::BufMut;

    use super::*;

    /// A server that answers from a script and records what it got.
    struct Scripted {
        /// Replies, one per `recv`.
        replies: VecDeque<Vec<u8>>,
        /// Everything sent, one entry per `send`.
        sent: Vec<Vec<u8>>,
    }

    impl Transport for &mut Scripted {
        fn send(&mut self, bytes: &[u8]) -> Result<(), NetError> {
            self.sent.push(bytes.to_vec());
            Ok(())
        }

        fn recv(&mut self, buf: &mut BytesMut) -> Result<(), NetError> {
            let reply = self.replies.pop_front().ok_or(NetError::TimedOut)?;
            buf.extend_from_slice(&reply);
            Ok(())
        }
    }

    fn script(replies: &[Vec<u8>]) -> Scripted {
        Scripted {
            replies: replies.iter().cloned().collect(),
            sent: Vec::new(),
        }
    }

    /// A backend message: tag, length, body.
    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.put_i32(i32::try_from(body.len() + 4).unwrap());
        out.extend_from_slice(body);
        out
    }

    fn auth(code: i32, extra: &[u8]) -> Vec<u8> {
        let mut body = code.to_be_bytes().to_vec();
        body.extend_from_slice(extra);
        msg(b'R', &body)
    }

    fn ready() -> Vec<u8> {
        msg(b'Z', b"I")
    }

    fn error(code: &str, message: &str) -> Vec<u8> {
        let body = format!("SFATAL\0C{code}\0M{message}\0\0");
        msg(b'E', body.as_bytes())
    }

    fn data_row(values: &[Option<&str>]) -> Vec<u8> {
        let mut body = i16::try_from(values.len()).unwrap().to_be_bytes().to_vec();
        for value in values {
            match value {
                None => body.put_i32(-1),
                Some(v) => {
                    body.put_i32(i32::try_from(v.len()).unwrap());
                    body.extend_from_slice(v.as_bytes());
                }
            }
        }
        msg(b'D', &body)
    }

    const LOGIN: Login<'static> = Login {
        user: "app",
        database: "app",
        password: Some(b"secret"),
    };

    #[test]
    fn trust_login_then_query() {
        let mut server = script(&[
            [
                auth(0, b""),
                msg(b'S', b"server_version\x0015.0\0"),
                ready(),
            ]
            .concat(),
            [msg(b'C', b"SELECT 1\0"), data_row(&[Some("1")]), ready()].concat(),
        ]);
        let mut wire = Wire::new(&mut server);
        wire.login(&LOGIN).unwrap();
        assert_eq!(
            wire.query("SELECT 1").unwrap(),
            Some(vec![Some("1".into())])
        );
        wire.terminate();
        assert_eq!(server.sent.len(), 3);
        assert_eq!(server.sent[2], b"X\0\0\0\x04");
    }

    #[test]
    fn md5_login_sends_the_hash() {
        let salt = [1, 2, 3, 4];
        let mut server = script(&[auth(5, &salt), [auth(0, b""), ready()].concat()]);
        Wire::new(&mut server).login(&LOGIN).unwrap();
        let expected = md5_hash(b"app", b"secret", salt);
        let sent = &server.sent[1];
        assert_eq!(sent[0], b'p');
        assert_eq!(&sent[5..sent.len() - 1], expected.as_bytes());
    }

    #[test]
    fn wrong_password_is_a_server_error() {
        let mut server = script(&[
            auth(3, b""),
            error("28P01", "password authentication failed for user \"app\""),
        ]);
        let err = Wire::new(&mut server).login(&LOGIN).unwrap_err();
        let Error::Server(e) = err else {
            panic!("{err:?}")
        };
        assert_eq!(e.code, "28P01");
        assert_eq!(
            e.to_string(),
            "password authentication failed for user \"app\""
        );
    }

    #[test]
    fn password_request_without_password_file() {
        let mut server = script(&[auth(10, b"SCRAM-SHA-256\0\0")]);
        let login = Login {
            password: None,
            ..LOGIN
        };
        let err = Wire::new(&mut server).login(&login).unwrap_err();
        assert_eq!(
            err,
            Error::Protocol(
                "server asks for a SCRAM password but setting `password_file` is not set".into()
            )
        );
    }

    #[test]
    fn gssapi_is_named() {
        let mut server = script(&[auth(7, b"")]);
        let err = Wire::new(&mut server).login(&LOGIN).unwrap_err();
        let Error::Protocol(text) = err else {
            panic!("{err:?}")
        };
        assert!(text.contains("GSSAPI"), "{text}");
    }

    #[test]
    fn query_error_and_silence() {
        let mut server = script(&[error("42P01", "relation \"x\" does not exist")]);
        let err = Wire::new(&mut server).query("SELECT * FROM x").unwrap_err();
        assert!(
            matches!(err, Error::Server(ref e) if e.code == "42P01"),
            "{err:?}"
        );

        let mut silent = script(&[]);
        let err = Wire::new(&mut silent).query("SELECT 1").unwrap_err();
        assert_eq!(err, Error::Net(NetError::TimedOut));
    }

    #[test]
    fn state_row_is_read() {
        let mut server = script(&[[data_row(&[Some("t"), Some("on")]), ready()].concat()]);
        let state = Wire::new(&mut server).server_state().unwrap();
        assert_eq!(
            state,
            ServerState {
                in_recovery: true,
                read_only: true
            }
        );
        let mut server = script(&[[data_row(&[Some("f"), None]), ready()].concat()]);
        assert!(Wire::new(&mut server).server_state().is_err());
    }
}
