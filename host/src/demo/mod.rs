//! The embedded demo configuration run by `medic daemon` without
//! `--config` (and by `cargo xtask demo`): one small web app watched by the
//! http kit, dry-run escalation, everything under the dist directory.

use std::path::{Path, PathBuf};

use crate::config::{self, Config, ConfigErrors, Source};

const MAIN: &str = include_str!("medic.toml");
const APP: &str = include_str!("demo-web.toml");
/// Where the embedded config says it comes from, in errors and the journal.
const ORIGIN: &str = "<embedded demo>";

/// The dist directory: the parent of the directory holding the running
/// binary (`target/dist/bin/medic` → `target/dist`).
fn dist_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The demo config, with paths pointing into the dist directory.
pub fn config() -> Result<Config, ConfigErrors> {
    let dist = dist_dir();
    let fill = |text: &str| text.replace("@DIST@", &dist.to_string_lossy());
    let origin = PathBuf::from(ORIGIN);
    config::load_from(
        Source {
            origin: origin.join("medic.toml"),
            text: fill(MAIN),
        },
        &dist,
        vec![Source {
            origin: origin.join("demo-web.toml"),
            text: fill(APP),
        }],
    )
}

/// Whether `config` is the embedded demo.
pub fn is_demo(config: &Config) -> bool {
    config.source.starts_with(ORIGIN)
}

/// Tells the newcomer what runs and how to see medic at work.
pub fn print_banner(config: &Config) {
    println!(
        "medic demo: dry-run escalation, state in {}",
        config.daemon.state_dir.display()
    );
    for app in &config.apps {
        let url = app
            .settings
            .iter()
            .find(|(k, _)| k == "url")
            .map_or("", |(_, v)| v.as_str());
        println!(
            "  watching {} with kit {} every {}: {url}",
            app.name,
            app.kit,
            humantime::format_duration(app.interval)
        );
        if let Some(pidfile) = &app.pidfile {
            println!(
                "  try: kill -9 $(cat {}) and watch medic bring it back",
                pidfile.display()
            );
        }
    }
    println!(
        "  journal: {} events --follow --socket {}; Ctrl-C stops medic",
        std::env::args()
            .next()
            .unwrap_or_else(|| "medic".to_owned()),
        config.daemon.socket.display()
    );
}
