//! A tiny web app for medic's demo and tests: answers every request with
//! `200 ok`. `start` launches it in the background and returns once it
//! serves (like a forking daemon); `stop` ends it by its pidfile.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "A tiny web app for medic's demo")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start serving in the background; return once the port answers.
    Start {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        pidfile: PathBuf,
    },
    /// Serve in the foreground.
    Serve {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        pidfile: PathBuf,
    },
    /// Stop the app named by the pidfile.
    Stop {
        #[arg(long)]
        pidfile: PathBuf,
    },
}

fn main() -> ExitCode {
    let result = match Args::parse().command {
        Cmd::Start { port, pidfile } => start(port, &pidfile),
        Cmd::Serve { port, pidfile } => serve(port, &pidfile),
        Cmd::Stop { pidfile } => stop(&pidfile),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("medic-demo-app: {e}");
            ExitCode::FAILURE
        }
    }
}

fn start(port: u16, pidfile: &std::path::Path) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    Command::new(exe)
        .args(["serve", "--port", &port.to_string(), "--pidfile"])
        .arg(pidfile)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot spawn: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("not serving on 127.0.0.1:{port} after 5s"))
}

fn serve(port: u16, pidfile: &std::path::Path) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| format!("bind 127.0.0.1:{port}: {e}"))?;
    if let Some(dir) = pidfile.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(pidfile, format!("{}\n", std::process::id())).map_err(|e| e.to_string())?;
    for mut stream in listener.incoming().flatten() {
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n");
    }
    Ok(())
}

fn stop(pidfile: &std::path::Path) -> Result<(), String> {
    let text =
        std::fs::read_to_string(pidfile).map_err(|e| format!("{}: {e}", pidfile.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{}: no pid", pidfile.display()))?;
    let pid = rustix::process::Pid::from_raw(pid).ok_or("pid 0")?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)
        .map_err(|e| format!("kill {pid:?}: {e}"))
}
