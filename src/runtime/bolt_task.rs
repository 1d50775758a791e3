//! A bolt task: an actor that executes its bolt on each tuple as it arrives.

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::collector::BoltCollector;
use super::control::RunControl;
use super::ledger::{Ledger, Outcomes};
use super::metrics::TaskMetrics;
use super::outbox::{Outbox, send_blocked};
use super::panic_message;
use super::transport::{Envelope, SharedRx};
use crate::component::{AckMode, Bolt, ComponentResult, TaskContext};
use crate::topology::BoltFactory;
use crate::tuple::{Anchors, Tuple};

pub(crate) struct BoltSettings {
    pub(crate) timeout_ms: u64,
    pub(crate) flush_interval: Duration,
    pub(crate) latency_sample: u32,
}

pub(crate) struct BoltTask {
    ctx: TaskContext,
    factory: BoltFactory,
    bolt: Box<dyn Bolt>,
    mode: AckMode,
    outbox: Outbox,
    ledger: Option<Arc<Ledger>>,
    outcomes: Outcomes,
    inbox: SharedRx<Envelope>,
    expected_ends: usize,
    ends: usize,
    /// The rest of a batch whose processing a panic interrupted.
    leftovers: VecDeque<Tuple>,
    metrics: TaskMetrics,
    settings: BoltSettings,
    control: Arc<RunControl>,
    prepared: bool,
    finished: bool,
    sample_countdown: u32,
}

/// How one `execute` ended.
enum Outcome {
    Ok,
    Failed(String),
    Panicked(String),
}

