//! Replay of failed records: an exponential back-off per record and an optional limit.
//!
//! [`RetrySchedule`] is shared by all partitions of a spout task so that retries are
//! served strictly by due time across partitions. Time is a caller-provided millisecond
//! clock value (`now_ms`); nothing here sleeps or reads a clock.
//!
//! Life of a failed record:
//! 1. the tuple fails: [`RetrySchedule::fail`] counts the failure and answers
//!    [`RetryDecision::RetryAt`] (scheduled) or [`RetryDecision::GiveUp`] (forgotten);
//! 2. once due, [`RetrySchedule::due`] hands the key out (once); the spout seeks back and
//!    re-emits the record; the failure count is kept;
//! 3. the replayed tuple is acked: [`RetrySchedule::acked`] forgets the record, or it fails
//!    again and the cycle repeats with a longer delay.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::io::backoff::{BackoffConfig, BackoffError, BackoffPolicy};
use crate::kafka::TopicPartition;

/// One record: a partition and an offset in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RetryKey {
    /// The record's partition.
    pub tp: TopicPartition,
    /// The record's offset.
    pub offset: i64,
}

impl RetryKey {
    /// The record at `offset` of `tp`.
    pub fn new(tp: TopicPartition, offset: i64) -> Self {
        Self { tp, offset }
    }
}

impl fmt::Display for RetryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.tp, self.offset)
    }
}

/// What to do with a record whose tuple failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Replay it once the clock reaches this value (milliseconds, same clock as `now_ms`).
    RetryAt(u64),
    /// The retry limit is exhausted: treat the record as done (the schedule has forgotten it).
    GiveUp,
}

/// Failure count and, while waiting, the due time of one record.
#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    due_ms: Option<u64>,
}

/// Per-record retry bookkeeping for a spout task: attempt counts and an earliest-due queue.
///
/// Keys stay known from their first failure until [`acked`](Self::acked), a
/// [`GiveUp`](RetryDecision::GiveUp) or [`forget_partition`](Self::forget_partition), so
/// the delay keeps growing across replays of the same record.
#[derive(Debug, Clone)]
pub struct RetrySchedule {
    policy: BackoffPolicy,
    max_retries: Option<u32>,
    entries: BTreeMap<RetryKey, Entry>,
    queue: BTreeSet<(u64, RetryKey)>,
}

impl RetrySchedule {
    /// Validates `backoff` and builds a schedule allowing `max_retries` replays per record
    /// (`None`: retry forever; `Some(0)`: give up on the first failure).
    pub fn new(backoff: &BackoffConfig, max_retries: Option<u32>) -> Result<Self, BackoffError> {
        Ok(Self::with_policy(backoff.to_policy()?, max_retries))
    }

    /// A schedule with an already-built policy (see [`new`](Self::new) for `max_retries`).
    pub fn with_policy(policy: BackoffPolicy, max_retries: Option<u32>) -> Self {
        Self {
            policy,
            max_retries,
            entries: BTreeMap::new(),
            queue: BTreeSet::new(),
        }
    }

    /// Records a failure of `key` at `now_ms` and decides whether to replay it.
    ///
    /// The n-th failure of a record is delayed by the policy's delay for attempt n. Once a
    /// record has failed more than `max_retries` times it is forgotten and the answer is
    /// [`GiveUp`](RetryDecision::GiveUp). Failing a key that is already waiting
    /// reschedules it (and still counts).
    pub fn fail(&mut self, key: RetryKey, now_ms: u64) -> RetryDecision {
        let failures = self
            .unschedule(&key)
            .map_or(1, |e| e.failures.saturating_add(1));
        if self.max_retries.is_some_and(|max| failures > max) {
            self.entries.remove(&key);
            return RetryDecision::GiveUp;
        }
        let due_ms = now_ms.saturating_add(millis(self.policy.delay_for(failures)));
        self.queue.insert((due_ms, key.clone()));
        self.entries.insert(
            key,
            Entry {
                failures,
                due_ms: Some(due_ms),
            },
        );
        RetryDecision::RetryAt(due_ms)
    }

