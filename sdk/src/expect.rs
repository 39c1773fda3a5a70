//! What a protocol check expects of an answer, read from settings that mean
//! the same in every kit: `expect_regex`, and `warn_ms` / `fail_ms` (as
//! `check_http -w/-c` and `check_tcp -w/-c`: slow is `degraded`, too slow
//! is `failed`).
//!
//! Enabled by the `http` or the `expect` feature.

use regex_lite::Regex;

use crate::{CannotJudge, CheckResult, Context, Health};

/// The regular expression of setting `key`, if set; one that does not
/// compile cannot be judged.
pub fn regex_setting(ctx: &Context, key: &str) -> Result<Option<Regex>, CannotJudge> {
    ctx.setting(key)
        .map(|pattern| {
            Regex::new(pattern).map_err(|e| CannotJudge::new(format!("setting `{key}`: {e}")))
        })
        .transpose()
}

/// `warn_ms` and `fail_ms`: how slow an answer may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpeedLimits {
    /// Slower than this is `degraded`.
    pub warn_ms: Option<u32>,
    /// Slower than this is `failed`.
    pub fail_ms: Option<u32>,
}

impl SpeedLimits {
    /// Reads `warn_ms` and `fail_ms`: each above 0, `warn_ms` not above
    /// `fail_ms`.
    pub fn read(ctx: &Context) -> Result<Self, CannotJudge> {
        let positive = |key: &str| match ctx.parse::<u32>(key)? {
            Some(0) => Err(CannotJudge::new(format!("setting `{key}` must be above 0"))),
            other => Ok(other),
        };
        let limits = Self {
            warn_ms: positive("warn_ms")?,
            fail_ms: positive("fail_ms")?,
        };
        if let (Some(warn), Some(fail)) = (limits.warn_ms, limits.fail_ms)
            && warn > fail
        {
            return Err(CannotJudge::new(format!(
                "setting `warn_ms` ({warn}) is above `fail_ms` ({fail})"
            )));
        }
        Ok(limits)
    }

    /// `Err(failed)` above `fail_ms`; `Ok(Some(reason))` above `warn_ms`,
    /// for a `degraded` answer; `Ok(None)` in time.
    pub fn judge(&self, elapsed_ms: u32) -> Result<Option<String>, Health> {
        if let Some(fail) = self.fail_ms
            && elapsed_ms > fail
        {
            return Err(Health::Failed(format!(
                "answered in {elapsed_ms} ms, above fail_ms {fail}"
            )));
        }
        Ok(self
            .warn_ms
            .filter(|warn| elapsed_ms > *warn)
            .map(|warn| format!("answered in {elapsed_ms} ms, above warn_ms {warn}")))
    }

    /// [`SpeedLimits::judge`] as a check's whole answer.
    pub fn verdict(&self, elapsed_ms: u32) -> CheckResult {
        Ok(match self.judge(elapsed_ms)? {
            Some(reason) => Health::Degraded(reason),
            None => Health::Healthy,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn slow_is_degraded_and_too_slow_failed() {
        let ctx = Context::with_settings("a", &[("warn_ms", "100"), ("fail_ms", "500")]);
        let limits = SpeedLimits::read(&ctx).unwrap();
        assert_eq!(limits.verdict(100), Ok(Health::Healthy));
        assert!(matches!(limits.verdict(200), Ok(Health::Degraded(_))));
        assert!(matches!(limits.verdict(600), Err(Health::Failed(_))));
        for bad in [
            &[("warn_ms", "0")][..],
            &[("warn_ms", "9"), ("fail_ms", "5")],
        ] {
            assert!(SpeedLimits::read(&Context::with_settings("a", bad)).is_err());
        }
        let ctx = Context::with_settings("a", &[("expect_regex", "(")]);
        assert!(regex_setting(&ctx, "expect_regex").is_err());
    }
}
