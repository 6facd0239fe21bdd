//! When a Connector's next inventory scan is due: its interval, or longer when scans
//! are slow, so that listing the app never takes most of its time.

use std::time::{Duration, Instant};

/// A scan rests at least this many times its own length: listing takes at most a fifth
/// of the app's time. At 10,000 joiners the SCIM scans' pages took 564 s of the first
/// 19 minutes with a 30 s interval, each page waiting behind the joiners' writes.
pub const REST_FACTOR: u32 = 4;

/// The last scan of one Connector in this process (or its first look, which took none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastScan {
    /// When it ended.
    pub ended: Instant,
    /// How long it took.
    pub took: Duration,
}

impl LastScan {
    /// A first look at `now`: the first scan waits a whole interval.
    pub fn first_look(now: Instant) -> Self {
        Self {
            ended: now,
            took: Duration::ZERO,
        }
    }

    /// The rest after this scan: `poll`, or [`REST_FACTOR`] times the scan's length if
    /// that is longer.
    pub fn rest(&self, poll: Duration) -> Duration {
        poll.max(self.took.saturating_mul(REST_FACTOR))
    }

    /// Whether the next scan is due at `now`.
    pub fn due(&self, poll: Duration, now: Instant) -> bool {
        now.saturating_duration_since(self.ended) >= self.rest(poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_secs(30);

    #[test]
    fn a_quick_scan_rests_the_interval() {
        let t0 = Instant::now();
        let last = LastScan {
            ended: t0,
            took: Duration::from_secs(2),
        };
        assert!(!last.due(POLL, t0 + Duration::from_secs(29)));
        assert!(last.due(POLL, t0 + POLL));
    }

    #[test]
    fn a_slow_scan_rests_four_times_its_length() {
        // A two-minute scan with a 30 s interval would list the app 80 % of the time.
        let t0 = Instant::now();
        let last = LastScan {
            ended: t0,
            took: Duration::from_secs(120),
        };
        assert_eq!(last.rest(POLL), Duration::from_secs(480));
        assert!(!last.due(POLL, t0 + Duration::from_secs(479)));
        assert!(last.due(POLL, t0 + Duration::from_secs(480)));
    }

    #[test]
    fn the_first_look_waits_one_interval() {
        let t0 = Instant::now();
        let first = LastScan::first_look(t0);
        assert!(!first.due(POLL, t0 + Duration::from_secs(29)));
        assert!(first.due(POLL, t0 + POLL));
    }
}
