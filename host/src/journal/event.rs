//! One journal entry and the closed set of event kinds.
//!
//! Kinds are a public contract: admins' scripts and monitoring match on
//! them. Add kinds; never rename one.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What happened, as written in the journal's `kind` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The daemon started with a configuration.
    DaemonStarted,
    /// The daemon stopped.
    DaemonStopped,
    /// A kit file was loaded (compiled or taken from the cache).
    KitLoaded,
    /// A kit file could not be loaded; its apps are not watched.
    KitLoadFailed,
    /// A check said `degraded` after having said something else.
    AppDegraded,
    /// The app failed `failures_before_action` checks in a row.
    AppFailed,
    /// A local recovery step is about to run (kit recover or restart).
    RecoveryAttempt,
    /// A local recovery step itself failed.
    RecoveryFailed,
    /// A check passed again after the app had failed.
    AppRecovered,
    /// A kit trapped, ran out of time or memory, or was denied a capability.
    KitFault,
    /// Local recovery is spent; the app's `then` step is taken.
    Escalation,
    /// An escalation was held back (e.g. just after medic started).
    EscalationDeferred,
    /// A VM reset was decided and is about to be called (or would be, with
    /// `dry_run: true`); written before the call, it is what the reset
    /// budget counts, so the count survives the reset itself.
    ResetDecided,
    /// A VM reset call ended: `outcome` is `done` (with the backend's
    /// `proof` and the `power_state` read afterwards) or `failed` (with
    /// `error`, `error_kind` and `retryable`). A real reset usually ends
    /// medic before this is written; the next boot's journal shows the
    /// decision without it.
    VmReset,
    /// A VM reset was not done: the budget was spent.
    ResetRefused,
    /// An alert was raised for the admin.
    Alert,
    /// The app is held in manual state until an admin acts.
    Manual,
    /// An admin asked the daemon for something (check, recover,
    /// maintenance...); `detail.by` says who (the uid from the socket's peer
    /// credentials).
    AdminAction,
    /// A maintenance window started: no recovery, no escalation until it
    /// ends. `app` is `null` for the global window.
    MaintenanceStarted,
    /// A maintenance window ended, by an admin or at its expiry
    /// (`detail.why`).
    MaintenanceEnded,
    /// A reload (SIGHUP, `medic reload`) was applied: `detail.added`,
    /// `removed` and `changed` name the apps.
    ReloadApplied,
    /// A reload was refused and the running config kept: `detail.errors`.
    ReloadRefused,
    /// A check could not judge the app (`unknown`: a bad setting, a
    /// refused credential, an answer the kit does not understand): nothing
    /// is recovered or escalated on it. Written once per streak.
    AppUnknown,
    /// The app's process (or what was left of its process group) was still
    /// there `stop_grace` after `stop`, and medic killed it (SIGKILL) so
    /// that `start` could run: `detail.pid`, `pgid`, `after`.
    AppKilled,
    /// A `journal.jsonl` from an older medic was imported into the
    /// database: `detail.file`, `kept_as`, `events`, `skipped`.
    JournalImported,
    /// Retention deleted events: `detail.by_age` (older than
    /// `journal_keep`), `by_size` (beyond `journal_max`).
    JournalPruned,
    /// An admin stopped the app (`medic stop`): it is held stopped, neither
    /// checked nor recovered, until `medic start`: `detail.by`, `reason`.
    AppStopped,
    /// An admin started a stopped app (`medic start`) and supervision
    /// resumed: `detail.by`.
    AppStarted,
    /// `medic update` began: `detail.by`, `version`, `from` (the version
    /// running before, if known). The app is in a maintenance window until
    /// the update ends.
    AppUpdateStarted,
    /// The update succeeded: the app passed `healthy_checks` checks in a
    /// row on the new version. `detail.version`, `from`, `took_ms`.
    AppUpdated,
    /// The update failed: `detail.version`, `step` (`stop`, `update`,
    /// `start`, `health`), `error`, `last_line` (the command's last output
    /// line, if it wrote one). A rollback, if the app has one, follows.
    AppUpdateFailed,
    /// After a failed update, `rollback` ran and the app was checked again:
    /// `detail.version` (the one put back), `ok`, `error`.
    AppRolledBack,
    /// The unit controller's journal: an operation on units began or
    /// ended (`detail.verb`, `units`, `phase` = `started` | `ended`, and
    /// at the end `ok` and `failed`, the members that failed). `app` is
    /// the first unit's name.
    UnitOperation,
    /// The unit controller's journal: a rolling update's progress, `app`
    /// the unit. `detail.phase` is `started` (`version`, `by`,
    /// `max_unavailable`), `member` (`vm`, `step`: draining, drained,
    /// updating, updated, ready, failed; `detail`) or `ended` (`ok`,
    /// `error`). A roll started and never ended is what `--resume` continues.
    UnitRoll,
    /// The unit controller's journal: one member's part of an operation
    /// ended (`detail.verb`, `vm`, `ok`, `detail`); `app` is the unit.
    UnitMember,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = serde_json::to_value(self).map_err(|_| fmt::Error)?;
        f.pad(value.as_str().ok_or(fmt::Error)?)
    }
}

/// The error of a kind name that is not one.
#[derive(Debug, thiserror::Error)]
#[error(
    "no event kind `{0}` (kinds are written as in the journal: app_failed, reset_decided, ...)"
)]
pub struct UnknownKind(String);

impl std::str::FromStr for Kind {
    type Err = UnknownKind;

    /// A kind as the journal writes it (`app_failed`).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(name.to_owned()))
            .map_err(|_| UnknownKind(name.to_owned()))
    }
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened, written as RFC 3339 UTC.
    #[serde(serialize_with = "rfc3339", deserialize_with = "from_rfc3339")]
    pub ts: SystemTime,
    /// The app concerned; `null` for daemon-wide events.
    pub app: Option<String>,
    /// What happened.
    pub kind: Kind,
    /// Kind-specific facts (reason, attempt, backend...).
    pub detail: serde_json::Value,
}

impl Event {
    /// An event stamped now.
    pub fn new(app: Option<&str>, kind: Kind, detail: serde_json::Value) -> Self {
        Self {
            ts: SystemTime::now(),
            app: app.map(str::to_owned),
            kind,
            detail,
        }
    }
}

/// Writes a time as RFC 3339 UTC with milliseconds, as everywhere in medic's output.
pub(crate) fn rfc3339<S: Serializer>(ts: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*ts))
}

pub(crate) fn from_rfc3339<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SystemTime, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
}
