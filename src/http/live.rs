//! The sampler: once a second it reads every task's published stats and turns them into
//! what the endpoints serve (totals, rates over the last interval, capacity, a bounded
//! history of complete latency).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;
use serde::ser::SerializeMap;

use super::SAMPLE_INTERVAL;
use super::topology::TopologyInfo;
use crate::metrics::{COUNTERS, Counter, Counts, Live};
use crate::metrics::{MetricsRegistry, Percentiles, TaskSample};

/// Samples of complete latency kept for the dashboard's line chart (5 minutes).
pub const HISTORY_LEN: usize = 300;

/// `GET /api/metrics` (and the `metrics` event of `/api/events`).
#[derive(Clone, Debug, Serialize, Default)]
pub struct MetricsBody {
    pub topology: String,
    /// Seconds since the server started (with the run).
    pub uptime_s: f64,
    /// The window the rates and capacity are measured over, in seconds.
    pub interval_s: f64,
    /// Tuples emitted per second by all spouts over the last interval.
    pub throughput_tps: f64,
    pub components: Vec<ComponentMetrics>,
    pub edges: Vec<EdgeRate>,
    /// Complete latency of the trees completed in the last interval, per spout.
    pub latency: LatencyPoint,
}

/// One component: totals since the start, rates over the last interval, and its tasks.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentMetrics {
    pub name: String,
    pub kind: &'static str,
    pub tasks: usize,
    /// Summed over the tasks (the counters [`Live::Component`] and up shown).
    #[serde(flatten)]
    pub totals: Shown<u64>,
    /// Per second over the last interval (the counters with a `rate` shown, as `*_per_s`).
    #[serde(flatten)]
    pub rates: Shown<f64>,
    /// Busiest task's busy fraction over the last interval (0..1).
    pub capacity: f64,
    pub busy_s: f64,
    /// Since the start (bolts; sampled one tuple in `latency_sample`).
    pub execute_latency_us: Percentiles,
    /// Since the start (spouts).
    pub complete_latency_us: Percentiles,
    pub per_task: Vec<TaskMetrics>,
}

/// One task of a component.
#[derive(Clone, Debug, Serialize)]
pub struct TaskMetrics {
    /// Index within the component, from 0.
    pub task: usize,
    /// The counters [`Live::Tasks`] shown.
    #[serde(flatten)]
    pub counts: Shown<u64>,
    pub capacity: f64,
    pub busy_s: f64,
}

/// Counts (or rates) of which `/api/metrics` shows those [`COUNTERS`] marks for `view`.
#[derive(Clone, Copy, Debug)]
pub struct Shown<T> {
    pub values: Counts<T>,
    view: View,
}

/// Where in `/api/metrics` a [`Shown`] is.
#[derive(Clone, Copy, Debug)]
enum View {
    /// A component's totals.
    Component,
    /// A task's counts.
    Task,
    /// A component's rates.
    Rates,
}

impl View {
    /// The key `counter` is shown under here, if shown.
    fn key(self, counter: &Counter) -> Option<&'static str> {
        match self {
            View::Component => (counter.live >= Live::Component).then_some(counter.name),
            View::Task => (counter.live >= Live::Tasks).then_some(counter.name),
            View::Rates => counter.rate,
        }
    }
}

impl<T> Shown<T> {
    fn new(values: Counts<T>, view: View) -> Self {
        Shown { values, view }
    }
}

impl<T: Serialize> Serialize for Shown<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (c, v) in COUNTERS.iter().zip(self.values.values()) {
            if let Some(key) = self.view.key(c) {
                map.serialize_entry(key, v)?;
            }
        }
        map.end()
    }
}

/// Tuples per second on one edge of the graph: what its source emitted (all streams).
#[derive(Clone, Debug, Serialize)]
pub struct EdgeRate {
    pub from: String,
    pub to: String,
    pub stream: String,
    pub grouping: &'static str,
    pub tuples_per_s: f64,
}

