//! The watermark of one spout task, from the event times of its source keys.
//!
//! A spout reads from one or more source keys: a Kafka partition, a socket connection, or
//! the whole task (key 0) for a generator. Each key's watermark is the largest event time
//! it has shown minus `lag` (how far out of order its messages may come); the task's is the
//! minimum over its keys, so it says "no message older than this is still to come" for all
//! of them. A key with no message for `idle_timeout` stops holding it back (a quiet
//! partition must not stall every window), and the watermark never goes backwards.
//!
//! No clock is read here: every call takes the time `now_ms` (milliseconds, from any clock
//! that does not go backwards) from the caller, so tests drive it directly.

use std::collections::HashMap;

/// A task's watermark at some moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatermarkStatus {
    /// No event older than this (epoch ms) is expected any more. `i64::MIN`: nothing known
    /// yet; `i64::MAX`: the input ended.
    Active(i64),
    /// Every key has been silent for `idle_timeout` (or there is none): this task holds
    /// nothing back, downstream takes the minimum over its other inputs.
    Idle,
}

/// What is known of one source key.
#[derive(Clone, Copy, Debug)]
struct KeyState {
    /// The largest event time seen, `None` before the first.
    max_event: Option<i64>,
    /// When it was opened or last showed an event (`now_ms`).
    last_seen: u64,
}

/// Per-key watermark bookkeeping for one spout task, with the clock passed in.
#[derive(Clone, Debug)]
pub struct WatermarkTracker {
    lag_ms: i64,
    idle_timeout_ms: u64,
    /// When the tracker was made: with no key at all, it holds the watermark back until
    /// `idle_timeout` after this.
    created: u64,
    keys: HashMap<u64, KeyState>,
    ended: bool,
    /// The last [`WatermarkStatus::Active`] value returned (the floor of the next one).
    last_active: Option<i64>,
}

impl WatermarkTracker {
    /// A tracker whose keys' watermarks are their largest event time minus `lag_ms`, and
    /// whose keys go idle after `idle_timeout_ms` without an event.
    pub fn new(lag_ms: i64, idle_timeout_ms: u64, now_ms: u64) -> Self {
        WatermarkTracker {
            lag_ms: lag_ms.max(0),
            idle_timeout_ms,
            created: now_ms,
            keys: HashMap::new(),
            ended: false,
            last_active: None,
        }
    }

    /// A source key (Kafka partition, socket connection, 0 for a whole task) is open: until
    /// it shows an event or goes idle, it holds the watermark back. Opening a key already
    /// open changes nothing.
    pub fn open(&mut self, key: u64, now_ms: u64) {
        self.keys.entry(key).or_insert(KeyState {
            max_event: None,
            last_seen: now_ms,
        });
    }

    /// An event of `key` at `event_ms` (opens the key if needed).
    pub fn observe(&mut self, key: u64, event_ms: i64, now_ms: u64) {
        let k = self.keys.entry(key).or_insert(KeyState {
            max_event: None,
            last_seen: now_ms,
        });
        k.max_event = Some(k.max_event.map_or(event_ms, |m| m.max(event_ms)));
        k.last_seen = k.last_seen.max(now_ms);
    }

    /// `key` has messages waiting that were not read yet (a backlog): it is not idle,
    /// whatever its last event (opens the key if needed). A partition behind must hold
    /// the watermark back until it is read, not go idle while the reader is busy with
    /// others.
    pub fn busy(&mut self, key: u64, now_ms: u64) {
        let k = self.keys.entry(key).or_insert(KeyState {
            max_event: None,
            last_seen: now_ms,
        });
        k.last_seen = k.last_seen.max(now_ms);
    }

    /// The key is gone (partition revoked, connection closed): it no longer holds
    /// anything back.
    pub fn close(&mut self, key: u64) {
        self.keys.remove(&key);
    }

    /// The whole input ended: the watermark becomes `i64::MAX` for good.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// Whether [`end`](Self::end) was called.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The keys open now.
    pub fn open_keys(&self) -> usize {
        self.keys.len()
    }

    /// The largest event time `key` has shown, `None` if it is not open or has shown none.
    pub fn max_event(&self, key: u64) -> Option<i64> {
        self.keys.get(&key).and_then(|k| k.max_event)
    }

    fn is_idle(&self, last_seen: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(last_seen) >= self.idle_timeout_ms
    }

