//! Failed or unknown: the answer to "could restarting the app fix this?".
//!
//! `failed` leads to recovery, `unknown` to an alert and nothing else. A
//! kit that says `failed` for a typo in its settings has medic restart a
//! healthy app over and over, so the SDK makes `unknown` the easy answer
//! for everything no restart can fix: its setting helpers and
//! [`read_secret`](crate::read_secret) fail with [`CannotJudge`], which `?`
//! turns into [`Health::Unknown`] inside a [`CheckResult`] function.

use std::fmt;

use crate::Health;

/// Why a check cannot judge the app: something no restart of the app can
/// change, such as a missing or bad setting, an unreadable secret file, a
/// refused credential or an answer the kit does not understand.
///
/// It becomes [`Health::Unknown`] (through `?` in a [`CheckResult`]
/// function, or `.into()`), so medic alerts instead of restarting. The text
/// is for the admin: say what is wrong and, where it helps, what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannotJudge(String);

impl CannotJudge {
    /// A reason worded for the admin, e.g. ``setting `port` must be above 0``.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }

    /// The reason, as the admin will read it.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CannotJudge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CannotJudge {}

/// A check that cannot judge answers `unknown`, with the reason.
impl From<CannotJudge> for Health {
    fn from(e: CannotJudge) -> Self {
        Health::Unknown(e.0)
    }
}

/// Lets `recover`, `app_settings` and other functions that answer with a
/// `String` use `?` on the setting helpers too: there the reason is all
/// medic takes.
impl From<CannotJudge> for String {
    fn from(e: CannotJudge) -> Self {
        e.0
    }
}

/// A check body written with `?`: `Ok` is the answer when the check ran to
/// its end, `Err` the answer that ended it early, such as
/// [`Health::Failed`] for a refused connection or [`Health::Unknown`] from
/// a [`CannotJudge`]. [`verdict`] makes it the check's answer.
///
/// Using [`Health`] for both sides keeps the early exits as plain as the
/// last line: `Err(Health::Failed(..))?` where the app is down, `?` on a
/// setting where the kit cannot judge.
pub type CheckResult = Result<Health, Health>;

/// The check's answer from a [`CheckResult`]: whichever side it holds.
///
/// ```
/// use medic_kit::{CheckResult, Context, Health, verdict};
///
/// fn probe(ctx: &Context) -> CheckResult {
///     let port: u16 = ctx.parse_or("port", 80)?;
///     Err(Health::Failed(format!("nothing listens on {port}")))
/// }
///
/// let bad = Context::with_settings("web", &[("port", "http")]);
/// assert!(matches!(verdict(probe(&bad)), Health::Unknown(_)));
/// let good = Context::with_settings("web", &[]);
/// assert!(matches!(verdict(probe(&good)), Health::Failed(_)));
/// ```
pub fn verdict(result: CheckResult) -> Health {
    result.unwrap_or_else(|early| early)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A check body that stops at its first problem.
    fn body(setting_ok: bool, app_up: bool) -> CheckResult {
        if !setting_ok {
            Err(CannotJudge::new("setting `x` is bad"))?;
        }
        if !app_up {
            return Err(Health::Failed("down".into()));
        }
        Ok(Health::Healthy)
    }

    #[test]
    fn question_mark_gives_unknown_and_failed_stays_failed() {
        assert_eq!(
            verdict(body(false, true)),
            Health::Unknown("setting `x` is bad".into())
        );
        assert_eq!(verdict(body(true, false)), Health::Failed("down".into()));
        assert_eq!(verdict(body(true, true)), Health::Healthy);
    }

    #[test]
    fn a_reason_survives_every_conversion() {
        let e = CannotJudge::new("no `url`");
        assert_eq!(e.reason(), "no `url`");
        assert_eq!(e.to_string(), "no `url`");
        assert_eq!(String::from(e.clone()), "no `url`");
        assert_eq!(Health::from(e), Health::Unknown("no `url`".into()));
    }
}
