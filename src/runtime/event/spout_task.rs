//! A spout task: an actor that polls its spout, tracks its tuple trees, and replays on
//! failure or timeout.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::component::SpoutFactory;
use crate::component::collector::SpoutCollector;
use crate::component::{Spout, SpoutStatus, TaskContext};
use crate::metrics::TaskMetrics;
use crate::runtime::event::chain::{Call, Chain};
use crate::task::control::RunControl;
use crate::task::ledger::{AckMsg, Expiry, Ledger, Settled, Tracker};
use crate::task::outbox::{Outbox, send_blocked};
use crate::task::panic_message;
use crate::task::source_time::SourceTime;
use crate::task::transport::{Pulse, SharedRx};
use crate::task::watermarks::Change;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Active,
    Draining { until: Instant },
    Done,
}

/// Stop emitting; finish when every in-flight tree is done (or the drain time is up).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Deactivate {
    pub(crate) drain: Duration,
}

pub(crate) struct SpoutSettings {
    pub(crate) max_pending: usize,
    pub(crate) timeout_ms: u64,
    pub(crate) batch_size: usize,
    pub(crate) flush_interval: Duration,
    /// The spout's `event_time` option.
    pub(crate) event_time: Option<crate::time::event_time::EventTimeConfig>,
}

pub(crate) struct SpoutTask {
    pub(crate) ctx: TaskContext,
    pub(crate) factory: SpoutFactory,
    pub(crate) spout: Box<dyn Spout>,
    pub(crate) outbox: Outbox,
    pub(crate) ledger: Option<Arc<Ledger>>,
    pub(crate) slot: u32,
    pub(crate) acks: SharedRx<Vec<AckMsg>>,
    pub(crate) pulse: Pulse,
    pub(crate) tracker: Tracker,
    pub(crate) metrics: TaskMetrics,
    pub(crate) settings: SpoutSettings,
    pub(crate) control: Arc<RunControl>,
    state: State,
    opened: bool,
    exhausted: bool,
    idle_streak: u32,
    waiting_for_acks: bool,
    /// The last round ended on `IdleUntil`: the spout is woken by time, not by acks.
    paced: bool,
    /// Event time, if the spout assigns it.
    time: Option<SourceTime>,
    /// The bolts chained into this task (run on what the spout emits locally).
    chain: Chain,
    /// The last watermark the chain was given.
    chain_watermark: Option<Option<i64>>,
}

/// The shortest wait of a paced spout: a source due again sooner is polled at this
/// period and emits what came due meanwhile (a bounded delay, like transport batching).
/// Each wake-up costs a round through the job for the few tuples that came due, so the
/// wait follows the load of the spout's worker thread, as a network card coalesces
/// interrupts: a tenth of `flush_interval` (50 µs by default) while the worker is at most
/// half busy, doubling with every further tenth of load, up to the whole
/// `flush_interval`. An idle job answers soonest; a loaded one sends fewer, larger
/// batches, which keeps it from saturating long before its throughput limit.
pub(crate) fn paced_wait(flush_interval: Duration, busy: f64) -> Duration {
    let shortest = flush_interval / 10;
    let busy = if busy.is_nan() { 0.0 } else { busy };
    let over = ((busy - 0.5) * 10.0).clamp(0.0, 5.0);
    shortest.mul_f64(over.exp2()).min(flush_interval)
}

