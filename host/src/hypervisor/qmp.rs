//! QEMU Machine Protocol: JSON lines over a unix socket or TCP.
//!
//! Each operation opens its own session (greeting, `qmp_capabilities`, its
//! commands), so a monitor that QEMU restarted or another client used never
//! leaves medic with a stale connection at the moment it must reset. A
//! reset is verified by the `RESET` event QEMU sends on the same session.

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::{ErrorKind, Hypervisor, HypervisorError, PowerState};
use crate::config::QmpTarget;

/// Resets the VM through its QMP monitor.
#[derive(Debug, Clone)]
pub struct Qmp {
    target: QmpTarget,
}

/// A transport QMP can run over.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The monitor could not be reached or stopped answering: try later.
fn unreachable(message: String) -> HypervisorError {
    HypervisorError::new(ErrorKind::Unreachable, message)
}

/// The monitor said something that is not QMP.
fn protocol(message: String) -> HypervisorError {
    HypervisorError::new(ErrorKind::Protocol, message)
}

/// At most this many bytes of one message. What medic asks for is answered
/// in a few hundred; a monitor that sends more without a newline is not
/// speaking QMP, and is not allowed to fill medic's memory.
const MESSAGE_MAX: usize = 1 << 20;

/// One message from the monitor: each of QMP's four kinds, with what medic
/// needs of it.
#[derive(Debug, Clone, PartialEq)]
enum Message {
    /// The greeting that opens a session (`{"QMP": {...}}`).
    Greeting,
    /// A command's answer: its `return` value.
    Return(Value),
    /// A command's failure: QEMU's class and description.
    Error(String),
    /// An asynchronous event (`RESET`, `STOP`...), by name.
    Event(String),
}

impl Message {
    /// Reads one line the monitor sent. Anything but a JSON object of one
    /// of QMP's kinds is a protocol error that quotes the line (escaped and
    /// cut to 1 KiB), whatever bytes it holds.
    fn parse(line: &[u8]) -> Result<Self, HypervisorError> {
        let bad = |why: String| {
            let said = String::from_utf8_lossy(line);
            protocol(format!(
                "qmp: {why}: \"{}\"",
                crate::sandbox::tame_text(said.trim())
            ))
        };
        let not_qmp = || bad("the monitor sent JSON that is not a QMP message".to_owned());
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| bad(format!("the monitor sent something that is not JSON ({e})")))?;
        let Value::Object(message) = value else {
            return Err(not_qmp());
        };
        if let Some(event) = message.get("event") {
            return match event.as_str() {
                Some(name) => Ok(Self::Event(name.to_owned())),
                None => Err(bad("the monitor sent an event without a name".to_owned())),
            };
        }
        if let Some(error) = message.get("error") {
            let text = |key| error.get(key).and_then(Value::as_str);
            let said = match (text("class"), text("desc")) {
                (Some(class), Some(desc)) => format!("{class}: {desc}"),
                (None, Some(desc)) => desc.to_owned(),
                _ => error.to_string(),
            };
            return Ok(Self::Error(crate::sandbox::tame_text(&said)));
        }
        if let Some(answer) = message.get("return") {
            return Ok(Self::Return(answer.clone()));
        }
        if message.contains_key("QMP") {
            return Ok(Self::Greeting);
        }
        Err(not_qmp())
    }

    /// The message as an error names it (escaped and cut to 1 KiB).
    fn describe(&self) -> String {
        match self {
            Self::Greeting => "a greeting".to_owned(),
            Self::Return(answer) => {
                format!(
                    "an answer {}",
                    crate::sandbox::tame_text(&answer.to_string())
                )
            }
            Self::Error(error) => format!("an error ({error})"),
            Self::Event(name) => format!("event {}", crate::sandbox::tame_text(name)),
        }
    }
}

/// One negotiated QMP session.
struct Session {
    read: BufReader<tokio::io::ReadHalf<Box<dyn Stream>>>,
    write: tokio::io::WriteHalf<Box<dyn Stream>>,
    /// Names of the events that arrived while a command's answer was
    /// awaited.
    events: Vec<String>,
}

