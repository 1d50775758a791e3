//! Engine benchmarks (issue 2), named after Storm's storm-perf topologies.
//!
//! Run with `cargo bench --bench engine` (about 2-3 minutes on 2 cores). Criterion reports
//! time per tuple (or per ack op); after the criterion groups this binary prints a summary:
//! tuples/s of every topology run, the per-hop cost, the acking-on/off ratio, complete
//! latency at fixed offered rates, and ns per ack op of each ledger design.
//!
//! 1. `const_spout_null_bolt`: spout → null bolt, acking on/off × batch 1/256.
//! 2. `const_spout_id_bolt_null_bolt`: spout → identity bolt → null bolt (throughput), and
//!    `complete_latency`: the same topology paced at 10k and 100k tuples/s.
//! 3. per hop: 3-stage minus 2-stage time per tuple (printed in the summary).
//! 4. `ledger`: a sharded concurrent map updated directly by two threads versus the same
//!    ack ops sent over a bounded channel to one acker thread owning a `HashMap`.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use dashmap::DashMap;
use squall::{
    Bolt, BoltCollector, ComponentResult, Config, Fields, LocalCluster, OutputDeclarer, Spout,
    SpoutCollector, SpoutStatus, TopologyBuilder, Tuple, Values, values,
};

// As the `squall` binary: tuples are allocated on one worker thread and freed on another.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Default transport batch of the engine (`Config::default().batch_size`).
const DEFAULT_BATCH: usize = 256;

// ---------------------------------------------------------------------------------------
// Components
// ---------------------------------------------------------------------------------------

/// Emits the same one-field tuple `limit` times (with a message id when acking), then is
/// exhausted. With `rate`, emits at that many tuples/s by the wall clock (Idle until the
/// next send time).
#[derive(Clone)]
struct ConstSpout {
    tuple: Values,
    with_ids: bool,
    sent: u64,
    limit: u64,
    rate: Option<f64>,
    start: Option<Instant>,
}

impl ConstSpout {
    fn new(limit: u64, with_ids: bool, rate: Option<f64>) -> Self {
        ConstSpout {
            tuple: values!["some data"],
            with_ids,
            sent: 0,
            limit,
            rate,
            start: None,
        }
    }
}

impl Spout for ConstSpout {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["str"]));
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> SpoutStatus {
        if self.sent >= self.limit {
            return SpoutStatus::Exhausted;
        }
        if let Some(rate) = self.rate {
            let start = *self.start.get_or_insert_with(Instant::now);
            let due = start + Duration::from_secs_f64(self.sent as f64 / rate);
            if Instant::now() < due {
                return SpoutStatus::Idle;
            }
        }
        let id = self.with_ids.then_some(self.sent);
        match out.emit(self.tuple.clone(), id) {
            Ok(()) => {
                self.sent += 1;
                SpoutStatus::Emitted
            }
            Err(_) => SpoutStatus::Idle,
        }
    }
}

/// Passes its input on unchanged (anchored, auto-acked).
#[derive(Clone)]
struct IdBolt;

impl Bolt for IdBolt {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["str"]));
    }

    fn execute(&mut self, t: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        out.emit(t.into_values())
    }
}

/// Drops its input (auto-acked).
#[derive(Clone)]
struct NullBolt;

impl Bolt for NullBolt {
    fn execute(&mut self, _t: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Topology runs
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Shape {
    /// 2 = spout → null; 3 = spout → id → null.
    stages: usize,
    acking: bool,
    batch: usize,
}

impl Shape {
    fn name(&self) -> &'static str {
        match self.stages {
            2 => "const_spout_null_bolt",
            _ => "const_spout_id_bolt_null_bolt",
        }
    }

    fn label(&self) -> String {
        format!(
            "acking_{}/batch_{}",
            if self.acking { "on" } else { "off" },
            self.batch
        )
    }

    fn config(&self) -> Config {
        Config {
            acking: self.acking,
            batch_size: self.batch,
            ..Config::default()
        }
    }

    fn topology(&self, n: u64, rate: Option<f64>) -> squall::Topology {
        let mut b = TopologyBuilder::new(self.name());
        b.spout("spout", ConstSpout::new(n, self.acking, rate), 1);
        if self.stages >= 3 {
            b.bolt("id", IdBolt, 1).shuffle("spout");
            b.bolt("sink", NullBolt, 1).shuffle("id");
        } else {
            b.bolt("sink", NullBolt, 1).shuffle("spout");
        }
        b.build().expect("valid topology")
    }
}

/// Runs `n` tuples through the topology; returns the wall time from submit until every
/// task has finished (and, acking on, every tree is acked).
fn run_bounded(shape: Shape, n: u64) -> Duration {
    let topo = shape.topology(n, None);
    let t = Instant::now();
    let run = LocalCluster::submit(topo, shape.config()).expect("submit");
    let finished = run.wait_finished(Duration::from_secs(600));
    let elapsed = t.elapsed();
    let summary = run.join().expect("run");
    assert!(
        finished,
        "{} {}: run did not finish",
        shape.name(),
        shape.label()
    );
    let m = &summary.metrics;
    let sink = m.component("sink").expect("sink metrics");
    assert_eq!(sink.executed, n, "every tuple reaches the sink");
    if shape.acking {
        let spout = m.component("spout").expect("spout metrics");
        assert_eq!((spout.acked, spout.failed), (n, 0), "every tree acked");
    }
    elapsed
}

/// (tuples, seconds) of every timed run, per bench id, for the summary.
type Tally = Mutex<BTreeMap<String, (u64, f64)>>;

fn tally() -> &'static Tally {
    static T: std::sync::OnceLock<Tally> = std::sync::OnceLock::new();
    T.get_or_init(Default::default)
}

