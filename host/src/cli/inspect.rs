//! `medic kit inspect`: what a kit says about itself, or why the file is not
//! a kit. Nothing is granted to the kit while it describes itself.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use crate::config::Grants;
use crate::sandbox::{CallScope, Capability, KitEngine, KitInfo};

/// How long `describe` may take.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Memory `describe` may use.
const DESCRIBE_MEMORY: usize = 64 << 20;

/// The JSON form of a kit's self-description.
#[derive(Debug, Serialize)]
struct Description {
    file: String,
    sha256: String,
    name: String,
    version: String,
    summary: String,
    settings: Vec<SettingDoc>,
    wants: Vec<Want>,
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

pub(super) fn run(file: &Path, json: bool) -> ExitCode {
    match describe(file) {
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

fn describe(file: &Path) -> anyhow::Result<Description> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let engine = KitEngine::new(super::user_kit_cache())?;
        let kit = engine.load(file)?;
        let scratch = tempfile::tempdir()?;
        let scope = CallScope::new(
            "inspect",
            &Grants::default(),
            scratch.path().join("state.json"),
            DESCRIBE_MEMORY,
        );
        let info = kit.describe(scope, DESCRIBE_TIMEOUT).await?;
        Ok(from_info(file, kit.sha256(), info))
    })
}

fn from_info(file: &Path, sha256: &str, info: KitInfo) -> Description {
    Description {
        file: file.display().to_string(),
        sha256: sha256.to_owned(),
        name: info.name,
        version: info.version,
        summary: info.summary,
        settings: info
            .settings
            .into_iter()
            .map(|s| SettingDoc {
                key: s.key,
                required: s.required,
                default: s.default,
                doc: s.doc,
            })
            .collect(),
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
            .collect(),
    }
}

fn render(d: &Description) -> String {
    let mut out = format!("{} {}\n  {}\n\nsettings:\n", d.name, d.version, d.summary);
    for s in &d.settings {
        let note = match (&s.default, s.required) {
            (_, true) => "required".to_owned(),
            (Some(default), false) => format!("default {default}"),
            (None, false) => "optional".to_owned(),
        };
        out += &format!("  {:<16} {:<20} {}\n", s.key, format!("({note})"), s.doc);
    }
    out += "\nwants (grant in the app's [grants]):\n";
    for w in &d.wants {
        out += &format!("  {:<8} {}\n", w.grant, w.target);
    }
    if d.wants.is_empty() {
        out += "  nothing\n";
    }
    out += &format!("\nfile:   {}\nsha256: {}\n", d.file, d.sha256);
    out
}
