//! How steady the machine is: one thread per core spins for a while, reading the clock;
//! a gap of more than a millisecond between two reads is time the thread was not running
//! (the hypervisor ran another guest's CPU, or the kernel ran something else). On a
//! shared virtual machine these stalls decide the tail latency of any job that keeps the
//! cores busy, so `squall bench` measures them before and after its points and prints
//! them beside the figures, with the kernel's own count of the time the spinning threads
//! waited while another task ran, and which tasks those were.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::others::{self, OtherTask};

/// A gap longer than this between two clock reads counts as a stall.
const STALL: Duration = Duration::from_millis(1);
/// A stall longer than this is counted again as a long one.
const LONG_STALL: Duration = Duration::from_millis(5);

/// What one probe saw, summed over its threads.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
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
    /// Of the time the threads spun, how long the kernel kept them waiting on a run
    /// queue while it ran another task, milliseconds per second of each thread (`null`
    /// where the kernel does not say). Lost time beyond it went outside the machine (the
    /// hypervisor).
    #[serde(default)]
    pub run_queue_ms_per_s: Option<f64>,
    /// The machine's other tasks that used the most CPU while the threads spun (at most
    /// 5, each over 0.5 ms), most first.
    #[serde(default)]
    pub other_tasks: Vec<OtherTask>,
}

/// One thread's count.
#[derive(Default)]
struct Seen {
    over: u64,
    long: u64,
    lost: Duration,
    longest: Duration,
    /// The kernel's count of this thread's wait on a run queue while it spun.
    run_delay: Option<Duration>,
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
    let delay_before = others::run_delay_ns();
    let start = Instant::now();
    let mut seen = Seen::default();
    let mut last = start;
    loop {
        let now = Instant::now();
        seen.note(now.saturating_duration_since(last));
        last = now;
        if now.saturating_duration_since(start) >= span {
            if let (Some(a), Some(b)) = (delay_before, others::run_delay_ns()) {
                seen.run_delay = Some(Duration::from_nanos(b.saturating_sub(a)));
            }
            return (seen, now.saturating_duration_since(start));
        }
    }
}

/// Spins `threads` threads for `span` and sums what they saw.
pub fn probe(threads: usize, span: Duration) -> Stalls {
    let threads = threads.max(1);
    let tasks_before = others::cpu_times();
    let seen: Vec<(Seen, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(move || spin(span))).collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let other_tasks = others::busiest(&tasks_before, &others::cpu_times(), 5, 0.5);
    let spun: f64 = seen.iter().map(|(_, d)| d.as_secs_f64()).sum();
    let lost: f64 = seen.iter().map(|(s, _)| s.lost.as_secs_f64()).sum();
    let waited: Option<f64> = seen
        .iter()
        .map(|(s, _)| s.run_delay.map(|d| d.as_secs_f64()))
        .sum();
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
        run_queue_ms_per_s: waited.filter(|_| spun > 0.0).map(|w| w * 1e3 / spun),
        other_tasks,
    }
}

impl Stalls {
    /// `4 stalls over 1 ms (1 over 5 ms), 2.1 ms lost per second, longest 9.4 ms; the
    /// kernel ran other tasks 1.6 ms per second (kdamond.0 31.2 ms, kworker/1:1 0.9 ms)`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} stalls over 1 ms ({} over 5 ms), {:.1} ms lost per second, longest {:.1} ms",
            self.stalls_over_1ms, self.stalls_over_5ms, self.lost_ms_per_s, self.longest_ms
        );
        if let Some(w) = self.run_queue_ms_per_s {
            s += &format!("; the kernel ran other tasks {w:.1} ms per second");
            if !self.other_tasks.is_empty() {
                let names: Vec<String> = self
                    .other_tasks
                    .iter()
                    .map(|t| format!("{} {:.1} ms", t.name, t.cpu_ms))
                    .collect();
                s += &format!(" ({})", names.join(", "));
            }
        }
        s
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
        #[cfg(target_os = "linux")]
        {
            let w = s.run_queue_ms_per_s.unwrap_or(-1.0);
            assert!((0.0..=1000.0).contains(&w), "{s:?}");
            assert!(s.summary().contains("the kernel ran other tasks"), "{s:?}");
        }
        assert!(s.other_tasks.len() <= 5, "{s:?}");
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
