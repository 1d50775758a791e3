//! Starting an event-mode run: the worker threads, a spout task per spout instance and
//! a bolt task per stage, and the supervisor that ends the run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::error::RuntimeError;
use crate::runtime::event::chain::Chain;
use crate::runtime::plan::{Plan, host_of, spout_task_count};
use crate::runtime::running::{RunningTopology, STOP_GRACE};
use actix::{Addr, Arbiter, Supervisor, System};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::metrics::TaskMetrics;
use crate::runtime::event::bolt_task::{BoltSettings, BoltTask};
use crate::runtime::event::spout_task::{Deactivate, SpoutSettings, SpoutTask};
use crate::runtime::stage::Stage;
use crate::task::control::RunControl;
use crate::task::io_thread::IoThread;
use crate::task::ledger::Ledger;
use crate::task::outbox::Outbox;
use crate::task::transport::{Pulse, SharedRx};
use crate::topology::{ComponentKind, Topology};

/// Runs `topology` in event mode on its own worker threads; returns at once.
pub(crate) fn submit(topology: Topology, config: Config) -> Result<RunningTopology, RuntimeError> {
    config.worker_priority.check()?;
    let plan = Plan::new(&topology, &config);
    let control = Arc::new(RunControl::new(plan.task_count));
    let metrics = plan.metrics.clone();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let ctl = control.clone();
    let drain = config.drain_timeout;
    let name = topology.name().to_string();
    let mode = config.mode;
    let thread = std::thread::Builder::new()
        .name(format!("squall-{}", topology.name()))
        .spawn(move || {
            // Before the worker threads are made: they inherit it.
            crate::task::alarm::tighten_timer_slack();
            let system = System::new();
            // Where the spouts' async tasks (a socket or Twitter spout's reader) run: off
            // the worker threads, so reading and framing do not take the spout's core.
            let io = IoThread::new(topology.name());
            let io_handle = io.clone();
            system.block_on(async move {
                let (arbiters, spouts, bolts) =
                    plan.start(&topology, &config, ctl.clone(), &io_handle);
                let _ = started_tx.send(());
                let ended = supervise(&ctl, &spouts, drain).await;
                drop(bolts);
                for a in &arbiters {
                    a.stop();
                }
                // Tasks that did not finish may be blocked for ever (a sink writing
                // to a pipe nobody reads): their threads are not waited for.
                if ended {
                    for a in arbiters {
                        let _ = a.join();
                    }
                }
            });
            io.stop();
        })?;
    started_rx.recv().map_err(|_| RuntimeError::Panicked)?;
    Ok(RunningTopology::new(
        name, control, metrics, thread, mode, drain,
    ))
}

/// Waits for the end of the run: every task finished, or a stop request (then spouts
/// drain, bounded by the drain timeout). `false` if the tasks did not finish.
async fn supervise(ctl: &RunControl, spouts: &[Addr<SpoutTask>], drain: Duration) -> bool {
    tokio::select! {
        _ = ctl.done_notify.notified() => return true,
        _ = ctl.stop_notify.notified() => {}
    }
    if ctl.is_done() {
        return true;
    }
    for s in spouts {
        s.do_send(Deactivate { drain });
    }
    let grace = drain + STOP_GRACE;
    if tokio::time::timeout(grace, ctl.done_notify.notified())
        .await
        .is_err()
    {
        tracing::warn!(
            "tasks did not finish within {:?} of the stop; stopping anyway",
            grace
        );
        return false;
    }
    true
}

