//! Micro-batch mode (Storm's Trident): the same topology, run in transactional batches.
//!
//! A batch is cut from every spout task (transactional spouts record the metadata that
//! re-emits it exactly), runs through the bolts in topological order — each bolt task gets
//! its tuples of the batch at once (`execute_batch`), then `finish_batch` — and commits:
//! the state writes of every task and the batch's txid go to the store in one atomic,
//! fsynced transaction, strictly in txid order; then the spouts are told. Several batches
//! are in flight at once (`batches_in_flight` driver threads, a pipeline: every task takes
//! batches in txid order). A failed batch is emitted again, with the same txid and
//! tuples, after the tasks are reset to their committed state; a restart resumes after the
//! last committed txid. A batch not committed `batch_timeout` after its start fails; a
//! task that does not give it back within as long again stops the run (the supervisor is
//! the watchdog).

mod batch_stage;
mod cells;
mod coordinator;
mod driver;
mod spout_slot;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sync::lock;
use cells::{BoltCell, SpoutCell};
use coordinator::Coordinator;
use driver::{Record, RecordHook, Run};
use spout_slot::SpoutSlot;

use super::error::RuntimeError;
use super::plan::Plan;
use super::running::RunningTopology;
use crate::config::Config;
use crate::metrics::TaskMetrics;
use crate::runtime::stage::Stage;
use crate::state::TaskState;
use crate::state::options::TopologyOptions;
use crate::task::control::RunControl;
use crate::task::io_thread::IoThread;
use crate::topology::{ComponentKind, Topology};

/// The bolts in an order where every bolt comes after the components it reads from.
fn topological(topology: &Topology) -> Vec<usize> {
    let comps = topology.components();
    let mut done: Vec<bool> = comps.iter().map(|c| c.is_spout()).collect();
    let mut order = Vec::new();
    while order.len() < comps.iter().filter(|c| !c.is_spout()).count() {
        let before = order.len();
        for (i, c) in comps.iter().enumerate() {
            if done[i] {
                continue;
            }
            let ready = c.inputs.iter().all(|inp| {
                comps
                    .iter()
                    .position(|x| x.name == inp.source.component)
                    .is_none_or(|k| done[k])
            });
            if ready {
                done[i] = true;
                order.push(i);
            }
        }
        if order.len() == before {
            break; // a cycle: the builder rejects those
        }
    }
    order
}

/// The components and their parallelism: state is partitioned by task, so a state
/// directory only fits the layout that wrote it.
fn layout(topology: &Topology) -> String {
    topology
        .components()
        .iter()
        .map(|c| format!("{}:{}", c.name, c.parallelism))
        .collect::<Vec<_>>()
        .join(",")
}

/// The options each component's state depends on (`Bolt::state_options`,
/// `Spout::state_options`), asked of one instance of each.
fn state_options(topology: &Topology) -> TopologyOptions {
    topology
        .components()
        .iter()
        .filter_map(|c| {
            let o = match &c.kind {
                ComponentKind::Spout(f) => f().state_options(),
                ComponentKind::Bolt(f) => f().state_options(),
            };
            (!o.is_empty()).then(|| (c.name.clone(), o))
        })
        .collect()
}

pub(crate) fn submit(topology: Topology, config: Config) -> Result<RunningTopology, RuntimeError> {
    start(topology, config, None)
}

