//! Shared helpers of the integration tests: a counting spout that records what its
//! spout tuples became (acked / failed) and replays failures, a recording bolt, metric
//! assertions, and a runner with a hard deadline. The submodules hold the helpers of the
//! tests that run the real binary ([`cli`]), of the web UI tests ([`http`]), of the tests
//! against the mock Kafka cluster ([`kafka`]), readers of a state directory ([`state`]), the
//! sampler of a running process ([`sampler`]) and the mock X API ([`twitter_mock`]).
#![allow(dead_code)]

pub mod cli;
pub mod http;
pub mod kafka;
pub mod sampler;
pub mod state;
pub mod twitter_mock;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use squall::{
    Bolt, BoltCollector, ComponentResult, Config, Fields, LocalCluster, MetricsSnapshot,
    OutputDeclarer, RunSummary, Spout, SpoutCollector, SpoutStatus, TaskContext, Topology, Tuple,
    Values,
};

/// Locks, ignoring poisoning (a panicking test bolt must not hide the real failure).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The fields every `CountingSpout` tuple carries.
pub const SPOUT_FIELDS: [&str; 3] = ["n", "attempt", "key"];

/// What happened to a message id, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Acked,
    Failed,
}

/// What the spout tasks of one `CountingSpout` saw.
#[derive(Default, Debug)]
pub struct SpoutLog {
    /// Every `ack(id)` call, in order.
    pub acked: Vec<u64>,
    /// Every `fail(id)` call, in order.
    pub failed: Vec<u64>,
    /// Every ack/fail in order of arrival.
    pub events: Vec<(u64, Outcome)>,
    /// How many times each id was emitted.
    pub attempts: HashMap<u64, u32>,
}

impl SpoutLog {
    /// Every id in `1..=n` acked exactly once, nothing else acked.
    pub fn assert_each_acked_once(&self, n: u64) {
        let mut seen = HashSet::new();
        let dups: Vec<u64> = self
            .acked
            .iter()
            .copied()
            .filter(|id| !seen.insert(*id))
            .collect();
        assert!(
            dups.is_empty(),
            "ids acked more than once: {:?}",
            head(&dups)
        );
        let missing: Vec<u64> = (1..=n).filter(|id| !seen.contains(id)).collect();
        assert!(
            missing.is_empty(),
            "{} ids never acked, e.g. {:?}",
            missing.len(),
            head(&missing)
        );
        let extra: Vec<u64> = seen.iter().copied().filter(|id| *id > n).collect();
        assert!(extra.is_empty(), "unknown ids acked: {:?}", head(&extra));
    }

    /// The ids that failed at least once.
    pub fn failed_ids(&self) -> HashSet<u64> {
        self.failed.iter().copied().collect()
    }
}

fn head<T: Clone>(v: &[T]) -> Vec<T> {
    v.iter().take(10).cloned().collect()
}

/// A spout of message ids `1..=limit` (task `i` of `p` emits the ids with `id % p == i`).
/// Each tuple is `[n, attempt, key]` with `key = "k{n % keys}"`; failed ids are replayed
/// with the next attempt number. Acks and fails go to the shared `SpoutLog`.
#[derive(Clone)]
pub struct CountingSpout {
    pub limit: u64,
    pub keys: u64,
    pub log: Arc<Mutex<SpoutLog>>,
    /// Successful emits (first emits and replays), counted as they happen.
    pub emitted: Arc<AtomicU64>,
    /// Tuples per `next_tuple` call.
    pub burst: usize,
    next: u64,
    step: u64,
    replay: VecDeque<u64>,
}

impl CountingSpout {
    pub fn new(limit: u64) -> Self {
        CountingSpout {
            limit,
            keys: 16,
            log: Arc::default(),
            emitted: Arc::default(),
            burst: 1,
            next: 1,
            step: 1,
            replay: VecDeque::new(),
        }
    }

    pub fn with_keys(mut self, keys: u64) -> Self {
        self.keys = keys;
        self
    }

    pub fn with_burst(mut self, burst: usize) -> Self {
        self.burst = burst;
        self
    }

    pub fn log(&self) -> MutexGuard<'_, SpoutLog> {
        lock(&self.log)
    }

    pub fn key_of(&self, n: u64) -> String {
        format!("k{}", n % self.keys)
    }

    fn emit_one(&mut self, n: u64, out: &mut SpoutCollector<'_>) -> bool {
        let attempt = {
            let mut log = lock(&self.log);
            let a = log.attempts.entry(n).or_insert(0);
            *a += 1;
            *a - 1
        };
        let key = self.key_of(n);
        match out.emit(squall::values![n as i64, attempt as i64, key], Some(n)) {
            Ok(()) => {
                self.emitted.fetch_add(1, Ordering::SeqCst);
                true
            }
            Err(e) => panic!("spout emit failed: {e}"),
        }
    }
}

