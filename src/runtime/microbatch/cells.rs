//! The tasks of a micro-batch run: spout tasks cut (or re-emit) their share of a batch,
//! bolt tasks run theirs; both hand their output over as vectors, per target task.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::component::SpoutFactory;
use crate::component::collector::SpoutCollector;
use crate::component::transactional::BatchInfo;
use crate::component::{Spout, SpoutStatus, TaskContext};
use crate::data::columns::ColumnChunks;
use crate::data::due::DueTimes;
use crate::metrics::TaskMetrics;
use crate::runtime::microbatch::batch_stage::run_batch;
use crate::runtime::stage::{Outcome, Stage};
use crate::state::TaskState;
use crate::task::delivery::Delivery;
use crate::task::ledger::Tracker;
use crate::task::outbox::Outbox;
use crate::task::panic_message;
use crate::task::source_time::SourceTime;
use crate::time::event_time::EventTimeConfig;
use crate::time::watermark::WatermarkStatus;

/// Output of one task for one batch: (target task id, tuples and column chunks).
pub(super) type Routed = Vec<(u32, Delivery)>;

/// What one cut emitted: the routed tuples, when each was due, and the message ids given.
struct Cut {
    routed: Routed,
    origins: DueTimes,
    msg_ids: Vec<u64>,
}

/// What a spout task keeps of a batch until it commits.
#[derive(Default)]
struct Held {
    /// Transactional spouts: the metadata that re-emits the batch.
    meta: Option<Json>,
    /// Other spouts: a copy of what the batch sent, and the message ids to ack.
    copy: Option<Routed>,
    msg_ids: Vec<u64>,
    /// When each tuple was due (complete latency is measured from there).
    origins: DueTimes,
}

pub(super) struct SpoutCell {
    pub(super) ctx: TaskContext,
    factory: SpoutFactory,
    spout: Box<dyn Spout>,
    outbox: Outbox,
    metrics: TaskMetrics,
    /// Uncommitted batches, by txid.
    held: BTreeMap<u64, Held>,
    /// Metadata of the last batch this task cut (a new batch starts after it).
    last_meta: Option<Json>,
    pub(super) exhausted: bool,
    /// The last new batch this task cut reached the maximum size (the source is behind).
    pub(super) full: bool,
    pub(super) transactional: bool,
    /// `component/index`: the key of this task's metadata in batch records.
    pub(super) key: String,
    /// Event time (the spout's `event_time` option): the time of each message and the
    /// task's watermark.
    time: Option<SourceTime>,
}

/// A spout task's event-time watermark after a cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TaskWatermark {
    /// The spout assigns no event time.
    Untimed,
    /// Every source of the task has been idle for its `idle_timeout`: it holds nothing
    /// back.
    Idle,
    /// Ms since the Unix epoch (`i64::MIN`: nothing seen yet; `i64::MAX`: ended).
    At(i64),
}

/// How long a cut waits before polling again a spout that had nothing (`Idle`).
const IDLE_POLL: Duration = Duration::from_millis(1);

/// Why a cut failed.
pub(super) type CellError = String;

fn drain(outbox: &mut Outbox) -> Routed {
    let mut out = Vec::new();
    outbox.take_outputs(|t, v| out.push((t, v)));
    out
}

impl SpoutCell {
    pub(super) fn new(
        ctx: TaskContext,
        factory: SpoutFactory,
        outbox: Outbox,
        metrics: TaskMetrics,
        event_time: Option<EventTimeConfig>,
    ) -> Self {
        let time = event_time.map(|cfg| SourceTime::new(cfg, ctx.counter("no_event_time")));
        let mut spout = factory();
        let transactional = spout.transactional().is_some();
        let key = format!("{}/{}", ctx.component(), ctx.task_index());
        SpoutCell {
            ctx,
            factory,
            spout,
            outbox,
            metrics,
            held: BTreeMap::new(),
            last_meta: None,
            exhausted: false,
            full: false,
            transactional,
            key,
            time,
        }
    }

    /// Event time: the task's watermark after its last cut (`i64::MAX` once exhausted).
    pub(super) fn watermark(&mut self) -> TaskWatermark {
        let Some(t) = &mut self.time else {
            return TaskWatermark::Untimed;
        };
        if self.exhausted {
            t.end();
        }
        match t.status() {
            WatermarkStatus::Active(w) => TaskWatermark::At(w),
            WatermarkStatus::Idle => TaskWatermark::Idle,
        }
    }

