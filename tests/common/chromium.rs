//! Headless Chromium (Debian's `chromium`) for tests of medic's HTML
//! pages: the DOM as a real browser parsed it (so escaping is judged by
//! the parser that matters) and screenshots to look at after the run.
//! Each run gets a fresh profile in a temp dir, its own process group and
//! a time limit; a run past it is killed, group and all, by its pid.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one Chromium run may take: a cold start on a loaded machine
/// takes seconds, a page of medic's well under one.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Names Chromium is installed under: Debian's package, other
/// distributions', Google's build.
const NAMES: &[&str] = &["chromium", "chromium-browser", "google-chrome"];

/// Flags of every run: headless, no first-run work, nothing fetched but
/// the page. `--no-sandbox` because tests run as root in containers,
/// where Chromium's sandbox cannot start.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
];

/// The Chromium binary on `PATH`.
pub fn binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    NAMES
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("no Chromium on PATH (tried {NAMES:?}): apt-get install chromium")
        })
}

/// The DOM of `url` once loaded, serialized as HTML (`--dump-dom`).
pub fn dump_dom(url: &str) -> String {
    let run = run(&["--dump-dom".to_owned(), url.to_owned()]);
    let dom = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        dom.contains("<html"),
        "Chromium gave no DOM for {url}: {}",
        run.stderr
    );
    dom
}

/// A `width`×`height` PNG screenshot of `url`, written to `path` (an
/// absolute path; its directory must exist).
pub fn screenshot(url: &str, path: &Path, (width, height): (u32, u32)) {
    let run = run(&[
        format!("--screenshot={}", path.display()),
        format!("--window-size={width},{height}"),
        url.to_owned(),
    ]);
    assert!(
        path.is_file(),
        "Chromium wrote no screenshot of {url} to {}: {}",
        path.display(),
        run.stderr
    );
}

/// Where tests of `area` keep files for a person to look at after the run
/// (`target/test-artifacts/AREA`), created.
pub fn artifacts(area: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-artifacts")
        .join(area);
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

/// What one run printed.
struct Run {
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs Chromium with [`FLAGS`], a fresh profile and `args`; waits for it
/// to exit within [`TIMEOUT`] (else kills its process group and fails).
/// Output goes to files, so a chatty browser never blocks on a pipe.
fn run(args: &[String]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(binary())
        .args(FLAGS)
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            kill_group(child.id());
            let _ = child.wait();
            panic!(
                "Chromium {args:?} ran past {TIMEOUT:?}: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run = Run {
        stdout: std::fs::read(&stdout).unwrap(),
        stderr: std::fs::read_to_string(&stderr).unwrap_or_default(),
    };
    assert!(
        status.success(),
        "Chromium {args:?}: {status}: {}",
        run.stderr
    );
    run
}

/// Kills the process group this test started Chromium in (its pid is the
/// group's id), renderers and helpers included.
fn kill_group(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}