    /// The waiting record with the earliest due time, if that time is `<= now_ms`; it is
    /// handed out once (its failure count is kept until it is acked).
    ///
    /// Pausing is deliberately not consulted: a due retry is always returned, whatever the
    /// state of its partition (the spout must fetch it even from a paused partition, or a
    /// partition paused because of uncommitted offsets could never make progress).
    pub fn due(&mut self, now_ms: u64) -> Option<RetryKey> {
        let (due_ms, _) = self.queue.first()?;
        if *due_ms > now_ms {
            return None;
        }
        let (_, key) = self.queue.pop_first()?;
        if let Some(e) = self.entries.get_mut(&key) {
            e.due_ms = None;
        }
        Some(key)
    }

    /// The earliest due time among waiting records (to know how long the spout may idle).
    pub fn next_due_ms(&self) -> Option<u64> {
        self.queue.first().map(|(due_ms, _)| *due_ms)
    }

    /// Forgets `key` after its tuple was acked; returns whether it was known.
    ///
    /// Cheap for unknown keys, so it may be called for every ack.
    pub fn acked(&mut self, key: &RetryKey) -> bool {
        self.unschedule(key).is_some()
    }

    /// Forgets every record of `tp` (after the partition was revoked); returns how many.
    pub fn forget_partition(&mut self, tp: &TopicPartition) -> usize {
        let lo = RetryKey::new(tp.clone(), i64::MIN);
        let hi = RetryKey::new(tp.clone(), i64::MAX);
        let keys: Vec<RetryKey> = self
            .entries
            .range(lo..=hi)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &keys {
            self.unschedule(key);
        }
        keys.len()
    }

    /// How many times `key` has failed so far (0 if unknown).
    pub fn failures(&self, key: &RetryKey) -> u32 {
        self.entries.get(key).map_or(0, |e| e.failures)
    }

    /// Whether `key` is waiting for its due time (failed, not yet handed out by
    /// [`due`](Self::due)); such a record must not be emitted when fetched.
    pub fn is_waiting(&self, key: &RetryKey) -> bool {
        self.entries.get(key).is_some_and(|e| e.due_ms.is_some())
    }

    /// Number of records known (waiting, or handed out and not yet acked).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no record is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of records waiting for their due time.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Removes `key` from both maps, returning its entry.
    fn unschedule(&mut self, key: &RetryKey) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        if let Some(due_ms) = entry.due_ms {
            self.queue.remove(&(due_ms, key.clone()));
        }
        Some(entry)
    }
}

