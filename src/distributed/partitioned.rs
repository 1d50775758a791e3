//! The per-partition wrapper of a bolt behind a distributed input: one instance of the
//! bolt per partition of the repartition topic this process holds, created when the
//! partition is assigned (restored from the changelog) and dropped when it is revoked, so
//! state moves with its partition (Kafka Streams' tasks).
//!
//! Every tuple behind a distributed input carries the partition it comes from
//! ([`IN_PARTITION`]); the wrapper hands it to that partition's bolt, and appends the
//! partition to what the bolt emits, so the next wrapped bolt downstream (routed by the
//! same field) finds the same partition. Partition events (assigned, revoked, ended) come
//! from the reader on [`CONTROL_STREAM`] and are passed on downstream.
//!
//! The *head* (the bolt fed by the reader) also keeps its partitions' state in the
//! changelog: it acks its inputs only once a snapshot that contains them is confirmed by
//! the broker (every [`SNAPSHOT_INTERVAL`], or sooner when many inputs wait), so the
//! reader's commits never pass state that is not in the changelog; each snapshot records
//! the last input offset it contains, so the partition's next holder resumes exactly
//! after it.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::component::collector::{BoltCollector, Scope};
use crate::component::{
    AckMode, Bolt, BoltFactory, ComponentError, ComponentResult, OutputDeclarer, TaskContext,
};
use crate::data::tuple::{Fields, Tuple, Value, Values};
use crate::distributed::changelog::{ChangelogWriter, Snapshot};
use crate::distributed::names::{CONTROL_FIELDS, CONTROL_STREAM, IN_OFFSET, IN_PARTITION};
use crate::distributed::wire::EndMarker;

/// How often the head writes the snapshots of partitions that changed.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(50);
/// Inputs waiting for a snapshot, at most, before one is written at once.
pub const SNAPSHOT_AFTER: usize = 256;
/// How long a revocation or the end of the run waits for snapshots to be confirmed.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(15);

/// Partition events on [`CONTROL_STREAM`]: `(event, partition, offset, data)`.
pub mod event {
    /// The partition is now held here; offset: the last input offset in the restored
    /// state (-1: none); data: `[epoch, state bytes or null, [[topic, partition, of], ..]]`
    /// (the end markers read so far).
    pub const ASSIGNED: &str = "assigned";
    /// The partition is no longer held here.
    pub const REVOKED: &str = "revoked";
    /// An end marker at this offset; data: `[topic, partition, of]`.
    pub const MARKED: &str = "marked";
    /// The end marker that completes the partition's input (tracked: its tree holds
    /// everything the bolts emit at the end).
    pub const ENDED: &str = "ended";
}

/// The end marker of a MARKED or ENDED event's data.
pub fn marker_of(data: Option<&Value>) -> Option<EndMarker> {
    let l = data?.as_list()?;
    Some(EndMarker {
        topic: l.first()?.as_str()?.to_string(),
        partition: i32::try_from(l.get(1)?.as_int()?).ok()?,
        of: i32::try_from(l.get(2)?.as_int()?).ok()?,
    })
}

/// A MARKED or ENDED event's data.
pub fn marker_value(m: &EndMarker) -> Value {
    Value::List(
        vec![
            Value::from(m.topic.as_str()),
            Value::Int(i64::from(m.partition)),
            Value::Int(i64::from(m.of)),
        ]
        .into(),
    )
}

/// Where the head keeps its changelog.
#[derive(Clone, Debug)]
pub struct Changelog {
    pub brokers: String,
    pub properties: BTreeMap<String, String>,
    pub topic: String,
}

/// How one bolt is wrapped.
#[derive(Clone)]
pub struct Wrapping {
    pub component: String,
    pub factory: BoltFactory,
    /// The bolt is fed by the reader: its state goes to this changelog.
    pub changelog: Option<Changelog>,
    /// Append the partition to what the bolt emits (a wrapped bolt or a writer of the
    /// next hop reads it).
    pub tag: bool,
    /// The partials a merge (`total_rank`) waits for per window: the partition count of
    /// the hop before (each of its partitions sends one).
    pub expected_partials: Option<usize>,
}

