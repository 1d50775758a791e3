//! Groupings route tuples to the tasks the grouping specifies.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use squall::{
    Bolt, BoltCollector, ComponentResult, Fields, OutputDeclarer, TaskContext, TopologyBuilder,
    Tuple,
};

use crate::support;
use crate::support::*;

const N: u64 = 1_000;
const LIMIT: Duration = Duration::from_secs(10);

/// spout(1) → `bolt` (parallelism `par`) with the grouping `wire` applies; returns the
/// spout and the recording.
fn one_hop(
    par: usize,
    wire: impl FnOnce(squall::topology::BoltDeclarer<'_>),
) -> (CountingSpout, RecordingBolt, squall::RunSummary) {
    let spout = CountingSpout::new(N);
    let sink = RecordingBolt::sink();
    let mut b = TopologyBuilder::new("groupings");
    b.spout("spout", spout.clone(), 1);
    wire(b.bolt("bolt", sink.clone(), par));
    let summary = run(b.build().unwrap(), test_config(), LIMIT);
    spout.log().assert_each_acked_once(N);
    assert!(spout.log().failed.is_empty());
    (spout, sink, summary)
}

fn key_to_tasks(spout: &CountingSpout, sink: &RecordingBolt) -> BTreeMap<String, BTreeSet<u32>> {
    let mut m: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for (task, n, _) in &sink.rec().received {
        m.entry(spout.key_of(*n as u64)).or_default().insert(*task);
    }
    m
}

#[test]
fn fields_grouping_sends_each_key_to_one_task_stably_across_runs() {
    let mut mappings = Vec::new();
    for _ in 0..2 {
        let (spout, sink, summary) = one_hop(4, |d| {
            d.fields("spout", ["key"]);
        });
        assert_component(&summary.metrics, "bolt", Expect::clean_bolt(N));
        assert_eq!(sink.rec().received.len() as u64, N);
        let m = key_to_tasks(&spout, &sink);
        assert_eq!(m.len(), 16, "every key seen");
        for (key, tasks) in &m {
            assert_eq!(tasks.len(), 1, "key {key} went to several tasks: {tasks:?}");
        }
        let used: BTreeSet<u32> = m.values().flatten().copied().collect();
        assert!(
            used.len() > 1,
            "16 keys all hashed to one task of 4: {used:?}"
        );
        mappings.push(m);
    }
    assert_eq!(
        mappings[0], mappings[1],
        "the key → task mapping changed between two runs"
    );
}

#[test]
fn fields_grouping_on_two_fields_keeps_equal_pairs_together() {
    // Group by (key, attempt): attempt is always 0 here, so this is the key mapping
    // through the multi-field hash path.
    let (spout, sink, _) = one_hop(3, |d| {
        d.fields("spout", ["key", "attempt"]);
    });
    let m = key_to_tasks(&spout, &sink);
    for (key, tasks) in &m {
        assert_eq!(tasks.len(), 1, "key {key} went to several tasks: {tasks:?}");
    }
}

#[test]
fn all_grouping_gives_every_task_every_tuple() {
    let (_, sink, summary) = one_hop(3, |d| {
        d.all("spout");
    });
    let rec = sink.rec();
    let tasks = rec.tasks_of["bolt"].clone();
    assert_eq!(tasks.len(), 3);
    for &t in &tasks {
        let got: Vec<i64> = {
            let mut v: Vec<i64> = rec
                .received
                .iter()
                .filter(|r| r.0 == t)
                .map(|r| r.1)
                .collect();
            v.sort_unstable();
            v
        };
        let want: Vec<i64> = (1..=N as i64).collect();
        assert_eq!(got, want, "task {t} did not get every tuple exactly once");
    }
    assert_component(&summary.metrics, "bolt", Expect::clean_bolt(3 * N));
}

#[test]
fn global_grouping_sends_everything_to_the_lowest_task_id() {
    let (_, sink, _) = one_hop(3, |d| {
        d.global("spout");
    });
    let rec = sink.rec();
    let lowest = *rec.tasks_of["bolt"].iter().min().unwrap();
    let per_task = rec.per_task();
    assert_eq!(
        per_task,
        BTreeMap::from([(lowest, N as usize)]),
        "global grouping must use only task {lowest}"
    );
}

#[test]
fn shuffle_grouping_spreads_over_all_tasks() {
    let (_, sink, _) = one_hop(4, |d| {
        d.shuffle("spout");
    });
    let rec = sink.rec();
    let per_task = rec.per_task();
    assert_eq!(
        per_task.keys().copied().collect::<Vec<_>>(),
        rec.tasks_of["bolt"],
        "every task must receive tuples"
    );
    let fair = N as usize / 4;
    for (t, c) in &per_task {
        assert!(
            *c >= fair / 2 && *c <= fair * 3 / 2,
            "task {t} got {c} of {N} tuples (fair share {fair}): {per_task:?}"
        );
    }
    // Each tuple delivered once.
    assert!(rec.receivers().values().all(|v| v.len() == 1));
    assert_eq!(rec.receivers().len() as u64, N);
}

#[test]
fn local_or_shuffle_delivers_everything_preferring_the_spout_worker() {
    let spout = CountingSpout::new(N);
    let sink = RecordingBolt::sink();
    let spout_worker = std::sync::Arc::new(std::sync::Mutex::new(None::<usize>));
    let mut b = TopologyBuilder::new("local");
    b.spout("spout", WorkerSpy(spout.clone(), spout_worker.clone()), 1);
    b.bolt("bolt", sink.clone(), 3).local_or_shuffle("spout");
    // Placement is deterministic: task i of a component with several tasks runs on
    // worker i % workers, so with 2 workers the 3 bolt tasks sit on workers 0, 1, 0 and
    // whichever worker the spout has, some bolt tasks share it and some do not.
    let cfg = squall::Config {
        workers: 2,
        ..test_config()
    };
    let summary = run(b.build().unwrap(), cfg, LIMIT);
    spout.log().assert_each_acked_once(N);
    assert_component(&summary.metrics, "bolt", Expect::clean_bolt(N));
    let rec = sink.rec();
    let receivers = rec.receivers();
    assert_eq!(receivers.len() as u64, N, "every tuple delivered");
    assert!(receivers.values().all(|v| v.len() == 1), "delivered once");
    let w = lock(&spout_worker).expect("spout opened");
    let (local, remote): (BTreeSet<u32>, BTreeSet<u32>) = rec
        .task_workers
        .keys()
        .copied()
        .partition(|t| rec.task_workers[t] == w);
    assert_eq!(rec.task_workers.len(), 3, "every bolt task prepared");
    assert!(
        !local.is_empty() && !remote.is_empty(),
        "placement must put bolt tasks both on and off the spout's worker {w}: {:?}",
        rec.task_workers
    );
    let used: BTreeSet<u32> = rec.per_task().keys().copied().collect();
    assert_eq!(
        used, local,
        "tuples must go to every task on the spout's worker {w} and to no other (workers: {:?})",
        rec.task_workers
    );
}

/// Wraps a spout to record the worker it runs on.
#[derive(Clone)]
struct WorkerSpy(
    CountingSpout,
    std::sync::Arc<std::sync::Mutex<Option<usize>>>,
);

impl squall::Spout for WorkerSpy {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        self.0.declare_outputs(out)
    }
    fn open(&mut self, ctx: &TaskContext) -> ComponentResult {
        *lock(&self.1) = Some(ctx.worker());
        self.0.open(ctx)
    }
    fn next_tuple(&mut self, out: &mut squall::SpoutCollector<'_>) -> squall::SpoutStatus {
        self.0.next_tuple(out)
    }
    fn ack(&mut self, id: u64) {
        self.0.ack(id)
    }
    fn fail(&mut self, id: u64) {
        self.0.fail(id)
    }
}

