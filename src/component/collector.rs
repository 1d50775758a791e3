//! What spouts and bolts emit through.

use std::cell::Cell;
use std::time::Instant;

use crate::component::ComponentResult;
use crate::data::columns::Columns;
use crate::data::tuple::{Anchor, Anchors, Tuple, Value, Values};
use crate::task::ledger::Tracker;
use crate::task::ledger::{Ledger, Outcomes, root_id};
use crate::task::outbox::{Outbox, Parent};
use crate::task::source_time::SourceTime;

/// A bolt's view of its output: emit (anchored or not), ack, fail.
pub struct BoltCollector<'a> {
    pub(crate) outbox: &'a mut Outbox,
    pub(crate) ledger: Option<&'a Ledger>,
    /// Outcomes of trees this task completed or failed, delivered at the end of its batch.
    pub(crate) outcomes: &'a mut Outcomes,
    /// The input of an auto-ack (basic) bolt: emits are anchored to it.
    pub(crate) current: Option<(&'a [Anchor], &'a Cell<u64>)>,
    pub(crate) acked: u64,
    pub(crate) failed: u64,
    /// Distributed mode: set by the per-partition wrapper around a call into a bolt.
    pub(crate) scope: Scope,
    /// Inputs the bolt found later than its windows allow (counted as `late`).
    pub(crate) late: u64,
}

/// Distributed mode: what the per-partition wrapper of a bolt sets around each call into
/// the bolt instance of one partition.
#[derive(Default)]
pub(crate) struct Scope {
    /// Appended to every tuple emitted (the partition whose state emitted it); broadcasts
    /// become emits grouped by it, so they reach the one task that holds the partition.
    pub(crate) tag: Option<Value>,
    /// The trees that emits made without an anchor join (the input being handled, in a
    /// wrapper that acks its inputs itself); the edges emitted are XOR-ed into the cell.
    pub(crate) anchor: Option<(Anchors, Cell<u64>)>,
}

