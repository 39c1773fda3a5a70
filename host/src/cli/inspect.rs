//! `medic kit inspect`: what a kit says about itself, or why the file is not
//! a kit. Nothing is granted to the kit while it describes itself; with
//! `--app`, a kit that exports `inspect` is also asked, with that app's
//! settings and grants, which settings it reads for the app (an OCF agent's
//! parameters).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use crate::config::Grants;
use crate::sandbox::{CallScope, Capability, Kit, KitInfo};
use crate::signing::{KitTrust, Provenance};

/// How long `describe` may take.
pub(super) const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Memory `describe` may use.
const DESCRIBE_MEMORY: usize = 64 << 20;

/// The JSON form of a kit's self-description.
#[derive(Debug, Serialize)]
struct Description {
    file: String,
    sha256: String,
    /// Who signed the file (`kit.wasm.minisig`).
    #[serde(serialize_with = "provenance_json")]
    signer: Provenance,
    name: String,
    version: String,
    summary: String,
    settings: Vec<SettingDoc>,
    wants: Vec<Want>,
    /// With `--app`: what the kit reads for that app.
    #[serde(skip_serializing_if = "Option::is_none")]
    app: Option<ForApp>,
}

/// The kit's answer for one app (`--app`).
#[derive(Debug, Serialize)]
struct ForApp {
    name: String,
    /// `None` when the kit does not export `inspect`.
    settings: Option<Vec<SettingDoc>>,
    /// Why the kit could not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct SettingDoc {
    key: String,
    required: bool,
    default: Option<String>,
    doc: String,
}

#[derive(Debug, Serialize)]
struct Want {
    grant: &'static str,
    target: String,
}

pub(super) fn run(file: &Path, app: Option<&Path>, config: Option<&Path>, json: bool) -> ExitCode {
    match describe(file, app, config) {
        Ok(description) if json => match serde_json::to_string_pretty(&description) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("medic: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(description) => {
            print!("{}", render(&description));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("medic: {}: {e:#}", file.display());
            ExitCode::FAILURE
        }
    }
}

fn describe(file: &Path, app: Option<&Path>, config: Option<&Path>) -> anyhow::Result<Description> {
    let app = app.map(crate::config::load_app).transpose()?;
    let trust = match config {
        Some(path) => {
            let daemon = crate::config::load(path)?.daemon;
            KitTrust::load(&daemon.trusted_keys, daemon.require_signed)?
        }
        None => KitTrust::default(),
    };
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let kit = super::load_kit_reporting(file, &trust)?;
        let scratch = tempfile::tempdir()?;
        let scope = CallScope::new(
            "inspect",
            &Grants::default(),
            scratch.path().join("state.json"),
            DESCRIBE_MEMORY,
        );
        let info = kit.describe(scope.clone(), DESCRIBE_TIMEOUT).await?;
        let env = kit.env_wanted(scope, DESCRIBE_TIMEOUT).await?;
        let mut description = from_info(file, &kit, info, env);
        if let Some(spec) = app {
            let app_runtime = crate::daemon::build_runtime(
                &spec,
                kit.clone(),
                scratch.path(),
                std::time::Instant::now(),
                Duration::ZERO,
            );
            let answer = kit
                .app_settings(app_runtime.scope.clone(), spec.timeout, &spec.settings)
                .await;
            let (settings, error) = match answer {
                Ok(None) => (None, None),
                Ok(Some(Ok(settings))) => {
                    (Some(settings.into_iter().map(setting_doc).collect()), None)
                }
                Ok(Some(Err(e))) => (None, Some(e)),
                Err(fault) => (None, Some(format!("kit fault: {fault}"))),
            };
            description.app = Some(ForApp {
                name: spec.name,
                settings,
                error,
            });
        }
        Ok(description)
    })
}

fn setting_doc(s: crate::sandbox::SettingDoc) -> SettingDoc {
    SettingDoc {
        key: s.key,
        required: s.required,
        default: s.default,
        doc: s.doc,
    }
}

fn from_info(file: &Path, kit: &Kit, info: KitInfo, env: Vec<String>) -> Description {
    Description {
        file: file.display().to_string(),
        sha256: kit.sha256().to_owned(),
        signer: kit.provenance().clone(),
        name: info.name,
        version: info.version,
        summary: info.summary,
        settings: info.settings.into_iter().map(setting_doc).collect(),
        wants: info
            .wants
            .into_iter()
            .map(|want| match want {
                Capability::Read(target) => Want {
                    grant: "read",
                    target,
                },
                Capability::Connect(target) => Want {
                    grant: "connect",
                    target,
                },
                Capability::Exec(target) => Want {
                    grant: "exec",
                    target,
                },
            })
            .chain(env.into_iter().map(|target| Want {
                grant: "env",
                target,
            }))
            .collect(),
        app: None,
    }
}

fn render(d: &Description) -> String {
    let mut out = format!("{} {}\n  {}\n\nsettings:\n", d.name, d.version, d.summary);
    out += &render_settings(&d.settings);
    out += "\nwants (grant in the app's [grants]):\n";
    for w in &d.wants {
        out += &format!("  {:<8} {}\n", w.grant, w.target);
    }
    if d.wants.is_empty() {
        out += "  nothing\n";
    }
    if let Some(app) = &d.app {
        out += &format!(
            "\nsettings for app {} (asked of the kit with the app's grants):\n",
            app.name
        );
        match (&app.settings, &app.error) {
            (Some(settings), _) => out += &render_settings(settings),
            (None, Some(error)) => out += &format!("  the kit could not say: {error}\n"),
            (None, None) => out += "  the kit does not describe settings per app\n",
        }
    }
    out += &format!(
        "\nfile:   {}\nsha256: {}\nsigner: {}\n",
        d.file, d.sha256, d.signer
    );
    out
}

/// One line per setting: key, whether it is required or its default, doc.
fn render_settings(settings: &[SettingDoc]) -> String {
    settings
        .iter()
        .map(|s| {
            let note = match (&s.default, s.required) {
                (_, true) => "required".to_owned(),
                (Some(default), false) => format!("default {default}"),
                (None, false) => "optional".to_owned(),
            };
            format!("  {:<16} {:<20} {}\n", s.key, format!("({note})"), s.doc)
        })
        .collect()
}

/// `signer` in `--json`: as `kit_loaded` journals it.
fn provenance_json<S: serde::Serializer>(
    provenance: &Provenance,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    provenance.to_json().serialize(serializer)
}
