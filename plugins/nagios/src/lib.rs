//! Recovery kit `nagios`: runs any Nagios/monitoring-plugins check as it
//! is, and takes its verdict by the plugin API's exit codes.
//!
//! | exit | plugin state | medic |
//! |---|---|---|
//! | 0 | OK | healthy |
//! | 1 | WARNING | degraded |
//! | 2 | CRITICAL | failed |
//! | 3 | UNKNOWN | unknown |
//! | other | (not a plugin state) | unknown |
//! | killed (at its timeout) | (timed out) | failed |
//!
//! The text of the output's first line (before `|`) is the reason; its
//! performance data (after `|`) is added to the check's journal event as
//! `perfdata`. UNKNOWN means the plugin could not tell (bad arguments, no
//! such host...), which no restart of the app changes, so medic alerts and
//! waits. A plugin killed at its timeout did not get an answer in time,
//! which Nagios itself counts as CRITICAL by default.

use medic_kit::{
    Capability, CheckResult, Command, Context, ExecOutput, Health, Kit, KitInfo, SettingDoc,
    export, host,
};

/// Where Debian's monitoring-plugins live, for the docs.
const PLUGIN_DIR: &str = "/usr/lib/nagios/plugins";

/// The environment plugins run with besides the `PATH` medic sets: the C
/// locale, so their output does not depend on the system's. The app's
/// `[grants] env` must open it.
const ENV: [(&str, &str); 1] = [("LC_ALL", "C")];

/// The kit; all state lives in the app's settings.
struct Nagios;

impl Kit for Nagios {
    fn env_wanted() -> Vec<String> {
        ENV.iter().map(|(key, _)| (*key).to_owned()).collect()
    }

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
                SettingDoc::optional(
                    "timeout_ms",
                    "Longest the plugin may run, in milliseconds. It is always killed \
                     shortly before the app's `timeout`; set this only to stop it sooner \
                     (and give the plugin its own `-t` below either). Default: all of \
                     that time (10000 on hosts before medic:kit 0.1.2).",
                ),
            ],
            wants: vec![Capability::Exec("plugin".into())],
        }
    }

    fn check(ctx: &Context) -> Health {
        medic_kit::verdict(run(ctx))
    }
}

/// How long the plugin may run when neither `timeout_ms` nor the call's
/// deadline says (a host before medic:kit 0.1.2).
const TIMEOUT_MS: u32 = 10_000;

/// Runs the plugin and takes its verdict. Settings that do not say what to
/// run are `unknown`; a plugin that cannot be started is `failed`, as it
/// always was (one outside `[grants] exec` is a kit fault, by the host).
fn run(ctx: &Context) -> CheckResult {
    let plugin = ctx.require("plugin")?;
    let args = shlex::split(ctx.setting("args").unwrap_or_default())
        .ok_or_else(|| Health::Unknown("setting `args` has an unclosed quote".into()))?;
    let timeout_ms = ctx.timeout_ms_setting("timeout_ms", TIMEOUT_MS)?;
    let mut command = Command::new(plugin).args(&args).timeout_ms(timeout_ms);
    for (key, value) in ENV {
        command = command.env(key, value);
    }
    let output = command
        .run()
        .map_err(|e| Health::Failed(format!("cannot run {plugin}: {e}")))?;
    let (_, perfdata) = first_line(&output.stdout);
    if let Some(perfdata) = perfdata {
        host::annotate("perfdata", perfdata);
    }
    Ok(verdict(plugin, &output))
}

/// The plugin's verdict by its exit code, with the text of its first line
/// as the reason.
fn verdict(plugin: &str, output: &ExecOutput) -> Health {
    let text = match first_line(&output.stdout).0 {
        "" => format!("{plugin} printed nothing"),
        text => text.to_owned(),
    };
    match output.exit_code {
        Some(0) => Health::Healthy,
        Some(1) => Health::Degraded(text),
        Some(2) => Health::Failed(text),
        // The plugin could not tell: name it, the admin has to look at it.
        Some(3) => Health::Unknown(format!("{plugin} exited 3 (UNKNOWN): {text}")),
        // Nagios reads any other code as UNKNOWN too.
        Some(code) => Health::Unknown(format!(
            "{plugin} exited {code} (not a plugin state): {text}"
        )),
        None => Health::Failed(format!("{plugin} was killed: {}", output.stderr.trim())),
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

    /// What a plugin that exited `code` and printed `stdout` leaves.
    fn exited(code: Option<i32>, stdout: &str) -> ExecOutput {
        ExecOutput {
            exit_code: code,
            stdout: stdout.into(),
            stderr: if code.is_none() {
                "killed after 4500 ms".into()
            } else {
                String::new()
            },
            truncated: false,
        }
    }

    #[test]
    fn exit_codes_map_to_verdicts() {
        let plugin = "/usr/lib/nagios/plugins/check_http";
        let verdict = |code, stdout| verdict(plugin, &exited(code, stdout));
        assert_eq!(verdict(Some(0), "HTTP OK | time=1s"), Health::Healthy);
        assert_eq!(
            verdict(Some(1), "HTTP WARNING: slow | time=3s"),
            Health::Degraded("HTTP WARNING: slow".into())
        );
        assert_eq!(
            verdict(
                Some(2),
                "connect to address 127.0.0.1 port 80: Connection refused\n"
            ),
            Health::Failed("connect to address 127.0.0.1 port 80: Connection refused".into())
        );
        assert_eq!(
            verdict(Some(3), "check_http: Invalid option - --no-such-option\n"),
            Health::Unknown(format!(
                "{plugin} exited 3 (UNKNOWN): check_http: Invalid option - --no-such-option"
            ))
        );
        assert_eq!(
            verdict(Some(127), ""),
            Health::Unknown(format!(
                "{plugin} exited 127 (not a plugin state): {plugin} printed nothing"
            ))
        );
        assert_eq!(
            verdict(None, ""),
            Health::Failed(format!("{plugin} was killed: killed after 4500 ms"))
        );
    }

    #[test]
    fn settings_that_say_nothing_to_run_are_unknown() {
        medic_kit::testing::assert_unknown_for(
            &[
                &[],
                &[("plugin", "")],
                &[("plugin", "/bin/check"), ("args", "-H 'x")],
                &[("plugin", "/bin/check"), ("timeout_ms", "0")],
                &[("plugin", "/bin/check"), ("timeout_ms", "ten")],
            ],
            run,
        );
    }

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
