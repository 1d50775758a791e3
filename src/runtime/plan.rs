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
/// whose only input is a `local_or_shuffle` grouping on a stream of another component of
/// the same parallelism, that no other bolt subscribes to. Task `i` of the chained bolt
/// runs in task `i` of the other, so its tuples need no transport (it is where
/// `local_or_shuffle` would send them anyway). Returns chained bolt → the component that
/// feeds it.
///
/// A bolt hosts one chained bolt (pairs only). In event mode a spout hosts a whole chain:
/// the bolts after it, each fed by the one before (spout → tokenize → hashtags runs in
/// the spout's task; no tuple of a line or a word crosses a queue).
fn chains(topology: &Topology, config: &Config) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    if !config.chaining {
        return out;
    }
    // The bolt that may run inside each component's tasks.
    let mut guest: HashMap<String, String> = HashMap::new();
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
            && a.parallelism == b.parallelism
            && !shared
            && !guest.contains_key(&a.name)
        {
            guest.insert(a.name.clone(), b.name.clone());
        }
    }
    let spouts_host = config.mode == crate::config::Mode::Event;
    for c in topology.components() {
        if c.is_spout() {
            if !spouts_host {
                continue;
            }
            let mut at = &c.name;
            while let Some(b) = guest.get(at) {
                out.insert(b.clone(), at.clone());
                at = b;
            }
        }
    }
    // Bolt pairs (outside spout chains): a bolt that runs inside another task does not
    // host one itself.
    let pairs: HashMap<String, String> = guest
        .iter()
        .filter(|(a, b)| {
            topology.component(a).is_some_and(|c| !c.is_spout())
                && !out.contains_key(*a)
                && !out.contains_key(*b)
        })
        .map(|(a, b)| (b.clone(), a.clone()))
        .collect();
    for (b, a) in &pairs {
        if !pairs.contains_key(a) {
            out.insert(b.clone(), a.clone());
        }
    }
    out
}

/// The component whose task runs `name` (itself, if it is not chained).
pub(super) fn host_of<'a>(chained: &'a HashMap<String, String>, name: &'a str) -> &'a str {
    let mut at = name;
    while let Some(next) = chained.get(at) {
        at = next;
    }
    at
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
        for b in chained.keys() {
            let a = host_of(&chained, b);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;

    fn chains_of(toml: &str, mode: Mode) -> Vec<(String, String)> {
        let file = crate::topology::file::load_str(toml, "test", &[], &crate::builtin::registry())
            .unwrap_or_else(|e| panic!("{e}"));
        let config = Config {
            mode,
            ..file.config
        };
        let mut c: Vec<_> = chains(&file.topology, &config).into_iter().collect();
        c.sort();
        c
    }

    const PIPE: &str = r#"
        name = "t"
        [spouts.source]
        type = "generator"
        parallelism = 2
        [bolts.tokenize]
        type = "tokenize"
        parallelism = 2
        inputs = [{ from = "source", grouping = "local_or_shuffle" }]
        [bolts.hashtags]
        type = "hashtags"
        parallelism = 2
        inputs = [{ from = "tokenize", grouping = "local_or_shuffle" }]
        [bolts.counts]
        type = "rolling_count"
        parallelism = 2
        inputs = [{ from = "hashtags", grouping = "local_or_shuffle" }]
        [bolts.sink]
        type = "console"
        parallelism = 2
        inputs = [{ from = "counts", grouping = "local_or_shuffle" }]
    "#;

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn in_event_mode_a_spout_hosts_the_whole_chain_after_it() {
        assert_eq!(
            chains_of(PIPE, Mode::Event),
            [
                pair("counts", "hashtags"),
                pair("hashtags", "tokenize"),
                pair("sink", "counts"),
                pair("tokenize", "source"),
            ]
        );
        let c: HashMap<String, String> = chains_of(PIPE, Mode::Event).into_iter().collect();
        assert_eq!(host_of(&c, "sink"), "source");
        assert_eq!(host_of(&c, "source"), "source");
    }

    #[test]
    fn in_micro_batch_mode_bolts_chain_in_pairs_and_spouts_host_none() {
        // tokenize hosts hashtags; counts is fed by a hosted bolt, so it is not chained,
        // nor is sink (its feeder would be hosted).
        assert_eq!(
            chains_of(PIPE, Mode::Microbatch),
            [pair("hashtags", "tokenize")]
        );
    }

    #[test]
    fn a_bolt_is_not_chained_where_it_shares_its_input_or_differs_in_parallelism() {
        let shared = PIPE.replace(
            "[bolts.sink]",
            "[bolts.other]\ntype = \"console\"\nparallelism = 2\ninputs = [{ from = \"tokenize\" }]\n[bolts.sink]",
        );
        // `hashtags` shares tokenize's stream with `other`: the spout's chain stops at
        // tokenize; hashtags hosts counts (and counts, being hosted, hosts nothing).
        assert_eq!(
            chains_of(&shared, Mode::Event),
            [pair("counts", "hashtags"), pair("tokenize", "source")]
        );
        let wider = PIPE.replacen("parallelism = 2", "parallelism = 1", 1);
        assert_eq!(
            chains_of(&wider, Mode::Event),
            [pair("hashtags", "tokenize")]
        );
    }
}
