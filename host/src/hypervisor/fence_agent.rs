//! Any Pacemaker fence agent (`fence_vmware_rest`, `fence_virsh`,
//! `fence_ipmilan`, `fence_aws`... 60+ platforms) through its stdin
//! protocol: `key=value` lines, the exit code says how it went.
//!
//! Options go on stdin, never on the command line, so the password is not
//! visible in `ps`. Agents do a `reboot` as power off then power on; a VM
//! that does not come back on is reported by the status read afterwards.

use std::process::Stdio;

use secrecy::ExposeSecret;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{ErrorKind, Hypervisor, HypervisorError, PowerState};
use crate::config::FenceAgentSettings;
use crate::credentials::Credentials;
use crate::process::GroupGuard;

/// At most this much of the agent's stderr goes into an error message.
const STDERR_LIMIT: usize = 2048;

/// Runs a fence agent for status and reboot.
#[derive(Debug, Clone)]
pub struct FenceAgent {
    settings: FenceAgentSettings,
    credentials: Option<Credentials>,
}

/// How one run of the agent ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl FenceAgent {
    /// A backend running `settings.agent` with `credentials`, if any.
    pub fn new(settings: FenceAgentSettings, credentials: Option<Credentials>) -> Self {
        Self {
            settings,
            credentials,
        }
    }

    fn agent_name(&self) -> String {
        self.settings.agent.file_name().map_or_else(
            || self.settings.agent.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// The agent's stdin for `action`.
    fn input(&self, action: &str) -> String {
        let mut input = format!("action={action}\n");
        for (key, value) in &self.settings.options {
            input.push_str(&format!("{key}={value}\n"));
        }
        if let Some(credentials) = &self.credentials {
            input.push_str(&format!("username={}\n", credentials.username));
            input.push_str(&format!(
                "password={}\n",
                credentials.password.expose_secret()
            ));
        }
        input
    }

    /// Runs the agent once with `action`. The child is killed if the call
    /// is abandoned (the escalation timeout), so no agent outlives it.
    async fn run(&self, action: &str) -> Result<Run, HypervisorError> {
        let agent = self.agent_name();
        let mut child = Command::new(&self.settings.agent)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, killed whole if the call is abandoned or once
            // the agent is done, so nothing it started outlives it.
            .process_group(0)
            // An explicit environment: its credentials come on stdin only.
            .env_clear()
            .envs(crate::process::child_env())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                HypervisorError::new(
                    ErrorKind::Failed,
                    format!("{agent}: cannot run {}: {e}", self.settings.agent.display()),
                )
            })?;
        let _group = GroupGuard::new(child.id());
        if let Some(mut stdin) = child.stdin.take() {
            // An agent that exits without reading its stdin is judged by
            // its exit code, not by the broken pipe.
            let _ = stdin.write_all(self.input(action).as_bytes()).await;
        }
        let output = child.wait_with_output().await.map_err(|e| {
            HypervisorError::new(ErrorKind::Failed, format!("{agent}: waiting for it: {e}"))
        })?;
        Ok(Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            stderr: self.redacted(&output.stderr),
        })
    }

    /// The agent's stderr, shortened, with the password removed should an
    /// agent echo it.
    fn redacted(&self, stderr: &[u8]) -> String {
        let mut text = String::from_utf8_lossy(stderr).trim().to_owned();
        if let Some(credentials) = &self.credentials {
            let password = credentials.password.expose_secret();
            if !password.is_empty() {
                text = text.replace(password, "<redacted>");
            }
        }
        if text.len() > STDERR_LIMIT {
            let mut end = STDERR_LIMIT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        text
    }

    /// The error for a run that did not exit 0 (or 2 for `status`).
    fn failure(&self, action: &str, run: &Run) -> HypervisorError {
        let kind = match run.code {
            Some(3 | 10 | 11) => ErrorKind::BadCredentials,
            Some(4) => ErrorKind::Unreachable,
            Some(5..=7) => ErrorKind::Timeout,
            Some(8 | 9 | 12) => ErrorKind::NotFound,
            _ => ErrorKind::Failed,
        };
        let code = run.code.map_or_else(
            || "was killed by a signal".to_owned(),
            |code| format!("exited {code}"),
        );
        let said = match run
            .stderr
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
        {
            Some(line) => format!(": {}", line.trim()),
            None => String::new(),
        };
        HypervisorError::new(kind, format!("{} {action} {code}{said}", self.agent_name()))
    }
}

#[async_trait::async_trait]
impl Hypervisor for FenceAgent {
    fn name(&self) -> &'static str {
        "fence-agent"
    }

    async fn identify(&self) -> Result<String, HypervisorError> {
        let state = self.power_state().await?;
        let plug = self
            .settings
            .options
            .iter()
            .find(|(key, _)| key == "plug" || key == "port")
            .map_or_else(String::new, |(_, plug)| format!("plug `{plug}` "));
        let state = format!("{state:?}").to_lowercase();
        Ok(format!(
            "{plug}through {} (status {state})",
            self.agent_name()
        ))
    }

    async fn power_state(&self) -> Result<PowerState, HypervisorError> {
        let run = self.run("status").await?;
        match run.code {
            Some(0) => Ok(PowerState::On),
            Some(2) => Ok(PowerState::Off),
            _ => Err(self.failure("status", &run)),
        }
    }

    async fn reset(&self) -> Result<String, HypervisorError> {
        let run = self.run("reboot").await?;
        match run.code {
            Some(0) => Ok(match run.stdout.lines().last() {
                Some(said) => format!("{} reboot exited 0: {said}", self.agent_name()),
                None => format!("{} reboot exited 0", self.agent_name()),
            }),
            _ => Err(self.failure("reboot", &run)),
        }
    }
}