/// Complete-latency percentiles (µs) of one interval, per spout.
#[derive(Clone, Debug, Serialize, Default)]
pub struct LatencyPoint {
    /// Unix time of the sample, in seconds.
    pub t: f64,
    pub spouts: BTreeMap<String, Percentiles>,
}

/// `GET /api/topk`.
#[derive(Clone, Debug, Serialize, Default)]
pub struct TopkBody {
    /// The last ranking a `total_rank` bolt produced, best first; empty before the first.
    pub ranking: Vec<TopkEntry>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TopkEntry {
    pub key: String,
    pub count: u64,
}

struct Previous {
    at: Instant,
    tasks: Vec<TaskSample>,
    complete: HashMap<String, Histogram<u64>>,
}

#[derive(Default)]
struct Latest {
    body: Arc<MetricsBody>,
    history: VecDeque<LatencyPoint>,
    /// Capacity per (component, task index), for `/metrics`.
    capacity: HashMap<(String, usize), f64>,
    previous: Option<Previous>,
}

/// What the handlers share.
pub(crate) struct State {
    pub(crate) graph: Arc<TopologyInfo>,
    pub(crate) registry: MetricsRegistry,
    pub(crate) started: Instant,
    pub(crate) sse_clients: AtomicUsize,
    latest: RwLock<Latest>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn rate(now: u64, before: u64, secs: f64) -> f64 {
    now.saturating_sub(before) as f64 / secs
}

impl State {
    pub(crate) fn new(graph: Arc<TopologyInfo>, registry: MetricsRegistry) -> State {
        let s = State {
            graph,
            registry,
            started: Instant::now(),
            sse_clients: AtomicUsize::new(0),
            latest: RwLock::new(Latest::default()),
        };
        s.sample();
        s
    }

    pub(crate) fn metrics(&self) -> Arc<MetricsBody> {
        self.latest
            .read()
            .map(|l| l.body.clone())
            .unwrap_or_else(|p| p.into_inner().body.clone())
    }

    pub(crate) fn history(&self) -> Vec<LatencyPoint> {
        let read = |l: &Latest| l.history.iter().cloned().collect();
        match self.latest.read() {
            Ok(l) => read(&l),
            Err(p) => read(&p.into_inner()),
        }
    }

    pub(crate) fn capacity(&self) -> HashMap<(String, usize), f64> {
        match self.latest.read() {
            Ok(l) => l.capacity.clone(),
            Err(p) => p.into_inner().capacity.clone(),
        }
    }

    pub(crate) fn topk(&self) -> TopkBody {
        TopkBody {
            ranking: self
                .registry
                .topk
                .get()
                .unwrap_or_default()
                .into_iter()
                .map(|(key, count)| TopkEntry { key, count })
                .collect(),
        }
    }

