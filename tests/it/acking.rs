//! Ack tracking: every spout message acked exactly once on the happy path, multi-anchored
//! and fanned-out trees complete only with their last descendant, and acking off.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use squall::{
    AckMode, Bolt, BoltCollector, ComponentResult, Config, Fields, OutputDeclarer, TopologyBuilder,
    Tuple,
};

use crate::support::*;

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn happy_path_every_message_acked_exactly_once() {
    const N: u64 = 20_000;
    let spout = CountingSpout::new(N).with_keys(64);
    let mid = RecordingBolt::forwarder();
    let sink = RecordingBolt::sink();
    let mut b = TopologyBuilder::new("happy");
    b.spout("spout", spout.clone(), 1);
    b.bolt("mid", mid.clone(), 2).shuffle("spout");
    b.bolt("sink", sink.clone(), 2).fields("mid", ["key"]);
    let cfg = Config {
        batch_size: 64,
        ..test_config()
    };
    let summary = run(b.build().unwrap(), cfg, LIMIT);
    assert!(summary.completed);

    let log = spout.log();
    log.assert_each_acked_once(N);
    assert!(log.failed.is_empty(), "failed: {:?}", &log.failed[..]);
    assert!(log.attempts.values().all(|a| *a == 1), "something replayed");

    let m = &summary.metrics;
    assert_component(m, "spout", Expect::clean_spout(N));
    assert_component(
        m,
        "mid",
        Expect {
            emitted: Some(N),
            ..Expect::clean_bolt(N)
        },
    );
    assert_component(
        m,
        "sink",
        Expect {
            emitted: Some(0),
            ..Expect::clean_bolt(N)
        },
    );
    let s = m.component("spout").unwrap();
    assert!(
        s.complete_latency_us.p50 > 0.0,
        "complete latency not recorded: {:?}",
        s.complete_latency_us
    );
    let h = s.complete_histogram.as_ref().expect("spout histogram");
    assert_eq!(h.len(), N, "one complete-latency sample per acked tree");
    assert!(s.complete_latency_us.p50 <= s.complete_latency_us.p99);
    assert!(s.complete_latency_us.p99 <= s.complete_latency_us.max);
    // Every tuple reached the sink exactly once.
    let rec = sink.rec();
    assert_eq!(rec.received.len() as u64, N);
    assert_eq!(rec.receivers().len() as u64, N);
}

/// Holds every tuple it receives; acks them only once
/// `release` is set (on a tick, or at once for tuples arriving after).
struct Gate {
    release: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    held: Vec<Tuple>,
}

/// A fresh task instance shares the signals, not the held tuples.
impl Clone for Gate {
    fn clone(&self) -> Self {
        Gate {
            release: self.release.clone(),
            received: self.received.clone(),
            held: Vec::new(),
        }
    }
}

impl Gate {
    fn new() -> Self {
        Gate {
            release: Arc::default(),
            received: Arc::default(),
            held: Vec::new(),
        }
    }
}

impl Bolt for Gate {
    fn ack_mode(&self) -> AckMode {
        AckMode::Manual
    }
    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(10))
    }
    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        self.received.fetch_add(1, Ordering::SeqCst);
        if self.release.load(Ordering::SeqCst) {
            out.ack(&input);
        } else {
            self.held.push(input);
        }
        Ok(())
    }
    fn tick(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        if self.release.load(Ordering::SeqCst) {
            for t in self.held.drain(..) {
                out.ack(&t);
            }
        }
        Ok(())
    }
}

/// The gate acks most of its tuples from `tick`, whose acks the bolt metrics do not
/// count (see `acks_made_in_tick_count_in_bolt_metrics`), so its `acked` is not checked.
fn gate_expect(n: u64) -> Expect {
    Expect {
        executed: Some(n),
        failed: Some(0),
        restarts: Some(0),
        ..Expect::default()
    }
}

/// Holds one input; when the next arrives emits `[a, b]` anchored to both, then acks
/// both.
struct Joiner {
    held: Option<Tuple>,
    acked: Arc<AtomicU64>,
}

impl Clone for Joiner {
    fn clone(&self) -> Self {
        Joiner {
            held: None,
            acked: self.acked.clone(),
        }
    }
}

impl Bolt for Joiner {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["a", "b"]));
    }
    fn ack_mode(&self) -> AckMode {
        AckMode::Manual
    }
    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        match self.held.take() {
            None => self.held = Some(input),
            Some(first) => {
                let a = first.get_int("n").unwrap();
                let b = input.get_int("n").unwrap();
                out.emit_anchored(&[&first, &input], squall::values![a, b])?;
                out.ack(&first);
                out.ack(&input);
                self.acked.fetch_add(2, Ordering::SeqCst);
            }
        }
        Ok(())
    }
}

