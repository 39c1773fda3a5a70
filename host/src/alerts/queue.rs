//! One sink's bounded queue, its counters and the task that delivers from it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;

use super::error::DeliveryError;
use super::exec::Exec;
use super::webhook::{self, Webhook};
use super::{Backoff, SinkSettings, SinkStats, SinkTarget};
use crate::journal::Kind;

/// One queued event: its kind for logs, its JSON as the journal writes it.
#[derive(Debug)]
struct Job {
    kind: Kind,
    body: Bytes,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// The offering side of a sink, kept by [`super::Alerts`].
#[derive(Debug)]
pub(crate) struct Sink {
    name: String,
    kinds: Vec<Kind>,
    /// `None` once shut down; the lock is held only for a `try_send`.
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    counters: Arc<Counters>,
    /// Set while the queue overflows, so a dead receiver logs one warning
    /// per overflow rather than one per event.
    overflowing: AtomicBool,
}

/// Creates a sink's queue and spawns its delivery task.
pub(crate) fn start(
    settings: SinkSettings,
    capacity: usize,
    backoff: Backoff,
) -> (Sink, JoinHandle<()>) {
    let (sender, receiver) = mpsc::channel(capacity);
    let counters = Arc::new(Counters::default());
    let sink = Sink {
        name: settings.name.clone(),
        kinds: settings.kinds.clone(),
        sender: Mutex::new(Some(sender)),
        counters: Arc::clone(&counters),
        overflowing: AtomicBool::new(false),
    };
    let worker = Worker {
        target: Target::new(&settings),
        shown: describe(&settings.target),
        name: settings.name,
        retries: settings.retries,
        backoff,
        counters,
    };
    (sink, tokio::spawn(worker.run(receiver)))
}

impl Sink {
    /// Whether events of `kind` go to this sink.
    pub(crate) fn wants(&self, kind: Kind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }

    /// Queues an event without waiting; counts it as dropped when the
    /// queue is full or closed.
    pub(crate) fn offer(&self, kind: Kind, body: Bytes) {
        let sent = match &*self.sender.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(sender) => sender.try_send(Job { kind, body }),
            None => Err(TrySendError::Closed(Job { kind, body })),
        };
        match sent {
            Ok(()) => self.overflowing.store(false, Ordering::Relaxed),
            Err(error) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                let full = matches!(error, TrySendError::Full(_));
                if full && !self.overflowing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(sink = %self.name, %kind, "alert queue full; dropping events until it drains");
                } else {
                    tracing::debug!(sink = %self.name, %kind, full, "alert event dropped");
                }
            }
        }
    }

    /// Stops accepting events; the task delivers what is queued, then ends.
    pub(crate) fn close(&self) {
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> SinkStats {
        SinkStats {
            name: self.name.clone(),
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Where a sink delivers.
#[derive(Debug)]
enum Target {
    Webhook(Webhook),
    Exec(Exec),
}

impl Target {
    fn new(settings: &SinkSettings) -> Self {
        match &settings.target {
            SinkTarget::Webhook { url } => Self::Webhook(Webhook::new(url, settings.timeout)),
            SinkTarget::Exec { argv } => Self::Exec(Exec::new(argv.clone(), settings.timeout)),
        }
    }

    async fn attempt(&self, body: &Bytes) -> Result<(), DeliveryError> {
        match self {
            Self::Webhook(webhook) => webhook.attempt(body).await,
            Self::Exec(exec) => exec.attempt(body).await,
        }
    }
}

/// What a log line may say about a target.
fn describe(target: &SinkTarget) -> String {
    match target {
        SinkTarget::Webhook { url } => webhook::redact(url),
        SinkTarget::Exec { argv } => argv.first().cloned().unwrap_or_default(),
    }
}

/// The delivery side of a sink, owned by its task.
struct Worker {
    name: String,
    target: Target,
    /// The target as logs may show it.
    shown: String,
    retries: u32,
    backoff: Backoff,
    counters: Arc<Counters>,
}

impl Worker {
    async fn run(self, mut receiver: mpsc::Receiver<Job>) {
        while let Some(job) = receiver.recv().await {
            let counter = match self.deliver(&job).await {
                true => &self.counters.delivered,
                false => &self.counters.failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Tries the first attempt and up to `retries` more; true if delivered.
    async fn deliver(&self, job: &Job) -> bool {
        let mut retry = 0u32;
        loop {
            let error = match self.target.attempt(&job.body).await {
                Ok(()) => return true,
                Err(error) => error,
            };
            if !error.retryable() || retry >= self.retries {
                tracing::warn!(
                    sink = %self.name,
                    target = %self.shown,
                    kind = %job.kind,
                    attempts = retry + 1,
                    %error,
                    "alert not delivered"
                );
                return false;
            }
            let pause = self.backoff.delay(retry);
            tracing::warn!(
                sink = %self.name,
                target = %self.shown,
                kind = %job.kind,
                attempt = retry + 1,
                %error,
                retry_in = %humantime::format_duration(pause),
                "alert delivery failed; retrying"
            );
            tokio::time::sleep(pause).await;
            retry += 1;
        }
    }
}