    /// Takes one sample (the sampler calls this every [`SAMPLE_INTERVAL`]).
    pub(crate) fn sample(&self) {
        let now = Instant::now();
        let tasks = self.registry.tasks();
        let snap = self.registry.snapshot();
        let mut latest = match self.latest.write() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        let (secs, before) = match &latest.previous {
            Some(p) => (now.duration_since(p.at), Some(p)),
            None => (now.duration_since(self.started), None),
        };
        let secs = secs.max(Duration::from_millis(1)).as_secs_f64();
        let zero = crate::metrics::TaskStats::default();
        let mut components: Vec<ComponentMetrics> = Vec::new();
        let mut capacity = HashMap::new();
        for (i, t) in tasks.iter().enumerate() {
            let prev = before
                .and_then(|b| b.tasks.get(i))
                .filter(|p| p.component == t.component && p.index == t.index)
                .map(|p| &p.stats)
                .unwrap_or(&zero);
            let s = &t.stats;
            let cap = (s.busy_ns.saturating_sub(prev.busy_ns) as f64 / 1e9 / secs).clamp(0.0, 1.0);
            capacity.insert((t.component.clone(), t.index), cap);
            if components.last().is_none_or(|c| c.name != t.component) {
                let c = snap.components.get(&t.component);
                components.push(ComponentMetrics {
                    name: t.component.clone(),
                    kind: t.kind,
                    tasks: 0,
                    totals: Shown::new(Counts::default(), View::Component),
                    rates: Shown::new(Counts::default(), View::Rates),
                    capacity: 0.0,
                    busy_s: 0.0,
                    execute_latency_us: c.map(|c| c.execute_latency_us.clone()).unwrap_or_default(),
                    complete_latency_us: c
                        .map(|c| c.complete_latency_us.clone())
                        .unwrap_or_default(),
                    per_task: Vec::new(),
                });
            }
            let Some(c) = components.last_mut() else {
                continue;
            };
            c.tasks += 1;
            c.totals.values.add(&s.counts);
            let rates = COUNTERS.iter().zip(c.rates.values.values_mut());
            for ((counter, r), (now, before)) in
                rates.zip(s.values().into_iter().zip(prev.values()))
            {
                if counter.rate.is_some() {
                    *r += rate(*now, *before, secs);
                }
            }
            c.capacity = c.capacity.max(cap);
            c.busy_s += s.busy_ns as f64 / 1e9;
            c.per_task.push(TaskMetrics {
                task: t.index,
                counts: Shown::new(s.counts, View::Task),
                capacity: cap,
                busy_s: s.busy_ns as f64 / 1e9,
            });
        }
        let emitted_rate: HashMap<&str, f64> = components
            .iter()
            .map(|c| (c.name.as_str(), c.rates.values.emitted))
            .collect();
        let mut edges = Vec::new();
        for c in &self.graph.components {
            for i in &c.inputs {
                edges.push(EdgeRate {
                    from: i.from.clone(),
                    to: c.name.clone(),
                    stream: i.stream.clone(),
                    grouping: i.grouping,
                    tuples_per_s: emitted_rate.get(i.from.as_str()).copied().unwrap_or(0.0),
                });
            }
        }
        // Complete latency of this interval: the cumulative histogram minus the last one.
        let mut complete = HashMap::new();
        let mut point = LatencyPoint {
            t: unix_now(),
            spouts: BTreeMap::new(),
        };
        for (name, c) in &snap.components {
            let Some(h) = &c.complete_histogram else {
                continue;
            };
            let mut delta = h.clone();
            if let Some(p) = before.and_then(|b| b.complete.get(name))
                && delta.subtract(p).is_err()
            {
                delta.reset();
            }
            point.spouts.insert(name.clone(), Percentiles::of(&delta));
            complete.insert(name.clone(), h.clone());
        }
        let throughput_tps = components
            .iter()
            .filter(|c| c.kind == "spout")
            .map(|c| c.rates.values.emitted)
            .sum();
        latest.body = Arc::new(MetricsBody {
            topology: self.graph.name.clone(),
            uptime_s: now.duration_since(self.started).as_secs_f64(),
            interval_s: secs,
            throughput_tps,
            components,
            edges,
            latency: point.clone(),
        });
        if latest.history.len() >= HISTORY_LEN {
            latest.history.pop_front();
        }
        latest.history.push_back(point);
        latest.capacity = capacity;
        latest.previous = Some(Previous {
            at: now,
            tasks,
            complete,
        });
    }
}

/// Samples every [`SAMPLE_INTERVAL`] until the server stops.
pub(crate) async fn sample_forever(state: Arc<State>) {
    let mut every = actix_web::rt::time::interval(SAMPLE_INTERVAL);
    every.tick().await;
    loop {
        every.tick().await;
        state.sample();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::metrics::ComponentMetrics as Cells;
    use crate::metrics::TaskStats;

    fn registry() -> (MetricsRegistry, Vec<Arc<Mutex<TaskStats>>>) {
        let cells: Vec<_> = (0..2)
            .map(|_| Arc::new(Mutex::new(TaskStats::default())))
            .collect();
        let mut r = MetricsRegistry::default();
        r.components.push(Cells {
            name: "source".into(),
            is_spout: true,
            tasks: cells.clone(),
            counters: Default::default(),
        });
        (r, cells)
    }

    fn graph() -> TopologyInfo {
        TopologyInfo {
            name: "t".into(),
            components: Vec::new(),
            instance: None,
        }
    }

    #[test]
    fn sums_tasks_and_measures_the_interval() {
        let (r, cells) = registry();
        let state = State::new(Arc::new(graph()), r);
        for (i, c) in cells.iter().enumerate() {
            let mut s = crate::sync::lock(c);
            s.emitted = 100 * (i as u64 + 1);
            s.acked = 10;
            s.pending = 2;
            s.busy_ns = 1_000_000_000;
            s.complete_ns.record(5_000).ok();
        }
        state.sample();
        let m = state.metrics();
        let c = &m.components[0];
        let n = &c.totals.values;
        assert_eq!((c.tasks, n.emitted, n.acked, n.pending), (2, 300, 20, 4));
        assert_eq!(c.per_task.len(), 2);
        assert_eq!(c.per_task[1].counts.values.emitted, 200);
        let emitted_per_s = c.rates.values.emitted;
        assert!(emitted_per_s > 0.0 && m.throughput_tps == emitted_per_s);
        assert!((0.0..=1.0).contains(&c.capacity));
        assert!((c.busy_s - 2.0).abs() < 1e-9);
        assert!(m.latency.spouts["source"].p50 > 0.0);
        // Nothing new: no completions in this interval, rates 0.
        state.sample();
        let m = state.metrics();
        assert_eq!(m.components[0].rates.values.emitted, 0.0);
        assert_eq!(m.latency.spouts["source"].p50, 0.0);
        assert_eq!(state.history().len(), 3);
    }

    #[test]
    fn counters_serialize_in_the_documented_order() {
        let counts = Counts {
            emitted: 1,
            executed: 2,
            acked: 3,
            failed: 4,
            timed_out: 5,
            abandoned: 6,
            restarts: 7,
            busy_ns: 8,
            late: 10,
            watermark_lag_ms: 11,
            pending: 9,
        };
        let task = TaskMetrics {
            task: 0,
            counts: Shown::new(counts, View::Task),
            capacity: 0.5,
            busy_s: 1.0,
        };
        assert_eq!(
            serde_json::to_string(&task).ok().as_deref(),
            Some(
                r#"{"task":0,"emitted":1,"executed":2,"acked":3,"failed":4,"restarts":7,"late":10,"watermark_lag_ms":11,"pending":9,"capacity":0.5,"busy_s":1.0}"#
            )
        );
        let shown = |view| serde_json::to_string(&Shown::new(counts, view)).ok();
        assert_eq!(
            shown(View::Component).as_deref(),
            Some(
                r#"{"emitted":1,"executed":2,"acked":3,"failed":4,"timed_out":5,"abandoned":6,"restarts":7,"late":10,"watermark_lag_ms":11,"pending":9}"#
            )
        );
        let rates = Counts {
            emitted: 1.5,
            executed: 2.5,
            acked: 3.5,
            failed: 4.5,
            ..Counts::default()
        };
        assert_eq!(
            serde_json::to_string(&Shown::new(rates, View::Rates))
                .ok()
                .as_deref(),
            Some(
                r#"{"emitted_per_s":1.5,"executed_per_s":2.5,"acked_per_s":3.5,"failed_per_s":4.5}"#
            )
        );
    }

    #[test]
    fn history_is_bounded() {
        let (r, _) = registry();
        let state = State::new(Arc::new(graph()), r);
        for _ in 0..HISTORY_LEN + 5 {
            state.sample();
        }
        assert_eq!(state.history().len(), HISTORY_LEN);
    }
}