struct Part {
    bolt: Box<dyn Bolt>,
    epoch: u64,
    /// The last input offset applied to the state (head only).
    applied: i64,
    dirty: bool,
    /// Inputs applied and not yet in a confirmed snapshot (head only).
    held: Vec<Tuple>,
    /// The end markers read (head only; kept in the snapshots).
    ends: Vec<EndMarker>,
    ended: bool,
    last_tick: Instant,
}

pub struct PartitionedBolt {
    w: Wrapping,
    ctx: Option<TaskContext>,
    parts: BTreeMap<i64, Part>,
    writer: Option<ChangelogWriter>,
    /// Snapshots sent, by delivery id: their partition and the inputs they cover.
    in_flight: HashMap<u64, (i64, Vec<Tuple>)>,
    held_total: usize,
    last_snapshot: Instant,
    inner_tick: Option<Duration>,
}

impl PartitionedBolt {
    pub fn new(w: Wrapping) -> Self {
        let inner_tick = (w.factory)().tick_interval();
        PartitionedBolt {
            w,
            ctx: None,
            parts: BTreeMap::new(),
            writer: None,
            in_flight: HashMap::new(),
            held_total: 0,
            last_snapshot: Instant::now(),
            inner_tick,
        }
    }

    fn is_head(&self) -> bool {
        self.w.changelog.is_some()
    }

    fn scope(&self, p: i64, anchor: Option<&Tuple>) -> Scope {
        Scope {
            tag: self.w.tag.then_some(Value::Int(p)),
            anchor: anchor.map(|t| (t.anchors.clone(), Cell::new(0))),
        }
    }

