//! The bolts one event-mode task runs, in chain order (operator chaining): `stages[0]`
//! takes the task's input (a bolt task's inbox), `stages[i + 1]` what `stages[i]` emits
//! locally. A spout task hosts a chain too (the stateless bolts right after the spout):
//! then the spout's local emits feed `stages[0]`, on the spout's thread, with no tuple
//! crossing a queue.

use std::sync::Arc;
use std::time::Instant;

use crate::data::tuple::Tuple;
use crate::runtime::stage::{ChunkStep, Outcome, Shared, Stage};
use crate::task::control::RunControl;
use crate::task::ledger::{Ledger, Outcomes};
use crate::task::transport::{Chunk, Envelope};
use crate::task::watermarks::Change;

/// What `guarded` calls on a stage's bolt.
#[derive(Clone, Copy)]
pub(crate) enum Call {
    Tick,
    Finish,
    Watermark(i64),
}

/// How `Chain::run_chunk` ended.
pub(crate) enum ChunkRun {
    /// Executed whole; a panic of stage 0 (as `run` returns it).
    Done(Option<String>),
    /// The stage takes tuples: the chunk's rows, to `run` one by one.
    Rows(Vec<Tuple>),
}

pub(crate) struct Chain {
    pub(crate) stages: Vec<Stage>,
    ledger: Option<Arc<Ledger>>,
    /// Acks and failures of the stages' inputs, delivered by `deliver_outcomes`.
    outcomes: Outcomes,
    latency_sample: u32,
    control: Arc<RunControl>,
}