    pub(super) fn label(&self) -> String {
        format!("{}[{}]", self.ctx.component(), self.ctx.task_id())
    }

    pub(super) fn open(&mut self) -> Result<(), CellError> {
        let (spout, ctx) = (&mut self.spout, &self.ctx);
        match catch_unwind(AssertUnwindSafe(|| spout.open(ctx))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("spout {} failed to open: {e}", self.label())),
            Err(p) => Err(format!(
                "spout {} panicked in open: {}",
                self.label(),
                panic_message(&p)
            )),
        }
    }

    /// After a restart: the batches recorded but not committed, and the last one cut.
    pub(super) fn restore(&mut self, pending: Vec<(u64, Json)>, last: Option<Json>) {
        for (txid, meta) in pending {
            self.held.insert(
                txid,
                Held {
                    meta: Some(meta),
                    ..Held::default()
                },
            );
        }
        self.last_meta = last;
    }

    /// Emits this task's share of batch `info`: the same tuples again when the batch was
    /// emitted before, else a new cut of at most `max` tuples. Returns what it sent and,
    /// for a new batch of a transactional spout, its metadata.
    pub(super) fn emit(
        &mut self,
        info: &BatchInfo,
        max: usize,
        cut_for: Duration,
    ) -> Result<(Routed, Option<Json>), CellError> {
        if let Some(h) = self.held.get(&info.txid) {
            if let Some(copy) = &h.copy {
                let again = copy.iter().map(|(t, d)| (*t, d.duplicate())).collect();
                return Ok((again, None));
            }
            if let Some(meta) = h.meta.clone() {
                // Columns carry no event time: a spout that assigns it emits tuples.
                let timed = self.time.is_some();
                let replayed = match self.guarded(|s| {
                    s.transactional()
                        .filter(|_| !timed)
                        .and_then(|ts| ts.replay_columns(info, &meta))
                })? {
                    Some(chunks) => self.emit_chunks(chunks)?,
                    None => self.with_collector(|spout, col| match spout.transactional() {
                        Some(ts) => ts.replay_batch(info, &meta, col).map_err(|e| e.to_string()),
                        None => Err("not transactional".into()),
                    })?,
                };
                if let Some(h) = self.held.get_mut(&info.txid)
                    && h.origins.is_empty()
                {
                    h.origins = replayed.origins;
                }
                return Ok((replayed.routed, None));
            }
        }
        if self.transactional {
            let prev = self.last_meta.clone();
            let mut cut = None;
            let timed = self.time.is_some();
            let columnar = self.guarded(|s| {
                s.transactional()
                    .filter(|_| !timed)
                    .and_then(|ts| ts.emit_columns(info, prev.as_ref(), max))
            })?;
            let cut_out = match columnar {
                Some((chunks, c)) => {
                    cut = Some(c);
                    self.emit_chunks(chunks)?
                }
                None => self.with_collector(|spout, col| match spout.transactional() {
                    Some(ts) => {
                        cut = Some(
                            ts.emit_batch(info, prev.as_ref(), max, col)
                                .map_err(|e| e.to_string())?,
                        );
                        Ok(())
                    }
                    None => Err("not transactional".into()),
                })?,
            };
            let Some(cut) = cut else {
                return Err(format!("spout {}: no batch metadata", self.label()));
            };
            self.exhausted = cut.exhausted;
            self.full = cut_out.origins.len() >= max as u64;
            self.last_meta = Some(cut.meta.clone());
            self.held.insert(
                info.txid,
                Held {
                    meta: Some(cut.meta.clone()),
                    origins: cut_out.origins,
                    ..Held::default()
                },
            );
            return Ok((cut_out.routed, Some(cut.meta)));
        }
        // A spout that cannot replay: cut by polling for the batch's interval (a source
        // with nothing now, e.g. a socket whose reader is behind, is waited for), keep a
        // copy until the commit.
        let deadline = Instant::now() + cut_for;
        let mut status = SpoutStatus::Idle;
        let mut waited = Duration::ZERO;
        let cut = self.with_collector(|spout, col| {
            let mut calls = 0u32;
            loop {
                status = spout.next_tuple(col);
                calls += 1;
                let wake_at = match status {
                    SpoutStatus::Emitted => {
                        if col.batch_len() >= max
                            || (calls.is_multiple_of(64) && Instant::now() >= deadline)
                        {
                            return Ok(());
                        }
                        continue;
                    }
                    SpoutStatus::Exhausted => return Ok(()),
                    SpoutStatus::Idle => Instant::now() + IDLE_POLL,
                    SpoutStatus::IdleUntil(t) => t,
                };
                let now = Instant::now();
                if now >= deadline {
                    return Ok(());
                }
                let nap = wake_at.min(deadline).saturating_duration_since(now);
                std::thread::sleep(nap);
                waited += nap;
            }
        })?;
        self.metrics.local.busy_ns = self
            .metrics
            .local
            .busy_ns
            .saturating_sub(waited.as_nanos() as u64);
        if status == SpoutStatus::Exhausted {
            self.exhausted = true;
        }
        self.full = cut.origins.len() >= max as u64;
        let copy = cut
            .routed
            .iter()
            .map(|(t, d)| (*t, d.duplicate()))
            .collect();
        self.held.insert(
            info.txid,
            Held {
                copy: Some(copy),
                msg_ids: cut.msg_ids,
                origins: cut.origins,
                ..Held::default()
            },
        );
        Ok((cut.routed, None))
    }

    /// Runs a columnar call of the spout: `Ok(None)` when it has no columnar path; an
    /// error or a panic fails the cut (a panic replaces the spout, as `with_collector`).
    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Spout) -> Option<Result<T, crate::component::ComponentError>>,
    ) -> Result<Option<T>, CellError> {
        let spout = &mut self.spout;
        match catch_unwind(AssertUnwindSafe(|| f(spout.as_mut()))) {
            Ok(None) => Ok(None),
            Ok(Some(Ok(v))) => Ok(Some(v)),
            Ok(Some(Err(e))) => Err(format!("spout {}: {e}", self.label())),
            Err(p) => Err(self.replace_spout(&p)),
        }
    }

    /// Sends the rows of a columnar spout to its subscribers.
    fn emit_chunks(&mut self, chunks: ColumnChunks) -> Result<Cut, CellError> {
        let started = Instant::now();
        let sid = self
            .outbox
            .stream_id(None)
            .map_err(|e| format!("spout {}: {e}", self.label()))?;
        let mut made = chunks.chunks;
        loop {
            // The spout's code makes the chunk: guarded like its other calls.
            let c = match catch_unwind(AssertUnwindSafe(|| made.next())) {
                Ok(None) => break,
                Ok(Some(c)) => c.map_err(|e| format!("spout {}: {e}", self.label()))?,
                Err(p) => return Err(self.replace_spout(&p)),
            };
            self.outbox
                .emit_columns(sid, c)
                .map_err(|e| format!("spout {}: {e}", self.label()))?;
        }
        let routed = drain(&mut self.outbox);
        self.metrics.local.emitted += std::mem::take(&mut self.outbox.emitted);
        self.metrics.local.busy_ns += started.elapsed().as_nanos() as u64;
        Ok(Cut {
            routed,
            origins: chunks.due,
            msg_ids: Vec::new(),
        })
    }

    /// After a panic: a fresh spout instance, opened; returns the error to report.
    fn replace_spout(&mut self, p: &Box<dyn std::any::Any + Send>) -> CellError {
        self.metrics.local.restarts += 1;
        self.spout = (self.factory)();
        let reopened = self.open();
        format!(
            "spout {} panicked: {}{}",
            self.label(),
            panic_message(p),
            reopened.err().map(|e| format!("; {e}")).unwrap_or_default()
        )
    }

    /// Runs `f` with a collector that records when each tuple was due; returns what was
    /// sent, those times and the message ids.
    fn with_collector(
        &mut self,
        f: impl FnOnce(&mut dyn Spout, &mut SpoutCollector<'_>) -> Result<(), CellError>,
    ) -> Result<Cut, CellError> {
        let started = Instant::now();
        let mut tracker = Tracker {
            origins: Some(DueTimes::new()),
            ..Default::default()
        };
        let res = {
            let mut col = SpoutCollector {
                outbox: &mut self.outbox,
                ledger: None,
                tracker: &mut tracker,
                slot: 0,
                timeout_ms: 0,
                max_pending: usize::MAX,
                time: self.time.as_mut(),
            };
            let spout = &mut self.spout;
            catch_unwind(AssertUnwindSafe(|| f(spout.as_mut(), &mut col)))
        };
        let routed = drain(&mut self.outbox);
        self.metrics.local.emitted += std::mem::take(&mut self.outbox.emitted);
        self.metrics.local.busy_ns += started.elapsed().as_nanos() as u64;
        let cut = Cut {
            routed,
            origins: tracker.origins.take().unwrap_or_default(),
            msg_ids: tracker.immediate.iter().map(|(id, _, _)| *id).collect(),
        };
        match res {
            Ok(Ok(())) => Ok(cut),
            Ok(Err(e)) => Err(format!("spout {}: {e}", self.label())),
            Err(p) => Err(self.replace_spout(&p)),
        }
    }

    /// Batch `txid` failed: its tuples count as failed (the batch is emitted again).
    pub(super) fn failed(&mut self, txid: u64) {
        if let Some(h) = self.held.get(&txid) {
            self.metrics.local.failed += h.origins.len();
        }
        self.metrics.publish();
    }

    /// Batch `txid` committed: ack its messages, record complete latency, release it.
    pub(super) fn commit(&mut self, txid: u64, now: Instant) {
        let Some(h) = self.held.remove(&txid) else {
            return;
        };
        let m = &mut self.metrics.local;
        m.acked += h.origins.len();
        for (due, n) in h.origins.runs() {
            m.complete_ns
                .record_n(now.saturating_duration_since(due).as_nanos() as u64, n)
                .ok();
        }
        let spout = &mut self.spout;
        let res = catch_unwind(AssertUnwindSafe(|| {
            if let Some(meta) = &h.meta
                && let Some(ts) = spout.transactional()
            {
                ts.commit_batch(txid, meta);
            }
            for id in &h.msg_ids {
                spout.ack(*id);
            }
        }));
        if let Err(p) = res {
            tracing::error!(task = %self.label(), "spout panicked in commit: {}", panic_message(&p));
            self.metrics.local.restarts += 1;
        }
        self.publish();
    }

    /// Publishes the metrics; `pending` is the tuples of uncommitted batches.
    pub(super) fn publish(&mut self) {
        self.metrics.local.pending = self.held.values().map(|h| h.origins.len()).sum();
        self.metrics.publish();
    }

    pub(super) fn close(&mut self) {
        let spout = &mut self.spout;
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| spout.close())) {
            tracing::error!(task = %self.label(), "close panicked: {}", panic_message(&p));
        }
        self.metrics.publish();
    }
}