/// Starts the run; `before_record` is called before each batch record is stored.
fn start(
    topology: Topology,
    config: Config,
    before_record: Option<RecordHook>,
) -> Result<RunningTopology, RuntimeError> {
    if config.worker_priority != crate::config::priority::WorkerPriority::Normal {
        tracing::warn!(
            "config.worker_priority applies to event mode; micro-batch threads run at normal priority (its latency is a batch interval)"
        );
    }
    let store = Arc::new(crate::state::store::open(config.state_dir.as_ref())?);
    store.check_layout(&layout(&topology))?;
    store.check_options(&state_options(&topology))?;
    let committed = store.committed_txid()?;
    let mut records: BTreeMap<u64, Record> = BTreeMap::new();
    for (txid, bytes) in store.batches_from(committed)? {
        let rec: Record =
            serde_json::from_slice(&bytes).map_err(|e| crate::state::StateError::Invalid {
                path: store.path().to_string(),
                message: format!("batch record {txid} does not decode: {e}"),
            })?;
        records.insert(txid, rec);
    }
    // Tuples move between tasks as vectors inside a batch: no transport batching, no ack
    // tracking (the batch is the unit of success). Chained bolts run inside their host
    // task, tuple by tuple, so intermediate tuples (words) never pile up in a batch.
    let mut plan_cfg = config.clone();
    plan_cfg.acking = false;
    plan_cfg.batch_size = usize::MAX;
    let mut plan = Plan::new(&topology, &plan_cfg);
    let control = Arc::new(RunControl::new(1));
    // Where the components' async tasks run (a socket or Twitter spout's reader).
    let io = IoThread::new(topology.name());
    let mut outboxes = HashMap::new();
    for c in topology.components() {
        for &id in &plan.task_ids[&c.name].clone() {
            let ob = plan.outbox(&topology, &c.name, id, &plan_cfg);
            outboxes.insert(id, ob);
        }
    }
    let mut spouts = Vec::new();
    let mut committed_counters = Vec::new();
    let mut replayed_counters = Vec::new();
    let mut timed_out_counters = Vec::new();
    let mut labels = Vec::new();
    for (ci, c) in topology.components().iter().enumerate() {
        let ComponentKind::Spout(factory) = &c.kind else {
            continue;
        };
        let cm = plan.metrics.components[ci].clone();
        committed_counters.push(cm.counters.get("batches_committed"));
        replayed_counters.push(cm.counters.get("batches_replayed"));
        timed_out_counters.push(cm.counters.get("timed_out_batches"));
        for (ti, &id) in plan.task_ids[&c.name].clone().iter().enumerate() {
            let Some(outbox) = outboxes.remove(&id) else {
                continue;
            };
            let mut ctx = plan.context(&c.name, id, cm.counters.clone(), None, &control);
            ctx.state = Some(Arc::new(TaskState::new(store.clone(), &c.name, ti)));
            ctx.io = Some(io.clone());
            let mut cell = SpoutCell::new(
                ctx,
                factory.clone(),
                outbox,
                TaskMetrics::new(cm.tasks[ti].clone()),
                c.event_time.clone(),
            );
            let pending = records
                .iter()
                .filter(|(t, _)| **t > committed)
                .filter_map(|(t, r)| r.spouts.get(&cell.key).map(|m| (*t, m.clone())))
                .collect();
            let last = records
                .values()
                .rev()
                .find_map(|r| r.spouts.get(&cell.key).cloned());
            cell.restore(pending, last);
            labels.push(format!("spout {}", cell.label()));
            spouts.push(SpoutSlot::new(cell));
        }
    }
    let mut bolts = Vec::new();
    let mut states = Vec::new();
    let mut slot_of = HashMap::new();
    let comps = topology.components();
    let stage_of = |ci: usize, ti: usize, outboxes: &mut HashMap<u32, _>| {
        let c = &comps[ci];
        let ComponentKind::Bolt(factory) = &c.kind else {
            return None;
        };
        let cm = plan.metrics.components[ci].clone();
        let id = plan.task_ids[&c.name][ti];
        let outbox = outboxes.remove(&id)?;
        let state = Arc::new(TaskState::new(store.clone(), &c.name, ti));
        let mut ctx = plan.context(&c.name, id, cm.counters.clone(), None, &control);
        ctx.state = Some(state.clone());
        ctx.io = Some(io.clone());
        let stage = Stage::new(
            ctx,
            factory.clone(),
            outbox,
            TaskMetrics::new(cm.tasks[ti].clone()),
        );
        Some((id, stage, state))
    };
    for ci in topological(&topology) {
        let c = &comps[ci];
        if c.is_spout() || plan.chained.contains_key(&c.name) {
            continue;
        }
        let guest = plan
            .chained
            .iter()
            .find(|(_, head)| **head == c.name)
            .and_then(|(b, _)| comps.iter().position(|x| x.name == *b));
        for ti in 0..c.parallelism {
            let Some((id, stage, state)) = stage_of(ci, ti, &mut outboxes) else {
                continue;
            };
            let mut cell = BoltCell {
                stages: vec![stage],
                states: vec![state],
            };
            if let Some((_, s, st)) = guest.and_then(|g| stage_of(g, ti, &mut outboxes)) {
                cell.stages.push(s);
                cell.states.push(st);
            }
            slot_of.insert(id, bolts.len());
            labels.push(format!("bolt {}", cell.label()));
            states.extend(cell.states.iter().cloned());
            bolts.push(Mutex::new(cell));
        }
    }
    plan.inbox_tx.clear();
    let cut_until = records.keys().next_back().map_or(committed + 1, |t| t + 1);
    // Event time: a new batch's watermark starts from the last recorded one.
    let watermark = records.values().filter_map(|r| r.watermark).max();
    let cells = spouts.len() + bolts.len();
    let run = Arc::new(Run {
        coord: Coordinator::new(
            committed,
            cut_until,
            cells,
            config.batch_interval,
            config.batches_in_flight,
            config.batch_timeout,
        ),
        spouts,
        bolts,
        states,
        slot_of,
        store: store.clone(),
        records: Mutex::new(records),
        control: control.clone(),
        max_batch: config.max_batch,
        interval: config.batch_interval,
        committed: committed_counters,
        replayed: replayed_counters,
        timed_out: timed_out_counters,
        labels,
        state_dir: config.state_dir.clone(),
        before_record,
        watermark: Mutex::new(watermark),
    });
    let drivers = config.batches_in_flight;
    let name = topology.name().to_string();
    let metrics = plan.metrics.clone();
    let ctl = control.clone();
    let thread = std::thread::Builder::new()
        .name(format!("squall-mb-{name}"))
        .spawn(move || supervise(run, drivers, ctl, io))?;
    Ok(RunningTopology::new(
        name,
        control,
        metrics,
        thread,
        crate::config::Mode::Microbatch,
        config.drain_timeout,
    ))
}

