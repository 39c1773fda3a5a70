//! A real redis-server started by the test on a free 127.0.0.1 port, with
//! its own config, data and logs in its own temp dir: optionally with a
//! password (`requirepass`), optionally as the replica of a master that is
//! not there. It daemonizes with a pidfile, so the same argv serves as an
//! app's `start` (which must return, see [`Redis::start_args`]); dropping
//! the fixture kills whatever process the pidfile names then, which is the
//! one medic started if it restarted the app.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::process::Signal;

/// redis-server's binary on Debian.
pub const REDIS: &str = "/usr/bin/redis-server";

/// How a [`Redis`] is set up.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `requirepass`: clients must `AUTH` with it.
    pub password: Option<String>,
    /// `replicaof 127.0.0.1 PORT`: a replica of whatever listens there.
    pub replica_of: Option<u16>,
}

/// A test's own redis-server. Dropping it kills the server by its pid.
pub struct Redis {
    pub port: u16,
    /// The temp dir: `redis.conf`, `redis.pid`, `redis.log`, data.
    pub dir: PathBuf,
    pub options: Options,
    /// Holds `dir`; dropped after [`Drop::drop`] has read the pidfile.
    _dir: tempfile::TempDir,
}

impl Redis {
    /// A plain server: no password, a master.
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    /// A server that wants `password`, also written to
    /// [`Redis::password_file`].
    pub fn with_password(password: &str) -> Self {
        Self::start_with(Options {
            password: Some(password.into()),
            ..Options::default()
        })
    }

    /// A replica of a master that is not there (a free port), so its link
    /// to its master stays down: `INFO replication` says `role:slave` and
    /// `master_link_status:down`, and `PING` still answers `PONG`.
    pub fn replica_of_nothing() -> Self {
        Self::start_with(Options {
            replica_of: Some(super::free_port()),
            ..Options::default()
        })
    }

    /// Writes the config (and password file) and starts the server;
    /// returns once it answers `PING`.
    pub fn start_with(options: Options) -> Self {
        let port = super::free_port();
        let dir = tempfile::tempdir().unwrap();
        let redis = Self {
            port,
            dir: dir.path().to_path_buf(),
            options,
            _dir: dir,
        };
        std::fs::write(redis.dir.join("redis.conf"), redis.config()).unwrap();
        if let Some(password) = &redis.options.password {
            std::fs::create_dir_all(redis.secret_dir()).unwrap();
            std::fs::write(redis.password_file(), format!("{password}\n")).unwrap();
        }
        redis.launch();
        redis
    }

    /// The config: everything absolute, since an app's `start` runs in
    /// medic's working directory, and no persistence.
    fn config(&self) -> String {
        let d = self.dir.display();
        let mut conf = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize yes\npidfile {d}/redis.pid\n\
             logfile {d}/redis.log\ndir {d}\nsave \"\"\nappendonly no\n",
            port = self.port
        );
        if let Some(password) = &self.options.password {
            conf += &format!("requirepass \"{password}\"\n");
        }
        if let Some(master) = self.options.replica_of {
            conf += &format!("replicaof 127.0.0.1 {master}\n");
        }
        conf
    }

    /// Runs the `start` argv, as medic would, and waits until the server
    /// answers `PING`. Also starts it again after [`Redis::kill`].
    pub fn launch(&self) {
        let status = Command::new(REDIS)
            .args(self.start_args())
            .stdin(Stdio::null())
            .status()
            .unwrap();
        // With `daemonize yes` the command returns as soon as it has forked,
        // before the server binds its port: exit 0 proves little.
        assert!(status.success(), "redis-server did not start");
        assert!(
            super::wait_for(Duration::from_secs(10), || self.pid().is_some()
                && self.pings()),
            "redis-server does not answer: {}",
            std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
        );
    }

    /// The argv that starts this server (the app's `start`, after
    /// [`REDIS`]). An app's `start` must return once the app runs: this one
    /// does, because the config says `daemonize yes`; the server writes
    /// [`Redis::pidfile`] for medic's `pidfile` key and for [`Drop`].
    pub fn start_args(&self) -> Vec<String> {
        vec![self.dir.join("redis.conf").display().to_string()]
    }

    /// The app's `start` as a TOML array.
    pub fn start_toml(&self) -> String {
        let mut argv = vec![REDIS.to_string()];
        argv.extend(self.start_args());
        super::argv_toml(&argv)
    }

    /// `127.0.0.1:PORT`, for `[grants] connect`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("redis.pid")
    }

    /// The pid of the running server, from its pidfile.
    pub fn pid(&self) -> Option<u32> {
        super::read_pid(&self.pidfile())
    }

    /// A directory holding only the password file, to grant as `[grants]
    /// read` without showing the kit the config.
    pub fn secret_dir(&self) -> PathBuf {
        self.dir.join("secret")
    }

    /// The password, with a trailing newline as `echo` writes it; exists
    /// only with [`Options::password`].
    pub fn password_file(&self) -> PathBuf {
        self.secret_dir().join("password")
    }

    /// Whether the server answers `PING` (after `AUTH` when it has a
    /// password) with `+PONG`.
    pub fn pings(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut request = String::new();
        if let Some(password) = &self.options.password {
            request += &format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len());
        }
        request += "*1\r\n$4\r\nPING\r\n";
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let expected: &[u8] = match self.options.password {
            Some(_) => b"+OK\r\n+PONG\r\n",
            None => b"+PONG\r\n",
        };
        let mut reply = vec![0u8; expected.len()];
        stream.read_exact(&mut reply).is_ok() && reply == expected
    }

    /// Kills the server with SIGKILL, waits until its port refuses
    /// connections, and removes the pidfile redis leaves behind, so that
    /// [`Drop`] cannot signal a process that reused the pid.
    pub fn kill(&self) {
        if let Some(pid) = self.pid() {
            super::signal(pid, Signal::KILL);
        }
        assert!(
            super::wait_for(Duration::from_secs(5), || {
                TcpStream::connect(("127.0.0.1", self.port)).is_err()
            }),
            "redis-server still listens"
        );
        let _ = std::fs::remove_file(self.pidfile());
    }

    /// Freezes the server (SIGSTOP): the kernel still accepts connections
    /// on its port, but nothing answers.
    pub fn pause(&self) {
        if let Some(pid) = self.pid() {
            super::signal(pid, Signal::STOP);
        }
    }

    /// Thaws a [`Redis::pause`]d server (SIGCONT).
    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            super::signal(pid, Signal::CONT);
        }
    }
}

impl Drop for Redis {
    /// SIGKILL, which also ends a paused server; the pid is read now, so a
    /// server medic restarted is the one killed.
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            super::kill9(pid);
        }
    }
}
