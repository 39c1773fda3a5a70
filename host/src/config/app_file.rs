//! `apps.d/NAME.toml`: one supervised app.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ConfigError;
use super::reader::{Doc, Table, non_empty};
use super::{AppSpec, Grants, RecoveryPolicy, Source, Then, TlsSettings, UpdateSpec};

/// What an app file is checked against: the main file's settings.
pub(crate) struct Context<'a> {
    /// Where relative paths (the pidfile) resolve: `medic.toml`'s directory.
    pub(crate) base_dir: &'a Path,
    /// Where kits live; `None` when `medic.toml` was broken, in which case
    /// kit files are not looked for (that would only add noise).
    pub(crate) plugins_dir: Option<&'a Path>,
    /// The daemon's default kit memory cap.
    pub(crate) kit_memory_mib: u32,
}

/// Checks one app file; its name is its file stem. Also returns where its
/// `depends_on` is (1:1 when absent), to report unknown names and cycles,
/// which only the whole config can show.
pub(crate) fn read(
    source: &Source,
    cx: &Context<'_>,
) -> Result<(AppSpec, (usize, usize)), Vec<ConfigError>> {
    let doc = Doc::new(&source.origin, &source.text);
    let name = app_name(&source.origin);
    if let Err(message) = &name {
        doc.error(0, "(file)", message.as_str());
    }
    let Some(parsed) = doc.parse() else {
        return Err(doc.into_errors());
    };
    let mut app = Table::root(&doc, parsed.get_ref());

    let kit = app.required("kit", |s| kit(s, cx.plugins_dir));
    let interval = app
        .duration("interval", Duration::from_millis(10))
        .or(Duration::from_secs(10));
    let timeout = app
        .duration("timeout", Duration::from_millis(1))
        .or(Duration::from_secs(5));
    let failures_before_action = app.u32_in("failures_before_action", 1..=u32::MAX).or(2);
    let timeouts_before_failure = app.u32_in("timeouts_before_failure", 0..=u32::MAX).or(2);
    let start = app.argv("start").ok();
    let stop = app.argv("stop").ok();
    let command_timeout = app
        .duration("command_timeout", Duration::from_millis(1))
        .or(Duration::from_secs(30));
    let updates = UpdateSpec {
        update: app.argv("update").ok(),
        rollback: app.argv("rollback").ok(),
        healthy_checks: app
            .u32_in("healthy_checks", 1..=1000)
            .or(super::DEFAULT_HEALTHY_CHECKS),
    };
    let pidfile = app.path("pidfile", cx.base_dir).ok();
    let stop_grace = app
        .duration("stop_grace", Duration::ZERO)
        .or(Duration::from_secs(10));
    let start_grace = app
        .duration("start_grace", Duration::ZERO)
        .or(Duration::ZERO);
    let (depends_on, depends_at) = match app.list("depends_on", |s| non_empty(s).map(str::to_owned))
    {
        super::reader::Read::Valid(names, at) => (names, doc.position(at)),
        _ => (Vec::new(), (1, 1)),
    };
    let kit_memory_mib = app.u32_in("kit_memory_mib", 1..=4096).or(cx.kit_memory_mib);

    let mut table = app.table("recovery");
    let recovery = RecoveryPolicy {
        local_attempts: table.u32_in("local_attempts", 0..=u32::MAX).or(3),
        window: table
            .duration("window", Duration::from_secs(1))
            .or(Duration::from_secs(600)),
        backoff: table
            .duration("backoff", Duration::ZERO)
            .or(Duration::from_secs(1)),
        then: table.parsed("then", then).or(Then::Alert),
        max_flaps: table.u32_in("max_flaps", 0..=u32::MAX).or(5),
        flap_window: table
            .duration("flap_window", Duration::from_secs(1))
            .or(Duration::from_secs(3600)),
    };
    table.finish();

    let settings = app.scalars("settings", |key, value| fits_timeout(key, value, timeout));

    let mut table = app.table("grants");
    let grants = Grants {
        read: table.list("read", readable_dir).or(Vec::new()),
        connect: table.list("connect", address).or(Vec::new()),
        exec: table
            .list("exec", |s| absolute(s).map(Path::to_path_buf))
            .or(Vec::new()),
        env: table
            .list("env", |s| {
                crate::sandbox::env_grant::check_pattern(s).map(|()| s.to_owned())
            })
            .or(Vec::new()),
    };
    table.finish();
    let tls = read_tls(app.table("tls"), &source.origin);
    let base = source.origin.parent().unwrap_or(Path::new("/"));
    let secrets = app
        .scalars("secrets", |name, path| secret(name, path, base))
        .into_iter()
        .map(|(name, path)| (name, base.join(path)))
        .collect();
    app.finish();

    let errors = doc.into_errors();
    match (name, kit) {
        (Ok(name), Some((kit, kit_path))) if errors.is_empty() => Ok((
            AppSpec {
                name,
                source: source.origin.clone(),
                kit,
                kit_path,
                interval,
                timeout,
                failures_before_action,
                timeouts_before_failure,
                start,
                stop,
                command_timeout,
                updates,
                pidfile,
                stop_grace,
                start_grace,
                kit_memory_mib,
                recovery,
                settings,
                grants,
                tls,
                secrets,
                depends_on,
            },
            depends_at,
        )),
        _ => Err(errors),
    }
}

