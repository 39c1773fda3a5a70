//! Delivery by running a command with the event's JSON on stdin.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::error::DeliveryError;
use crate::process::GroupGuard;

/// How long to wait for the rest of stderr after the command exited: a
/// background child that inherited the pipe must not hold up the sink.
const STDERR_GRACE: Duration = Duration::from_millis(200);

/// The most of stderr's first line that is kept for the log.
const STDERR_LINE_MAX: usize = 512;

/// A command sink.
#[derive(Debug)]
pub(crate) struct Exec {
    argv: Vec<String>,
    timeout: Duration,
}

impl Exec {
    /// A sink running `argv` with at most `timeout` per attempt.
    pub(crate) fn new(argv: Vec<String>, timeout: Duration) -> Self {
        Self { argv, timeout }
    }

    /// One run of the command.
    pub(crate) async fn attempt(&self, body: &Bytes) -> Result<(), DeliveryError> {
        let (program, args) = self
            .argv
            .split_first()
            .ok_or_else(|| DeliveryError::Setup("exec sink has an empty argv".to_owned()))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own group: a signal meant for medic does not reach it, and
            // a timeout can end everything it started.
            .process_group(0)
            // An explicit environment: nothing of medic's but the basics.
            .env_clear()
            .envs(crate::process::child_env())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| DeliveryError::Spawn {
                program: program.clone(),
                source,
            })?;
        // Kills the group if this attempt ends early: timeout, or the
        // delivery task aborted at shutdown.
        let mut group = GroupGuard::new(child.id());
        let stdin = child.stdin.take();
        let stderr = child
            .stderr
            .take()
            .map(|pipe| tokio::spawn(first_line(pipe)));

        let run = async {
            if let Some(mut stdin) = stdin {
                // A command that does not read its input is judged by its
                // exit status alone, so a broken pipe is no failure here.
                let _ = stdin.write_all(body).await;
                let _ = stdin.write_all(b"\n").await;
                drop(stdin);
            }
            child.wait().await
        };
        let outcome = tokio::time::timeout(self.timeout, run).await;
        let status = match outcome {
            Err(_) => {
                group.kill();
                let _ = child.start_kill();
                // Reap it so no zombie is left; SIGKILL makes this quick.
                let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
                if let Some(task) = stderr {
                    task.abort();
                }
                return Err(DeliveryError::Timeout(self.timeout));
            }
            Ok(Err(source)) => {
                return Err(DeliveryError::Wait {
                    program: program.clone(),
                    source,
                });
            }
            Ok(Ok(status)) => status,
        };
        group.disarm();
        if status.success() {
            if let Some(task) = stderr {
                task.abort();
            }
            return Ok(());
        }
        let line = match stderr {
            Some(mut task) => match tokio::time::timeout(STDERR_GRACE, &mut task).await {
                Ok(Ok(line)) => line,
                _ => {
                    task.abort();
                    None
                }
            },
            None => None,
        };
        Err(DeliveryError::Exit {
            program: program.clone(),
            status,
            stderr: line,
        })
    }
}

/// Reads `pipe` to its end (so the command never blocks on a full pipe)
/// and keeps the first non-empty line, shortened.
async fn first_line(mut pipe: impl AsyncRead + Unpin) -> Option<String> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = (STDERR_LINE_MAX * 4).saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    let text = String::from_utf8_lossy(&kept);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut end = line.len().min(STDERR_LINE_MAX);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    Some(line[..end].to_owned())
}
