//! Test kit `misbehave`: does whatever its `mode` setting says, including
//! the things a real kit must never do (spin, trap, hog memory, reach for
//! what was not granted). The host's sandbox tests use it, one test per
//! mode; it is never shipped.

use std::hint::black_box;
use std::time::Duration;

use medic_kit::{
    Capability, Command, Context, Health, Kit, KitInfo, Level, NextStep, SettingDoc, export, host,
    http, net,
};

/// The kit; every behaviour is chosen by settings.
struct Misbehave;

impl Kit for Misbehave {
    fn describe() -> KitInfo {
        KitInfo {
            name: "misbehave".into(),
            version: "0.1.0".into(),
            summary: "Misbehaves on demand, for medic's own sandbox tests.".into(),
            settings: vec![
                SettingDoc::required(
                    "mode",
                    "What `check` does: ok, fail, degraded, loop, alloc, trap, read, \
                     connect, lookup, fetch, fetch-wasi, fetch-raw, fetch-wasi-raw, exec, \
                     run, log, state, env, sleep, watch, annotate, deadline, unknown, \
                     flood-denials, forge or write.",
                ),
                SettingDoc::with_default(
                    "recover_mode",
                    "restart",
                    "What `recover` does: done, restart, escalate, error, loop or trap.",
                ),
                SettingDoc::optional(
                    "mib",
                    "Mebibytes to allocate (mode alloc, default 1024) or to log \
                     (mode log, default 100).",
                ),
                SettingDoc::optional("path", "File to read (mode read)."),
                SettingDoc::optional("address", "`host:port` to connect to (mode connect)."),
                SettingDoc::optional("host", "Name to look up (mode lookup)."),
                SettingDoc::optional("url", "URL to GET (modes fetch*)."),
                SettingDoc::optional("pid", "Process id to report to the host (mode watch)."),
                SettingDoc::optional("env", "`K=V,K=V` environment (mode run)."),
                SettingDoc::optional("cwd", "Working directory (mode run)."),
                SettingDoc::optional("output_max", "Bytes of output kept (mode run)."),
                SettingDoc::optional(
                    "program",
                    "Absolute path of the program to run (mode exec).",
                ),
                SettingDoc::optional(
                    "args",
                    "Arguments for `program`, separated by spaces (mode exec).",
                ),
                SettingDoc::with_default(
                    "timeout_ms",
                    "5000",
                    "Timeout of the exec or fetch, in milliseconds (modes exec, fetch).",
                ),
                SettingDoc::with_default(
                    "ms",
                    "60000",
                    "How long to sleep in a blocking WASI call, in milliseconds (mode sleep).",
                ),
            ],
            wants: vec![
                Capability::Read("directory of path".into()),
                Capability::Connect("address".into()),
                Capability::Connect("host:port of url".into()),
                Capability::Exec("program".into()),
            ],
        }
    }

    fn check(ctx: &Context) -> Health {
        match ctx.setting("mode").unwrap_or_default() {
            "ok" => Health::Healthy,
            "fail" => Health::Failed("told to fail".into()),
            "degraded" => Health::Degraded("told to degrade".into()),
            "unknown" => Health::Unknown("told it cannot judge".into()),
            "deadline" => Health::Degraded(format!("deadline {} ms", ctx.deadline_ms)),
            "loop" => spin(),
            "alloc" => alloc(ctx).unwrap_or_else(Health::Failed),
            "trap" => panic!("told to trap"),
            "read" => read(ctx).unwrap_or_else(Health::Failed),
            "write" => write(ctx).unwrap_or_else(Health::Failed),
            "connect" => connect(ctx).unwrap_or_else(Health::Failed),
            "fetch" => fetch(ctx, http::get).unwrap_or_else(Health::Failed),
            "fetch-wasi" => fetch(ctx, http::get_wasi).unwrap_or_else(Health::Failed),
            "fetch-raw" => fetch_raw(ctx).unwrap_or_else(Health::Failed),
            "send" => send(ctx).unwrap_or_else(Health::Failed),
            "tls" => tls(ctx).unwrap_or_else(Health::Failed),
            "fetch-wasi-raw" => fetch_wasi_raw(ctx).unwrap_or_else(Health::Failed),
            "lookup" => lookup(ctx).unwrap_or_else(Health::Failed),
            "exec" => exec(ctx).unwrap_or_else(Health::Failed),
            "log" => log(ctx).unwrap_or_else(Health::Failed),
            "state" => state(),
            "env" => Health::Degraded(format!(
                "env {} args {}",
                std::env::vars().count(),
                std::env::args().count()
            )),
            "sleep" => sleep(ctx).unwrap_or_else(Health::Failed),
            "watch" => watch(ctx).unwrap_or_else(Health::Failed),
            "run" => run(ctx).unwrap_or_else(Health::Failed),
            "annotate" => annotate(),
            "flood-denials" => flood_denials(ctx).unwrap_or_else(Health::Failed),
            "forge" => forge(),
            _ => Health::Failed("unknown mode".into()),
        }
    }

