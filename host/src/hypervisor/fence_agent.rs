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

/// Runs a fence agent for status and reboot.
#[derive(Debug, Clone)]
pub struct FenceAgent {
    settings: FenceAgentSettings,
    credentials: Option<Credentials>,
}

/// How one run of the agent ended, as it ended: nothing of it is trusted.
struct Run {
    /// The exit code; `None` when a signal ended the agent.
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
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
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }

    /// The last non-empty line of an agent's `output`, as it may be shown:
    /// the password removed should the agent echo it, control characters
    /// escaped and cut to 1 KiB.
    fn last_line(&self, output: &[u8]) -> Option<String> {
        let mut text = String::from_utf8_lossy(output).into_owned();
        if let Some(credentials) = &self.credentials {
            let password = credentials.password.expose_secret();
            if !password.is_empty() {
                text = text.replace(password, "<redacted>");
            }
        }
        text.lines()
            .rev()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .map(crate::sandbox::tame_text)
    }

    /// What a `status` run says: exit 0 is on and 2 is off (the fence
    /// agents' convention); anything else is the failure it says.
    fn read_status(&self, run: &Run) -> Result<PowerState, HypervisorError> {
        match run.code {
            Some(0) => Ok(PowerState::On),
            Some(2) => Ok(PowerState::Off),
            _ => Err(self.failure("status", run)),
        }
    }

    /// What a `reboot` run says: exit 0, with the agent's last line as the
    /// proof, or the failure it says.
    fn read_reboot(&self, run: &Run) -> Result<String, HypervisorError> {
        match run.code {
            Some(0) => Ok(match self.last_line(&run.stdout) {
                Some(said) => format!("{} reboot exited 0: {said}", self.agent_name()),
                None => format!("{} reboot exited 0", self.agent_name()),
            }),
            _ => Err(self.failure("reboot", run)),
        }
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
        let said = self
            .last_line(&run.stderr)
            .map_or_else(String::new, |line| format!(": {line}"));
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
        self.read_status(&self.run("status").await?)
    }

    async fn reset(&self) -> Result<String, HypervisorError> {
        self.read_reboot(&self.run("reboot").await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agent(password: &str) -> FenceAgent {
        FenceAgent::new(
            FenceAgentSettings {
                agent: "/usr/sbin/fence_test".into(),
                credentials: None,
                options: Vec::new(),
            },
            Some(Credentials {
                username: "medic".to_owned(),
                password: password.to_owned().into(),
            }),
        )
    }

    fn run(code: Option<i32>, stdout: &str, stderr: &str) -> Run {
        Run {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn exit_codes_are_the_answer_and_the_last_line_the_reason() {
        let agent = agent("hunter2");
        assert_eq!(
            agent.read_status(&run(Some(0), "", "")).unwrap(),
            PowerState::On
        );
        assert_eq!(
            agent.read_status(&run(Some(2), "", "")).unwrap(),
            PowerState::Off
        );
        assert_eq!(
            agent
                .read_reboot(&run(Some(0), "Success: Rebooted\n\n", ""))
                .unwrap(),
            "fence_test reboot exited 0: Success: Rebooted"
        );
        let error = agent
            .read_status(&run(
                Some(3),
                "",
                "first\nlogin hunter2 \u{1b}[2J failed\n \n",
            ))
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::BadCredentials);
        assert_eq!(
            error.message,
            "fence_test status exited 3: login <redacted> \\u{1b}[2J failed"
        );
        let error = agent.read_reboot(&run(None, "", "")).unwrap_err();
        assert_eq!(error.message, "fence_test reboot was killed by a signal");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever an agent exits with and prints, reading it ends in an
        /// answer or an error naming the agent, never a panic; what is
        /// shown is short and never holds the password, even when the
        /// agent prints it. (The password is upper case: the text medic
        /// adds is lower case, so it cannot contain it by chance.)
        #[test]
        fn any_exit_and_output_is_an_answer_or_an_error(
            code in prop::option::of(any::<i32>()),
            before in prop::collection::vec(any::<u8>(), 0..3000),
            after in prop::collection::vec(any::<u8>(), 0..300),
            echoed in any::<bool>(),
            on_stdout in any::<bool>(),
            password in "[A-Z]{6,16}",
        ) {
            let agent = agent(&password);
            let mut output = before;
            if echoed {
                output.extend_from_slice(password.as_bytes());
            }
            output.extend_from_slice(&after);
            let (stdout, stderr) = if on_stdout {
                (output, Vec::new())
            } else {
                (Vec::new(), output)
            };
            let run = Run { code, stdout, stderr };
            let status = agent.read_status(&run).map(|state| format!("{state:?}"));
            for said in [status, agent.read_reboot(&run)] {
                let text = match said {
                    Ok(text) => text,
                    Err(error) => {
                        prop_assert!(!matches!(code, Some(0)), "{error}");
                        error.message
                    }
                };
                prop_assert!(!text.contains(&password), "{text}");
                prop_assert!(text.len() < 1200, "{} bytes", text.len());
            }
        }
    }
}
