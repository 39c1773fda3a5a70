//! Talking to systemd when it runs medic as a `Type=notify` service:
//! `READY=1` once every app is watched, `STATUS=` for `systemctl status`,
//! `STOPPING=1` at shutdown, and `WATCHDOG=1` from the runtime that runs the
//! checks, so a wedged medic is restarted. Outside systemd (no
//! `NOTIFY_SOCKET`) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}

/// Startup is done: every app is watched.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// What medic is doing now (after a reload).
pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

/// Shutdown has begun.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Pings systemd's watchdog at half its interval, if it has one, from a
/// task on the runtime that runs the checks: if that runtime stalls, the
/// pings stop and systemd restarts medic.
pub fn spawn_watchdog() {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) {
        return;
    }
    let period = Duration::from_micros(usec / 2).max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            notify(&[NotifyState::Watchdog]);
        }
    });
}