/// Emits each input directly to task `tasks_of(target)[n % k]` on stream "direct".
#[derive(Clone)]
struct Router {
    target: &'static str,
    tasks: Vec<u32>,
}

impl Bolt for Router {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare_stream("direct", Fields::new(support::SPOUT_FIELDS));
    }
    fn prepare(&mut self, ctx: &TaskContext) -> ComponentResult {
        self.tasks = ctx.tasks_of(self.target).to_vec();
        assert!(!self.tasks.is_empty(), "tasks_of({}) is empty", self.target);
        Ok(())
    }
    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        let n = input.get_int("n").unwrap();
        let task = chosen(&self.tasks, n);
        out.emit_direct(task, "direct", input.into_values())
    }
}

/// Uneven on purpose: 3 of 4 tuples to the second task, the rest to the third, none to
/// the first.
fn chosen(tasks: &[u32], n: i64) -> u32 {
    if n % 4 == 0 { tasks[2] } else { tasks[1] }
}

#[test]
fn direct_grouping_delivers_only_to_the_chosen_task() {
    let spout = CountingSpout::new(N);
    let sink = RecordingBolt::sink();
    let mut b = TopologyBuilder::new("direct");
    b.spout("spout", spout.clone(), 1);
    b.bolt(
        "router",
        Router {
            target: "bolt",
            tasks: vec![],
        },
        2,
    )
    .shuffle("spout");
    b.bolt("bolt", sink.clone(), 3).direct(("router", "direct"));
    let summary = run(b.build().unwrap(), test_config(), LIMIT);
    spout.log().assert_each_acked_once(N);
    assert_component(&summary.metrics, "bolt", Expect::clean_bolt(N));
    let rec = sink.rec();
    let tasks = rec.tasks_of["bolt"].clone();
    let receivers = rec.receivers();
    assert_eq!(receivers.len() as u64, N);
    for (n, got) in &receivers {
        assert_eq!(
            got,
            &vec![chosen(&tasks, *n)],
            "tuple {n} must reach only its chosen task"
        );
    }
    assert!(
        !rec.per_task().contains_key(&tasks[0]),
        "the task never chosen received tuples"
    );
}