/// How often the supervisor checks the batches in flight for timeouts.
const WATCH_EVERY: Duration = Duration::from_millis(20);

/// After a stuck batch stops the run: how long the other drivers are given to exit (they
/// only have to notice that their batches were abandoned).
const GIVE_UP_GRACE: Duration = Duration::from_secs(1);

/// Opens every task, runs the driver threads until the run ends (watching for batches
/// that time out), closes every task and stops the I/O thread.
fn supervise(run: Arc<Run>, drivers: usize, control: Arc<RunControl>, io: IoThread) {
    let mut opened = true;
    let mut stuck = false;
    for s in &run.spouts {
        if let Err(e) = s.lock().open() {
            control.fatal(e);
            opened = false;
        }
    }
    for b in &run.bolts {
        lock(b).prepare(&control);
    }
    if opened && control.errors().is_empty() {
        let me = std::thread::current();
        let handles: Vec<_> = (0..drivers)
            .filter_map(|i| {
                let r = run.clone();
                let supervisor = me.clone();
                std::thread::Builder::new()
                    .name(format!("squall-batch-{i}"))
                    .spawn(move || {
                        r.drive();
                        supervisor.unpark();
                    })
                    .map_err(|e| control.fatal(format!("cannot start a batch driver: {e}")))
                    .ok()
            })
            .collect();
        stuck = watch(&run, handles, &control);
    }
    if stuck {
        // A task is stuck inside a call: its cell stays locked for ever. Close what is
        // free; the run's threads that are stuck are left behind (they cannot commit: the
        // batches are abandoned).
        for s in &run.spouts {
            match s.try_lock() {
                Some(mut c) => c.close(),
                None => tracing::warn!("a spout task is still busy: not closed"),
            }
        }
        for b in &run.bolts {
            match b.try_lock() {
                Ok(mut c) => c.cleanup(),
                Err(TryLockError::Poisoned(p)) => p.into_inner().cleanup(),
                Err(TryLockError::WouldBlock) => {
                    tracing::warn!("a bolt task is still busy: not cleaned up")
                }
            }
        }
    } else {
        for s in &run.spouts {
            s.lock().close();
        }
        for b in &run.bolts {
            lock(b).cleanup();
        }
    }
    io.stop();
    tracing::info!(
        "micro-batch run ended at txid {} ({} in flight)",
        run.coord.last_committed(),
        run.coord.in_flight()
    );
    control.task_finished();
}

/// Waits for the driver threads to end, checking meanwhile for batches that time out.
/// When a batch is stuck (the run must stop), gives the other drivers
/// [`GIVE_UP_GRACE`] to exit and leaves the rest behind; returns whether it did.
fn watch(run: &Run, handles: Vec<JoinHandle<()>>, control: &RunControl) -> bool {
    let mut stuck = false;
    let mut give_up_at = None;
    while !handles.iter().all(JoinHandle::is_finished) {
        let now = Instant::now();
        if give_up_at.is_none()
            && let Some(error) = run.watch(now)
        {
            control.fatal(error);
            run.coord.give_up();
            give_up_at = Some(now + GIVE_UP_GRACE);
        }
        if give_up_at.is_some_and(|at| now >= at) {
            stuck = true;
            break;
        }
        std::thread::park_timeout(WATCH_EVERY);
    }
    for h in handles {
        if !h.is_finished() {
            continue; // stuck: detached
        }
        if h.join().is_err() {
            control.fatal("a batch driver panicked".into());
        }
    }
    stuck
}