    /// Runs `f` on partition `p`'s bolt inside its scope; emits join `anchor`'s trees.
    fn call(
        &mut self,
        p: i64,
        anchor: Option<&Tuple>,
        out: &mut BoltCollector<'_>,
        f: impl FnOnce(&mut dyn Bolt, &mut BoltCollector<'_>) -> ComponentResult,
    ) -> ComponentResult {
        let scope = self.scope(p, anchor);
        let Some(part) = self.parts.get_mut(&p) else {
            return Ok(());
        };
        let prev = out.set_scope(scope);
        let r = f(part.bolt.as_mut(), out);
        let used = out.set_scope(prev);
        if let (Some(t), Some((_, v))) = (anchor, used.anchor) {
            t.ack_val.set(t.ack_val.get() ^ v.get());
        }
        r
    }

    fn new_bolt(&self) -> Result<Box<dyn Bolt>, ComponentError> {
        let mut b = (self.w.factory)();
        if let Some(ctx) = &self.ctx {
            b.prepare(ctx)?;
        }
        Ok(b)
    }

    fn new_part(&self, epoch: u64, applied: i64) -> Result<Part, ComponentError> {
        Ok(Part {
            bolt: self.new_bolt()?,
            epoch,
            applied,
            dirty: false,
            held: Vec::new(),
            ends: Vec::new(),
            ended: false,
            last_tick: Instant::now(),
        })
    }

    /// Passes a partition event on to the wrapped bolts downstream.
    fn forward(
        &self,
        input: &Tuple,
        anchored: bool,
        out: &mut BoltCollector<'_>,
    ) -> ComponentResult {
        let values: Values = input.values().iter().cloned().collect();
        if anchored {
            out.emit_anchored_to(CONTROL_STREAM, &[input], values)
        } else {
            out.emit_unanchored(CONTROL_STREAM, values)
        }
    }

    /// Sends the snapshots of the partitions that changed (head only); inputs with a
    /// bolt that keeps no state are acked at once.
    fn snapshot_dirty(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        self.last_snapshot = Instant::now();
        let Some(writer) = &mut self.writer else {
            return Ok(());
        };
        for (&p, part) in self.parts.iter_mut().filter(|(_, part)| part.dirty) {
            part.dirty = false;
            let held = std::mem::take(&mut part.held);
            self.held_total -= held.len();
            let state = match part.bolt.snapshot() {
                None => Vec::new(),
                Some(s) => s?,
            };
            let snap = Snapshot {
                epoch: part.epoch,
                offset: part.applied,
                ends: part.ends.clone(),
                state,
            };
            match writer.send(p as i32, &snap) {
                Ok(id) => {
                    self.in_flight.insert(id, (p, held));
                }
                Err(e) => {
                    for t in &held {
                        out.fail(t);
                    }
                    return Err(e.to_string().into());
                }
            }
        }
        Ok(())
    }

    /// Acks the inputs of confirmed snapshots; a failed snapshot keeps its inputs for the
    /// next one (their effect is in the state already).
    fn settle(&mut self, reports: Vec<(u64, Result<(), String>)>, out: &mut BoltCollector<'_>) {
        for (id, r) in reports {
            let Some((p, held)) = self.in_flight.remove(&id) else {
                continue;
            };
            match r {
                Ok(()) => {
                    for t in &held {
                        out.ack(t);
                    }
                }
                Err(e) => {
                    tracing::warn!(component = %self.w.component, partition = p, "changelog write failed ({e}); retrying with the next snapshot");
                    match self.parts.get_mut(&p) {
                        Some(part) => {
                            part.dirty = true;
                            self.held_total += held.len();
                            part.held.extend(held);
                        }
                        // Revoked meanwhile: its next holder replays them.
                        None => held.iter().for_each(|t| out.fail(t)),
                    }
                }
            }
        }
    }

    /// Writes every pending snapshot and waits for them (revocation, end of run).
    fn flush(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        self.snapshot_dirty(out)?;
        let reports = match &self.writer {
            Some(w) if !self.in_flight.is_empty() => w.flush(FLUSH_TIMEOUT),
            _ => return Ok(()),
        };
        self.settle(reports, out);
        Ok(())
    }

    fn control(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        let event = input
            .value(0)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let Some(p) = input.value(1).and_then(Value::as_int) else {
            return Err(format!(
                "{}: a partition event without a partition",
                self.w.component
            )
            .into());
        };
        match event.as_str() {
            event::ASSIGNED => {
                let applied = input.value(2).and_then(Value::as_int).unwrap_or(-1);
                let data = input.value(3).and_then(Value::as_list).unwrap_or_default();
                let epoch = data.first().and_then(Value::as_int).unwrap_or(1).max(1) as u64;
                if self.is_head() {
                    let mut part = self.new_part(epoch, applied)?;
                    if let Some(state) = data.get(1).and_then(Value::as_bytes)
                        && !state.is_empty()
                    {
                        part.bolt.restore(state).map_err(|e| {
                            format!(
                                "{}: cannot restore partition {p} from its changelog: {e}",
                                self.w.component
                            )
                        })?;
                    }
                    part.ends = data
                        .get(2)
                        .and_then(Value::as_list)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|m| marker_of(Some(m)))
                        .collect();
                    // Ended, and its end got through: nothing more to do for it.
                    part.ended = data.get(3).and_then(Value::as_bool).unwrap_or(false);
                    self.parts.insert(p, part);
                } else if !self.parts.contains_key(&p) {
                    let part = self.new_part(epoch, -1)?;
                    self.parts.insert(p, part);
                }
                self.forward(&input, false, out)?;
                out.ack(&input);
            }
            event::REVOKED => {
                if self.is_head() {
                    // Its state up to the last input applied, for the next holder.
                    self.flush(out)?;
                }
                if let Some(mut part) = self.parts.remove(&p) {
                    self.held_total -= part.held.len();
                    for t in &part.held {
                        out.ack(t);
                    }
                    part.bolt.cleanup();
                }
                self.forward(&input, false, out)?;
                out.ack(&input);
            }
            event::MARKED => {
                let head = self.is_head();
                let offset = input.value(2).and_then(Value::as_int).unwrap_or(-1);
                match self.parts.get_mut(&p) {
                    Some(part) if head && offset > part.applied => {
                        if let Some(m) = marker_of(input.value(3))
                            && !part.ends.contains(&m)
                        {
                            part.ends.push(m);
                        }
                        part.applied = offset;
                        part.dirty = true;
                        part.held.push(input);
                        self.held_total += 1;
                    }
                    _ => out.ack(&input),
                }
            }
            event::ENDED => {
                let head = self.is_head();
                if !head && !self.parts.contains_key(&p) {
                    let part = self.new_part(1, -1)?;
                    self.parts.insert(p, part);
                }
                if !self.parts.contains_key(&p) {
                    // Revoked meanwhile: its next holder ends it.
                    out.ack(&input);
                    return Ok(());
                }
                self.call(p, Some(&input), out, |b, out| b.finish(out))?;
                self.forward(&input, true, out)?;
                let offset = input.value(2).and_then(Value::as_int).unwrap_or(-1);
                if let Some(part) = self.parts.get_mut(&p) {
                    part.ended = true;
                    if head {
                        if let Some(m) = marker_of(input.value(3))
                            && !part.ends.contains(&m)
                        {
                            part.ends.push(m);
                        }
                        part.applied = part.applied.max(offset);
                        part.dirty = true;
                        part.held.push(input);
                        self.held_total += 1;
                        return self.snapshot_dirty(out);
                    }
                }
                out.ack(&input);
            }
            other => {
                return Err(
                    format!("{}: unknown partition event `{other}`", self.w.component).into(),
                );
            }
        }
        Ok(())
    }
}

