//! At-least-once bookkeeping of one partition: which offsets are in flight, which may be
//! committed, when to stop fetching.
//!
//! # The commit rule
//!
//! Kafka commit semantics: committing `N` means "the next record to read is `N`", so `N`
//! may only be committed once every record before it is done (acked, given up, or
//! skipped). Offsets are *not* dense (compacted topics, transaction markers), so the
//! tracker never reasons about `offset + 1`; it keeps the ordered set of offsets emitted
//! since the last commit, and
//!
//! > the commit point is the smallest emitted offset not yet done; if none is outstanding,
//! > one past the highest offset done (acked or skipped); never below the last commit.
//!
//! This is correct because a partition is fetched in offset order: any offset below an
//! emitted one that was never emitted nor skipped does not exist. Hence first-time
//! emissions of a partition must be reported in increasing offset order (as fetched), and
//! records that are fetched but deliberately not emitted must be reported with
//! [`PartitionOffsets::skipped`] so that the commit point can move past them.

use std::collections::{BTreeMap, BTreeSet};

use crate::kafka::spout::retry::RetryDecision;

/// Where an emitted offset stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetState {
    /// Emitted; its tuple tree is neither acked nor failed yet.
    InFlight,
    /// Done: acked, or failed and given up on.
    Acked,
    /// Failed; waiting for its retry to become due.
    WaitingRetry,
    /// Failed and due for replay: emit it when fetched again.
    RetryDue,
}

/// What to do with a record that a fetch returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchAction {
    /// Emit it (new record, or a due retry), then call [`PartitionOffsets::emitted`].
    Emit,
    /// Drop it: committed, in flight, acked, or its retry is not due yet.
    Skip,
    /// Too many uncommitted offsets: drop this record *and every later record of the batch
    /// for this partition*, seek back to this offset and pause the partition.
    Defer,
}

/// At-least-once offset tracker of one partition (see the [module docs](self) for the
/// commit rule). All operations are O(log n) in the number of tracked offsets.
#[derive(Debug, Clone)]
pub struct PartitionOffsets {
    /// Last committed offset: the next one to read after a restart.
    committed: i64,
    /// Offsets emitted since the last commit, whatever their state.
    states: BTreeMap<i64, OffsetState>,
    /// The subset of `states` not acked yet (in flight or failed).
    pending: BTreeSet<i64>,
    /// One past the highest offset acked or skipped (at least `committed`).
    done_end: i64,
}

impl PartitionOffsets {
    /// A tracker whose next offset to commit (and to consume) is `committed`.
    pub fn new(committed: i64) -> Self {
        Self {
            committed,
            states: BTreeMap::new(),
            pending: BTreeSet::new(),
            done_end: committed,
        }
    }

    /// Marks `offset` as in flight (first emission, or replay of a due retry).
    ///
    /// First emissions must come in increasing offset order. Returns `false` (and ignores
    /// the call) for offsets below the last commit.
    pub fn emitted(&mut self, offset: i64) -> bool {
        if offset < self.committed {
            return false;
        }
        self.states.insert(offset, OffsetState::InFlight);
        self.pending.insert(offset);
        true
    }

    /// Marks `offset` as done after its tuple tree was acked.
    ///
    /// Returns `false` for offsets not tracked (never emitted, already acked, or dropped
    /// by a commit), which are ignored.
    pub fn acked(&mut self, offset: i64) -> bool {
        match self.states.get_mut(&offset) {
            Some(state) if *state != OffsetState::Acked => {
                *state = OffsetState::Acked;
                self.pending.remove(&offset);
                self.done_end = self.done_end.max(offset.saturating_add(1));
                true
            }
            _ => false,
        }
    }

    /// Records a failure of `offset` and the retry schedule's `decision` about it: on
    /// [`GiveUp`](RetryDecision::GiveUp) the offset counts as done (it may be committed
    /// past), otherwise it waits for its retry and holds the commit point back.
    ///
    /// Returns `false` (and ignores the call) unless the offset is in flight or due.
    pub fn failed(&mut self, offset: i64, decision: RetryDecision) -> bool {
        match self.states.get(&offset) {
            Some(OffsetState::InFlight | OffsetState::RetryDue) => {}
            _ => return false,
        }
        match decision {
            RetryDecision::GiveUp => self.acked(offset),
            RetryDecision::RetryAt(_) => {
                self.states.insert(offset, OffsetState::WaitingRetry);
                true
            }
        }
    }

