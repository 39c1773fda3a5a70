//! `medic.toml`: the `[daemon]` and `[escalation]` tables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ConfigError;
use super::reader::{Doc, Read, Table, non_empty};
use super::{DaemonSettings, EscalationSettings, Source, TlsListen};

/// What `medic.toml` says, plus how far the rest of loading may trust it.
pub(crate) struct MainFile {
    /// The settings; fields that were invalid hold their defaults.
    pub(crate) daemon: DaemonSettings,
    /// The settings; fields that were invalid hold their defaults.
    pub(crate) escalation: EscalationSettings,
    /// The valid `[[alert]]` sinks.
    pub(crate) alerts: Vec<crate::alerts::SinkSettings>,
    /// Whether `plugins_dir` is what the user meant, so that missing kit
    /// files are real problems and not noise from an earlier error.
    pub(crate) plugins_dir_ok: bool,
    /// Where `apps_dir` is set in the file (1:1 when defaulted), to report
    /// a missing directory; `None` when it cannot be trusted.
    pub(crate) apps_dir_at: Option<(usize, usize)>,
}

const DEFAULT_PLUGINS_DIR: &str = "/usr/lib/medic/kits";
const DEFAULT_APPS_DIR: &str = "/etc/medic/apps.d";
const DEFAULT_STATE_DIR: &str = "/var/lib/medic";

/// How long journal events are kept unless configured: a quarter of a
/// year covers any review of last quarter's incidents.
const DEFAULT_JOURNAL_KEEP: Duration = Duration::from_secs(90 * 24 * 3600);
/// How large the journal may grow unless configured: months of a flapping
/// fleet, small beside any disk medic runs on.
const DEFAULT_JOURNAL_MAX: u64 = 256 << 20;
/// The smallest `journal_max`: below it retention would delete a day of an
/// ordinary host's events.
const JOURNAL_MAX_MIN: u64 = 1 << 20;

/// The memory cap of each kit instance, in MiB, unless configured.
pub(crate) const DEFAULT_KIT_MEMORY_MIB: u32 = 64;

/// Checks `medic.toml`; relative paths resolve against `base`.
pub(crate) fn read(source: &Source, base: &Path) -> (MainFile, Vec<ConfigError>) {
    let doc = Doc::new(&source.origin, &source.text);
    let Some(parsed) = doc.parse() else {
        return (defaults(), doc.into_errors());
    };
    let mut root = Table::root(&doc, parsed.get_ref());

    let mut daemon = root.table("daemon");
    let plugins_dir = daemon.path("plugins_dir", base);
    let plugins_dir_ok = !matches!(plugins_dir, Read::Invalid);
    let apps_dir = daemon.path("apps_dir", base);
    let apps_dir_at = match apps_dir {
        Read::Absent => Some((1, 1)),
        Read::Invalid => None,
        Read::Valid(_, at) => Some(doc.position(at)),
    };
    let fallback = defaults();
    let mut daemon_settings = DaemonSettings {
        plugins_dir: plugins_dir.or(fallback.daemon.plugins_dir),
        apps_dir: apps_dir.or(fallback.daemon.apps_dir),
        state_dir: daemon.path("state_dir", base).or(fallback.daemon.state_dir),
        kit_memory_mib: daemon
            .u32_in("kit_memory_mib", 1..=4096)
            .or(fallback.daemon.kit_memory_mib),
        metrics: daemon.parsed("metrics", super::app_file::address).ok(),
        socket: daemon.path("socket", base).or(fallback.daemon.socket),
        socket_group: daemon.parsed("socket_group", group_id).ok(),
        alert_queue: daemon
            .u32_in("alert_queue", 1..=1_000_000)
            .or(fallback.daemon.alert_queue),
        reload_on_change: daemon.bool("reload_on_change").or(true),
        trusted_keys: daemon
            .list("trusted_keys", |pattern| trusted_key_pattern(pattern, base))
            .or(fallback.daemon.trusted_keys),
        require_signed: false,
        journal_keep: daemon
            .duration("journal_keep", Duration::from_secs(3600))
            .or(fallback.daemon.journal_keep),
        journal_max: daemon
            .parsed("journal_max", journal_size)
            .or(fallback.daemon.journal_max),
        listen: read_listen(&doc, &mut daemon, base),
    };
    if let Read::Valid(true, at) = daemon.bool("require_signed") {
        daemon_settings.require_signed = true;
        if daemon_settings.trusted_keys.is_empty() {
            doc.error(
                at,
                &daemon.field("require_signed"),
                "require_signed is on but trusted_keys names no key: every kit would be refused",
            );
        }
    }
    daemon.finish();

    let mut escalation = root.table("escalation");
    let backend = super::backend::read(&doc, &mut escalation, base);
    let escalation_settings = EscalationSettings {
        backend: backend.unwrap_or(fallback.escalation.backend),
        max_resets: escalation
            .u32_in("max_resets", 0..=u32::MAX)
            .or(fallback.escalation.max_resets),
        reset_window: escalation
            .duration("reset_window", Duration::from_secs(1))
            .or(fallback.escalation.reset_window),
        min_uptime: escalation
            .duration("min_uptime", Duration::ZERO)
            .or(fallback.escalation.min_uptime),
        timeout: escalation
            .duration("timeout", Duration::from_millis(100))
            .or(fallback.escalation.timeout),
        attempts: escalation
            .u32_in("attempts", 1..=20)
            .or(fallback.escalation.attempts),
        retry_backoff: escalation
            .duration("retry_backoff", Duration::ZERO)
            .or(fallback.escalation.retry_backoff),
    };
    escalation.finish();
    let alerts = super::alert::read(&mut root);
    root.finish();

    let settings = MainFile {
        daemon: daemon_settings,
        escalation: escalation_settings,
        alerts,
        plugins_dir_ok,
        apps_dir_at,
    };
    (settings, doc.into_errors())
}