impl SpoutTask {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        ctx: TaskContext,
        factory: SpoutFactory,
        outbox: Outbox,
        ledger: Option<Arc<Ledger>>,
        slot: u32,
        acks: SharedRx<Vec<AckMsg>>,
        pulse: Pulse,
        metrics: TaskMetrics,
        settings: SpoutSettings,
        control: Arc<RunControl>,
        chain: Chain,
    ) -> Self {
        let spout = factory();
        let time = settings
            .event_time
            .clone()
            .map(|cfg| SourceTime::new(cfg, ctx.counter("no_event_time")));
        SpoutTask {
            time,
            ctx,
            factory,
            spout,
            outbox,
            ledger,
            slot,
            acks,
            pulse,
            tracker: Tracker::default(),
            metrics,
            settings,
            control,
            state: State::Active,
            opened: false,
            exhausted: false,
            idle_streak: 0,
            waiting_for_acks: false,
            paced: false,
            chain,
            chain_watermark: None,
        }
    }

    /// Whether an envelope of this task or of its chain waits for inbox space.
    fn is_blocked(&self) -> bool {
        self.outbox.is_blocked() || self.chain.is_blocked()
    }

    /// Emits nothing more and ends without waiting for the trees in flight (a fatal error
    /// is stopping the run).
    fn stop_now(&mut self) {
        self.exhausted = true;
        self.state = State::Draining {
            until: Instant::now(),
        };
    }

    fn label(&self) -> String {
        format!("{}[{}]", self.ctx.component(), self.ctx.task_id())
    }

    /// One poll round: call `next_tuple` until a batch is full, the spout is idle, the
    /// pending limit is reached, or the flush bound has passed; then flush.
    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.state != State::Active || self.is_blocked() {
            return;
        }
        self.tracker.tick(self.ledger.as_deref());
        let started = self.tracker.now;
        let mut calls = 0usize;
        let mut last = SpoutStatus::Idle;
        let mut panicked = None;
        loop {
            if self.ledger.is_some() && self.tracker.pending.tuples() >= self.settings.max_pending {
                self.waiting_for_acks = true;
                break;
            }
            let mut col = SpoutCollector {
                outbox: &mut self.outbox,
                ledger: self.ledger.as_deref(),
                tracker: &mut self.tracker,
                slot: self.slot,
                timeout_ms: self.settings.timeout_ms,
                max_pending: self.settings.max_pending,
                time: self.time.as_mut(),
            };
            let spout = &mut self.spout;
            match catch_unwind(AssertUnwindSafe(|| spout.next_tuple(&mut col))) {
                Ok(s) => last = s,
                Err(p) => {
                    panicked = Some(panic_message(&p));
                    break;
                }
            }
            calls += 1;
            if let Some(e) = self.outbox.refused.take() {
                // Every later emit would be refused the same way: the run stops.
                self.control.fatal(format!(
                    "spout {} emitted what the topology cannot carry: {e}",
                    self.label()
                ));
                self.stop_now();
                last = SpoutStatus::Exhausted;
                break;
            }
            // The chain runs on what the call emitted (its trees are tracked by now).
            if !self.outbox.local.is_empty() || !self.outbox.local_chunks.is_empty() {
                self.chain
                    .run_all(&mut self.outbox.local, &mut self.outbox.local_chunks);
            }
            if calls.is_multiple_of(32) {
                self.tracker.tick(self.ledger.as_deref());
            }
            if last != SpoutStatus::Emitted
                || calls >= self.settings.batch_size
                || self.is_blocked()
                || (calls.is_multiple_of(32)
                    && self.tracker.now - started >= self.settings.flush_interval)
            {
                break;
            }
        }
        self.outbox.flush();
        self.chain.flush_all();
        self.chain.deliver_outcomes();
        self.send_watermark(false);
        self.metrics.local.emitted += std::mem::take(&mut self.outbox.emitted);
        self.settle_immediate();
        self.metrics.local.busy_ns += started.elapsed().as_nanos() as u64;
        self.chain.add_busy(started);
        if let Some(msg) = panicked {
            self.restart_after_panic(ctx, &msg);
            return;
        }
        if last == SpoutStatus::Exhausted {
            self.exhausted = true;
        }
        if self.is_blocked() {
            self.wait_for_space(ctx);
            return;
        }
        self.paced = matches!(last, SpoutStatus::IdleUntil(_));
        match last {
            _ if self.waiting_for_acks => {}
            SpoutStatus::Emitted => {
                self.idle_streak = 0;
                self.pulse.arm();
            }
            SpoutStatus::IdleUntil(at) => {
                self.idle_streak = 0;
                let min_wait = paced_wait(
                    self.settings.flush_interval,
                    crate::runtime::load::busy_fraction(),
                );
                self.pulse.arm_at(at.max(self.tracker.now + min_wait));
            }
            SpoutStatus::Idle => {
                self.idle_streak = self.idle_streak.saturating_add(1);
                if self.idle_streak < 4 {
                    self.pulse.arm();
                } else {
                    // Progressive back-off: 10 µs, 20 µs, ... up to 1 ms.
                    let us = (self.idle_streak as u64 * 10).min(1000);
                    self.pulse
                        .arm_at(self.tracker.now + Duration::from_micros(us));
                }
            }
            SpoutStatus::Exhausted => self.check_done(ctx),
        }
    }

    /// Tells this task's watermark downstream (when due, or at once with `force`); a
    /// spout without event time is idle: it holds no event-time window back.
    fn send_watermark(&mut self, force: bool) {
        match &mut self.time {
            Some(t) => t.send_watermark(&mut self.outbox, force),
            None => self.outbox.send_watermark(None),
        }
        let sent = self.outbox.sent_watermark();
        if self.chain.is_empty() || sent == self.chain_watermark {
            return;
        }
        self.chain_watermark = sent;
        match sent {
            Some(Some(wm)) => self.chain.on_watermark(Change::Advanced(wm)),
            Some(None) => self.chain.on_watermark(Change::Idle),
            None => {}
        }
        self.chain.flush_all();
        self.chain.deliver_outcomes();
    }

    /// Runs a chained bolt's `tick`.
    fn on_tick(&mut self, i: usize, ctx: &mut Context<Self>) {
        if self.state == State::Done {
            return;
        }
        self.chain.guarded(i, "tick", Call::Tick);
        self.chain.flush_all();
        self.chain.deliver_outcomes();
        if self.is_blocked() {
            self.wait_for_space(ctx);
        }
    }

    fn settle_immediate(&mut self) {
        for (msg_id, ok, n) in std::mem::take(&mut self.tracker.immediate) {
            let n = u64::from(n);
            self.metrics.local.complete_ns.record_n(0, n).ok();
            if ok {
                self.metrics.local.acked += n;
                self.call(|s| s.ack(msg_id));
            } else {
                self.metrics.local.failed += n;
                self.call(|s| s.fail(msg_id));
            }
        }
    }

    /// Calls into the spout, turning a panic into a logged restart.
    fn call(&mut self, f: impl FnOnce(&mut dyn Spout)) {
        let spout = &mut self.spout;
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(spout.as_mut()))) {
            tracing::error!(task = %self.label(), "spout panicked in ack/fail: {}", panic_message(&p));
            self.metrics.local.restarts += 1;
            self.spout = (self.factory)();
            self.opened = false;
        }
    }

    fn wait_for_space(&mut self, ctx: &mut Context<Self>) {
        let mut blocked = self.outbox.take_blocked();
        blocked.extend(self.chain.take_blocked());
        ctx.wait(send_blocked(blocked).into_actor(self).map(|_, act, ctx| {
            if act.state == State::Active {
                act.pulse.arm();
            } else {
                act.check_done(ctx);
            }
        }));
    }

    fn on_outcome(&mut self, msg: AckMsg, now_ms: u64, now: Instant) {
        let Some(settled) = self
            .tracker
            .pending
            .apply(msg, now_ms, self.settings.timeout_ms)
        else {
            return;
        };
        // Drop the timeouts of trees already done from the front, so the queue holds
        // about as many entries as there are trees in flight.
        while let Some(&(_, r)) = self.tracker.timeouts.front() {
            if self.tracker.pending.contains(r) {
                break;
            }
            self.tracker.timeouts.pop_front();
        }
        match settled {
            Settled::Acked { msg_id, at, weight } => {
                let n = u64::from(weight);
                self.metrics.local.acked += n;
                self.metrics
                    .local
                    .complete_ns
                    .record_n(now.saturating_duration_since(at).as_nanos() as u64, n)
                    .ok();
                self.call(|s| s.ack(msg_id));
            }
            Settled::Failed { msg_id, weight } => {
                self.metrics.local.failed += u64::from(weight);
                self.call(|s| s.fail(msg_id));
                self.exhausted = false;
            }
        }
    }

    /// After acks or failures: polls again if the pending limit held the spout back, if a
    /// tuple failed (it may be replayed), or if the spout may have more now. A paced spout
    /// is not polled on acks: it is woken when its next tuple is due.
    fn after_outcome(&mut self, ctx: &mut Context<Self>, any_failed: bool) {
        if self.waiting_for_acks && self.tracker.pending.tuples() < self.settings.max_pending {
            self.waiting_for_acks = false;
            self.pulse.arm();
        } else if !self.exhausted && self.state == State::Active && (any_failed || !self.paced) {
            self.pulse.arm();
        }
        self.check_done(ctx);
    }

    fn check_timeouts(&mut self, ctx: &mut Context<Self>) {
        let Some(ledger) = self.ledger.clone() else {
            return;
        };
        let now = ledger.now_ms();
        let mut failed_any = false;
        while let Some(&(deadline, root)) = self.tracker.timeouts.front() {
            if deadline > now {
                break;
            }
            self.tracker.timeouts.pop_front();
            match self.tracker.pending.expire(root, now) {
                Expiry::Gone => {}
                Expiry::Extended(d) => self.tracker.timeouts.push_back((d, root)),
                Expiry::Expired { msg_id, weight } => {
                    self.metrics.local.timed_out += u64::from(weight);
                    self.metrics.local.failed += u64::from(weight);
                    self.call(|s| s.fail(msg_id));
                    failed_any = true;
                }
            }
        }
        if failed_any {
            self.exhausted = false;
            self.after_outcome(ctx, true);
        } else {
            self.check_done(ctx);
        }
    }

    fn check_done(&mut self, ctx: &mut Context<Self>) {
        let finished = match self.state {
            State::Done => return,
            State::Active => {
                self.exhausted
                    && self.tracker.pending.is_empty()
                    && self.tracker.immediate.is_empty()
            }
            State::Draining { until } => self.tracker.pending.is_empty() || Instant::now() >= until,
        };
        if finished && !self.is_blocked() {
            self.finish(ctx);
        }
    }

    fn finish(&mut self, ctx: &mut Context<Self>) {
        self.state = State::Done;
        let abandoned = self.tracker.pending.tuples() as u64;
        if abandoned > 0 {
            tracing::warn!(task = %self.label(), abandoned, "drain time is up; in-flight trees abandoned");
            self.tracker.pending.clear();
        }
        self.metrics.local.abandoned += abandoned;
        self.call(|s| s.close());
        if let Some(t) = &mut self.time {
            t.end();
        }
        // The chain sees the end of time and finishes before the end goes downstream.
        let mut blocked = Vec::new();
        if !self.chain.is_empty() {
            self.chain.on_watermark(Change::Advanced(i64::MAX));
            blocked = self.chain.finish();
        }
        self.outbox.send_end();
        blocked.extend(self.outbox.take_blocked());
        ctx.wait(send_blocked(blocked).into_actor(self).map(|_, act, _| {
            act.publish(true);
            act.chain.finished();
            act.control.task_finished();
        }));
    }

    /// Publishes the metrics: at once (`wait`), or unless a reader holds them right now.
    fn publish(&mut self, wait: bool) {
        self.metrics.local.pending = self.tracker.pending.tuples() as u64;
        if wait {
            self.metrics.publish();
        } else {
            self.metrics.try_publish();
        }
    }

    fn restart_after_panic(&mut self, ctx: &mut Context<Self>, msg: &str) {
        tracing::error!(task = %self.label(), "spout panicked: {msg}; restarting the task");
        ctx.stop();
    }

    fn open(&mut self) -> bool {
        if self.opened {
            return true;
        }
        let spout = &mut self.spout;
        let task_ctx = &self.ctx;
        match catch_unwind(AssertUnwindSafe(|| spout.open(task_ctx))) {
            Ok(Ok(())) => {
                self.opened = true;
                true
            }
            Ok(Err(e)) => {
                self.control
                    .fatal(format!("spout {} failed to open: {e}", self.label()));
                false
            }
            Err(p) => {
                self.control.fatal(format!(
                    "spout {} panicked in open: {}",
                    self.label(),
                    panic_message(&p)
                ));
                false
            }
        }
    }
}