impl Bolt for PartitionedBolt {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        let mut inner = OutputDeclarer::default();
        (self.w.factory)().declare_outputs(&mut inner);
        for (stream, fields) in &inner.streams {
            let mut names: Vec<&str> = fields.names().collect();
            if self.w.tag {
                names.push(IN_PARTITION);
            }
            out.declare_stream(stream, Fields::new(names));
        }
        out.declare_stream(CONTROL_STREAM, Fields::new(CONTROL_FIELDS));
    }

    fn prepare(&mut self, ctx: &TaskContext) -> ComponentResult {
        let mut inner = ctx.clone();
        // Each partition's bolt has exactly one sender per partition upstream.
        inner.upstream_tasks = 1;
        inner.expected_partials = self.w.expected_partials;
        self.ctx = Some(inner);
        if let Some(c) = &self.w.changelog {
            self.writer = Some(
                ChangelogWriter::new(&c.brokers, &c.properties, &c.topic)
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(())
    }

    fn ack_mode(&self) -> AckMode {
        AckMode::Manual
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        if input.source_stream() == CONTROL_STREAM {
            return self.control(input, out);
        }
        let Some(p) = input.get(IN_PARTITION).and_then(Value::as_int) else {
            return Err(format!(
                "{}: an input without `{IN_PARTITION}` (fields {})",
                self.w.component,
                input.fields()
            )
            .into());
        };
        if !self.is_head() {
            if !self.parts.contains_key(&p) {
                let part = self.new_part(1, -1)?;
                self.parts.insert(p, part);
            }
            let copy = input.duplicate();
            self.call(p, Some(&input), out, |b, out| b.execute(copy, out))?;
            out.ack(&input);
            return Ok(());
        }
        let offset = input
            .get(IN_OFFSET)
            .and_then(Value::as_int)
            .unwrap_or(i64::MAX);
        match self.parts.get(&p) {
            // Not held here (revoked meanwhile): its next holder reads it again.
            None => {
                out.ack(&input);
                return Ok(());
            }
            // Already in the state (a replay after a failure downstream).
            Some(part) if offset <= part.applied => {
                out.ack(&input);
                return Ok(());
            }
            Some(_) => {}
        }
        let copy = input.duplicate();
        self.call(p, Some(&input), out, |b, out| b.execute(copy, out))?;
        if let Some(part) = self.parts.get_mut(&p) {
            part.applied = offset;
            part.dirty = true;
            part.held.push(input);
            self.held_total += 1;
        }
        if self.held_total >= SNAPSHOT_AFTER {
            self.snapshot_dirty(out)?;
        }
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(10))
    }

    fn tick(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        if let Some(every) = self.inner_tick {
            let due: Vec<i64> = self
                .parts
                .iter()
                .filter(|(_, part)| !part.ended && part.last_tick.elapsed() >= every)
                .map(|(p, _)| *p)
                .collect();
            for p in due {
                if let Some(part) = self.parts.get_mut(&p) {
                    part.last_tick = Instant::now();
                }
                // A window that slides needs no snapshot: a restored one slides on its
                // first tick.
                self.call(p, None, out, |b, out| b.tick(out))?;
            }
        }
        if let Some(w) = &self.writer {
            let reports = w.confirmed();
            self.settle(reports, out);
            if self.last_snapshot.elapsed() >= SNAPSHOT_INTERVAL {
                self.snapshot_dirty(out)?;
            }
        }
        Ok(())
    }

    /// The run stops. A partition ends only with its input (an ENDED event): when this
    /// instance stops earlier, its partitions move to others, who carry on from the
    /// changelog, so nothing is flushed downstream here; the state is written.
    fn finish(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        self.flush(out)
    }

    fn cleanup(&mut self) {
        for part in self.parts.values_mut() {
            part.bolt.cleanup();
        }
    }
}
