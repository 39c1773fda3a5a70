//! docs/benchmarks.md from one run of the benchmarks: the hand-written
//! method above the results marker stays, the results are what the
//! benchmarks printed (dated, with the machine), and the results they
//! replace move down into the history.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

/// Where the results start; everything above is written by hand.
const RESULTS: &str = "<!-- results: written by `cargo xtask bench` -->";
/// Where the earlier results start.
const HISTORY: &str = "<!-- history -->";

/// Writes `printed` as the current results of `doc`.
pub fn write(doc: &Path, printed: &str) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(doc).with_context(|| format!("read {}", doc.display()))?;
    let (method, rest) = old
        .split_once(RESULTS)
        .with_context(|| format!("{}: no line {RESULTS}", doc.display()))?;
    let (previous, history) = rest.split_once(HISTORY).unwrap_or((rest, ""));
    // Only results move into the history, not a placeholder.
    let previous = if previous.contains("## Results of ") {
        previous
    } else {
        ""
    };
    let new = format!(
        "{method}{RESULTS}\n\n## Results of {date}\n\n{machine}\n\n{printed}\n{HISTORY}\n\n{previous}{history}",
        method = method.trim_end().to_owned() + "\n\n",
        date = today(),
        machine = machine(),
        printed = printed.trim_end(),
        previous = match previous.trim() {
            "" => String::new(),
            results => results.to_owned() + "\n\n",
        },
        history = history.trim_start(),
    );
    std::fs::write(doc, new.trim_end().to_owned() + "\n")
        .with_context(|| format!("write {}", doc.display()))?;
    println!("wrote {}", doc.display());
    Ok(())
}

fn today() -> String {
    humantime::format_rfc3339(std::time::SystemTime::now())
        .to_string()
        .chars()
        .take(10)
        .collect()
}

/// One line on the machine and the programs compared.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024 / 1024);
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    format!(
        "Machine: {cpu}, {cores} cores, {memory} GiB, Debian {}, Linux {}; {}, {}.",
        read("/etc/debian_version"),
        read("/proc/sys/kernel/osrelease"),
        version_of("/usr/sbin/nginx", &["-v"]),
        version_of("/usr/bin/monit", &["-V"]),
    )
}

/// The first line `program args` prints (on stdout or stderr).
fn version_of(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            text.lines().next().unwrap_or(program).trim().to_owned()
        })
        .unwrap_or_else(|_| format!("{program} missing"))
}