#[test]
fn multi_anchored_tuple_holds_both_roots_until_acked() {
    const N: u64 = 200; // even: every input is paired
    let spout = CountingSpout::new(N);
    let joiner = Joiner {
        held: None,
        acked: Arc::default(),
    };
    let gate = Gate::new();
    let mut b = TopologyBuilder::new("multi");
    b.spout("spout", spout.clone(), 1);
    b.bolt("joiner", joiner.clone(), 1).shuffle("spout");
    b.bolt("gate", gate.clone(), 1).shuffle("joiner");
    let running = squall::LocalCluster::submit(b.build().unwrap(), test_config()).unwrap();

    assert!(
        wait_until(LIMIT, || joiner.acked.load(Ordering::SeqCst) == N
            && gate.received.load(Ordering::SeqCst) == N / 2),
        "joiner acked {} of {N}, gate received {} of {}",
        joiner.acked.load(Ordering::SeqCst),
        gate.received.load(Ordering::SeqCst),
        N / 2
    );
    // Every spout tuple has been acked by the joiner; only the held joined tuples keep
    // the trees open. Give a wrongly completed tree time to reach the spout.
    std::thread::sleep(Duration::from_millis(300));
    {
        let log = spout.log();
        assert!(
            log.acked.is_empty(),
            "{} roots acked while their joined descendant is still held, e.g. {:?}",
            log.acked.len(),
            &log.acked[..log.acked.len().min(10)]
        );
        assert!(log.failed.is_empty());
    }
    assert!(!running.is_finished());

    gate.release.store(true, Ordering::SeqCst);
    assert!(running.wait_finished(LIMIT), "did not finish after release");
    let summary = running.join().unwrap();
    let log = spout.log();
    log.assert_each_acked_once(N);
    assert!(log.failed.is_empty());
    assert_component(&summary.metrics, "spout", Expect::clean_spout(N));
    assert_component(
        &summary.metrics,
        "joiner",
        Expect {
            emitted: Some(N / 2),
            ..Expect::clean_bolt(N)
        },
    );
    assert_component(&summary.metrics, "gate", gate_expect(N / 2));
}

/// A chained stage's tuples carry no edges of their own (see `outbox::anchor_local`):
/// the tree must still wait for what the chained stage sent on, and complete once that
/// is acked.
#[test]
fn a_tree_through_a_chained_stage_completes_only_with_its_remote_descendants() {
    const N: u64 = 300;
    let spout = CountingSpout::new(N);
    let mid = RecordingBolt::forwarder();
    let chained = RecordingBolt::forwarder();
    let gate = Gate::new();
    let mut b = TopologyBuilder::new("chained-tree");
    b.spout("spout", spout.clone(), 1);
    b.bolt("mid", mid.clone(), 2).shuffle("spout");
    // Runs inside the `mid` tasks (local_or_shuffle, same parallelism, sole reader).
    b.bolt("chained", chained.clone(), 2)
        .local_or_shuffle("mid");
    b.bolt("gate", gate.clone(), 1).shuffle("chained");
    let cfg = Config {
        batch_size: 16,
        ..test_config()
    };
    let running = squall::LocalCluster::submit(b.build().unwrap(), cfg).unwrap();

    assert!(
        wait_until(LIMIT, || gate.received.load(Ordering::SeqCst) == N),
        "gate received {} of {N}",
        gate.received.load(Ordering::SeqCst)
    );
    // Every tuple went through `mid` and `chained`, which acked it; only the gate's held
    // tuples keep the trees open. Give a wrongly completed tree time to reach the spout.
    std::thread::sleep(Duration::from_millis(300));
    {
        let log = spout.log();
        assert!(
            log.acked.is_empty(),
            "{} roots acked while their descendant beyond the chain is held, e.g. {:?}",
            log.acked.len(),
            &log.acked[..log.acked.len().min(10)]
        );
        assert!(log.failed.is_empty());
    }
    gate.release.store(true, Ordering::SeqCst);
    assert!(running.wait_finished(LIMIT), "did not finish after release");
    let summary = running.join().unwrap();
    let log = spout.log();
    log.assert_each_acked_once(N);
    assert!(log.failed.is_empty());
    assert_component(&summary.metrics, "spout", Expect::clean_spout(N));
    for name in ["mid", "chained"] {
        assert_component(
            &summary.metrics,
            name,
            Expect {
                emitted: Some(N),
                ..Expect::clean_bolt(N)
            },
        );
    }
    assert_component(&summary.metrics, "gate", gate_expect(N));
}

