//! Event time from Kafka: the watermark is the minimum over the partitions, so a partition
//! far behind holds the windows back (none of its tweets is late) and an idle one does not
//! stall them; a replay of the same offsets writes the same rankings as the live run,
//! window by window.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use squall::kafka::mock::DevBroker;
use squall::tweet::generator::{TweetGenerator, rfc3339_from_unix_ms};

use crate::support::cli::{Running, TempDir, read_report, record_ranking, squall, top_k};
use crate::support::http::{get, serve_args, wait_for};
use crate::support::read_topic;

const PARTITIONS: i32 = 6;
const WINDOW_MS: i64 = 4_000;
const SLIDE_MS: i64 = 2_000;
/// 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;

/// Produces tweets `1..=n` to `topic`, tweet `i` written at START + i ms, to partition
/// `i % 6` (or the next one if that is `empty`); those of partition 5 are written
/// `behind` ms earlier. Returns, per window end, the hashtag counts of the window.
fn produce(
    b: &DevBroker,
    topic: &str,
    n: u64,
    behind: i64,
    empty: Option<i32>,
) -> BTreeMap<i64, HashMap<String, u64>> {
    produce_range(b.bootstrap_servers(), topic, 1..n + 1, behind, empty)
}

fn produce_range(
    brokers: &str,
    topic: &str,
    tweets: std::ops::Range<u64>,
    behind: i64,
    empty: Option<i32>,
) -> BTreeMap<i64, HashMap<String, u64>> {
    let g = TweetGenerator::new(Default::default()).unwrap();
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let mut windows: BTreeMap<i64, HashMap<String, u64>> = BTreeMap::new();
    for i in tweets {
        let mut partition = (i % PARTITIONS as u64) as i32;
        if Some(partition) == empty {
            partition = (partition + 1) % PARTITIONS;
        }
        let mut at = START_MS + i as i64;
        if partition == PARTITIONS - 1 {
            at -= behind;
        }
        let mut t = g.tweet_at(i);
        t.created_at = Some(rfc3339_from_unix_ms(at as u64));
        let slot = at.div_euclid(SLIDE_MS) * SLIDE_MS;
        let mut end = slot + SLIDE_MS;
        while end <= slot + WINDOW_MS {
            let w = windows.entry(end).or_default();
            squall::text::hashtags::for_each_hashtag(&t.text, |h| {
                *w.entry(h.to_string()).or_insert(0) += 1
            });
            end += SLIDE_MS;
        }
        let json = squall::tweet::wire::to_v2_json(&t);
        // The record's timestamp is when the tweet was written, as a live feed's would be.
        let mut r = BaseRecord::<(), _>::to(topic)
            .partition(partition)
            .payload(&json)
            .timestamp(at);
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    p.poll(Duration::from_millis(10));
                    r = back;
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).unwrap();
    windows
}

/// The arguments `args`, then `sets`.
fn squall_args(args: &[&str], sets: Vec<String>) -> Vec<String> {
    args.iter().map(|s| s.to_string()).chain(sets).collect()
}

/// `--set`s that make `kafka-hashtags.toml` count by event time into `out`.
fn event_time_sets(group: &str, out: &str, idle: &str) -> Vec<String> {
    [
        format!("spouts.source.group={group}"),
        "spouts.source.event_time.field=created_at".to_string(),
        "spouts.source.event_time.lag=100ms".to_string(),
        format!("spouts.source.event_time.idle_timeout={idle}"),
        "bolts.counts.time=event".to_string(),
        format!("bolts.counts.window={WINDOW_MS}ms"),
        format!("bolts.counts.slide={SLIDE_MS}ms"),
        "bolts.sink.quiet=true".to_string(),
        format!("bolts.rankings_out.topic={out}"),
    ]
    .into_iter()
    .flat_map(|s| ["--set".to_string(), s])
    .collect()
}