/// Runs smaller than this (criterion's first warm-up calls) are dominated by starting the
/// topology and are left out of the summary's tuples/s.
const TALLY_MIN: u64 = 100_000;

fn record(key: &str, n: u64, d: Duration) {
    if n >= TALLY_MIN {
        let mut t = tally().lock().unwrap_or_else(|p| p.into_inner());
        let e = t.entry(key.to_string()).or_default();
        e.0 += n;
        e.1 += d.as_secs_f64();
    }
}

fn rate_of(key: &str) -> Option<f64> {
    let t = tally().lock().unwrap_or_else(|p| p.into_inner());
    t.get(key).map(|(n, s)| *n as f64 / s)
}

/// One criterion iteration = one tuple: `iter_custom(iters)` runs a bounded topology of
/// `iters` tuples, so criterion's time is the wall time per tuple (start-up included).
fn bench_shape(c: &mut Criterion, shapes: &[Shape]) {
    let mut g = c.benchmark_group(shapes[0].name());
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));
    for &shape in shapes {
        let key = format!("{}/{}", shape.name(), shape.label());
        g.bench_function(BenchmarkId::from_parameter(shape.label()), |b| {
            b.iter_custom(|iters| {
                let d = run_bounded(shape, iters.max(1));
                record(&key, iters, d);
                d
            })
        });
    }
    g.finish();
}

fn shapes(stages: usize) -> Vec<Shape> {
    let mut v = Vec::new();
    for acking in [false, true] {
        for batch in [1, DEFAULT_BATCH] {
            v.push(Shape {
                stages,
                acking,
                batch,
            });
        }
    }
    v
}

fn const_spout_null_bolt(c: &mut Criterion) {
    bench_shape(c, &shapes(2));
}

fn const_spout_id_bolt_null_bolt(c: &mut Criterion) {
    bench_shape(c, &shapes(3));
}

// ---------------------------------------------------------------------------------------
// Complete latency at a fixed offered rate
// ---------------------------------------------------------------------------------------

struct LatencyRun {
    rate: f64,
    batch: usize,
    acked: u64,
    achieved: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

/// Runs the 3-stage topology, acking on, with the spout paced at `rate` tuples/s for
/// `secs`; returns the spout's complete latency (whole run, from its metrics).
fn paced_run(rate: f64, secs: f64, batch: usize) -> LatencyRun {
    let shape = Shape {
        stages: 3,
        acking: true,
        batch,
    };
    let n = (rate * secs) as u64;
    let topo = shape.topology(n, Some(rate));
    let t = Instant::now();
    let run = LocalCluster::submit(topo, shape.config()).expect("submit");
    assert!(run.wait_finished(Duration::from_secs_f64(secs * 4.0 + 30.0)));
    let elapsed = t.elapsed().as_secs_f64();
    let summary = run.join().expect("run");
    let spout = summary.metrics.component("spout").expect("spout metrics");
    assert_eq!(spout.acked, n, "every tree acked");
    let l = &spout.complete_latency_us;
    LatencyRun {
        rate,
        batch,
        acked: spout.acked,
        achieved: spout.acked as f64 / elapsed,
        p50: l.p50,
        p90: l.p90,
        p99: l.p99,
        p999: l.p999,
        max: l.max,
    }
}

// ---------------------------------------------------------------------------------------
// Ledger choice: direct sharded map vs acker thread behind a channel
// ---------------------------------------------------------------------------------------

/// Identity hasher for keys that are already random 64-bit ids (as the engine's).
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

type IdBuild = BuildHasherDefault<IdHasher>;

/// SplitMix64: random non-zero ids, as the engine makes them.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> u64 {
        loop {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            if z != 0 {
                return z;
            }
        }
    }
}

