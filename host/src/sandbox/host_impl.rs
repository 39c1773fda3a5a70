//! The `medic:kit/host` imports: what WASI does not give a kit. Every call is
//! checked against the app's grants; denials are recorded so the host can
//! report the call as a kit fault.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::bindings::medic::kit::{host, types};
use super::bindings::{ExecOutput, ExecRequest, HttpAnswer, HttpRequest, HttpResponse, Level};
use super::env_grant;
use super::http_send;
use super::kit_text::tame;
use super::lean_http;
use super::tls_socket::KitTls;
use wasmtime::component::Resource;

use super::store::{
    ANNOTATION_KEY_MAX, ANNOTATION_VALUE_MAX, ANNOTATIONS_MAX, KitStore, LOG_MESSAGE_MAX,
    LOG_TOTAL_MAX,
};
use crate::process::{GroupGuard, PinnedProcess};

/// Bytes of stdout and of stderr kept from one `exec`.
pub const EXEC_OUTPUT_MAX: usize = 64 * 1024;
/// Most body bytes `http-get` hands a kit, whatever it asks for.
pub const HTTP_BODY_MAX: usize = 1024 * 1024;

impl types::Host for KitStore {}

impl host::Host for KitStore {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        if self.log_bytes >= LOG_TOTAL_MAX {
            self.log_dropped += 1;
            return Ok(());
        }
        let message = tame(
            &message,
            LOG_MESSAGE_MAX.min(LOG_TOTAL_MAX - self.log_bytes),
        );
        self.log_bytes += message.len();
        let app = &*self.scope.app;
        match level {
            Level::Trace => tracing::trace!(app, "kit: {message}"),
            Level::Debug => tracing::debug!(app, "kit: {message}"),
            Level::Info => tracing::info!(app, "kit: {message}"),
            Level::Warn => tracing::warn!(app, "kit: {message}"),
            Level::Error => tracing::error!(app, "kit: {message}"),
        }
        Ok(())
    }

    async fn exec(
        &mut self,
        program: String,
        args: Vec<String>,
        timeout_ms: u32,
    ) -> Result<ExecOutput, String> {
        self.run(ExecRequest {
            program,
            args,
            env: Vec::new(),
            cwd: None,
            timeout_ms,
            output_max: 0,
        })
        .await
    }

    async fn run(&mut self, request: ExecRequest) -> Result<ExecOutput, String> {
        if !self.scope.policy.may_exec(&request.program) {
            self.denials.record(format!("exec {}", request.program));
            return Err(format!("exec of {} is not granted", request.program));
        }
        for name in request.env.iter().map(|v| &v.key) {
            if let Err(why) = self.scope.policy.env.allows(name) {
                self.denials
                    .record(format!("exec {} with {why}", request.program));
                return Err(format!("environment variable {why}"));
            }
        }
        let cwd = request.cwd.as_deref().unwrap_or("/");
        if !Path::new(cwd).is_absolute() {
            return Err(format!("working directory {cwd:?} is not an absolute path"));
        }
        let timeout = self
            .deadline
            .clamp(Duration::from_millis(request.timeout_ms.into()));
        run_capped(&request, Path::new(cwd), timeout).await
    }

    async fn http_get(
        &mut self,
        url: String,
        timeout_ms: u32,
        max_body: u32,
    ) -> Result<HttpResponse, String> {
        let uri = lean_http::parse_url(&url)?;
        let to = (self.scope.policy.connect)
            .http_destination(&uri, &self.denials)
            .map_err(|refused| refused.to_string())?;
        let max_body = usize::try_from(max_body)
            .unwrap_or(usize::MAX)
            .min(HTTP_BODY_MAX);
        let timeout = self
            .deadline
            .clamp(Duration::from_millis(timeout_ms.into()));
        lean_http::get(&uri, &to, timeout, max_body).await
    }

    async fn http_send(&mut self, request: HttpRequest) -> Result<HttpAnswer, String> {
        let mut outgoing = http_send::outgoing(&request)?;
        if let Some(auth) = &request.auth {
            let value = http_send::authorization(auth, &self.scope.policy.secrets)
                .inspect_err(|why| self.denials.record(format!("http-send: {why}")))?;
            outgoing.headers.insert(http::header::AUTHORIZATION, value);
        }
        let to = (self.scope.policy.connect)
            .http_destination(&outgoing.uri, &self.denials)
            .map_err(|refused| refused.to_string())?;
        self.scope
            .policy
            .tls_usable_for(&outgoing.uri, &self.denials)?;
        let max_body = usize::try_from(request.max_body)
            .unwrap_or(usize::MAX)
            .min(HTTP_BODY_MAX);
        let timeout = self
            .deadline
            .clamp(Duration::from_millis(request.timeout_ms.into()));
        let answer =
            lean_http::send(outgoing, &to, &self.scope.policy.tls, timeout, max_body).await?;
        Ok(http_send::answer(answer))
    }

    async fn tls_connect(
        &mut self,
        address: String,
        timeout_ms: u32,
    ) -> Result<Resource<KitTls>, String> {
        self.open_tls(address, timeout_ms).await
    }

    fn processes(&mut self, name: String) -> wasmtime::Result<Vec<u32>> {
        Ok(crate::process::pids_by_name(&name))
    }

    fn pid_alive(&mut self, pid: u32) -> wasmtime::Result<bool> {
        Ok(crate::process::is_alive(pid))
    }

    fn watch_process(&mut self, pid: u32) -> wasmtime::Result<Result<(), String>> {
        Ok(match PinnedProcess::open(pid) {
            Some(process) => {
                self.reported_process = Some(process);
                Ok(())
            }
            None => Err(format!("no live process has pid {pid}")),
        })
    }

    fn annotate(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        if self.annotations.len() < ANNOTATIONS_MAX {
            self.annotations.push((
                tame(&key, ANNOTATION_KEY_MAX),
                tame(&value, ANNOTATION_VALUE_MAX),
            ));
        }
        Ok(())
    }

    fn state_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.scope.state.get(&key))
    }

    fn state_set(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        if let Err(reason) = self.scope.state.set(&key, &value) {
            tracing::warn!(app = &*self.scope.app, "{reason}");
        }
        Ok(())
    }
}