impl Plan {
    /// Starts the worker threads and every task on them.
    fn start(
        mut self,
        topology: &Topology,
        config: &Config,
        control: Arc<RunControl>,
        io: &IoThread,
    ) -> (Vec<Arbiter>, Vec<Addr<SpoutTask>>, Vec<Addr<BoltTask>>) {
        let priority = config.worker_priority;
        let arbiters: Vec<Arbiter> = (0..config.workers)
            .map(|_| {
                // Runs on the new worker thread. `submit` checked that the priority can
                // be had, so a refusal here is unexpected: logged, the worker runs on.
                let runtime = move || {
                    if let Err(e) = priority.apply_to_this_thread() {
                        tracing::error!("worker thread: {e}");
                    }
                    crate::runtime::load::worker_runtime()
                };
                Arbiter::try_with_tokio_rt(runtime).unwrap_or_else(|e| {
                    tracing::warn!(
                        "worker runtime with load tracking failed ({e}); using the default"
                    );
                    Arbiter::new()
                })
            })
            .collect();
        // Outboxes first: they count the end markers each bolt task must wait for.
        let mut outboxes: HashMap<u32, Outbox> = HashMap::new();
        for c in topology.components() {
            for &id in &self.task_ids[&c.name].clone() {
                let ob = self.outbox(topology, &c.name, id, config);
                outboxes.insert(id, ob);
            }
        }
        let spout_tasks = spout_task_count(topology);
        let mut ack_txs = Vec::new();
        let mut ack_rxs = Vec::new();
        for _ in 0..spout_tasks {
            let (tx, rx) = mpsc::unbounded_channel();
            ack_txs.push(tx);
            ack_rxs.push(Some(SharedRx::unbounded(rx)));
        }
        let ledger = config.acking.then(|| Arc::new(Ledger::new(ack_txs)));
        let timeout_ms = config.message_timeout.as_millis() as u64;
        let settings = || BoltSettings {
            flush_interval: config.flush_interval,
            latency_sample: config.latency_sample,
        };
        // Stages of chained bolts, by the id of the task that hosts them, with their place
        // in the chain.
        let mut hosted: HashMap<u32, Vec<(usize, Stage)>> = HashMap::new();
        for (ci, c) in topology.components().iter().enumerate() {
            let ComponentKind::Bolt(factory) = &c.kind else {
                continue;
            };
            if !self.chained.contains_key(&c.name) {
                continue;
            }
            let host = host_of(&self.chained, &c.name).to_string();
            let depth = std::iter::successors(Some(c.name.as_str()), |n| {
                self.chained.get(*n).map(String::as_str)
            })
            .count();
            let cm = self.metrics.components[ci].clone();
            let ids = self.task_ids[&c.name].clone();
            let hosts = self.task_ids[&host].clone();
            for (ti, (&id, &host)) in ids.iter().zip(&hosts).enumerate() {
                let outbox = outboxes
                    .remove(&id)
                    .unwrap_or_else(|| unreachable!("outbox built for every task"));
                let ctx = self.context(&c.name, id, cm.counters.clone(), None, &control);
                let metrics = TaskMetrics::new(cm.tasks[ti].clone());
                let stage = Stage::new(ctx, factory.clone(), outbox, metrics);
                hosted.entry(host).or_default().push((depth, stage));
            }
        }
        let mut chain_of = |host: u32| -> Vec<Stage> {
            let mut stages = hosted.remove(&host).unwrap_or_default();
            stages.sort_by_key(|(depth, _)| *depth);
            stages.into_iter().map(|(_, s)| s).collect()
        };
        let mut spouts = Vec::new();
        let mut bolts = Vec::new();
        let mut slot = 0u32;
        for (ci, c) in topology.components().iter().enumerate() {
            if self.chained.contains_key(&c.name) {
                continue;
            }
            let cm = self.metrics.components[ci].clone();
            for (ti, &id) in self.task_ids[&c.name].clone().iter().enumerate() {
                let worker = self.worker_of.get(&id).copied().unwrap_or(0);
                let arb = arbiters[worker].handle();
                let outbox = outboxes
                    .remove(&id)
                    .unwrap_or_else(|| unreachable!("outbox built for every task"));
                let metrics = TaskMetrics::new(cm.tasks[ti].clone());
                let control = control.clone();
                let ledger = ledger.clone();
                match &c.kind {
                    ComponentKind::Spout(factory) => {
                        let pulse = Pulse::default();
                        let mut ctx = self.context(
                            &c.name,
                            id,
                            cm.counters.clone(),
                            Some(pulse.clone()),
                            &control,
                        );
                        ctx.io = Some(io.clone());
                        let acks = ack_rxs[slot as usize]
                            .take()
                            .unwrap_or_else(|| unreachable!("one ack channel per spout task"));
                        let settings = SpoutSettings {
                            max_pending: config.max_spout_pending,
                            timeout_ms,
                            batch_size: config.batch_size,
                            flush_interval: config.flush_interval,
                            event_time: c.event_time.clone(),
                        };
                        let factory = factory.clone();
                        let my_slot = slot;
                        slot += 1;
                        let chain = Chain::new(
                            chain_of(id),
                            ledger.clone(),
                            config.latency_sample,
                            control.clone(),
                        );
                        let addr = Supervisor::start_in_arbiter(&arb, move |_| {
                            SpoutTask::new(
                                ctx, factory, outbox, ledger, my_slot, acks, pulse, metrics,
                                settings, control, chain,
                            )
                        });
                        spouts.push(addr);
                    }
                    ComponentKind::Bolt(factory) => {
                        let ctx = self.context(&c.name, id, cm.counters.clone(), None, &control);
                        let inbox = self.inbox_rx[&id].clone();
                        let ends = self.expected_ends.get(&id).copied().unwrap_or(0);
                        let mut stages = vec![Stage::new(ctx, factory.clone(), outbox, metrics)];
                        stages.extend(chain_of(id));
                        let settings = settings();
                        // The address must outlive the run: actix restarts a supervised
                        // actor only while its address is held.
                        bolts.push(Supervisor::start_in_arbiter(&arb, move |_| {
                            BoltTask::new(stages, ledger, inbox, ends, settings, control)
                        }));
                    }
                }
            }
        }
        // The plan's own senders must not keep inboxes open.
        self.inbox_tx.clear();
        (arbiters, spouts, bolts)
    }
}
