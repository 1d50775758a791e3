//! Per-task metrics, kept local on the hot path and merged into shared cells on read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};

use crate::sync::lock;
use hdrhistogram::Histogram;
use serde::Serialize;

fn histogram() -> Histogram<u64> {
    // Auto-resizing, 3 significant digits; values are nanoseconds.
    Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits is valid"))
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
pub struct TopkBoard(Arc<Mutex<Option<Topk>>>);

/// `(key, count)` pairs, best first.
pub type Ranking = Vec<(String, u64)>;

/// A published ranking and the window it covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topk {
    pub ranking: Ranking,
    /// The end of its window (ms since the Unix epoch); none for a running ranking.
    pub window_end: Option<i64>,
    /// The flush at the end of the run (the final window).
    pub is_final: bool,
}

impl TopkBoard {
    /// Publishes a ranking of no particular window.
    pub fn set(&self, ranking: Vec<(String, u64)>) {
        self.set_topk(Topk {
            ranking,
            ..Topk::default()
        });
    }

    pub fn set_topk(&self, topk: Topk) {
        *lock(&self.0) = Some(topk);
    }

    /// The latest ranking.
    pub fn get(&self) -> Option<Vec<(String, u64)>> {
        lock(&self.0).as_ref().map(|t| t.ranking.clone())
    }

    /// The latest ranking with its window.
    pub fn latest(&self) -> Option<Topk> {
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
    /// Bolts: the execute latencies (ns) behind `execute_latency_us`.
    #[serde(skip)]
    pub execute_histogram: Option<Histogram<u64>>,
}

impl ComponentSnapshot {
    /// What happened after `base` (an earlier snapshot of the same component): counters
    /// and histograms less `base`'s; gauges (`pending`) as now.
    fn since(&self, base: &ComponentSnapshot) -> ComponentSnapshot {
        let less = |now: &Option<Histogram<u64>>, then: &Option<Histogram<u64>>| {
            let mut h = now.clone()?;
            if let Some(t) = then {
                // Histograms only grow, so `then` fits in `now`; if not, keep `now`.
                let _ = h.subtract(t);
            }
            Some(h)
        };
        let complete = less(&self.complete_histogram, &base.complete_histogram);
        let execute = less(&self.execute_histogram, &base.execute_histogram);
        let pct = |h: &Option<Histogram<u64>>, whole: &Percentiles| {
            h.as_ref().map_or_else(|| whole.clone(), Percentiles::of)
        };
        ComponentSnapshot {
            kind: self.kind,
            tasks: self.tasks,
            emitted: self.emitted.saturating_sub(base.emitted),
            acked: self.acked.saturating_sub(base.acked),
            failed: self.failed.saturating_sub(base.failed),
            executed: self.executed.saturating_sub(base.executed),
            restarts: self.restarts.saturating_sub(base.restarts),
            timed_out: self.timed_out.saturating_sub(base.timed_out),
            abandoned: self.abandoned.saturating_sub(base.abandoned),
            pending: self.pending,
            busy_ns: self.busy_ns.saturating_sub(base.busy_ns),
            execute_latency_us: pct(&execute, &self.execute_latency_us),
            complete_latency_us: pct(&complete, &self.complete_latency_us),
            counters: self
                .counters
                .iter()
                .map(|(k, &v)| {
                    let then = base.counters.get(k).copied().unwrap_or(0);
                    (k.clone(), v.saturating_sub(then))
                })
                .collect(),
            complete_histogram: complete,
            execute_histogram: execute,
        }
    }
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

    /// What happened between `base` (an earlier snapshot of the same run) and this one:
    /// e.g. a run's figures after its warm-up. A component `base` lacks counts whole.
    pub fn since(&self, base: &MetricsSnapshot) -> MetricsSnapshot {
        let components = self
            .components
            .iter()
            .map(|(name, c)| {
                let c = match base.components.get(name) {
                    Some(b) => c.since(b),
                    None => c.clone(),
                };
                (name.clone(), c)
            })
            .collect();
        MetricsSnapshot { components }
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
                    complete_histogram: c.is_spout.then(|| sum.complete_ns.clone()),
                    execute_histogram: (!c.is_spout).then(|| sum.execute_ns.clone()),
                },
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spout(latencies_ns: &[u64], acked: u64, counter: u64) -> ComponentSnapshot {
        let mut h = histogram();
        for &v in latencies_ns {
            h.record(v).ok();
        }
        ComponentSnapshot {
            kind: "spout",
            tasks: 1,
            emitted: acked,
            acked,
            failed: 0,
            executed: 0,
            restarts: 0,
            timed_out: 0,
            abandoned: 0,
            pending: 7,
            busy_ns: acked * 10,
            execute_latency_us: Percentiles::default(),
            complete_latency_us: Percentiles::of(&h),
            counters: [("oversized_lines".to_string(), counter)].into(),
            complete_histogram: Some(h),
            execute_histogram: None,
        }
    }

    fn snapshot(c: ComponentSnapshot) -> MetricsSnapshot {
        MetricsSnapshot {
            components: [("source".to_string(), c)].into(),
        }
    }

    #[test]
    fn since_keeps_only_what_came_after_the_base() {
        // A slow start (100 tuples at 50 ms), then 1000 tuples at 100 µs.
        let slow = vec![50_000_000; 100];
        let mut all = slow.clone();
        all.extend(vec![100_000; 1000]);
        let base = snapshot(spout(&slow, 100, 2));
        let end = snapshot(spout(&all, 1100, 5));
        assert!(end.components["source"].complete_latency_us.p99 > 40_000.0);
        let after = end.since(&base);
        let c = &after.components["source"];
        assert_eq!(
            (c.acked, c.emitted, c.busy_ns, c.pending),
            (1000, 1000, 10_000, 7)
        );
        assert_eq!(c.counters["oversized_lines"], 3);
        assert_eq!(c.complete_histogram.as_ref().map(|h| h.len()), Some(1000));
        assert!(
            (c.complete_latency_us.p99 - 100.0).abs() < 1.0,
            "{:?}",
            c.complete_latency_us
        );
        assert!(
            c.complete_latency_us.max < 101.0,
            "{:?}",
            c.complete_latency_us
        );
    }

    #[test]
    fn since_an_empty_base_is_the_whole_run() {
        let end = snapshot(spout(&[1_000, 2_000], 2, 1));
        let after = end.since(&MetricsSnapshot::default());
        assert_eq!(after.components["source"].acked, 2);
        assert_eq!(
            after.components["source"].complete_latency_us,
            end.components["source"].complete_latency_us
        );
    }
}
