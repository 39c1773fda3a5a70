//! Recovery kit `nagios`: runs any Nagios/monitoring-plugins check as it
//! is, and takes its verdict by the plugin API's exit codes.
//!
//! | exit | plugin state | medic |
//! |---|---|---|
//! | 0 | OK | healthy |
//! | 1 | WARNING | degraded |
//! | 2 | CRITICAL | failed |
//! | 3 | UNKNOWN | kit fault |
//! | other, or killed | — | kit fault |
//!
//! The text of the output's first line (before `|`) is the reason; its
//! performance data (after `|`) is added to the check's journal event as
//! `perfdata`. UNKNOWN means the plugin could not tell (bad arguments, no
//! such host...), which says nothing about the app, so it is a kit fault
//! (the kit traps with the plugin's text) and never leads to recovery.

use medic_kit::{Capability, Command, Context, Health, Kit, KitInfo, SettingDoc, export, host};

/// Where Debian's monitoring-plugins live, for the docs.
const PLUGIN_DIR: &str = "/usr/lib/nagios/plugins";

/// The environment plugins run with: a fixed PATH and the C locale, so
/// their output does not depend on medic's own environment.
const ENV: [(&str, &str); 2] = [("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), ("LC_ALL", "C")];

/// The kit; all state lives in the app's settings.
struct Nagios;

impl Kit for Nagios {
    fn describe() -> KitInfo {
        KitInfo {
            name: "nagios".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Runs a Nagios plugin (monitoring-plugins) and maps OK/WARNING/CRITICAL \
                      to healthy/degraded/failed."
                .into(),
            settings: vec![
                SettingDoc::required(
                    "plugin",
                    &format!(
                        "Absolute path of the plugin, e.g. {PLUGIN_DIR}/check_http; it must \
                         be in `[grants] exec`."
                    ),
                ),
                SettingDoc::optional(
                    "args",
                    "The plugin's arguments, split like a shell would (quotes group), \
                     but never run through a shell.",
                ),
                SettingDoc::with_default(
                    "timeout_ms",
                    "10000",
                    "Longest the plugin may run, in milliseconds; keep it below the app's \
                     `timeout` (and give the plugin its own `-t` below this).",
                ),
            ],
            wants: vec![Capability::Exec("plugin".into())],
        }
    }

    fn check(ctx: &Context) -> Health {
        match run(ctx) {
            Ok(verdict) => verdict,
            Err(reason) => Health::Failed(reason),
        }
    }
}

/// Runs the plugin and takes its verdict; `Err` is a reason the app is
/// failed that comes from the kit's own settings.
fn run(ctx: &Context) -> Result<Health, String> {
    let plugin = ctx.require("plugin")?;
    let args = shlex::split(ctx.setting("args").unwrap_or_default())
        .ok_or("setting `args` has an unclosed quote")?;
    let timeout_ms = ctx.parse_or("timeout_ms", 10_000u32)?;
    let mut command = Command::new(plugin).args(&args).timeout_ms(timeout_ms);
    for (key, value) in ENV {
        command = command.env(key, value);
    }
    let output = command
        .run()
        .map_err(|e| format!("cannot run {plugin}: {e}"))?;
    let (text, perfdata) = first_line(&output.stdout);
    if let Some(perfdata) = perfdata {
        host::annotate("perfdata", perfdata);
    }
    let text = match text {
        "" => format!("{plugin} printed nothing"),
        text => text.to_owned(),
    };
    match output.exit_code {
        Some(0) => Ok(Health::Healthy),
        Some(1) => Ok(Health::Degraded(text)),
        Some(2) => Ok(Health::Failed(text)),
        // UNKNOWN and anything else say nothing about the app: a kit fault,
        // with the plugin's words in it.
        Some(code) => panic!("{plugin} exited {code} (UNKNOWN): {text}"),
        None => panic!("{plugin} was killed: {}", output.stderr.trim()),
    }
}

/// The text and the performance data of a plugin's first output line
/// (`TEXT | PERFDATA`).
fn first_line(stdout: &str) -> (&str, Option<&str>) {
    let line = stdout.lines().next().unwrap_or_default();
    match line.split_once('|') {
        Some((text, perfdata)) => (text.trim(), Some(perfdata.trim()).filter(|p| !p.is_empty())),
        None => (line.trim(), None),
    }
}

export!(Nagios);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_text_from_perfdata() {
        assert_eq!(
            first_line("HTTP OK: 200 - 5 bytes | time=0.001s;;;0 size=5B;;;0\nlong text\n"),
            (
                "HTTP OK: 200 - 5 bytes",
                Some("time=0.001s;;;0 size=5B;;;0")
            )
        );
        assert_eq!(first_line("TCP OK\n"), ("TCP OK", None));
        assert_eq!(first_line("WARN |  \n"), ("WARN", None));
        assert_eq!(first_line(""), ("", None));
    }
}
