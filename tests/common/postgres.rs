//! A real PostgreSQL 15 started by the test in its own temp dir, on a free
//! 127.0.0.1 port, tuned to start fast (no fsync, no Unix socket, no
//! autovacuum). It has a trust superuser and two password users, one with a
//! scram-sha-256 and one with an md5 password (`pg_hba.conf`), all logging
//! in to the database `postgres`.
//!
//! PostgreSQL refuses to run as root, so under root the server belongs to
//! the `postgres` user (the package's): its directory is chowned to it and
//! every server command runs through `runuser -u postgres --`. The temp
//! dir is made traversable (0755) so that user can reach its own files.
//!
//! `pg_ctl start` leaves the postmaster running on its own (it is nobody's
//! child), so dropping the fixture stops it by the pid in `postmaster.pid`:
//! SIGCONT (in case a test paused it), then SIGQUIT (immediate shutdown,
//! which ends every backend), then SIGKILL if it lingers; a server that a
//! test killed also gets its System V segment removed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use rustix::process::Signal;

/// Debian's PostgreSQL 15 binaries (`apt-get install postgresql-15`).
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A test's own PostgreSQL. Dropping it stops the server by its pid.
pub struct Postgres {
    pub port: u16,
    /// Owned by the server's user: `data/`, `postgres.log`.
    pub root: PathBuf,
    /// Whether server commands run through `runuser -u postgres --`.
    as_postgres: bool,
    /// Holds `root`; dropped after [`Drop::drop`] has stopped the server.
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// The superuser; `trust` from 127.0.0.1. Its database is `postgres`.
    pub const TRUST_USER: &'static str = "postgres";
    /// A user that must log in with scram-sha-256 and [`Self::PASSWORD`].
    pub const SCRAM_USER: &'static str = "medic_scram";
    /// A user that must log in with md5 and [`Self::PASSWORD`].
    pub const MD5_USER: &'static str = "medic_md5";
    /// The password of the scram and md5 users.
    pub const PASSWORD: &'static str = "correct horse";
    /// The database every user logs in to.
    pub const DATABASE: &'static str = "postgres";

