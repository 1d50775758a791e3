//! Rate-limited warnings about single inputs: a malformed line, a record that is not a
//! tweet, an input a bolt failed, a message given up. Bad input can come by the million
//! (a file of 1 M malformed lines would otherwise write 1 M log lines), so each kind of
//! warning is logged the first time at once, then at most once every [`REPORT_EVERY`],
//! saying how many occurred since the previous line. Every occurrence is still counted
//! in the component's metrics (`malformed_lines`, `bad_records`, `failed`, ...): the log
//! shows what they look like, the counters how many there are.
//!
//! ```
//! use squall::log_throttle::LogThrottle;
//! let malformed = LogThrottle::default();
//! for line in ["{", "[", "nope"] {
//!     if let Some(n) = malformed.hit() {
//!         // Logged for the first line only (the others within REPORT_EVERY of it).
//!         eprintln!("malformed line skipped: {line}{n}");
//!     }
//! }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The shortest time between two log lines of one kind.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

const NEVER: u64 = u64::MAX;

/// One kind of warning, rate-limited. Shared between threads as is (`&self`).
#[derive(Debug)]
pub struct LogThrottle {
    every_ms: u64,
    /// Occurrences since the last line written (including ones let through).
    unreported: AtomicU64,
    /// When the last line was written (ms since `epoch`), or [`NEVER`].
    last_ms: AtomicU64,
    epoch: Instant,
}

impl Default for LogThrottle {
    fn default() -> Self {
        LogThrottle::new(REPORT_EVERY)
    }
}

/// What [`LogThrottle::hit`] lets through: append it to the message (`{n}`). Empty for
/// the first line of its kind; then ` (N since the last report)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occurrences {
    /// Occurrences since the previous line, this one included.
    pub since_last: u64,
    /// No line of this kind was written before.
    pub first: bool,
}

impl fmt::Display for Occurrences {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first {
            Ok(())
        } else {
            write!(f, " ({} since the last report)", self.since_last)
        }
    }
}

impl LogThrottle {
    /// At most one line every `every`.
    pub fn new(every: Duration) -> Self {
        LogThrottle {
            every_ms: u64::try_from(every.as_millis()).unwrap_or(u64::MAX),
            unreported: AtomicU64::new(0),
            last_ms: AtomicU64::new(NEVER),
            epoch: Instant::now(),
        }
    }

    /// Counts one occurrence; `Some` when it is to be logged now.
    pub fn hit(&self) -> Option<Occurrences> {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NEVER - 1);
        self.hit_at(now)
    }

    fn hit_at(&self, now_ms: u64) -> Option<Occurrences> {
        self.unreported.fetch_add(1, Ordering::AcqRel);
        let last = self.last_ms.load(Ordering::Acquire);
        let first = last == NEVER;
        if !first && now_ms.saturating_sub(last) < self.every_ms {
            return None;
        }
        // One thread wins the report; the others' occurrences go into the next one.
        self.last_ms
            .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        let since_last = self.unreported.swap(0, Ordering::AcqRel).max(1);
        Some(Occurrences { since_last, first })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_logged_then_one_per_interval_with_the_count_since() {
        let t = LogThrottle::new(Duration::from_secs(5));
        let first = t.hit_at(0);
        assert_eq!(
            first,
            Some(Occurrences {
                since_last: 1,
                first: true
            })
        );
        assert_eq!(first.map(|o| o.to_string()), Some(String::new()));
        // A million more within the interval: none logged.
        assert!((0..1_000_000).all(|i| t.hit_at(i % 4_999).is_none()));
        let next = t.hit_at(5_000);
        assert_eq!(
            next,
            Some(Occurrences {
                since_last: 1_000_001,
                first: false
            })
        );
        assert_eq!(
            next.map(|o| o.to_string()),
            Some(" (1000001 since the last report)".into())
        );
        assert_eq!(t.hit_at(9_999), None);
        assert_eq!(
            t.hit_at(10_000).map(|o| o.since_last),
            Some(2),
            "counted from the last report"
        );
    }

    #[test]
    fn threads_share_one_throttle_and_lose_no_count() {
        let t = LogThrottle::new(Duration::from_secs(3600));
        let logged = AtomicU64::new(0);
        let reported = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        if let Some(o) = t.hit_at(0) {
                            logged.fetch_add(1, Ordering::Relaxed);
                            reported.fetch_add(o.since_last, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(
            logged.load(Ordering::Relaxed),
            1,
            "one line in the interval"
        );
        let last = t.hit_at(3_600_000).map_or(0, |o| o.since_last);
        assert_eq!(
            reported.load(Ordering::Relaxed) + last,
            40_001,
            "every hit is in exactly one report"
        );
    }
}
