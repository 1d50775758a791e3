//! Running a topology in this process: wiring tasks to worker threads, and the handle
//! that watches and stops the run.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::{Addr, Arbiter, Supervisor, System};
use tokio::sync::mpsc;

use super::config::{Config, ConfigError};
use crate::component::TaskContext;
use crate::data::tuple::{MetaRef, StreamMeta};
use crate::metrics::{
    ComponentMetrics, CustomCounters, MetricsRegistry, MetricsSnapshot, TaskMetrics, TaskStats,
};
use crate::runtime::event::bolt_task::{BoltSettings, BoltTask};
use crate::runtime::event::spout_task::{Deactivate, SpoutSettings, SpoutTask};
use crate::runtime::event::stage::Stage;
use crate::task::control::RunControl;
use crate::task::ledger::{Ledger, MAX_SPOUT_TASKS};
use crate::task::outbox::{Outbox, Route, StreamOut, Target};
use crate::task::transport::{Envelope, Pulse, SharedRx};
use crate::topology::{ComponentKind, Grouping, Topology};

/// Why a run could not start or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not start the runtime thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("the runtime thread panicked")]
    Panicked,
    #[error("{}", .0.join("; "))]
    Fatal(Vec<String>),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Priority(#[from] super::priority::PriorityError),
}

// Root ids carry the spout task in 16 bits: the topology's task limit keeps within them.
const _: () = assert!(crate::topology::MAX_TASKS <= MAX_SPOUT_TASKS);

/// Spout tasks in the topology (each has a slot in the ack routes).
fn spout_task_count(topology: &Topology) -> usize {
    topology
        .components()
        .iter()
        .filter(|c| c.is_spout())
        .map(|c| c.parallelism)
        .sum()
}

/// What a finished run leaves.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub topology: String,
    pub duration: Duration,
    pub metrics: MetricsSnapshot,
    /// How it ran (event or micro-batch).
    pub mode: super::config::Mode,
    /// Every task finished (bounded run, or a graceful stop that drained in time).
    pub completed: bool,
}

/// Runs topologies in this process, like Storm's `LocalCluster`.
pub struct LocalCluster;

impl LocalCluster {
    /// Starts the topology on its own worker threads and returns at once.
    pub fn submit(topology: Topology, config: Config) -> Result<RunningTopology, RuntimeError> {
        config.validate()?;
        if config.mode == super::config::Mode::Microbatch {
            return super::microbatch::submit(topology, config);
        }
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
                system.block_on(async move {
                    let (arbiters, spouts, bolts) = plan.start(&topology, &config, ctl.clone());
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
            })?;
        started_rx.recv().map_err(|_| RuntimeError::Panicked)?;
        Ok(RunningTopology {
            name,
            control,
            metrics,
            thread: Some(thread),
            started: Instant::now(),
            mode,
            drain,
            stop_at: OnceLock::new(),
        })
    }
}

/// How long a stop waits, beyond `drain_timeout`, for the tasks to finish (bolts flush
/// and see their end markers) before it gives up on them.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long the threads of a run that has ended are given to exit.
const THREAD_EXIT: Duration = Duration::from_secs(2);

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

/// A topology running in this process.
pub struct RunningTopology {
    pub(super) name: String,
    pub(super) control: Arc<RunControl>,
    pub(super) metrics: MetricsRegistry,
    pub(super) thread: Option<JoinHandle<()>>,
    pub(super) started: Instant,
    pub(super) mode: super::config::Mode,
    /// `config.drain_timeout`: bounds how long a stop waits.
    pub(super) drain: Duration,
    /// When the stop was first asked for.
    pub(super) stop_at: OnceLock<Instant>,
}

impl RunningTopology {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Current metrics, merged from every task (published every 100 ms).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    pub fn registry(&self) -> MetricsRegistry {
        self.metrics.clone()
    }

    /// Every task has finished.
    pub fn is_finished(&self) -> bool {
        self.control.is_done()
    }