/// One ledger update.
#[derive(Clone, Copy)]
enum AckOp {
    /// A spout registers a root whose first edges XOR to the value.
    Init(u64, u64),
    /// A bolt XORs a delta into a root; the root is removed when its value reaches zero.
    Ack(u64, u64),
}

/// Threads that produce ack ops (the engine's tasks: 2 cores, 2 workers).
const PRODUCERS: usize = 2;
/// In-flight trees per producer (the engine's default `max_spout_pending`).
const WINDOW: usize = 4096;

/// The op stream of one producer: per tree, `init(r, e1)`, later `ack(r, e1^e2)` (edge 1
/// acked, edge 2 created; the value stays non-zero), later `ack(r, e2)` (zero: removed).
/// The three ops of a tree are spread over a window of `WINDOW` trees so that the map holds
/// about `WINDOW` live roots per producer, like a spout at `max_spout_pending`. Yields
/// exactly `ops` ops (the ops of the last trees may be cut off; the tally is by op).
fn op_stream(seed: u64, ops: u64, mut f: impl FnMut(AckOp)) {
    let mut ids = Ids(seed);
    // Ring of in-flight trees: (root, e1, e2).
    let mut ring = vec![(0u64, 0u64, 0u64); WINDOW];
    let half = WINDOW / 2;
    let mut done = 0u64;
    let mut i = 0usize;
    loop {
        let slot = i % WINDOW;
        // Second edge of the tree started WINDOW/2 trees ago.
        if i >= half {
            let (r, e1, e2) = ring[(i - half) % WINDOW];
            if done == ops {
                return;
            }
            f(AckOp::Ack(r, e1 ^ e2));
            done += 1;
        }
        // Completion of the tree started WINDOW trees ago (its slot is reused now).
        if i >= WINDOW {
            let (r, _, e2) = ring[slot];
            if done == ops {
                return;
            }
            f(AckOp::Ack(r, e2));
            done += 1;
        }
        if done == ops {
            return;
        }
        let (r, e1, e2) = (ids.next(), ids.next(), ids.next());
        ring[slot] = (r, e1, e2);
        f(AckOp::Init(r, e1));
        done += 1;
        i += 1;
    }
}

fn apply(map: &mut HashMap<u64, u64, IdBuild>, op: AckOp) {
    match op {
        AckOp::Init(r, x) => {
            map.insert(r, x);
        }
        AckOp::Ack(r, d) => {
            if let Some(v) = map.get_mut(&r) {
                *v ^= d;
                if *v == 0 {
                    map.remove(&r);
                }
            }
        }
    }
}

fn apply_shared(map: &DashMap<u64, u64, IdBuild>, op: AckOp) {
    match op {
        AckOp::Init(r, x) => {
            map.insert(r, x);
        }
        AckOp::Ack(r, d) => {
            let zero = match map.get_mut(&r) {
                Some(mut v) => {
                    *v ^= d;
                    *v == 0
                }
                None => false,
            };
            if zero {
                map.remove_if(&r, |_, v| *v == 0);
            }
        }
    }
}

/// Splits `total` ops over the producers.
fn per_producer(total: u64) -> u64 {
    total.div_ceil(PRODUCERS as u64)
}

/// (a) Every producer updates one sharded map directly. Returns wall time.
fn ledger_dashmap(total: u64) -> Duration {
    let map: Arc<DashMap<u64, u64, IdBuild>> = Arc::new(DashMap::with_hasher_and_shard_amount(
        IdBuild::default(),
        64,
    ));
    let ops = per_producer(total);
    let go = Arc::new(Barrier::new(PRODUCERS + 1));
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let map = map.clone();
            let go = go.clone();
            std::thread::spawn(move || {
                go.wait();
                op_stream(p as u64 + 1, ops, |op| apply_shared(&map, op));
            })
        })
        .collect();
    go.wait();
    let t = Instant::now();
    for h in handles {
        h.join().expect("producer");
    }
    let d = t.elapsed();
    assert!(map.len() <= PRODUCERS * WINDOW);
    d
}