impl Actor for SpoutTask {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.chain.prepare();
        for i in 0..self.chain.stages.len() {
            if let Some(every) = self.chain.stages[i].bolt.tick_interval() {
                ctx.run_interval(every, move |act, ctx| act.on_tick(i, ctx));
            }
        }
        ctx.add_stream(self.acks.clone());
        ctx.add_stream(self.pulse.stream());
        if self.ledger.is_some() {
            let every = Duration::from_millis((self.settings.timeout_ms / 4).clamp(1, 100));
            ctx.run_interval(every, |act, ctx| act.check_timeouts(ctx));
        }
        ctx.run_interval(Duration::from_millis(100), |act, ctx| {
            act.publish(false);
            act.chain.try_publish(0);
            if act.state == State::Active && act.opened {
                // Sources that went idle stop holding the watermark back.
                act.send_watermark(false);
                if act.is_blocked() {
                    act.wait_for_space(ctx);
                }
            }
            if matches!(act.state, State::Draining { .. }) {
                act.check_done(ctx);
            }
        });
        if self.state == State::Done {
            return;
        }
        if self.open() {
            self.pulse.arm();
        } else {
            self.stop_now();
            self.check_done(ctx);
        }
    }
}

impl Supervised for SpoutTask {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.metrics.local.restarts += 1;
        self.metrics.local.abandoned += self.tracker.pending.tuples() as u64;
        self.tracker = Tracker::default();
        self.outbox.flush();
        self.spout = (self.factory)();
        self.opened = false;
        self.exhausted = false;
        self.waiting_for_acks = false;
        self.paced = false;
    }
}

