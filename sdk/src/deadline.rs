//! The call's deadline, and how long a kit's own waits may last within it.
//!
//! medic cuts a call off at its deadline as a kit fault, which never counts
//! as the app being down: a hung server would never be recovered. So the
//! host ends its own waits on the outside world (`exec`, `run`, `http-get`,
//! wasi:http) a margin before the deadline, and the SDK gives a kit's waits
//! the same bound, leaving the kit time to answer `failed`.
//!
//! The arithmetic is in plain functions of the deadline and the time
//! elapsed, so it is tested natively; [`start_call`] and [`elapsed`] tie it
//! to the running call.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The `deadline_ms` of a call whose host did not tell it: a host before
/// 0.1.2 calling `kit.check` or `kit.recover`. The wait helpers then fall
/// back to the kit's own defaults, as kits did before deadlines were told.
pub const DEADLINE_NOT_TOLD: u32 = u32::MAX;

/// The deadline [`Context::with_settings`](crate::Context::with_settings)
/// gives a test context: the host's default app `timeout`, 5 s.
pub const DEFAULT_DEADLINE_MS: u32 = 5_000;

thread_local! {
    /// When the running call started. Every call runs in a fresh instance,
    /// so one cell is the whole bookkeeping.
    static CALL_START: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Records now as the start of the call: called at the entry of every
/// export, so `deadline-ms` is counted from there.
pub(crate) fn start_call() {
    CALL_START.with(|start| start.set(Some(Instant::now())));
}

/// The time since the call started. Outside a call (a kit's unit test) the
/// first question starts the clock, so a test context has its whole
/// deadline ahead of it.
pub(crate) fn elapsed() -> Duration {
    CALL_START.with(|start| match start.get() {
        Some(at) => at.elapsed(),
        None => {
            start.set(Some(Instant::now()));
            Duration::ZERO
        }
    })
}

/// How long before a call's deadline the host ends its waits on the
/// outside world, and the SDK ends the kit's: a tenth of `deadline_ms`, at
/// least 20 ms and at most 500 ms, and never more than half of it. This is
/// the host's own rule (the WIT's `call-context.deadline-ms`); keep it in
/// this one function.
pub fn deadline_margin(deadline_ms: u32) -> Duration {
    let deadline = Duration::from_millis(deadline_ms.into());
    (deadline / 10)
        .clamp(Duration::from_millis(20), Duration::from_millis(500))
        .min(deadline / 2)
}

/// The time left until the deadline after `elapsed`; [`Duration::MAX`] when
/// the deadline was not told.
pub(crate) fn time_left(deadline_ms: u32, elapsed: Duration) -> Duration {
    if deadline_ms == DEADLINE_NOT_TOLD {
        return Duration::MAX;
    }
    Duration::from_millis(deadline_ms.into()).saturating_sub(elapsed)
}

/// How many milliseconds a wait may last after `elapsed`: `wanted`, but
/// never past the deadline less its margin; without `wanted`, all of that
/// time. When the deadline was not told: `wanted`, else `fallback`.
///
/// Never 0, which some waits read as "no limit": a wait whose time is up
/// gets 1 ms and times out at once.
pub(crate) fn wait_ms(
    deadline_ms: u32,
    elapsed: Duration,
    wanted: Option<u32>,
    fallback: u32,
) -> u32 {
    let ms = if deadline_ms == DEADLINE_NOT_TOLD {
        wanted.unwrap_or(fallback)
    } else {
        let budget = time_left(deadline_ms, elapsed).saturating_sub(deadline_margin(deadline_ms));
        let budget = u32::try_from(budget.as_millis()).unwrap_or(u32::MAX);
        wanted.map_or(budget, |wanted| wanted.min(budget))
    };
    ms.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn the_margin_is_a_tenth_within_bounds() {
        assert_eq!(deadline_margin(5_000), MS(500));
        assert_eq!(deadline_margin(2_000), MS(200));
        assert_eq!(deadline_margin(60_000), MS(500));
        assert_eq!(deadline_margin(100), MS(20));
        // Never more than half, for the tiniest deadlines.
        assert_eq!(deadline_margin(30), MS(15));
        assert_eq!(deadline_margin(0), MS(0));
        assert_eq!(deadline_margin(DEADLINE_NOT_TOLD), MS(500));
    }

    #[test]
    fn time_left_saturates() {
        assert_eq!(time_left(5_000, MS(1_200)), MS(3_800));
        assert_eq!(time_left(5_000, MS(9_000)), Duration::ZERO);
        assert_eq!(time_left(DEADLINE_NOT_TOLD, MS(9_000)), Duration::MAX);
    }

    #[test]
    fn a_wait_ends_a_margin_before_the_deadline() {
        // Absent: all of the time left less the margin.
        assert_eq!(wait_ms(5_000, MS(0), None, 2_000), 4_500);
        assert_eq!(wait_ms(5_000, MS(1_000), None, 2_000), 3_500);
        // Asked for: the smaller of the two.
        assert_eq!(wait_ms(5_000, MS(0), Some(2_000), 9), 2_000);
        assert_eq!(wait_ms(5_000, MS(4_000), Some(2_000), 9), 500);
        // Past the margin: 1 ms, never 0.
        assert_eq!(wait_ms(5_000, MS(4_600), Some(2_000), 9), 1);
        assert_eq!(wait_ms(5_000, MS(60_000), None, 9), 1);
    }

    #[test]
    fn an_untold_deadline_leaves_the_kit_its_defaults() {
        assert_eq!(wait_ms(DEADLINE_NOT_TOLD, MS(0), None, 2_000), 2_000);
        assert_eq!(
            wait_ms(DEADLINE_NOT_TOLD, MS(0), Some(30_000), 2_000),
            30_000
        );
        assert_eq!(wait_ms(DEADLINE_NOT_TOLD, MS(0), Some(0), 2_000), 1);
    }

    #[test]
    fn the_clock_starts_at_the_call() {
        assert!(elapsed() < MS(1_000));
        start_call();
        std::thread::sleep(MS(20));
        assert!(elapsed() >= MS(20));
    }
}
