//! Backpressure: `max_spout_pending` bounds the trees in flight in front of a slow sink.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use squall::{Config, LocalCluster, TopologyBuilder};

use crate::support::*;

const MAX_PENDING: usize = 100;
/// Metrics are published by each task every 100 ms; a sink at ~200-300 µs per tuple
/// executes up to ~500 tuples between two publications (observed gap: ~760). The
/// metric-based bound allows for that staleness; without backpressure the gap would
/// reach the whole run (5 000).
const PUBLISH_SLACK: u64 = 1_500;

#[test]
fn max_spout_pending_bounds_the_gap_before_a_slow_sink() {
    const N: u64 = 5_000;
    let spout = CountingSpout::new(N);
    let mid = RecordingBolt::forwarder();
    let sink = RecordingBolt::sink().with_delay(Duration::from_micros(200));
    let mut b = TopologyBuilder::new("backpressure");
    b.spout("spout", spout.clone(), 1);
    b.bolt("mid", mid, 1).shuffle("spout");
    b.bolt("sink", sink.clone(), 1).shuffle("mid");
    let cfg = Config {
        max_spout_pending: MAX_PENDING,
        message_timeout: Duration::from_secs(10),
        ..test_config()
    };
    let running = LocalCluster::submit(b.build().unwrap(), cfg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut samples = 0u64;
    let mut max_exact_gap = 0u64;
    let mut max_metric_gap = 0u64;
    let mut max_pending_gauge = 0u64;
    while !running.wait_finished(Duration::from_millis(2)) {
        assert!(
            Instant::now() < deadline,
            "did not finish: {}",
            summary_line(&running.metrics())
        );
        // Exact counters: read the spout's first, so the sink's can only be ahead.
        let emitted = spout.emitted.load(Ordering::SeqCst);
        let executed = sink.executed.load(Ordering::SeqCst);
        let gap = emitted.saturating_sub(executed);
        assert!(
            gap <= MAX_PENDING as u64,
            "spout emitted {emitted}, sink executed {executed}: {gap} in flight > max_spout_pending {MAX_PENDING}"
        );
        max_exact_gap = max_exact_gap.max(gap);

        let m = running.metrics();
        let s = m.component("spout").unwrap();
        let k = m.component("sink").unwrap();
        let metric_gap = s.emitted.saturating_sub(k.executed);
        assert!(
            metric_gap <= MAX_PENDING as u64 + PUBLISH_SLACK,
            "metrics: spout emitted {} − sink executed {} = {metric_gap}",
            s.emitted,
            k.executed
        );
        assert!(
            s.pending <= MAX_PENDING as u64,
            "pending gauge {} > max_spout_pending",
            s.pending
        );
        max_metric_gap = max_metric_gap.max(metric_gap);
        max_pending_gauge = max_pending_gauge.max(s.pending);
        samples += 1;
    }
    let summary = running.join().unwrap();
    assert!(samples >= 50, "only {samples} samples taken during the run");
    // The sink was the bottleneck: the window was actually filled.
    assert!(
        max_exact_gap >= MAX_PENDING as u64 / 2,
        "max gap {max_exact_gap}: the spout never got close to the limit"
    );
    eprintln!(
        "samples {samples}, max exact gap {max_exact_gap}, max metric gap {max_metric_gap}, max pending gauge {max_pending_gauge}"
    );
    let log = spout.log();
    log.assert_each_acked_once(N);
    assert!(log.failed.is_empty());
    assert_component(&summary.metrics, "spout", Expect::clean_spout(N));
    assert_component(&summary.metrics, "sink", Expect::clean_bolt(N));
}

/// A spout that emits many tuples per `next_tuple` call may overshoot
/// `max_spout_pending` by one call's worth, but no outcome may be lost: every tree must
/// be acked, none may time out.
///
/// Regression test for a fixed engine bug, two parts:
/// 1. src/runtime/cluster.rs, `Plan::start`: each spout's ack channel holds
///    `max_spout_pending + 64` outcomes, and `Ledger::notify` (src/runtime/ledger.rs)
///    uses `try_send`. `max_spout_pending` is checked only before each `next_tuple` call
///    (`SpoutTask::round`), so a call that emits 500 tuples puts ~500 trees in flight;
///    their outcomes overflow the channel while the spout task is busy, and are dropped
///    ("ack channel rejected outcome").
/// 2. src/runtime/spout_task.rs, `check_timeouts`: the comment in `notify` says the
///    timeout then replays the tree, but the ledger entry was already removed when the
///    tree completed, so `Ledger::expire` returns `Expiry::Gone` and the spout keeps the
///    root in `tracker.pending` forever: the tree is neither acked nor failed, it holds
///    a `max_spout_pending` slot, and the spout never finishes (the run hangs).
///    Observed: sink executed 500, spout acked 144, pending 356, timed_out 0 after 10 s.
///
/// Fix: size the channel for what can be in flight (or make it unbounded), and treat
/// `Expiry::Gone` for a root still pending after its deadline as lost (fail it). (Since
/// then the trees live in the spout task itself, `Trees` in src/runtime/ledger.rs, so a
/// root is pending exactly while the spout tracks it.)
#[test]
fn bursty_spout_loses_no_outcomes() {
    const N: u64 = 20_000;
    let spout = CountingSpout::new(N).with_burst(500);
    let mut b = TopologyBuilder::new("bursty");
    b.spout("spout", spout.clone(), 1);
    b.bolt("sink", NullBolt, 2).shuffle("spout");
    let cfg = Config {
        max_spout_pending: 8,
        message_timeout: Duration::from_secs(2),
        ..test_config()
    };
    let summary = run(b.build().unwrap(), cfg, Duration::from_secs(10));
    let log = spout.log();
    assert!(
        log.failed.is_empty(),
        "{} trees failed (timed out: {}): outcomes were lost; {}",
        log.failed.len(),
        summary.metrics.component("spout").unwrap().timed_out,
        summary_line(&summary.metrics)
    );
    log.assert_each_acked_once(N);
    assert_component(&summary.metrics, "spout", Expect::clean_spout(N));
}

/// A paced generator that falls behind (its sink is slow) catches up several tweets per
/// `next_tuple` call, but never past `max_spout_pending`: it emits at most
/// `SpoutCollector::room()` at a time. (It used to emit up to 64 due tweets per call
/// whatever the room: 490 trees in flight for a limit of 2 × 200 behind a stuck sink.)
#[test]
fn a_paced_generator_catching_up_stays_within_max_spout_pending() {
    use squall::component::registry::SpoutConfig;
    use squall::spouts::generator::GeneratorSpoutConfig;

    const N: u64 = 2_000;
    const LIMIT: usize = 10;
    let source = GeneratorSpoutConfig {
        limit: N,
        rate: 100_000.0,
        seed: 3,
        ..Default::default()
    };
    let sink = RecordingBolt::sink().with_delay(Duration::from_micros(300));
    let mut b = TopologyBuilder::new("paced");
    b.spout_factory(
        "source",
        source.build().unwrap_or_else(|e| panic!("{e}")),
        1,
    );
    b.bolt("sink", sink.clone(), 1).shuffle("source");
    let cfg = Config {
        max_spout_pending: LIMIT,
        message_timeout: Duration::from_secs(30),
        ..test_config()
    };
    let running = LocalCluster::submit(b.build().unwrap(), cfg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut max_pending = 0;
    while !running.wait_finished(Duration::from_millis(5)) {
        assert!(Instant::now() < deadline, "did not finish");
        let m = running.metrics();
        max_pending = max_pending.max(m.component("source").unwrap().pending);
    }
    let summary = running.join().unwrap();
    assert_component(&summary.metrics, "source", Expect::clean_spout(N));
    assert!(
        max_pending <= LIMIT as u64,
        "{max_pending} trees in flight, max_spout_pending {LIMIT}"
    );
    assert!(
        max_pending >= LIMIT as u64 / 2,
        "the limit was never reached"
    );
}