/// Regression test for a fixed engine bug (src/runtime/outbox.rs, `Outbox::emit`, the `(Route::Direct { targets },
/// Some(task))` arm): when two bolts subscribe to the same stream with a direct grouping,
/// `emit_direct` to a task of one of them fails with "emit_direct to task N, which does
/// not subscribe ..." because the other bolt's route does not contain that task. In Storm
/// the task id alone picks the receiver; the other direct subscribers just do not get the
/// tuple. Fix: skip a Direct route that lacks the task, and return the error only when no
/// route took the tuple.
#[test]
fn direct_grouping_with_two_direct_subscribers() {
    let spout = CountingSpout::new(N);
    let a = RecordingBolt::sink();
    let other = RecordingBolt::sink();
    let mut b = TopologyBuilder::new("direct2");
    b.spout("spout", spout.clone(), 1);
    b.bolt(
        "router",
        Router {
            target: "a",
            tasks: vec![],
        },
        1,
    )
    .shuffle("spout");
    b.bolt("a", a.clone(), 3).direct(("router", "direct"));
    b.bolt("other", other.clone(), 2)
        .direct(("router", "direct"));
    let mut cfg = test_config();
    cfg.message_timeout = Duration::from_secs(1);
    let running = squall::LocalCluster::submit(b.build().unwrap(), cfg).unwrap();
    // Every emit_direct fails → every tree fails and is replayed forever; bound the wait.
    let finished = running.wait_finished(Duration::from_secs(5));
    let m = running.metrics();
    drop(running);
    assert!(finished, "did not finish: {}", summary_line(&m));
    assert!(
        spout.log().failed.is_empty(),
        "trees failed: {}",
        summary_line(&m)
    );
    assert_eq!(a.rec().received.len() as u64, N);
    assert!(other.rec().received.is_empty());
}

