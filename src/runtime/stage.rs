//! One bolt instance inside a bolt task, in either mode. A task runs one stage, or several
//! when bolts are chained into the one that feeds them (Flink's operator chaining): the
//! tuples a stage emits to a chained stage go straight to it, on the same thread, without
//! transport. Event mode runs a stage tuple by tuple (`execute`); micro-batch mode runs a
//! batch through it (`microbatch::batch_stage`).

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use crate::component::BoltFactory;
use crate::component::collector::BoltCollector;
use crate::component::transactional::BatchInfo;
use crate::component::{AckMode, Bolt, ComponentResult, TaskContext};
use crate::data::columns::Columns;
use crate::data::tuple::{Anchor, Anchors, Tuple};
use crate::log_throttle::LogThrottle;
use crate::metrics::TaskMetrics;
use crate::task::control::RunControl;
use crate::task::ledger::{Ledger, Outcomes};
use crate::task::outbox::Outbox;
use crate::task::panic_message;
use crate::task::transport::Chunk;

/// What `Stage::execute_chunk` did with a chunk.
pub(crate) enum ChunkStep {
    /// Executed whole (the bolt's columnar path).
    Done(Outcome),
    /// The bolt takes tuples: the rows, anchored to the chunk, to execute one by one.
    Rows(Vec<Tuple>),
}

/// How one `execute` ended.
pub(crate) enum Outcome {
    Ok,
    Failed(String),
    Panicked(String),
}

pub(crate) struct Stage {
    pub(crate) ctx: TaskContext,
    pub(crate) factory: BoltFactory,
    pub(crate) bolt: Box<dyn Bolt>,
    pub(crate) mode: AckMode,
    pub(crate) outbox: Outbox,
    pub(crate) metrics: TaskMetrics,
    pub(crate) prepared: bool,
    sample_countdown: u32,
    /// The warnings about failed inputs and panics, rate-limited.
    fail_log: LogThrottle,
    pub(crate) panic_log: LogThrottle,
}

/// What every stage of a task shares while it works.
pub(crate) struct Shared<'a> {
    pub(crate) ledger: Option<&'a Ledger>,
    pub(crate) outcomes: &'a mut Outcomes,
    pub(crate) latency_sample: u32,
}

impl Stage {
    pub(crate) fn new(
        ctx: TaskContext,
        factory: BoltFactory,
        outbox: Outbox,
        metrics: TaskMetrics,
    ) -> Self {
        let bolt = factory();
        let mode = bolt.ack_mode();
        Stage {
            ctx,
            factory,
            bolt,
            mode,
            outbox,
            metrics,
            prepared: false,
            sample_countdown: 0,
            fail_log: LogThrottle::default(),
            panic_log: LogThrottle::default(),
        }
    }

    pub(crate) fn label(&self) -> String {
        format!("{}[{}]", self.ctx.component(), self.ctx.task_id())
    }

    /// Replaces the bolt by a fresh instance (its state reset).
    pub(crate) fn reset(&mut self) {
        self.bolt = (self.factory)();
        self.prepared = false;
    }

    pub(crate) fn prepare(&mut self, control: &RunControl) {
        if self.prepared {
            return;
        }
        self.mode = self.bolt.ack_mode();
        let bolt = &mut self.bolt;
        let task_ctx = &self.ctx;
        match catch_unwind(AssertUnwindSafe(|| bolt.prepare(task_ctx))) {
            Ok(Ok(())) => self.prepared = true,
            Ok(Err(e)) => control.fatal(format!("bolt {} failed to prepare: {e}", self.label())),
            Err(p) => control.fatal(format!(
                "bolt {} panicked in prepare: {}",
                self.label(),
                panic_message(&p)
            )),
        }
    }

    /// Executes one input: anchors and acks (auto mode) or leaves that to the bolt
    /// (manual mode), fails the input on an error or a panic.
    pub(crate) fn execute(&mut self, mut t: Tuple, sh: &mut Shared<'_>) -> Outcome {
        let anchors: Anchors = match self.mode {
            AckMode::Auto => std::mem::take(&mut t.anchors),
            AckMode::Manual => t.anchors.clone(),
        };
        let ack_val = Cell::new(0u64);
        let timed = if self.sample_countdown == 0 {
            self.sample_countdown = sh.latency_sample - 1;
            Some(Instant::now())
        } else {
            self.sample_countdown -= 1;
            None
        };
        // What the bolt emits now inherits the input's event time.
        self.outbox.event_time = t.event_time;
        let mut col = BoltCollector {
            outbox: &mut self.outbox,
            ledger: sh.ledger,
            outcomes: sh.outcomes,
            current: match self.mode {
                AckMode::Auto => Some((anchors.as_slice(), &ack_val)),
                AckMode::Manual => None,
            },
            acked: 0,
            failed: 0,
            scope: Default::default(),
            late: 0,
        };
        let bolt = &mut self.bolt;
        let res = catch_unwind(AssertUnwindSafe(|| bolt.execute(t, &mut col)));
        let (acked, failed, late) = (col.acked, col.failed, col.late);
        self.outbox.event_time = crate::data::tuple::NO_TIME;
        if let Some(at) = timed {
            self.metrics
                .local
                .execute_ns
                .record(at.elapsed().as_nanos() as u64)
                .ok();
        }
        let m = &mut self.metrics.local;
        m.executed += 1;
        m.acked += acked;
        m.failed += failed;
        m.late += late;
        let outcome = match res {
            Ok(Ok(())) => Outcome::Ok,
            Ok(Err(e)) => Outcome::Failed(e.to_string()),
            Err(p) => Outcome::Panicked(panic_message(&p)),
        };
        self.settle(&outcome, &anchors, ack_val.get(), 1, sh);
        outcome
    }

