//! What a protocol check expects of an answer, read from settings that mean
//! the same in every kit: `expect_regex`; `warn_ms` / `fail_ms` (as
//! `check_http -w/-c` and `check_tcp -w/-c`: slow is `degraded`, too slow
//! is `failed`); and `cert_days_warn` for a TLS server's certificate.
//!
//! Enabled by the `http` or the `expect` feature.

use std::time::{SystemTime, UNIX_EPOCH};

use regex_lite::Regex;

use crate::bindings::medic::kit::types::PeerCertificate;
use crate::{CannotJudge, CheckResult, Context, Health, host};

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

/// What a TLS handshake fails with when medic's trust, not the app, is at
/// fault, in the host's words.
const TRUST_FAILURES: [&str; 3] = [
    "certificate signed by an unknown issuer",
    "hostname mismatch",
    "the server requires a client certificate",
];

/// Whether `reason` (a host error) is a TLS failure no restart of the app
/// could cure (an unknown issuer, a hostname mismatch, a client
/// certificate the server wants): the check cannot judge. An expired
/// certificate is not among them: that is the app's to renew.
pub fn is_trust_failure(reason: &str) -> bool {
    TRUST_FAILURES
        .iter()
        .any(|failure| reason.contains(failure))
}

/// Records the certificate's days left (`cert_days_left`) and issuer
/// (`cert_issuer`) with the check, for the journal.
pub fn annotate_certificate(certificate: &PeerCertificate) {
    host::annotate(
        "cert_days_left",
        &days_left(certificate.not_after).to_string(),
    );
    host::annotate("cert_issuer", &certificate.issuer);
}

/// What `cert_days_warn = warn_days` says of `certificate`: `Err(failed)`
/// once it has expired, `Ok(Some(reason))` for a `degraded` one that
/// expires within `warn_days`, `Ok(None)` otherwise.
pub fn certificate_concern(
    certificate: &PeerCertificate,
    warn_days: u32,
) -> Result<Option<String>, Health> {
    let left = days_left(certificate.not_after);
    let on = date(certificate.not_after);
    if left < 0 {
        return Err(Health::Failed(format!(
            "certificate expired on {on} (issued by {})",
            certificate.issuer
        )));
    }
    Ok((left < i64::from(warn_days)).then(|| {
        format!(
            "certificate expires in {left} days, on {on} (issued by {})",
            certificate.issuer
        )
    }))
}

/// Whole days from now until `not_after` (negative once it has passed).
fn days_left(not_after: i64) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    (not_after - now).div_euclid(86_400)
}

/// `2026-11-30` for a Unix time.
fn date(unix: i64) -> String {
    let at = UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .chars()
        .take(10)
        .collect()
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
