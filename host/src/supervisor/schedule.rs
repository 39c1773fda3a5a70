//! When an app is checked next.
//!
//! Every app is checked at once when it starts; after that its checks keep
//! a place in its interval fixed by its name, so that apps started together
//! (all of them, when medic starts) do not check in one burst forever
//! after: that would make the last of a thousand wait for the others, and
//! flood the servers they share. The place is kept at a fixed rate (every
//! interval after it), not counted from the end of the last check: a slow
//! check or a busy moment never makes an app drift into its neighbours'
//! places.
//!
//! Places are on a grid of a hundredth of the interval (at most 100 ms),
//! so the few checks due at one point run together, in one wake-up of the
//! runtime, instead of a wake-up each. The grid is kept fine on purpose:
//! with a tenth, a thousand apps at 1 s checked a hundred at a time, and a
//! crashed app's restart waited behind such a burst (p99 55 ms instead of
//! 10, docs/benchmarks.md).

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

/// How many places an interval has at most.
const PLACES: u32 = 100;
/// The coarsest grid.
const GRID_MAX: Duration = Duration::from_millis(100);

/// One app's cadence.
#[derive(Debug)]
pub(super) struct Cadence {
    interval: Duration,
    /// A time the app's regular checks fall on; they come every
    /// `interval` before and after it.
    place: Instant,
}

impl Cadence {
    /// The cadence of `app`, checked every `interval`.
    pub(super) fn new(app: &str, interval: Duration) -> Self {
        // One origin for every app, so that places spread evenly.
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(Instant::now);
        Self {
            interval,
            place: origin + place(app, interval),
        }
    }

    /// When the regular check after one that ended at `now` is due: the
    /// app's first place at least half an interval away.
    pub(super) fn next_after(&mut self, now: Instant) -> Instant {
        let from = now + self.interval / 2;
        let behind = from.saturating_duration_since(self.place).as_nanos();
        let interval = self.interval.as_nanos().max(1);
        let periods = u32::try_from(behind.div_ceil(interval)).unwrap_or(u32::MAX);
        self.place + self.interval.saturating_mul(periods)
    }
}

/// Where `app` sits in its interval: one of its grid points after its
/// start, up to the whole interval, fixed by its name.
fn place(app: &str, interval: Duration) -> Duration {
    // FNV-1a: stable across runs and releases, unlike std's hasher.
    let hash = app.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    let grid = (interval / PLACES).clamp(Duration::from_millis(1), GRID_MAX);
    let points = u32::try_from(interval.as_nanos() / grid.as_nanos()).unwrap_or(PLACES);
    let point = u32::try_from(hash % u64::from(points.max(1))).unwrap_or(0) + 1;
    grid * point
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_started_together_spread_over_their_interval() {
        let interval = Duration::from_secs(1);
        let mut tenths = [0_u32; 10];
        for i in 0..1000 {
            let gap = place(&format!("app{i:04}"), interval);
            assert!(gap > Duration::ZERO && gap <= interval, "{gap:?}");
            let tenth = usize::try_from(gap.as_millis().saturating_sub(1) / 100).unwrap();
            tenths[tenth] += 1;
        }
        // Each tenth of the interval gets its share (100), give or take.
        assert!(
            tenths.iter().all(|&n| (60..=140).contains(&n)),
            "{tenths:?}"
        );
        assert_eq!(place("web", interval), place("web", interval));
    }

    #[test]
    fn an_app_keeps_its_place_whatever_its_checks_take() {
        let interval = Duration::from_millis(100);
        let mut cadence = Cadence::new("web", interval);
        let second = cadence.next_after(Instant::now());
        assert!(second > Instant::now() + interval / 3);
        // Checks that end late keep their place; one that overran its whole
        // interval skips to the next place instead of drifting.
        let mut due = second;
        for took in [0, 3, 40, 10] {
            let next = cadence.next_after(due + Duration::from_millis(took));
            assert_eq!(next - due, interval, "after a check of {took} ms");
            due = next;
        }
        let next = cadence.next_after(due + Duration::from_millis(130));
        assert_eq!(next - due, interval * 2);
    }
}
