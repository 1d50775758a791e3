//! The Kafka spout's bookkeeping, apart from the consumer: which partitions are
//! assigned, which records are in flight (kept in memory until done, so a failed record
//! is replayed without seeking), what each partition may commit, where each ends.
//!
//! Shared between the spout and its consumer context (rebalances run inside `poll`), so
//! it lives behind one mutex that is never held across a call into the consumer.

use std::collections::{HashMap, VecDeque};

use crate::kafka::TopicPartition;
use crate::kafka::position::TimestampScan;
use crate::kafka::spout::offsets::{FetchAction, PartitionOffsets};
use crate::kafka::spout::retry::{RetryDecision, RetryKey, RetrySchedule};

use crate::kafka::spout::record::Record;

/// Where a partition stops (bounded runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndBound {
    /// Stop before this offset.
    Offset(i64),
    /// Stop at the first record whose timestamp is at or after `ts`, or at offset `until`
    /// (the log end when resolved), whichever comes first.
    Timestamp { ts: i64, until: i64 },
}

/// Where a newly assigned partition starts and ends.
#[derive(Clone, Debug)]
pub struct Start {
    /// The first offset to read, when known (else: the first fetched record's).
    pub offset: Option<i64>,
    /// Skip records older than a start timestamp (the broker could not resolve it).
    pub scan: Option<TimestampScan>,
    pub end: Option<EndBound>,
}

/// One assigned partition.
pub struct Partition {
    offsets: Option<PartitionOffsets>,
    /// Records emitted and not done, by offset: (message id, record).
    records: HashMap<i64, (u64, Record)>,
    /// Fetched while the partition was at its cap of uncommitted offsets.
    held: VecDeque<Record>,
    scan: Option<TimestampScan>,
    end: Option<EndBound>,
    /// Reached its end bound: nothing more is read from it.
    pub at_end: bool,
    /// Paused in the consumer (at its cap, or at its end).
    pub paused: bool,
}

/// What to do with a fetched record.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// Emit it with this message id.
    Emit(u64),
    /// Nothing to emit (a duplicate, before the start, or beyond the end).
    Drop,
    /// Kept until the partition is below its cap: pause the partition.
    Held,
    /// The partition reached its end: pause it.
    Ended,
}

/// Everything the spout tracks.
pub struct SpoutState {
    pub parts: HashMap<TopicPartition, Partition>,
    msgs: HashMap<u64, (TopicPartition, i64)>,
    retries: RetrySchedule,
    next_msg: u64,
    max_uncommitted: usize,
    /// Whether records are tracked (at-least-once) or emitted untracked.
    tracked: bool,
    /// Some assignment has happened (a bounded run cannot end before).
    pub assigned_once: bool,
    /// In-flight records dropped because their partition was revoked.
    pub dropped_on_revoke: u64,
    /// Partitions revoked and being handed off (see [`Revoking`]).
    pub revoking: Option<Revoking>,
    /// Partitions assigned and revoked since the spout last looked (event time: each is
    /// a source of the task's watermark).
    pub source_changes: Vec<(TopicPartition, bool)>,
}

/// Partitions the group revoked, still assigned (paused) until their records in flight
/// are done or `deadline` passes; then they are handed off and unassigned.
#[derive(Clone, Debug)]
pub struct Revoking {
    pub tps: Vec<TopicPartition>,
    pub deadline: std::time::Instant,
}

impl SpoutState {
    pub fn new(retries: RetrySchedule, max_uncommitted: usize, tracked: bool) -> Self {
        SpoutState {
            parts: HashMap::new(),
            msgs: HashMap::new(),
            retries,
            next_msg: 1,
            max_uncommitted: max_uncommitted.max(1),
            tracked,
            assigned_once: false,
            dropped_on_revoke: 0,
            revoking: None,
            source_changes: Vec::new(),
        }
    }

    /// A partition was assigned.
    pub fn assign(&mut self, tp: TopicPartition, start: Start) {
        let at_end = match (start.offset, start.end) {
            (Some(o), Some(EndBound::Offset(e))) => o >= e,
            (Some(o), Some(EndBound::Timestamp { until, .. })) => o >= until,
            _ => false,
        };
        self.assigned_once = true;
        self.source_changes.push((tp.clone(), true));
        self.parts.insert(
            tp,
            Partition {
                offsets: start.offset.map(PartitionOffsets::new),
                records: HashMap::new(),
                held: VecDeque::new(),
                scan: start.scan,
                end: start.end,
                at_end,
                paused: false,
            },
        );
    }

