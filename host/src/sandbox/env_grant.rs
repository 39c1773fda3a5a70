//! The environment a kit may give the programs it runs (`host.run`): an
//! allow-list the admin writes (`[grants] env`), and names no grant opens.
//!
//! A granted program trusts its environment. `PERL5OPT`, `NODE_OPTIONS`,
//! `BASH_ENV` or `LD_PRELOAD` make it run code of the caller's choosing, and
//! `PATH`, `PYTHONPATH` or `OCF_ROOT` choose which files it runs. A
//! deny-list cannot know every such name, so only what the admin granted
//! passes, and the names below are refused even then. medic sets `PATH`,
//! `OCF_ROOT` and `OCF_FUNCTIONS_DIR` itself, to fixed system values, as
//! sudo's `secure_path` does for `PATH`.

/// Names (or prefixes, ending in `*`) that no grant can open, each with why.
const NEVER: &[(&str, &str)] = &[
    ("LD_*", "the dynamic loader would load the kit's code"),
    ("GCONV_PATH", "glibc would load the kit's code"),
    (
        "GLIBC_TUNABLES",
        "it changes glibc's behaviour in every program",
    ),
    ("PERL5*", "perl would run the kit's code"),
    ("PERLLIB", "perl would load the kit's modules"),
    ("PYTHON*", "python would run or load the kit's code"),
    ("NODE_OPTIONS", "node would run the kit's code"),
    ("RUBY*", "ruby would run or load the kit's code"),
    ("BASH_ENV", "bash would run the kit's code"),
    ("ENV", "sh would run the kit's code"),
    ("BASH_FUNC_*", "bash would run the kit's code"),
    ("SHELLOPTS", "bash would run the kit's code (with PS4)"),
    ("BASHOPTS", "it changes how bash runs every script"),
    ("PS4", "bash would run the kit's code"),
    ("IFS", "it changes how shells split every command"),
    ("JAVA_TOOL_OPTIONS", "the JVM would load the kit's code"),
    ("_JAVA_OPTIONS", "the JVM would load the kit's code"),
    ("PATH", "it chooses which programs run; medic sets it"),
    (
        "OCF_ROOT",
        "it chooses which files an OCF agent runs; medic sets it",
    ),
    (
        "OCF_FUNCTIONS_DIR",
        "it chooses which files an OCF agent runs; medic sets it",
    ),
];

/// `PATH` for every program a kit runs: the system's directories only.
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// `OCF_ROOT` for every program a kit runs: where resource-agents lives.
pub const OCF_ROOT: &str = "/usr/lib/ocf";

/// What medic puts into the environment of every program a kit runs,
/// before anything the kit sets (which can never name these).
pub fn base_env() -> [(&'static str, String); 3] {
    [
        ("PATH", SYSTEM_PATH.to_owned()),
        ("OCF_ROOT", OCF_ROOT.to_owned()),
        ("OCF_FUNCTIONS_DIR", format!("{OCF_ROOT}/lib/heartbeat")),
    ]
}

/// Whether `pattern` (a name, or a prefix ending in `*`) covers `name`.
pub(crate) fn covers(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

/// Why no grant can open `name`, if none can.
pub fn never_granted(name: &str) -> Option<&'static str> {
    NEVER
        .iter()
        .find(|(pattern, _)| covers(pattern, name))
        .map(|(_, why)| *why)
}

/// Checks one `[grants] env` entry: a variable name (letters, digits, `_`),
/// or a prefix of one ending in `*`, that opens no name that can never be
/// granted.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    let stem = pattern.strip_suffix('*').unwrap_or(pattern);
    if stem.is_empty() {
        return Err(format!(
            "`{pattern}` would grant every name; grant names, or prefixes such as OCF_RESKEY_*"
        ));
    }
    if !stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{pattern}` is not a variable name (letters, digits and _) or a prefix ending in *"
        ));
    }
    let is_prefix = pattern.ends_with('*');
    // A grant may not name, or (as a prefix) reach, a name no grant opens.
    let clash = NEVER.iter().find(|(never, _)| {
        let never_stem = never.strip_suffix('*').unwrap_or(never);
        covers(never, stem) || (is_prefix && never_stem.starts_with(stem))
    });
    match clash {
        Some((never, why)) if covers(never, stem) => {
            Err(format!("`{pattern}` can never be granted: {why}"))
        }
        Some((never, why)) => Err(format!(
            "`{pattern}` would also grant {never}, which can never be granted ({why}); grant narrower prefixes"
        )),
        None => Ok(()),
    }
}

/// The `[grants] env` of one app, checked on every `host.run`.
#[derive(Debug, Clone, Default)]
pub struct EnvGrant {
    patterns: Vec<String>,
}

impl EnvGrant {
    /// The grant of these (already checked) patterns.
    pub fn new(patterns: &[String]) -> Self {
        Self {
            patterns: patterns.to_vec(),
        }
    }

    /// Whether a kit may set `name` for a program it runs; `Err` says why
    /// not, for the kit and the journal.
    pub fn allows(&self, name: &str) -> Result<(), String> {
        if let Some(why) = never_granted(name) {
            return Err(format!("{name} can never be granted: {why}"));
        }
        if self.patterns.iter().any(|pattern| covers(pattern, name)) {
            Ok(())
        } else {
            Err(format!("{name} is not in the app's [grants] env"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_granted_names_pass_and_never_the_dangerous_ones() {
        let grant = EnvGrant::new(&["OCF_RESKEY_*".into(), "LANG".into()]);
        assert_eq!(grant.allows("OCF_RESKEY_config"), Ok(()));
        assert_eq!(grant.allows("LANG"), Ok(()));
        assert!(
            grant
                .allows("LANGUAGE")
                .unwrap_err()
                .contains("[grants] env")
        );
        assert!(
            grant
                .allows("PERL5OPT")
                .unwrap_err()
                .contains("can never be granted")
        );
        assert!(grant.allows("PATH").unwrap_err().contains("medic sets it"));
        assert!(
            EnvGrant::default().allows("LANG").is_err(),
            "nothing by default"
        );
    }

    #[test]
    fn patterns_that_reach_a_dangerous_name_are_refused() {
        for ok in [
            "OCF_RESKEY_*",
            "LANG",
            "TZ",
            "MY_APP_*",
            "OCF_RESOURCE_INSTANCE",
        ] {
            assert_eq!(check_pattern(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("*", "every name"),
            ("PATH", "can never be granted"),
            ("LD_PRELOAD", "can never be granted"),
            ("LD_*", "can never be granted"),
            ("PERL5OPT", "can never be granted"),
            ("PYTHONPATH", "can never be granted"),
            ("OCF_*", "would also grant OCF_ROOT"),
            ("P*", "would also grant"),
            ("BASH*", "would also grant"),
            ("LANG-X", "not a variable name"),
        ] {
            let error = check_pattern(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
