//! Reading the app's settings and the call's deadline from a [`Context`].
//!
//! Settings are the admin's, so every way they can be wrong ends in
//! [`CannotJudge`]: a restart of the app cannot fix a setting.

use std::str::FromStr;
use std::time::Duration;

use crate::deadline::{self, DEFAULT_DEADLINE_MS};
use crate::{CannotJudge, Context, Setting};

impl Context {
    /// A context for `app` with `pairs` as its settings, for a kit's unit
    /// tests that call its functions without a host. Its deadline is the
    /// host's default app `timeout` ([`DEFAULT_DEADLINE_MS`]), counted from
    /// the test's first question about it.
    pub fn with_settings(app: &str, pairs: &[(&str, &str)]) -> Self {
        Self {
            app: app.into(),
            settings: pairs
                .iter()
                .map(|(key, value)| Setting {
                    key: (*key).into(),
                    value: (*value).into(),
                })
                .collect(),
            attempt: 0,
            deadline_ms: DEFAULT_DEADLINE_MS,
        }
    }

    /// The value of setting `key`, if the app's `[settings]` has it.
    ///
    /// When a key is written twice, the last one wins, as a reader of the
    /// file would expect.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }

    /// The value of a setting the kit cannot work without; absent or blank
    /// is an error worded for the admin, so that `?` answers `unknown`.
    pub fn require(&self, key: &str) -> Result<&str, CannotJudge> {
        match self.setting(key) {
            None => Err(CannotJudge::new(format!(
                "missing required setting `{key}`"
            ))),
            Some(value) if value.trim().is_empty() => {
                Err(CannotJudge::new(format!("setting `{key}` is empty")))
            }
            Some(value) => Ok(value),
        }
    }

    /// Parses setting `key` if the app has it.
    ///
    /// Settings are always strings; this turns a bad number or boolean into
    /// an admin-readable error instead of a silent fallback.
    pub fn parse<T>(&self, key: &str) -> Result<Option<T>, CannotJudge>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.setting(key)
            .map(|value| {
                value
                    .trim()
                    .parse()
                    .map_err(|e| CannotJudge::new(format!("setting `{key}` = {value:?}: {e}")))
            })
            .transpose()
    }

    /// Parses setting `key`, or returns `default` when it is absent; see
    /// [`Context::parse`].
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T, CannotJudge>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        Ok(self.parse(key)?.unwrap_or(default))
    }

    /// The time left until the call's deadline; [`Duration::MAX`] when the
    /// host did not tell it (a host before 0.1.2).
    pub fn time_left(&self) -> Duration {
        deadline::time_left(self.deadline_ms, deadline::elapsed())
    }

    /// How many milliseconds a wait of the kit (a connect, a read, a
    /// program's run) may last so that it ends before the call's deadline,
    /// leaving the kit time to answer: `wanted` but at most the time left
    /// less [`deadline_margin`](crate::deadline_margin); without `wanted`,
    /// all of that. Never 0.
    ///
    /// When the host did not tell the deadline: `wanted`, else `fallback`,
    /// the kit's own default.
    pub fn wait_ms(&self, wanted: Option<u32>, fallback: u32) -> u32 {
        deadline::wait_ms(self.deadline_ms, deadline::elapsed(), wanted, fallback)
    }

    /// A wait bounded by setting `key`, in milliseconds, and by the call's
    /// deadline: see [`Context::wait_ms`]. So an admin sets a timeout only
    /// to wait less than the app's `timeout` allows, and a hung server is
    /// `failed` rather than a kit fault either way. `fallback` is used only
    /// when neither the setting nor the deadline is there.
    ///
    /// A value that is not a number, or is 0, cannot be judged.
    pub fn timeout_ms_setting(&self, key: &str, fallback: u32) -> Result<u32, CannotJudge> {
        let wanted = self.parse::<u32>(key)?;
        if wanted == Some(0) {
            return Err(CannotJudge::new(format!("setting `{key}` must be above 0")));
        }
        Ok(self.wait_ms(wanted, fallback))
    }
}

