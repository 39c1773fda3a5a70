//! Project tasks behind the README's commands:
//!
//! - `cargo xtask demo`  — build everything, run the daemon on the embedded demo config
//! - `cargo xtask test`  — install what the tests need, then fmt, clippy and every test
//! - `cargo xtask dist`  — `target/dist/bin/medic` and `target/dist/kits/*.wasm`
//! - `cargo xtask bench` — the check-cost and daemon benchmarks (see docs/benchmarks.md)

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

mod bench_doc;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the dist tree and run the demo daemon in the foreground.
    Demo,
    /// Install test needs, then cargo fmt --check, clippy -D warnings, all tests.
    Test,
    /// Build target/dist/bin/medic, target/dist/kits/*.wasm and the example
    /// kits of every language, target/dist/kits/examples/<lang>-http.wasm.
    Dist {
        /// Build the host with the dev profile (dependencies optimised; shares
        /// the test build) instead of release.
        #[arg(long)]
        dev: bool,
    },
    /// Run the benchmarks and write what they print into docs/benchmarks.md
    /// (the previous results are kept below as history).
    Bench,
}

/// Guest workspaces: (directory, kits it builds, copied into dist).
const KITS: &str = "plugins";
const BUNDLED: &[&str] = &[
    "http", "tcp", "process", "nagios", "ocf", "scripts", "redis", "postgres", "nginx",
];
const GUEST_WORKSPACES: &[&str] = &["plugins", "tests/guests"];
/// Debian packages that building medic needs (the libvirt backend links
/// libvirt).
const BUILD_PACKAGES: &[&str] = &["libvirt-dev", "pkg-config"];
/// Debian packages the example kits are built with: C (clang for
/// wasm32-wasi, wasi-libc) and Python (a venv for componentize-py).
/// JavaScript needs node and npm, see [`install_node`].
const EXAMPLE_PACKAGES: &[&str] = &[
    "clang",
    "lld",
    "wasi-libc",
    "libclang-rt-14-dev-wasm32",
    "python3-venv",
];
/// The languages with an example kit (`medic kit new --lang`).
const EXAMPLE_LANGS: &[&str] = &["rust", "python", "js", "c"];
/// Debian packages the tests and the benchmark use besides: the servers and
/// checkers compared against, and the hypervisors escalation is tested on
/// (QEMU, fence-agents' fence_dummy, govmomi's vCenter simulator, built
/// with Go), `minisign`, which signs the kits of the signing tests,
/// `qemu-img` and `xorriso` for the libvirt clones (overlay and cloud-init
/// seed), Chromium, which reads the status pages, HAProxy, the load
/// balancer a unit's members are rolled behind, and iproute2, which brings
/// up the loopback of the network namespaces tests make.
const TEST_PACKAGES: &[&str] = &[
    "nginx-light",
    "redis-server",
    "postgresql-15",
    "monitoring-plugins-basic",
    "resource-agents",
    "monit",
    "qemu-system-x86",
    "fence-agents",
    "golang-go",
    "golang-github-vmware-govmomi-dev",
    "minisign",
    "qemu-utils",
    "xorriso",
    "chromium",
    "haproxy",
    "iproute2",
];

fn main() -> anyhow::Result<()> {
    let root = project_root();
    match Args::parse().task {
        Task::Demo => {
            install_packages(BUILD_PACKAGES)?;
            let dist = dist(&root, true, false)?;
            run(Command::new(dist.join("bin/medic")).arg("daemon"))
        }
        Task::Test => test(&root),
        Task::Dist { dev } => {
            install_packages(&[BUILD_PACKAGES, EXAMPLE_PACKAGES].concat())?;
            install_node()?;
            dist(&root, dev, true).map(|_| ())
        }
        Task::Bench => {
            install_needs()?;
            let mut printed = String::new();
            for bench in ["check_cost", "daemon_scale", "kit_languages"] {
                printed += &run_capturing(cargo(&root).args([
                    "bench",
                    "--profile",
                    "dev",
                    "-p",
                    "medic",
                    "--bench",
                    bench,
                ]))?;
            }
            bench_doc::write(&root.join("docs/benchmarks.md"), &printed)
        }
    }
}