    /// Waits for a bounded run to finish; `false` if it has not within `timeout`.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        self.control.wait_done(timeout)
    }

    /// Fatal errors so far (a spout that could not open, ...).
    pub fn errors(&self) -> Vec<String> {
        self.control.errors()
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Asks the spouts to stop and the in-flight trees to drain; returns at once.
    pub fn request_stop(&self) {
        self.stop_at.get_or_init(Instant::now);
        self.control.request_stop();
    }

    /// The time after which a stop gives up on tasks that have not finished.
    fn stop_deadline(&self) -> Instant {
        *self.stop_at.get_or_init(Instant::now) + self.drain + STOP_GRACE + THREAD_EXIT
    }

    /// After [`Self::request_stop`]: waits up to `timeout`; `true` once the run has ended
    /// or the stop has given up on its tasks (then [`Self::stop`] returns at once).
    pub fn wait_stopped(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if self.thread.as_ref().is_none_or(JoinHandle::is_finished)
                || now >= self.stop_deadline()
            {
                return true;
            }
            if now >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10).min(until - now));
        }
    }

    /// Graceful stop: spouts stop emitting, in-flight trees drain (bounded by the drain
    /// timeout), bolts flush, then the threads end. Tasks still busy `drain_timeout` +
    /// 5 s after the stop (a bolt blocked for ever, e.g. a sink writing to a pipe nobody
    /// reads) are given up on: their threads are left behind, the summary says the run
    /// did not complete.
    pub fn stop(mut self) -> Result<RunSummary, RuntimeError> {
        self.request_stop();
        let deadline = self.stop_deadline();
        self.finish(Some(deadline))
    }

    /// Waits for the run to end by itself (every spout finished), then returns.
    pub fn join(mut self) -> Result<RunSummary, RuntimeError> {
        self.finish(None)
    }

    /// Stops at once, without draining: for a process about to exit (a second Ctrl-C).
    /// The run's threads are left behind; the summary counts what was in flight as
    /// `abandoned` (trees in event mode, tuples of uncommitted batches in micro-batch
    /// mode).
    pub fn abandon(mut self) -> RunSummary {
        self.request_stop();
        drop(self.thread.take());
        let mut summary = self.summary();
        for c in summary.metrics.components.values_mut() {
            c.abandoned += std::mem::take(&mut c.pending);
        }
        summary
    }

    /// Waits for the run's thread to end (until `deadline` if given), then sums it up.
    fn finish(&mut self, deadline: Option<Instant>) -> Result<RunSummary, RuntimeError> {
        if let Some(t) = self.thread.take() {
            let exited = match deadline {
                None => true,
                Some(d) => wait_exit(&t, d),
            };
            if exited {
                t.join().map_err(|_| RuntimeError::Panicked)?;
            } else {
                tracing::warn!(
                    "the run's threads did not stop within {:?} of the stop (a component is blocked, e.g. a sink writing to a pipe nobody reads); leaving them",
                    self.drain + STOP_GRACE + THREAD_EXIT
                );
            }
        }
        let errors = self.control.errors();
        if !errors.is_empty() {
            return Err(RuntimeError::Fatal(errors));
        }
        Ok(self.summary())
    }

    fn summary(&self) -> RunSummary {
        RunSummary {
            topology: self.name.clone(),
            duration: self.started.elapsed(),
            metrics: self.metrics.snapshot(),
            mode: self.mode,
            completed: self.control.is_done(),
        }
    }
}

/// Waits until thread `t` has ended or `deadline` has passed; whether it ended.
fn wait_exit(t: &JoinHandle<()>, deadline: Instant) -> bool {
    while !t.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

impl Drop for RunningTopology {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.request_stop();
            if wait_exit(&t, self.stop_deadline()) {
                let _ = t.join();
            }
        }
    }
}

/// The worker of task `i` of a component. Task `i` of every component with several tasks
/// goes to worker `i % workers`, so tasks joined by a `local_or_shuffle` grouping with the
/// same parallelism share a worker (a tuple and everything it causes stay on one core,
/// data-parallel); single-task components are spread round-robin.
fn placement(parallelism: usize, i: usize, singles: &mut usize, workers: usize) -> usize {
    if parallelism > 1 {
        i % workers
    } else {
        *singles += 1;
        (*singles - 1) % workers
    }
}

/// Where every task runs and what it is connected to.
pub(super) struct Plan {
    pub(super) task_count: usize,
    pub(super) metrics: MetricsRegistry,
    /// task id → worker
    pub(super) worker_of: HashMap<u32, usize>,
    pub(super) task_ids: Arc<BTreeMap<String, Vec<u32>>>,
    pub(super) inbox_tx: HashMap<u32, mpsc::Sender<Envelope>>,
    pub(super) inbox_rx: HashMap<u32, SharedRx<Envelope>>,
    pub(super) expected_ends: HashMap<u32, usize>,
    /// Component → the fields of its default stream that its subscribers read.
    pub(super) read_fields: HashMap<String, Arc<[String]>>,
    /// Filter push-down: the test every subscriber applies, by component.
    pub(super) output_filters: HashMap<String, crate::component::InputFilter>,
    /// Chained bolt → the bolt whose task runs it.
    pub(super) chained: HashMap<String, String>,
}