    fn recover(ctx: &Context) -> Result<NextStep, String> {
        match ctx.setting("recover_mode").unwrap_or("restart") {
            "done" => Ok(NextStep::Done),
            "restart" => Ok(NextStep::RestartApp),
            "escalate" => Ok(NextStep::Escalate("told to escalate".into())),
            "error" => Err("told to fail recovery".into()),
            "loop" => spin(),
            "trap" => panic!("told to trap"),
            _ => Err("unknown recover_mode".into()),
        }
    }
}

/// Burns CPU forever without calling the host, so only the host's
/// deadline (epoch interruption or fuel) can stop it.
fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates and fills `mib` MiB; under the host's memory cap the
/// allocation fails and the kit traps before this returns.
fn alloc(ctx: &Context) -> Result<Health, String> {
    let mib = ctx.parse_or("mib", 1024usize)?;
    let bytes = mib
        .checked_mul(1 << 20)
        .ok_or_else(|| format!("{mib} MiB does not fit the address space"))?;
    let block = vec![1u8; bytes];
    black_box(&block);
    Ok(Health::Degraded(format!("allocated {mib} MiB")))
}

/// Reads a file through WASI, which only sees granted directories.
fn read(ctx: &Context) -> Result<Health, String> {
    let path = ctx.require("path")?;
    Ok(match std::fs::read(path) {
        Ok(bytes) => Health::Degraded(format!("read ok: {} bytes", bytes.len())),
        Err(e) => Health::Failed(format!("read denied: {e}")),
    })
}

/// Opens a TCP connection through WASI sockets.
fn connect(ctx: &Context) -> Result<Health, String> {
    let address = ctx.require("address")?;
    Ok(match std::net::TcpStream::connect(address) {
        Ok(_stream) => Health::Degraded("connect ok".into()),
        Err(e) => Health::Failed(format!("connect denied: {e}")),
    })
}

/// Sends one GET through wasi:http.
/// GETs `url` with `get`: the host's `http-get` (`fetch`) or wasi:http
/// (`fetch-wasi`), which the host guards separately.
fn fetch(ctx: &Context, get: Getter) -> Result<Health, String> {
    let url = ctx.require("url")?;
    let timeout = Duration::from_millis(ctx.parse_or("timeout_ms", 5000u64)?);
    Ok(match get(url, timeout, 64 * 1024) {
        Ok(response) => Health::Degraded(format!("fetch ok: status {}", response.status)),
        Err(e) => Health::Failed(format!("fetch denied: {e:?}")),
    })
}

/// GETs `url` through the host's `http-get` as written, past the SDK's
/// own checks (which refuse user info before the host could).
fn fetch_raw(ctx: &Context) -> Result<Health, String> {
    let url = ctx.require("url")?;
    let timeout_ms = ctx.parse_or("timeout_ms", 5000u32)?;
    Ok(match host::http_get(url, timeout_ms, 64 * 1024) {
        Ok(response) => Health::Degraded(format!("fetch ok: status {}", response.status)),
        Err(e) => Health::Failed(format!("fetch denied: {e}")),
    })
}