/// Fails the first joined tuple that contains a given `n`; acks the rest.
#[derive(Clone)]
struct FailFirstSeen {
    seen: Arc<Mutex<std::collections::HashSet<i64>>>,
}

impl Bolt for FailFirstSeen {
    fn ack_mode(&self) -> AckMode {
        AckMode::Manual
    }
    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        let a = input.get_int("a").unwrap();
        let b = input.get_int("b").unwrap();
        let mut seen = lock(&self.seen);
        let fresh_a = seen.insert(a);
        let fresh_b = seen.insert(b);
        if fresh_a || fresh_b {
            out.fail(&input);
        } else {
            out.ack(&input);
        }
        Ok(())
    }
}

#[test]
fn failing_a_multi_anchored_tuple_fails_every_root() {
    const N: u64 = 100;
    let spout = CountingSpout::new(N);
    let joiner = Joiner {
        held: None,
        acked: Arc::default(),
    };
    let mut b = TopologyBuilder::new("multi-fail");
    b.spout("spout", spout.clone(), 1);
    b.bolt("joiner", joiner, 1).shuffle("spout");
    b.bolt(
        "judge",
        FailFirstSeen {
            seen: Arc::default(),
        },
        1,
    )
    .shuffle("joiner");
    let summary = run(b.build().unwrap(), test_config(), LIMIT);
    let log = spout.log();
    log.assert_each_acked_once(N);
    // The first joined tuple containing n is failed, which must fail n's tree: every id
    // fails at least once, before it is acked.
    let failed = log.failed_ids();
    let never: Vec<u64> = (1..=N).filter(|n| !failed.contains(n)).collect();
    assert!(
        never.is_empty(),
        "roots not failed with their joined tuple: {never:?}"
    );
    for n in 1..=N {
        let first = log.events.iter().find(|(id, _)| *id == n).unwrap();
        assert_eq!(first.1, Outcome::Failed, "id {n}: acked before its failure");
    }
    let s = summary.metrics.component("spout").unwrap();
    assert_eq!(s.failed, log.failed.len() as u64);
    assert_eq!(s.timed_out, 0, "failures must be reported, not timed out");
}

/// Emits each input 3× on "left" and 2× on "right", anchored (auto mode).
#[derive(Clone)]
struct Splitter;

impl Bolt for Splitter {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare_stream("left", Fields::new(["n", "i"]));
        out.declare_stream("right", Fields::new(["n", "i"]));
    }
    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        let n = input.get_int("n").unwrap();
        for i in 0..3 {
            out.emit_to("left", squall::values![n, i])?;
        }
        for i in 0..2 {
            out.emit_to("right", squall::values![n, i])?;
        }
        Ok(())
    }
}

#[test]
fn fan_out_root_acked_only_after_last_descendant() {
    const N: u64 = 100;
    let spout = CountingSpout::new(N);
    let gate = Gate::new();
    let left = RecordingBolt::sink();
    let right = RecordingBolt::sink();
    let mut b = TopologyBuilder::new("fanout");
    b.spout("spout", spout.clone(), 1);
    b.bolt("split", Splitter, 2).shuffle("spout");
    // Two subscribers of "left", one of "right".
    b.bolt("left", left.clone(), 2).shuffle(("split", "left"));
    b.bolt("gate", gate.clone(), 1).shuffle(("split", "left"));
    b.bolt("right", right.clone(), 2)
        .shuffle(("split", "right"));
    let running = squall::LocalCluster::submit(b.build().unwrap(), test_config()).unwrap();

    assert!(
        wait_until(LIMIT, || gate.received.load(Ordering::SeqCst) == 3 * N
            && left.executed.load(Ordering::SeqCst) == 3 * N
            && right.executed.load(Ordering::SeqCst) == 2 * N),
        "descendants not all delivered: gate {} left {} right {}",
        gate.received.load(Ordering::SeqCst),
        left.executed.load(Ordering::SeqCst),
        right.executed.load(Ordering::SeqCst)
    );
    // 5 of every root's 8 leaves are acked; the 3 held by the gate keep it open.
    std::thread::sleep(Duration::from_millis(300));
    {
        let log = spout.log();
        assert!(
            log.acked.is_empty(),
            "{} roots acked while descendants are held",
            log.acked.len()
        );
        assert!(log.failed.is_empty());
    }

    gate.release.store(true, Ordering::SeqCst);
    assert!(running.wait_finished(LIMIT), "did not finish after release");
    let summary = running.join().unwrap();
    spout.log().assert_each_acked_once(N);
    assert!(spout.log().failed.is_empty());
    let m = &summary.metrics;
    assert_component(m, "spout", Expect::clean_spout(N));
    assert_component(
        m,
        "split",
        Expect {
            emitted: Some(5 * N),
            ..Expect::clean_bolt(N)
        },
    );
    assert_component(m, "left", Expect::clean_bolt(3 * N));
    assert_component(m, "gate", gate_expect(3 * N));
    assert_component(m, "right", Expect::clean_bolt(2 * N));
    // Each n reached the left sink 3× and the right sink 2×.
    assert!(left.rec().receivers().values().all(|v| v.len() == 3));
    assert!(right.rec().receivers().values().all(|v| v.len() == 2));
}

