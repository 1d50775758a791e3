//! Per-task metrics, kept local on the hot path and merged into shared cells on read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};

use crate::sync::lock;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

fn histogram() -> Histogram<u64> {
    // Auto-resizing, 3 significant digits; values are nanoseconds.
    Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits is valid"))
}

/// Which tasks a Prometheus series covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tasks {
    All,
    Spouts,
    Bolts,
}

impl Tasks {
    /// Whether a task of `kind` (`spout` or `bolt`) is covered.
    pub fn cover(self, kind: &str) -> bool {
        match self {
            Tasks::All => true,
            Tasks::Spouts => kind == "spout",
            Tasks::Bolts => kind == "bolt",
        }
    }
}

/// A counter's series on `/metrics`: one sample per task.
#[derive(Clone, Copy, Debug)]
pub struct Series {
    /// The metric name (a `_total` name is a Prometheus counter, any other a gauge).
    pub name: &'static str,
    pub help: &'static str,
    pub tasks: Tasks,
    /// The value shown is the count divided by this (1e9: nanoseconds as seconds).
    pub divisor: f64,
}

/// Where `/api/metrics` shows a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Live {
    /// Not as a count (e.g. `busy_ns`, shown as `busy_s`).
    Hidden,
    /// In a component's totals.
    Component,
    /// In a component's totals and in each of its tasks.
    Tasks,
}

/// One entry of [`COUNTERS`]: a field of [`Counts`] and where it shows. Its name is the
/// field's, the key of `/api/metrics` and of [`ComponentSnapshot`].
#[derive(Clone, Copy, Debug)]
pub struct Counter {
    pub name: &'static str,
    /// A gauge (a level, e.g. trees in flight) rather than a count of events: a task's
    /// cell takes its latest value and a difference over time keeps the later one.
    pub gauge: bool,
    pub live: Live,
    /// `/api/metrics` shows its rate over the last interval under this name.
    pub rate: Option<&'static str>,
    pub prometheus: Option<Series>,
    /// The run report lists it among the component's named counters when it is not 0.
    pub report: bool,
}

impl Counter {
    /// A count of events, shown by `/api/metrics` in a component's totals.
    const fn count() -> Counter {
        Counter {
            name: "",
            gauge: false,
            live: Live::Component,
            rate: None,
            prometheus: None,
            report: false,
        }
    }

    /// A level rather than a count.
    const fn gauge() -> Counter {
        Counter {
            gauge: true,
            ..Counter::count()
        }
    }

    const fn per_task(self) -> Counter {
        Counter {
            live: Live::Tasks,
            ..self
        }
    }

    const fn not_live(self) -> Counter {
        Counter {
            live: Live::Hidden,
            ..self
        }
    }

    const fn in_report(self) -> Counter {
        Counter {
            report: true,
            ..self
        }
    }

    const fn prometheus(self, name: &'static str, help: &'static str, tasks: Tasks) -> Counter {
        self.prometheus_scaled(name, help, tasks, 1.0)
    }

    const fn prometheus_scaled(
        self,
        name: &'static str,
        help: &'static str,
        tasks: Tasks,
        divisor: f64,
    ) -> Counter {
        Counter {
            prometheus: Some(Series {
                name,
                help,
                tasks,
                divisor,
            }),
            ..self
        }
    }

    /// Names the entry after its field; `rate` is the name of its rate, if shown.
    const fn named(self, name: &'static str, rate: &'static str, with_rate: bool) -> Counter {
        Counter {
            name,
            rate: if with_rate { Some(rate) } else { None },
            ..self
        }
    }
}