impl Chain {
    pub(crate) fn new(
        stages: Vec<Stage>,
        ledger: Option<Arc<Ledger>>,
        latency_sample: u32,
        control: Arc<RunControl>,
    ) -> Self {
        Chain {
            stages,
            ledger,
            outcomes: Outcomes::default(),
            latency_sample,
            control,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    pub(crate) fn label(&self) -> String {
        self.stages.first().map(Stage::label).unwrap_or_default()
    }

    pub(crate) fn prepare(&mut self) {
        for s in &mut self.stages {
            s.prepare(&self.control);
        }
    }

    /// Runs `t` through stage `i`, then what it emitted locally through the next stages.
    /// A panic in stage `i > 0`, or in any stage with `reset_first`, resets that stage's
    /// bolt in place (the input failed); otherwise a panic in stage 0 is returned (a bolt
    /// task then restarts through its supervisor).
    pub(crate) fn run(&mut self, i: usize, t: Tuple, reset_first: bool) -> Option<String> {
        let mut sh = Shared {
            ledger: self.ledger.as_deref(),
            outcomes: &mut self.outcomes,
            latency_sample: self.latency_sample,
        };
        let outcome = self.stages[i].execute(t, &mut sh);
        self.feed_next(i);
        self.after(i, outcome, reset_first)
    }

    /// Runs a chunk of rows through stage `i` as one input, then what it emitted through
    /// the next stages. A stage without a columnar path gets the rows as tuples: they come
    /// back (`Rows`) for the caller to `run` one by one. Panics as in `run`.
    pub(crate) fn run_chunk(&mut self, i: usize, chunk: Chunk, reset_first: bool) -> ChunkRun {
        let mut sh = Shared {
            ledger: self.ledger.as_deref(),
            outcomes: &mut self.outcomes,
            latency_sample: self.latency_sample,
        };
        match self.stages[i].execute_chunk(chunk, &mut sh) {
            ChunkStep::Rows(tuples) => ChunkRun::Rows(tuples),
            ChunkStep::Done(outcome) => {
                self.feed_next(i);
                ChunkRun::Done(self.after(i, outcome, reset_first))
            }
        }
    }

    /// A panic in stage `i > 0`, or with `reset_first`, resets that stage's bolt in place;
    /// a panic in stage 0 otherwise is returned.
    fn after(&mut self, i: usize, outcome: Outcome, reset_first: bool) -> Option<String> {
        match outcome {
            Outcome::Panicked(msg) if i == 0 && !reset_first => Some(msg),
            Outcome::Panicked(msg) => {
                let s = &mut self.stages[i];
                if let Some(n) = s.panic_log.hit() {
                    tracing::error!(task = %s.label(), "chained bolt panicked: {msg}; input failed, restarting the bolt{n}");
                }
                s.metrics.local.restarts += 1;
                s.reset();
                s.prepare(&self.control);
                None
            }
            _ => None,
        }
    }

    /// Runs what a host emitted locally through the chain (a spout task's chain).
    pub(crate) fn run_all(&mut self, tuples: &mut Vec<Tuple>, chunks: &mut Vec<Chunk>) {
        for t in tuples.drain(..) {
            self.run(0, t, true);
        }
        for c in chunks.drain(..) {
            if let ChunkRun::Rows(rows) = self.run_chunk(0, c, true) {
                for t in rows {
                    self.run(0, t, true);
                }
            }
        }
    }

    /// Hands what stage `i` emitted to its chained stage.
    fn feed_next(&mut self, i: usize) {
        if i + 1 >= self.stages.len() {
            return;
        }
        let out = &mut self.stages[i].outbox;
        if out.local.is_empty() && out.local_chunks.is_empty() {
            return;
        }
        let mut local = std::mem::take(&mut out.local);
        let chunks = std::mem::take(&mut out.local_chunks);
        for u in local.drain(..) {
            self.run(i + 1, u, false);
        }
        for c in chunks {
            if let ChunkRun::Rows(rows) = self.run_chunk(i + 1, c, false) {
                for u in rows {
                    self.run(i + 1, u, false);
                }
            }
        }
        // Stage i does not run meanwhile: give its buffer back, with its capacity.
        self.stages[i].outbox.local = local;
    }

    /// Runs `tick`, `finish` or `on_watermark` on stage `i` and feeds what it emitted
    /// down the chain.
    pub(crate) fn guarded(&mut self, i: usize, what: &str, call: Call) {
        let mut sh = Shared {
            ledger: self.ledger.as_deref(),
            outcomes: &mut self.outcomes,
            latency_sample: self.latency_sample,
        };
        let control = self.control.clone();
        self.stages[i].guarded(what, &mut sh, &control, |b, out| match call {
            Call::Tick => b.tick(out),
            Call::Finish => b.finish(out),
            Call::Watermark(wm) => b.on_watermark(wm, out),
        });
        self.feed_next(i);
    }

    /// Counts the time since `started` as busy for every stage (they share the task's
    /// thread, so they share its busy time).
    pub(crate) fn add_busy(&mut self, started: Instant) {
        let ns = started.elapsed().as_nanos() as u64;
        for s in &mut self.stages {
            s.metrics.local.busy_ns += ns;
        }
    }

    pub(crate) fn flush_all(&mut self) {
        for s in &mut self.stages {
            s.outbox.flush();
            s.metrics.local.emitted += std::mem::take(&mut s.outbox.emitted);
        }
    }

    pub(crate) fn deliver_outcomes(&mut self) {
        if let Some(l) = &self.ledger {
            l.deliver(&mut self.outcomes);
        }
    }

    pub(crate) fn is_blocked(&self) -> bool {
        self.stages.iter().any(|s| s.outbox.is_blocked())
    }

    /// The envelopes of every stage that found a full inbox, with their senders.
    pub(crate) fn take_blocked(&mut self) -> Vec<(tokio::sync::mpsc::Sender<Envelope>, Envelope)> {
        let mut blocked = Vec::new();
        for s in &mut self.stages {
            if s.outbox.is_blocked() {
                blocked.extend(s.outbox.take_blocked());
            }
        }
        blocked
    }

    /// The task's watermark changed: every stage (in chain order) sees it, then it goes
    /// downstream after what they emitted. The end of time is not passed on here: it
    /// goes with the end of the task (after what its bolts emit when they finish).
    pub(crate) fn on_watermark(&mut self, change: Change) {
        match change {
            Change::Advanced(wm) => {
                for i in 0..self.stages.len() {
                    self.guarded(i, "watermark", Call::Watermark(wm));
                }
                if wm != i64::MAX {
                    for s in &mut self.stages {
                        s.outbox.send_watermark(Some(wm));
                    }
                }
            }
            Change::Idle => {
                for s in &mut self.stages {
                    s.outbox.send_watermark(None);
                }
            }
        }
    }

    /// The input has ended: each stage finishes after everything before it has finished
    /// (and been fed on), the outcomes go out, and every stage sends its end downstream.
    /// Returns the envelopes still waiting for inbox space.
    pub(crate) fn finish(&mut self) -> Vec<(tokio::sync::mpsc::Sender<Envelope>, Envelope)> {
        for i in 0..self.stages.len() {
            self.guarded(i, "finish", Call::Finish);
        }
        self.deliver_outcomes();
        let mut blocked = Vec::new();
        for s in &mut self.stages {
            s.metrics.local.emitted += std::mem::take(&mut s.outbox.emitted);
            s.outbox.send_end();
            blocked.extend(s.outbox.take_blocked());
        }
        blocked
    }

    /// After the end was delivered: cleanup, the last metrics, and each stage counted as
    /// a finished task.
    pub(crate) fn finished(&mut self) {
        for s in &mut self.stages {
            s.cleanup();
            s.metrics.publish();
            self.control.task_finished();
        }
    }

    /// Publishes the stages' metrics unless a reader holds them right now.
    pub(crate) fn try_publish(&mut self, watermark_lag_ms: u64) {
        for s in &mut self.stages {
            s.metrics.local.watermark_lag_ms = watermark_lag_ms;
            s.metrics.try_publish();
        }
    }
}