    /// A partition was revoked: returns its commit point (what is acked), and forgets
    /// its in-flight records (late acks and fails of them are ignored).
    pub fn revoke(&mut self, tp: &TopicPartition) -> Option<i64> {
        let p = self.parts.remove(tp)?;
        self.source_changes.push((tp.clone(), false));
        self.retries.forget_partition(tp);
        for (id, _) in p.records.values() {
            self.msgs.remove(id);
        }
        self.dropped_on_revoke += p.records.len() as u64;
        p.offsets.and_then(|o| o.commit_point())
    }

    /// A fetched record: emit, hold, or drop it.
    pub fn fetched(&mut self, r: Record) -> (Fetched, Option<Record>) {
        let Some(p) = self.parts.get_mut(&r.tp) else {
            return (Fetched::Drop, None);
        };
        if p.at_end {
            return (Fetched::Ended, None);
        }
        match p.end {
            Some(EndBound::Offset(e)) if r.offset >= e => {
                p.at_end = true;
                return (Fetched::Ended, None);
            }
            Some(EndBound::Timestamp { ts, until })
                if r.offset >= until || r.timestamp.is_some_and(|t| t >= ts) =>
            {
                p.at_end = true;
                return (Fetched::Ended, None);
            }
            _ => {}
        }
        // The record just before the bound is the partition's last.
        p.at_end = match p.end {
            Some(EndBound::Offset(e)) => r.offset + 1 >= e,
            Some(EndBound::Timestamp { until, .. }) => r.offset + 1 >= until,
            None => false,
        };
        self.track(r, false)
    }

    /// [`fetched`](Self::fetched) within the bounds; `released`: the record comes from
    /// the partition's held queue (it keeps its place ahead of the others).
    fn track(&mut self, r: Record, released: bool) -> (Fetched, Option<Record>) {
        let max = self.max_uncommitted;
        let Some(p) = self.parts.get_mut(&r.tp) else {
            return (Fetched::Drop, None);
        };
        let offsets = p
            .offsets
            .get_or_insert_with(|| PartitionOffsets::new(r.offset));
        if let Some(scan) = &mut p.scan
            && !scan.admit(r.offset, r.timestamp)
        {
            offsets.skipped(r.offset);
            return (Fetched::Drop, None);
        }
        if !self.tracked {
            return (Fetched::Emit(0), Some(r));
        }
        if !released && !p.held.is_empty() {
            p.held.push_back(r);
            return (Fetched::Held, None);
        }
        match offsets.on_fetched(r.offset, max) {
            FetchAction::Skip => (Fetched::Drop, None),
            FetchAction::Defer if released => {
                p.held.push_front(r);
                (Fetched::Held, None)
            }
            FetchAction::Defer => {
                p.held.push_back(r);
                (Fetched::Held, None)
            }
            FetchAction::Emit => {
                offsets.emitted(r.offset);
                let id = self.next_msg;
                self.next_msg += 1;
                self.msgs.insert(id, (r.tp.clone(), r.offset));
                p.records.insert(r.offset, (id, r));
                (Fetched::Emit(id), None)
            }
        }
    }

    /// The record of an emitted message id (to build its values).
    pub fn record(&self, id: u64) -> Option<&Record> {
        let (tp, offset) = self.msgs.get(&id)?;
        self.parts.get(tp)?.records.get(offset).map(|(_, r)| r)
    }

    /// A record tracked but never emitted, forgotten without being done: the commit
    /// stays before it (its partition is being handed off; the next holder reads it).
    pub fn unemit(&mut self, id: u64) {
        let Some((tp, offset)) = self.msgs.remove(&id) else {
            return;
        };
        self.retries.acked(&RetryKey::new(tp.clone(), offset));
        if let Some(p) = self.parts.get_mut(&tp) {
            p.records.remove(&offset);
        }
    }

