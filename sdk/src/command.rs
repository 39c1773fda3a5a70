//! Running a granted program with the environment and working directory it
//! needs: `host::run`, built up the way `std::process::Command` is.

use crate::bindings::medic::kit::host;
use crate::{ExecOutput, ExecRequest, Setting};

/// How long a program may run when the kit does not say.
///
/// A constant is safe: the host also kills the program a margin before the
/// call's deadline (see [`deadline_margin`](crate::deadline_margin)), so
/// the kit still gets `exit-code: none` in time to answer. To bound the
/// run by a setting as well, pass
/// [`Context::timeout_ms_setting`](crate::Context::timeout_ms_setting) to
/// [`Command::timeout_ms`].
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;

/// A program to run through the host. Nothing is inherited from medic: the
/// environment is medic's fixed `PATH`, `OCF_ROOT` and `OCF_FUNCTIONS_DIR`
/// plus what [`Command::env`] adds, each name of which the app's
/// `[grants] env` must open (list them in [`Kit::env_wanted`](crate::Kit::env_wanted));
/// names that make a program run other code (`LD_*`, `PERL5OPT`, ...) are
/// refused whatever the grants say. The working directory is `/` unless
/// [`Command::current_dir`] says otherwise.
///
/// ```no_run
/// use medic_kit::Command;
///
/// let output = Command::new("/usr/lib/ocf/resource.d/heartbeat/nginx")
///     .arg("monitor")
///     .env("OCF_RESKEY_configfile", "/etc/nginx/nginx.conf")
///     .timeout_ms(20_000)
///     .run();
/// ```
#[derive(Debug, Clone)]
pub struct Command {
    request: ExecRequest,
}

impl Command {
    /// A command for `program`, an absolute path that the app's
    /// `[grants] exec` must list.
    pub fn new(program: &str) -> Self {
        Self {
            request: ExecRequest {
                program: program.to_owned(),
                args: Vec::new(),
                env: Vec::new(),
                cwd: None,
                timeout_ms: DEFAULT_TIMEOUT_MS,
                output_max: 0,
            },
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: &str) -> Self {
        self.request.args.push(arg.to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.request
            .args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets one environment variable (the last value for a name wins).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.request.env.retain(|v| v.key != key);
        self.request.env.push(Setting {
            key: key.to_owned(),
            value: value.to_owned(),
        });
        self
    }

    /// Runs the program in `dir` (an absolute path) instead of `/`.
    pub fn current_dir(mut self, dir: &str) -> Self {
        self.request.cwd = Some(dir.to_owned());
        self
    }

    /// Kills the program after `ms` milliseconds (or at the call's deadline
    /// less its margin, whichever comes first).
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.request.timeout_ms = ms;
        self
    }

    /// Keeps at most `bytes` of stdout and of stderr each (the host keeps
    /// at most 64 KiB whatever is asked).
    pub fn output_max(mut self, bytes: u32) -> Self {
        self.request.output_max = bytes;
        self
    }

    /// The request [`Command::run`] sends, so a kit's unit tests can check
    /// what it would run without a host.
    pub fn request(&self) -> &ExecRequest {
        &self.request
    }

    /// Runs the program and waits for it. `Err` when it is not granted,
    /// an environment name is refused, or it could not be started; a
    /// program that ran and failed is `Ok` with its exit code.
    pub fn run(&self) -> Result<ExecOutput, String> {
        host::run(&self.request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_request() {
        let cmd = Command::new("/bin/agent")
            .arg("monitor")
            .args(["-v", "x"])
            .env("A", "1")
            .env("A", "2")
            .current_dir("/tmp")
            .timeout_ms(5)
            .output_max(100);
        let r = &cmd.request;
        assert_eq!(r.args, ["monitor", "-v", "x"]);
        assert_eq!(r.env.len(), 1);
        assert_eq!((r.env[0].key.as_str(), r.env[0].value.as_str()), ("A", "2"));
        assert_eq!(r.cwd.as_deref(), Some("/tmp"));
        assert_eq!((r.timeout_ms, r.output_max), (5, 100));
    }
}
