//! Millisecond clocks: a real monotonic one and a manually driven one for tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A source of monotonic milliseconds since an arbitrary origin.
pub trait Clock: Send + Sync {
    /// Milliseconds elapsed since this clock's origin.
    fn now_ms(&self) -> u64;
}

/// Wall-clock milliseconds since the Unix epoch: window boundaries aligned to it fall at
/// the same instants in every task (and every process).
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// Monotonic wall clock backed by [`Instant`]; its origin is the moment of creation.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// Creates a clock whose `now_ms()` starts at 0.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // Saturate instead of truncating: u64 ms covers ~584 million years anyway.
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// Creates a manual clock reading `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(start_ms)),
        }
    }

    /// Moves the clock forward by `ms` (saturating at `u64::MAX`).
    pub fn advance(&self, ms: u64) {
        // fetch_update with a closure that always returns Some never fails.
        let _ = self
            .now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(ms))
            });
    }

    /// Sets the clock to an absolute value (may move backwards; tests only).
    pub fn set(&self, ms: u64) {
        self.now.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_starts_at_given_time() {
        assert_eq!(ManualClock::new(42).now_ms(), 42);
        assert_eq!(ManualClock::default().now_ms(), 0);
    }

    #[test]
    fn manual_clock_advance_and_set() {
        let c = ManualClock::new(10);
        c.advance(5);
        assert_eq!(c.now_ms(), 15);
        c.set(3);
        assert_eq!(c.now_ms(), 3);
        c.advance(u64::MAX);
        assert_eq!(c.now_ms(), u64::MAX, "advance saturates");
    }

    #[test]
    fn manual_clock_clones_share_time() {
        let a = ManualClock::new(0);
        let b = a.clone();
        a.advance(100);
        assert_eq!(b.now_ms(), 100);
    }

    #[test]
    fn system_clock_is_monotonic_and_starts_near_zero() {
        let c = SystemClock::new();
        let t0 = c.now_ms();
        assert!(t0 < 1_000);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let t1 = c.now_ms();
        assert!(t1 >= t0 + 5, "t0={t0} t1={t1}");
    }

    #[test]
    fn clocks_are_usable_as_trait_objects() {
        let clocks: Vec<Box<dyn Clock>> = vec![
            Box::new(SystemClock::default()),
            Box::new(ManualClock::new(7)),
        ];
        assert_eq!(clocks[1].now_ms(), 7);
        let _ = clocks[0].now_ms();
    }
}
