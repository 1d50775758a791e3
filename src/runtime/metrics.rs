//! Per-task metrics, kept local on the hot path and merged into shared cells on read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use hdrhistogram::Histogram;
use serde::Serialize;

fn histogram() -> Histogram<u64> {
    // Auto-resizing, 3 significant digits; values are nanoseconds.
    Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits is valid"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counters and histograms of one task.
#[derive(Clone)]
pub struct TaskStats {
    pub emitted: u64,
    pub acked: u64,
    pub failed: u64,
    pub executed: u64,
    pub restarts: u64,
    pub timed_out: u64,
    pub abandoned: u64,
    /// Gauge: in-flight tuple trees (spouts).
    pub pending: u64,
    /// Time spent working (a spout's poll rounds, a bolt's input batches), counted once
    /// per round or batch; busy time over wall time is the task's capacity.
    pub busy_ns: u64,
    pub execute_ns: Histogram<u64>,
    pub complete_ns: Histogram<u64>,
}

impl Default for TaskStats {
    fn default() -> Self {
        TaskStats {
            emitted: 0,
            acked: 0,
            failed: 0,
            executed: 0,
            restarts: 0,
            timed_out: 0,
            abandoned: 0,
            pending: 0,
            busy_ns: 0,
            execute_ns: histogram(),
            complete_ns: histogram(),
        }
    }
}

impl TaskStats {
    /// Adds a delta (counters, histograms) and takes its gauges.
    fn absorb(&mut self, d: &TaskStats) {
        self.emitted += d.emitted;
        self.acked += d.acked;
        self.failed += d.failed;
        self.executed += d.executed;
        self.restarts += d.restarts;
        self.timed_out += d.timed_out;
        self.abandoned += d.abandoned;
        self.pending = d.pending;
        self.busy_ns += d.busy_ns;
        let _ = self.execute_ns.add(&d.execute_ns);
        let _ = self.complete_ns.add(&d.complete_ns);
    }

    fn clear_delta(&mut self) {
        let pending = self.pending;
        self.emitted = 0;
        self.acked = 0;
        self.failed = 0;
        self.executed = 0;
        self.restarts = 0;
        self.timed_out = 0;
        self.abandoned = 0;
        self.busy_ns = 0;
        self.execute_ns.reset();
        self.complete_ns.reset();
        self.pending = pending;
    }
}

/// A task's local stats and the shared cell they are published to.
pub(crate) struct TaskMetrics {
    pub(crate) local: TaskStats,
    shared: Arc<Mutex<TaskStats>>,
}

impl TaskMetrics {
    pub(crate) fn new(shared: Arc<Mutex<TaskStats>>) -> Self {
        TaskMetrics {
            local: TaskStats::default(),
            shared,
        }
    }

    /// Publishes the local delta (called on a timer and when the task stops).
    pub(crate) fn publish(&mut self) {
        lock(&self.shared).absorb(&self.local);
        self.local.clear_delta();
    }

    /// Publishes the local delta unless a reader holds the shared cell at this moment;
    /// then the delta is kept for the next call. For the periodic publish on a task's
    /// thread: a reader that is descheduled while holding the lock must not stall the
    /// data path (measured: 6 ms stalls, once a second, under load).
    pub(crate) fn try_publish(&mut self) {
        let mut shared = match self.shared.try_lock() {
            Ok(s) => s,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        shared.absorb(&self.local);
        drop(shared);
        self.local.clear_delta();
    }
}

/// Named counters of a component, shared by its tasks (e.g. `oversized_lines`).
#[derive(Clone, Default)]
pub struct CustomCounters(Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>);

impl CustomCounters {
    pub fn get(&self, name: &str) -> Arc<AtomicU64> {
        lock(&self.0).entry(name.to_string()).or_default().clone()
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        lock(&self.0)
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect()
    }
}

/// The metrics of one component: one cell per task.
#[derive(Clone)]
pub(crate) struct ComponentMetrics {
    pub(crate) name: String,
    pub(crate) is_spout: bool,
    pub(crate) tasks: Vec<Arc<Mutex<TaskStats>>>,
    pub(crate) counters: CustomCounters,
}

/// The latest top-k ranking a `total_rank` bolt produced, for the report and the UI.
#[derive(Clone, Default)]
pub struct TopkBoard(Arc<Mutex<Option<Ranking>>>);

/// `(key, count)` pairs, best first.
pub type Ranking = Vec<(String, u64)>;

impl TopkBoard {
    pub fn set(&self, ranking: Vec<(String, u64)>) {
        *lock(&self.0) = Some(ranking);
    }

    pub fn get(&self) -> Option<Vec<(String, u64)>> {
        lock(&self.0).clone()
    }
}

/// All metrics of a running topology.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    pub(crate) components: Vec<ComponentMetrics>,
    pub topk: TopkBoard,
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of a histogram of nanoseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        Percentiles {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

/// A component's metrics summed over its tasks.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentSnapshot {
    pub kind: &'static str,
    pub tasks: usize,
    pub emitted: u64,
    pub acked: u64,
    pub failed: u64,
    pub executed: u64,
    pub restarts: u64,
    pub timed_out: u64,
    pub abandoned: u64,
    pub pending: u64,
    /// Busy time summed over the tasks, in nanoseconds.
    pub busy_ns: u64,
    pub execute_latency_us: Percentiles,
    pub complete_latency_us: Percentiles,
    pub counters: BTreeMap<String, u64>,
    #[serde(skip)]
    pub complete_histogram: Option<Histogram<u64>>,
}

/// Every component's metrics at one moment.
#[derive(Clone, Debug, Serialize, Default)]
pub struct MetricsSnapshot {
    pub components: BTreeMap<String, ComponentSnapshot>,
}

impl MetricsSnapshot {
    pub fn component(&self, name: &str) -> Option<&ComponentSnapshot> {
        self.components.get(name)
    }

    /// Sum over spouts of acked trees (acking on) or emitted tuples (acking off).
    pub fn spout_totals(&self) -> (u64, u64, u64, u64) {
        let mut t = (0, 0, 0, 0);
        for c in self.components.values().filter(|c| c.kind == "spout") {
            t.0 += c.emitted;
            t.1 += c.acked;
            t.2 += c.failed;
            t.3 += c.pending;
        }
        t
    }
}

/// One task's published stats, for per-task views (Prometheus labels `component`, `task`).
#[derive(Clone)]
pub struct TaskSample {
    pub component: String,
    pub kind: &'static str,
    /// The task's index within its component, from 0.
    pub index: usize,
    pub stats: TaskStats,
}

impl MetricsRegistry {
    /// Every task's published stats, in component declaration order.
    pub fn tasks(&self) -> Vec<TaskSample> {
        let mut out = Vec::new();
        for c in &self.components {
            for (index, t) in c.tasks.iter().enumerate() {
                out.push(TaskSample {
                    component: c.name.clone(),
                    kind: if c.is_spout { "spout" } else { "bolt" },
                    index,
                    stats: lock(t).clone(),
                });
            }
        }
        out
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut out = MetricsSnapshot::default();
        for c in &self.components {
            let mut sum = TaskStats::default();
            for t in &c.tasks {
                let s = lock(t);
                sum.absorb(&s);
            }
            let pending: u64 = c.tasks.iter().map(|t| lock(t).pending).sum();
            out.components.insert(
                c.name.clone(),
                ComponentSnapshot {
                    kind: if c.is_spout { "spout" } else { "bolt" },
                    tasks: c.tasks.len(),
                    emitted: sum.emitted,
                    acked: sum.acked,
                    failed: sum.failed,
                    executed: sum.executed,
                    restarts: sum.restarts,
                    timed_out: sum.timed_out,
                    abandoned: sum.abandoned,
                    pending,
                    busy_ns: sum.busy_ns,
                    execute_latency_us: Percentiles::of(&sum.execute_ns),
                    complete_latency_us: Percentiles::of(&sum.complete_ns),
                    counters: c.counters.snapshot(),
                    complete_histogram: if c.is_spout {
                        Some(sum.complete_ns.clone())
                    } else {
                        None
                    },
                },
            );
        }
        out
    }
}
