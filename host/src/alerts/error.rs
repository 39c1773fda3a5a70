//! Why one delivery attempt failed, and whether trying again may help.

use std::process::ExitStatus;
use std::time::Duration;

/// One failed delivery attempt.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeliveryError {
    /// The sink cannot work as configured (bad URL, empty argv...).
    #[error("sink is not usable: {0}")]
    Setup(String),
    /// The receiver did not finish within the sink's timeout.
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The HTTP request failed before an answer (connect, TLS, reset...).
    /// Holds the error text without the URL, which may carry secrets.
    #[error("request failed: {0}")]
    Request(String),
    /// The receiver answered with a status other than 2xx.
    #[error("answered HTTP {0}")]
    Status(u16),
    /// The command could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program named in argv.
        program: String,
        /// Why it could not run.
        source: std::io::Error,
    },
    /// Waiting for the command failed.
    #[error("waiting for {program}: {source}")]
    Wait {
        /// The program named in argv.
        program: String,
        /// What the wait reported.
        source: std::io::Error,
    },
    /// The command exited unsuccessfully.
    #[error("{program} exited with {status}{}", stderr.as_deref().map(|line| format!(": {line}")).unwrap_or_default())]
    Exit {
        /// The program named in argv.
        program: String,
        /// How it ended.
        status: ExitStatus,
        /// The first line it wrote to stderr, if any.
        stderr: Option<String>,
    },
}

impl DeliveryError {
    /// Whether another attempt may succeed: outages and server errors may
    /// pass, a misconfiguration or a refused request will not.
    pub(crate) fn retryable(&self) -> bool {
        match self {
            Self::Setup(_) => false,
            Self::Timeout(_) | Self::Request(_) | Self::Exit { .. } | Self::Wait { .. } => true,
            // A program that cannot be started now may be installed later,
            // but not within a retry's pause.
            Self::Spawn { .. } => false,
            Self::Status(code) => *code >= 500 || *code == 408 || *code == 429,
        }
    }
}
