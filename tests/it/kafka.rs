//! The Kafka spout against a real Kafka protocol peer (librdkafka's mock cluster,
//! in-process): resume at the committed offset, failures and retries, bounded replay by
//! offsets and by time, unreachable and lost brokers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use squall::cli::kafka::offset_rows;
use squall::component::registry::SpoutConfig;
use squall::kafka::mock::DevBroker;
use squall::kafka::position::{EndPosition, StartPosition};
use squall::kafka::spout::KafkaSpoutConfig;
use squall::{
    Bolt, BoltCollector, ComponentResult, Config, LocalCluster, RunningTopology, TopologyBuilder,
    Tuple,
};

use crate::support::cli;
use crate::support::cli::{
    TempDir, check_rankings, now_ms, read_report, record_ranking, report_topk, squall, top_k,
    topology,
};
use crate::support::read_topic;

/// Produces `n` records to `partition`, values `p<partition>-<i>`, timestamps from `ts0`
/// one second apart (when given).
fn produce(b: &DevBroker, topic: &str, partition: i32, n: usize, ts0: Option<i64>) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap_servers())
        .create()
        .unwrap();
    for i in 0..n {
        let v = format!("p{partition}-{i}");
        let mut r = BaseRecord::<(), _>::to(topic)
            .partition(partition)
            .payload(&v);
        if let Some(ts) = ts0 {
            r = r.timestamp(ts + i as i64 * 1000);
        }
        p.send(r).unwrap();
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// What the test bolt saw: (partition, offset) of every successful execute, in order.
#[derive(Default)]
struct Seen {
    ok: Vec<(i32, i64)>,
    failed: u64,
}

/// Records (partition, offset); fails a seeded 1 in `fail_one_in` of first attempts.
#[derive(Clone)]
struct OffsetsBolt {
    seen: Arc<Mutex<Seen>>,
    fail_one_in: u64,
    attempts: Arc<Mutex<HashMap<(i32, i64), u32>>>,
    /// Work per tuple (a slower pipeline, so a test can watch it run).
    delay: Option<Duration>,
}

impl OffsetsBolt {
    fn new(fail_one_in: u64) -> Self {
        OffsetsBolt {
            seen: Arc::default(),
            fail_one_in,
            attempts: Arc::default(),
            delay: None,
        }
    }

    fn ok(&self) -> Vec<(i32, i64)> {
        self.seen.lock().unwrap().ok.clone()
    }
}

impl Bolt for OffsetsBolt {
    fn execute(&mut self, input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        let p = input.get_int("partition").unwrap() as i32;
        let o = input.get_int("offset").unwrap();
        let attempt = {
            let mut a = self.attempts.lock().unwrap();
            let n = a.entry((p, o)).or_default();
            *n += 1;
            *n
        };
        // Seeded by the coordinates: the same records fail on every run, each at most
        // twice, then succeed.
        let h = xorshift((p as u64) << 40 ^ o as u64 ^ 0x9E37_79B9);
        if self.fail_one_in > 0 && attempt <= 2 && h.is_multiple_of(self.fail_one_in) {
            self.seen.lock().unwrap().failed += 1;
            return Err(format!("seeded failure of {p}:{o}, attempt {attempt}").into());
        }
        self.seen.lock().unwrap().ok.push((p, o));
        Ok(())
    }
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

fn spout_cfg(b: &DevBroker, topic: &str, group: &str) -> KafkaSpoutConfig {
    let mut c = KafkaSpoutConfig {
        brokers: b.bootstrap_servers().to_string(),
        topics: vec![topic.to_string()],
        group: group.to_string(),
        start: StartPosition::Earliest,
        commit_interval: Duration::from_millis(100),
        connect_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    c.retry.initial_ms = 5;
    c.retry.max_ms = 50;
    c.properties
        .insert("session.timeout.ms".into(), "3000".into());
    c
}

fn start(cfg: &KafkaSpoutConfig, bolt: &OffsetsBolt) -> RunningTopology {
    let mut t = TopologyBuilder::new("kafka-test");
    t.spout_factory("source", cfg.build().unwrap(), 1);
    t.bolt("check", bolt.clone(), 1).shuffle("source");
    LocalCluster::submit(t.build().unwrap(), Config::default()).unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn committed(b: &DevBroker, topic: &str, group: &str) -> BTreeMap<i32, Option<i64>> {
    offset_rows(b.bootstrap_servers(), topic, group)
        .unwrap()
        .into_iter()
        .map(|r| (r.partition, r.committed))
        .collect()
}

fn all_offsets(parts: &[(i32, usize)]) -> BTreeSet<(i32, i64)> {
    parts
        .iter()
        .flat_map(|&(p, n)| (0..n as i64).map(move |o| (p, o)))
        .collect()
}

#[test]
fn resume_continues_from_the_committed_offset_after_a_graceful_stop() {
    let b = DevBroker::start(1).unwrap();
    b.create_topic("resume", 2).unwrap();
    produce(&b, "resume", 0, 1500, None);
    produce(&b, "resume", 1, 1500, None);

    // First run: stopped (gracefully) part-way.
    let mut cfg = spout_cfg(&b, "resume", "g-resume");
    cfg.max_uncommitted = 200; // progress in steps, so the stop lands mid-topic
    let first = OffsetsBolt::new(0);
    let run = start(&cfg, &first);
    wait_until("some progress", Duration::from_secs(20), || {
        first.ok().len() >= 300
    });
    run.stop().unwrap();
    let n1 = first.ok().len();
    assert!(
        n1 < 3000,
        "the first run should stop mid-topic (it saw {n1})"
    );
    let after_first = committed(&b, "resume", "g-resume");

    // Second run, same group, bounded at the log end.
    cfg.end = Some(EndPosition::Latest);
    let second = OffsetsBolt::new(0);
    let summary = start(&cfg, &second).join().unwrap();
    assert!(summary.completed);

    let mut all: Vec<(i32, i64)> = first.ok();
    all.extend(second.ok());
    let distinct: BTreeSet<(i32, i64)> = all.iter().copied().collect();
    assert_eq!(
        distinct,
        all_offsets(&[(0, 1500), (1, 1500)]),
        "no offset skipped"
    );
    assert_eq!(
        all.len(),
        3000,
        "total processed = topic size (no replays on a graceful stop)"
    );
    // The second run started exactly at what the first committed.
    for (p, c) in after_first {
        let first_of_second = second
            .ok()
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .min();
        assert_eq!(first_of_second, c.or(Some(0)), "partition {p}");
    }
    let end = committed(&b, "resume", "g-resume");
    assert_eq!(end, BTreeMap::from([(0, Some(1500)), (1, Some(1500))]));
}

#[test]
fn failed_records_are_retried_and_the_commit_never_passes_them() {
    let b = DevBroker::start(1).unwrap();
    b.create_topic("fails", 2).unwrap();
    produce(&b, "fails", 0, 1000, None);
    produce(&b, "fails", 1, 1000, None);
    let mut cfg = spout_cfg(&b, "fails", "g-fails");
    cfg.end = Some(EndPosition::Latest);
    let mut bolt = OffsetsBolt::new(5); // 20 % of first attempts fail, some twice
    bolt.delay = Some(Duration::from_micros(500));
    let run = start(&cfg, &bolt);
    // While it runs: every committed offset has every offset below it processed.
    let mut checks = 0;
    while !run.wait_finished(Duration::from_millis(20)) {
        let commits = committed(&b, "fails", "g-fails");
        let ok: BTreeSet<(i32, i64)> = bolt.ok().into_iter().collect();
        for (p, c) in commits {
            if let Some(c) = c {
                for o in 0..c {
                    assert!(
                        ok.contains(&(p, o)),
                        "committed {p}:{c} passed {p}:{o}, not yet done"
                    );
                }
                checks += 1;
            }
        }
    }
    let summary = run.join().unwrap();
    let failed = bolt.seen.lock().unwrap().failed;
    assert!(
        failed >= 300,
        "about 20% of 2000 first attempts fail (saw {failed})"
    );
    let source = &summary.metrics.components["source"];
    assert_eq!(source.acked, 2000);
    assert_eq!(source.failed, failed);
    assert_eq!(
        bolt.ok().into_iter().collect::<BTreeSet<_>>(),
        all_offsets(&[(0, 1000), (1, 1000)])
    );
    assert_eq!(
        committed(&b, "fails", "g-fails"),
        BTreeMap::from([(0, Some(1000)), (1, Some(1000))]),
        "all offsets committed in the end"
    );
    assert!(checks > 0, "commits were observed during the run");
}

#[test]
fn broker_lost_mid_run_the_spout_waits_and_resumes_nothing_lost() {
    let b = DevBroker::start(1).unwrap();
    b.create_topic("lost", 1).unwrap();
    produce(&b, "lost", 0, 500, None);
    let mut cfg = spout_cfg(&b, "lost", "g-lost");
    cfg.end = Some(EndPosition::Offsets(vec![(0, 1000)]));
    cfg.properties
        .insert("reconnect.backoff.max.ms".into(), "200".into());
    let bolt = OffsetsBolt::new(0);
    let run = start(&cfg, &bolt);
    wait_until("the first 500", Duration::from_secs(20), || {
        bolt.ok().len() >= 500
    });
    b.broker_down(-1);
    std::thread::sleep(Duration::from_millis(1500)); // the broker stays down a while
    assert!(!run.is_finished(), "the spout waits for the broker");
    b.broker_up(-1);
    produce(&b, "lost", 0, 500, None);
    assert!(
        run.wait_finished(Duration::from_secs(30)),
        "the run resumes and ends"
    );
    run.join().unwrap();
    let seen: BTreeSet<(i32, i64)> = bolt.ok().into_iter().collect();
    assert_eq!(seen, all_offsets(&[(0, 1000)]));
    assert_eq!(committed(&b, "lost", "g-lost")[&0], Some(1000));
}

#[test]
fn an_unreachable_broker_at_start_is_a_clear_error_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let out = squall(
        [
            "topology",
            "run",
            "topologies/kafka-hashtags.toml",
            "--quiet",
            "--set",
            &format!("spouts.source.brokers=\"127.0.0.1:{port}\""),
            "--set",
            "spouts.source.connect_timeout=\"1s\"",
            "--set",
            &format!("bolts.rankings_out.brokers=\"127.0.0.1:{port}\""),
            "--set",
            "bolts.rankings_out.connect_timeout=\"1s\"",
        ],
        Duration::from_secs(30),
    );
    out.assert_failure();
    assert!(
        out.stderr
            .contains(&format!("no Kafka broker answered at 127.0.0.1:{port}")),
        "{}",
        out.stderr
    );
}

/// Generated tweets, one partition, timestamps one second apart from `ts0`.
fn produce_tweets(b: &DevBroker, topic: &str, n: u64, ts0: i64) -> Vec<String> {
    let g = squall::tweet::generator::TweetGenerator::new(Default::default()).unwrap();
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap_servers())
        .create()
        .unwrap();
    let mut texts = Vec::new();
    for i in 0..n {
        let t = g.tweet_at(i + 1);
        let json = squall::tweet::wire::to_v2_json(&t);
        let r = BaseRecord::<(), _>::to(topic)
            .partition(0)
            .payload(&json)
            .timestamp(ts0 + i as i64 * 1000);
        p.send(r).unwrap();
        p.poll(Duration::ZERO);
        texts.push(t.text);
    }
    p.flush(Duration::from_secs(30)).unwrap();
    texts
}

/// Hashtag counts of `texts`, as the topology computes them.
fn hashtag_counts(texts: &[String]) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for t in texts {
        squall::text::hashtags::for_each_hashtag(t, |h| *m.entry(h).or_insert(0) += 1);
    }
    m
}

#[test]
fn bounded_replay_by_offsets_and_by_time_counts_exactly_that_range_twice() {
    let b = DevBroker::start(1).unwrap();
    b.create_topic("replay", 1).unwrap();
    let ts0 = 1_700_000_000_000;
    let texts = produce_tweets(&b, "replay", 3000, ts0);
    let dir = TempDir::new("kafka-replay");
    let brokers = b.bootstrap_servers().to_string();
    let replay = |range: &[&str], report: &str| {
        let report = dir.join(report);
        let mut args: Vec<String> = [
            "kafka",
            "replay",
            "topologies/kafka-hashtags.toml",
            "--topic",
            "replay",
            "--brokers",
            &brokers,
            "--quiet",
            "--set",
            "bolts.sink.quiet=true",
            "--set",
            &format!("bolts.rankings_out.brokers=\"{brokers}\""),
            "--set",
            "bolts.counts.window=\"1h\"",
            "--report",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(report.display().to_string());
        args.extend(range.iter().map(|s| s.to_string()));
        squall(&args, Duration::from_secs(60)).assert_success();
        let r = read_report(&report);
        (cli::field_u64(&r, "spouts.source.acked"), report_topk(&r))
    };
    let want = |from: usize, to: usize| top_k(&hashtag_counts(&texts[from..to]), 10);

    // By offsets: [500, 2500).
    let by_offsets = ["--from-offsets", "0:500", "--to-offsets", "0:2500"];
    let (n, topk) = replay(&by_offsets, "offsets-1.json");
    assert_eq!(n, 2000);
    assert_eq!(topk, want(500, 2500));
    assert_eq!(
        replay(&by_offsets, "offsets-2.json"),
        (n, topk),
        "a second replay agrees"
    );

    // By time (the mock cannot look offsets up by time: the spout scans): records
    // 1000..2000 have timestamps ts0+1000s .. ts0+1999s.
    let from = (ts0 + 1000 * 1000).to_string();
    let to = (ts0 + 2000 * 1000).to_string();
    let by_time = [
        "--from-timestamp",
        from.as_str(),
        "--to-timestamp",
        to.as_str(),
    ];
    let (n, topk) = replay(&by_time, "time-1.json");
    assert_eq!(n, 1000);
    assert_eq!(topk, want(1000, 2000));
    assert_eq!(replay(&by_time, "time-2.json"), (n, topk));

    // The production group never moved.
    let rows = offset_rows(&brokers, "replay", "squall-kafka-hashtags").unwrap();
    assert_eq!(rows[0].committed, None);
}

#[test]
fn bad_json_is_counted_and_acked_past() {
    let b = DevBroker::start(1).unwrap();
    b.create_topic("bad", 1).unwrap();
    produce(&b, "bad", 0, 10, None); // "p0-i": not JSON
    let mut cfg = spout_cfg(&b, "bad", "g-bad");
    cfg.format = squall::kafka::spout::RecordFormat::Tweet;
    cfg.end = Some(EndPosition::Latest);
    let executed = Arc::new(AtomicU64::new(0));
    #[derive(Clone)]
    struct Count(Arc<AtomicU64>);
    impl Bolt for Count {
        fn execute(&mut self, _t: Tuple, _o: &mut BoltCollector<'_>) -> ComponentResult {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }
    let mut t = TopologyBuilder::new("bad-json");
    t.spout_factory("source", cfg.build().unwrap(), 1);
    t.bolt("count", Count(executed.clone()), 1)
        .shuffle("source");
    let summary = LocalCluster::submit(t.build().unwrap(), Config::default())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(executed.load(Ordering::SeqCst), 0);
    assert_eq!(
        summary.metrics.components["source"].counters["bad_records"],
        10
    );
    assert_eq!(committed(&b, "bad", "g-bad")[&0], Some(10), "acked past");
}

#[test]
fn at_most_once_and_none_emit_every_record_once_untracked_and_commit() {
    use squall::kafka::spout::Guarantee;
    for (guarantee, group) in [
        (Guarantee::AtMostOnce, "g-amo"),
        (Guarantee::None, "g-none"),
    ] {
        let b = DevBroker::start(1).unwrap();
        b.create_topic("amo", 2).unwrap();
        produce(&b, "amo", 0, 300, None);
        produce(&b, "amo", 1, 300, None);
        let mut cfg = spout_cfg(&b, "amo", group);
        cfg.guarantee = guarantee;
        cfg.end = Some(EndPosition::Latest);
        let bolt = OffsetsBolt::new(0);
        let summary = start(&cfg, &bolt).join().unwrap();
        let seen = bolt.ok();
        assert_eq!(seen.len(), 600, "{guarantee:?}: each record once");
        assert_eq!(
            seen.into_iter().collect::<BTreeSet<_>>(),
            all_offsets(&[(0, 300), (1, 300)])
        );
        assert_eq!(summary.metrics.components["source"].acked, 0, "untracked");
        assert_eq!(
            committed(&b, "amo", group),
            BTreeMap::from([(0, Some(300)), (1, Some(300))]),
            "{guarantee:?}"
        );
    }
}

#[test]
fn explicit_partitions_and_a_topic_pattern() {
    let b = DevBroker::start(1).unwrap();
    b.create_topic("pat-a", 2).unwrap();
    b.create_topic("pat-b", 1).unwrap();
    produce(&b, "pat-a", 0, 50, None);
    produce(&b, "pat-a", 1, 70, None);
    produce(&b, "pat-b", 0, 30, None);

    // Assigned partition 1 of pat-a only.
    let mut cfg = spout_cfg(&b, "pat-a", "g-assign");
    cfg.partitions = vec![1];
    cfg.end = Some(EndPosition::Latest);
    let bolt = OffsetsBolt::new(0);
    start(&cfg, &bolt).join().unwrap();
    assert_eq!(
        bolt.ok().into_iter().collect::<BTreeSet<_>>(),
        all_offsets(&[(1, 70)])
    );
    assert_eq!(committed(&b, "pat-a", "g-assign")[&1], Some(70));
    assert_eq!(committed(&b, "pat-a", "g-assign")[&0], None);

    // Subscribed by pattern: both topics, 150 records.
    let mut cfg = spout_cfg(&b, "unused", "g-pattern");
    cfg.topics = vec![];
    cfg.pattern = Some("^pat-.*".into());
    cfg.end = Some(EndPosition::Latest);
    let bolt = OffsetsBolt::new(0);
    start(&cfg, &bolt).join().unwrap();
    assert_eq!(bolt.ok().len(), 150);
}

/// `kafka replay --brokers` reaches the topology's Kafka sink too (it names no brokers):
/// the rankings are read from and written to that broker, each with its real window
/// (start and end), the last one final.
#[test]
fn replay_brokers_reach_the_rankings_sink_and_the_last_ranking_is_final() {
    let b = DevBroker::start(1).unwrap();
    b.create_topic("tweets", 1).unwrap();
    b.create_topic("trending-hashtags", 1).unwrap();
    let texts = produce_tweets(&b, "tweets", 2000, 1_700_000_000_000);
    let brokers = b.bootstrap_servers().to_string();
    let dir = TempDir::new("replay-brokers");
    let report = dir.join("r.json");
    let started = now_ms();
    squall(
        [
            "kafka",
            "replay",
            "topologies/kafka-hashtags.toml",
            "--brokers",
            &brokers,
            "--topic",
            "tweets",
            "--from-beginning",
            "--quiet",
            "--set",
            "bolts.sink.quiet=true",
            "--set",
            "bolts.counts.window=\"1h\"",
            "--set",
            "bolts.counts.slide=\"200ms\"",
            "--report",
            &report.display().to_string(),
        ],
        Duration::from_secs(60),
    )
    .assert_success();
    let ended = now_ms();
    let records = read_topic(&b, "trending-hashtags");
    let last = check_rankings(&records, 3_600_000, 200, started..ended);
    let want = top_k(&hashtag_counts(&texts), 10);
    assert_eq!(record_ranking(last), want);
    let r = read_report(&report);
    assert_eq!(report_topk(&r), want);
    assert_eq!(r["topk_window_start"], last["window_start"], "{r}");
    assert_eq!(r["topk_window_end"], last["window_end"], "{r}");
    assert_eq!(r["topk_final"], serde_json::json!(true), "{r}");
}

/// The `kafka` sink writes each ranking as `{"rankings": [[tag, count], ...],
/// "window_start": ..., "window_end": ..., "final": ...}`, the window `[start, end)` it is
/// the top-k of — in event and in micro-batch mode.
#[test]
fn kafka_ranking_records_carry_their_window_in_both_modes() {
    const WINDOW_MS: i64 = 2_000;
    const SLIDE_MS: i64 = 250;
    const N: u64 = 4000;
    let b = DevBroker::start(1).unwrap();
    let brokers = b.bootstrap_servers().to_string();
    for mode in ["event", "microbatch"] {
        let topic = format!("rankings-{mode}");
        b.create_topic(&topic, 1).unwrap();
        let dir = TempDir::new("kafka-rankings");
        // 1 s of tweets: several slides close before the end.
        let toml = format!(
            r#"name = "kafka-rankings"

[spouts.source]
type = "generator"
seed = 3
rate = 4000
limit = {N}

[bolts.hashtags]
type = "hashtags"
inputs = [{{ from = "source" }}]

[bolts.counts]
type = "rolling_count"
parallelism = 2
window = "{WINDOW_MS}ms"
slide = "{SLIDE_MS}ms"
inputs = [{{ from = "hashtags", grouping = "fields", fields = ["hashtag"] }}]

[bolts.rank]
type = "rank"
parallelism = 2
inputs = [{{ from = "counts", grouping = "fields", fields = ["key"] }}]

[bolts.total_rank]
type = "total_rank"
inputs = [{{ from = "rank", grouping = "global" }}]

[bolts.sink]
type = "kafka"
topic = "{topic}"
inputs = [{{ from = "total_rank", grouping = "global" }}]
"#
        );
        let file = dir.write("t.toml", &toml);
        let report = dir.join("r.json");
        let started = now_ms();
        squall(
            [
                "topology",
                "run",
                &file.display().to_string(),
                "--mode",
                mode,
                "--brokers",
                &brokers,
                "--report",
                &report.display().to_string(),
                "--quiet",
            ],
            Duration::from_secs(60),
        )
        .assert_success();
        let ended = now_ms();
        let records = read_topic(&b, &topic);
        assert!(records.len() >= 2, "{mode}: {records:?}");
        let last = check_rankings(&records, WINDOW_MS, SLIDE_MS, started..ended);
        let r = read_report(&report);
        assert_eq!(record_ranking(last), report_topk(&r), "{mode}: {r}");
        assert_eq!(r["topk_window_start"], last["window_start"], "{mode}: {r}");
        assert_eq!(r["topk_window_end"], last["window_end"], "{mode}: {r}");
    }
}

/// `topology run --brokers` does not override a Kafka component that names its own
/// brokers in the file: that one still dials its own (here: nobody), and the run says so.
#[test]
fn brokers_flag_leaves_a_component_that_names_its_own_brokers() {
    let b = DevBroker::start(1).unwrap();
    b.create_topic("tweets", 1).unwrap();
    produce_tweets(&b, "tweets", 100, 1_700_000_000_000);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let shipped = std::fs::read_to_string(topology("kafka-hashtags.toml")).unwrap();
    let sink = "[bolts.rankings_out]\ntype = \"kafka\"\n";
    assert!(shipped.contains(sink), "{shipped}");
    let own = shipped.replace(
        sink,
        &format!("{sink}brokers = \"{dead}\"\nconnect_timeout = \"1s\"\n"),
    );
    let dir = TempDir::new("own-brokers");
    let file = dir.write("own.toml", &own);
    let out = squall(
        [
            "topology",
            "run",
            &file.display().to_string(),
            "--brokers",
            b.bootstrap_servers(),
            "--quiet",
            "--set",
            "spouts.source.end=\"latest\"",
            "--set",
            "bolts.sink.quiet=true",
        ],
        Duration::from_secs(60),
    );
    out.assert_failure();
    assert!(
        out.stderr.contains("does not reach bolts.rankings_out"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("no Kafka broker answered at {dead}")),
        "{}",
        out.stderr
    );
}

/// Records around the size limit: one just under the default `max_record_bytes` (1 MiB,
/// key and value together) is emitted whole; one of 3 MB is skipped without being copied,
/// counted in `oversized_records`, and committed past like any record done with.
#[test]
fn a_record_over_max_record_bytes_is_counted_skipped_and_committed_past() {
    let b = DevBroker::start(1).unwrap();
    b.create_topic("big", 1).unwrap();
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap_servers())
        .set("message.max.bytes", "10000000")
        .create()
        .unwrap();
    let under = "u".repeat((1 << 20) - 3);
    let over = "o".repeat(3_000_000);
    for (key, value) in [
        ("k0", "small"),
        ("k1", &under),
        ("k2", &over),
        ("k3", "last"),
    ] {
        p.send(BaseRecord::to("big").partition(0).key(key).payload(value))
            .unwrap();
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).unwrap();

    let mut cfg = spout_cfg(&b, "big", "g-big");
    cfg.end = Some(EndPosition::Latest);
    assert_eq!(cfg.max_record_bytes, 1 << 20, "the documented default");
    let lengths = Arc::new(Mutex::new(Vec::new()));
    #[derive(Clone)]
    struct Lengths(Arc<Mutex<Vec<usize>>>);
    impl Bolt for Lengths {
        fn execute(&mut self, t: Tuple, _o: &mut BoltCollector<'_>) -> ComponentResult {
            let n = t.get_str("value").map_or(0, str::len);
            self.0.lock().unwrap().push(n);
            Ok(())
        }
    }
    let mut t = TopologyBuilder::new("big-records");
    t.spout_factory("source", cfg.build().unwrap(), 1);
    t.bolt("lengths", Lengths(lengths.clone()), 1)
        .shuffle("source");
    let summary = LocalCluster::submit(t.build().unwrap(), Config::default())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(*lengths.lock().unwrap(), [5, under.len(), 4]);
    let counters = &summary.metrics.components["source"].counters;
    assert_eq!(counters["oversized_records"], 1, "{counters:?}");
    assert_eq!(counters["bad_records"], 0, "{counters:?}");
    assert_eq!(committed(&b, "big", "g-big")[&0], Some(4), "committed past");
}