    /// The watermark now: the minimum over open, non-idle keys of (largest event time seen
    /// − lag); a key idle for `idle_timeout` (no event since) does not hold it back; a key
    /// opened but never observed holds it at `i64::MIN` until it goes idle; a new tracker
    /// with no key holds at `i64::MIN` until `idle_timeout` has passed since [`new`](Self::new),
    /// then is [`Idle`](WatermarkStatus::Idle). All keys idle → `Idle`. After
    /// [`end`](Self::end): `Active(i64::MAX)`.
    ///
    /// Never goes backwards: an `Active` value is never lower than a previously returned
    /// `Active` one (a key that wakes up behind the watermark does not pull it back; its
    /// events behind it are late).
    pub fn current(&mut self, now_ms: u64) -> WatermarkStatus {
        if self.ended {
            self.last_active = Some(i64::MAX);
            return WatermarkStatus::Active(i64::MAX);
        }
        let candidate = if self.keys.is_empty() {
            (!self.is_idle(self.created, now_ms)).then_some(i64::MIN)
        } else {
            self.keys
                .values()
                .filter(|k| !self.is_idle(k.last_seen, now_ms))
                .map(|k| {
                    k.max_event
                        .map_or(i64::MIN, |m| m.saturating_sub(self.lag_ms))
                })
                .min()
        };
        match candidate {
            None => WatermarkStatus::Idle,
            Some(w) => {
                let w = self.last_active.map_or(w, |last| last.max(w));
                self.last_active = Some(w);
                WatermarkStatus::Active(w)
            }
        }
    }

    /// When [`current`](Self::current) may next change with no further call to this
    /// tracker (a key, or the empty tracker, going idle): the earliest such `now_ms` after
    /// `now_ms`, `None` if nothing is pending.
    pub fn next_change(&self, now_ms: u64) -> Option<u64> {
        if self.ended {
            return None;
        }
        let starts: Box<dyn Iterator<Item = u64>> = if self.keys.is_empty() {
            Box::new(std::iter::once(self.created))
        } else {
            Box::new(self.keys.values().map(|k| k.last_seen))
        };
        starts
            .map(|s| s.saturating_add(self.idle_timeout_ms))
            .filter(|&at| at > now_ms)
            .min()
    }
}

