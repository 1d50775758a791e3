//! Event mode vs micro-batch mode (issue 6): `cargo bench --bench latency`.
//!
//! The topology is three stages — a channel spout (the bench hands it tweet texts),
//! `tokenize` (chained `hashtags`), `count` (fields-grouped) — so a tuple crosses threads.
//! - `one_tuple/event`: the complete latency of one tuple: handed to the spout, then its
//!   tree acked (tokenize → hashtags → count).
//! - `one_batch/microbatch/N`: the latency of one batch of N tuples: handed to the spout,
//!   cut into a batch, processed by every stage, committed (acks come after the commit).
//! - `throughput/{event,microbatch}`: 20,000 tuples handed over at once, until all are
//!   acked (tuples/s). The channel spout cannot replay, so micro-batch mode moves its
//!   batches as tuples.
//! - `generator_job/{event,microbatch}`: the trending-hashtags pipeline on 1,000,000
//!   generated tweets (generator → tokenize + hashtags → count, 2 tasks each), start to
//!   finish; micro-batch mode takes its columnar path (tweets/s).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use squall::bolts::count::CountConfig;
use squall::bolts::hashtags::HashtagsConfig;
use squall::bolts::tokenize::TokenizeConfig;
use squall::component::SpoutWaker;
use squall::component::registry::{BoltConfig, SpoutConfig};
use squall::config::Mode;
use squall::spouts::generator::GeneratorSpoutConfig;
use squall::tweet::generator::{GeneratorConfig, TweetGenerator};
use squall::{
    ComponentResult, Config, Fields, LocalCluster, OutputDeclarer, RunningTopology, Spout,
    SpoutCollector, SpoutStatus, TaskContext, TopologyBuilder,
};

/// Emits what the bench sends it (id, text); reports each ack. It hands out its waker so
/// the bench can wake it at once (event mode), as an async source would.
#[derive(Clone)]
struct ChannelSpout {
    input: Receiver<(u64, String)>,
    acks: Sender<u64>,
    waker: Arc<Mutex<Option<SpoutWaker>>>,
}

impl Spout for ChannelSpout {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["text"]));
    }

    fn open(&mut self, ctx: &TaskContext) -> ComponentResult {
        *self.waker.lock().unwrap_or_else(|p| p.into_inner()) = ctx.waker();
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> SpoutStatus {
        let mut n = 0;
        while let Ok((id, text)) = self.input.try_recv() {
            if out.emit(squall::values![text], Some(id)).is_err() {
                break;
            }
            n += 1;
            if n == 4096 {
                break;
            }
        }
        if n > 0 {
            SpoutStatus::Emitted
        } else {
            SpoutStatus::Idle
        }
    }

    fn ack(&mut self, id: u64) {
        let _ = self.acks.send(id);
    }
}

struct Harness {
    _run: RunningTopology,
    waker: Arc<Mutex<Option<SpoutWaker>>>,
    input: Sender<(u64, String)>,
    acks: Receiver<u64>,
    texts: Vec<String>,
    next: u64,
}

impl Harness {
    fn start(mode: Mode) -> Harness {
        let (tx, rx) = bounded(1 << 20);
        let (atx, arx) = unbounded();
        let waker = Arc::new(Mutex::new(None));
        let spout = ChannelSpout {
            input: rx,
            acks: atx,
            waker: waker.clone(),
        };
        let factory = |r: Result<
            squall::component::BoltFactory,
            squall::component::registry::BuildError,
        >| { r.unwrap_or_else(|e| panic!("build: {e}")) };
        let mut b = TopologyBuilder::new("latency");
        b.spout("source", spout, 1);
        b.bolt_factory("tokenize", factory(TokenizeConfig::default().build()), 1)
            .shuffle("source");
        b.bolt_factory("hashtags", factory(HashtagsConfig::default().build()), 1)
            .local_or_shuffle("tokenize");
        b.bolt_factory("count", factory(CountConfig::default().build()), 1)
            .fields("hashtags", ["hashtag"]);
        let t = b.build().unwrap_or_else(|e| panic!("topology: {e}"));
        let config = Config {
            workers: 2,
            mode,
            batch_interval: Duration::from_micros(200),
            max_batch: 1 << 20,
            batches_in_flight: 2,
            max_spout_pending: 1 << 16,
            ..Config::default()
        };
        let run = LocalCluster::submit(t, config).unwrap_or_else(|e| panic!("submit: {e}"));
        let g = TweetGenerator::new(GeneratorConfig::default())
            .unwrap_or_else(|e| panic!("generator: {e}"));
        Harness {
            _run: run,
            waker,
            input: tx,
            acks: arx,
            texts: (1..=4096).map(|i| g.tweet_at(i).text).collect(),
            next: 0,
        }
    }