/// Which bolts run inside the task that feeds them (Flink's operator chaining): a bolt
/// whose only input is a `local_or_shuffle` grouping on a stream of another bolt of the
/// same parallelism, that no other bolt subscribes to. Task `i` of the chained bolt runs in
/// task `i` of the other, so its tuples need no transport (it is where `local_or_shuffle`
/// would send them anyway). One chained bolt per task.
fn chains(topology: &Topology, config: &Config) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    if !config.chaining {
        return out;
    }
    for b in topology.components().iter().filter(|c| !c.is_spout()) {
        let [input] = b.inputs.as_slice() else {
            continue;
        };
        let Some(a) = topology.component(&input.source.component) else {
            continue;
        };
        let shared = topology
            .components()
            .iter()
            .any(|c| c.name != b.name && c.inputs.iter().any(|i| i.source == input.source));
        if input.grouping == Grouping::LocalOrShuffle
            && !a.is_spout()
            && a.parallelism == b.parallelism
            && !shared
            && !out.values().any(|head| head == &a.name)
        {
            out.insert(b.name.clone(), a.name.clone());
        }
    }
    // Pairs only: a bolt that runs inside another task does not host one itself.
    let hosted: Vec<String> = out
        .iter()
        .filter(|(_, head)| out.contains_key(*head))
        .map(|(b, _)| b.clone())
        .collect();
    for b in hosted {
        out.remove(&b);
    }
    out
}

impl Plan {
    pub(super) fn new(topology: &Topology, config: &Config) -> Plan {
        let task_ids = Arc::new(topology.task_ids());
        let chained = chains(topology, config);
        let mut worker_of = HashMap::new();
        let mut inbox_tx = HashMap::new();
        let mut inbox_rx = HashMap::new();
        let mut metrics = MetricsRegistry::default();
        let mut seq = 0usize;
        let mut singles = 0usize;
        for c in topology.components() {
            let ids = &task_ids[&c.name];
            for (i, &id) in ids.iter().enumerate() {
                worker_of.insert(
                    id,
                    placement(c.parallelism, i, &mut singles, config.workers),
                );
                seq += 1;
                if !c.is_spout() && !chained.contains_key(&c.name) {
                    let (tx, rx) = mpsc::channel(config.inbox_batches());
                    inbox_tx.insert(id, tx);
                    inbox_rx.insert(id, SharedRx::new(rx));
                }
            }
            metrics.components.push(ComponentMetrics {
                name: c.name.clone(),
                is_spout: c.is_spout(),
                tasks: ids
                    .iter()
                    .map(|_| Arc::new(Mutex::new(TaskStats::default())))
                    .collect(),
                counters: CustomCounters::default(),
            });
        }
        // A chained task runs on the worker of its host task.
        for (b, a) in &chained {
            for (bid, aid) in task_ids[b].iter().zip(&task_ids[a]) {
                if let Some(w) = worker_of.get(aid).copied() {
                    worker_of.insert(*bid, w);
                }
            }
        }
        let read_fields = topology
            .components()
            .iter()
            .filter_map(|c| {
                let f = topology.read_fields(&c.name, crate::data::tuple::DEFAULT_STREAM)?;
                Some((c.name.clone(), f.into()))
            })
            .collect();
        let output_filters = topology
            .components()
            .iter()
            .filter_map(|c| {
                let f = topology.output_filter(&c.name, crate::data::tuple::DEFAULT_STREAM)?;
                Some((c.name.clone(), f))
            })
            .collect();
        Plan {
            read_fields,
            output_filters,
            chained,
            task_count: seq,
            metrics,
            worker_of,
            task_ids,
            inbox_tx,
            inbox_rx,
            expected_ends: HashMap::new(),
        }
    }

    /// Builds the outbox of one task of component `comp`.
    pub(super) fn outbox(
        &mut self,
        topology: &Topology,
        comp: &str,
        task_id: u32,
        config: &Config,
    ) -> Outbox {
        let def = topology
            .component(comp)
            .map(|c| c.outputs.clone())
            .unwrap_or_default();
        let mut targets: Vec<Target> = Vec::new();
        let mut index: HashMap<u32, usize> = HashMap::new();
        let mut streams = Vec::new();
        let my_worker = self.worker_of.get(&task_id).copied().unwrap_or(0);
        let my_index = self.task_ids[comp]
            .iter()
            .position(|t| *t == task_id)
            .unwrap_or(0);
        for (stream, fields) in &def.streams {
            let meta = MetaRef::Static(Box::leak(Box::new(StreamMeta {
                component: comp.into(),
                stream: stream.as_str().into(),
                fields: fields.clone(),
            })));
            let mut routes = Vec::new();
            for bolt in topology.components().iter().filter(|c| !c.is_spout()) {
                for input in &bolt.inputs {
                    if input.source.component != comp || &input.source.stream != stream {
                        continue;
                    }
                    if self.chained.get(&bolt.name).map(String::as_str) == Some(comp) {
                        routes.push(Route::Local);
                        continue;
                    }
                    let ids = &self.task_ids[&bolt.name];
                    let mut idx = |id: u32| -> usize {
                        *index.entry(id).or_insert_with(|| {
                            targets.push(Target::new(id, self.inbox_tx[&id].clone()));
                            *self.expected_ends.entry(id).or_default() += 1;
                            targets.len() - 1
                        })
                    };
                    let all: Vec<usize> = ids.iter().map(|&id| idx(id)).collect();
                    let route = match &input.grouping {
                        Grouping::Shuffle => Route::Shuffle {
                            next: my_index % all.len(),
                            targets: all,
                        },
                        Grouping::LocalOrShuffle => {
                            let local: Vec<usize> = ids
                                .iter()
                                .zip(&all)
                                .filter(|(id, _)| self.worker_of.get(id) == Some(&my_worker))
                                .map(|(_, i)| *i)
                                .collect();
                            let targets = if local.is_empty() { all } else { local };
                            Route::Shuffle {
                                next: my_index % targets.len(),
                                targets,
                            }
                        }
                        Grouping::Fields(names) => Route::Fields {
                            fields: names.iter().filter_map(|n| fields.index_of(n)).collect(),
                            targets: all,
                        },
                        Grouping::All => Route::All { targets: all },
                        Grouping::Global => Route::Global { target: all[0] },
                        Grouping::Direct => Route::Direct {
                            targets: ids.iter().copied().zip(all).collect(),
                        },
                    };
                    routes.push(route);
                }
            }
            streams.push(StreamOut { meta, routes });
        }
        Outbox::new(task_id, targets, streams, config.batch_size, config.acking)
    }