/// Whether `text` matches `[A-Za-z0-9_.-]+`: safe in logs, journal keys
/// and file names.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The app's name: the file stem, restricted to `[A-Za-z0-9_.-]+` so it is
/// safe in logs, journal keys and file names.
fn app_name(origin: &Path) -> Result<String, String> {
    let stem = origin
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    if is_name(&stem) {
        Ok(stem.into_owned())
    } else {
        Err(format!(
            "app name `{stem}` (the file name without .toml) must match [A-Za-z0-9_.-]+"
        ))
    }
}

/// `[tls]`. The certificate files are read here, so `config validate`
/// finds a wrong one; the key is read (and its permissions judged) by the
/// daemon, as `[daemon] tls_key` is. Relative paths are taken from the app
/// file's directory.
fn read_tls(mut table: Table<'_, '_>, origin: &Path) -> TlsSettings {
    let base = origin.parent().unwrap_or(Path::new("/"));
    let certificate = |path: &str| super::main_file::certificate_file(path, base);
    let tls = TlsSettings {
        ca_files: table.list("ca_files", certificate).or(Vec::new()),
        client_cert: table.parsed("client_cert", certificate).ok(),
        client_key: table.path("client_key", base).ok(),
        server_name: table.parsed("server_name", server_name).ok(),
        insecure: table.bool("insecure").or(false),
    };
    match (&tls.client_cert, &tls.client_key) {
        (Some(_), None) => table.missing("client_key", "client_cert needs its client_key"),
        (None, Some(_)) => table.missing("client_cert", "client_key needs its client_cert"),
        _ => {}
    }
    table.finish();
    tls
}

/// One `[secrets]` entry: a name a kit can say (as app names are, at most
/// 64 bytes) and a file that exists. Its permissions and content are judged
/// by the daemon when it reads it, as a `client_key`'s are.
fn secret(name: &str, path: &str, base: &Path) -> Result<(), String> {
    if !is_name(name) || name.len() > SECRET_NAME_MAX {
        return Err(format!(
            "secret name `{name}` must match [A-Za-z0-9_.-]{{1,{SECRET_NAME_MAX}}}"
        ));
    }
    if path.is_empty() {
        return Err("path must not be empty".to_owned());
    }
    let file = base.join(path);
    match std::fs::metadata(&file) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(format!("{} is not a file", file.display())),
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}

/// The longest `[secrets]` name, as `host.http-send` takes it.
pub const SECRET_NAME_MAX: usize = 64;