impl BoltTask {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        ctx: TaskContext,
        factory: BoltFactory,
        outbox: Outbox,
        ledger: Option<Arc<Ledger>>,
        inbox: SharedRx<Envelope>,
        expected_ends: usize,
        metrics: TaskMetrics,
        settings: BoltSettings,
        control: Arc<RunControl>,
    ) -> Self {
        let bolt = factory();
        let mode = bolt.ack_mode();
        BoltTask {
            ctx,
            factory,
            bolt,
            mode,
            outbox,
            ledger,
            outcomes: Outcomes::default(),
            inbox,
            expected_ends,
            ends: 0,
            leftovers: VecDeque::new(),
            metrics,
            settings,
            control,
            prepared: false,
            finished: false,
            sample_countdown: 0,
        }
    }

    fn label(&self) -> String {
        format!("{}[{}]", self.ctx.component(), self.ctx.task_id())
    }

    /// Processes tuples in arrival order; stops at a panic (the task then restarts and
    /// continues with the rest).
    fn process(&mut self, tuples: impl IntoIterator<Item = Tuple>, ctx: &mut Context<Self>) {
        let started = Instant::now();
        let mut it = tuples.into_iter();
        let mut n = 0u32;
        while let Some(t) = it.next() {
            if let Outcome::Panicked(msg) = self.execute_one(t) {
                self.leftovers.extend(it);
                self.outbox.flush();
                self.deliver_outcomes();
                self.metrics.local.restarts += 1;
                tracing::error!(task = %self.label(), "bolt panicked: {msg}; input failed, restarting the task");
                ctx.stop();
                return;
            }
            n += 1;
            if n.is_multiple_of(32) && started.elapsed() >= self.settings.flush_interval {
                self.outbox.flush();
            }
        }
        self.after_work(ctx);
    }

    fn execute_one(&mut self, mut t: Tuple) -> Outcome {
        let anchors: Anchors = match self.mode {
            AckMode::Auto => std::mem::take(&mut t.anchors),
            AckMode::Manual => t.anchors.clone(),
        };
        let ack_val = Cell::new(0u64);
        let timed = if self.sample_countdown == 0 {
            self.sample_countdown = self.settings.latency_sample - 1;
            Some(Instant::now())
        } else {
            self.sample_countdown -= 1;
            None
        };
        let mut col = BoltCollector {
            outbox: &mut self.outbox,
            ledger: self.ledger.as_deref(),
            outcomes: &mut self.outcomes,
            current: match self.mode {
                AckMode::Auto => Some((anchors.as_slice(), &ack_val)),
                AckMode::Manual => None,
            },
            timeout_ms: self.settings.timeout_ms,
            acked: 0,
            failed: 0,
        };
        let bolt = &mut self.bolt;
        let res = catch_unwind(AssertUnwindSafe(|| bolt.execute(t, &mut col)));
        let (acked, failed) = (col.acked, col.failed);
        if let Some(at) = timed {
            self.metrics
                .local
                .execute_ns
                .record(at.elapsed().as_nanos() as u64)
                .ok();
        }
        self.metrics.local.executed += 1;
        self.metrics.local.acked += acked;
        self.metrics.local.failed += failed;
        let outcome = match res {
            Ok(Ok(())) => Outcome::Ok,
            Ok(Err(e)) => Outcome::Failed(e.to_string()),
            Err(p) => Outcome::Panicked(panic_message(&p)),
        };
        let ledger = self.ledger.as_deref();
        match (&outcome, self.mode) {
            (Outcome::Ok, AckMode::Auto) => {
                self.metrics.local.acked += 1;
                if ledger.is_some() {
                    let v = ack_val.get();
                    for a in &anchors {
                        self.outcomes.ack(a.root, a.edge ^ v);
                    }
                }
            }
            (Outcome::Ok, AckMode::Manual) => {}
            (Outcome::Failed(msg), _) | (Outcome::Panicked(msg), _) => {
                self.metrics.local.failed += 1;
                if let Some(l) = ledger {
                    for a in &anchors {
                        l.fail(a.root, &mut self.outcomes);
                    }
                }
                if let Outcome::Failed(_) = outcome {
                    let f = self.metrics.local.failed;
                    if f.is_power_of_two() {
                        tracing::warn!(task = %self.label(), "execute failed: {msg} (input failed; {f} failures since last report)");
                    }
                }
            }
        }
        outcome
    }

    fn deliver_outcomes(&mut self) {
        if let Some(l) = &self.ledger {
            l.deliver(&mut self.outcomes);
        }
    }

    /// Flushes, delivers outcomes, and waits for inbox space downstream if needed.
    fn after_work(&mut self, ctx: &mut Context<Self>) {
        self.outbox.flush();
        self.deliver_outcomes();
        self.metrics.local.emitted += std::mem::take(&mut self.outbox.emitted);
        if self.outbox.is_blocked() {
            let blocked = self.outbox.take_blocked();
            ctx.wait(send_blocked(blocked).into_actor(self));
        }
    }

    fn guarded(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut dyn Bolt, &mut BoltCollector<'_>) -> ComponentResult,
    ) {
        let label = self.label();
        let mut col = BoltCollector {
            outbox: &mut self.outbox,
            ledger: self.ledger.as_deref(),
            outcomes: &mut self.outcomes,
            current: None,
            timeout_ms: self.settings.timeout_ms,
            acked: 0,
            failed: 0,
        };
        let bolt = &mut self.bolt;
        let res = catch_unwind(AssertUnwindSafe(|| f(bolt.as_mut(), &mut col)));
        self.metrics.local.acked += col.acked;
        self.metrics.local.failed += col.failed;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(task = %label, "{what} failed: {e}"),
            Err(p) => {
                tracing::error!(task = %label, "{what} panicked: {}", panic_message(&p));
                self.metrics.local.restarts += 1;
                self.bolt = (self.factory)();
                self.prepared = false;
                self.prepare();
            }
        }
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        self.guarded("tick", |b, out| b.tick(out));
        self.after_work(ctx);
    }

    fn on_end(&mut self, ctx: &mut Context<Self>) {
        self.ends += 1;
        if self.ends < self.expected_ends || self.finished {
            return;
        }
        self.finished = true;
        self.guarded("finish", |b, out| b.finish(out));
        self.deliver_outcomes();
        self.metrics.local.emitted += std::mem::take(&mut self.outbox.emitted);
        self.outbox.send_end();
        let blocked = self.outbox.take_blocked();
        ctx.wait(send_blocked(blocked).into_actor(self).map(|_, act, _| {
            let bolt = &mut act.bolt;
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| bolt.cleanup())) {
                tracing::error!("cleanup panicked: {}", panic_message(&p));
            }
            act.metrics.publish();
            act.control.task_finished();
        }));
    }

    fn prepare(&mut self) {
        if self.prepared {
            return;
        }
        self.mode = self.bolt.ack_mode();
        let bolt = &mut self.bolt;
        let task_ctx = &self.ctx;
        match catch_unwind(AssertUnwindSafe(|| bolt.prepare(task_ctx))) {
            Ok(Ok(())) => self.prepared = true,
            Ok(Err(e)) => self
                .control
                .fatal(format!("bolt {} failed to prepare: {e}", self.label())),
            Err(p) => self.control.fatal(format!(
                "bolt {} panicked in prepare: {}",
                self.label(),
                panic_message(&p)
            )),
        }
    }
}

impl Actor for BoltTask {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.prepare();
        ctx.add_stream(self.inbox.clone());
        if let Some(every) = self.bolt.tick_interval() {
            ctx.run_interval(every, |act, ctx| act.on_tick(ctx));
        }
        ctx.run_interval(Duration::from_millis(100), |act, _| act.metrics.publish());
        if !self.leftovers.is_empty() {
            let rest = std::mem::take(&mut self.leftovers);
            self.process(rest, ctx);
        }
    }
}

impl Supervised for BoltTask {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::info!(task = %self.label(), "restarting with fresh state");
        self.bolt = (self.factory)();
        self.prepared = false;
    }
}

impl StreamHandler<Envelope> for BoltTask {
    fn handle(&mut self, env: Envelope, ctx: &mut Context<Self>) {
        match env {
            Envelope::Tuples(batch) => self.process(batch, ctx),
            Envelope::End => self.on_end(ctx),
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}