    /// Creates a cluster, starts it and adds the password users; returns
    /// once the server accepts them (about a second).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // The server's user must be able to reach `root` through the dir.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.path().join("pg");
        std::fs::create_dir(&root).unwrap();
        let as_postgres = rustix::process::geteuid().is_root();
        if as_postgres {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap();
        }
        let pg = Self {
            port: super::free_port(),
            root,
            as_postgres,
            _dir: dir,
        };
        pg.init();
        pg.run_ok(&pg.start_args());
        pg.add_users();
        pg
    }

    /// `initdb` with a trust superuser, then this test's config and HBA.
    fn init(&self) {
        let initdb = format!("{PG_BIN}/initdb");
        let data = self.data_dir().display().to_string();
        self.run_ok(&self.argv(&[
            &initdb,
            "-D",
            &data,
            "-U",
            Self::TRUST_USER,
            "--auth=trust",
            "--no-sync",
            "--no-instructions",
            "-E",
            "UTF8",
            "--locale=C",
        ]));
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             autovacuum = off\njit = off\n\
             shared_buffers = 16MB\nmax_connections = 20\n\
             dynamic_shared_memory_type = mmap\npassword_encryption = 'scram-sha-256'\n",
            port = self.port
        );
        self.append(&self.data_dir().join("postgresql.conf"), &conf);
        let hba = format!(
            "host all {trust} 127.0.0.1/32 trust\n\
             host all {scram} 127.0.0.1/32 scram-sha-256\n\
             host all {md5} 127.0.0.1/32 md5\n",
            trust = Self::TRUST_USER,
            scram = Self::SCRAM_USER,
            md5 = Self::MD5_USER,
        );
        std::fs::write(self.data_dir().join("pg_hba.conf"), hba).unwrap();
    }

    /// Creates the scram and md5 users (the md5 one with an md5 hash).
    fn add_users(&self) {
        let password = Self::PASSWORD;
        self.psql(&format!(
            "CREATE ROLE {} LOGIN PASSWORD '{password}'",
            Self::SCRAM_USER
        ));
        self.psql(&format!(
            "SET password_encryption = 'md5'; CREATE ROLE {} LOGIN PASSWORD '{password}'",
            Self::MD5_USER
        ));
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The server's log (`pg_ctl -l`).
    pub fn log_file(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// The argv that starts this server and returns once it is ready
    /// (used as the app's `start`), including `runuser` when root.
    pub fn start_args(&self) -> Vec<String> {
        let pg_ctl = format!("{PG_BIN}/pg_ctl");
        let data = self.data_dir().display().to_string();
        let log = self.log_file().display().to_string();
        self.argv(&[
            &pg_ctl, "start", "-w", "-t", "30", "-s", "-D", &data, "-l", &log,
        ])
    }

    /// The argv that stops this server (fast shutdown; the app's `stop`).
    pub fn stop_args(&self) -> Vec<String> {
        let pg_ctl = format!("{PG_BIN}/pg_ctl");
        let data = self.data_dir().display().to_string();
        self.argv(&[&pg_ctl, "stop", "-w", "-s", "-m", "fast", "-D", &data])
    }

    /// The app's `start` as a TOML array.
    pub fn start_toml(&self) -> String {
        super::argv_toml(&self.start_args())
    }

    /// The app's `stop` as a TOML array.
    pub fn stop_toml(&self) -> String {
        super::argv_toml(&self.stop_args())
    }

    /// The postmaster's pid, from `postmaster.pid`, while it runs.
    pub fn master_pid(&self) -> Option<u32> {
        self.pidfile_line(0)?
            .trim()
            .parse()
            .ok()
            .filter(|&pid| postgres_alive(pid))
    }

    /// Line `n` of `postmaster.pid`, if the file has it.
    fn pidfile_line(&self, n: usize) -> Option<String> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().nth(n).map(str::to_string)
    }

    /// Runs `sql` as the trust superuser and returns psql's unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(format!("{PG_BIN}/psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args(["-p", &self.port.to_string(), "-U", Self::TRUST_USER])
            .args(["-d", Self::DATABASE, "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {sql:?}: {}", report(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Makes new sessions read-only (`default_transaction_read_only`), or
    /// writable again; returns once a new session sees it.
    pub fn set_read_only(&self, on: bool) {
        let value = if on { "on" } else { "off" };
        self.psql(&format!(
            "ALTER SYSTEM SET default_transaction_read_only = {value}"
        ));
        self.psql("SELECT pg_reload_conf()");
        assert!(
            super::wait_for(Duration::from_secs(5), || {
                self.psql("SHOW default_transaction_read_only") == value
            }),
            "default_transaction_read_only did not become {value}"
        );
    }

    /// Restarts the server as a standby (`standby.signal`, no primary): it
    /// stays in recovery and takes read-only sessions.
    pub fn restart_as_standby(&self) {
        self.run_ok(&self.stop_args());
        self.append(&self.data_dir().join("standby.signal"), "");
        self.run_ok(&self.start_args());
        assert_eq!(self.psql("SELECT pg_is_in_recovery()"), "t");
    }

    /// Freezes the postmaster (SIGSTOP): it still completes TCP handshakes
    /// in the kernel but answers nothing.
    pub fn pause(&self) {
        super::signal(self.master_pid().unwrap(), Signal::STOP);
    }

    /// Thaws a paused postmaster (SIGCONT).
    pub fn resume(&self) {
        super::signal(self.master_pid().unwrap(), Signal::CONT);
    }

    /// Kills the postmaster with SIGKILL, as a crash would, and waits until
    /// it is gone (its backends notice and exit by themselves).
    pub fn kill(&self) {
        let pid = self.master_pid().unwrap();
        super::signal(pid, Signal::KILL);
        assert!(super::wait_for(Duration::from_secs(5), || !postgres_alive(
            pid
        )));
    }

    /// `argv` itself, or run as the `postgres` user when we are root.
    fn argv(&self, argv: &[&str]) -> Vec<String> {
        let prefix: &[&str] = if self.as_postgres {
            &["/usr/sbin/runuser", "-u", "postgres", "--"]
        } else {
            &[]
        };
        prefix.iter().chain(argv).map(|s| s.to_string()).collect()
    }

    /// Runs `argv` from `root` (which the server's user can read) and
    /// asserts that it succeeds.
    fn run_ok(&self, argv: &[String]) {
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(&self.root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{argv:?}: {}\nserver log:\n{}",
            report(&out),
            self.log_text()
        );
    }

    /// Appends `text` to a file of the server's, keeping its owner.
    fn append(&self, path: &Path, text: &str) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
        if self.as_postgres {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        match self.master_pid() {
            Some(pid) => {
                super::signal(pid, Signal::CONT);
                super::signal(pid, Signal::QUIT);
                if !super::wait_for(Duration::from_secs(5), || !postgres_alive(pid)) {
                    super::signal(pid, Signal::KILL);
                    super::wait_for(Duration::from_secs(2), || !postgres_alive(pid));
                }
            }
            // Killed by the test: a clean shutdown removes the pidfile and
            // its System V segment, a crash leaves both.
            None => {
                let shmid = self
                    .pidfile_line(6)
                    .and_then(|line| line.split_whitespace().nth(1).map(str::to_string));
                if let Some(shmid) = shmid {
                    let _ = Command::new("ipcrm").args(["-m", &shmid]).output();
                }
            }
        }
    }
}

/// Whether `pid` is a live (not zombie) process named `postgres`, so a
/// reused pid is never signalled.
fn postgres_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some((head, tail)) = stat.rsplit_once(')') else {
        return false;
    };
    head.ends_with("(postgres") && !tail.trim_start().starts_with('Z')
}

/// The uid and gid of the `postgres` user, from /etc/passwd.
fn postgres_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("no postgres user: apt-get install postgresql-15");
    let fields: Vec<&str> = line.split(':').collect();
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

fn report(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
