//! `medic kit new` and `medic kit componentize`: what a kit author needs
//! from medic besides a compiler. `new` writes a ready-to-build kit in one
//! of the supported languages, with the WIT of this medic (and, for C, the
//! bindings generated from it); `componentize` wraps a C (or any
//! preview1) core module into a component with the WASI preview1 adapter.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_component::ComponentEncoder;
use wit_parser::Resolve;

/// The languages `medic kit new` has a template for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust with wit-bindgen.
    Rust,
    /// Python with componentize-py.
    Python,
    /// JavaScript with componentize-js.
    Js,
    /// C with clang, wasi-libc and wit-bindgen's C bindings.
    C,
}

/// The WIT package every template is built against: this medic's own.
const WIT: [(&str, &str); 2] = [
    ("wit/types.wit", include_str!("../../../wit/types.wit")),
    ("wit/world.wit", include_str!("../../../wit/world.wit")),
];

/// The world a kit is built for.
const WORLD: &str = "recovery-kit";

/// A template's files: path in the new kit, text with `{{name}}` and
/// `{{crate}}` placeholders.
fn template(lang: Lang) -> &'static [(&'static str, &'static str)] {
    macro_rules! files {
        ($dir:literal: $($file:literal),+) => {
            &[$(($file, include_str!(concat!("../../../sdk/templates/", $dir, "/", $file)))),+]
        };
    }
    match lang {
        Lang::Rust => files!("rust": "Cargo.toml", "src/lib.rs", "build.sh", "README.md"),
        Lang::Python => files!("python": "app.py", "build.sh", "README.md"),
        Lang::Js => files!("js": "kit.js", "build.mjs", "package.json", "build.sh", "README.md"),
        Lang::C => files!("c": "kit.c", "build.sh", "README.md"),
    }
}

pub(super) fn new(lang: Lang, name: &str, dir: Option<&Path>) -> ExitCode {
    let target = dir.map_or_else(|| PathBuf::from(name), |dir| dir.join(name));
    match write_template(lang, name, &target) {
        Ok(()) => {
            println!(
                "wrote {}: build it with `sh {}/build.sh` (see its README.md)",
                target.display(),
                target.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("medic: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn write_template(lang: Lang, name: &str, target: &Path) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid {
        bail!("kit name {name:?}: use lower-case letters, digits and `-`, starting with a letter");
    }
    if target.exists() {
        bail!("{} already exists", target.display());
    }
    let crate_name = name.replace('-', "_");
    for (path, text) in WIT.iter().chain(template(lang)) {
        let text = text
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name);
        write(&target.join(path), text.as_bytes())?;
    }
    if lang == Lang::C {
        c_bindings(&target.join("wit"), &target.join("bindings"))?;
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Generates the C bindings of the kit world (`recovery_kit.h`, `.c` and
/// `_component_type.o`) into `out`.
fn c_bindings(wit: &Path, out: &Path) -> anyhow::Result<()> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_path(wit)?;
    let world = resolve.select_world(&[package], Some(WORLD))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)?;
    for (name, bytes) in files.iter() {
        write(&out.join(name), bytes)?;
    }
    Ok(())
}

pub(super) fn componentize(core: &Path, out: &Path) -> ExitCode {
    match encode(core, out) {
        Ok(size) => {
            println!("{}: {size} bytes", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("medic: {}: {e:#}", core.display());
            ExitCode::FAILURE
        }
    }
}

/// Wraps the core module `core` (with its embedded component type, as
/// wit-bindgen's bindings leave it) into a component at `out`, adapting
/// WASI preview1 imports with the reactor adapter.
fn encode(core: &Path, out: &Path) -> anyhow::Result<usize> {
    let module = std::fs::read(core).context("cannot read the core module")?;
    let component = ComponentEncoder::default()
        .validate(true)
        .module(&module)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()?;
    write(out, &component)?;
    Ok(component.len())
}