/// How `Misroute` emits each input on stream "direct".
#[derive(Clone, Copy)]
enum Emit {
    /// `emit_direct` to this task id.
    DirectTo(u32),
    /// `emit_direct` to the first task of bolt "a".
    DirectToA,
    /// A plain `emit_to`.
    Plain,
}

/// Emits each input on stream "direct" as `how` says and records every error the emit
/// returns (the input is acked either way, so the run ends).
#[derive(Clone)]
struct Misroute {
    how: Emit,
    a_task: u32,
    errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Bolt for Misroute {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare_stream("direct", Fields::new(support::SPOUT_FIELDS));
    }
    fn prepare(&mut self, ctx: &TaskContext) -> ComponentResult {
        self.a_task = ctx.tasks_of("a")[0];
        Ok(())
    }
    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        let r = match self.how {
            Emit::DirectTo(task) => out.emit_direct(task, "direct", input.into_values()),
            Emit::DirectToA => out.emit_direct(self.a_task, "direct", input.into_values()),
            Emit::Plain => out.emit_to("direct", input.into_values()),
        };
        if let Err(e) = r {
            lock(&self.errors).push(e.to_string());
        }
        Ok(())
    }
}

/// spout → misroute (`how`) → "a" (direct) [+ "other" (shuffle)], in `mode`: every emit
/// must fail with an error containing `want`, and nothing reach "a" or "other".
fn misrouted(how: Emit, with_shuffle_subscriber: bool, mode: squall::config::Mode, want: &str) {
    let n = 200;
    let spout = CountingSpout::new(n);
    let a = RecordingBolt::sink();
    let other = RecordingBolt::sink();
    let errors = std::sync::Arc::default();
    let mut b = TopologyBuilder::new("misroute");
    b.spout("spout", spout.clone(), 1);
    let probe = Misroute {
        how,
        a_task: 0,
        errors: std::sync::Arc::clone(&errors),
    };
    b.bolt("misroute", probe, 1).shuffle("spout");
    b.bolt("a", a.clone(), 2).direct(("misroute", "direct"));
    if with_shuffle_subscriber {
        b.bolt("other", other.clone(), 1)
            .shuffle(("misroute", "direct"));
    }
    let cfg = squall::Config {
        mode,
        batch_interval: Duration::from_millis(5),
        ..test_config()
    };
    run(b.build().unwrap(), cfg, LIMIT);
    let errors = lock(&errors);
    assert_eq!(errors.len() as u64, n, "every emit must fail: {errors:?}");
    assert!(errors.iter().all(|e| e.contains(want)), "{:?}", errors[0]);
    assert!(a.rec().received.is_empty(), "bolt a got misrouted tuples");
    assert!(other.rec().received.is_empty(), "bolt other got tuples");
}

const MODES: [squall::config::Mode; 2] = [
    squall::config::Mode::Event,
    squall::config::Mode::Microbatch,
];

#[test]
fn emit_direct_to_a_task_that_does_not_exist_fails() {
    for mode in MODES {
        misrouted(
            Emit::DirectTo(9_999),
            false,
            mode,
            "emit_direct to task 9999, which does not subscribe to `direct` with a direct grouping",
        );
    }
}

#[test]
fn emit_direct_on_a_stream_another_bolt_takes_with_a_shuffle_grouping_fails() {
    for mode in MODES {
        misrouted(
            Emit::DirectToA,
            true,
            mode,
            "emit_direct on `direct`, which a subscriber takes with a shuffle grouping",
        );
    }
}

#[test]
fn a_plain_emit_on_a_direct_grouped_stream_fails() {
    for mode in MODES {
        misrouted(
            Emit::Plain,
            false,
            mode,
            "emit on `direct`, which a subscriber takes with a direct grouping",
        );
    }
}