/// The settings of an empty `medic.toml`; after a syntax error nothing in
/// the file can be trusted, so the directories are not used.
fn defaults() -> MainFile {
    MainFile {
        daemon: DaemonSettings {
            plugins_dir: PathBuf::from(DEFAULT_PLUGINS_DIR),
            apps_dir: PathBuf::from(DEFAULT_APPS_DIR),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            kit_memory_mib: DEFAULT_KIT_MEMORY_MIB,
            metrics: None,
            socket: PathBuf::from(crate::api::DEFAULT_SOCKET),
            socket_group: None,
            alert_queue: 256,
            reload_on_change: true,
            trusted_keys: Vec::new(),
            require_signed: false,
            journal_keep: DEFAULT_JOURNAL_KEEP,
            journal_max: DEFAULT_JOURNAL_MAX,
            listen: None,
        },
        escalation: EscalationSettings::default(),
        alerts: Vec::new(),
        plugins_dir_ok: false,
        apps_dir_at: None,
    }
}

/// The gid of the group named `name` (or given as a number).
fn group_id(name: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(format!("no group named `{name}` on this system")),
        Err(e) => Err(format!("cannot look up group `{name}`: {e}")),
    }
}

/// A `trusted_keys` pattern made absolute against `base`, when every file
/// it matches is a minisign public key and it matches at least one.
fn trusted_key_pattern(pattern: &str, base: &Path) -> Result<String, String> {
    if pattern.is_empty() {
        return Err("pattern must not be empty".to_owned());
    }
    let pattern = base.join(pattern).to_string_lossy().into_owned();
    let files = crate::signing::key_files(&pattern).map_err(|e| e.to_string())?;
    for file in files {
        crate::signing::check_key_file(&file).map_err(|e| e.to_string())?;
    }
    Ok(pattern)
}

/// `journal_max`: a size such as `"256MiB"` or `"1GB"`, at least 1 MiB.
fn journal_size(text: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize = text
        .parse()
        .map_err(|e| format!("not a size ({e}); write e.g. \"256MiB\" or \"1GB\""))?;
    if size.as_u64() < JOURNAL_MAX_MIN {
        return Err(format!("{size} is less than the minimum of 1 MiB"));
    }
    Ok(size.as_u64())
}

/// `listen` and the keys it needs (`tls_cert`, `tls_key`, `client_ca` and
/// a non-empty `clients`): the admin API over TCP is mutual TLS only, so
/// whatever of them is missing is reported at `listen`. The certificate
/// files are read here, so `config validate` finds a wrong one; the key is
/// read (and its permissions judged) by the daemon, since the user who
/// validates may not be the one who owns it.
fn read_listen(doc: &Doc<'_>, daemon: &mut Table<'_, '_>, base: &Path) -> Option<TlsListen> {
    let addr = daemon.parsed("listen", listen_address);
    let cert = daemon.parsed("tls_cert", |path| certificate_file(path, base));
    let key = daemon.path("tls_key", base);
    let client_ca = daemon.parsed("client_ca", |path| certificate_file(path, base));
    let clients = daemon.list("clients", |name| non_empty(name).map(str::to_owned));
    let Read::Valid(addr, at) = addr else {
        return None;
    };
    let no_clients = match &clients {
        Read::Absent => true,
        Read::Valid(names, _) => names.is_empty(),
        Read::Invalid => false,
    };
    let missing: Vec<&str> = [
        (is_absent(&cert), "tls_cert (the agent's certificate)"),
        (is_absent(&key), "tls_key (its private key)"),
        (
            is_absent(&client_ca),
            "client_ca (the CA of the client certificates)",
        ),
        (
            no_clients,
            "clients (the client certificate names let in, at least one)",
        ),
    ]
    .into_iter()
    .filter_map(|(missing, what)| missing.then_some(what))
    .collect();
    if !missing.is_empty() {
        doc.error(
            at,
            &daemon.field("listen"),
            format!(
                "listen serves the admin API with mutual TLS only; it needs {}",
                missing.join(", ")
            ),
        );
        return None;
    }
    Some(TlsListen {
        addr,
        cert: cert.ok()?,
        key: key.ok()?,
        client_ca: client_ca.ok()?,
        clients: clients.ok()?,
    })
}

/// Whether a key is not in the file (an invalid value is reported already).
fn is_absent<T>(read: &Read<T>) -> bool {
    matches!(read, Read::Absent)
}

/// `listen`: an IP address and a port other than 0.
fn listen_address(text: &str) -> Result<std::net::SocketAddr, String> {
    let addr: std::net::SocketAddr = text.parse().map_err(|_| {
        format!("{text:?} is not an IP address and port such as \"0.0.0.0:8443\" or \"[::]:8443\"")
    })?;
    if addr.port() == 0 {
        return Err("port 0 is not a port clients could be told".to_owned());
    }
    Ok(addr)
}

/// `tls_cert` or `client_ca`, made absolute against `base`, when the file
/// holds at least one PEM certificate.
pub(super) fn certificate_file(path: &str, base: &Path) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("path must not be empty".to_owned());
    }
    let path = base.join(path);
    crate::api::tls::read_certificates(&path).map_err(|e| e.to_string())?;
    Ok(path)
}