    /// Marks a failed `offset` as due for replay (the retry schedule handed it out), so
    /// that [`on_fetched`](Self::on_fetched) emits it again. Returns whether it was
    /// waiting.
    pub fn retry_due(&mut self, offset: i64) -> bool {
        match self.states.get_mut(&offset) {
            Some(state) if *state == OffsetState::WaitingRetry => {
                *state = OffsetState::RetryDue;
                true
            }
            _ => false,
        }
    }

    /// Records that the fetched record at `offset` is deliberately not emitted (filtered
    /// out, e.g. older than a start timestamp): it counts as done, without being tracked
    /// or counted in [`uncommitted`](Self::uncommitted). Ignored for tracked offsets and
    /// offsets below the last commit; returns whether it was taken into account.
    pub fn skipped(&mut self, offset: i64) -> bool {
        if offset < self.committed || self.states.contains_key(&offset) {
            return false;
        }
        self.done_end = self.done_end.max(offset.saturating_add(1));
        true
    }

    /// The offset that may be committed now, if it is beyond the last commit: the
    /// smallest emitted offset not done, or else one past the highest one done.
    pub fn commit_point(&self) -> Option<i64> {
        let point = self.pending.first().copied().unwrap_or(self.done_end);
        (point > self.committed).then_some(point)
    }

    /// Records that `n` was committed: offsets below `n` are forgotten (including any not
    /// done, so commit only what [`commit_point`](Self::commit_point) allows). A commit
    /// not beyond the last one (a stale confirmation) is ignored; returns whether it
    /// advanced.
    pub fn committed(&mut self, n: i64) -> bool {
        if n <= self.committed {
            return false;
        }
        self.committed = n;
        self.states = self.states.split_off(&n);
        self.pending = self.pending.split_off(&n);
        self.done_end = self.done_end.max(n);
        true
    }

    /// The last committed offset (initially the one given to [`new`](Self::new)).
    pub fn last_committed(&self) -> i64 {
        self.committed
    }

    /// Number of offsets emitted since the last commit, acked or not (skipped ones are not
    /// counted). The spout pauses the partition when this reaches its cap.
    pub fn uncommitted(&self) -> usize {
        self.states.len()
    }

    /// Whether [`uncommitted`](Self::uncommitted) has reached `max_uncommitted`: new
    /// records must wait (the partition should be paused) until a commit.
    pub fn at_capacity(&self, max_uncommitted: usize) -> bool {
        self.uncommitted() >= max_uncommitted
    }

    /// Number of emitted offsets not done yet (in flight or waiting for a retry).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether `offset` is emitted and its tuple tree not finished: a re-fetched record in
    /// flight (after a seek) must not be emitted twice.
    pub fn is_in_flight(&self, offset: i64) -> bool {
        self.state(offset) == Some(OffsetState::InFlight)
    }

    /// The state of `offset`, if it is tracked (emitted since the last commit).
    pub fn state(&self, offset: i64) -> Option<OffsetState> {
        self.states.get(&offset).copied()
    }

    /// The highest offset emitted since the last commit.
    pub fn highest_emitted(&self) -> Option<i64> {
        self.states.last_key_value().map(|(o, _)| *o)
    }