impl StreamHandler<Vec<AckMsg>> for SpoutTask {
    fn handle(&mut self, msgs: Vec<AckMsg>, ctx: &mut Context<Self>) {
        let any_failed = msgs.iter().any(AckMsg::is_fail);
        // One clock read for the whole message: complete latency is measured to when
        // the outcomes arrived.
        let now = Instant::now();
        let now_ms = self.ledger.as_ref().map_or(0, |l| l.ms_at(now));
        for msg in msgs {
            self.on_outcome(msg, now_ms, now);
        }
        self.after_outcome(ctx, any_failed);
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl StreamHandler<()> for SpoutTask {
    fn handle(&mut self, _: (), ctx: &mut Context<Self>) {
        self.round(ctx);
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<Deactivate> for SpoutTask {
    type Result = ();

    fn handle(&mut self, msg: Deactivate, ctx: &mut Context<Self>) {
        if self.state == State::Active {
            self.state = State::Draining {
                until: Instant::now() + msg.drain,
            };
            self.check_done(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::paced_wait;
    use std::time::Duration;

    #[test]
    fn the_paced_wait_grows_with_the_load_of_the_worker() {
        let flush = Duration::from_micros(500);
        // In µs, rounded (a tenth of load is not exact in binary).
        let us = |busy: f64| (paced_wait(flush, busy).as_secs_f64() * 1e6).round() as u64;
        // Up to half busy: a tenth of flush_interval.
        assert_eq!((us(0.0), us(0.3), us(0.5)), (50, 50, 50));
        // Then doubling with every tenth, up to flush_interval.
        assert_eq!((us(0.6), us(0.7), us(0.8)), (100, 200, 400));
        assert_eq!((us(0.9), us(1.0), us(7.0)), (500, 500, 500));
        let mut last = Duration::ZERO;
        for i in 0..=100 {
            let w = paced_wait(flush, f64::from(i) / 100.0);
            assert!(w >= last, "not monotonic at {i}%");
            last = w;
        }
        assert_eq!(paced_wait(flush, f64::NAN), Duration::from_micros(50));
    }
}