    /// Acks (auto mode: with what the execute emitted, `ack_val`) or fails the anchors of
    /// one input by how its execute ended, and counts it.
    fn settle(
        &mut self,
        outcome: &Outcome,
        anchors: &[Anchor],
        ack_val: u64,
        inputs: u64,
        sh: &mut Shared<'_>,
    ) {
        let m = &mut self.metrics.local;
        match (outcome, self.mode) {
            (Outcome::Ok, AckMode::Auto) => {
                m.acked += inputs;
                if sh.ledger.is_some() {
                    for a in anchors {
                        sh.outcomes.ack(a.root, a.edge ^ ack_val);
                    }
                }
            }
            (Outcome::Ok, AckMode::Manual) => {}
            (Outcome::Failed(msg), _) | (Outcome::Panicked(msg), _) => {
                m.failed += inputs;
                if let Some(l) = sh.ledger {
                    for a in anchors {
                        l.fail(a.root, sh.outcomes);
                    }
                }
                if let Outcome::Failed(_) = outcome
                    && let Some(n) = self.fail_log.hit()
                {
                    tracing::warn!(task = %self.label(), "execute failed: {msg} (input failed){n}");
                }
            }
        }
    }

    /// Event mode: executes a chunk of rows as one input. A bolt with a columnar path
    /// (auto acking) takes all of them at once, and what it returns is emitted as chunks
    /// anchored to this one; the chunk is acked or failed whole. Otherwise the rows come
    /// back as tuples, each anchored to the chunk (which is acked now: its tree waits for
    /// them), to execute one by one.
    pub(crate) fn execute_chunk(&mut self, chunk: Chunk, sh: &mut Shared<'_>) -> ChunkStep {
        if self.mode == AckMode::Auto && self.bolt.takes_columns() {
            let started = Instant::now();
            let info = BatchInfo::event_mode();
            let bolt = &mut self.bolt;
            let res = catch_unwind(AssertUnwindSafe(|| {
                bolt.execute_columns(&info, &chunk.rows)
            }));
            let ack_val = Cell::new(0u64);
            let outcome = match res {
                Ok(None) => None,
                Ok(Some(Ok(out))) => Some(self.emit_chunk_output(out, &chunk.anchors, &ack_val)),
                Ok(Some(Err(e))) => Some(Outcome::Failed(e.to_string())),
                Err(p) => Some(Outcome::Panicked(panic_message(&p))),
            };
            if let Some(outcome) = outcome {
                let rows = chunk.rows.rows().max(1) as u64;
                let per_row = started.elapsed().as_nanos() as u64 / rows;
                let m = &mut self.metrics.local;
                m.execute_ns.record_n(per_row, rows).ok();
                m.executed += rows;
                // Counted per row, like the tuples it stands for.
                self.settle(&outcome, &chunk.anchors, ack_val.get(), rows, sh);
                return ChunkStep::Done(outcome);
            }
        }
        let ack_val = Cell::new(0u64);
        let parents = [(chunk.anchors.as_slice(), &ack_val)];
        let mut tuples = chunk.rows.to_tuples();
        for t in &mut tuples {
            t.anchors = self.outbox.anchor(&parents);
        }
        if sh.ledger.is_some() {
            for a in &chunk.anchors {
                sh.outcomes.ack(a.root, a.edge ^ ack_val.get());
            }
        }
        ChunkStep::Rows(tuples)
    }

    /// What a columnar execute returned, emitted on the default stream as chunks.
    fn emit_chunk_output(
        &mut self,
        out: Columns,
        anchors: &[Anchor],
        ack_val: &Cell<u64>,
    ) -> Outcome {
        if out.is_empty() {
            return Outcome::Ok;
        }
        let emitted = self
            .outbox
            .stream_id(None)
            .and_then(|sid| self.outbox.emit_chunk(sid, out, &[(anchors, ack_val)]));
        match emitted {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    /// Runs `tick` or `finish`; a panic there resets the bolt (counted and logged).
    pub(crate) fn guarded(
        &mut self,
        what: &str,
        sh: &mut Shared<'_>,
        control: &RunControl,
        f: impl FnOnce(&mut dyn Bolt, &mut BoltCollector<'_>) -> ComponentResult,
    ) {
        let label = self.label();
        let mut col = BoltCollector {
            outbox: &mut self.outbox,
            ledger: sh.ledger,
            outcomes: sh.outcomes,
            current: None,
            acked: 0,
            failed: 0,
            scope: Default::default(),
            late: 0,
        };
        let bolt = &mut self.bolt;
        let res = catch_unwind(AssertUnwindSafe(|| f(bolt.as_mut(), &mut col)));
        self.metrics.local.acked += col.acked;
        self.metrics.local.failed += col.failed;
        self.metrics.local.late += col.late;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(task = %label, "{what} failed: {e}"),
            Err(p) => {
                tracing::error!(task = %label, "{what} panicked: {}; restarting the bolt", panic_message(&p));
                self.metrics.local.restarts += 1;
                self.reset();
                self.prepare(control);
            }
        }
    }

    pub(crate) fn cleanup(&mut self) {
        let bolt = &mut self.bolt;
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| bolt.cleanup())) {
            tracing::error!(task = %self.label(), "cleanup panicked: {}", panic_message(&p));
        }
    }
}