    /// What to do with the record at `offset` that a fetch returned, given the spout's cap
    /// of uncommitted offsets: due retries are always emitted (they are already counted),
    /// new records only below the cap.
    pub fn on_fetched(&self, offset: i64, max_uncommitted: usize) -> FetchAction {
        if offset < self.committed {
            return FetchAction::Skip;
        }
        match self.state(offset) {
            Some(OffsetState::RetryDue) => FetchAction::Emit,
            Some(_) => FetchAction::Skip,
            None if self.at_capacity(max_uncommitted) => FetchAction::Defer,
            None => FetchAction::Emit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: RetryDecision = RetryDecision::RetryAt(0);

    fn emit_all(po: &mut PartitionOffsets, offsets: impl IntoIterator<Item = i64>) {
        for o in offsets {
            assert!(po.emitted(o), "emit {o}");
        }
    }

    #[test]
    fn nothing_to_commit_initially() {
        let po = PartitionOffsets::new(42);
        assert_eq!(po.commit_point(), None);
        assert_eq!(po.last_committed(), 42);
        assert_eq!(po.uncommitted(), 0);
        assert_eq!(po.highest_emitted(), None);
    }

    #[test]
    fn in_flight_offsets_hold_the_commit_point() {
        let mut po = PartitionOffsets::new(0);
        emit_all(&mut po, 0..5);
        assert_eq!(po.commit_point(), None);
        assert!(po.acked(1));
        assert!(po.acked(2));
        assert_eq!(po.commit_point(), None, "0 is still in flight");
        assert!(po.acked(0));
        assert_eq!(po.commit_point(), Some(3));
        assert!(po.acked(4));
        assert_eq!(po.commit_point(), Some(3));
        assert!(po.acked(3));
        assert_eq!(po.commit_point(), Some(5));
    }

    #[test]
    fn gaps_in_offsets_do_not_block_commits() {
        // A compacted topic: offsets 0, 3, 4, 9 exist.
        let mut po = PartitionOffsets::new(0);
        emit_all(&mut po, [0, 3, 4, 9]);
        po.acked(0);
        assert_eq!(
            po.commit_point(),
            Some(3),
            "commit up to the first outstanding"
        );
        po.acked(3);
        po.acked(4);
        assert_eq!(po.commit_point(), Some(9));
        po.acked(9);
        assert_eq!(po.commit_point(), Some(10));
    }

    #[test]
    fn first_record_after_the_committed_offset() {
        // Retention deleted 0..100; the committed offset 0 is stale.
        let mut po = PartitionOffsets::new(0);
        po.emitted(100);
        assert_eq!(po.commit_point(), Some(100), "nothing before 100 exists");
        po.acked(100);
        assert_eq!(po.commit_point(), Some(101));
    }

    #[test]
    fn commit_forgets_below_and_never_goes_back() {
        let mut po = PartitionOffsets::new(10);
        emit_all(&mut po, 10..20);
        for o in 10..15 {
            po.acked(o);
        }
        assert_eq!(po.uncommitted(), 10);
        assert_eq!(po.commit_point(), Some(15));
        assert!(po.committed(15));
        assert_eq!(po.last_committed(), 15);
        assert_eq!(po.uncommitted(), 5);
        assert_eq!(po.commit_point(), None);
        assert_eq!(po.state(12), None);
        assert!(!po.acked(12), "acks below the commit are ignored");
        assert!(!po.committed(15), "same commit twice");
        assert!(!po.committed(11), "stale commit confirmation");
        assert_eq!(po.last_committed(), 15);
        for o in 15..20 {
            po.acked(o);
        }
        assert_eq!(po.commit_point(), Some(20));
        assert!(po.committed(20));
        assert_eq!(po.uncommitted(), 0);
        assert_eq!(po.commit_point(), None);
    }

    #[test]
    fn emissions_below_the_commit_are_ignored() {
        let mut po = PartitionOffsets::new(5);
        assert!(!po.emitted(4));
        assert_eq!(po.uncommitted(), 0);
        assert_eq!(po.on_fetched(4, 100), FetchAction::Skip);
    }

    #[test]
    fn failure_with_retry_holds_the_commit_point() {
        let mut po = PartitionOffsets::new(0);
        emit_all(&mut po, 0..3);
        po.acked(0);
        assert!(po.failed(1, RETRY));
        po.acked(2);
        assert_eq!(po.state(1), Some(OffsetState::WaitingRetry));
        assert!(!po.is_in_flight(1));
        assert_eq!(po.pending(), 1);
        assert_eq!(po.commit_point(), Some(1));
        // Replay: due, fetched again, emitted, acked.
        assert_eq!(po.on_fetched(1, 100), FetchAction::Skip, "not due yet");
        assert!(po.retry_due(1));
        assert!(!po.retry_due(1));
        assert_eq!(po.on_fetched(1, 100), FetchAction::Emit);
        assert_eq!(po.on_fetched(2, 100), FetchAction::Skip, "already acked");
        assert!(po.emitted(1));
        assert!(po.is_in_flight(1));
        assert!(po.acked(1));
        assert_eq!(po.commit_point(), Some(3));
    }

    #[test]
    fn replayed_offset_may_fail_again() {
        let mut po = PartitionOffsets::new(0);
        po.emitted(0);
        assert!(po.failed(0, RETRY));
        assert!(!po.failed(0, RETRY), "already failed");
        po.retry_due(0);
        assert!(
            po.failed(0, RETRY),
            "due but not yet re-emitted: e.g. revoked"
        );
        po.retry_due(0);
        po.emitted(0);
        assert!(po.failed(0, RETRY));
        assert_eq!(po.commit_point(), None);
    }

    #[test]
    fn giving_up_counts_as_done() {
        let mut po = PartitionOffsets::new(0);
        emit_all(&mut po, 0..2);
        assert!(po.failed(0, RetryDecision::GiveUp));
        assert_eq!(po.state(0), Some(OffsetState::Acked));
        assert_eq!(po.commit_point(), Some(1));
        assert!(!po.failed(0, RetryDecision::GiveUp), "already done");
        assert!(!po.failed(7, RETRY), "never emitted");
    }

    #[test]
    fn late_ack_of_a_failed_offset_completes_it() {
        let mut po = PartitionOffsets::new(0);
        po.emitted(0);
        po.failed(0, RETRY);
        assert!(po.acked(0));
        assert!(!po.acked(0));
        assert!(!po.retry_due(0));
        assert_eq!(po.commit_point(), Some(1));
    }

    #[test]
    fn skipped_records_advance_the_commit_point() {
        let mut po = PartitionOffsets::new(0);
        for o in 0..1000 {
            assert!(po.skipped(o));
        }
        assert_eq!(po.uncommitted(), 0, "skips are not tracked");
        assert_eq!(po.commit_point(), Some(1000));
        po.emitted(1000);
        assert!(po.skipped(1001));
        assert_eq!(po.commit_point(), Some(1000));
        assert!(!po.skipped(1000), "tracked offsets cannot be skipped");
        po.acked(1000);
        assert_eq!(po.commit_point(), Some(1002));
        po.committed(1002);
        assert!(!po.skipped(5), "below the commit");
    }

    #[test]
    fn uncommitted_counts_emitted_since_last_commit() {
        let mut po = PartitionOffsets::new(0);
        emit_all(&mut po, 0..4);
        po.acked(0);
        po.acked(1);
        assert_eq!(po.uncommitted(), 4, "acked offsets count until committed");
        assert!(po.at_capacity(4));
        assert!(!po.at_capacity(5));
        assert_eq!(po.on_fetched(4, 4), FetchAction::Defer);
        assert_eq!(po.on_fetched(4, 5), FetchAction::Emit);
        po.committed(2);
        assert_eq!(po.uncommitted(), 2);
        assert!(!po.at_capacity(4));
        assert_eq!(po.on_fetched(4, 4), FetchAction::Emit);
    }

    #[test]
    fn due_retries_are_emitted_even_at_capacity() {
        let mut po = PartitionOffsets::new(0);
        emit_all(&mut po, 0..3);
        po.failed(0, RETRY);
        po.retry_due(0);
        assert!(po.at_capacity(3));
        assert_eq!(po.on_fetched(0, 3), FetchAction::Emit);
        assert_eq!(po.on_fetched(1, 3), FetchAction::Skip, "in flight");
        assert_eq!(po.on_fetched(3, 3), FetchAction::Defer);
    }

    #[test]
    fn in_flight_offsets_are_not_emitted_twice_after_a_seek() {
        let mut po = PartitionOffsets::new(0);
        emit_all(&mut po, 0..3);
        assert!(po.is_in_flight(1));
        assert!(!po.is_in_flight(3));
        let actions: Vec<FetchAction> = (0..4).map(|o| po.on_fetched(o, 100)).collect();
        use FetchAction::{Emit, Skip};
        assert_eq!(actions, [Skip, Skip, Skip, Emit]);
        assert_eq!(po.highest_emitted(), Some(2));
    }

    #[test]
    fn unknown_acks_are_ignored() {
        let mut po = PartitionOffsets::new(0);
        assert!(!po.acked(3));
        assert_eq!(po.commit_point(), None);
    }

    #[test]
    fn extreme_offsets_do_not_overflow() {
        let mut po = PartitionOffsets::new(i64::MAX - 1);
        po.emitted(i64::MAX);
        po.acked(i64::MAX);
        assert_eq!(po.commit_point(), Some(i64::MAX));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use std::collections::{BTreeMap, BTreeSet};

        #[derive(Debug, Clone)]
        enum Op {
            /// Emit the next offset, `gap` after the previous fetched one.
            Emit { gap: i64 },
            /// Skip (filter out) the next offset.
            Skip { gap: i64 },
            /// Ack the n-th pending offset (modulo).
            Ack(usize),
            /// Fail the n-th pending offset, giving up or not.
            Fail(usize, bool),
            /// Replay the n-th waiting offset.
            Replay(usize),
            /// Commit the commit point.
            Commit,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                5 => (1..4i64).prop_map(|gap| Op::Emit { gap }),
                1 => (1..4i64).prop_map(|gap| Op::Skip { gap }),
                5 => any::<usize>().prop_map(Op::Ack),
                2 => (any::<usize>(), any::<bool>()).prop_map(|(n, g)| Op::Fail(n, g)),
                2 => any::<usize>().prop_map(Op::Replay),
                1 => Just(Op::Commit),
            ]
        }

        /// Model state of an offset.
        #[derive(Debug, Clone, Copy, PartialEq)]
        enum M {
            InFlight,
            Waiting,
            Done,
        }

        fn nth(model: &BTreeMap<i64, M>, pick: impl Fn(M) -> bool, n: usize) -> Option<i64> {
            let v: Vec<i64> = model
                .iter()
                .filter(|(_, m)| pick(**m))
                .map(|(o, _)| *o)
                .collect();
            (!v.is_empty()).then(|| v[n % v.len()])
        }

        proptest! {
            #[test]
            fn commit_point_invariants(start in 0..1_000i64,
                                       ops in proptest::collection::vec(op(), 0..300)) {
                let mut po = PartitionOffsets::new(start);
                // Every offset fetched at or after the last commit: emitted or skipped.
                let mut model: BTreeMap<i64, M> = BTreeMap::new();
                let mut emitted: BTreeSet<i64> = BTreeSet::new();
                let mut next = start;
                let mut last_seen: Option<i64> = None;
                let mut committed = start;
                let mut prev_point = start;
                for op in ops {
                    match op {
                        Op::Emit { gap } => {
                            let o = next + gap - 1;
                            prop_assert_eq!(po.on_fetched(o, usize::MAX), FetchAction::Emit);
                            prop_assert!(po.emitted(o));
                            model.insert(o, M::InFlight);
                            emitted.insert(o);
                            next = o + 1;
                            last_seen = Some(o);
                        }
                        Op::Skip { gap } => {
                            let o = next + gap - 1;
                            prop_assert!(po.skipped(o));
                            model.insert(o, M::Done);
                            next = o + 1;
                            last_seen = Some(o);
                        }
                        Op::Ack(n) => {
                            if let Some(o) = nth(&model, |m| m != M::Done, n) {
                                prop_assert!(po.acked(o));
                                model.insert(o, M::Done);
                            }
                        }
                        Op::Fail(n, give_up) => {
                            if let Some(o) = nth(&model, |m| m == M::InFlight, n) {
                                let d = if give_up { RetryDecision::GiveUp } else { RETRY };
                                prop_assert!(po.failed(o, d));
                                model.insert(o, if give_up { M::Done } else { M::Waiting });
                            }
                        }
                        Op::Replay(n) => {
                            if let Some(o) = nth(&model, |m| m == M::Waiting, n) {
                                prop_assert_eq!(po.on_fetched(o, usize::MAX), FetchAction::Skip);
                                prop_assert!(po.retry_due(o));
                                prop_assert_eq!(po.on_fetched(o, 0), FetchAction::Emit);
                                prop_assert!(po.emitted(o));
                                model.insert(o, M::InFlight);
                            }
                        }
                        Op::Commit => {
                            if let Some(n) = po.commit_point() {
                                prop_assert!(po.committed(n));
                                committed = n;
                                model = model.split_off(&n);
                                emitted = emitted.split_off(&n);
                            }
                        }
                    }
                    let point = po.commit_point();
                    let effective = point.unwrap_or(committed);
                    prop_assert_eq!(po.last_committed(), committed);
                    if let Some(p) = point {
                        prop_assert!(p > committed, "commit point {} not beyond {}", p, committed);
                    }
                    prop_assert!(effective >= prev_point, "went back: {} -> {}", prev_point, effective);
                    prev_point = effective;
                    let first_not_done = model.iter().find(|(_, m)| **m != M::Done).map(|(o, _)| *o);
                    match first_not_done {
                        // Never passes an offset not done, and stops right at the first one.
                        Some(o) => prop_assert_eq!(effective, o.max(committed)),
                        // Everything done: one past the last fetched offset.
                        None => prop_assert_eq!(effective, last_seen.map_or(start, |o| o + 1).max(committed)),
                    }
                    prop_assert_eq!(po.pending(), model.values().filter(|m| **m != M::Done).count());
                    prop_assert_eq!(po.uncommitted(), emitted.len());
                }
            }
        }
    }
}
