//! A real nginx started by the test with its own config and prefix in its
//! own temp dir (which outlives the server: the pidfile is read at drop),
//! on a free 127.0.0.1 port.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// nginx's binary on Debian.
pub const NGINX: &str = "/usr/sbin/nginx";

/// A test's own nginx. Dropping it stops the server by its pid.
pub struct Nginx {
    pub port: u16,
    pub prefix: PathBuf,
    /// Holds the prefix; dropped after [`Drop::drop`] has read the pidfile.
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Writes the config and starts nginx as a single process; returns
    /// once it serves.
    pub fn start() -> Self {
        Self::start_with(false, "", false, "")
    }

    /// A single process that logs every request with its time (for the
    /// benchmarks, which count and time the checks that reached it).
    pub fn start_logged() -> Self {
        Self::start_with(false, "", true, "")
    }

    /// The same with a master process and one worker, as nginx runs in
    /// production (a reload replaces the worker).
    pub fn start_with_master() -> Self {
        Self::start_with(true, "", false, "")
    }

    /// A single process whose accept queue holds one connection: once it
    /// hangs, new connections hang too instead of being completed by the
    /// kernel, as they do at a real hung server once its queue is full.
    pub fn start_with_tiny_backlog() -> Self {
        Self::start_with(false, " backlog=1", false, "")
    }

    /// A single process serving HTTPS with `cert` and `key` (PEM files),
    /// `extra` added to its server block (`ssl_verify_client on; ...`).
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path, extra: &str) -> Self {
        let certificates = format!(
            " ssl_certificate {}; ssl_certificate_key {}; {extra}",
            cert.display(),
            key.display()
        );
        Self::start_with(false, " ssl", false, &certificates)
    }

    /// A single process serving plain HTTP with `extra` added to its
    /// server block (locations of its own); `files` are written under its
    /// root first, as `(path, content)`.
    pub fn start_serving(extra: &str, files: &[(&str, &[u8])]) -> Self {
        Self::start_with_files(false, "", false, extra, files)
    }

    fn start_with(master: bool, listen_options: &str, logged: bool, server_extra: &str) -> Self {
        Self::start_with_files(master, listen_options, logged, server_extra, &[])
    }

    fn start_with_files(
        master: bool,
        listen_options: &str,
        logged: bool,
        server_extra: &str,
        files: &[(&str, &[u8])],
    ) -> Self {
        let port = super::free_port();
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("nginx");
        for sub in ["logs", "html", "tmp"] {
            std::fs::create_dir_all(prefix.join(sub)).unwrap();
        }
        std::fs::write(prefix.join("html/healthz"), "ok\n").unwrap();
        for (path, content) in files {
            let file = prefix.join("html").join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
        let access_log = if logged {
            format!(
                "log_format timed '$msec $request_uri';\n  access_log {}/logs/access.log timed;",
                prefix.display()
            )
        } else {
            "access_log off;".to_owned()
        };
        let conf = format!(
            "worker_processes 1;\nerror_log {p}/logs/error.log;\npid {p}/nginx.pid;\ndaemon on;\nmaster_process {master};\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  {access_log}\n  client_body_temp_path {p}/tmp;\n  proxy_temp_path {p}/tmp;\n  fastcgi_temp_path {p}/tmp;\n  uwsgi_temp_path {p}/tmp;\n  scgi_temp_path {p}/tmp;\n\
             server {{ listen 127.0.0.1:{port}{listen_options};{server_extra} root {p}/html; location / {{ }} location = /status {{ stub_status; }} }}\n}}\n",
            p = prefix.display(),
            master = if master { "on" } else { "off" },
        );
        std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
        let nginx = Self {
            port,
            prefix,
            _dir: dir,
        };
        let status = Command::new(NGINX)
            .args(nginx.start_args())
            .status()
            .unwrap();
        assert!(status.success(), "nginx did not start");
        // Over TLS a plain GET gets no answer: accepting is enough.
        let tls = listen_options.contains("ssl");
        let listens = || std::net::TcpStream::connect(("127.0.0.1", nginx.port)).is_ok();
        assert!(
            super::wait_for(Duration::from_secs(5), || if tls {
                listens()
            } else {
                nginx.serves()
            }),
            "nginx does not serve"
        );
        nginx
    }

    /// The argv that starts this nginx (used as the app's `start`).
    pub fn start_args(&self) -> Vec<String> {
        vec![
            "-c".into(),
            self.prefix.join("nginx.conf").display().to_string(),
            "-p".into(),
            self.prefix.display().to_string(),
        ]
    }

    /// The app's `start` as a TOML array.
    pub fn start_toml(&self) -> String {
        let mut argv = vec![NGINX.to_string()];
        argv.extend(self.start_args());
        super::argv_toml(&argv)
    }

    /// The app's `stop` as a TOML array: nginx's own `-s stop`.
    pub fn stop_toml(&self) -> String {
        let mut argv = vec![NGINX.to_string()];
        argv.extend(self.start_args());
        argv.extend(["-s".to_owned(), "stop".to_owned()]);
        super::argv_toml(&argv)
    }

    /// An app file watching this nginx through the bundled `http` kit, with
    /// its `start`, `stop` and pidfile, checked every `interval`.
    pub fn http_app(&self, interval: &str) -> String {
        format!(
            "kit = \"http\"\ninterval = \"{interval}\"\ntimeout = \"1s\"\n\
             start = {start}\nstop = {stop}\npidfile = \"{pidfile}\"\n\
             [settings]\nurl = \"http://127.0.0.1:{port}/healthz\"\nexpect_body = \"ok\"\n\
             [grants]\nconnect = [\"127.0.0.1:{port}\"]\n",
            start = self.start_toml(),
            stop = self.stop_toml(),
            pidfile = self.pidfile().display(),
            port = self.port,
        )
    }

    /// Every request logged so far (with [`Nginx::start_logged`]): when it
    /// was served, in seconds since the epoch, and its URI.
    pub fn requests(&self) -> Vec<(f64, String)> {
        std::fs::read_to_string(self.prefix.join("logs/access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (at, uri) = line.split_once(' ')?;
                Some((at.parse().ok()?, uri.to_owned()))
            })
            .collect()
    }

    /// How many requests were logged so far (with [`Nginx::start_logged`]).
    pub fn request_count(&self) -> usize {
        std::fs::read_to_string(self.prefix.join("logs/access.log"))
            .map(|log| log.lines().count())
            .unwrap_or(0)
    }

    pub fn pidfile(&self) -> PathBuf {
        self.prefix.join("nginx.pid")
    }

    pub fn master_pid(&self) -> Option<u32> {
        super::read_pid(&self.pidfile())
    }

    /// The pids of the master's worker processes, with a master.
    pub fn worker_pids(&self) -> Vec<u32> {
        let children = self
            .master_pid()
            .and_then(|m| std::fs::read_to_string(format!("/proc/{m}/task/{m}/children")).ok())
            .unwrap_or_default();
        children
            .split_whitespace()
            .filter_map(|pid| pid.parse().ok())
            .collect()
    }

    /// Whether GET /healthz answers 200.
    pub fn serves(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = stream.write_all(b"GET /healthz HTTP/1.0\r\n\r\n");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.starts_with("HTTP/1.1 200")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(pid) = self.master_pid() {
            super::terminate(pid);
        }
    }
}