/// Runs a program without a shell, with medic's fixed `PATH` and `OCF_ROOT`
/// plus exactly the request's (granted) environment, and stdin closed, keeping at most `output-max` (at most
/// [`EXEC_OUTPUT_MAX`]) bytes of each output stream. The child is killed
/// after `timeout` (the request's, cut to the call's deadline) and whenever
/// the call is abandoned.
async fn run_capped(
    request: &ExecRequest,
    cwd: &Path,
    timeout: Duration,
) -> Result<ExecOutput, String> {
    let program = &request.program;
    let mut child = tokio::process::Command::new(program)
        .args(&request.args)
        .env_clear()
        .envs(env_grant::base_env())
        .envs(
            request
                .env
                .iter()
                .map(|v| (v.key.as_str(), v.value.clone())),
        )
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, killed whole when the program ends, at the
        // timeout or when the call is abandoned: nothing it started
        // outlives it or holds its pipes open.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let mut group = GroupGuard::new(child.id());
    let cap = match usize::try_from(request.output_max) {
        Ok(0) | Err(_) => EXEC_OUTPUT_MAX,
        Ok(max) => max.min(EXEC_OUTPUT_MAX),
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let run = async {
        let waited = async {
            let status = child.wait().await;
            // What the program left behind would hold the pipes open.
            group.kill();
            status
        };
        tokio::join!(read_capped(stdout, cap), read_capped(stderr, cap), waited)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(((stdout, out_cut), (stderr, err_cut), status)) => Ok(ExecOutput {
            exit_code: status.ok().and_then(|s| s.code()),
            stdout,
            stderr,
            truncated: out_cut || err_cut,
        }),
        Err(_) => Ok(ExecOutput {
            exit_code: None,
            stdout: String::new(),
            stderr: format!("killed after {} ms", timeout.as_millis()),
            truncated: false,
        }),
    }
}

/// Reads a stream to its end, keeping the first `cap` bytes and draining the
/// rest so the child never blocks on a full pipe.
async fn read_capped(stream: Option<impl AsyncRead + Unpin>, cap: usize) -> (String, bool) {
    let Some(mut stream) = stream else {
        return (String::new(), false);
    };
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut cut = false;
    while let Ok(n) = stream.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
        cut |= n > room;
    }
    (String::from_utf8_lossy(&kept).into_owned(), cut)
}
