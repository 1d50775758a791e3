//! A bolt task: an actor that executes its bolt on each tuple as it arrives (and the bolts
//! chained into it, see [`crate::runtime::stage`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::data::tuple::Tuple;
use crate::runtime::stage::{Outcome, Shared, Stage};
use crate::task::control::RunControl;
use crate::task::ledger::{Ledger, Outcomes};
use crate::task::outbox::send_blocked;
use crate::task::transport::{Envelope, SharedRx};
use crate::task::watermarks::{Change, InputWatermarks};

/// What `guarded` calls on a stage's bolt.
#[derive(Clone, Copy)]
enum Call {
    Tick,
    Finish,
    Watermark(i64),
}

pub(crate) struct BoltSettings {
    pub(crate) flush_interval: Duration,
    pub(crate) latency_sample: u32,
}

pub(crate) struct BoltTask {
    /// `stages[0]` reads the inbox; `stages[i + 1]` takes what `stages[i]` emits locally.
    stages: Vec<Stage>,
    ledger: Option<Arc<Ledger>>,
    outcomes: Outcomes,
    inbox: SharedRx<Envelope>,
    expected_ends: usize,
    ends: usize,
    /// The rest of a batch whose processing a panic interrupted.
    leftovers: VecDeque<Tuple>,
    settings: BoltSettings,
    control: Arc<RunControl>,
    finished: bool,
    /// The watermarks of the tasks that send here, and this task's.
    watermarks: InputWatermarks,
}

impl BoltTask {
    pub(crate) fn new(
        stages: Vec<Stage>,
        ledger: Option<Arc<Ledger>>,
        inbox: SharedRx<Envelope>,
        expected_ends: usize,
        settings: BoltSettings,
        control: Arc<RunControl>,
    ) -> Self {
        BoltTask {
            stages,
            ledger,
            outcomes: Outcomes::default(),
            inbox,
            expected_ends,
            ends: 0,
            leftovers: VecDeque::new(),
            settings,
            control,
            finished: false,
            watermarks: InputWatermarks::new(expected_ends),
        }
    }

    fn label(&self) -> String {
        self.stages.first().map(Stage::label).unwrap_or_default()
    }

