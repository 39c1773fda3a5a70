//! The data of one kit call's `Store`: WASI context built from the app's
//! policy, resource limits, and what the call did that the host must judge
//! afterwards (denials, memory-limit hits).
//!
//! A store lives for exactly one call and is dropped afterwards, so a trapped
//! or interrupted instance is never reused.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::http::GuardedHttp;
use super::kit_state::KitStateStore;
use super::name_lookup::GrantedNames;
use super::policy::{Denials, Policy};
use crate::config::Grants;
use crate::process::PinnedProcess;

/// Per-call caps on what a kit may log, so a kit cannot flood the journal
/// or the host's memory through `host.log`.
pub const LOG_MESSAGE_MAX: usize = 4 * 1024;
/// Total bytes of log messages kept per call; the rest is dropped and counted.
pub const LOG_TOTAL_MAX: usize = 64 * 1024;
/// Caps on `host.annotate` per call: pairs kept, and bytes of a key and of
/// a value, so a kit cannot bloat the journal.
pub const ANNOTATIONS_MAX: usize = 16;
/// See [`ANNOTATIONS_MAX`].
pub const ANNOTATION_KEY_MAX: usize = 64;
/// See [`ANNOTATIONS_MAX`].
pub const ANNOTATION_VALUE_MAX: usize = 1024;
/// Bytes of a kit's stderr kept per call: enough for a panic message, which
/// is quoted in the kit fault so an author sees why the kit trapped.
pub const STDERR_KEPT: usize = 4 * 1024;

/// When one kit call must be over, and so how long a host call made during
/// it may wait on the outside world.
///
/// Host calls end a margin before the deadline with a timeout error the kit
/// sees, so the kit can still answer (a hung server is `failed`) instead of
/// being cut off at the deadline as a kit fault.
#[derive(Debug, Clone, Copy)]
pub struct CallDeadline {
    at: Instant,
    margin: Duration,
}

impl CallDeadline {
    /// The deadline of a call that starts now and may take `timeout`.
    pub fn after(timeout: Duration) -> Self {
        Self {
            at: Instant::now() + timeout,
            margin: deadline_margin(timeout),
        }
    }

    /// How long a host call that wants to wait `wanted` may wait: never
    /// past the deadline less the margin.
    pub fn clamp(&self, wanted: Duration) -> Duration {
        let left = self.at.saturating_duration_since(Instant::now());
        wanted.min(left.saturating_sub(self.margin))
    }
}

/// What the host keeps free before a call's deadline for the kit to answer:
/// a tenth of the call's time, at least 20 ms and at most 500 ms, and never
/// more than half of it. `medic:kit` documents this rule (`deadline-ms`), so
/// kits can apply the same one to their own waits.
pub fn deadline_margin(timeout: Duration) -> Duration {
    (timeout / 10)
        .clamp(Duration::from_millis(20), Duration::from_millis(500))
        .min(timeout / 2)
}

/// Who the call is for and what it may touch.
#[derive(Clone)]
pub struct CallScope {
    /// The app's name, tagged on every log line and used for kit state.
    pub(super) app: Arc<str>,
    /// The app's compiled grants.
    pub(super) policy: Arc<Policy>,
    /// Where the app's `state-get`/`state-set` values live.
    pub(super) state: Arc<KitStateStore>,
    /// Linear memory cap of the instance, in bytes.
    pub(super) memory_limit: usize,
}

impl CallScope {
    /// The scope of `app`'s calls: its grants compiled once, its kit state
    /// kept in `state_file`, its memory capped at `memory_limit` bytes.
    pub fn new(app: &str, grants: &Grants, state_file: PathBuf, memory_limit: usize) -> Self {
        Self {
            app: Arc::from(app),
            policy: Arc::new(Policy::from_grants(grants)),
            state: Arc::new(KitStateStore::open(state_file)),
            memory_limit,
        }
    }

    /// The same scope with the app's `[tls]` for its HTTPS requests and
    /// its `[secrets]` for `http-send` (the files are read now).
    pub fn with_files(
        self,
        tls: &crate::config::TlsSettings,
        secrets: &[(String, PathBuf)],
    ) -> Self {
        let policy = Policy {
            tls: super::tls_trust::TlsTrust::of(&self.app, tls),
            secrets: super::secrets::AppSecrets::read(&self.app, secrets),
            ..(*self.policy).clone()
        };
        Self {
            policy: Arc::new(policy),
            ..self
        }
    }
}

