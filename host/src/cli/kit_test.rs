//! `medic kit test`: one kit, one app file, one run of `describe`, `check`
//! and, when asked, `recover`, with the app's real grants; what happened is
//! printed for a kit author iterating on a kit, denied capabilities
//! included. Nothing is supervised: medic's own `stop`/`start` and
//! escalation never run, and kit state lives in a scratch directory.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::check;
use crate::config::AppSpec;
use crate::sandbox::KitFault;
use crate::supervisor::{AppCheck, KitRecovery};

pub(super) fn run(file: &Path, app_file: &Path, recover: bool) -> ExitCode {
    let spec = match crate::config::load_app(app_file) {
        Ok(spec) => spec,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(check::UNKNOWN);
        }
    };
    let outcome = super::runtime().and_then(|rt| rt.block_on(exercise(file, &spec, recover)));
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("medic: {}: {e:#}", file.display());
            ExitCode::from(check::UNKNOWN)
        }
    }
}

/// Loads the kit, runs its exports and prints each result; returns the
/// check's verdict as an exit code (as `medic check` does).
async fn exercise(file: &Path, spec: &AppSpec, recover: bool) -> anyhow::Result<u8> {
    let scratch = tempfile::tempdir()?;
    let loading = Instant::now();
    let kit = super::load_kit_reporting(file, &crate::signing::KitTrust::default())?;
    println!("loaded   {} in {}", file.display(), ms(loading.elapsed()));
    let runtime = crate::daemon::build_runtime(
        spec,
        kit.clone(),
        scratch.path(),
        std::time::Instant::now(),
        Duration::ZERO,
    );
    let info = kit
        .describe(runtime.scope.clone(), super::inspect::DESCRIBE_TIMEOUT)
        .await?;
    println!("describe {} {}: {}", info.name, info.version, info.summary);
    println!("app      {} ({})", spec.name, spec.source.display());

    let started = Instant::now();
    let checked = kit
        .check(runtime.scope.clone(), spec.timeout, &spec.settings)
        .await;
    let took = started.elapsed();
    let hint = matches!(checked, Err(KitFault::Denied(_)));
    let AppCheck {
        outcome,
        process,
        annotations,
    } = checked.into();
    let (code, line) = check::verdict_of(&outcome);
    println!("check    {line} ({})", ms(took));
    for (key, value) in annotations {
        println!("         annotated {key} = {value}");
    }
    if let Some(process) = process {
        println!(
            "         reported process {} (medic would watch it)",
            process.pid()
        );
    }
    if hint {
        println!("         (grant it in the app's [grants] if the kit should have it)");
    }
    if recover {
        let started = Instant::now();
        let recovery = runtime.kit_recover(1).await;
        println!(
            "recover  {} ({})",
            describe(&recovery),
            ms(started.elapsed())
        );
    }
    Ok(code)
}

/// What medic would do after this `recover`.
fn describe(recovery: &KitRecovery) -> String {
    match recovery {
        KitRecovery::Done => "done: medic would check again".to_owned(),
        KitRecovery::RestartApp => {
            "restart-app: medic would run the app's stop and start commands".to_owned()
        }
        KitRecovery::Escalate(reason) => {
            format!("escalate: {reason} (medic would go to the app's `then` step)")
        }
        KitRecovery::Failed(error) => format!("error: {error} (an attempt spent)"),
        KitRecovery::KitFault(fault) => format!("kit fault: {fault}"),
    }
}

fn ms(took: Duration) -> String {
    format!("{:.1} ms", took.as_secs_f64() * 1000.0)
}