    /// Records of `tp` emitted and not done (retries waiting included).
    pub fn in_flight(&self, tp: &TopicPartition) -> usize {
        self.parts.get(tp).map_or(0, |p| p.records.len())
    }

    /// A record that will not be emitted after all (bad data): done, so the commit moves
    /// past it.
    pub fn done_without_emit(&mut self, id: u64) {
        self.ack(id);
    }

    pub fn ack(&mut self, id: u64) {
        let Some((tp, offset)) = self.msgs.remove(&id) else {
            return;
        };
        self.retries.acked(&RetryKey::new(tp.clone(), offset));
        if let Some(p) = self.parts.get_mut(&tp) {
            p.records.remove(&offset);
            if let Some(o) = &mut p.offsets {
                o.acked(offset);
            }
        }
    }

    /// A failed record: scheduled for a retry, or given up (returns `true`; it counts as
    /// done and the commit may pass it).
    pub fn fail(&mut self, id: u64, now_ms: u64) -> bool {
        let Some((tp, offset)) = self.msgs.get(&id).cloned() else {
            return false;
        };
        let decision = self.retries.fail(RetryKey::new(tp.clone(), offset), now_ms);
        if let Some(o) = self.parts.get_mut(&tp).and_then(|p| p.offsets.as_mut()) {
            o.failed(offset, decision);
        }
        if decision == RetryDecision::GiveUp {
            self.msgs.remove(&id);
            if let Some(p) = self.parts.get_mut(&tp) {
                p.records.remove(&offset);
            }
            return true;
        }
        false
    }

    /// A failed record whose retry is due: its message id (emit it again).
    pub fn due_retry(&mut self, now_ms: u64) -> Option<u64> {
        while let Some(key) = self.retries.due(now_ms) {
            let Some(p) = self.parts.get_mut(&key.tp) else {
                continue;
            };
            let Some((id, _)) = p.records.get(&key.offset) else {
                continue;
            };
            if let Some(o) = &mut p.offsets {
                o.retry_due(key.offset);
                o.emitted(key.offset);
            }
            return Some(*id);
        }
        None
    }

    /// A held record of a partition that is now below its cap, if any: its message id.
    pub fn release_held(&mut self) -> Option<u64> {
        let max = self.max_uncommitted;
        let (tp, _) = self.parts.iter().find(|(_, p)| {
            !p.held.is_empty() && p.offsets.as_ref().is_none_or(|o| !o.at_capacity(max))
        })?;
        let tp = tp.clone();
        let r = self.parts.get_mut(&tp)?.held.pop_front()?;
        match self.track(r, true) {
            (Fetched::Emit(id), _) => Some(id),
            _ => None,
        }
    }