/// What the start banner says about state.
pub(crate) fn describe_state(config: &Config) -> String {
    match &config.state_dir {
        Some(d) => format!("state in {}", d.display()),
        None => "state in memory (use --state-dir to persist it)".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Condvar;

    use super::*;
    use crate::bolts::count::CountConfig;
    use crate::component::registry::{BoltConfig, SpoutConfig};
    use crate::config::Mode;
    use crate::spouts::generator::GeneratorSpoutConfig;
    use crate::state::Store;
    use crate::topology::TopologyBuilder;

    /// generator (2 tasks) → count by tweet id.
    fn topology() -> Topology {
        let source = GeneratorSpoutConfig {
            limit: 4_000,
            rate: 0.0,
            seed: 3,
            ..Default::default()
        };
        let counts = CountConfig {
            field: Some("id".into()),
        };
        let mut b = TopologyBuilder::new("records");
        b.spout_factory(
            "source",
            source.build().unwrap_or_else(|e| panic!("{e}")),
            2,
        );
        b.bolt_factory(
            "counts",
            counts.build().unwrap_or_else(|e| panic!("{e}")),
            2,
        )
        .fields("source", ["id"]);
        b.build().unwrap_or_else(|e| panic!("topology: {e}"))
    }

    /// The order guarantee behind every restart: batch records are stored in txid order,
    /// so the store never holds the record of batch t + 1 without that of t (a kill then
    /// made the restart cut t again after t + 1's range: records lost, others counted
    /// twice). Batch 1's record is made slow to store: it waits until batch 2 tries to
    /// store its own, or 1 s. With the guarantee, batch 2 is not cut before batch 1 is
    /// recorded, so it never gets there first; without it, it does at once.
    #[test]
    fn batch_records_are_stored_in_txid_order_even_when_one_is_slow_to_store() {
        let wrong: Arc<Mutex<Vec<String>>> = Arc::default();
        let calls: Arc<Mutex<Vec<u64>>> = Arc::default();
        let second = Arc::new((Mutex::new(false), Condvar::new()));
        let hook: RecordHook = {
            let (wrong, calls, second) = (wrong.clone(), calls.clone(), second.clone());
            Arc::new(move |store: &Store, txid: u64| {
                lock(&calls).push(txid);
                let committed = store.committed_txid().unwrap_or(0);
                let recorded: Vec<u64> = store
                    .batches_from(0)
                    .map(|r| r.into_iter().map(|(t, _)| t).collect())
                    .unwrap_or_default();
                let missing: Vec<u64> = (committed + 1..txid)
                    .filter(|t| !recorded.contains(t))
                    .collect();
                let ahead: Vec<u64> = recorded.iter().copied().filter(|t| *t >= txid).collect();
                if !missing.is_empty() || !ahead.is_empty() {
                    lock(&wrong).push(format!(
                        "storing batch {txid}'s record (committed {committed}): records of {missing:?} missing, of {ahead:?} already stored"
                    ));
                }
                let (reached, cv) = &*second;
                if txid == 2 {
                    *lock(reached) = true;
                    cv.notify_all();
                } else if txid == 1 {
                    let g = lock(reached);
                    let _ = cv.wait_timeout_while(g, Duration::from_secs(1), |r| !*r);
                }
            })
        };
        let config = Config {
            mode: Mode::Microbatch,
            batch_interval: Duration::from_millis(1),
            max_batch: 100,
            batches_in_flight: 3,
            ..Config::default()
        };
        let run = start(topology(), config, Some(hook)).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            run.wait_finished(Duration::from_secs(60)),
            "the run did not end"
        );
        run.join().unwrap_or_else(|e| panic!("{e}"));
        let calls = lock(&calls).clone();
        assert!(
            calls.len() >= 10 && calls.windows(2).all(|w| w[0] < w[1]),
            "records stored: {calls:?}"
        );
        let wrong = lock(&wrong).clone();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