/// Reads a secret file (a password) named by a setting: its text without
/// one trailing line break (`\n` or `\r\n`), so a file written by `echo`
/// works while other whitespace stays part of the secret.
///
/// An unreadable or empty file cannot be judged: restarting the app does
/// not make it readable. The file's directory must be in the app's
/// `[grants] read`; the error says so, and names `setting` and the file.
pub fn read_secret(setting: &str, path: &str) -> Result<String, CannotJudge> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                " (is its directory in `[grants] read`?)"
            }
            _ => "",
        };
        CannotJudge::new(format!("cannot read {setting} {path}: {e}{hint}"))
    })?;
    let secret = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(CannotJudge::new(format!("{setting} {path} is empty")));
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::DEADLINE_NOT_TOLD;

    fn ctx(pairs: &[(&str, &str)]) -> Context {
        Context::with_settings("web", pairs)
    }

    fn cannot(reason: &str) -> CannotJudge {
        CannotJudge::new(reason)
    }

    #[test]
    fn a_secret_loses_one_line_break_only() {
        let dir = std::env::temp_dir().join(format!("medic-kit-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        let path = file.to_str().unwrap();
        for (raw, want) in [
            ("pw\n", Ok("pw")),
            ("pw\r\n", Ok("pw")),
            ("pw\n\n", Ok("pw\n")),
            (" two words ", Ok(" two words ")),
            ("\n", Err(cannot(&format!("password_file {path} is empty")))),
        ] {
            std::fs::write(&file, raw).unwrap();
            assert_eq!(
                read_secret("password_file", path).as_deref(),
                want.as_deref()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = read_secret("password_file", path).unwrap_err();
        assert!(
            missing
                .reason()
                .ends_with("(is its directory in `[grants] read`?)"),
            "{missing}"
        );
    }

    #[test]
    fn setting_finds_last_value() {
        let c = ctx(&[("a", "1"), ("b", "2"), ("a", "3")]);
        assert_eq!(c.setting("a"), Some("3"));
        assert_eq!(c.setting("b"), Some("2"));
        assert_eq!(c.setting("c"), None);
    }

    #[test]
    fn require_names_the_missing_or_blank_key() {
        let c = ctx(&[("a", "1"), ("blank", " ")]);
        assert_eq!(c.require("a"), Ok("1"));
        assert_eq!(
            c.require("url"),
            Err(cannot("missing required setting `url`"))
        );
        assert_eq!(c.require("blank"), Err(cannot("setting `blank` is empty")));
    }

    #[test]
    fn parse_or_defaults_and_reports() {
        let c = ctx(&[("n", " 42 "), ("bad", "x")]);
        assert_eq!(c.parse_or("n", 7u32), Ok(42));
        assert_eq!(c.parse_or("absent", 7u32), Ok(7));
        assert_eq!(c.parse::<u32>("absent"), Ok(None));
        let err = c.parse_or("bad", 7u32).unwrap_err();
        assert!(err.reason().starts_with("setting `bad` = \"x\": "), "{err}");
    }

    #[test]
    fn a_test_context_has_the_default_deadline() {
        let c = ctx(&[]);
        assert_eq!(c.deadline_ms, DEFAULT_DEADLINE_MS);
        let left = c.time_left();
        assert!(left <= Duration::from_secs(5) && left > Duration::from_secs(4));
        // All of it less the 500 ms margin, give or take the test's pace.
        assert!((4_000..=4_500).contains(&c.wait_ms(None, 2_000)));
    }

    #[test]
    fn a_timeout_setting_is_capped_by_the_deadline() {
        let c = ctx(&[("timeout_ms", "2000"), ("long", "60000")]);
        assert_eq!(c.timeout_ms_setting("timeout_ms", 1_000), Ok(2_000));
        let capped = c.timeout_ms_setting("long", 1_000).unwrap();
        assert!((4_000..=4_500).contains(&capped), "{capped}");
        let absent = c.timeout_ms_setting("absent", 1_000).unwrap();
        assert!((4_000..=4_500).contains(&absent), "{absent}");
    }

    #[test]
    fn a_timeout_setting_without_deadline_is_the_kits_own() {
        let mut c = ctx(&[("long", "60000")]);
        c.deadline_ms = DEADLINE_NOT_TOLD;
        assert_eq!(c.time_left(), Duration::MAX);
        assert_eq!(c.timeout_ms_setting("long", 1_000), Ok(60_000));
        assert_eq!(c.timeout_ms_setting("absent", 1_000), Ok(1_000));
    }

    #[test]
    fn a_bad_timeout_setting_cannot_be_judged() {
        let c = ctx(&[("zero", "0"), ("word", "soon")]);
        assert_eq!(
            c.timeout_ms_setting("zero", 1_000),
            Err(cannot("setting `zero` must be above 0"))
        );
        let err = c.timeout_ms_setting("word", 1_000).unwrap_err();
        assert!(
            err.reason().starts_with("setting `word` = \"soon\""),
            "{err}"
        );
    }
}