/// `server_name`: a DNS name or an IP address, as TLS can present it.
fn server_name(name: &str) -> Result<String, String> {
    rustls::pki_types::ServerName::try_from(name)
        .map(|_| name.to_owned())
        .map_err(|_| format!("{name:?} is not a DNS name or an IP address"))
}

/// A kit name and its module; the module must exist when `plugins_dir` is known.
fn kit(name: &str, plugins_dir: Option<&Path>) -> Result<(String, PathBuf), String> {
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-');
    if name.is_empty() || !name.chars().all(valid) {
        return Err(format!("kit name `{name}` must match [a-z0-9_-]+"));
    }
    let path = plugins_dir
        .unwrap_or(Path::new(""))
        .join(format!("{name}.wasm"));
    if plugins_dir.is_some() && !path.is_file() {
        return Err(format!("kit file {} not found", path.display()));
    }
    Ok((name.to_owned(), path))
}

/// A kit setting that bounds a wait (`timeout_ms`, `connect_timeout_ms`...)
/// must end before the call's deadline, or the kit is cut off as a kit fault
/// before it can say that the app did not answer.
fn fits_timeout(key: &str, value: &str, timeout: Duration) -> Result<(), String> {
    let Some(wait) = key
        .ends_with("timeout_ms")
        .then(|| value.trim().parse::<u64>().ok())
        .flatten()
    else {
        return Ok(());
    };
    let margin = crate::sandbox::deadline_margin(timeout);
    let room = timeout.saturating_sub(margin);
    if Duration::from_millis(wait) <= room {
        return Ok(());
    }
    Err(format!(
        "{wait} ms cannot finish within the app's timeout of {} (a kit's waits end {} before it): set it to at most {} or raise `timeout`",
        humantime::format_duration(timeout),
        humantime::format_duration(margin),
        room.as_millis()
    ))
}

fn then(name: &str) -> Result<Then, String> {
    match name {
        "vm-reset" => Ok(Then::VmReset),
        "alert" => Ok(Then::Alert),
        "none" => Ok(Then::None),
        _ => Err(format!(
            "unknown action `{name}`; expected one of: vm-reset, alert, none"
        )),
    }
}

fn absolute(s: &str) -> Result<&Path, String> {
    let path = Path::new(non_empty(s)?);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(format!("path {s} must be absolute"))
    }
}

/// A directory a kit may read: absolute and existing now, so a typo shows
/// up at load time rather than as a denied read during an outage.
fn readable_dir(s: &str) -> Result<PathBuf, String> {
    let path = absolute(s)?;
    if path.is_dir() {
        Ok(path.to_path_buf())
    } else if path.exists() {
        Err(format!("{s} is not a directory"))
    } else {
        Err(format!("directory {s} not found"))
    }
}

/// A `host:port` address, kept as written: host is a name, an IPv4
/// address or a bracketed IPv6 address; port is 1..=65535.
pub(super) fn address(s: &str) -> Result<String, String> {
    let bad = |why: &str| format!("invalid address {s:?}: {why}");
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:port"))?;
    match port.parse::<u16>() {
        Ok(1..) if port.bytes().all(|b| b.is_ascii_digit()) => {}
        _ => return Err(bad("port must be a number from 1 to 65535")),
    }
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok())
    } else if host.parse::<Ipv4Addr>().is_ok() {
        true
    } else {
        let label_ok = |label: &str| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        };
        !host.is_empty() && host.len() <= 253 && host.split('.').all(label_ok)
    };
    if host_ok {
        Ok(s.to_owned())
    } else if host.is_empty() {
        Err(bad("host must not be empty"))
    } else if host.contains(':') && !host.starts_with('[') {
        Err(bad(
            "IPv6 addresses must be written in brackets, e.g. [::1]:80",
        ))
    } else {
        Err(bad(
            "host must be a name, an IPv4 address or a bracketed IPv6 address",
        ))
    }
}
