//! Sliding-window counts with exact, aligned slide boundaries.
//!
//! The window of `window_ms` is split into `slots = window_ms / slide_ms` slots.
//! Slide boundaries sit at `start_ms + i * slide_ms` for `i >= 1`. Counts added
//! with [`SlidingWindowCounter::incr`] go into the open slot; when
//! [`SlidingWindowCounter::advance`] observes that one or more boundaries were
//! crossed, it emits the window as of the most recent crossed boundary and moves
//! the window forward, so late or repeated ticks never double-count or double-emit.

use crate::data::hash::FastMap as HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;

/// Upper bound on `window_ms / slide_ms`, to keep memory and per-tick work bounded.
pub const MAX_SLOTS: u64 = 1 << 16;

/// Configuration errors for [`SlidingWindowCounter`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// `slide_ms` was zero.
    #[error("slide must be positive")]
    ZeroSlide,
    /// `window_ms` was zero.
    #[error("window must be positive")]
    ZeroWindow,
    /// `window_ms` is not a multiple of `slide_ms`.
    #[error("window ({window_ms} ms) must be a multiple of slide ({slide_ms} ms)")]
    NotMultiple {
        /// Requested window length.
        window_ms: u64,
        /// Requested slide length.
        slide_ms: u64,
    },
    /// `window_ms / slide_ms` exceeds [`MAX_SLOTS`].
    #[error("window/slide gives {slots} slots, more than the maximum {max}")]
    TooManySlots {
        /// Requested number of slots.
        slots: u64,
        /// Maximum allowed.
        max: u64,
    },
    /// A stored counter (restored state) does not hold together.
    #[error("stored window is inconsistent: {0}")]
    Corrupt(String),
}

/// The number of slots of a window, or why there cannot be such a window.
fn slot_count(window_ms: u64, slide_ms: u64) -> Result<usize, WindowError> {
    if slide_ms == 0 {
        return Err(WindowError::ZeroSlide);
    }
    if window_ms == 0 {
        return Err(WindowError::ZeroWindow);
    }
    if !window_ms.is_multiple_of(slide_ms) {
        return Err(WindowError::NotMultiple {
            window_ms,
            slide_ms,
        });
    }
    let slots = window_ms / slide_ms;
    if slots > MAX_SLOTS {
        return Err(WindowError::TooManySlots {
            slots,
            max: MAX_SLOTS,
        });
    }
    // slots <= MAX_SLOTS, which fits in usize on every supported target.
    usize::try_from(slots).map_err(|_| WindowError::TooManySlots {
        slots,
        max: MAX_SLOTS,
    })
}

/// The counts of one complete window, produced when a slide boundary is crossed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emission<K> {
    /// The boundary (exclusive end of the window) these counts belong to.
    pub boundary_ms: u64,
    /// Keys with a nonzero total in `[boundary_ms - window_ms, boundary_ms)`, in
    /// unspecified order.
    pub counts: Vec<(K, u64)>,
}

/// Per-key counts over a sliding window, kept incrementally.
///
/// A stored counter is checked when it is read back (restored state may be cut or
/// edited): its slots must be those of its window and slide, and `head` one of them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(
    bound(
        serialize = "K: serde::Serialize + Eq + Hash",
        deserialize = "K: serde::Deserialize<'de> + Eq + Hash + Clone"
    ),
    try_from = "Stored<K>"
)]
pub struct SlidingWindowCounter<K> {
    window_ms: u64,
    slide_ms: u64,
    /// Ring of per-slot counts; `slots[head]` is the open slot.
    slots: Vec<HashMap<K, u64>>,
    head: usize,
    /// Sum over all slots, only keys with a nonzero total.
    totals: HashMap<K, u64>,
    /// End of the open slot: the next boundary to cross.
    next_boundary_ms: u64,
}

