//! Sliding windows by event time: counts per key in slots of `slide`, a window being the
//! `window / slide` slots before its end. A window fires when the watermark reaches its
//! end; a tuple whose windows have all fired is late, unless a fired window is still
//! within `allowed_lateness` (the watermark has not passed its end + lateness): then
//! that window is updated. Slots are dropped once no window that holds them can fire or
//! be updated any more, so the state stays bounded by the watermark.

use std::collections::BTreeMap;

use crate::data::hash::FastMap as HashMap;
use std::hash::Hash;

/// Invalid window options.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventWindowError {
    #[error("slide must be longer than 0")]
    ZeroSlide,
    #[error("window ({window} ms) must be a positive multiple of slide ({slide} ms)")]
    NotAMultiple { window: i64, slide: i64 },
    #[error("allowed_lateness must not be negative")]
    NegativeLateness,
}

/// Where a tuple went.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Counted in windows that have not fired yet.
    pub counted: bool,
    /// Fired windows (by end) it updated: each is to be emitted again.
    pub updates: Vec<i64>,
}

impl Placement {
    /// Later than every window it belongs to, and than their lateness.
    pub fn is_late(&self) -> bool {
        !self.counted && self.updates.is_empty()
    }
}

/// A window that fired: `[start, end)`, its counts (keys with a count > 0), and until
/// when it may still be updated (`end + allowed_lateness`).
#[derive(Debug, PartialEq, Eq)]
pub struct Fired<K> {
    pub start: i64,
    pub end: i64,
    pub counts: Vec<(K, u64)>,
    pub keep_until: i64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EventWindows<K: Hash + Eq> {
    window: i64,
    slide: i64,
    lateness: i64,
    /// Counts per slot start.
    slots: BTreeMap<i64, HashMap<K, u64>>,
    /// Every window ending at or before this has fired.
    fired_to: Option<i64>,
    /// The first window end to fire (before any has).
    first_end: Option<i64>,
    /// The watermark last seen.
    watermark: i64,
}

impl<K: Hash + Eq + Clone + Ord> EventWindows<K> {
    pub fn new(window_ms: i64, slide_ms: i64, lateness_ms: i64) -> Result<Self, EventWindowError> {
        if slide_ms <= 0 {
            return Err(EventWindowError::ZeroSlide);
        }
        if window_ms <= 0 || window_ms % slide_ms != 0 {
            return Err(EventWindowError::NotAMultiple {
                window: window_ms,
                slide: slide_ms,
            });
        }
        if lateness_ms < 0 {
            return Err(EventWindowError::NegativeLateness);
        }
        Ok(EventWindows {
            window: window_ms,
            slide: slide_ms,
            lateness: lateness_ms,
            slots: BTreeMap::new(),
            fired_to: None,
            first_end: None,
            watermark: i64::MIN,
        })
    }

    fn slot_of(&self, t: i64) -> i64 {
        t.div_euclid(self.slide).saturating_mul(self.slide)
    }

    /// Counts `n` of `key` at event time `t`.
    pub fn add(&mut self, key: K, t: i64, n: u64) -> Placement {
        let slot = self.slot_of(t);
        let first = slot.saturating_add(self.slide);
        let last = slot.saturating_add(self.window);
        let mut p = Placement::default();
        match self.fired_to {
            None => {
                self.first_end = Some(self.first_end.map_or(first, |f| f.min(first)));
                p.counted = true;
            }
            Some(f) => {
                p.counted = last > f;
                let mut e = first;
                while e <= f.min(last) {
                    if self.watermark < e.saturating_add(self.lateness) {
                        p.updates.push(e);
                    }
                    match e.checked_add(self.slide) {
                        Some(next) => e = next,
                        None => break,
                    }
                }
            }
        }
        if !p.is_late() {
            *self.slots.entry(slot).or_default().entry(key).or_insert(0) += n;
        }
        p
    }

    /// The count of `key` in the window ending at `end`.
    pub fn count_in(&self, key: &K, end: i64) -> u64 {
        self.slots
            .range(end.saturating_sub(self.window)..end)
            .filter_map(|(_, c)| c.get(key))
            .sum()
    }

