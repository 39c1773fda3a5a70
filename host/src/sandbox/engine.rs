//! One wasmtime `Engine` for all kits: pooling allocator, epoch-based
//! deadlines, and a precompiled-code cache in `state_dir`.
//!
//! Precompiled artifacts are only ever read from medic's own cache directory,
//! keyed by the sha256 of the `.wasm` and the engine's compatibility hash,
//! never from the plugins directory: loading precompiled code is as trusting
//! as running native code, and the plugins directory is an admin drop box.
//! For the same reason an artifact is loaded only when medic's own user
//! wrote it (see `trusted.rs`); any other is ignored and the kit is
//! compiled from its `.wasm`, and nothing is cached into a directory that
//! others control.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::LoadError;
use super::bindings::{RecoveryKit, RecoveryKitIndices};
use super::kit::{CALLS, CallsIndices, INSPECT, Kit};
use super::store::KitStore;
use super::trusted::TrustedDir;
use crate::signing::KitTrust;

/// How often the epoch advances: the longest a guest runs before yielding
/// to the runtime, and so the granularity of call deadlines.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Largest per-app memory cap the engine is configured for (4 GiB).
const MAX_KIT_MEMORY: usize = 4096 << 20;

/// How much of a pool slot's memory and of its tables stays mapped between
/// calls (when the kernel can say which pages a call dirtied). 1 MiB covers a
/// typical Rust kit's stack and heap; 256 KiB to 4 MiB measured the same.
const KEEP_RESIDENT: usize = 1 << 20;

/// What a kit load is doing, for someone waiting on it.
#[derive(Debug, Clone, Copy)]
pub enum LoadProgress {
    /// The kit is not in the cache: compiling its `bytes` bytes starts.
    Compiling {
        /// Size of the kit file.
        bytes: usize,
    },
    /// Compiling is done.
    Compiled {
        /// How long it took.
        took: Duration,
    },
}

/// How many kit calls may be in flight at once, across all kits. A call
/// holds a pool slot, a fiber stack (and usually a socket) while it waits
/// on its app; a thousand apps started together would otherwise exhaust
/// the pool and fail checks that did nothing wrong, and every slot ever
/// used stays resident. The pool below fits this many calls of kits with
/// up to 16 core instances each; further calls wait for a free place
/// before their deadline starts. So one slow kit never delays another app,
/// but more than this many hung at once do, until their timeouts.
pub(super) const CALLS_IN_FLIGHT: usize = 64;

/// Compiles, caches and links kits. Cheap to clone.
#[derive(Clone)]
pub struct KitEngine {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<KitStore>,
    cache_dir: Option<PathBuf>,
    /// Places for calls in flight, shared by every kit of this engine.
    places: Arc<tokio::sync::Semaphore>,
}