/// Sends through the host's `http-send` whatever the settings say, past
/// every check of the SDK: `headers` copies of `header_value`, a URL padded
/// to `url_pad` bytes, a `body_len`-byte body, a `secret` for bearer auth,
/// `timeout_ms` as asked. Degraded with what came back, failed with the
/// host's refusal.
fn send(ctx: &Context) -> Result<Health, String> {
    let mut url = ctx.require("url")?.to_owned();
    let pad: usize = ctx.parse_or("url_pad", 0)?;
    if pad > 0 {
        url.push('?');
        url.push_str(&"a".repeat(pad));
    }
    let value = ctx.setting("header_value").unwrap_or("v");
    let headers = (0..ctx.parse_or("headers", 0usize)?)
        .map(|i| medic_kit::Setting {
            key: format!("X-H{i}"),
            value: value.to_owned(),
        })
        .collect();
    let request = medic_kit::http::Request {
        method: ctx.setting("method").unwrap_or("GET").to_owned(),
        url,
        headers,
        body: vec![b'b'; ctx.parse_or("body_len", 0usize)?],
        auth: ctx
            .setting("secret")
            .map(|name| medic_kit::http::Auth::Bearer(name.to_owned())),
        timeout_ms: ctx.parse_or("timeout_ms", u32::MAX)?,
        max_body: ctx.parse_or("max_body", u32::MAX)?,
    };
    Ok(match host::http_send(&request) {
        Ok(answer) => Health::Degraded(format!(
            "fetch ok: status {}; {} headers, {} body bytes, truncated {}",
            answer.status,
            answer.headers.len(),
            answer.body.len(),
            answer.truncated
        )),
        Err(e) => Health::Failed(format!("fetch denied: {e}")),
    })
}

/// Opens `streams` TLS connections to `address` through the host's
/// `tls-connect` (padded to `pad` bytes of address when asked), keeping
/// them all open, then asks the last one for `u32::MAX` bytes after
/// sending `send`. Degraded with what came back, failed with the host's
/// refusal.
fn tls(ctx: &Context) -> Result<Health, String> {
    let mut address = ctx.require("address")?.to_owned();
    let pad: usize = ctx.parse_or("pad", 0)?;
    address.push_str(&"0".repeat(pad));
    let timeout_ms = ctx.parse_or("timeout_ms", u32::MAX)?;
    let mut open = Vec::new();
    for _ in 0..ctx.parse_or("streams", 1usize)? {
        match host::tls_connect(&address, timeout_ms) {
            Ok(stream) => open.push(stream),
            Err(e) => {
                return Ok(Health::Failed(format!(
                    "tls refused after {}: {e}",
                    open.len()
                )));
            }
        }
    }
    let Some(last) = open.last() else {
        return Ok(Health::Healthy);
    };
    let send = ctx
        .setting("send")
        .unwrap_or("GET /healthz HTTP/1.0\r\n\r\n");
    last.send(send.as_bytes())?;
    let answer = last.recv(u32::MAX, timeout_ms)?;
    Ok(Health::Degraded(format!(
        "tls ok: {} open, {} bytes, certificate {}",
        open.len(),
        answer.len(),
        last.certificate().is_some()
    )))
}

/// GETs an `http://` `url` through raw wasi:http, its authority set as
/// written (`user@host:port` included), past the SDK's own checks.
fn fetch_wasi_raw(ctx: &Context) -> Result<Health, String> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, OutgoingRequest, Scheme};
    let url = ctx.require("url")?;
    let rest = url
        .strip_prefix("http://")
        .ok_or("url must start with http://")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_scheme(Some(&Scheme::Http))
        .map_err(|()| "scheme refused")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| format!("authority {authority:?} refused"))?;
    request
        .set_path_with_query(Some(&format!("/{path}")))
        .map_err(|()| "path refused")?;
    let pending = match outgoing_handler::handle(request, None) {
        Ok(pending) => pending,
        Err(code) => return Ok(Health::Failed(format!("fetch denied: {code:?}"))),
    };
    pending.subscribe().block();
    Ok(match pending.get() {
        Some(Ok(Ok(response))) => {
            Health::Degraded(format!("fetch ok: status {}", response.status()))
        }
        Some(Ok(Err(code))) => Health::Failed(format!("fetch denied: {code:?}")),
        _ => Health::Failed("fetch: no response".into()),
    })
}

/// Resolves `host` through `wasi:sockets/ip-name-lookup`.
fn lookup(ctx: &Context) -> Result<Health, String> {
    let host = ctx.require("host")?;
    Ok(match net::lookup(host, net::deadline_after(5000)) {
        Ok(ips) => Health::Degraded(format!("lookup ok: {ips:?}")),
        Err(e) => Health::Failed(format!("lookup denied: {e:?}")),
    })
}

/// One of the SDK's GET functions.
type Getter = fn(&str, Duration, usize) -> Result<http::Response, http::Error>;

/// Reports the process `pid` as the app's: healthy when the host took it.
fn watch(ctx: &Context) -> Result<Health, String> {
    let pid = ctx.require("pid")?;
    let pid = pid.parse().map_err(|_| format!("bad pid {pid}"))?;
    host::watch_process(pid)?;
    Ok(Health::Healthy)
}