impl BoltCollector<'_> {
    /// Emits on the default stream (anchored to the input in auto-ack mode).
    pub fn emit(&mut self, values: impl Into<Values>) -> ComponentResult {
        let sid = self.outbox.stream_id(None)?;
        self.emit_current(sid, values.into(), None)
    }

    /// Swaps the scope (distributed mode's wrapper); returns the previous one.
    pub(crate) fn set_scope(&mut self, scope: Scope) -> Scope {
        std::mem::replace(&mut self.scope, scope)
    }

    /// The values with the scope's tag appended.
    fn tagged(&self, mut values: Values) -> Values {
        if let Some(t) = &self.scope.tag {
            values.push(t.clone());
        }
        values
    }

    /// Emits anchored to the current input (auto-ack mode) or to the scope's anchor,
    /// unanchored otherwise.
    fn emit_current(&mut self, sid: usize, values: Values, direct: Option<u32>) -> ComponentResult {
        let values = self.tagged(values);
        let parents: smallvec::SmallVec<[Parent<'_>; 1]> = match (&self.current, &self.scope.anchor)
        {
            (Some(c), _) => smallvec::smallvec![*c],
            (None, Some((a, v))) => smallvec::smallvec![(a.as_slice(), v)],
            (None, None) => smallvec::SmallVec::new(),
        };
        self.outbox.emit(sid, values, &parents, direct)?;
        self.outbox.flush_full();
        Ok(())
    }

    /// Emits on a named stream (anchored to the input in auto-ack mode).
    pub fn emit_to(&mut self, stream: &str, values: impl Into<Values>) -> ComponentResult {
        let sid = self.outbox.stream_id(Some(stream))?;
        self.emit_current(sid, values.into(), None)
    }

    /// Emits to one task of a bolt that subscribes to `stream` with a direct grouping.
    pub fn emit_direct(
        &mut self,
        task: u32,
        stream: &str,
        values: impl Into<Values>,
    ) -> ComponentResult {
        let sid = self.outbox.stream_id(Some(stream))?;
        self.emit_current(sid, values.into(), Some(task))
    }

    /// Emits on the default stream anchored to every tuple in `anchors` (multi-anchoring):
    /// each of their trees completes only after the new tuple is acked.
    pub fn emit_anchored(
        &mut self,
        anchors: &[&Tuple],
        values: impl Into<Values>,
    ) -> ComponentResult {
        self.emit_anchored_to(crate::data::tuple::DEFAULT_STREAM, anchors, values)
    }

    pub fn emit_anchored_to(
        &mut self,
        stream: &str,
        anchors: &[&Tuple],
        values: impl Into<Values>,
    ) -> ComponentResult {
        let sid = self.outbox.stream_id(Some(stream))?;
        let values = self.tagged(values.into());
        let parents: smallvec::SmallVec<[Parent<'_>; 2]> = anchors
            .iter()
            .map(|t| (t.anchors.as_slice(), &t.ack_val))
            .collect();
        // The new tuple is as late as its latest anchor.
        let outer = self.outbox.event_time;
        if let Some(t) = anchors.iter().map(|t| t.event_time).max() {
            self.outbox.event_time = t;
        }
        let r = self.outbox.emit(sid, values, &parents, None);
        self.outbox.event_time = outer;
        r?;
        self.outbox.flush_full();
        Ok(())
    }

    /// Emits a tuple that belongs to no tree (never replayed).
    /// (In distributed mode's wrapper, it joins the trees of the input being handled.)
    pub fn emit_unanchored(&mut self, stream: &str, values: impl Into<Values>) -> ComponentResult {
        let sid = self.outbox.stream_id(Some(stream))?;
        let values = self.tagged(values.into());
        match &self.scope.anchor {
            Some((a, v)) => self.outbox.emit(sid, values, &[(a.as_slice(), v)], None)?,
            None => self.outbox.emit(sid, values, &[], None)?,
        };
        self.outbox.flush_full();
        Ok(())
    }

    /// Sends an unanchored tuple to every task of every bolt subscribing to `stream`,
    /// whatever its grouping: punctuation, such as "window W is complete from this task"
    /// (see `rolling_count` and `rank`).
    pub fn emit_broadcast(&mut self, stream: &str, values: impl Into<Values>) -> ComponentResult {
        if self.scope.tag.is_some() {
            return self.emit_unanchored(stream, values);
        }
        let sid = self.outbox.stream_id(Some(stream))?;
        self.outbox.broadcast(sid, values.into());
        self.outbox.flush_full();
        Ok(())
    }

    /// Event time: counts `n` inputs as late (later than the bolt's windows allow; the
    /// `late` metric). The bolt sends them to its `late` stream itself.
    pub fn count_late(&mut self, n: u64) {
        self.late += n;
    }

    /// Acks an input (manual mode).
    pub fn ack(&mut self, input: &Tuple) {
        self.acked += 1;
        if self.ledger.is_some() {
            let v = input.ack_val.get();
            for a in &input.anchors {
                self.outcomes.ack(a.root, a.edge ^ v);
            }
        }
    }

    /// Fails an input (manual mode): its trees fail at once and their spouts replay.
    pub fn fail(&mut self, input: &Tuple) {
        self.failed += 1;
        if let Some(ledger) = self.ledger {
            for a in &input.anchors {
                ledger.fail(a.root, self.outcomes);
            }
        }
    }

    /// Restarts the message timeout of the input's trees (for work that legitimately
    /// takes long).
    pub fn reset_timeout(&mut self, input: &Tuple) {
        if let Some(ledger) = self.ledger {
            for a in &input.anchors {
                ledger.reset_timeout(a.root);
            }
        }
    }

    /// The id of the emitting task.
    pub fn task_id(&self) -> u32 {
        self.outbox.task_id
    }
}

/// A spout's view of its output.
pub struct SpoutCollector<'a> {
    pub(crate) outbox: &'a mut Outbox,
    pub(crate) ledger: Option<&'a Ledger>,
    pub(crate) tracker: &'a mut Tracker,
    pub(crate) slot: u32,
    pub(crate) timeout_ms: u64,
    /// `max_spout_pending`: the most spout tuples this task may have in flight (micro-batch
    /// mode: the most the batch being cut may take).
    pub(crate) max_pending: usize,
    /// Event time (the spout's `event_time` option), if configured.
    pub(crate) time: Option<&'a mut SourceTime>,
}