impl KitEngine {
    /// Builds the engine and starts the epoch ticker thread, which stops when
    /// the engine is dropped. Without `cache_dir` nothing is cached (one-shot
    /// commands such as `medic kit inspect`).
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        Self::build(cache_dir).map_err(|e| anyhow::anyhow!("{e:#}"))
    }

    fn build(cache_dir: Option<PathBuf>) -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let mut pool = PoolingAllocationConfig::default();
        pool.max_memory_size(MAX_KIT_MEMORY);
        pool.total_component_instances(256);
        pool.total_core_instances(1024);
        pool.total_memories(512);
        pool.total_tables(1024);
        // Reuse the slots of calls that ended before touching fresh ones:
        // every slot ever used keeps its pages resident (below), so the
        // slots used should be as many as the calls in flight, not more.
        pool.max_unused_warm_slots(0);
        // Resetting a slot with madvise costs a page fault for every page
        // the next call touches again; with the kernel's PAGEMAP_SCAN
        // (Linux 6.7+) only the pages a call dirtied are reset, in place.
        // Without it, keeping slots resident would memset them whole, which
        // costs more than the faults it saves.
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(wasmtime::Enabled::Yes);
            pool.linear_memory_keep_resident(KEEP_RESIDENT);
            pool.table_keep_resident(KEEP_RESIDENT);
        }
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        super::name_lookup::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        RecoveryKit::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)?;

        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("medic-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache_dir,
                places: Arc::new(tokio::sync::Semaphore::new(CALLS_IN_FLIGHT)),
            }),
        })
    }

    /// Loads a kit file with no trusted keys: a signature by a key medic
    /// cannot check is shown, not required (`medic kit test`, tests).
    pub fn load(&self, path: &Path) -> Result<Kit, LoadError> {
        self.load_trusted(path, &KitTrust::default())
    }

    /// Loads a kit file: judges its signature under `trust`, then validates
    /// it is a component of the `recovery-kit` world whose imports this host
    /// satisfies, using the cache when the same bytes were compiled before
    /// by a compatible engine. The bytes judged are the bytes compiled.
    pub fn load_trusted(&self, path: &Path, trust: &KitTrust) -> Result<Kit, LoadError> {
        self.load_reporting(path, trust, &|_| {})
    }

    /// [`KitEngine::load_trusted`], telling `progress` when the kit is not
    /// in the cache and must be compiled (seconds for a large kit), and
    /// when that is done, so a person waiting sees why.
    pub fn load_reporting(
        &self,
        path: &Path,
        trust: &KitTrust,
        progress: &dyn Fn(LoadProgress),
    ) -> Result<Kit, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        let provenance = trust.judge(path, &bytes)?;
        let sha256 = hex(&Sha256::digest(&bytes));
        let component = self.compile_cached(&bytes, &sha256, progress)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let indices =
            RecoveryKitIndices::new(&pre).map_err(|e| LoadError::NotAKit(format!("{e:#}")))?;
        let optional = |interface: &str, function: &str| {
            component
                .get_export_index(None, interface)
                .and_then(|exported| component.get_export_index(Some(&exported), function))
        };
        let (interface, function) = INSPECT;
        let app_settings = optional(interface, function);
        let (interface, [check, recover, env_wanted]) = CALLS;
        let calls = optional(interface, check)
            .zip(optional(interface, recover))
            .zip(optional(interface, env_wanted))
            .map(|((check, recover), env_wanted)| CallsIndices {
                check,
                recover,
                env_wanted,
            });
        Ok(Kit {
            sha256,
            provenance,
            places: self.inner.places.clone(),
            pre,
            indices,
            app_settings,
            calls,
        })
    }

    fn compile_cached(
        &self,
        bytes: &[u8],
        sha256: &str,
        progress: &dyn Fn(LoadProgress),
    ) -> Result<Component, LoadError> {
        let name = self.cache_file_name(sha256);
        let cache = self.trusted_cache_dir();
        if let Some(dir) = &cache {
            let path = dir.path().join(&name);
            match dir.read(&name) {
                Ok(None) => {}
                Ok(Some(artifact)) => match self.deserialize(&artifact) {
                    Ok(component) => return Ok(component),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "precompiled kit unusable; recompiling")
                    }
                },
                Err(why) => tracing::warn!(
                    "ignoring precompiled kit {}: it {why}; recompiling",
                    path.display()
                ),
            }
        }
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadError::NotWasm);
        }
        progress(LoadProgress::Compiling { bytes: bytes.len() });
        let compiling = std::time::Instant::now();
        let component = Component::new(&self.inner.engine, bytes)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        progress(LoadProgress::Compiled {
            took: compiling.elapsed(),
        });
        if let Some(dir) = cache {
            // Replaces an artifact that was refused above: the directory is
            // medic's, so what sits in it is for medic to overwrite.
            let path = dir.path().join(&name);
            let written = component
                .serialize()
                .and_then(|artifact| Ok(crate::fsutil::write_atomic(&path, &artifact)?));
            if let Err(e) = written {
                tracing::warn!(path = %path.display(), error = %e, "cannot cache precompiled kit");
            }
        }
        Ok(component)
    }

    /// Removes every compiled artifact from the cache but those of the kits
    /// whose sha256 is in `kept` for this engine: artifacts of kit files no
    /// app uses any more, and of other wasmtime versions or settings, which
    /// this engine never reads. Returns the names removed; files that are
    /// not artifacts are left alone.
    pub fn remove_cached_except(&self, kept: &[String]) -> Vec<String> {
        let Some(dir) = self.trusted_cache_dir() else {
            return Vec::new();
        };
        let kept: std::collections::HashSet<String> =
            kept.iter().map(|sha| self.cache_file_name(sha)).collect();
        let names = match dir.names() {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!(path = %dir.path().display(), error = %e, "cannot list the kit cache");
                return Vec::new();
            }
        };
        names
            .into_iter()
            .filter(|name| is_artifact_name(name) && !kept.contains(name))
            .filter(|name| match dir.remove(name) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(path = %dir.path().join(name).display(), error = %e, "cannot remove a stale compiled kit");
                    false
                }
            })
            .collect()
    }

    /// The cache directory, opened and checked, when there is one and it is
    /// medic's alone: an artifact in a directory that another user can
    /// write to could be theirs, so such a directory is neither read from
    /// nor written to.
    fn trusted_cache_dir(&self) -> Option<TrustedDir> {
        let path = self.inner.cache_dir.as_deref()?;
        TrustedDir::open(path)
            .inspect_err(|why| {
                tracing::warn!(
                    "not using kit cache directory {}: it {why}; compiling kits without caching them",
                    path.display()
                )
            })
            .ok()
    }

    #[allow(unsafe_code)]
    fn deserialize(&self, artifact: &[u8]) -> wasmtime::Result<Component> {
        // SAFETY: `artifact` was read from one open descriptor of a regular
        // file (opened without following symbolic links, relative to the
        // open descriptor of its directory) that `fstat` showed is owned by
        // medic's effective user and not writable by group or others, in a
        // directory that is the same (`TrustedDir`). Only medic's own user,
        // who can run native code anyway, can have written it; medic writes
        // it only from `Component::serialize` of an engine with the same
        // compatibility hash (part of the file name), never from the files
        // that admins drop into the plugins directory.
        unsafe { Component::deserialize(&self.inner.engine, artifact) }
    }

    /// The artifact's file name in the cache directory: the kit's sha256
    /// and the engine's compatibility hash, so that another wasmtime version
    /// or configuration never reads it.
    fn cache_file_name(&self, sha256: &str) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.inner
            .engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        format!("{sha256}-{:016x}.cwasm", hasher.finish())
    }
}

/// Whether `name` is what [`KitEngine::cache_file_name`] makes, for any
/// engine: 64 hex digits, `-`, 16 hex digits, `.cwasm`.
fn is_artifact_name(name: &str) -> bool {
    let is_hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    name.strip_suffix(".cwasm")
        .and_then(|stem| stem.split_once('-'))
        .is_some_and(|(sha, engine)| is_hex(sha, 64) && is_hex(engine, 16))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