/// A manual bolt that never acks: with acking on its trees would time out.
#[derive(Clone)]
struct NeverAck {
    executed: Arc<AtomicU64>,
}

impl Bolt for NeverAck {
    fn ack_mode(&self) -> AckMode {
        AckMode::Manual
    }
    fn execute(&mut self, _input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        self.executed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn acking_off_acks_at_emit_and_tracks_nothing() {
    const N: u64 = 5_000;
    let spout = CountingSpout::new(N);
    let mid = RecordingBolt::forwarder();
    let never = NeverAck {
        executed: Arc::default(),
    };
    let mut b = TopologyBuilder::new("acking-off");
    b.spout("spout", spout.clone(), 1);
    b.bolt("mid", mid.clone(), 2).shuffle("spout");
    b.bolt("never", never.clone(), 2).shuffle("mid");
    let cfg = Config {
        acking: false,
        // Would fail every tree within the run if anything were tracked.
        message_timeout: Duration::from_millis(200),
        max_spout_pending: 10,
        ..test_config()
    };
    let summary = run(b.build().unwrap(), cfg, LIMIT);
    let log = spout.log();
    log.assert_each_acked_once(N);
    assert!(log.failed.is_empty());
    assert_eq!(never.executed.load(Ordering::SeqCst), N, "everything flows");
    let m = &summary.metrics;
    assert_component(m, "spout", Expect::clean_spout(N));
    assert_component(m, "mid", Expect::clean_bolt(N));
    assert_component(
        m,
        "never",
        Expect {
            executed: Some(N),
            acked: Some(0),
            failed: Some(0),
            ..Expect::default()
        },
    );
    // No tree was tracked: outcomes are settled at emit, with a zero latency.
    let s = m.component("spout").unwrap();
    assert_eq!(
        s.complete_latency_us.max, 0.0,
        "{:?}",
        s.complete_latency_us
    );
}

/// Regression test for a fixed engine bug (src/runtime/bolt_task.rs, `BoltTask::guarded`): the `BoltCollector` given
/// to `tick` and `finish` counts the acks and fails made through it (`col.acked`,
/// `col.failed`), but `guarded` drops them instead of adding them to
/// `metrics.local.acked` / `.failed` as `execute_one` does. A manual bolt that acks held
/// tuples from `tick` (windows, batching) reports `acked 0`. The trees do complete (the
/// ledger is updated); only the metric is wrong. Fix: after the call in `guarded`, add
/// `col.acked` and `col.failed` to `self.metrics.local.acked` / `.failed`.
#[test]
fn acks_made_in_tick_count_in_bolt_metrics() {
    const N: u64 = 100;
    let spout = CountingSpout::new(N);
    let gate = Gate::new();
    let mut b = TopologyBuilder::new("tick-acks");
    b.spout("spout", spout.clone(), 1);
    b.bolt("gate", gate.clone(), 1).shuffle("spout");
    let running = squall::LocalCluster::submit(b.build().unwrap(), test_config()).unwrap();
    assert!(wait_until(LIMIT, || gate.received.load(Ordering::SeqCst) == N));
    // Everything is held now; release it: all N acks are made in `tick`.
    gate.release.store(true, Ordering::SeqCst);
    assert!(running.wait_finished(LIMIT));
    let summary = running.join().unwrap();
    spout.log().assert_each_acked_once(N);
    assert_component(&summary.metrics, "gate", Expect::clean_bolt(N));
}