/// Six partitions, the last 20 s behind the others (more than a window): the watermark
/// waits for it, so no tweet is late and every window is exact; `kafka replay` of the same
/// offsets writes exactly the rankings the live run wrote.
#[test]
fn a_partition_behind_holds_the_windows_and_a_replay_gives_the_live_answer() {
    let b = DevBroker::start(1).unwrap();
    b.create_topic("tweets", PARTITIONS).unwrap();
    b.create_topic("live", 1).unwrap();
    b.create_topic("replayed", 1).unwrap();
    let truth = produce(&b, "tweets", 12_000, 20_000, None);
    let brokers = b.bootstrap_servers().to_string();
    let dir = TempDir::new("event-time-kafka");
    let report = dir.join("live.json");
    let args = squall_args(
        &[
            "topology",
            "run",
            "topologies/kafka-hashtags.toml",
            "--brokers",
            &brokers,
            "--set",
            "spouts.source.end=latest",
            "--quiet",
            "--report",
            &report.display().to_string(),
        ],
        event_time_sets("live", "live", "10s"),
    );
    squall(&args, Duration::from_secs(120)).assert_success();
    let live = read_topic(&b, "live");
    assert_eq!(live.len(), truth.len(), "one table per window: {live:?}");
    for (r, (end, counts)) in live.iter().zip(&truth) {
        assert_eq!(r["window_end"].as_i64(), Some(*end), "{r}");
        assert_eq!(record_ranking(r), top_k(counts, 10), "window ending {end}");
        assert_eq!(r["update"], serde_json::json!(false), "{r}");
    }
    let r = read_report(&report);
    assert_eq!(
        r["counters"]["counts"].get("late"),
        None,
        "nothing late: {r}"
    );

    let args = squall_args(
        &[
            "kafka",
            "replay",
            "topologies/kafka-hashtags.toml",
            "--brokers",
            &brokers,
            "--topic",
            "tweets",
            "--from-beginning",
            "--quiet",
        ],
        event_time_sets("replay", "replayed", "10s"),
    );
    squall(&args, Duration::from_secs(120)).assert_success();
    let replayed = read_topic(&b, "replayed");
    assert_eq!(replayed, live, "the replay's rankings, window by window");
}

/// `kafka replay --from-timestamp T --to-timestamp U` with event time: every window that
/// lies wholly inside `[T, U)` gets the ranking the live run wrote for it.
#[test]
fn a_replay_of_a_time_range_gives_the_live_rankings_of_the_windows_inside_it() {
    let b = DevBroker::start(1).unwrap();
    b.create_topic("tweets", PARTITIONS).unwrap();
    b.create_topic("live", 1).unwrap();
    b.create_topic("range", 1).unwrap();
    produce(&b, "tweets", 12_000, 0, None);
    let brokers = b.bootstrap_servers().to_string();
    let args = squall_args(
        &[
            "topology",
            "run",
            "topologies/kafka-hashtags.toml",
            "--brokers",
            &brokers,
            "--set",
            "spouts.source.end=latest",
            "--quiet",
        ],
        event_time_sets("live", "live", "10s"),
    );
    squall(&args, Duration::from_secs(120)).assert_success();
    let live = read_topic(&b, "live");
    // Tweets written from 3 s to 10.5 s after the start (not on window bounds).
    let (from, to) = (START_MS + 3_000, START_MS + 10_500);
    let args = squall_args(
        &[
            "kafka",
            "replay",
            "topologies/kafka-hashtags.toml",
            "--brokers",
            &brokers,
            "--topic",
            "tweets",
            "--from-timestamp",
            &from.to_string(),
            "--to-timestamp",
            &to.to_string(),
            "--quiet",
        ],
        event_time_sets("range", "range", "10s"),
    );
    squall(&args, Duration::from_secs(120)).assert_success();
    let replayed = read_topic(&b, "range");
    let inside = |r: &serde_json::Value| {
        let (s, e) = (r["window_start"].as_i64(), r["window_end"].as_i64());
        s.is_some_and(|s| s >= from) && e.is_some_and(|e| e <= to)
    };
    let strip = |r: &serde_json::Value| (r["window_end"].clone(), r["rankings"].clone());
    let want: Vec<_> = live.iter().filter(|r| inside(r)).map(strip).collect();
    let got: Vec<_> = replayed.iter().filter(|r| inside(r)).map(strip).collect();
    assert!(want.len() >= 2, "windows inside the range: {live:?}");
    assert_eq!(got, want, "the windows inside the range");
}

/// An unbounded run where one partition never gets a tweet while the others keep getting
/// them: once it has been idle for `idle_timeout`, it no longer holds the watermark back,
/// and windows fire while the run goes on.
#[test]
fn an_idle_partition_does_not_stall_the_windows() {
    idle_partition("event");
}

/// The same in micro-batch mode: the batches' watermark stops waiting for the idle
/// partition.
#[test]
fn microbatch_an_idle_partition_does_not_stall_the_windows() {
    idle_partition("microbatch");
}

