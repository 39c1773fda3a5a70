//! Alert sinks: every journal event is offered to the sinks an admin
//! configured (`[[alert]]` tables), each a webhook or a command.
//!
//! Delivery must never delay checks or recovery, so [`Alerts::offer`] only
//! hands a serialized event to a bounded queue per sink and returns; one task
//! per sink delivers from its queue with a timeout and retries. A full queue
//! drops the event and counts it, so a dead sink costs memory for at most
//! `capacity` events and shows up in [`Alerts::stats`].

mod error;
mod exec;
mod queue;
mod webhook;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;

use crate::journal::{Event, Kind};

/// One `[[alert]]` table: where events go and which ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSettings {
    /// Names the sink in logs, metrics and status (the config defaults it
    /// to `alert-N`), since targets may hold secrets that must not be shown.
    pub name: String,
    /// Only events of these kinds go to this sink; empty means all kinds, so
    /// an admin can page on escalations without being paged on every check.
    pub kinds: Vec<Kind>,
    /// Where the events are delivered.
    pub target: SinkTarget,
    /// Limit for one delivery attempt, so a hung receiver frees the sink.
    pub timeout: Duration,
    /// Extra attempts after the first, with a doubling pause between them,
    /// to ride out a receiver's short outage.
    pub retries: u32,
}

/// How a sink delivers an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkTarget {
    /// JSON POST of the event to this http(s) URL (rustls, system roots).
    /// A 2xx answer is delivered; timeouts, connection errors, 408, 429 and
    /// 5xx are retried; other answers are failures without retry.
    Webhook {
        /// The receiver; may carry credentials, which are never logged.
        url: String,
    },
    /// Runs argv (no shell) with the event as one JSON object and a newline
    /// on stdin; exit 0 is delivered, anything else is retried. The command
    /// runs in its own process group, which is killed at the timeout.
    Exec {
        /// Program and arguments.
        argv: Vec<String>,
    },
}

/// Counters of one sink, for metrics and `medic status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkStats {
    /// The sink's configured name.
    pub name: String,
    /// Events the receiver accepted.
    pub delivered: u64,
    /// Events given up after the last attempt failed.
    pub failed: u64,
    /// Events never attempted because the sink's queue was full (or closed).
    pub dropped: u64,
}

/// Pauses between the attempts of one delivery: `first`, doubling each
/// time, at most `max`. Separate from [`SinkSettings`] because it is a
/// daemon policy, not an admin setting; tests shorten it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Pause before the first retry.
    pub first: Duration,
    /// Longest pause.
    pub max: Duration,
}

impl Default for Backoff {
    /// One second doubling up to a minute: short outages are ridden out,
    /// and a dead receiver is not hammered.
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The pause before retry number `retry` (0 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry);
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// The running sinks. Cheap to clone: clones share the queues, counters and
/// delivery tasks.
#[derive(Debug, Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sinks: Vec<queue::Sink>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Alerts {
    /// Starts one delivery task per sink on the current tokio runtime, each
    /// with a bounded queue of `capacity` events (at least 1), retrying with
    /// [`Backoff::default`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn start(sinks: Vec<SinkSettings>, capacity: usize) -> Self {
        Self::start_with_backoff(sinks, capacity, Backoff::default())
    }

    /// Like [`Alerts::start`], with the pauses between retries given.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn start_with_backoff(sinks: Vec<SinkSettings>, capacity: usize, backoff: Backoff) -> Self {
        let mut handles = Vec::with_capacity(sinks.len());
        let mut workers = Vec::with_capacity(sinks.len());
        for settings in sinks {
            let (sink, worker) = queue::start(settings, capacity.max(1), backoff);
            handles.push(sink);
            workers.push(worker);
        }
        Self {
            inner: Arc::new(Inner {
                sinks: handles,
                workers: Mutex::new(workers),
            }),
        }
    }

    /// Offers an event to every sink whose kinds match. Never blocks and
    /// never awaits: a full queue drops the event and counts it, so a slow
    /// receiver cannot hold up a check or a recovery.
    pub fn offer(&self, event: &Event) {
        let mut wanting = self
            .inner
            .sinks
            .iter()
            .filter(|sink| sink.wants(event.kind))
            .peekable();
        if wanting.peek().is_none() {
            return;
        }
        let body = match serde_json::to_vec(event) {
            Ok(body) => Bytes::from(body),
            Err(error) => {
                tracing::warn!(kind = %event.kind, %error, "cannot serialize event for alert sinks");
                return;
            }
        };
        for sink in wanting {
            sink.offer(event.kind, body.clone());
        }
    }

    /// Per sink, in configuration order: what was delivered, failed and
    /// dropped so far.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.inner.sinks.iter().map(queue::Sink::stats).collect()
    }

    /// Stops accepting events (later offers count as dropped) and waits up
    /// to `grace` for the queued deliveries, then abandons what is left so
    /// a dead receiver cannot hold up a shutdown.
    pub async fn shutdown(self, grace: Duration) {
        for sink in &self.inner.sinks {
            sink.close();
        }
        let workers = std::mem::take(
            &mut *self
                .inner
                .workers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let deadline = tokio::time::Instant::now() + grace;
        let mut abandoned = 0usize;
        for mut worker in workers {
            if tokio::time::timeout_at(deadline, &mut worker)
                .await
                .is_err()
            {
                worker.abort();
                abandoned += 1;
            }
        }
        if abandoned > 0 {
            tracing::warn!(
                sinks = abandoned,
                grace = %humantime::format_duration(grace),
                "alert sinks still delivering at shutdown; their queued events are lost"
            );
        }
    }
}