/// Declares the counters once: the fields of [`Counts`] and the table [`COUNTERS`] that
/// the sums, differences, `/metrics`, `/api/metrics` and the report iterate, in this
/// order (the order of `/metrics` series and `/api/metrics` keys).
macro_rules! counters {
    ($($(#[doc = $doc:literal])* $field:ident $(($rate:ident))?: $def:expr;)*) => {
        /// The counters of a task, or of a component summed over its tasks (one field
        /// per entry of [`COUNTERS`]). `Counts<f64>` holds rates.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct Counts<T = u64> {
            $($(#[doc = $doc])* pub $field: T,)*
        }

        /// Every counter, in the order of [`Counts`]' fields.
        pub const COUNTERS: [Counter; [$(stringify!($field)),*].len()] = [$(
            $def.named(
                stringify!($field),
                concat!(stringify!($field), "_per_s"),
                counters!(@rate $($rate)?),
            ),
        )*];

        impl<T> Counts<T> {
            /// The fields in the order of [`COUNTERS`].
            pub fn values(&self) -> [&T; COUNTERS.len()] {
                [$(&self.$field),*]
            }

            pub fn values_mut(&mut self) -> [&mut T; COUNTERS.len()] {
                [$(&mut self.$field),*]
            }
        }
    };
    (@rate rate) => { true };
    (@rate) => { false };
}

counters! {
    /// Tuples emitted (not counting copies).
    emitted (rate): Counter::count()
        .per_task()
        .prometheus("squall_tuples_emitted_total", "Tuples emitted.", Tasks::All);
    /// Tuples a bolt executed.
    executed (rate): Counter::count().per_task().prometheus(
        "squall_tuples_executed_total",
        "Tuples executed by a bolt.",
        Tasks::Bolts,
    );
    /// Spouts: tuple trees fully processed; bolts: inputs acked.
    acked (rate): Counter::count().per_task().prometheus(
        "squall_tuples_acked_total",
        "Spouts: tuple trees fully processed; bolts: inputs acked.",
        Tasks::All,
    );
    /// Spouts: tuple trees failed or timed out; bolts: inputs failed.
    failed (rate): Counter::count().per_task().prometheus(
        "squall_tuples_failed_total",
        "Spouts: tuple trees failed or timed out; bolts: inputs failed.",
        Tasks::All,
    );
    /// Tuple trees that timed out.
    timed_out: Counter::count().in_report().prometheus(
        "squall_tuples_timed_out_total",
        "Tuple trees that timed out.",
        Tasks::Spouts,
    );
    /// In flight when the run was stopped without draining (trees in event mode, tuples
    /// of uncommitted batches in micro-batch mode).
    abandoned: Counter::count().in_report();
    /// Task restarts after a panic.
    restarts: Counter::count().per_task().in_report().prometheus(
        "squall_task_restarts_total",
        "Task restarts after a panic.",
        Tasks::All,
    );
    /// Time spent working (a spout's poll rounds, a bolt's input batches), in
    /// nanoseconds, counted once per round or batch; busy time over wall time is the
    /// task's capacity.
    busy_ns: Counter::count().not_live().prometheus_scaled(
        "squall_busy_seconds_total",
        "Time the task spent working.",
        Tasks::All,
        1e9,
    );
    /// Event time: inputs later than their windows' allowed lateness, sent to the bolt's
    /// `late` stream (and acked).
    late: Counter::count().per_task().in_report().prometheus(
        "squall_late_tuples_total",
        "Inputs later than their windows' allowed lateness (sent to the `late` stream).",
        Tasks::Bolts,
    );
    /// Gauge: event time: how far the task's watermark is behind the wall clock, in
    /// milliseconds (0 without event time, or once the input ended).
    watermark_lag_ms: Counter::gauge().per_task().prometheus_scaled(
        "squall_watermark_lag_seconds",
        "How far the task's event-time watermark is behind the wall clock.",
        Tasks::Bolts,
        1e3,
    );
    /// Gauge: tuple trees in flight (spouts).
    pending: Counter::gauge()
        .per_task()
        .prometheus("squall_pending_trees", "Tuple trees in flight.", Tasks::Spouts);
}

impl Counts {
    /// Adds every field of `other` (a sum over tasks).
    pub fn add(&mut self, other: &Counts) {
        for (a, b) in self.values_mut().into_iter().zip(other.values()) {
            *a += *b;
        }
    }

    /// Adds a task's delta: its counts, and its gauges as they are now.
    fn absorb(&mut self, delta: &Counts) {
        let fields = COUNTERS.iter().zip(self.values_mut()).zip(delta.values());
        for ((c, a), b) in fields {
            *a = if c.gauge { *b } else { *a + *b };
        }
    }

    /// Zeroes the counts (a delta once published), keeping the gauges.
    fn clear_counts(&mut self) {
        for (c, a) in COUNTERS.iter().zip(self.values_mut()) {
            if !c.gauge {
                *a = 0;
            }
        }
    }

    /// What was counted after `base`; gauges as now.
    pub fn since(&self, base: &Counts) -> Counts {
        let mut out = *self;
        for ((c, a), b) in COUNTERS.iter().zip(out.values_mut()).zip(base.values()) {
            if !c.gauge {
                *a = a.saturating_sub(*b);
            }
        }
        out
    }
}

/// Counters and histograms of one task; the counters are reached as its fields
/// (`stats.emitted`).
#[derive(Clone)]
pub struct TaskStats {
    pub counts: Counts,
    pub execute_ns: Histogram<u64>,
    pub complete_ns: Histogram<u64>,
}

impl Default for TaskStats {
    fn default() -> Self {
        TaskStats {
            counts: Counts::default(),
            execute_ns: histogram(),
            complete_ns: histogram(),
        }
    }
}

impl std::ops::Deref for TaskStats {
    type Target = Counts;

    fn deref(&self) -> &Counts {
        &self.counts
    }
}

impl std::ops::DerefMut for TaskStats {
    fn deref_mut(&mut self) -> &mut Counts {
        &mut self.counts
    }
}

impl TaskStats {
    /// Adds a delta (counters, histograms) and takes its gauges.
    fn absorb(&mut self, d: &TaskStats) {
        self.counts.absorb(&d.counts);
        let _ = self.execute_ns.add(&d.execute_ns);
        let _ = self.complete_ns.add(&d.complete_ns);
    }

    fn clear_delta(&mut self) {
        self.counts.clear_counts();
        self.execute_ns.reset();
        self.complete_ns.reset();
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
    /// The start of its window (ms since the Unix epoch); none for a running ranking (or
    /// a window whose start its input did not give).
    pub window_start: Option<i64>,
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

/// A component's metrics summed over its tasks; the counters are reached as its fields
/// (`snapshot.acked`).
#[derive(Clone, Debug, Serialize)]
pub struct ComponentSnapshot {
    pub kind: &'static str,
    pub tasks: usize,
    /// Summed over the tasks (`busy_ns` too; `pending` is the sum of the tasks' gauges).
    #[serde(flatten)]
    pub counts: Counts,
    pub execute_latency_us: Percentiles,
    pub complete_latency_us: Percentiles,
    pub counters: BTreeMap<String, u64>,
    #[serde(skip)]
    pub complete_histogram: Option<Histogram<u64>>,
    /// Bolts: the execute latencies (ns) behind `execute_latency_us`.
    #[serde(skip)]
    pub execute_histogram: Option<Histogram<u64>>,
}

impl std::ops::Deref for ComponentSnapshot {
    type Target = Counts;

    fn deref(&self) -> &Counts {
        &self.counts
    }
}

impl std::ops::DerefMut for ComponentSnapshot {
    fn deref_mut(&mut self) -> &mut Counts {
        &mut self.counts
    }
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
            counts: self.counts.since(&base.counts),
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
                sum.counts.add(&s.counts);
                let _ = sum.execute_ns.add(&s.execute_ns);
                let _ = sum.complete_ns.add(&s.complete_ns);
            }
            out.components.insert(
                c.name.clone(),
                ComponentSnapshot {
                    kind: if c.is_spout { "spout" } else { "bolt" },
                    tasks: c.tasks.len(),
                    counts: sum.counts,
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
            counts: Counts {
                emitted: acked,
                acked,
                pending: 7,
                busy_ns: acked * 10,
                ..Counts::default()
            },
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
