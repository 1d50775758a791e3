//! When each tuple of a micro-batch was due, kept until the batch commits (complete
//! latency is measured from there).
//!
//! Run-length encoded: an unpaced source makes a whole batch at one instant, so a
//! 100 000-tuple batch is one run instead of 1.6 MB of `Instant`s, and its latency is
//! recorded with one histogram call per run instead of one per tuple.

use std::time::Instant;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DueTimes {
    /// (instant, how many consecutive tuples were due then)
    runs: Vec<(Instant, u64)>,
    len: u64,
}

impl DueTimes {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next tuple was due at `at`.
    pub fn push(&mut self, at: Instant) {
        self.push_n(at, 1);
    }

    /// The next `n` tuples were due at `at`.
    pub fn push_n(&mut self, at: Instant, n: u64) {
        if n == 0 {
            return;
        }
        self.len += n;
        match self.runs.last_mut() {
            Some((last, count)) if *last == at => *count += n,
            _ => self.runs.push((at, n)),
        }
    }

    /// How many tuples.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// (instant, count) runs, in order.
    pub fn runs(&self) -> impl Iterator<Item = (Instant, u64)> + '_ {
        self.runs.iter().copied()
    }
}

impl FromIterator<Instant> for DueTimes {
    fn from_iter<I: IntoIterator<Item = Instant>>(iter: I) -> Self {
        let mut d = DueTimes::new();
        for at in iter {
            d.push(at);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn equal_neighbours_share_a_run_and_every_tuple_is_counted() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(1);
        let d: DueTimes = [t0, t0, t0, t1, t1, t0].into_iter().collect();
        assert_eq!(d.len(), 6);
        assert_eq!(d.runs().collect::<Vec<_>>(), [(t0, 3), (t1, 2), (t0, 1)]);
        let mut e = DueTimes::new();
        assert!(e.is_empty());
        e.push_n(t0, 0);
        assert!(e.is_empty() && e.runs().next().is_none());
        e.push_n(t0, 100_000);
        e.push(t0);
        assert_eq!((e.len(), e.runs().count()), (100_001, 1));
    }
}