    /// Runs `t` through stage `i`, then what it emitted locally through the next stages.
    /// A panic in a chained stage resets that stage's bolt in place; a panic in the first
    /// stage is returned (the task then restarts through its supervisor).
    fn run(&mut self, i: usize, t: Tuple) -> Option<String> {
        let mut sh = Shared {
            ledger: self.ledger.as_deref(),
            outcomes: &mut self.outcomes,
            latency_sample: self.settings.latency_sample,
        };
        let outcome = self.stages[i].execute(t, &mut sh);
        self.feed_next(i);
        match outcome {
            Outcome::Panicked(msg) if i == 0 => Some(msg),
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

    /// Hands what stage `i` emitted to its chained stage.
    fn feed_next(&mut self, i: usize) {
        if i + 1 >= self.stages.len() || self.stages[i].outbox.local.is_empty() {
            return;
        }
        let local = std::mem::take(&mut self.stages[i].outbox.local);
        for u in local {
            self.run(i + 1, u);
        }
    }

    /// Processes tuples in arrival order; stops at a panic (the task then restarts and
    /// continues with the rest).
    fn process(&mut self, tuples: impl IntoIterator<Item = Tuple>, ctx: &mut Context<Self>) {
        let started = Instant::now();
        let mut it = tuples.into_iter();
        let mut n = 0u32;
        while let Some(t) = it.next() {
            if let Some(msg) = self.run(0, t) {
                self.leftovers.extend(it);
                self.add_busy(started);
                self.flush_all();
                self.deliver_outcomes();
                self.stages[0].metrics.local.restarts += 1;
                if let Some(n) = self.stages[0].panic_log.hit() {
                    tracing::error!(task = %self.label(), "bolt panicked: {msg}; input failed, restarting the task{n}");
                }
                ctx.stop();
                return;
            }
            n += 1;
            if n.is_multiple_of(32) && started.elapsed() >= self.settings.flush_interval {
                self.flush_all();
            }
        }
        self.after_work(ctx);
        self.add_busy(started);
    }

    /// Counts the time since `started` as busy, once per batch, for every stage (chained
    /// stages share their task's thread, so they share its busy time).
    fn add_busy(&mut self, started: Instant) {
        let ns = started.elapsed().as_nanos() as u64;
        for s in &mut self.stages {
            s.metrics.local.busy_ns += ns;
        }
    }

    fn flush_all(&mut self) {
        for s in &mut self.stages {
            s.outbox.flush();
            s.metrics.local.emitted += std::mem::take(&mut s.outbox.emitted);
        }
    }

    fn deliver_outcomes(&mut self) {
        if let Some(l) = &self.ledger {
            l.deliver(&mut self.outcomes);
        }
    }

    /// Flushes, delivers outcomes, and waits for inbox space downstream if needed.
    fn after_work(&mut self, ctx: &mut Context<Self>) {
        self.flush_all();
        self.deliver_outcomes();
        self.wait_blocked(ctx);
    }

    fn wait_blocked(&mut self, ctx: &mut Context<Self>) {
        let mut blocked = Vec::new();
        for s in &mut self.stages {
            if s.outbox.is_blocked() {
                blocked.extend(s.outbox.take_blocked());
            }
        }
        if !blocked.is_empty() {
            ctx.wait(send_blocked(blocked).into_actor(self));
        }
    }

    /// How far the task's watermark is behind the wall clock (0 without one, or once the
    /// input ended).
    fn watermark_lag_ms(&self) -> u64 {
        crate::time::watermark::lag_behind_now(self.watermarks.current())
    }

    /// The task's watermark changed: every stage (in chain order) sees it, then it goes
    /// downstream after what they emitted.
    fn on_watermark(&mut self, change: Change, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        match change {
            Change::Advanced(wm) => {
                for i in 0..self.stages.len() {
                    self.guarded(i, "watermark", Call::Watermark(wm));
                }
                // The end of time goes on with the end of this task (after what its bolts
                // emit when they finish), not before.
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
        self.after_work(ctx);
    }

    /// Runs `tick` or `finish` on stage `i` and feeds what it emitted down the chain.
    fn guarded(&mut self, i: usize, what: &str, call: Call) {
        let mut sh = Shared {
            ledger: self.ledger.as_deref(),
            outcomes: &mut self.outcomes,
            latency_sample: self.settings.latency_sample,
        };
        let control = self.control.clone();
        self.stages[i].guarded(what, &mut sh, &control, |b, out| match call {
            Call::Tick => b.tick(out),
            Call::Finish => b.finish(out),
            Call::Watermark(wm) => b.on_watermark(wm, out),
        });
        self.feed_next(i);
    }

    fn on_tick(&mut self, i: usize, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        self.guarded(i, "tick", Call::Tick);
        self.after_work(ctx);
    }

    fn on_end(&mut self, ctx: &mut Context<Self>) {
        self.ends += 1;
        if self.ends < self.expected_ends || self.finished {
            return;
        }
        self.finished = true;
        // Each stage finishes after everything before it has finished (and been fed on).
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
        ctx.wait(send_blocked(blocked).into_actor(self).map(|_, act, _| {
            for s in &mut act.stages {
                s.cleanup();
                s.metrics.publish();
                act.control.task_finished();
            }
        }));
    }
}

impl Actor for BoltTask {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for s in &mut self.stages {
            s.prepare(&self.control);
        }
        ctx.add_stream(self.inbox.clone());
        for i in 0..self.stages.len() {
            if let Some(every) = self.stages[i].bolt.tick_interval() {
                ctx.run_interval(every, move |act, ctx| act.on_tick(i, ctx));
            }
        }
        ctx.run_interval(Duration::from_millis(100), |act, _| {
            let lag = act.watermark_lag_ms();
            for s in &mut act.stages {
                s.metrics.local.watermark_lag_ms = lag;
                s.metrics.try_publish();
            }
        });
        if !self.leftovers.is_empty() {
            let rest = std::mem::take(&mut self.leftovers);
            self.process(rest, ctx);
        }
    }
}

impl Supervised for BoltTask {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::info!(task = %self.label(), "restarting with fresh state");
        if let Some(s) = self.stages.first_mut() {
            s.reset();
        }
    }
}

impl StreamHandler<Envelope> for BoltTask {
    fn handle(&mut self, env: Envelope, ctx: &mut Context<Self>) {
        match env {
            Envelope::Tuples(batch) => self.process(batch, ctx),
            Envelope::Watermark { from, at } => {
                if let Some(change) = self.watermarks.update(from, at) {
                    self.on_watermark(change, ctx);
                }
            }
            Envelope::End => self.on_end(ctx),
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}
