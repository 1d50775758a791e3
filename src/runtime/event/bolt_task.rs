//! A bolt task: an actor that executes its bolt on each tuple as it arrives (and the bolts
//! chained into it, see [`crate::runtime::stage`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::data::tuple::Tuple;
use crate::runtime::event::chain::{Call, Chain, ChunkRun};
use crate::runtime::stage::Stage;
use crate::task::control::RunControl;
use crate::task::ledger::Ledger;
use crate::task::outbox::send_blocked;
use crate::task::transport::{Chunk, Envelope, SharedRx};
use crate::task::watermarks::{Change, InputWatermarks};

pub(crate) struct BoltSettings {
    pub(crate) flush_interval: Duration,
    pub(crate) latency_sample: u32,
}

pub(crate) struct BoltTask {
    /// The task's bolt and the bolts chained into it.
    chain: Chain,
    inbox: SharedRx<Envelope>,
    expected_ends: usize,
    ends: usize,
    /// The rest of a batch whose processing a panic interrupted.
    leftovers: VecDeque<Tuple>,
    settings: BoltSettings,
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
            chain: Chain::new(stages, ledger, settings.latency_sample, control),
            inbox,
            expected_ends,
            ends: 0,
            leftovers: VecDeque::new(),
            settings,
            finished: false,
            watermarks: InputWatermarks::new(expected_ends),
        }
    }

    /// Processes tuples in arrival order; stops at a panic (the task then restarts and
    /// continues with the rest).
    fn process(&mut self, tuples: impl IntoIterator<Item = Tuple>, ctx: &mut Context<Self>) {
        let started = Instant::now();
        let mut it = tuples.into_iter();
        let mut n = 0u32;
        while let Some(t) = it.next() {
            if let Some(msg) = self.chain.run(0, t, false) {
                self.leftovers.extend(it);
                self.chain.add_busy(started);
                self.panicked(&msg, ctx);
                return;
            }
            n += 1;
            if n.is_multiple_of(32) && started.elapsed() >= self.settings.flush_interval {
                self.chain.flush_all();
            }
        }
        self.after_work(ctx);
        self.chain.add_busy(started);
    }

    /// A chunk of rows as one input (or, for a bolt that takes tuples, as its rows).
    fn process_chunk(&mut self, chunk: Chunk, ctx: &mut Context<Self>) {
        let started = Instant::now();
        match self.chain.run_chunk(0, chunk, false) {
            ChunkRun::Rows(rows) => self.process(rows, ctx),
            ChunkRun::Done(Some(msg)) => {
                self.chain.add_busy(started);
                self.panicked(&msg, ctx);
            }
            ChunkRun::Done(None) => {
                self.after_work(ctx);
                self.chain.add_busy(started);
            }
        }
    }

    /// Stage 0 panicked on an input (failed): the task restarts with fresh state.
    fn panicked(&mut self, msg: &str, ctx: &mut Context<Self>) {
        self.chain.flush_all();
        self.chain.deliver_outcomes();
        let s = &mut self.chain.stages[0];
        s.metrics.local.restarts += 1;
        if let Some(n) = s.panic_log.hit() {
            tracing::error!(task = %self.chain.label(), "bolt panicked: {msg}; input failed, restarting the task{n}");
        }
        ctx.stop();
    }

    /// Flushes, delivers outcomes, and waits for inbox space downstream if needed.
    fn after_work(&mut self, ctx: &mut Context<Self>) {
        self.chain.flush_all();
        self.chain.deliver_outcomes();
        let blocked = self.chain.take_blocked();
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
        self.chain.on_watermark(change);
        self.after_work(ctx);
    }

    fn on_tick(&mut self, i: usize, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        self.chain.guarded(i, "tick", Call::Tick);
        self.after_work(ctx);
    }

    fn on_end(&mut self, ctx: &mut Context<Self>) {
        self.ends += 1;
        if self.ends < self.expected_ends || self.finished {
            return;
        }
        self.finished = true;
        let blocked = self.chain.finish();
        ctx.wait(
            send_blocked(blocked)
                .into_actor(self)
                .map(|_, act, _| act.chain.finished()),
        );
    }
}

impl Actor for BoltTask {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.chain.prepare();
        ctx.add_stream(self.inbox.clone());
        for i in 0..self.chain.stages.len() {
            if let Some(every) = self.chain.stages[i].bolt.tick_interval() {
                ctx.run_interval(every, move |act, ctx| act.on_tick(i, ctx));
            }
        }
        ctx.run_interval(Duration::from_millis(100), |act, _| {
            let lag = act.watermark_lag_ms();
            act.chain.try_publish(lag);
        });
        if !self.leftovers.is_empty() {
            let rest = std::mem::take(&mut self.leftovers);
            self.process(rest, ctx);
        }
    }
}

impl Supervised for BoltTask {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::info!(task = %self.chain.label(), "restarting with fresh state");
        if let Some(s) = self.chain.stages.first_mut() {
            s.reset();
        }
    }
}

impl StreamHandler<Envelope> for BoltTask {
    fn handle(&mut self, env: Envelope, ctx: &mut Context<Self>) {
        match env {
            Envelope::Tuples(batch) => self.process(batch, ctx),
            Envelope::Chunk(chunk) => self.process_chunk(chunk, ctx),
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
