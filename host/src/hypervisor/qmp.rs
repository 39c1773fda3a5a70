//! QEMU Machine Protocol: JSON lines over a unix socket or TCP.
//!
//! Each operation opens its own session (greeting, `qmp_capabilities`, its
//! commands), so a monitor that QEMU restarted or another client used never
//! leaves medic with a stale connection at the moment it must reset. A
//! reset is verified by the `RESET` event QEMU sends on the same session.

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

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

/// One negotiated QMP session.
struct Session {
    lines: tokio::io::Lines<BufReader<tokio::io::ReadHalf<Box<dyn Stream>>>>,
    write: tokio::io::WriteHalf<Box<dyn Stream>>,
    /// Events that arrived while a command's answer was awaited.
    events: Vec<Value>,
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
        let (read, write) = tokio::io::split(stream);
        let mut session = Self {
            lines: BufReader::new(read).lines(),
            write,
            events: Vec::new(),
        };
        let greeting = session.next_message().await?;
        if greeting.get("QMP").is_none() {
            return Err(protocol(format!("qmp: not a QMP greeting: {greeting}")));
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
        let answer = loop {
            let message = self.next_message().await?;
            // Asynchronous events (RESET, STOP...) may come first.
            if message.get("event").is_none() {
                break message;
            }
            self.events.push(message);
        };
        match answer.get("error") {
            Some(error) => Err(HypervisorError::new(
                ErrorKind::Failed,
                format!("qmp: {execute}: {error}"),
            )),
            None => Ok(answer.get("return").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Waits for the asynchronous event named `name`.
    async fn event(&mut self, name: &str) -> Result<Value, HypervisorError> {
        let is_named = |message: &Value| message.get("event").and_then(Value::as_str) == Some(name);
        if let Some(at) = self.events.iter().position(is_named) {
            return Ok(self.events.swap_remove(at));
        }
        loop {
            let message = self.next_message().await?;
            if is_named(&message) {
                return Ok(message);
            }
        }
    }

    /// Reads the next JSON message of the session.
    async fn next_message(&mut self) -> Result<Value, HypervisorError> {
        let line = self
            .lines
            .next_line()
            .await
            .map_err(|e| unreachable(format!("qmp: read: {e}")))?
            .ok_or_else(|| unreachable("qmp: the monitor closed the connection".to_owned()))?;
        serde_json::from_str(&line).map_err(|e| protocol(format!("qmp: bad message {line:?}: {e}")))
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