/// (b) Producers send ops (in messages of `batch` ops) over a bounded crossbeam channel to
/// one acker thread that owns a `HashMap`. Returns wall time until the acker applied all.
fn ledger_crossbeam(total: u64, batch: usize) -> Duration {
    let ops = per_producer(total);
    let (tx, rx) = crossbeam_channel::bounded::<Vec<AckOp>>(1024);
    let go = Arc::new(Barrier::new(PRODUCERS + 2));
    let acker = {
        let go = go.clone();
        std::thread::spawn(move || {
            let mut map: HashMap<u64, u64, IdBuild> = HashMap::default();
            go.wait();
            for msg in rx {
                for op in msg {
                    apply(&mut map, op);
                }
            }
            map.len()
        })
    };
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            let go = go.clone();
            std::thread::spawn(move || {
                go.wait();
                let mut buf = Vec::with_capacity(batch);
                op_stream(p as u64 + 1, ops, |op| {
                    buf.push(op);
                    if buf.len() == batch {
                        let full = std::mem::replace(&mut buf, Vec::with_capacity(batch));
                        tx.send(full).expect("acker alive");
                    }
                });
                if !buf.is_empty() {
                    tx.send(buf).expect("acker alive");
                }
            })
        })
        .collect();
    drop(tx);
    go.wait();
    let t = Instant::now();
    for h in handles {
        h.join().expect("producer");
    }
    let left = acker.join().expect("acker");
    let d = t.elapsed();
    assert!(left <= PRODUCERS * WINDOW);
    d
}

/// (b') The same with one op per message and no `Vec` (the unbatched channel).
fn ledger_crossbeam_single(total: u64) -> Duration {
    let ops = per_producer(total);
    let (tx, rx) = crossbeam_channel::bounded::<AckOp>(1024);
    let go = Arc::new(Barrier::new(PRODUCERS + 2));
    let acker = {
        let go = go.clone();
        std::thread::spawn(move || {
            let mut map: HashMap<u64, u64, IdBuild> = HashMap::default();
            go.wait();
            for op in rx {
                apply(&mut map, op);
            }
            map.len()
        })
    };
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            let go = go.clone();
            std::thread::spawn(move || {
                go.wait();
                op_stream(p as u64 + 1, ops, |op| tx.send(op).expect("acker alive"));
            })
        })
        .collect();
    drop(tx);
    go.wait();
    let t = Instant::now();
    for h in handles {
        h.join().expect("producer");
    }
    let left = acker.join().expect("acker");
    let d = t.elapsed();
    assert!(left <= PRODUCERS * WINDOW);
    d
}

/// (b'') The engine's own channel: tokio bounded mpsc (blocking send/recv from plain
/// threads), batched.
fn ledger_tokio(total: u64, batch: usize) -> Duration {
    let ops = per_producer(total);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<AckOp>>(1024);
    let go = Arc::new(Barrier::new(PRODUCERS + 2));
    let acker = {
        let go = go.clone();
        std::thread::spawn(move || {
            let mut map: HashMap<u64, u64, IdBuild> = HashMap::default();
            go.wait();
            while let Some(msg) = rx.blocking_recv() {
                for op in msg {
                    apply(&mut map, op);
                }
            }
            map.len()
        })
    };
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            let go = go.clone();
            std::thread::spawn(move || {
                go.wait();
                let mut buf = Vec::with_capacity(batch);
                op_stream(p as u64 + 1, ops, |op| {
                    buf.push(op);
                    if buf.len() == batch {
                        let full = std::mem::replace(&mut buf, Vec::with_capacity(batch));
                        tx.blocking_send(full).expect("acker alive");
                    }
                });
                if !buf.is_empty() {
                    tx.blocking_send(buf).expect("acker alive");
                }
            })
        })
        .collect();
    drop(tx);
    go.wait();
    let t = Instant::now();
    for h in handles {
        h.join().expect("producer");
    }
    let left = acker.join().expect("acker");
    let d = t.elapsed();
    assert!(left <= PRODUCERS * WINDOW);
    d
}