fn idle_partition(mode: &str) {
    let b = DevBroker::start(1).unwrap();
    b.create_topic("tweets", PARTITIONS).unwrap();
    b.create_topic("idle-out", 1).unwrap();
    let brokers = b.bootstrap_servers().to_string();
    // A live feed: 500 tweets (500 ms of event time) every 50 ms, none to partition 2.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feed = {
        let (stop, brokers) = (stop.clone(), brokers.clone());
        std::thread::spawn(move || {
            let mut next = 1;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                produce_range(&brokers, "tweets", next..next + 500, 0, Some(2));
                next += 500;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let args = squall_args(
        &[
            "topology",
            "run",
            "topologies/kafka-hashtags.toml",
            "--brokers",
            &brokers,
            "--mode",
            mode,
            "--quiet",
        ],
        event_time_sets("idle", "idle-out", "1s"),
    );
    let mut run = Running::start(&args, Stdio::null());
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap_servers())
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let fired = loop {
        let (_, high) = c
            .fetch_watermarks("idle-out", 0, Duration::from_secs(10))
            .unwrap();
        if high > 0 || Instant::now() >= deadline {
            break high > 0;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = feed.join();
    run.signal("-INT");
    let status = run.wait_exit(Duration::from_secs(60));
    assert!(
        fired,
        "no window fired while partition 2 was idle:\n{}",
        run.stderr_text()
    );
    assert!(status.success(), "{}", run.stderr_text());
}

/// Micro-batch mode by event time, from the same kind of topic (one partition 20 s
/// behind), SIGKILLed once mid-run and restarted on its state directory: every window's
/// table is the exact top-10 of the tweets written in it, none is missing, and a window
/// written twice (by a batch replayed after the kill) is written the same both times.
/// The idle timeout (1 s) is shorter than the backlog takes to read: a partition the
/// reader has not got to yet is behind, not idle, and must hold the windows back.
#[test]
fn microbatch_windows_are_exact_across_a_sigkill() {
    let b = DevBroker::start(1).unwrap();
    b.create_topic("tweets", PARTITIONS).unwrap();
    b.create_topic("mb", 1).unwrap();
    let truth = produce(&b, "tweets", 12_000, 20_000, None);
    let brokers = b.bootstrap_servers().to_string();
    let dir = TempDir::new("event-time-kafka-mb");
    let state = dir.join("state");
    let args = squall_args(
        &[
            "topology",
            "run",
            "topologies/kafka-hashtags.toml",
            "--brokers",
            &brokers,
            "--mode",
            "microbatch",
            "--state-dir",
            &state.display().to_string(),
            "--batch-interval",
            "20ms",
            "--max-batch",
            "150",
            "--set",
            "spouts.source.end=latest",
            "--quiet",
        ],
        event_time_sets("mb", "mb", "1s"),
    );
    // Killed once a batch has committed and before the input is all read.
    let mut served_args: Vec<&str> = args.iter().map(String::as_str).collect();
    served_args.extend(["--http", "127.0.0.1:0"]);
    let mut served = serve_args(&served_args);
    wait_for("a batch to commit", Duration::from_secs(60), || {
        let m = get(served.addr, "/api/metrics").json();
        let acked = m["components"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == "source"))
            .and_then(|c| c["acked"].as_u64())
            .unwrap_or(0);
        (acked > 0).then_some(acked)
    });
    let running = served.child.try_wait().ok().flatten().is_none();
    let _ = served.child.kill();
    let _ = served.child.wait();
    assert!(running, "the run ended before the kill: not a mid-run kill");
    let before = read_topic(&b, "mb").len();
    assert!(
        before < truth.len(),
        "killed after every window was written"
    );

    squall(&args, Duration::from_secs(120)).assert_success();
    let got = read_topic(&b, "mb");
    let mut by_end: BTreeMap<i64, serde_json::Value> = BTreeMap::new();
    for r in &got {
        let end = r["window_end"].as_i64().unwrap_or_else(|| panic!("{r}"));
        assert_eq!(r["update"], serde_json::json!(false), "{r}");
        if let Some(first) = by_end.insert(end, r.clone()) {
            assert_eq!(
                record_ranking(&first),
                record_ranking(r),
                "window ending {end} written twice, differently"
            );
        }
    }
    assert_eq!(
        by_end.keys().collect::<Vec<_>>(),
        truth.keys().collect::<Vec<_>>(),
        "one table per window"
    );
    for (end, counts) in &truth {
        assert_eq!(
            record_ranking(&by_end[end]),
            top_k(counts, 10),
            "window ending {end}"
        );
    }
    assert_eq!(
        got.iter().filter(|r| r["final"] == true).count(),
        1,
        "one final table"
    );
}
