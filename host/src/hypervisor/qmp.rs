//! QEMU Machine Protocol: JSON lines over a unix socket or TCP.
//!
//! Each operation opens its own session (greeting, `qmp_capabilities`, one
//! command), so a monitor that QEMU restarted or another client used never
//! leaves medic with a stale connection at the moment it must reset.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::{Hypervisor, HypervisorError, PowerState};
use crate::config::QmpTarget;

/// How long one whole QMP exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Resets the VM through its QMP monitor.
#[derive(Debug, Clone)]
pub struct Qmp {
    target: QmpTarget,
}

/// A transport QMP can run over.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Why one exchange failed, before it is tied to an operation.
struct Failure {
    message: String,
    retryable: bool,
}

impl Failure {
    /// The monitor could not be reached or stopped answering: try later.
    fn transient(message: String) -> Self {
        Self {
            message,
            retryable: true,
        }
    }
}

impl Qmp {
    /// A backend talking to the monitor at `target`.
    pub fn new(target: QmpTarget) -> Self {
        Self { target }
    }

    /// Runs `command` in a fresh session and returns its `return` value.
    async fn execute(&self, command: &str) -> Result<Value, Failure> {
        tokio::time::timeout(EXCHANGE_TIMEOUT, self.session(command))
            .await
            .map_err(|_| {
                Failure::transient(format!(
                    "no answer to {command} within {EXCHANGE_TIMEOUT:?}"
                ))
            })?
    }

    async fn session(&self, command: &str) -> Result<Value, Failure> {
        let stream: Box<dyn Stream> = match &self.target {
            QmpTarget::Socket(path) => Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| Failure::transient(format!("connect {}: {e}", path.display())))?,
            ),
            QmpTarget::Address(address) => Box::new(
                tokio::net::TcpStream::connect(address.as_str())
                    .await
                    .map_err(|e| Failure::transient(format!("connect {address}: {e}")))?,
            ),
        };
        let (read, mut write) = tokio::io::split(stream);
        let mut lines = BufReader::new(read).lines();
        let greeting = next_message(&mut lines).await?;
        if greeting.get("QMP").is_none() {
            return Err(Failure {
                message: format!("not a QMP greeting: {greeting}"),
                retryable: false,
            });
        }
        call(&mut lines, &mut write, "qmp_capabilities").await?;
        call(&mut lines, &mut write, command).await
    }
}

/// The reading side of a session, line by line.
type Lines = tokio::io::Lines<BufReader<tokio::io::ReadHalf<Box<dyn Stream>>>>;

/// Sends one command and returns its `return` value.
async fn call(
    lines: &mut Lines,
    write: &mut tokio::io::WriteHalf<Box<dyn Stream>>,
    execute: &str,
) -> Result<Value, Failure> {
    let mut line = json!({ "execute": execute }).to_string();
    line.push('\n');
    write
        .write_all(line.as_bytes())
        .await
        .map_err(|e| Failure::transient(format!("send {execute}: {e}")))?;
    let answer = loop {
        let message = next_message(lines).await?;
        // Asynchronous events (RESET, STOP...) may come first.
        if message.get("event").is_none() {
            break message;
        }
    };
    match answer.get("error") {
        Some(error) => Err(Failure {
            message: format!("{execute}: {error}"),
            retryable: false,
        }),
        None => Ok(answer.get("return").cloned().unwrap_or(Value::Null)),
    }
}

/// Reads the next JSON message of the session.
async fn next_message(lines: &mut Lines) -> Result<Value, Failure> {
    let line = lines
        .next_line()
        .await
        .map_err(|e| Failure::transient(format!("read: {e}")))?
        .ok_or_else(|| Failure::transient("the monitor closed the connection".to_owned()))?;
    serde_json::from_str(&line).map_err(|e| Failure {
        message: format!("bad QMP message {line:?}: {e}"),
        retryable: false,
    })
}

#[async_trait::async_trait]
impl Hypervisor for Qmp {
    fn name(&self) -> &'static str {
        "qmp"
    }

    fn is_dry_run(&self) -> bool {
        false
    }

    async fn power_state(&self) -> Result<PowerState, HypervisorError> {
        let status =
            self.execute("query-status")
                .await
                .map_err(|f| HypervisorError::PowerState {
                    message: f.message,
                    retryable: f.retryable,
                })?;
        Ok(match status.get("status").and_then(Value::as_str) {
            Some("running") => PowerState::On,
            Some("shutdown") => PowerState::Off,
            Some("paused" | "suspended") => PowerState::Suspended,
            _ => PowerState::Unknown,
        })
    }

    async fn reset(&self) -> Result<(), HypervisorError> {
        self.execute("system_reset")
            .await
            .map(|_| ())
            .map_err(|f| HypervisorError::Reset {
                message: f.message,
                retryable: f.retryable,
            })
    }
}
