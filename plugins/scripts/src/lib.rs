//! Recovery kit `scripts`: an application protected by scripts its admin
//! already has, in the style of LifeKeeper's Generic Application Recovery
//! Kit. Each script is a program of its own (any language), called with
//! `-t TAG -i ID` like LifeKeeper calls them:
//!
//! | script | when | exit 0 | other exit |
//! |---|---|---|---|
//! | `quick_check` | every check | healthy | failed (first line of output as the reason) |
//! | `recover` | first step of local recovery | recovered | go on with `remove` + `restore` |
//! | `remove` | takes the app out of service | stopped | the step failed |
//! | `restore` | puts the app back in service | started | the step failed |
//!
//! Without `recover`, `remove` and `restore`, the kit asks medic to restart
//! the app with its own `stop` and `start` commands.
//!
//! The convention has no "cannot tell" exit: any exit but 0 is `failed`, as
//! LifeKeeper reads it. Settings that do not say what to run are `unknown`.

use medic_kit::{
    Capability, CheckResult, Command, Context, ExecOutput, Health, Kit, KitInfo, NextStep,
    SettingDoc, export,
};

/// What the kit tells every script besides the `PATH` medic sets: the app's
/// name. The app's `[grants] env` must open it.
const APP_VARIABLE: &str = "MEDIC_APP";

/// The kit; all state lives in the app's settings.
struct Scripts;

impl Kit for Scripts {
    fn env_wanted() -> Vec<String> {
        vec![APP_VARIABLE.to_owned()]
    }

    fn describe() -> KitInfo {
        let script = |key: &str, doc: &str| {
            SettingDoc::optional(
                key,
                &format!("{doc} Absolute path; it must be in `[grants] exec`."),
            )
        };
        KitInfo {
            name: "scripts".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Runs the admin's quickCheck/recover/remove/restore scripts \
                      (LifeKeeper Generic ARK style)."
                .into(),
            settings: vec![
                SettingDoc::required(
                    "quick_check",
                    "Script that checks the app: exit 0 when it is in service. Absolute \
                     path; it must be in `[grants] exec`.",
                ),
                script(
                    "recover",
                    "Script for local recovery: exit 0 when it repaired the app.",
                ),
                script("remove", "Script that takes the app out of service (stop)."),
                script(
                    "restore",
                    "Script that puts the app back in service (start).",
                ),
                SettingDoc::optional(
                    "tag",
                    "The resource tag passed as `-t` (default: the app's name).",
                ),
                SettingDoc::optional("id", "The resource id passed as `-i` (default: the tag)."),
                SettingDoc::optional(
                    "timeout_ms",
                    "Longest one script may run, in milliseconds. A script is always \
                     killed shortly before the call's deadline (the app's `timeout`); \
                     set this only to stop it sooner. Default: all of that time (10000 \
                     on hosts before medic:kit 0.1.2).",
                ),
            ],
            wants: vec![
                Capability::Exec("quick_check".into()),
                Capability::Exec("recover, remove, restore (those set)".into()),
            ],
        }
    }

    fn check(ctx: &Context) -> Health {
        medic_kit::verdict(quick_check(ctx))
    }

    fn recover(ctx: &Context) -> Result<NextStep, String> {
        let mut failed = Vec::new();
        if let Some(script) = ctx.setting("recover") {
            match run_script(ctx, script)? {
                output if output.exit_code == Some(0) => return Ok(NextStep::Done),
                output => failed.push(said("recover", &output)),
            }
        }
        match (ctx.setting("remove"), ctx.setting("restore")) {
            (Some(remove), Some(restore)) => {
                // A failing remove is not fatal: the app is often down already.
                let removed = run_script(ctx, remove)?;
                if removed.exit_code != Some(0) {
                    failed.push(said("remove", &removed));
                }
                match run_script(ctx, restore)? {
                    output if output.exit_code == Some(0) => Ok(NextStep::Done),
                    output => {
                        failed.push(said("restore", &output));
                        Err(failed.join("; "))
                    }
                }
            }
            (None, None) if failed.is_empty() => Ok(NextStep::RestartApp),
            (None, None) => Err(failed.join("; ")),
            _ => Err("set both `remove` and `restore`, or neither".into()),
        }
    }
}