    fn counts(&self, end: i64) -> Vec<(K, u64)> {
        let mut sum: HashMap<&K, u64> = HashMap::default();
        for (_, c) in self.slots.range(end.saturating_sub(self.window)..end) {
            for (k, n) in c {
                *sum.entry(k).or_insert(0) += n;
            }
        }
        let mut out: Vec<(K, u64)> = sum
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.clone(), n))
            .collect();
        out.sort_unstable();
        out
    }

    /// The watermark reached `wm`: the windows that end at or before it fire, in order
    /// (at `i64::MAX`, every window that holds a count). Windows without counts are
    /// passed silently.
    pub fn advance(&mut self, wm: i64) -> Vec<Fired<K>> {
        if wm <= self.watermark {
            return Vec::new();
        }
        self.watermark = wm;
        let mut fired = Vec::new();
        // The last window end that holds a count, and the last end the watermark passed.
        let last_end = self
            .slots
            .keys()
            .next_back()
            .map(|s| s.saturating_add(self.window));
        let passed = if wm == i64::MAX {
            last_end
        } else {
            Some(self.slot_of(wm))
        };
        let mut e = match (self.fired_to, self.first_end) {
            (Some(f), _) => f.saturating_add(self.slide),
            (None, Some(first)) => first,
            (None, None) => passed.unwrap_or(i64::MAX),
        };
        let limit = match (passed, last_end) {
            (Some(p), Some(l)) => p.min(l),
            _ => i64::MIN,
        };
        while e <= limit {
            let start = e.saturating_sub(self.window);
            if self.slots.range(start..e).next().is_some() {
                fired.push(Fired {
                    start,
                    end: e,
                    counts: self.counts(e),
                    keep_until: e.saturating_add(self.lateness),
                });
                match e.checked_add(self.slide) {
                    Some(next) => e = next,
                    None => break,
                }
                continue;
            }
            // Nothing until the next slot: the next window holding it ends after it.
            match self.slots.range(e..).next() {
                Some((&s, _)) => match s.checked_add(self.slide) {
                    Some(next) if next > e => e = next,
                    _ => break,
                },
                None => break,
            }
        }
        if let Some(p) = passed {
            self.fired_to = Some(self.fired_to.map_or(p, |f| f.max(p)));
        }
        self.prune();
        fired
    }

    /// Drops the slots no window can fire with or update any more.
    fn prune(&mut self) {
        let Some(f) = self.fired_to else { return };
        let wm = self.watermark;
        // Slot s is in windows ending up to s + window; those have all fired once
        // s + window <= fired_to, and are beyond update once wm >= s + window + lateness.
        let drop_before = self.slots.keys().copied().find(|&s| {
            let last = s.saturating_add(self.window);
            !(last <= f && wm >= last.saturating_add(self.lateness))
        });
        match drop_before {
            Some(s) => self.slots = self.slots.split_off(&s),
            None => self.slots.clear(),
        }
    }

    /// Slots held (for tests and metrics).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    pub fn watermark(&self) -> i64 {
        self.watermark
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(window: i64, slide: i64, lateness: i64) -> EventWindows<&'static str> {
        EventWindows::new(window, slide, lateness).unwrap()
    }

    #[test]
    fn a_tuple_counts_in_every_window_that_holds_it_and_windows_fire_on_the_watermark() {
        let mut ew = w(30, 10, 0);
        assert!(ew.add("a", 15, 1).counted);
        assert!(ew.add("b", 27, 1).counted);
        assert_eq!(ew.advance(19), vec![]);
        let f = ew.advance(20);
        assert_eq!(
            f,
            vec![Fired {
                start: -10,
                end: 20,
                counts: vec![("a", 1)],
                keep_until: 20
            }]
        );
        let f = ew.advance(40);
        let ends: Vec<(i64, Vec<(&str, u64)>)> = f.into_iter().map(|f| (f.end, f.counts)).collect();
        assert_eq!(
            ends,
            vec![
                (30, vec![("a", 1), ("b", 1)]),
                (40, vec![("a", 1), ("b", 1)])
            ]
        );
        let f = ew.advance(i64::MAX);
        let ends: Vec<i64> = f.iter().map(|f| f.end).collect();
        assert_eq!(ends, vec![50], "the last window holding b");
        assert_eq!(ew.slots(), 0);
    }

    #[test]
    fn late_tuples_update_windows_within_lateness_and_are_late_after() {
        let mut ew = w(10, 10, 5);
        ew.add("a", 3, 1);
        assert_eq!(ew.advance(10).len(), 1);
        let p = ew.add("a", 4, 1);
        assert_eq!(p.updates, vec![10]);
        assert!(!p.counted);
        assert_eq!(ew.count_in(&"a", 10), 2);
        ew.advance(15);
        let p = ew.add("a", 5, 1);
        assert!(p.is_late(), "{p:?}");
        assert_eq!(ew.count_in(&"a", 10), 0, "pruned");
    }

    #[test]
    fn a_tuple_partly_late_counts_in_the_windows_still_open() {
        let mut ew = w(30, 10, 0);
        ew.add("a", 25, 1);
        ew.advance(30);
        let p = ew.add("b", 12, 1);
        assert!(p.counted, "windows ending at 40 still open");
        assert!(p.updates.is_empty());
        let f = ew.advance(40);
        assert_eq!(f[0].counts, vec![("a", 1), ("b", 1)]);
    }

    #[test]
    fn empty_stretches_are_skipped_and_the_state_stays_bounded() {
        let mut ew = w(20, 10, 0);
        for t in 0..1000 {
            ew.add("k", t * 1000, 1);
            ew.advance(t * 1000 - 1);
            assert!(ew.slots() <= 3, "{} slots at {t}", ew.slots());
        }
        let f = ew.advance(i64::MAX);
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut ew = w(30, 10, 5);
        ew.add("a", i64::MIN + 3, 1);
        ew.add("b", i64::MAX - 3, 1);
        ew.advance(0);
        ew.advance(i64::MAX);
        let p = ew.add("c", i64::MIN, 1);
        assert!(p.is_late(), "{p:?}");
        assert_eq!(ew.count_in(&"a", i64::MIN), 0);
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(EventWindows::<u8>::new(30, 0, 0).is_err());
        assert!(EventWindows::<u8>::new(25, 10, 0).is_err());
        assert!(EventWindows::<u8>::new(30, 10, -1).is_err());
    }
}