/// One criterion iteration = one ack op (summed over both producers): criterion's time is
/// wall time / total ops, the ledger's aggregate cost per op.
fn ledger(c: &mut Criterion) {
    let mut g = c.benchmark_group("ledger");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    type Variant = (&'static str, fn(u64) -> Duration);
    let variants: [Variant; 5] = [
        ("dashmap_direct_64_shards", ledger_dashmap),
        ("crossbeam_acker_batch_256", |n| ledger_crossbeam(n, 256)),
        ("crossbeam_acker_batch_1", ledger_crossbeam_single),
        ("tokio_mpsc_acker_batch_256", |n| ledger_tokio(n, 256)),
        ("tokio_mpsc_acker_batch_1", |n| ledger_tokio(n, 1)),
    ];
    for (name, f) in variants {
        let key = format!("ledger/{name}");
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let d = f(iters.max(PRODUCERS as u64));
                record(&key, iters, d);
                d
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    const_spout_null_bolt,
    const_spout_id_bolt_null_bolt,
    ledger
);

// ---------------------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------------------

/// The filter criterion was given (`cargo bench --bench engine -- FILTER`), if any.
fn filter() -> Option<String> {
    let mut args = std::env::args().skip(1);
    let mut filter = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            // Options that take a value.
            "--save-baseline"
            | "--baseline"
            | "--baseline-lenient"
            | "--load-baseline"
            | "--sample-size"
            | "--warm-up-time"
            | "--measurement-time"
            | "--nresamples"
            | "--noise-threshold"
            | "--confidence-level"
            | "--significance-level"
            | "--profile-time"
            | "--plotting-backend"
            | "--output-format"
            | "--color"
            | "-c"
            | "--format" => {
                args.next();
            }
            s if s.starts_with('-') => {}
            s => filter = Some(s.to_string()),
        }
    }
    filter
}

fn ns_per(key: &str) -> Option<f64> {
    rate_of(key).map(|r| 1e9 / r)
}

fn print_summary(latency: &[LatencyRun]) {
    println!(
        "\n=== squall engine summary (tuples/s over every timed run of ≥ {TALLY_MIN} tuples) ==="
    );
    println!("{:<58} {:>14} {:>10}", "bench", "tuples/s", "ns/tuple");
    let t = tally().lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (k, (n, s)) in t.iter().filter(|(k, _)| !k.starts_with("ledger/")) {
        let r = *n as f64 / s;
        println!("{k:<58} {r:>14.0} {:>10.1}", 1e9 / r);
    }
    for acking in ["off", "on"] {
        let two = ns_per(&format!(
            "const_spout_null_bolt/acking_{acking}/batch_{DEFAULT_BATCH}"
        ));
        let three = ns_per(&format!(
            "const_spout_id_bolt_null_bolt/acking_{acking}/batch_{DEFAULT_BATCH}"
        ));
        if let (Some(a), Some(b)) = (two, three) {
            println!(
                "per hop, acking {acking}, batch {DEFAULT_BATCH}: {:.1} ns/tuple (3-stage {b:.1} − 2-stage {a:.1})",
                b - a
            );
        }
    }
    for stages in ["const_spout_null_bolt", "const_spout_id_bolt_null_bolt"] {
        for batch in [1, DEFAULT_BATCH] {
            let on = rate_of(&format!("{stages}/acking_on/batch_{batch}"));
            let off = rate_of(&format!("{stages}/acking_off/batch_{batch}"));
            if let (Some(on), Some(off)) = (on, off) {
                println!(
                    "acking on/off throughput, {stages}, batch {batch}: {:.2}",
                    on / off
                );
            }
        }
    }
    if !latency.is_empty() {
        println!("\ncomplete latency, const_spout_id_bolt_null_bolt, acking on (µs, whole run):");
        println!(
            "{:>10} {:>6} {:>9} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "offered/s", "batch", "acked", "achieved/s", "p50", "p90", "p99", "p99.9", "max"
        );
        for l in latency {
            println!(
                "{:>10.0} {:>6} {:>9} {:>11.0} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                l.rate, l.batch, l.acked, l.achieved, l.p50, l.p90, l.p99, l.p999, l.max
            );
        }
    }
    let ledger: Vec<_> = t.iter().filter(|(k, _)| k.starts_with("ledger/")).collect();
    if !ledger.is_empty() {
        println!("\nledger, {PRODUCERS} producer threads, ns per ack op (wall time / total ops):");
        for (k, (n, s)) in ledger {
            println!("{k:<58} {:>10.1}", s * 1e9 / *n as f64);
        }
    }
}

fn main() {
    benches();
    let f = filter();
    let quick = !std::env::args().any(|a| a == "--bench");
    let mut latency = Vec::new();
    if f.as_deref().is_none_or(|f| "complete_latency".contains(f)) {
        // `cargo test --benches` runs each bench once: keep the paced runs short there.
        let secs = if quick { 0.2 } else { 3.0 };
        for rate in [10_000.0, 100_000.0] {
            latency.push(paced_run(rate, secs, DEFAULT_BATCH));
        }
    }
    print_summary(&latency);
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
