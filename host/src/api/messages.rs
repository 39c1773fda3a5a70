//! The admin API's requests and answers, typed once for the daemon that
//! serves them and every client that calls it (the CLI verbs, the unit
//! controller), so the two sides cannot drift apart and no client looks
//! fields up by name in untyped JSON.
//!
//! The field names are a public contract (`medic status --json`, admins'
//! scripts): add fields, never rename one.

use serde::{Deserialize, Serialize};

use crate::maintenance::{Window, Windows};
use crate::supervisor::AppStatus;

/// `GET /v1/status`: every app, the reset budget and maintenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Every watched app, by name.
    pub apps: Vec<AppStatus>,
    /// The escalation backend and what is left of the reset budget.
    pub escalation: EscalationSummary,
    /// The maintenance windows in force.
    pub maintenance: Windows,
}

impl StatusReport {
    /// The status of `app`, if the daemon watches it.
    pub fn app(&self, app: &str) -> Option<&AppStatus> {
        self.apps.iter().find(|status| status.app == app)
    }
}

/// The reset budget as `medic status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationSummary {
    /// The backend's config name (`dry-run`, `vsphere`...).
    pub backend: String,
    /// Resets the window still allows.
    pub resets_left: u32,
    /// `[escalation] max_resets`.
    pub max_resets: u32,
    /// `[escalation] reset_window`, as humantime (`1h`).
    pub reset_window: String,
}

/// The body of `POST /v1/maintenance`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceRequest {
    /// Start (`true`) or end (`false`) a window.
    pub on: bool,
    /// The app, or `None` for the global window.
    pub app: Option<String>,
    /// How long (humantime, e.g. `30m`); required to start one.
    #[serde(rename = "for")]
    pub duration: Option<String>,
    /// Why, for the journal and `medic status`.
    pub reason: Option<String>,
}

/// The answer to `POST /v1/maintenance`: the window started, or whether
/// one ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MaintenanceAnswer {
    /// A window was started (or replaced).
    Started {
        /// The window now in force.
        window: Window,
    },
    /// A window was asked to end.
    Ended {
        /// Whether there was one.
        ended: bool,
    },
}

/// The answer to an action on one app (`recover`, `stop`, `start`): what
/// was done, in words for the admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// What ran (`kit recover: Done`, `stop: ok`).
    pub done: String,
}

/// The body of `POST /v1/apps/{app}/stop`. A misspelt field is refused,
/// not ignored: a reason typed as `reasn` must not vanish.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// Why, for the journal and `medic status`.
    pub reason: Option<String>,
}

/// The body of `POST /v1/apps/{app}/update`. A misspelt field is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// The version to install, given to `update` as `{version}`.
    pub version: String,
    /// How long the app may take to pass its checks after `start`
    /// (humantime, e.g. `2m`); 2 minutes when left out.
    pub health_timeout: Option<String>,
    /// Passed checks in a row that prove it healthy; the app file's
    /// `healthy_checks` when left out.
    pub healthy_checks: Option<u32>,
}

impl UpdateRequest {
    /// Whether the version can be handed to a command: 1 to 128 of
    /// letters, digits and `.`, `_`, `-`, `+`, `~` (no spaces, no shell or
    /// path characters, so `{version}` can never change a command's shape).
    pub fn check_version(&self) -> Result<(), String> {
        let version = &self.version;
        let valid = (1..=128).contains(&version.len())
            && version.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'~')
            })
            && !version.starts_with('-');
        if valid {
            Ok(())
        } else {
            Err(format!(
                "{version:?} is not a version: 1 to 128 letters, digits and . _ - + ~, not starting with -"
            ))
        }
    }
}

/// What a reload changed, by app name: the daemon's answer to `POST
/// /v1/reload`, journaled as `reload_applied`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Apps now watched that were not.
    pub added: Vec<String>,
    /// Apps no longer watched.
    pub removed: Vec<String>,
    /// Apps whose spec or kit changed (or that depend on one that did):
    /// their supervisor was replaced.
    pub changed: Vec<String>,
}

/// The answer to `POST /v1/reload` when it was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadAnswer {
    /// What changed.
    pub applied: Changes,
}

/// Every refusal of the API: a status code and this body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Why, for the admin.
    pub error: String,
    /// Every reason, when there are several (a refused reload's config
    /// errors).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}