pub(super) struct BoltCell {
    /// The task's bolt, and the bolt chained into it, if any.
    pub(super) stages: Vec<Stage>,
    pub(super) states: Vec<Arc<TaskState>>,
}

impl BoltCell {
    pub(super) fn label(&self) -> String {
        self.stages
            .iter()
            .map(Stage::label)
            .collect::<Vec<_>>()
            .join("+")
    }

    /// Runs this task's share of a batch; returns what it sent.
    pub(super) fn run(
        &mut self,
        info: &BatchInfo,
        input: Delivery,
        last: bool,
    ) -> Result<Routed, CellError> {
        let outcome = run_batch(&mut self.stages, info, input, last);
        let mut routed = Vec::new();
        for s in self.stages.iter_mut() {
            s.outbox.local.clear();
            s.outbox.local_cols.clear();
            routed.extend(drain(&mut s.outbox));
            s.metrics.local.emitted += std::mem::take(&mut s.outbox.emitted);
            s.metrics.publish();
        }
        match outcome {
            Outcome::Ok => Ok(routed),
            Outcome::Failed(e) => Err(format!(
                "bolt {} failed batch {}: {e}",
                self.label(),
                info.txid
            )),
            Outcome::Panicked(e) => Err(format!(
                "bolt {} panicked in batch {}: {e}",
                self.label(),
                info.txid
            )),
        }
    }

    /// Back to the committed state: pending writes dropped, a fresh bolt instance.
    pub(super) fn reset(&mut self, control: &crate::task::control::RunControl) {
        for s in &self.states {
            s.rollback();
        }
        for s in self.stages.iter_mut() {
            s.reset();
            s.prepare(control);
        }
    }

    pub(super) fn prepare(&mut self, control: &crate::task::control::RunControl) {
        for s in self.stages.iter_mut() {
            s.prepare(control);
        }
    }

    pub(super) fn cleanup(&mut self) {
        for s in self.stages.iter_mut() {
            s.cleanup();
            s.metrics.publish();
        }
    }
}