    /// Hands `n` tuples over and waits until all are acked.
    fn round_trip(&mut self, n: usize) {
        for _ in 0..n {
            self.next += 1;
            let text = self.texts[(self.next % 4096) as usize].clone();
            if self.input.send((self.next, text)).is_err() {
                panic!("the spout is gone");
            }
        }
        if let Some(w) = self
            .waker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            w.wake();
        }
        for _ in 0..n {
            if self.acks.recv_timeout(Duration::from_secs(30)).is_err() {
                panic!("no ack within 30 s");
            }
        }
    }
}

fn latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("one_tuple");
    let mut h = Harness::start(Mode::Event);
    g.bench_function("event", |b| b.iter(|| h.round_trip(1)));
    g.finish();

    let mut g = c.benchmark_group("one_batch");
    let mut h = Harness::start(Mode::Microbatch);
    for n in [1usize, 100, 10_000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("microbatch", n), &n, |b, &n| {
            b.iter(|| h.round_trip(n))
        });
    }
    g.finish();
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("throughput");
    g.sample_size(10);
    g.throughput(Throughput::Elements(20_000));
    for (name, mode) in [("event", Mode::Event), ("microbatch", Mode::Microbatch)] {
        let mut h = Harness::start(mode);
        g.bench_function(name, |b| b.iter(|| h.round_trip(20_000)));
    }
    g.finish();
}

/// generator (`limit` tweets, unpaced) → tokenize (+ chained hashtags) → count.
fn generator_job(limit: u64) -> squall::Topology {
    let factory = |r: Result<
        squall::component::BoltFactory,
        squall::component::registry::BuildError,
    >| { r.unwrap_or_else(|e| panic!("build: {e}")) };
    let source = GeneratorSpoutConfig {
        limit,
        ..Default::default()
    };
    let mut b = TopologyBuilder::new("generator-job");
    b.spout_factory(
        "source",
        source.build().unwrap_or_else(|e| panic!("build: {e}")),
        2,
    );
    b.bolt_factory("tokenize", factory(TokenizeConfig::default().build()), 2)
        .local_or_shuffle("source");
    b.bolt_factory("hashtags", factory(HashtagsConfig::default().build()), 2)
        .local_or_shuffle("tokenize");
    b.bolt_factory("count", factory(CountConfig::default().build()), 2)
        .fields("hashtags", ["hashtag"]);
    b.build().unwrap_or_else(|e| panic!("topology: {e}"))
}

fn whole_job(c: &mut Criterion) {
    const TWEETS: u64 = 1_000_000;
    let mut g = c.benchmark_group("generator_job");
    g.sample_size(10);
    g.throughput(Throughput::Elements(TWEETS));
    for (name, mode) in [("event", Mode::Event), ("microbatch", Mode::Microbatch)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let config = Config {
                    workers: 2,
                    mode,
                    ..Config::default()
                };
                let run = LocalCluster::submit(generator_job(TWEETS), config)
                    .unwrap_or_else(|e| panic!("submit: {e}"));
                assert!(
                    run.wait_finished(Duration::from_secs(60)),
                    "job did not finish"
                );
                run.join().unwrap_or_else(|e| panic!("join: {e}"));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, latency, throughput, whole_job);
criterion_main!(benches);