/// How long one script may run when neither `timeout_ms` nor the call's
/// deadline says (a host before medic:kit 0.1.2).
const TIMEOUT_MS: u32 = 10_000;

/// Runs `quick_check`: healthy on exit 0, failed on anything else or when
/// it cannot be started; settings that do not say what to run are
/// `unknown`.
fn quick_check(ctx: &Context) -> CheckResult {
    let script = ctx.require("quick_check")?;
    let command = command(ctx, script)?;
    let output = run(script, &command).map_err(Health::Failed)?;
    match output.exit_code {
        Some(0) => Ok(Health::Healthy),
        _ => Err(Health::Failed(said("quick_check", &output))),
    }
}

/// Runs one script with `-t TAG -i ID`; settings it cannot use are the
/// error, worded for the admin.
fn run_script(ctx: &Context, script: &str) -> Result<ExecOutput, String> {
    run(script, &command(ctx, script)?)
}

/// The command for one script: `-t TAG -i ID`, the kit's environment and
/// the timeout the settings and the deadline allow.
fn command(ctx: &Context, script: &str) -> Result<Command, medic_kit::CannotJudge> {
    let tag = ctx.setting("tag").unwrap_or(&ctx.app);
    let id = ctx.setting("id").unwrap_or(tag);
    Ok(Command::new(script)
        .args(["-t", tag, "-i", id])
        .env(APP_VARIABLE, &ctx.app)
        .timeout_ms(ctx.timeout_ms_setting("timeout_ms", TIMEOUT_MS)?))
}

/// Runs `command`; the error says `script` could not be started.
fn run(script: &str, command: &Command) -> Result<ExecOutput, String> {
    command
        .run()
        .map_err(|e| format!("cannot run {script}: {e}"))
}

/// What a script that did not exit 0 said: its exit and the first line it
/// printed (stdout, else stderr).
fn said(name: &str, output: &ExecOutput) -> String {
    let exit = match output.exit_code {
        Some(code) => format!("exited {code}"),
        None => "was killed".to_owned(),
    };
    let line = [&output.stdout, &output.stderr]
        .into_iter()
        .find_map(|text| text.lines().map(str::trim).find(|l| !l.is_empty()));
    match line {
        Some(line) => format!("{name} {exit}: {line}"),
        None => format!("{name} {exit}"),
    }
}

export!(Scripts);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> Context {
        Context::with_settings("fwui", pairs)
    }

    #[test]
    fn settings_that_say_nothing_to_run_are_unknown() {
        medic_kit::testing::assert_unknown_for(
            &[
                &[],
                &[("quick_check", " ")],
                &[("quick_check", "/opt/lk/quickCheck"), ("timeout_ms", "0")],
                &[("quick_check", "/opt/lk/quickCheck"), ("timeout_ms", "1m")],
            ],
            quick_check,
        );
    }

    #[test]
    fn scripts_get_tag_id_and_a_bounded_timeout() {
        let c = ctx(&[("tag", "web"), ("timeout_ms", "30000")]);
        let command = command(&c, "/opt/lk/quickCheck").unwrap();
        let request = command.request();
        assert_eq!(request.args.join(" "), "-t web -i web");
        // 30 s asked, but the call's deadline (5 s in tests) comes first.
        let timeout = request.timeout_ms;
        assert!((4_000..=4_500).contains(&timeout), "{timeout}");
    }

    #[test]
    fn a_failed_script_is_quoted() {
        let output = ExecOutput {
            exit_code: Some(1),
            stdout: "not in service\n".into(),
            stderr: String::new(),
            truncated: false,
        };
        assert_eq!(
            said("quick_check", &output),
            "quick_check exited 1: not in service"
        );
    }
}