/// A [`SlidingWindowCounter`] as stored, before it is checked.
#[derive(serde::Deserialize)]
#[serde(bound(deserialize = "K: serde::Deserialize<'de> + Eq + Hash"))]
struct Stored<K> {
    window_ms: u64,
    slide_ms: u64,
    slots: Vec<HashMap<K, u64>>,
    head: usize,
    totals: HashMap<K, u64>,
    next_boundary_ms: u64,
}

impl<K: Hash + Eq + Clone> TryFrom<Stored<K>> for SlidingWindowCounter<K> {
    type Error = WindowError;

    fn try_from(s: Stored<K>) -> Result<Self, WindowError> {
        let n = slot_count(s.window_ms, s.slide_ms)?;
        if s.slots.len() != n {
            return Err(WindowError::Corrupt(format!(
                "{} slots, where a {} ms window sliding by {} ms has {n}",
                s.slots.len(),
                s.window_ms,
                s.slide_ms
            )));
        }
        if s.head >= n {
            return Err(WindowError::Corrupt(format!(
                "open slot {} of {n} slots (slots are numbered from 0)",
                s.head
            )));
        }
        Ok(SlidingWindowCounter {
            window_ms: s.window_ms,
            slide_ms: s.slide_ms,
            slots: s.slots,
            head: s.head,
            totals: s.totals,
            next_boundary_ms: s.next_boundary_ms,
        })
    }
}

impl<K: Hash + Eq + Clone> SlidingWindowCounter<K> {
    /// Creates a counter whose first slide ends at `start_ms + slide_ms`.
    pub fn new(window_ms: u64, slide_ms: u64, start_ms: u64) -> Result<Self, WindowError> {
        let n = slot_count(window_ms, slide_ms)?;
        Ok(Self {
            window_ms,
            slide_ms,
            slots: (0..n).map(|_| HashMap::default()).collect(),
            head: 0,
            totals: HashMap::default(),
            next_boundary_ms: start_ms.saturating_add(slide_ms),
        })
    }

    /// Window length in milliseconds.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// Slide length in milliseconds.
    pub fn slide_ms(&self) -> u64 {
        self.slide_ms
    }

    /// Number of slots (`window_ms / slide_ms`).
    pub fn num_slots(&self) -> usize {
        self.slots.len()
    }

    /// The next boundary [`advance`](Self::advance) will react to.
    pub fn next_boundary_ms(&self) -> u64 {
        self.next_boundary_ms
    }

    /// Number of keys with a nonzero total in the current window.
    pub fn len(&self) -> usize {
        self.totals.len()
    }