impl Spout for CountingSpout {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(SPOUT_FIELDS));
    }

    fn open(&mut self, ctx: &TaskContext) -> ComponentResult {
        let p = ctx.parallelism() as u64;
        let i = ctx.task_index() as u64;
        self.step = p;
        // First id > 0 with id % p == i.
        self.next = if i == 0 { p } else { i };
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> SpoutStatus {
        let mut emitted = 0;
        while emitted < self.burst {
            let n = if let Some(n) = self.replay.pop_front() {
                n
            } else if self.next <= self.limit {
                self.next += self.step;
                self.next - self.step
            } else {
                break;
            };
            self.emit_one(n, out);
            emitted += 1;
        }
        if emitted > 0 {
            SpoutStatus::Emitted
        } else {
            SpoutStatus::Exhausted
        }
    }

    fn ack(&mut self, msg_id: u64) {
        let mut log = lock(&self.log);
        log.acked.push(msg_id);
        log.events.push((msg_id, Outcome::Acked));
    }

    fn fail(&mut self, msg_id: u64) {
        {
            let mut log = lock(&self.log);
            log.failed.push(msg_id);
            log.events.push((msg_id, Outcome::Failed));
        }
        self.replay.push_back(msg_id);
    }
}

/// What a `RecordingBolt` saw: (receiving task id, n, attempt) per execute, plus the
/// worker of every task (recorded in `prepare`).
#[derive(Default, Debug)]
pub struct Recording {
    pub received: Vec<(u32, i64, i64)>,
    pub task_workers: BTreeMap<u32, usize>,
    /// Task ids of each component, as the tasks see them.
    pub tasks_of: BTreeMap<String, Vec<u32>>,
}

impl Recording {
    /// n → the tasks that received it (with multiplicity).
    pub fn receivers(&self) -> BTreeMap<i64, Vec<u32>> {
        let mut m: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (task, n, _) in &self.received {
            m.entry(*n).or_default().push(*task);
        }
        m
    }

    /// task → how many tuples it received.
    pub fn per_task(&self) -> BTreeMap<u32, usize> {
        let mut m = BTreeMap::new();
        for (task, _, _) in &self.received {
            *m.entry(*task).or_default() += 1;
        }
        m
    }
}

/// Records every input with the id of the task that received it; optionally forwards
/// the input (anchored, auto-ack) on the default stream with the spout's fields.
#[derive(Clone)]
pub struct RecordingBolt {
    pub rec: Arc<Mutex<Recording>>,
    pub forward: bool,
    /// Sleep this long per tuple (a slow sink).
    pub delay: Option<Duration>,
    /// Counts executes as they happen.
    pub executed: Arc<AtomicU64>,
    task: u32,
}

impl RecordingBolt {
    pub fn sink() -> Self {
        RecordingBolt {
            rec: Arc::default(),
            forward: false,
            delay: None,
            executed: Arc::default(),
            task: 0,
        }
    }

    pub fn forwarder() -> Self {
        RecordingBolt {
            forward: true,
            ..RecordingBolt::sink()
        }
    }

    pub fn with_delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }

    pub fn rec(&self) -> MutexGuard<'_, Recording> {
        lock(&self.rec)
    }
}

impl Bolt for RecordingBolt {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        if self.forward {
            out.declare(Fields::new(SPOUT_FIELDS));
        }
    }

    fn prepare(&mut self, ctx: &TaskContext) -> ComponentResult {
        self.task = ctx.task_id();
        let mut rec = lock(&self.rec);
        rec.task_workers.insert(ctx.task_id(), ctx.worker());
        rec.tasks_of.insert(
            ctx.component().to_string(),
            ctx.tasks_of(ctx.component()).to_vec(),
        );
        Ok(())
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        let n = input.get_int("n").unwrap_or(-1);
        let attempt = input.get_int("attempt").unwrap_or(-1);
        lock(&self.rec).received.push((self.task, n, attempt));
        self.executed.fetch_add(1, Ordering::SeqCst);
        if self.forward {
            out.emit(input.into_values())?;
        }
        Ok(())
    }
}

/// A sink that does nothing (auto-ack).
#[derive(Clone)]
pub struct NullBolt;

impl Bolt for NullBolt {
    fn execute(&mut self, _input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        Ok(())
    }
}

/// The values of a spout tuple, for bolts that build their own.
pub fn spout_values(n: i64, attempt: i64, key: &str) -> Values {
    squall::values![n, attempt, key]
}

