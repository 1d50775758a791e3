//! How steady the machine is: one thread per core spins for a while, reading the clock;
//! a gap of more than a millisecond between two reads is time the thread was not running
//! (the hypervisor ran another guest's CPU, or the kernel ran something else). On a
//! shared virtual machine these stalls decide the tail latency of any job that keeps the
//! cores busy, so `squall bench` measures them before and after its points and prints
//! them beside the figures.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A gap longer than this between two clock reads counts as a stall.
const STALL: Duration = Duration::from_millis(1);
/// A stall longer than this is counted again as a long one.
const LONG_STALL: Duration = Duration::from_millis(5);

/// What one probe saw, summed over its threads.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq)]
pub struct Stalls {
    /// Spinning threads (one per core).
    pub threads: usize,
    /// How long each thread spun, seconds.
    pub seconds: f64,
    /// Gaps over 1 ms between two clock reads of one thread.
    pub stalls_over_1ms: u64,
    /// Of those, gaps over 5 ms.
    pub stalls_over_5ms: u64,
    /// Time lost in those gaps, milliseconds per second of each thread.
    pub lost_ms_per_s: f64,
    /// The longest gap, milliseconds.
    pub longest_ms: f64,
}

/// One thread's count.
#[derive(Default)]
struct Seen {
    over: u64,
    long: u64,
    lost: Duration,
    longest: Duration,
}

impl Seen {
    fn note(&mut self, gap: Duration) {
        if gap > STALL {
            self.over += 1;
            self.lost += gap;
            if gap > LONG_STALL {
                self.long += 1;
            }
        }
        self.longest = self.longest.max(gap);
    }
}

fn spin(span: Duration) -> (Seen, Duration) {
    let start = Instant::now();
    let mut seen = Seen::default();
    let mut last = start;
    loop {
        let now = Instant::now();
        seen.note(now.saturating_duration_since(last));
        last = now;
        if now.saturating_duration_since(start) >= span {
            return (seen, now.saturating_duration_since(start));
        }
    }
}

/// Spins `threads` threads for `span` and sums what they saw.
pub fn probe(threads: usize, span: Duration) -> Stalls {
    let threads = threads.max(1);
    let seen: Vec<(Seen, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(move || spin(span))).collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let spun: f64 = seen.iter().map(|(_, d)| d.as_secs_f64()).sum();
    let lost: f64 = seen.iter().map(|(s, _)| s.lost.as_secs_f64()).sum();
    Stalls {
        threads: seen.len(),
        seconds: if seen.is_empty() {
            0.0
        } else {
            spun / seen.len() as f64
        },
        stalls_over_1ms: seen.iter().map(|(s, _)| s.over).sum(),
        stalls_over_5ms: seen.iter().map(|(s, _)| s.long).sum(),
        lost_ms_per_s: if spun > 0.0 { lost * 1e3 / spun } else { 0.0 },
        longest_ms: seen
            .iter()
            .map(|(s, _)| s.longest.as_secs_f64() * 1e3)
            .fold(0.0, f64::max),
    }
}

impl Stalls {
    /// `4 stalls over 1 ms (1 over 5 ms), 2.1 ms lost per second, longest 9.4 ms`.
    pub fn summary(&self) -> String {
        format!(
            "{} stalls over 1 ms ({} over 5 ms), {:.1} ms lost per second, longest {:.1} ms",
            self.stalls_over_1ms, self.stalls_over_5ms, self.lost_ms_per_s, self.longest_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_spins_every_thread_for_the_span_and_counts_consistently() {
        let s = probe(2, Duration::from_millis(60));
        assert_eq!(s.threads, 2);
        assert!(s.seconds >= 0.06, "{s:?}");
        assert!(s.stalls_over_5ms <= s.stalls_over_1ms, "{s:?}");
        assert!(s.lost_ms_per_s >= 0.0 && s.lost_ms_per_s <= 1000.0, "{s:?}");
        // The longest gap is at least every counted stall's share.
        if s.stalls_over_1ms > 0 {
            assert!(s.longest_ms > 1.0, "{s:?}");
        }
        assert!(s.summary().contains("ms lost per second"));
    }

    #[test]
    fn gaps_over_a_millisecond_count_as_stalls_and_their_time_as_lost() {
        let mut seen = Seen::default();
        for us in [20, 900, 1_000, 2_000, 7_000] {
            seen.note(Duration::from_micros(us));
        }
        assert_eq!((seen.over, seen.long), (2, 1));
        assert_eq!(seen.lost, Duration::from_millis(9));
        assert_eq!(seen.longest, Duration::from_millis(7));
    }
}