    /// True when no key has a nonzero total.
    pub fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }

    /// Current total for `key` (including the open slot).
    pub fn get(&self, key: &K) -> u64 {
        self.totals.get(key).copied().unwrap_or(0)
    }

    /// Adds `n` to `key` in the open slot. Adding 0 is a no-op.
    pub fn incr(&mut self, key: K, n: u64) {
        if n == 0 {
            return;
        }
        let slot = &mut self.slots[self.head];
        match slot.get_mut(&key) {
            Some(c) => *c = c.saturating_add(n),
            None => {
                slot.insert(key.clone(), n);
            }
        }
        let t = self.totals.entry(key).or_insert(0);
        *t = t.saturating_add(n);
    }

    /// Reacts to the time `now_ms`. If `k >= 1` boundaries were crossed since the
    /// last emission, moves the window forward by `k` slots and returns the window
    /// as of the most recent crossed boundary; otherwise returns `None`.
    pub fn advance(&mut self, now_ms: u64) -> Option<Emission<K>> {
        if now_ms < self.next_boundary_ms {
            return None;
        }
        let crossed = (now_ms - self.next_boundary_ms) / self.slide_ms + 1;
        let boundary_ms = self
            .next_boundary_ms
            .saturating_add((crossed - 1).saturating_mul(self.slide_ms));
        self.next_boundary_ms = boundary_ms.saturating_add(self.slide_ms);

        // The open slot's counts are attributed to the first crossed boundary; the
        // `crossed - 1` slides after it are empty, so the oldest slots expire first.
        let n = self.slots.len() as u64;
        if crossed > n {
            self.clear();
        } else {
            for _ in 0..crossed - 1 {
                self.step();
            }
        }
        let counts = self.totals.iter().map(|(k, c)| (k.clone(), *c)).collect();
        // The slot opened at `boundary_ms` starts empty (already so if cleared).
        if crossed <= n {
            self.step();
        }
        self.shrink_if_sparse();
        Some(Emission {
            boundary_ms,
            counts,
        })
    }

    /// Current totals including the open slot (for a final flush), unspecified order.
    pub fn snapshot(&self) -> Vec<(K, u64)> {
        self.totals.iter().map(|(k, c)| (k.clone(), *c)).collect()
    }

    /// Drops all counts without moving the boundaries.
    pub fn clear(&mut self) {
        for slot in &mut self.slots {
            slot.clear();
        }
        self.totals.clear();
    }

    /// Moves the open slot forward by one and expires the slot it lands on.
    fn step(&mut self) {
        self.head = (self.head + 1) % self.slots.len();
        let slot = &mut self.slots[self.head];
        for (key, c) in slot.drain() {
            if let Entry::Occupied(mut e) = self.totals.entry(key) {
                let left = e.get().saturating_sub(c);
                if left == 0 {
                    e.remove();
                } else {
                    *e.get_mut() = left;
                }
            }
        }
    }

    /// Releases memory after a burst of keys has left the window.
    fn shrink_if_sparse(&mut self) {
        let len = self.totals.len();
        if self.totals.capacity() > 64 && self.totals.capacity() > len.saturating_mul(4) {
            self.totals.shrink_to(len.saturating_mul(2));
        }
        let slot = &mut self.slots[self.head];
        if slot.capacity() > 64 {
            slot.shrink_to(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wc<K: Hash + Eq + Clone>(window: u64, slide: u64, start: u64) -> SlidingWindowCounter<K> {
        SlidingWindowCounter::new(window, slide, start).unwrap_or_else(|e| panic!("{e}"))
    }

    fn sorted<K: Ord>(mut v: Vec<(K, u64)>) -> Vec<(K, u64)> {
        v.sort();
        v
    }

    fn counts(e: Option<Emission<&'static str>>) -> (u64, Vec<(&'static str, u64)>) {
        match e {
            Some(e) => (e.boundary_ms, sorted(e.counts)),
            None => panic!("expected an emission"),
        }
    }

    #[test]
    fn config_errors() {
        assert_eq!(
            SlidingWindowCounter::<u32>::new(10, 0, 0).err(),
            Some(WindowError::ZeroSlide)
        );
        assert_eq!(
            SlidingWindowCounter::<u32>::new(0, 5, 0).err(),
            Some(WindowError::ZeroWindow)
        );
        assert_eq!(
            SlidingWindowCounter::<u32>::new(10, 3, 0).err(),
            Some(WindowError::NotMultiple {
                window_ms: 10,
                slide_ms: 3
            })
        );
        assert_eq!(
            SlidingWindowCounter::<u32>::new(5, 10, 0).err(),
            Some(WindowError::NotMultiple {
                window_ms: 5,
                slide_ms: 10
            })
        );
        assert!(matches!(
            SlidingWindowCounter::<u32>::new(u64::MAX - 1, 1, 0),
            Err(WindowError::TooManySlots { .. })
        ));
        let w: SlidingWindowCounter<u32> = wc(9_000, 3_000, 100);
        assert_eq!(w.num_slots(), 3);
        assert_eq!(w.window_ms(), 9_000);
        assert_eq!(w.slide_ms(), 3_000);
        assert_eq!(w.next_boundary_ms(), 3_100);
    }

    #[test]
    fn counts_leave_window_exactly_after_window_ms() {
        // window 30, slide 10, start 0: boundaries 10, 20, 30, 40 ...
        let mut w = wc(30, 10, 0);
        w.incr("a", 1); // in slot [0,10)
        assert_eq!(counts(w.advance(10)), (10, vec![("a", 1)]));
        w.incr("b", 2); // in slot [10,20)
        assert_eq!(counts(w.advance(20)), (20, vec![("a", 1), ("b", 2)]));
        assert_eq!(counts(w.advance(30)), (30, vec![("a", 1), ("b", 2)]));
        // At 40 the window is [10,40): "a" (added at [0,10)) is gone.
        assert_eq!(counts(w.advance(40)), (40, vec![("b", 2)]));
        assert_eq!(w.get(&"a"), 0);
        assert_eq!(counts(w.advance(50)), (50, vec![]));
        assert!(w.is_empty());
    }

    #[test]
    fn boundaries_are_exact_and_aligned_to_start() {
        let mut w = wc(20, 10, 5);
        w.incr("a", 1);
        assert!(w.advance(5).is_none());
        assert!(w.advance(14).is_none(), "one ms before the boundary");
        let (b, c) = counts(w.advance(15));
        assert_eq!(b, 15);
        assert_eq!(c, vec![("a", 1)]);
        // Next boundary is 25 regardless of when the tick arrived.
        w.incr("b", 1);
        assert!(w.advance(24).is_none());
        assert_eq!(counts(w.advance(27)), (25, vec![("a", 1), ("b", 1)]));
        assert_eq!(w.next_boundary_ms(), 35);
    }

    #[test]
    fn late_tick_advances_several_slots_and_emits_once() {
        // 4 slots of 10 ms.
        let mut w = wc(40, 10, 0);
        w.incr("old", 1);
        assert!(w.advance(10).is_some()); // "old" in [0,10)
        w.incr("x", 5); // open slot [10,20)
        // Tick 3 slides late: crosses 20, 30, 40; emits once for boundary 40.
        let (b, c) = counts(w.advance(42));
        assert_eq!(b, 40);
        assert_eq!(c, vec![("old", 1), ("x", 5)]);
        assert_eq!(w.next_boundary_ms(), 50);
        // The repeated late tick does nothing.
        assert!(w.advance(42).is_none());
        assert!(w.advance(49).is_none());
        // At 50 the window is [10,50): "old" is gone, "x" stays until 60.
        assert_eq!(counts(w.advance(50)), (50, vec![("x", 5)]));
        assert_eq!(counts(w.advance(60)), (60, vec![]));
    }

    #[test]
    fn very_late_tick_clears_everything() {
        let mut w = wc(30, 10, 0);
        w.incr("a", 1);
        assert!(w.advance(10).is_some());
        w.incr("b", 1); // open slot [10,20)
        // Crossing exactly `slots` boundaries (20,30,40): window [10,40) still has "b".
        assert_eq!(counts(w.advance(40)), (40, vec![("b", 1)]));
        w.incr("c", 1); // open slot [40,50)
        // Crossing 4 > 3 boundaries (50..=80): window [50,80) is empty.
        assert_eq!(counts(w.advance(85)), (80, vec![]));
        assert!(w.is_empty());
        assert!(w.snapshot().is_empty());
        w.incr("d", 1);
        assert_eq!(counts(w.advance(90)), (90, vec![("d", 1)]));
    }

    #[test]
    fn two_ticks_in_same_slide_emit_once() {
        let mut w = wc(20, 10, 0);
        w.incr("a", 3);
        assert!(w.advance(11).is_some());
        w.incr("a", 1);
        assert!(w.advance(12).is_none());
        assert!(w.advance(19).is_none());
        assert_eq!(counts(w.advance(20)), (20, vec![("a", 4)]));
    }

    #[test]
    fn earlier_or_backwards_ticks_are_ignored() {
        let mut w = wc(20, 10, 100);
        assert!(w.advance(0).is_none());
        w.incr("a", 1);
        assert!(w.advance(110).is_some());
        assert!(w.advance(50).is_none());
        assert!(w.advance(110).is_none());
        assert_eq!(w.get(&"a"), 1);
    }

    #[test]
    fn tumbling_window_when_window_equals_slide() {
        let mut w = wc(10, 10, 0);
        assert_eq!(w.num_slots(), 1);
        w.incr("a", 2);
        w.incr("b", 1);
        assert_eq!(counts(w.advance(10)), (10, vec![("a", 2), ("b", 1)]));
        assert!(w.is_empty(), "tumbling window resets after each emission");
        w.incr("a", 7);
        assert_eq!(counts(w.advance(25)), (20, vec![("a", 7)]));
        assert_eq!(counts(w.advance(30)), (30, vec![]));
        w.incr("z", 1);
        // "z" was counted in [30,40); a tick at 100 reports the window [90,100).
        assert_eq!(counts(w.advance(100)), (100, vec![]));
        w.incr("y", 1);
        assert_eq!(counts(w.advance(110)), (110, vec![("y", 1)]));
    }

    #[test]
    fn snapshot_includes_open_slot() {
        let mut w = wc(20, 10, 0);
        w.incr("a", 1);
        assert!(w.advance(10).is_some());
        w.incr("a", 2);
        w.incr("b", 5);
        w.incr("c", 0);
        assert_eq!(sorted(w.snapshot()), vec![("a", 3), ("b", 5)]);
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn totals_match_brute_force_over_many_ticks() {
        // Deterministic pseudo-random workload compared with a direct recount.
        let (window, slide) = (50u64, 10u64);
        let mut w = wc(window, slide, 3);
        let mut events: Vec<(u64, u32, u64)> = Vec::new(); // (slot start, key, n)
        let mut open_start = 3u64;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut now = 3u64;
        for _ in 0..2_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let key = (seed % 13) as u32;
            let n = seed % 4;
            w.incr(key, n);
            if n > 0 {
                events.push((open_start, key, n));
            }
            now += seed % 9;
            if let Some(e) = w.advance(now) {
                let lo = e.boundary_ms.saturating_sub(window);
                let mut expect: HashMap<u32, u64> = HashMap::default();
                for &(t, k, c) in &events {
                    if t >= lo && t < e.boundary_ms {
                        *expect.entry(k).or_insert(0) += c;
                    }
                }
                let mut expect: Vec<_> = expect.into_iter().collect();
                expect.sort();
                assert_eq!(sorted(e.counts), expect, "at boundary {}", e.boundary_ms);
                // Everything added before this tick belongs to the slot that was
                // open at the first crossed boundary; new counts go to the slot
                // opened at the last crossed boundary.
                open_start = e.boundary_ms;
            }
        }
    }

    #[test]
    fn memory_is_released_after_many_keys_leave() {
        let mut w = wc(20, 10, 0);
        for i in 0..10_000u32 {
            w.incr(i, 1);
        }
        assert!(w.advance(10).is_some());
        assert!(w.advance(20).is_some());
        assert!(w.is_empty());
        assert!(w.totals.capacity() <= 64, "{}", w.totals.capacity());
    }

    #[test]
    fn a_stored_counter_round_trips_and_a_corrupt_one_is_an_error_not_a_panic() {
        let mut w = wc::<String>(30, 10, 0);
        w.incr("a".into(), 2);
        assert!(w.advance(10).is_some());
        let json = serde_json::to_value(&w).unwrap_or_else(|e| panic!("{e}"));
        let back: SlidingWindowCounter<String> =
            serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((back.head, back.get(&"a".into())), (1, 2));
        let edited = |key: &str, v: serde_json::Value| {
            let mut j = json.clone();
            j[key] = v;
            serde_json::from_value::<SlidingWindowCounter<String>>(j)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        // Before the check these loaded, then `incr` indexed an empty ring (panic) or
        // `step` took `% 0`.
        let e = edited("slots", serde_json::json!([]));
        assert!(e.contains("0 slots") && e.contains("has 3"), "{e}");
        let e = edited("head", serde_json::json!(3));
        assert!(e.contains("open slot 3 of 3"), "{e}");
        let e = edited("slide_ms", serde_json::json!(0));
        assert!(e.contains("slide must be positive"), "{e}");
    }
}