    /// Partitions to resume: paused for their cap, no longer at it, and not at their end.
    pub fn resumable(&self) -> Vec<TopicPartition> {
        let max = self.max_uncommitted;
        self.parts
            .iter()
            .filter(|(_, p)| {
                p.paused
                    && !p.at_end
                    && p.held.is_empty()
                    && p.offsets.as_ref().is_none_or(|o| !o.at_capacity(max))
            })
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Whether some partition waits at its cap (a commit would let it go on).
    pub fn any_capped(&self) -> bool {
        self.parts.values().any(|p| !p.held.is_empty())
    }

    /// Per partition, the offset that may be committed now.
    pub fn commit_points(&self) -> Vec<(TopicPartition, i64)> {
        self.parts
            .iter()
            .filter_map(|(tp, p)| Some((tp.clone(), p.offsets.as_ref()?.commit_point()?)))
            .collect()
    }

    /// `n` was committed for `tp`.
    pub fn committed(&mut self, tp: &TopicPartition, n: i64) {
        if let Some(o) = self.parts.get_mut(tp).and_then(|p| p.offsets.as_mut()) {
            o.committed(n);
        }
    }

    /// Records emitted and not done, and retries waiting.
    pub fn pending(&self) -> usize {
        self.msgs.len()
    }

    /// A bounded run is over: something was assigned, every partition reached its end,
    /// and nothing is pending.
    pub fn finished(&self) -> bool {
        self.assigned_once
            && self.parts.values().all(|p| p.at_end && p.held.is_empty())
            && self.msgs.is_empty()
    }

    /// No partition assigned and nothing pending (never assigned, or all revoked).
    pub fn holds_nothing(&self) -> bool {
        self.parts.is_empty() && self.msgs.is_empty()
    }

    /// Partitions at their end bound with nothing in flight, held or awaiting a retry.
    pub fn ended_partitions(&self) -> Vec<TopicPartition> {
        self.parts
            .iter()
            .filter(|(_, p)| p.at_end && p.held.is_empty() && p.records.is_empty())
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Every assigned partition has an end bound.
    pub fn bounded(&self) -> bool {
        self.parts.values().all(|p| p.end.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::backoff::BackoffConfig;

    fn state(max_uncommitted: usize, max_retries: Option<u32>) -> SpoutState {
        let backoff = BackoffConfig {
            initial_ms: 10,
            multiplier: 2.0,
            max_ms: 100,
        };
        SpoutState::new(
            RetrySchedule::new(&backoff, max_retries).unwrap(),
            max_uncommitted,
            true,
        )
    }

    fn tp() -> TopicPartition {
        TopicPartition::new("t", 0)
    }

    fn rec(offset: i64) -> Record {
        Record {
            tp: tp(),
            offset,
            key: None,
            payload: Some(format!("v{offset}").into_bytes()),
            timestamp: Some(offset * 10),
            oversized: None,
        }
    }

    fn start(offset: i64, end: Option<EndBound>) -> Start {
        Start {
            offset: Some(offset),
            scan: None,
            end,
        }
    }

    fn emit(s: &mut SpoutState, offset: i64) -> u64 {
        match s.fetched(rec(offset)).0 {
            Fetched::Emit(id) => id,
            other => panic!("offset {offset}: {other:?}"),
        }
    }

    /// A bounded spout never assigned is not finished (it may still get partitions) but
    /// holds nothing; one with a partition or a record in flight holds something.
    #[test]
    fn holds_nothing_until_assigned_and_again_once_revoked_and_idle() {
        let mut s = state(100, None);
        assert!(s.holds_nothing() && !s.finished());
        s.assign(tp(), start(0, Some(EndBound::Offset(10))));
        assert!(!s.holds_nothing());
        let id = emit(&mut s, 0);
        s.revoke(&tp());
        assert!(
            s.holds_nothing(),
            "a revoked partition's records are forgotten"
        );
        s.ack(id);
        assert!(s.holds_nothing());
    }

    #[test]
    fn commits_only_the_acked_prefix() {
        let mut s = state(100, None);
        s.assign(tp(), start(0, None));
        let ids: Vec<u64> = (0..4).map(|o| emit(&mut s, o)).collect();
        s.ack(ids[1]);
        s.ack(ids[2]);
        assert!(s.commit_points().is_empty(), "offset 0 is not acked");
        s.ack(ids[0]);
        assert_eq!(s.commit_points(), vec![(tp(), 3)]);
        s.committed(&tp(), 3);
        assert!(s.commit_points().is_empty());
        assert_eq!(s.pending(), 1);
    }

    #[test]
    fn a_failed_record_holds_the_commit_until_its_retry_is_acked() {
        let mut s = state(100, None);
        s.assign(tp(), start(0, None));
        let a = emit(&mut s, 0);
        let b = emit(&mut s, 1);
        s.ack(b);
        assert!(!s.fail(a, 0));
        assert_eq!(s.due_retry(5), None, "not due before its back-off");
        assert!(s.commit_points().is_empty());
        assert_eq!(s.due_retry(10), Some(a));
        assert_eq!(s.record(a).map(|r| r.offset), Some(0));
        s.ack(a);
        assert_eq!(s.commit_points(), vec![(tp(), 2)]);
    }

    #[test]
    fn given_up_records_are_passed() {
        let mut s = state(100, Some(0));
        s.assign(tp(), start(5, None));
        let a = emit(&mut s, 5);
        assert!(s.fail(a, 0));
        assert_eq!(s.commit_points(), vec![(tp(), 6)]);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn duplicates_of_in_flight_offsets_are_not_emitted() {
        let mut s = state(100, None);
        s.assign(tp(), start(0, None));
        emit(&mut s, 0);
        assert_eq!(s.fetched(rec(0)).0, Fetched::Drop);
    }

    #[test]
    fn a_capped_partition_holds_records_until_a_commit() {
        let mut s = state(2, None);
        s.assign(tp(), start(0, None));
        let a = emit(&mut s, 0);
        let b = emit(&mut s, 1);
        assert_eq!(s.fetched(rec(2)).0, Fetched::Held);
        assert_eq!(
            s.fetched(rec(3)).0,
            Fetched::Held,
            "order is kept behind a held record"
        );
        assert!(s.any_capped());
        s.ack(a);
        s.ack(b);
        assert!(
            s.release_held().is_none(),
            "still at the cap until committed"
        );
        s.committed(&tp(), 2);
        let offset_of =
            |s: &SpoutState, id: Option<u64>| id.and_then(|id| s.record(id)).map(|r| r.offset);
        let id = s.release_held();
        assert_eq!(offset_of(&s, id), Some(2));
        let id = s.release_held();
        assert_eq!(offset_of(&s, id), Some(3));
        assert!(!s.any_capped());
    }

    #[test]
    fn a_drained_partition_hands_off_before_its_unemitted_records() {
        let mut s = state(100, None);
        s.assign(tp(), start(0, None));
        let a = emit(&mut s, 0);
        let b = emit(&mut s, 1);
        let held_back = emit(&mut s, 2);
        assert_eq!(s.in_flight(&tp()), 3);
        s.ack(a);
        s.ack(b);
        // Tracked but never emitted (held back during a rebalance): not in flight, and
        // the commit point stays before it, so its next holder reads it.
        s.unemit(held_back);
        assert_eq!(s.in_flight(&tp()), 0);
        assert_eq!(s.pending(), 0);
        assert_eq!(s.revoke(&tp()), Some(2));
        s.ack(held_back);
        assert_eq!(s.dropped_on_revoke, 0);
    }

    #[test]
    fn revocation_forgets_in_flight_records_and_reports_the_commit_point() {
        let mut s = state(100, None);
        s.assign(tp(), start(0, None));
        let a = emit(&mut s, 0);
        let _b = emit(&mut s, 1);
        s.ack(a);
        assert_eq!(s.revoke(&tp()), Some(1));
        assert_eq!(s.pending(), 0);
        assert_eq!(s.dropped_on_revoke, 1);
        s.ack(a); // late: ignored
        assert!(s.parts.is_empty());
    }

    #[test]
    fn bounded_partitions_end_and_the_run_finishes_when_all_is_acked() {
        let mut s = state(100, None);
        s.assign(tp(), start(0, Some(EndBound::Offset(2))));
        let a = emit(&mut s, 0);
        let b = emit(&mut s, 1);
        assert_eq!(s.fetched(rec(2)).0, Fetched::Ended);
        assert!(!s.finished());
        s.ack(a);
        s.ack(b);
        assert!(s.finished());
        assert_eq!(s.commit_points(), vec![(tp(), 2)]);
    }

    #[test]
    fn an_end_timestamp_stops_at_the_first_record_at_or_after_it() {
        let mut s = state(100, None);
        s.assign(
            tp(),
            start(0, Some(EndBound::Timestamp { ts: 20, until: 100 })),
        );
        emit(&mut s, 0);
        emit(&mut s, 1);
        assert_eq!(s.fetched(rec(2)).0, Fetched::Ended, "timestamp 20");
    }

    #[test]
    fn an_empty_range_is_at_its_end_at_once() {
        let mut s = state(100, None);
        s.assign(tp(), start(7, Some(EndBound::Offset(7))));
        assert!(s.finished());
    }

    #[test]
    fn a_start_scan_skips_older_records_and_commits_past_them() {
        let mut s = state(100, None);
        s.assign(
            tp(),
            Start {
                offset: Some(0),
                scan: Some(TimestampScan::new(30, 100)),
                end: None,
            },
        );
        assert_eq!(s.fetched(rec(0)).0, Fetched::Drop);
        assert_eq!(s.fetched(rec(2)).0, Fetched::Drop);
        let id = emit(&mut s, 3);
        s.ack(id);
        assert_eq!(s.commit_points(), vec![(tp(), 4)]);
    }
}