/// How far `watermark` is behind the wall clock, in ms (0 for none: `i64::MIN`, or for
/// the end of time, `i64::MAX`).
pub fn lag_behind_now(watermark: Option<i64>) -> u64 {
    use crate::io::clock::{Clock, WallClock};
    match watermark {
        Some(w) if w != i64::MAX && w != i64::MIN => {
            let now = i64::try_from(WallClock.now_ms()).unwrap_or(i64::MAX);
            u64::try_from(now.saturating_sub(w)).unwrap_or(0)
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_busy_key_with_a_backlog_does_not_go_idle() {
        let mut w = WatermarkTracker::new(0, 1_000, 0);
        w.open(1, 0);
        w.open(2, 0);
        w.observe(1, 50_000, 0);
        // Key 2 has shown nothing for longer than the idle timeout, but has messages
        // waiting: it still holds the watermark back.
        w.observe(1, 60_000, 5_000);
        w.busy(2, 5_000);
        assert_eq!(w.current(5_000), WatermarkStatus::Active(i64::MIN));
        // Without the backlog it goes idle.
        w.observe(1, 60_000, 6_500);
        assert_eq!(w.current(6_500), WatermarkStatus::Active(60_000));
    }
    use proptest::prelude::*;

    use super::WatermarkStatus::{Active, Idle};
    use super::*;

    #[test]
    fn a_new_tracker_holds_back_until_idle_timeout() {
        let mut w = WatermarkTracker::new(0, 1_000, 5_000);
        assert_eq!(w.current(5_000), Active(i64::MIN));
        assert_eq!(w.current(5_999), Active(i64::MIN));
        assert_eq!(w.next_change(5_999), Some(6_000));
        assert_eq!(w.current(6_000), Idle);
        assert_eq!(w.next_change(6_000), None);
    }

    #[test]
    fn one_key_is_its_max_minus_lag() {
        let mut w = WatermarkTracker::new(50, 1_000, 0);
        w.observe(0, 1_000, 10);
        assert_eq!(w.current(10), Active(950));
        w.observe(0, 900, 20); // out of order: the max stays
        assert_eq!(w.current(20), Active(950));
        w.observe(0, 2_000, 30);
        assert_eq!(w.current(30), Active(1_950));
        assert_eq!(w.max_event(0), Some(2_000));
    }

    #[test]
    fn the_minimum_over_keys_and_an_unobserved_key_holds_at_min() {
        let mut w = WatermarkTracker::new(0, 1_000, 0);
        w.open(1, 0);
        w.open(2, 0);
        w.observe(1, 5_000, 100);
        assert_eq!(w.current(100), Active(i64::MIN), "key 2 has shown nothing");
        w.observe(2, 3_000, 200);
        assert_eq!(w.current(200), Active(3_000));
        w.observe(2, 9_000, 300);
        assert_eq!(w.current(300), Active(5_000));
        assert_eq!(w.open_keys(), 2);
    }

    #[test]
    fn an_idle_key_stops_holding_back_and_all_idle_is_idle() {
        let mut w = WatermarkTracker::new(0, 1_000, 0);
        w.open(1, 0);
        w.observe(2, 7_000, 0);
        // Key 1 never shows anything: at 1 000 it is idle.
        assert_eq!(w.current(999), Active(i64::MIN));
        w.observe(2, 7_500, 900);
        assert_eq!(w.next_change(900), Some(1_000));
        assert_eq!(w.current(1_000), Active(7_500));
        // Key 2 is silent from 900: idle at 1 900, and then every key is.
        assert_eq!(w.current(1_899), Active(7_500));
        assert_eq!(w.current(1_900), Idle);
        // A key that wakes up behind the watermark does not pull it back.
        w.observe(1, 100, 2_000);
        assert_eq!(w.current(2_000), Active(7_500));
        w.observe(1, 8_000, 2_100);
        assert_eq!(w.current(2_100), Active(8_000));
    }

    #[test]
    fn closing_a_key_releases_it() {
        let mut w = WatermarkTracker::new(10, 1_000, 0);
        w.open(1, 0);
        w.observe(2, 500, 0);
        assert_eq!(w.current(1), Active(i64::MIN));
        w.close(1);
        assert_eq!(w.current(2), Active(490));
        w.close(2);
        assert_eq!(w.max_event(2), None);
        // No key left, and created long enough ago: idle.
        assert_eq!(w.current(1_000), Idle);
        // Reopened: the value never goes back below what was returned.
        w.observe(3, 0, 1_001);
        assert_eq!(w.current(1_001), Active(490));
    }

    #[test]
    fn end_is_max_for_good() {
        let mut w = WatermarkTracker::new(0, 1_000, 0);
        w.open(1, 0);
        w.end();
        assert!(w.is_ended());
        assert_eq!(w.current(0), Active(i64::MAX));
        w.observe(1, 5, 10);
        assert_eq!(w.current(5_000), Active(i64::MAX));
        assert_eq!(w.next_change(5_000), None);
    }

    #[test]
    fn extreme_values_saturate() {
        let mut w = WatermarkTracker::new(i64::MAX, u64::MAX, 0);
        w.observe(0, i64::MIN + 1, 0);
        assert_eq!(w.current(u64::MAX - 1), Active(i64::MIN));
        assert_eq!(w.next_change(0), Some(u64::MAX));
        let mut w = WatermarkTracker::new(-5, 0, 0);
        w.observe(0, 100, 0);
        // A negative lag counts as 0; an idle timeout of 0 makes every key idle at once.
        assert_eq!(w.current(0), Idle);
    }

    /// What a test does to a tracker.
    #[derive(Clone, Debug)]
    enum Op {
        Open(u64),
        Observe(u64, i64),
        Close(u64),
        Advance(u64),
        End,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => (0u64..4).prop_map(Op::Open),
            8 => ((0u64..4), -1_000i64..10_000).prop_map(|(k, t)| Op::Observe(k, t)),
            1 => (0u64..4).prop_map(Op::Close),
            4 => (0u64..400).prop_map(Op::Advance),
            1 => Just(Op::End),
        ]
    }

    proptest! {
        #[test]
        fn invariants_hold(lag in 0i64..500, idle in 1u64..1_000, ops in prop::collection::vec(op(), 0..80)) {
            let mut now = 0u64;
            let mut w = WatermarkTracker::new(lag, idle, now);
            // The model: per open key, its max event (if any) and when it was last seen.
            let mut model: HashMap<u64, (Option<i64>, u64)> = HashMap::new();
            let mut ended = false;
            let mut last: Option<i64> = None;
            for op in ops {
                match op {
                    Op::Open(k) => {
                        w.open(k, now);
                        model.entry(k).or_insert((None, now));
                    }
                    Op::Observe(k, t) => {
                        w.observe(k, t, now);
                        let e = model.entry(k).or_insert((None, now));
                        e.0 = Some(e.0.map_or(t, |m| m.max(t)));
                        e.1 = now;
                    }
                    Op::Close(k) => {
                        w.close(k);
                        model.remove(&k);
                    }
                    Op::Advance(d) => now += d,
                    Op::End => {
                        w.end();
                        ended = true;
                    }
                }
                let got = w.current(now);
                if ended {
                    prop_assert_eq!(got, Active(i64::MAX));
                    continue;
                }
                let active: Vec<i64> = model
                    .values()
                    .filter(|(_, seen)| now - seen < idle)
                    .map(|(m, _)| m.map_or(i64::MIN, |m| m - lag))
                    .collect();
                match got {
                    Active(v) => {
                        // Monotone.
                        if let Some(l) = last {
                            prop_assert!(v >= l, "went back from {} to {}", l, v);
                        }
                        // Never above the minimum over active keys of max − lag, unless
                        // held at an earlier value (monotone).
                        if let Some(&bound) = active.iter().min() {
                            prop_assert!(v <= bound.max(last.unwrap_or(i64::MIN)), "{} above {}", v, bound);
                            prop_assert_eq!(v, bound.max(last.unwrap_or(i64::MIN)));
                        } else {
                            // No active key: only a fresh tracker with no key is Active.
                            prop_assert!(model.is_empty() && now < idle, "active with no active key");
                        }
                        last = Some(v);
                    }
                    Idle => {
                        prop_assert!(active.is_empty(), "idle with active keys {:?}", active);
                        prop_assert!(!model.is_empty() || now >= idle);
                    }
                }
            }
        }
    }
}
