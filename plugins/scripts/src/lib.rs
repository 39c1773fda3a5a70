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

use medic_kit::{
    Capability, Command, Context, ExecOutput, Health, Kit, KitInfo, NextStep, SettingDoc, export,
};

/// The environment scripts run with: a fixed PATH and the app's name.
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// The kit; all state lives in the app's settings.
struct Scripts;

impl Kit for Scripts {
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
                SettingDoc::with_default(
                    "timeout_ms",
                    "10000",
                    "Longest one script may run, in milliseconds; keep it below the \
                     app's `timeout`.",
                ),
            ],
            wants: vec![
                Capability::Exec("quick_check".into()),
                Capability::Exec("recover, remove, restore (those set)".into()),
            ],
        }
    }

    fn check(ctx: &Context) -> Health {
        let outcome = ctx
            .require("quick_check")
            .and_then(|script| run(ctx, script));
        match outcome {
            Ok(output) if output.exit_code == Some(0) => Health::Healthy,
            Ok(output) => Health::Failed(said("quick_check", &output)),
            Err(reason) => Health::Failed(reason),
        }
    }

    fn recover(ctx: &Context) -> Result<NextStep, String> {
        let mut failed = Vec::new();
        if let Some(script) = ctx.setting("recover") {
            match run(ctx, script)? {
                output if output.exit_code == Some(0) => return Ok(NextStep::Done),
                output => failed.push(said("recover", &output)),
            }
        }
        match (ctx.setting("remove"), ctx.setting("restore")) {
            (Some(remove), Some(restore)) => {
                // A failing remove is not fatal: the app is often down already.
                let removed = run(ctx, remove)?;
                if removed.exit_code != Some(0) {
                    failed.push(said("remove", &removed));
                }
                match run(ctx, restore)? {
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

/// Runs one script with `-t TAG -i ID`.
fn run(ctx: &Context, script: &str) -> Result<ExecOutput, String> {
    let tag = ctx.setting("tag").unwrap_or(&ctx.app);
    let id = ctx.setting("id").unwrap_or(tag);
    let timeout_ms = ctx.parse_or("timeout_ms", 10_000u32)?;
    Command::new(script)
        .args(["-t", tag, "-i", id])
        .env("PATH", PATH)
        .env("MEDIC_APP", &ctx.app)
        .timeout_ms(timeout_ms)
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