    pub(super) fn context(
        &self,
        comp: &str,
        task_id: u32,
        counters: CustomCounters,
        pulse: Option<Pulse>,
        control: &Arc<RunControl>,
    ) -> TaskContext {
        let ids = &self.task_ids[comp];
        TaskContext {
            component: comp.into(),
            task_id,
            task_index: ids.iter().position(|t| *t == task_id).unwrap_or(0),
            parallelism: ids.len(),
            worker: self.worker_of.get(&task_id).copied().unwrap_or(0),
            component_tasks: self.task_ids.clone(),
            upstream_tasks: self.expected_ends.get(&task_id).copied().unwrap_or(0),
            counters,
            pulse,
            topk: self.metrics.topk.clone(),
            control: Some(control.clone()),
            state: None,
            io: None,
            read_fields: self.read_fields.get(comp).cloned(),
            output_filter: self.output_filters.get(comp).copied(),
        }
    }

    /// Starts the worker threads and every task on them.
    fn start(
        mut self,
        topology: &Topology,
        config: &Config,
        control: Arc<RunControl>,
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
                    super::load::worker_runtime()
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
        // Stages of chained bolts, by the id of the task that hosts them.
        let mut hosted: HashMap<u32, Stage> = HashMap::new();
        for (ci, c) in topology.components().iter().enumerate() {
            let (ComponentKind::Bolt(factory), Some(head)) = (&c.kind, self.chained.get(&c.name))
            else {
                continue;
            };
            let cm = self.metrics.components[ci].clone();
            let ids = self.task_ids[&c.name].clone();
            let heads = self.task_ids[head].clone();
            for (ti, (&id, &host)) in ids.iter().zip(&heads).enumerate() {
                let outbox = outboxes
                    .remove(&id)
                    .unwrap_or_else(|| unreachable!("outbox built for every task"));
                let ctx = self.context(&c.name, id, cm.counters.clone(), None, &control);
                let metrics = TaskMetrics::new(cm.tasks[ti].clone());
                hosted.insert(host, Stage::new(ctx, factory.clone(), outbox, metrics));
            }
        }
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
                        let ctx = self.context(
                            &c.name,
                            id,
                            cm.counters.clone(),
                            Some(pulse.clone()),
                            &control,
                        );
                        let acks = ack_rxs[slot as usize]
                            .take()
                            .unwrap_or_else(|| unreachable!("one ack channel per spout task"));
                        let settings = SpoutSettings {
                            max_pending: config.max_spout_pending,
                            timeout_ms,
                            batch_size: config.batch_size,
                            flush_interval: config.flush_interval,
                        };
                        let factory = factory.clone();
                        let my_slot = slot;
                        slot += 1;
                        let addr = Supervisor::start_in_arbiter(&arb, move |_| {
                            SpoutTask::new(
                                ctx, factory, outbox, ledger, my_slot, acks, pulse, metrics,
                                settings, control,
                            )
                        });
                        spouts.push(addr);
                    }
                    ComponentKind::Bolt(factory) => {
                        let ctx = self.context(&c.name, id, cm.counters.clone(), None, &control);
                        let inbox = self.inbox_rx[&id].clone();
                        let ends = self.expected_ends.get(&id).copied().unwrap_or(0);
                        let mut stages = vec![Stage::new(ctx, factory.clone(), outbox, metrics)];
                        stages.extend(hosted.remove(&id));
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
