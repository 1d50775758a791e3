//! Paces a source to a target rate by wall clock (open loop: late sends are not skipped).

use std::time::{Duration, Instant};

pub struct Pacer {
    start: Instant,
    interval_ns: f64,
    sent: u64,
}

impl Pacer {
    /// `rate` per second; 0 means unpaced.
    pub fn new(rate: f64) -> Option<Pacer> {
        (rate > 0.0).then(|| Pacer {
            start: Instant::now(),
            interval_ns: 1e9 / rate,
            sent: 0,
        })
    }

    /// How many sends are due now (at most `max`).
    pub fn due(&self, max: u64) -> u64 {
        let elapsed = self.start.elapsed().as_nanos() as f64;
        let target = (elapsed / self.interval_ns) as u64 + 1;
        target.saturating_sub(self.sent).min(max)
    }

    pub fn sent(&mut self, n: u64) {
        self.sent += n;
    }

    /// Sends so far.
    pub fn sent_count(&self) -> u64 {
        self.sent
    }

    /// When the next send is due.
    pub fn next_due(&self) -> Instant {
        self.intended(self.sent)
    }

    /// How many sends fall due in `d` (rounded down).
    pub fn sends_in(&self, d: Duration) -> u64 {
        (d.as_nanos() as f64 / self.interval_ns) as u64
    }

    /// When send number `k` (0-based) was due.
    pub fn intended(&self, k: u64) -> Instant {
        self.start + Duration::from_nanos((k as f64 * self.interval_ns) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_next_due_time() {
        let mut p = Pacer::new(1000.0).unwrap_or_else(|| unreachable!("a positive rate"));
        assert_eq!(p.next_due(), p.intended(0));
        p.sent(5);
        assert_eq!(p.next_due() - p.intended(0), Duration::from_millis(5));
        assert!(Pacer::new(0.0).is_none());
        assert_eq!(p.sends_in(Duration::from_micros(4_500)), 4);
    }
}