/// The `T` of `Store<T>` for one kit call.
pub struct KitStore {
    pub(super) scope: CallScope,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: GuardedHttp,
    pub(super) table: ResourceTable,
    pub(super) limits: Limits,
    pub(super) denials: Denials,
    pub(super) log_bytes: usize,
    pub(super) log_dropped: usize,
    /// What the kit wrote to stderr (stdout is discarded).
    pub(super) stderr: MemoryOutputPipe,
    /// TLS connections open for the kit (`host.tls-connect`).
    pub(super) tls_streams: usize,
    /// The app's main process, as the kit last reported it.
    pub(super) reported_process: Option<PinnedProcess>,
    /// What the kit added to the record of this call (`host.annotate`).
    pub(super) annotations: Vec<(String, String)>,
    /// When the call must be over; host calls end before it.
    pub(super) deadline: CallDeadline,
    /// Epoch ticks at which the kit's own code was running: its computing
    /// time, in ticks, as opposed to time spent waiting in host calls.
    pub(super) busy_ticks: u32,
}

impl KitStore {
    /// Builds the WASI context with nothing open but what the policy grants,
    /// for a call that must be over by `deadline`.
    pub fn new(scope: CallScope, deadline: CallDeadline) -> anyhow::Result<Self> {
        let denials = Denials::default();
        let mut wasi = WasiCtxBuilder::new();
        for dir in &scope.policy.read {
            let guest_path = dir.to_string_lossy();
            wasi.preopened_dir(dir, &*guest_path, FsPerms::ReadOnly)
                .map_err(|e| {
                    anyhow::anyhow!("cannot open granted directory {}: {e}", dir.display())
                })?;
        }
        // TCP is always "enabled" so that every attempt reaches the address
        // check and a denied one is recorded as such (a kit fault), instead
        // of the guest seeing a bare permission error that it would report
        // as the app being down. Name lookups never reach wasmtime-wasi's
        // resolver: the linker answers them from the grants (name_lookup).
        let policy = scope.policy.clone();
        let socket_denials = denials.clone();
        wasi.allow_tcp(true)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(move |addr: SocketAddr, usage: SocketAddrUse| {
                let allowed = match usage {
                    // Connecting first binds an ephemeral local port.
                    SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                        addr.ip().is_unspecified() && addr.port() == 0
                    }
                    _ => policy.connect.allows_addr(&addr),
                };
                if !allowed {
                    socket_denials.record(format!("connect {addr}"));
                }
                Box::pin(std::future::ready(allowed))
            });
        let stderr = MemoryOutputPipe::new(STDERR_KEPT);
        wasi.stderr(stderr.clone());
        let http_hooks = GuardedHttp::new(scope.policy.clone(), denials.clone(), deadline);
        let limits = Limits::new(scope.memory_limit);
        Ok(Self {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            http_hooks,
            table: ResourceTable::new(),
            limits,
            denials,
            scope,
            log_bytes: 0,
            log_dropped: 0,
            tls_streams: 0,
            stderr,
            reported_process: None,
            annotations: Vec::new(),
            deadline,
            busy_ticks: 0,
        })
    }
}

impl KitStore {
    /// What the kit's `wasi:sockets/ip-name-lookup` sees: the grants only.
    pub(super) fn granted_names(&mut self) -> GrantedNames<'_> {
        GrantedNames {
            connect: &self.scope.policy.connect,
            denials: &self.denials,
            table: &mut self.table,
        }
    }
}

impl WasiView for KitStore {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for KitStore {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// Resource limits of one store. Unlike `StoreLimits` it remembers that the
/// memory cap was hit, so the fault can be reported as such instead of as the
/// guest's allocator aborting.
pub struct Limits {
    memory_limit: usize,
    /// Set when a memory grow past the cap was refused.
    pub memory_hit: bool,
}

/// Instances, tables and memories a kit component may create; real kits use
/// a handful (one per core module and adapter).
const MAX_INSTANCES: usize = 32;
const MAX_TABLES: usize = 32;
const MAX_MEMORIES: usize = 8;
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl Limits {
    fn new(memory_limit: usize) -> Self {
        Self {
            memory_limit,
            memory_hit: false,
        }
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}