/// The `args` setting split at spaces.
fn args(ctx: &Context) -> Vec<String> {
    ctx.setting("args")
        .unwrap_or_default()
        .split(' ')
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect()
}

/// Runs a program through `host::exec`.
fn exec(ctx: &Context) -> Result<Health, String> {
    let program = ctx.require("program")?;
    let args = args(ctx);
    let timeout_ms = ctx.parse_or("timeout_ms", 5000u32)?;
    Ok(match host::exec(program, &args, timeout_ms) {
        Ok(out) => Health::Degraded(format!(
            "exec ok: exit {:?} stdout {:?}",
            out.exit_code, out.stdout
        )),
        Err(e) => Health::Failed(format!("exec denied: {e}")),
    })
}

/// Runs a program through `host::run` with `env` (`K=V,K=V`), `cwd` and
/// `output_max` from the settings.
fn run(ctx: &Context) -> Result<Health, String> {
    let mut command = Command::new(ctx.require("program")?)
        .args(args(ctx))
        .timeout_ms(ctx.parse_or("timeout_ms", 5000u32)?)
        .output_max(ctx.parse_or("output_max", 0u32)?);
    for pair in ctx.setting("env").unwrap_or_default().split(',') {
        if let Some((key, value)) = pair.split_once('=') {
            command = command.env(key, value);
        }
    }
    if let Some(cwd) = ctx.setting("cwd") {
        command = command.current_dir(cwd);
    }
    Ok(match command.run() {
        Ok(out) => Health::Degraded(format!(
            "run ok: exit {:?} stdout {:?} truncated {}",
            out.exit_code, out.stdout, out.truncated
        )),
        Err(e) => Health::Failed(format!("run refused: {e}")),
    })
}

/// Adds 20 annotations (more than the host keeps), the first one 2 KiB
/// long, and fails.
fn annotate() -> Health {
    host::annotate("perfdata", "time=0.5s;1;2");
    host::annotate("long", &"v".repeat(2048));
    for i in 0..18 {
        host::annotate(&format!("extra{i}"), "x");
    }
    Health::Failed("annotated".into())
}

/// Floods `host::log` with `mib` messages of 1 MiB each.
fn log(ctx: &Context) -> Result<Health, String> {
    let mib = ctx.parse_or("mib", 100u32)?;
    let message = "x".repeat(1 << 20);
    for _ in 0..mib {
        host::log(Level::Info, &message);
    }
    Ok(Health::Degraded("logged".into()))
}

/// Counts calls in the app's persistent state.
fn state() -> Health {
    let n = host::state_get("counter")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    host::state_set("counter", &n.to_string());
    Health::Degraded(format!("counter {n}"))
}

/// Blocks in a WASI clock wait, so only a deadline that also covers host
/// calls can stop it early.
fn sleep(ctx: &Context) -> Result<Health, String> {
    let ms = ctx.parse_or("ms", 60_000u64)?;
    std::thread::sleep(Duration::from_millis(ms));
    Ok(Health::Degraded(format!("slept {ms} ms")))
}

/// Tries to overwrite, then to create beside it, the file `path`.
fn write(ctx: &Context) -> Result<Health, String> {
    let path = std::path::Path::new(ctx.require("path")?);
    let beside = path.with_extension("new");
    Ok(
        match (std::fs::write(path, "kit"), std::fs::write(&beside, "kit")) {
            (Err(over), Err(new)) => Health::Failed(format!("write denied: {over}; {new}")),
            _ => Health::Degraded("write ok".into()),
        },
    )
}

/// Asks `count` (default 1000) times to run a program whose 1 MiB name is
/// not granted: each call is denied, and a host that kept every denial
/// whole would hold a GiB.
fn flood_denials(ctx: &Context) -> Result<Health, String> {
    let count = ctx.parse_or("count", 1000u32)?;
    let name = format!("/{}", "x".repeat(1 << 20));
    for _ in 0..count {
        let _ = host::exec(&name, &[], 1000);
    }
    Ok(Health::Degraded(format!("asked {count} times")))
}

/// Logs and answers text that would forge a log line and clear the
/// admin's terminal if it were written raw.
fn forge() -> Health {
    let text = "down\n2026-11-30T00:00:00Z  INFO medic: FORGED line\u{1b}[2J";
    medic_kit::info!("{text}");
    Health::Failed(text.into())
}

export!(Misbehave);