impl Session {
    /// Connects, reads the greeting and negotiates capabilities.
    async fn open(target: &QmpTarget) -> Result<Self, HypervisorError> {
        let stream: Box<dyn Stream> = match target {
            QmpTarget::Socket(path) => Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| unreachable(format!("qmp: connect {}: {e}", path.display())))?,
            ),
            QmpTarget::Address(address) => Box::new(
                tokio::net::TcpStream::connect(address.as_str())
                    .await
                    .map_err(|e| unreachable(format!("qmp: connect {address}: {e}")))?,
            ),
        };
        Self::over(stream).await
    }

    /// Reads the greeting on `stream` and negotiates capabilities.
    async fn over(stream: Box<dyn Stream>) -> Result<Self, HypervisorError> {
        let (read, write) = tokio::io::split(stream);
        let mut session = Self {
            read: BufReader::new(read),
            write,
            events: Vec::new(),
        };
        match session.next_message().await? {
            Message::Greeting => {}
            other => {
                return Err(protocol(format!(
                    "qmp: the monitor did not greet first, it sent {}",
                    other.describe()
                )));
            }
        }
        session.call("qmp_capabilities").await?;
        Ok(session)
    }

    /// Sends one command and returns its `return` value.
    async fn call(&mut self, execute: &str) -> Result<Value, HypervisorError> {
        let mut line = json!({ "execute": execute }).to_string();
        line.push('\n');
        self.write
            .write_all(line.as_bytes())
            .await
            .map_err(|e| unreachable(format!("qmp: send {execute}: {e}")))?;
        loop {
            match self.next_message().await? {
                Message::Return(answer) => return Ok(answer),
                Message::Error(error) => {
                    return Err(HypervisorError::new(
                        ErrorKind::Failed,
                        format!("qmp: {execute}: {error}"),
                    ));
                }
                // Asynchronous events (RESET, STOP...) may come first.
                Message::Event(name) => self.events.push(name),
                Message::Greeting => {
                    return Err(protocol(format!(
                        "qmp: {execute}: the monitor greeted again instead of answering"
                    )));
                }
            }
        }
    }

    /// Waits for the asynchronous event named `name`; what else comes
    /// meanwhile is passed over.
    async fn event(&mut self, name: &str) -> Result<(), HypervisorError> {
        if let Some(at) = self.events.iter().position(|event| event == name) {
            self.events.swap_remove(at);
            return Ok(());
        }
        loop {
            if let Message::Event(event) = self.next_message().await?
                && event == name
            {
                return Ok(());
            }
        }
    }

    /// Reads the next message of the session: one line of at most
    /// [`MESSAGE_MAX`] bytes.
    async fn next_message(&mut self) -> Result<Message, HypervisorError> {
        let mut line = Vec::new();
        let limit = u64::try_from(MESSAGE_MAX + 1).unwrap_or(u64::MAX);
        let read = (&mut self.read)
            .take(limit)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| unreachable(format!("qmp: read: {e}")))?;
        if read == 0 {
            return Err(unreachable(
                "qmp: the monitor closed the connection".to_owned(),
            ));
        }
        if line.len() > MESSAGE_MAX {
            return Err(protocol(format!(
                "qmp: the monitor sent a line longer than {MESSAGE_MAX} bytes"
            )));
        }
        Message::parse(&line)
    }
}

impl Qmp {
    /// A backend talking to the monitor at `target`.
    pub fn new(target: QmpTarget) -> Self {
        Self { target }
    }
}