/// Whole milliseconds of `d`, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn key(p: i32, o: i64) -> RetryKey {
        RetryKey::new(tp(p), o)
    }

    /// 100 ms doubling up to 1 s.
    fn schedule(max_retries: Option<u32>) -> RetrySchedule {
        let cfg = BackoffConfig {
            initial_ms: 100,
            multiplier: 2.0,
            max_ms: 1_000,
        };
        RetrySchedule::new(&cfg, max_retries).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn rejects_an_invalid_backoff() {
        let cfg = BackoffConfig {
            initial_ms: 0,
            ..BackoffConfig::default()
        };
        assert_eq!(
            RetrySchedule::new(&cfg, None).err(),
            Some(BackoffError::ZeroInitial)
        );
    }

    #[test]
    fn delays_grow_per_record_and_cap() {
        let mut s = schedule(None);
        let k = key(0, 7);
        let mut dues = Vec::new();
        let mut now = 1_000;
        for _ in 0..6 {
            match s.fail(k.clone(), now) {
                RetryDecision::RetryAt(at) => dues.push(at - now),
                RetryDecision::GiveUp => panic!("unlimited retries gave up"),
            }
            now += 5_000;
            assert_eq!(s.due(now), Some(k.clone()));
        }
        assert_eq!(dues, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(s.failures(&k), 6);
        assert!(s.acked(&k));
        assert_eq!(s.failures(&k), 0);
        assert!(s.is_empty());
    }

    #[test]
    fn due_only_once_the_time_has_come() {
        let mut s = schedule(None);
        assert_eq!(s.fail(key(0, 1), 50), RetryDecision::RetryAt(150));
        assert_eq!(s.next_due_ms(), Some(150));
        assert!(s.is_waiting(&key(0, 1)));
        assert_eq!(s.due(149), None);
        assert_eq!(s.due(150), Some(key(0, 1)));
        assert_eq!(s.due(10_000), None, "handed out once");
        assert!(!s.is_waiting(&key(0, 1)));
        assert_eq!(s.len(), 1, "still known until acked");
        assert_eq!(s.waiting(), 0);
        assert_eq!(s.next_due_ms(), None);
    }

    #[test]
    fn earliest_due_first_across_partitions() {
        let mut s = schedule(None);
        // Offset 1 of p0 fails twice (due at +200), others once (+100).
        s.fail(key(0, 1), 0);
        assert_eq!(s.due(100), Some(key(0, 1)));
        s.fail(key(0, 1), 100); // due 300
        s.fail(key(1, 5), 150); // due 250
        s.fail(key(2, 9), 120); // due 220
        assert_eq!(s.due(1_000), Some(key(2, 9)));
        assert_eq!(s.due(1_000), Some(key(1, 5)));
        assert_eq!(s.due(1_000), Some(key(0, 1)));
        assert_eq!(s.due(1_000), None);
    }

    #[test]
    fn equal_due_times_are_all_served() {
        let mut s = schedule(None);
        for p in 0..5 {
            s.fail(key(p, 0), 0);
        }
        let mut served: Vec<i32> = std::iter::from_fn(|| s.due(100))
            .map(|k| k.tp.partition)
            .collect();
        served.sort_unstable();
        assert_eq!(served, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn gives_up_after_max_retries() {
        let mut s = schedule(Some(2));
        let k = key(3, 42);
        assert!(matches!(s.fail(k.clone(), 0), RetryDecision::RetryAt(_)));
        assert_eq!(s.due(u64::MAX), Some(k.clone()));
        assert!(matches!(s.fail(k.clone(), 0), RetryDecision::RetryAt(_)));
        assert_eq!(s.due(u64::MAX), Some(k.clone()));
        assert_eq!(s.fail(k.clone(), 0), RetryDecision::GiveUp);
        assert!(s.is_empty(), "given-up records are forgotten");
        assert_eq!(s.due(u64::MAX), None);
        // A later failure of the same offset (e.g. after a rewind) starts afresh.
        assert!(matches!(s.fail(k, 0), RetryDecision::RetryAt(100)));
    }

    #[test]
    fn zero_max_retries_never_retries() {
        let mut s = schedule(Some(0));
        assert_eq!(s.fail(key(0, 0), 0), RetryDecision::GiveUp);
        assert!(s.is_empty());
    }

    #[test]
    fn refailing_a_waiting_key_reschedules_it() {
        let mut s = schedule(None);
        assert_eq!(s.fail(key(0, 0), 0), RetryDecision::RetryAt(100));
        assert_eq!(s.fail(key(0, 0), 0), RetryDecision::RetryAt(200));
        assert_eq!(s.waiting(), 1);
        assert_eq!(s.due(150), None);
        assert_eq!(s.due(200), Some(key(0, 0)));
    }

    #[test]
    fn ack_forgets_waiting_and_handed_out_keys() {
        let mut s = schedule(None);
        s.fail(key(0, 0), 0);
        s.fail(key(0, 1), 0);
        assert_eq!(s.due(100), Some(key(0, 0)));
        assert!(s.acked(&key(0, 0)));
        assert!(s.acked(&key(0, 1)), "acked while waiting (late ack)");
        assert!(!s.acked(&key(0, 1)));
        assert!(!s.acked(&key(9, 9)), "unknown keys are ignored");
        assert!(s.is_empty());
        assert_eq!(s.due(u64::MAX), None);
    }

    #[test]
    fn forget_partition_drops_only_that_partition() {
        let mut s = schedule(None);
        for o in [i64::MIN, 0, 5, i64::MAX] {
            s.fail(key(1, o), 0);
        }
        s.fail(key(0, 3), 0);
        s.fail(key(2, 3), 0);
        s.fail(RetryKey::new(TopicPartition::new("u", 1), 3), 0);
        assert_eq!(s.due(100).map(|k| k.tp), Some(tp(0)));
        assert_eq!(s.forget_partition(&tp(1)), 4);
        assert_eq!(s.forget_partition(&tp(1)), 0);
        assert_eq!(s.len(), 3);
        let rest: Vec<String> = std::iter::from_fn(|| s.due(100))
            .map(|k| k.to_string())
            .collect();
        assert_eq!(rest, ["t/2@3", "u/1@3"]);
        assert_eq!(s.forget_partition(&tp(0)), 1, "handed-out keys too");
    }

    #[test]
    fn clock_overflow_saturates() {
        let mut s = schedule(None);
        assert_eq!(
            s.fail(key(0, 0), u64::MAX - 10),
            RetryDecision::RetryAt(u64::MAX)
        );
        assert_eq!(s.due(u64::MAX), Some(key(0, 0)));
    }

    #[test]
    fn works_with_any_policy() {
        let mut s =
            RetrySchedule::with_policy(BackoffPolicy::Fixed(Duration::from_millis(7)), None);
        assert_eq!(s.fail(key(0, 0), 1), RetryDecision::RetryAt(8));
        assert_eq!(s.fail(key(0, 0), 1), RetryDecision::RetryAt(8));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use std::collections::HashMap;

        #[derive(Debug, Clone)]
        enum Op {
            Fail(i32, i64),
            Ack(i32, i64),
            Due,
            Tick(u64),
            Revoke(i32),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0..3i32, 0..6i64).prop_map(|(p, o)| Op::Fail(p, o)),
                2 => (0..3i32, 0..6i64).prop_map(|(p, o)| Op::Ack(p, o)),
                4 => Just(Op::Due),
                3 => (0..700u64).prop_map(Op::Tick),
                1 => (0..3i32).prop_map(Op::Revoke),
            ]
        }

        proptest! {
            /// Against a naive model: `due` hands out exactly the earliest due record when
            /// one is due, never one that is not yet due, and limits are honoured.
            #[test]
            fn matches_a_naive_model(ops in proptest::collection::vec(op(), 0..200),
                                     max in proptest::option::of(0..4u32)) {
                let mut s = schedule(max);
                // key -> (failures, due)
                let mut model: HashMap<RetryKey, (u32, Option<u64>)> = HashMap::new();
                let mut now = 0u64;
                for op in ops {
                    match op {
                        Op::Fail(p, o) => {
                            let k = key(p, o);
                            let failures = model.get(&k).map_or(0, |e| e.0) + 1;
                            let got = s.fail(k.clone(), now);
                            if max.is_some_and(|m| failures > m) {
                                prop_assert_eq!(got, RetryDecision::GiveUp);
                                model.remove(&k);
                            } else {
                                let RetryDecision::RetryAt(at) = got else {
                                    return Err(TestCaseError::fail("gave up too early"));
                                };
                                prop_assert!(at > now);
                                model.insert(k, (failures, Some(at)));
                            }
                        }
                        Op::Ack(p, o) => {
                            let k = key(p, o);
                            prop_assert_eq!(s.acked(&k), model.remove(&k).is_some());
                        }
                        Op::Due => {
                            let earliest = model.values().filter_map(|e| e.1).min();
                            match s.due(now) {
                                Some(k) => {
                                    let at = model.get(&k).and_then(|e| e.1);
                                    prop_assert!(at.is_some_and(|at| at <= now));
                                    prop_assert_eq!(at, earliest);
                                    if let Some(e) = model.get_mut(&k) {
                                        e.1 = None;
                                    }
                                }
                                None => prop_assert!(earliest.is_none_or(|at| at > now)),
                            }
                        }
                        Op::Tick(ms) => now += ms,
                        Op::Revoke(p) => {
                            let n = s.forget_partition(&tp(p));
                            let before = model.len();
                            model.retain(|k, _| k.tp.partition != p);
                            prop_assert_eq!(n, before - model.len());
                        }
                    }
                    prop_assert_eq!(s.len(), model.len());
                    prop_assert_eq!(s.waiting(), model.values().filter(|e| e.1.is_some()).count());
                    prop_assert_eq!(s.next_due_ms(), model.values().filter_map(|e| e.1).min());
                }
            }
        }
    }
}