impl SpoutCollector<'_> {
    /// Event time: the tuples emitted from now on come from source `key` (a Kafka
    /// partition, a connection); the task's watermark is the minimum over its keys. A
    /// spout that does not call this is one source.
    pub fn set_source(&mut self, key: u64) {
        if let Some(t) = &mut self.time {
            t.set_key(key);
        }
    }

    /// Event time: source `key` opened (a partition assigned, a connection accepted): it
    /// holds the watermark back until it shows a message or goes idle.
    pub fn open_source(&mut self, key: u64) {
        if let Some(t) = &mut self.time {
            t.open(key);
        }
    }

    /// Event time: source `key` has messages waiting that were not read yet (a Kafka
    /// partition behind its end): it does not go idle, so it keeps holding the watermark
    /// back until they are read.
    pub fn source_busy(&mut self, key: u64) {
        if let Some(t) = &mut self.time {
            t.busy(key);
        }
    }

    /// Event time: source `key` is gone; it no longer holds the watermark back.
    pub fn close_source(&mut self, key: u64) {
        if let Some(t) = &mut self.time {
            t.close(key);
        }
    }

    /// Event time: the timestamp of the record the next tuples come from (used when the
    /// `event_time` field is `timestamp` and the tuples have no such field).
    pub fn set_record_time(&mut self, ms: Option<i64>) {
        if let Some(t) = &mut self.time {
            t.set_record_time(ms);
        }
    }

    /// Whether this spout assigns event time (its `event_time` option is set).
    pub fn assigns_event_time(&self) -> bool {
        self.time.is_some()
    }

    /// Emits on the default stream. With a message id (and acking on) the tuple's tree is
    /// tracked and the spout is told `ack(id)` or `fail(id)`; without, it is fire and forget.
    pub fn emit(&mut self, values: impl Into<Values>, msg_id: Option<u64>) -> ComponentResult {
        let sid = self.outbox.stream_id(None)?;
        self.emit_sid(sid, values.into(), msg_id, None, None)
    }

    /// Emits on the default stream with the time the tuple was due (a paced source that
    /// fell behind): complete latency is measured from `due`, so waiting before the emit
    /// is not hidden (no coordinated omission).
    pub fn emit_at(
        &mut self,
        values: impl Into<Values>,
        msg_id: Option<u64>,
        due: Instant,
    ) -> ComponentResult {
        let sid = self.outbox.stream_id(None)?;
        self.emit_sid(sid, values.into(), msg_id, None, Some(due))
    }

    pub fn emit_to(
        &mut self,
        stream: &str,
        values: impl Into<Values>,
        msg_id: Option<u64>,
    ) -> ComponentResult {
        let sid = self.outbox.stream_id(Some(stream))?;
        self.emit_sid(sid, values.into(), msg_id, None, None)
    }

    pub fn emit_direct(
        &mut self,
        task: u32,
        stream: &str,
        values: impl Into<Values>,
        msg_id: Option<u64>,
    ) -> ComponentResult {
        let sid = self.outbox.stream_id(Some(stream))?;
        self.emit_sid(sid, values.into(), msg_id, Some(task), None)
    }

    fn emit_sid(
        &mut self,
        sid: usize,
        values: Values,
        msg_id: Option<u64>,
        direct: Option<u32>,
        due: Option<Instant>,
    ) -> ComponentResult {
        if let Some(t) = &mut self.time {
            self.outbox.event_time = t.time_of(self.outbox, sid, &values);
        }
        let r = self.emit_timed(sid, values, msg_id, direct, due);
        self.outbox.event_time = crate::data::tuple::NO_TIME;
        r
    }

    fn emit_timed(
        &mut self,
        sid: usize,
        values: Values,
        msg_id: Option<u64>,
        direct: Option<u32>,
        due: Option<Instant>,
    ) -> ComponentResult {
        if let Some(o) = &mut self.tracker.origins {
            // Micro-batch mode: the batch is the unit of tracking.
            self.outbox.emit(sid, values, &[], direct)?;
            o.push(due.unwrap_or(self.tracker.now));
            if let Some(id) = msg_id {
                self.tracker.immediate.push((id, true, 1));
            }
            return Ok(());
        }
        let Some(msg_id) = msg_id else {
            self.outbox.emit(sid, values, &[], direct)?;
            self.outbox.flush_full();
            return Ok(());
        };
        match self.ledger {
            None => {
                // Acking off: the tuple counts as done once emitted.
                self.outbox.emit(sid, values, &[], direct)?;
                self.outbox.flush_full();
                self.tracker.immediate.push((msg_id, true, 1));
            }
            Some(_) => {
                let root = root_id(self.outbox.next_id(), self.slot);
                let acc = Cell::new(0u64);
                let anchor = [Anchor { root, edge: 0 }];
                self.outbox.emit(sid, values, &[(&anchor, &acc)], direct)?;
                if acc.get() != 0 {
                    let deadline = self.tracker.now_ms + self.timeout_ms;
                    let at = due.unwrap_or(self.tracker.now);
                    self.tracker.track(root, msg_id, at, acc.get(), deadline, 1);
                } else {
                    // Nothing subscribed: the tree is complete at once.
                    self.tracker.immediate.push((msg_id, true, 1));
                }
                self.outbox.flush_full();
            }
        }
        Ok(())
    }

    /// Emits several tuples on the default stream as ONE message: with a message id (and
    /// acking on) they form one tree, and the spout is told `ack(id)` once every tuple's
    /// tree is done, or `fail(id)` if any failed or timed out. For a source whose unit of
    /// reading holds many messages (the lines of one read): one ledger entry, one timeout
    /// and one outcome for all of them. Counts (acked, failed, pending) are in tuples.
    /// Returns the number of tuples emitted; an error emits nothing further (the tuples
    /// already emitted stay in the tree).
    pub fn emit_message<I>(&mut self, tuples: I, msg_id: Option<u64>) -> ComponentResult<usize>
    where
        I: IntoIterator,
        I::Item: Into<Values>,
    {
        self.message(tuples, msg_id, None)
    }

    /// `emit_message`, its complete latency measured from `due` if given.
    fn message<I>(
        &mut self,
        tuples: I,
        msg_id: Option<u64>,
        due: Option<Instant>,
    ) -> ComponentResult<usize>
    where
        I: IntoIterator,
        I::Item: Into<Values>,
    {
        let sid = self.outbox.stream_id(None)?;
        let (root, xor, (n, res)) = self.as_message(msg_id, |c, parents| {
            let mut n = 0u32;
            let mut res = Ok(());
            for values in tuples {
                let values = values.into();
                if let Some(t) = &mut c.time {
                    c.outbox.event_time = t.time_of(c.outbox, sid, &values);
                }
                let r = c.outbox.emit(sid, values, parents, None);
                c.outbox.event_time = crate::data::tuple::NO_TIME;
                if let Err(e) = r {
                    res = Err(e);
                    break;
                }
                if let Some(o) = &mut c.tracker.origins {
                    o.push(due.unwrap_or(c.tracker.now));
                }
                n += 1;
            }
            (n, res)
        });
        self.track_message(root, msg_id, xor, n, due);
        self.outbox.flush_full();
        res?;
        Ok(n as usize)
    }

    /// Runs `emit` with the parents a new message's tuples are anchored to: its root (none
    /// without a message id, with acking off, or in micro-batch mode). Returns the root,
    /// the XOR of the edges emitted under it, and what `emit` returned.
    fn as_message<R>(
        &mut self,
        msg_id: Option<u64>,
        emit: impl FnOnce(&mut Self, &[Parent<'_>]) -> R,
    ) -> (Option<u64>, u64, R) {
        let tracked = msg_id.filter(|_| self.ledger.is_some() && self.tracker.origins.is_none());
        let root = tracked.map(|_| root_id(self.outbox.next_id(), self.slot));
        let acc = Cell::new(0u64);
        let anchor = [Anchor {
            root: root.unwrap_or(0),
            edge: 0,
        }];
        let parents: &[Parent<'_>] = match root {
            Some(_) => &[(&anchor, &acc)],
            None => &[],
        };
        let r = emit(self, parents);
        (root, acc.get(), r)
    }

    /// Tracks the tree of a message of `n` tuples whose edges XOR to `xor` (complete
    /// latency from `due`, else now); one that has no tree (acking off, micro-batch
    /// mode, nothing subscribed or nothing emitted) is done once emitted.
    fn track_message(
        &mut self,
        root: Option<u64>,
        msg_id: Option<u64>,
        xor: u64,
        n: u32,
        due: Option<Instant>,
    ) {
        let Some(msg_id) = msg_id else {
            return;
        };
        match root {
            Some(root) if xor != 0 => {
                let deadline = self.tracker.now_ms + self.timeout_ms;
                let at = due.unwrap_or(self.tracker.now);
                self.tracker.track(root, msg_id, at, xor, deadline, n);
            }
            _ => self.tracker.immediate.push((msg_id, true, n)),
        }
    }

    /// `emit_message` for rows held as columns (`crate::data::columns`): the tuples
    /// `rows.row(0)`, `rows.row(1)`, ... as one message. In event mode they travel as
    /// one chunk to each subscribing task, and a bolt with a columnar path
    /// (`Bolt::execute_columns`) takes them at once; the others get them as tuples.
    /// The message is acked or failed whole, as with `emit_message`. A spout that assigns
    /// event time, and micro-batch mode, emit the rows as tuples.
    pub fn emit_rows(&mut self, rows: Columns, msg_id: Option<u64>) -> ComponentResult<usize> {
        self.rows(rows, msg_id, None)
    }

    /// `emit_rows` for rows that were due at different times (a paced source that fell
    /// behind): complete latency is measured from `due`, when the first of them was due,
    /// so it is never understated.
    pub fn emit_rows_at(
        &mut self,
        rows: Columns,
        msg_id: Option<u64>,
        due: Instant,
    ) -> ComponentResult<usize> {
        self.rows(rows, msg_id, Some(due))
    }

    fn rows(
        &mut self,
        rows: Columns,
        msg_id: Option<u64>,
        due: Option<Instant>,
    ) -> ComponentResult<usize> {
        if self.time.is_some() || self.tracker.origins.is_some() {
            return self.message((0..rows.rows()).map(|i| rows.row(i)), msg_id, due);
        }
        let sid = self.outbox.stream_id(None)?;
        let n = rows.rows() as u32;
        let (root, xor, sent) =
            self.as_message(msg_id, |c, parents| c.outbox.emit_chunk(sid, rows, parents));
        // An error sends nothing: no tree.
        let sent = sent?;
        self.track_message(root, msg_id, xor, n, due);
        Ok(sent)
    }

    /// Micro-batch mode: tuples emitted into the batch being cut.
    pub(crate) fn batch_len(&self) -> usize {
        self.tracker
            .origins
            .as_ref()
            .map_or(0, |o| o.len() as usize)
    }

    /// This task's spout tuples whose trees are in flight.
    pub fn pending(&self) -> usize {
        self.tracker.pending.tuples()
    }

    /// How many more spout tuples this task may put in flight now: `max_spout_pending`
    /// less the tuples whose trees are in flight (`usize::MAX` where trees are not
    /// tracked: acking off; in micro-batch mode, what the batch being cut may still
    /// take). The runtime stops calling `next_tuple` at
    /// the limit; a spout that emits several tuples in one call emits at most this many
    /// to stay within it.
    pub fn room(&self) -> usize {
        if let Some(o) = &self.tracker.origins {
            // Micro-batch mode: what the batch being cut may still take.
            return self.max_pending.saturating_sub(o.len() as usize);
        }
        if self.ledger.is_none() {
            return usize::MAX;
        }
        self.max_pending
            .saturating_sub(self.tracker.pending.tuples())
    }
}