#[async_trait::async_trait]
impl Hypervisor for Qmp {
    fn name(&self) -> &'static str {
        "qmp"
    }

    async fn identify(&self) -> Result<String, HypervisorError> {
        let mut session = Session::open(&self.target).await?;
        let name = session.call("query-name").await?;
        let uuid = session.call("query-uuid").await?;
        let name = name.get("name").and_then(Value::as_str).unwrap_or("");
        let uuid = uuid.get("UUID").and_then(Value::as_str).unwrap_or("");
        let monitor = match &self.target {
            QmpTarget::Socket(path) => path.display().to_string(),
            QmpTarget::Address(address) => address.clone(),
        };
        Ok(match name {
            "" => format!("QEMU uuid {uuid} at {monitor}"),
            name => format!("QEMU `{name}` uuid {uuid} at {monitor}"),
        })
    }

    async fn power_state(&self) -> Result<PowerState, HypervisorError> {
        let status = Session::open(&self.target)
            .await?
            .call("query-status")
            .await?;
        Ok(match status.get("status").and_then(Value::as_str) {
            Some("running") => PowerState::On,
            Some("shutdown") => PowerState::Off,
            Some("paused" | "suspended") => PowerState::Suspended,
            _ => PowerState::Unknown,
        })
    }

    async fn reset(&self) -> Result<String, HypervisorError> {
        let mut session = Session::open(&self.target).await?;
        session.call("system_reset").await?;
        session.event("RESET").await?;
        Ok("QEMU sent the RESET event".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_kind_of_message() {
        let parse = |line: &str| Message::parse(line.as_bytes());
        assert_eq!(
            parse("{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n").unwrap(),
            Message::Greeting
        );
        assert_eq!(
            parse("{\"return\": {\"status\": \"running\"}}").unwrap(),
            Message::Return(json!({"status": "running"}))
        );
        assert_eq!(
            parse("{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}").unwrap(),
            Message::Error("GenericError: no".to_owned())
        );
        assert_eq!(
            parse("{\"event\": \"RESET\", \"data\": {\"guest\": true}}").unwrap(),
            Message::Event("RESET".to_owned())
        );
        for bad in ["", "[]", "{\"event\": 7}", "{}", "\u{1b}[2J", "{\"return\""] {
            let error = parse(bad).unwrap_err();
            assert_eq!(error.kind, ErrorKind::Protocol, "{bad:?}: {error}");
            assert!(!error.message.contains('\u{1b}'), "{error}");
        }
    }

    /// Runs what `reset` does (greeting, capabilities, `system_reset`, the
    /// `RESET` event) against a monitor that sends `output` and then
    /// closes the connection.
    fn reset_against(output: Vec<u8>) -> Result<(), HypervisorError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (client, mut monitor) = tokio::io::duplex(64 * 1024);
            tokio::spawn(async move {
                let _ = monitor.write_all(&output).await;
                // Closed once what it sent has been read.
                let _ = monitor.shutdown().await;
                let mut sink = Vec::new();
                let _ = monitor.read_to_end(&mut sink).await;
            });
            let session = async {
                let mut session = Session::over(Box::new(client)).await?;
                session.call("system_reset").await?;
                session.event("RESET").await
            };
            tokio::time::timeout(std::time::Duration::from_secs(10), session)
                .await
                .expect("a session with a closed monitor ends")
        })
    }

    #[test]
    fn a_session_ends_in_a_reset_or_the_reason_why() {
        let output = "{\"QMP\": {}}\r\n{\"return\": {}}\r\n{\"event\": \"STOP\"}\r\n\
                      {\"return\": {}}\r\n{\"event\": \"RESET\"}\r\n";
        reset_against(output.into()).unwrap();
        let error = reset_against(b"{\"QMP\": {}}\n".to_vec()).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unreachable, "{error}");
        let error = reset_against(vec![b'{'; MESSAGE_MAX + 2]).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Protocol, "{error}");
        assert!(error.message.len() < 200, "{error}");
    }

    mod any_output {
        use super::*;
        use proptest::prelude::*;

        /// Lines a real, a broken or a hostile monitor could send, so a
        /// session gets past its greeting and its answers.
        fn qmpish() -> impl Strategy<Value = Vec<u8>> {
            let line = prop_oneof![
                prop::sample::select(vec![
                    "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n",
                    "{\"return\": {}}\r\n",
                    "{\"return\": 7}\n",
                    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}}\n",
                    "{\"error\": null}\n",
                    "{\"event\": \"RESET\"}\n",
                    "{\"event\": \"STOP\", \"data\": {}}\n",
                    "{\"event\": [\"RESET\"]}\n",
                    "{\"QMP\": 1, \"return\": {}}\n",
                    "[]\n",
                    "\n",
                    "\r\n",
                ])
                .prop_map(|line| line.as_bytes().to_vec()),
                prop::collection::vec(any::<u8>(), 0..64),
            ];
            prop::collection::vec(line, 0..12).prop_map(|lines| lines.concat())
        }

        /// What every outcome must be: done, or an error that says it
        /// comes from QMP, short whatever the monitor sent. (That it ends
        /// at all, without a panic, is the rest of the property.)
        fn judged(result: Result<(), HypervisorError>) -> Result<(), TestCaseError> {
            if let Err(error) = result {
                prop_assert!(!error.message.is_empty());
                prop_assert!(error.message.starts_with("qmp: "), "{error}");
                prop_assert!(error.message.len() < 4096, "{}", error.message.len());
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_line_is_a_message_or_a_protocol_error(
                line in prop::collection::vec(any::<u8>(), 0..512),
            ) {
                let read = Message::parse(&line);
                if let Err(error) = &read {
                    prop_assert_eq!(error.kind, ErrorKind::Protocol);
                }
                judged(read.map(drop))?;
            }

            #[test]
            fn any_bytes_end_a_session_in_an_answer_or_an_error(
                output in prop::collection::vec(any::<u8>(), 0..1024),
            ) {
                judged(reset_against(output))?;
            }

            #[test]
            fn any_qmpish_output_ends_a_session_in_an_answer_or_an_error(output in qmpish()) {
                judged(reset_against(output))?;
            }
        }
    }
}