fn test(root: &Path) -> anyhow::Result<()> {
    install_needs()?;
    run(cargo(root).args(["fmt", "--all", "--check"]))?;
    for guests in GUEST_WORKSPACES {
        run(cargo(&root.join(guests)).args(["fmt", "--all", "--check"]))?;
        run(cargo(&root.join(guests))
            .args([
                "clippy",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--",
                "-D",
                "warnings",
            ])
            .env("CARGO_TARGET_DIR", root.join("target/guests")))?;
    }
    // The SDK also builds natively, so authors can unit-test kits on the host.
    run(cargo(&root.join("sdk")).args(["fmt", "--check"]))?;
    run(cargo(&root.join("sdk"))
        .args([
            "clippy",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ])
        .env("CARGO_TARGET_DIR", root.join("target/guests")))?;
    let mut tally = Tally::default();
    tally.run(
        cargo(&root.join("sdk"))
            .args(["test", "--all-features"])
            .env("CARGO_TARGET_DIR", root.join("target/guests")),
    )?;
    // Kits' own unit tests (reply parsers, output mappings) run natively.
    tally.run(
        cargo(&root.join(KITS))
            .args(["test", "--target", &host_triple()?])
            .env("CARGO_TARGET_DIR", root.join("target/guests")),
    )?;
    run(cargo(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // medic builds without libvirt too (for hosts without libvirt-dev).
    run(cargo(root).args([
        "clippy",
        "-p",
        "medic",
        "--no-default-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    tally.run(cargo(root).args(["test", "--workspace"]))?;
    // One closing line for the whole suite, whichever test binary ran last.
    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(())
}

/// Test counts summed over `cargo test` runs, read from their
/// `test result:` lines as they pass through.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    /// Runs `cargo test ...`, echoing its output and adding up its results.
    fn run(&mut self, command: &mut Command) -> anyhow::Result<()> {
        use std::io::BufRead;
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {command:?}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            if let Some(result) = line.strip_prefix("test result: ") {
                self.passed += count(result, " passed");
                self.failed += count(result, " failed");
            }
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("{command:?} failed with {status}");
        }
        Ok(())
    }
}

/// The number before `label` in `ok. 3 passed; 0 failed; ...`.
fn count(result: &str, label: &str) -> u64 {
    result
        .split(';')
        .find_map(|part| {
            part.trim_end()
                .strip_suffix(label)?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Installs the wasm target and, as root, the Debian packages the build
/// and the tests use.
fn install_needs() -> anyhow::Result<()> {
    run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"]))?;
    install_packages(&[BUILD_PACKAGES, EXAMPLE_PACKAGES, TEST_PACKAGES].concat())?;
    install_node()
}

/// Installs Debian's node and npm unless an `npm` is already on PATH (a
/// node from elsewhere, such as NodeSource's package, brings its own npm,
/// which Debian's `npm` package would conflict with).
fn install_node() -> anyhow::Result<()> {
    let has_npm = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_npm {
        return Ok(());
    }
    install_packages(&["nodejs", "npm"])
}

/// Installs those of `packages` that are missing (as root; otherwise says
/// which are needed).
fn install_packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|pkg| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", pkg])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "medic needs these Debian packages: {}; run as root or install them",
            missing.join(" ")
        );
    }
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(())
}

/// The target triple of this machine (`x86_64-unknown-linux-gnu`), for
/// running guest crates' unit tests natively.
fn host_triple() -> anyhow::Result<String> {
    let output = Command::new("rustc").arg("-vV").output()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV names no host")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Builds the host and the bundled kits into `target/dist`, and with
/// `examples` the example kit of every language.
fn dist(root: &Path, dev: bool, examples: bool) -> anyhow::Result<PathBuf> {
    run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"]))?;
    let profile = if dev { "dev" } else { "release" };
    run(cargo(root).args(["build", "-p", "medic", "--bins", "--profile", profile]))?;
    run(cargo(&root.join(KITS))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", root.join("target/guests")))?;
    let dist = root.join("target/dist");
    let profile_dir = if dev { "debug" } else { "release" };
    for (sub, files) in [("bin", &["medic", "medic-demo-app"][..])] {
        std::fs::create_dir_all(dist.join(sub))?;
        for file in files {
            copy(
                &root.join("target").join(profile_dir).join(file),
                &dist.join(sub).join(file),
            )?;
        }
    }
    std::fs::create_dir_all(dist.join("kits"))?;
    for kit in BUNDLED {
        let built = root
            .join("target/guests/wasm32-wasip2/release")
            .join(format!("kit_{kit}.wasm"));
        copy(&built, &dist.join("kits").join(format!("{kit}.wasm")))?;
    }
    if examples {
        build_examples(root, &dist)?;
    }
    println!("dist: {}", dist.display());
    Ok(dist)
}

/// Builds each language's example kit with `sdk/build-example.sh` (the
/// script the tests use) into `target/examples`, then copies it to
/// `dist/kits/examples/<lang>-http.wasm`.
fn build_examples(root: &Path, dist: &Path) -> anyhow::Result<()> {
    let examples = root.join("target/examples");
    std::fs::create_dir_all(dist.join("kits/examples"))?;
    for lang in EXAMPLE_LANGS {
        run(Command::new("sh")
            .arg(root.join("sdk/build-example.sh"))
            .arg(lang)
            .arg(&examples)
            .arg(root.join("target/toolchains"))
            .env("MEDIC", dist.join("bin/medic"))
            .env("CARGO_TARGET_DIR", root.join("target/guests")))?;
        let name = format!("{lang}-http.wasm");
        copy(
            &examples.join(format!("{lang}-http")).join(&name),
            &dist.join("kits/examples").join(&name),
        )?;
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    // Remove first: copying over a running binary fails with ETXTBSY.
    let _ = std::fs::remove_file(to);
    std::fs::copy(from, to)
        .with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn cargo(dir: &Path) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(dir);
    command
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

/// Runs `command`, passing its output through, and returns what it printed
/// on stdout.
fn run_capturing(command: &mut Command) -> anyhow::Result<String> {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {command:?}"))?;
    let mut printed = String::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            printed += &line;
            printed.push('\n');
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(printed)
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
