//! Where every task of a topology runs and what it is connected to, for either mode:
//! worker placement, operator chaining, inboxes, outboxes and task contexts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::component::TaskContext;
use crate::config::Config;
use crate::data::tuple::{MetaRef, StreamMeta};
use crate::metrics::{ComponentMetrics, CustomCounters, MetricsRegistry, TaskStats};
use crate::task::control::RunControl;
use crate::task::ledger::MAX_SPOUT_TASKS;
use crate::task::outbox::{Outbox, Route, StreamOut, Target};
use crate::task::transport::{Envelope, Pulse, SharedRx};
use crate::topology::{Grouping, Topology};

// Root ids carry the spout task in 16 bits: the topology's task limit keeps within them.
const _: () = assert!(crate::topology::MAX_TASKS <= MAX_SPOUT_TASKS);

/// Spout tasks in the topology (each has a slot in the ack routes).
pub(crate) fn spout_task_count(topology: &Topology) -> usize {
    topology
        .components()
        .iter()
        .filter(|c| c.is_spout())
        .map(|c| c.parallelism)
        .sum()
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
    pub(super) extensions: HashMap<String, crate::component::Extension>,
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
        let extensions = topology
            .components()
            .iter()
            .filter_map(|c| Some((c.name.clone(), c.extension.clone()?)))
            .collect();
        Plan {
            read_fields,
            output_filters,
            extensions,
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
            expected_partials: None,
            counters,
            pulse,
            topk: self.metrics.topk.clone(),
            control: Some(control.clone()),
            state: None,
            io: None,
            read_fields: self.read_fields.get(comp).cloned(),
            output_filter: self.output_filters.get(comp).copied(),
            extension: self.extensions.get(comp).cloned(),
        }
    }
}
