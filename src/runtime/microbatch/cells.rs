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
use crate::data::columns::{ColumnChunks, Columns};
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
    /// Spouts that cut as columns (`Spout::next_columns`): the chunks they handed over.
    chunks: Option<Vec<Columns>>,
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

/// A cut polling a spout that has nothing now: sleeps until `wake_at` or the cut's
/// `deadline`, whichever comes first, and adds the nap to `waited`; `false` (no nap) once
/// the deadline has passed.
fn nap_before(wake_at: Instant, deadline: Instant, waited: &mut Duration) -> bool {
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    let nap = wake_at.min(deadline).saturating_duration_since(now);
    std::thread::sleep(nap);
    *waited += nap;
    true
}

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
            if let Some(chunks) = &h.chunks {
                let chunks = chunks.clone();
                return Ok((self.emit_again(chunks)?, None));
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
                    None => {
                        self.with_collector(usize::MAX, |spout, col| match spout.transactional() {
                            Some(ts) => {
                                ts.replay_batch(info, &meta, col).map_err(|e| e.to_string())
                            }
                            None => Err("not transactional".into()),
                        })?
                    }
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
                None => {
                    self.with_collector(usize::MAX, |spout, col| match spout.transactional() {
                        Some(ts) => {
                            cut = Some(
                                ts.emit_batch(info, prev.as_ref(), max, col)
                                    .map_err(|e| e.to_string())?,
                            );
                            Ok(())
                        }
                        None => Err("not transactional".into()),
                    })?
                }
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
        // Columns carry no event time: a spout that assigns it emits tuples.
        if self.time.is_none()
            && let Some(routed) = self.cut_columns(info.txid, max, deadline)?
        {
            return Ok((routed, None));
        }
        let mut status = SpoutStatus::Idle;
        let mut waited = Duration::ZERO;
        let cut = self.with_collector(max, |spout, col| {
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
                if !nap_before(wake_at, deadline, &mut waited) {
                    return Ok(());
                }
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

    /// A new cut of a spout that cannot replay, as column chunks (`Spout::next_columns`),
    /// polled like `next_tuple` until the deadline or `max` rows; the chunks are kept until
    /// the commit. `Ok(None)`: the spout has no columnar path (nothing was cut).
    fn cut_columns(
        &mut self,
        txid: u64,
        max: usize,
        deadline: Instant,
    ) -> Result<Option<Routed>, CellError> {
        let started = Instant::now();
        let sid = self
            .outbox
            .stream_id(None)
            .map_err(|e| format!("spout {}: {e}", self.label()))?;
        let mut got: Vec<Columns> = Vec::new();
        let mut kept: Vec<Columns> = Vec::new();
        let mut rows = 0usize;
        let mut status = SpoutStatus::Idle;
        let mut waited = Duration::ZERO;
        let mut polls = 0u32;
        let res: Result<(), CellError> = loop {
            let left = max.saturating_sub(rows);
            let spout = &mut self.spout;
            status = match catch_unwind(AssertUnwindSafe(|| spout.next_columns(left, &mut got))) {
                Ok(Some(s)) => s,
                // No columnar path: the spout is polled with `next_tuple`.
                Ok(None) if polls == 0 => return Ok(None),
                // It stopped handing columns: the cut ends here.
                Ok(None) => break Ok(()),
                Err(p) => break Err(self.replace_spout(&p)),
            };
            polls += 1;
            let mut emitted = Ok(());
            for c in got.drain(..) {
                let n = c.rows();
                if n > max.saturating_sub(rows) {
                    emitted = Err(format!(
                        "spout {}: next_columns handed {n} rows, more than the {} asked for",
                        self.label(),
                        max.saturating_sub(rows)
                    ));
                    break;
                }
                if n == 0 {
                    continue;
                }
                if let Err(e) = self.outbox.emit_columns(sid, c.clone()) {
                    emitted = Err(format!("spout {}: {e}", self.label()));
                    break;
                }
                kept.push(c);
                rows += n;
            }
            if emitted.is_err() {
                break emitted;
            }
            let wake_at = match status {
                SpoutStatus::Emitted => {
                    if rows >= max || Instant::now() >= deadline {
                        break Ok(());
                    }
                    continue;
                }
                SpoutStatus::Exhausted => break Ok(()),
                SpoutStatus::Idle => Instant::now() + IDLE_POLL,
                SpoutStatus::IdleUntil(t) => t,
            };
            if !nap_before(wake_at, deadline, &mut waited) {
                break Ok(());
            }
        };
        let routed = drain(&mut self.outbox);
        self.metrics.local.emitted += std::mem::take(&mut self.outbox.emitted);
        self.metrics.local.busy_ns += started.elapsed().saturating_sub(waited).as_nanos() as u64;
        res?;
        if status == SpoutStatus::Exhausted {
            self.exhausted = true;
        }
        self.full = rows >= max;
        let mut origins = DueTimes::new();
        origins.push_n(started, rows as u64);
        self.held.insert(
            txid,
            Held {
                chunks: Some(kept),
                origins,
                ..Held::default()
            },
        );
        Ok(Some(routed))
    }

    /// Emits again the chunks a columnar cut kept (a batch replayed).
    fn emit_again(&mut self, chunks: Vec<Columns>) -> Result<Routed, CellError> {
        let res = self.outbox.stream_id(None).and_then(|sid| {
            chunks
                .into_iter()
                .try_for_each(|c| self.outbox.emit_columns(sid, c).map(|_| ()))
        });
        let routed = drain(&mut self.outbox);
        // Counted when first emitted (as the tuples a batch replays).
        self.outbox.emitted = 0;
        res.map(|()| routed)
            .map_err(|e| format!("spout {}: {e}", self.label()))
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
        max: usize,
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
                max_pending: max,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;
    use tokio::sync::mpsc;

    use super::*;
    use crate::component::OutputDeclarer;
    use crate::data::columns::StrColumn;
    use crate::data::tuple::{Fields, MetaRef, StreamMeta};
    use crate::metrics::{CustomCounters, TaskStats, TopkBoard};
    use crate::spouts::socket::SocketSpout;
    use crate::task::outbox::{Route, StreamOut, Target};

    /// The socket spout without its columnar path: cut by `next_tuple`.
    struct TuplesOnly(SocketSpout);

    impl Spout for TuplesOnly {
        fn declare_outputs(&self, out: &mut OutputDeclarer) {
            self.0.declare_outputs(out);
        }
        fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> SpoutStatus {
            self.0.next_tuple(out)
        }
        fn ack(&mut self, id: u64) {
            self.0.ack(id);
        }
    }

    /// A cell of a socket spout whose reader already sent `batches` and ended; with
    /// `columns` off it is cut through `next_tuple`.
    fn cell(batches: &[Vec<String>], columns: bool) -> SpoutCell {
        timed_cell(batches, columns, None)
    }

    fn timed_cell(
        batches: &[Vec<String>],
        columns: bool,
        time: Option<EventTimeConfig>,
    ) -> SpoutCell {
        let (tx, rx) = mpsc::channel(batches.len().max(1));
        for b in batches {
            let mut c = StrColumn::default();
            b.iter().for_each(|l| c.push(l));
            assert!(tx.try_send(c).is_ok());
        }
        drop(tx);
        let rx = Mutex::new(Some(rx));
        let factory: SpoutFactory = Arc::new(move || {
            let lines = rx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_else(|| mpsc::channel(1).1);
            let s = SocketSpout::reading(lines);
            if columns {
                Box::new(s) as Box<dyn Spout>
            } else {
                Box::new(TuplesOnly(s))
            }
        });
        let (tx, _rx) = mpsc::channel(1);
        let meta = MetaRef::Shared(Arc::new(StreamMeta {
            component: "source".into(),
            stream: crate::data::tuple::DEFAULT_STREAM.into(),
            fields: Fields::new(["text"]),
        }));
        let routes = vec![Route::Shuffle {
            targets: vec![0],
            next: 0,
        }];
        let outbox = Outbox::new(
            1,
            vec![Target::new(2, tx)],
            vec![StreamOut { meta, routes }],
            usize::MAX,
            false,
        );
        let ctx = TaskContext {
            component: "source".into(),
            task_id: 1,
            task_index: 0,
            parallelism: 1,
            worker: 0,
            component_tasks: Arc::new(BTreeMap::new()),
            upstream_tasks: 0,
            expected_partials: None,
            counters: CustomCounters::default(),
            pulse: None,
            topk: TopkBoard::default(),
            control: None,
            state: None,
            io: None,
            read_fields: None,
            output_filter: None,
            extension: None,
        };
        let metrics = TaskMetrics::new(Arc::new(Mutex::new(TaskStats::default())));
        SpoutCell::new(ctx, factory, outbox, metrics, time)
    }

    /// The lines a batch sent, in order, and whether they came as columns.
    fn lines(routed: &Routed) -> (Vec<String>, bool) {
        let mut out = Vec::new();
        let mut as_columns = false;
        for (_, d) in routed {
            for t in &d.tuples {
                out.push(
                    t.values()[0]
                        .as_str()
                        .unwrap_or("<not a string>")
                        .to_string(),
                );
            }
            for c in &d.columns {
                as_columns = true;
                out.extend(
                    (0..c.rows())
                        .map(|i| c.row(i)[0].as_str().unwrap_or("<not a string>").to_string()),
                );
            }
        }
        (out, as_columns)
    }

    /// Cuts batches of at most `max` lines until the spout is exhausted; each batch is
    /// emitted twice (the second time as a failed batch is) before it commits.
    fn cut_all(mut cell: SpoutCell, max: usize) -> Vec<Vec<String>> {
        let mut batches = Vec::new();
        for txid in 1..10_000 {
            let info = BatchInfo {
                txid,
                time_ms: 0,
                replay: false,
                watermark: None,
            };
            let (first, meta) = cell
                .emit(&info, max, Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(meta.is_none());
            let again = cell
                .emit(
                    &BatchInfo {
                        replay: true,
                        ..info
                    },
                    max,
                    Duration::from_secs(60),
                )
                .unwrap_or_else(|e| panic!("{e}"));
            let (rows, _) = lines(&first);
            assert!(
                rows.len() <= max,
                "batch {txid}: {} rows > {max}",
                rows.len()
            );
            assert_eq!(lines(&again.0), lines(&first), "batch {txid} replayed");
            assert_eq!(cell.full, rows.len() >= max);
            cell.commit(txid, Instant::now());
            let done = cell.exhausted;
            batches.push(rows);
            if done {
                return batches;
            }
        }
        panic!("the spout was never exhausted");
    }

    fn check(batches: &[Vec<String>], max: usize) {
        let by_columns = cut_all(cell(batches, true), max);
        let by_tuples = cut_all(cell(batches, false), max);
        assert_eq!(by_columns, by_tuples, "max {max}");
        let all: Vec<String> = batches.concat();
        assert_eq!(by_columns.concat(), all);
        // Every batch but the last two (the rest, then none: exhausted) is full.
        let n = by_columns.len();
        assert!(
            by_columns[..n.saturating_sub(2)]
                .iter()
                .all(|b| b.len() == max)
        );
    }

    #[test]
    fn the_columnar_cut_gives_the_rows_of_the_tuple_path_and_splits_chunks_at_max() {
        let line = |i: usize| match i % 5 {
            0 => String::new(),
            1 => format!("#tag{i} naïve ✓"),
            _ => format!("line {i}"),
        };
        let mut next = 0;
        let batches: Vec<Vec<String>> = [1024, 3, 1, 700, 1024, 2]
            .iter()
            .map(|&n| {
                let b = (next..next + n).map(line).collect();
                next += n;
                b
            })
            .collect();
        for max in [1, 2, 3, 700, 1023, 1024, 1025, 2048, 5000] {
            check(&batches, max);
        }
        // A columnar cut of the whole input keeps the reader's chunks, unsplit.
        let cut = {
            let mut c = cell(&batches, true);
            let info = BatchInfo {
                txid: 1,
                time_ms: 0,
                replay: false,
                watermark: None,
            };
            c.emit(&info, 5000, Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("{e}"))
                .0
        };
        let chunks: Vec<usize> = cut
            .iter()
            .flat_map(|(_, d)| d.columns.iter().map(Columns::rows))
            .collect();
        assert_eq!(chunks, [1024, 3, 1, 700, 1024, 2]);
        assert!(lines(&cut).1);
    }

    #[test]
    fn a_spout_that_assigns_event_time_is_cut_as_tuples() {
        let batches = vec![(0..50).map(|i| format!("l{i}")).collect::<Vec<_>>()];
        let mut c = timed_cell(&batches, true, Some(EventTimeConfig::new("text")));
        let info = BatchInfo {
            txid: 1,
            time_ms: 0,
            replay: false,
            watermark: None,
        };
        let (routed, _) = c
            .emit(&info, 100, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(lines(&routed), (batches[0].clone(), false));
        assert!(c.exhausted);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn the_columnar_cut_matches_the_tuple_path(
            sizes in proptest::collection::vec(1usize..300, 0..8),
            max in 1usize..400,
        ) {
            let mut next = 0;
            let batches: Vec<Vec<String>> = sizes
                .iter()
                .map(|&n| {
                    let b = (next..next + n).map(|i| format!("l{i}")).collect();
                    next += n;
                    b
                })
                .collect();
            check(&batches, max);
        }
    }
}