/// Small, fast settings for tests: 2 workers, small batches, every latency measured.
pub fn test_config() -> Config {
    Config {
        workers: 2,
        message_timeout: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(2),
        batch_size: 16,
        latency_sample: 1,
        ..Config::default()
    }
}

/// Submits, waits (at most `timeout`) for the bounded run to finish, and joins.
pub fn run(topology: Topology, config: Config, timeout: Duration) -> RunSummary {
    let running = LocalCluster::submit(topology, config).expect("submit");
    let finished = running.wait_finished(timeout);
    if !finished {
        let m = running.metrics();
        panic!(
            "topology did not finish within {timeout:?}; metrics: {}",
            summary_line(&m)
        );
    }
    running.join().expect("join")
}

/// One line per component: emitted/executed/acked/failed/... for failure messages.
pub fn summary_line(m: &MetricsSnapshot) -> String {
    m.components
        .iter()
        .map(|(name, c)| {
            format!(
                "{name}: emitted {} executed {} acked {} failed {} timed_out {} restarts {} pending {} abandoned {}",
                c.emitted, c.executed, c.acked, c.failed, c.timed_out, c.restarts, c.pending, c.abandoned
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Expected values of a component's standard metrics; `None` is not checked.
#[derive(Clone, Copy, Debug, Default)]
pub struct Expect {
    pub tasks: Option<usize>,
    pub emitted: Option<u64>,
    pub executed: Option<u64>,
    pub acked: Option<u64>,
    pub failed: Option<u64>,
    pub timed_out: Option<u64>,
    pub restarts: Option<u64>,
    pub pending: Option<u64>,
    pub abandoned: Option<u64>,
}

impl Expect {
    /// A spout of `n` messages that all completed at the first attempt.
    pub fn clean_spout(n: u64) -> Expect {
        Expect {
            emitted: Some(n),
            acked: Some(n),
            failed: Some(0),
            timed_out: Some(0),
            restarts: Some(0),
            pending: Some(0),
            abandoned: Some(0),
            ..Expect::default()
        }
    }

    /// A bolt that executed and acked `n` tuples without a failure or restart.
    pub fn clean_bolt(n: u64) -> Expect {
        Expect {
            executed: Some(n),
            acked: Some(n),
            failed: Some(0),
            restarts: Some(0),
            ..Expect::default()
        }
    }
}

/// Asserts the standard metrics of component `name`.
pub fn assert_component(m: &MetricsSnapshot, name: &str, e: Expect) {
    let c = m
        .component(name)
        .unwrap_or_else(|| panic!("no metrics for component `{name}`"));
    let checks: [(&str, Option<u64>, u64); 9] = [
        ("tasks", e.tasks.map(|t| t as u64), c.tasks as u64),
        ("emitted", e.emitted, c.emitted),
        ("executed", e.executed, c.executed),
        ("acked", e.acked, c.acked),
        ("failed", e.failed, c.failed),
        ("timed_out", e.timed_out, c.timed_out),
        ("restarts", e.restarts, c.restarts),
        ("pending", e.pending, c.pending),
        ("abandoned", e.abandoned, c.abandoned),
    ];
    for (what, want, got) in checks {
        if let Some(want) = want {
            assert_eq!(
                got,
                want,
                "component `{name}`: {what} is {got}, expected {want} (all: {})",
                summary_line(m)
            );
        }
    }
}

/// Polls `cond` every few ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A deterministic hash of (seed, n, attempt) (SplitMix64 finaliser).
pub fn roll(seed: u64, n: i64, attempt: i64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((n as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add((attempt as u64).wrapping_mul(0x94D0_49BB_1331_11EB));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// True for a seeded-random `percent`% of (n, attempt) pairs.
pub fn chance(seed: u64, n: i64, attempt: i64, percent: u64) -> bool {
    roll(seed, n, attempt) % 100 < percent
}

/// Silences the panic messages of injected panics (whose text contains `INJECTED`),
/// keeping every other panic's report.
pub fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !text.contains("INJECTED") {
                default(info);
            }
        }));
    });
}

/// Every record of partition 0 of `topic` now, as JSON.
pub fn read_topic(b: &squall::kafka::mock::DevBroker, topic: &str) -> Vec<serde_json::Value> {
    use rdkafka::consumer::Consumer;
    use rdkafka::message::Message;
    let c: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap_servers())
        .set("group.id", "read-back")
        .create()
        .unwrap();
    let (_, high) = c
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while (got.len() as i64) < high {
        assert!(
            Instant::now() < deadline,
            "read {} of the {high} records of `{topic}`",
            got.len()
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            got.push(serde_json::from_slice(m.payload().unwrap_or_default()).unwrap());
        }
    }
    got
}
