//! `squall kafka dev-broker | produce-tweets | offsets | replay`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::run::{self, RunArgs};
use crate::component::registry::Registry;
use crate::kafka::client::{DEFAULT_BROKERS, check_reachable, client_config};
use crate::kafka::mock::DevBroker;
use crate::kafka::position::{EndPosition, StartPosition};
use crate::tweet::generator::{
    EventClock, EventStart, GeneratorConfig, TweetGenerator, wall_clock_ms,
};
use crate::tweet::wire::to_v2_json;

#[derive(Subcommand, Debug)]
pub enum KafkaCommand {
    /// Start a local Kafka-protocol broker (librdkafka's mock cluster) for trying squall
    /// without installing Kafka. It keeps data in memory only: everything is gone when it
    /// stops. Runs until Ctrl-C.
    DevBroker(DevBrokerArgs),
    /// Produce generated tweets (the generator spout's tweets, X API v2 JSON) to a topic.
    ProduceTweets(ProduceArgs),
    /// Show a group's committed offsets, the log end offsets and the lag per partition.
    Offsets(OffsetsArgs),
    /// Run a topology over exactly a range of a topic, with a throwaway consumer group,
    /// then exit with the report.
    Replay(ReplayArgs),
}

#[derive(Args, Debug)]
pub struct DevBrokerArgs {
    #[arg(long, default_value_t = 9092)]
    pub port: u16,
    /// Partitions of the topic created at start.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Topic created at start (others are created on first use).
    #[arg(long, default_value = "tweets")]
    pub topic: String,
}

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[arg(long, default_value = DEFAULT_BROKERS)]
    pub brokers: String,
    #[arg(long)]
    pub topic: String,
    #[arg(long)]
    pub count: u64,
    /// Tweets per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of the first tweet (to continue a previous run's sequence).
    #[arg(long, default_value_t = 1)]
    pub first: u64,
    /// Event-time mode: the `created_at` of tweet 1, `now` (when the command starts) or an
    /// RFC 3339 time (as the generator spout's `event_start`). Default: the generator's
    /// fixed times (2024-01-01T00:00:00Z plus n ms).
    #[arg(long, value_name = "now|RFC3339")]
    pub event_start: Option<String>,
    /// Event-time mode: time between consecutive tweets (default: 1/rate, else 1ms).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub event_interval: Option<Duration>,
    /// Event-time mode: every tweet's time is this much in the past.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    pub skew: Duration,
    /// Event-time mode: each tweet's time moved back by a pseudo-random amount below this.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    pub disorder: Duration,
}

#[derive(Args, Debug)]
pub struct OffsetsArgs {
    #[arg(long, default_value = DEFAULT_BROKERS)]
    pub brokers: String,
    #[arg(long)]
    pub topic: String,
    #[arg(long)]
    pub group: String,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("from").required(true).args(["from_offsets", "from_timestamp", "from_beginning"]))]
pub struct ReplayArgs {
    /// Topology file whose spout `source` is a `kafka` spout.
    pub file: PathBuf,
    #[arg(long)]
    pub topic: String,
    /// Brokers of the replayed spout `source`, and of every other Kafka spout and sink
    /// that does not name its own `brokers` (in the file or by --set). Default: the
    /// file's, else 127.0.0.1:9092.
    #[arg(long, value_name = "HOST:PORT[,...]")]
    pub brokers: Option<String>,
    /// Start at these offsets, P:O,... (partitions not listed start at their earliest).
    #[arg(long, value_name = "P:O,...")]
    pub from_offsets: Option<String>,
    /// Start at the first record at or after this time (RFC 3339 or epoch ms).
    #[arg(long, value_name = "T")]
    pub from_timestamp: Option<String>,
    #[arg(long)]
    pub from_beginning: bool,
    /// Stop before these offsets (partitions not listed: their log end at start).
    #[arg(long, value_name = "P:O,...", conflicts_with = "to_timestamp")]
    pub to_offsets: Option<String>,
    /// Stop at the first record at or after this time. Default end: the log end at start.
    #[arg(long, value_name = "T")]
    pub to_timestamp: Option<String>,
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Commit the replayed offsets to the topology's own consumer group (moves it).
    #[arg(long)]
    pub commit: bool,
    /// Override an option, as in `topology run`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[arg(long)]
    pub quiet: bool,
}

pub fn main(cmd: KafkaCommand, registry: &Registry) -> ExitCode {
    let result = match cmd {
        KafkaCommand::DevBroker(a) => dev_broker(a),
        KafkaCommand::ProduceTweets(a) => produce(a),
        KafkaCommand::Offsets(a) => offsets(a),
        KafkaCommand::Replay(a) => return replay(a, registry),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dev_broker(a: DevBrokerArgs) -> anyhow::Result<()> {
    let broker = DevBroker::start_on(&format!("127.0.0.1:{}", a.port))?;
    broker.create_topic(&a.topic, a.partitions)?;
    println!(
        "squall dev broker (in memory only) listening on {}; topic `{}` with {} partitions",
        broker.bootstrap_servers(),
        a.topic,
        a.partitions
    );
    println!("bootstrap: {}", broker.bootstrap_servers());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(tokio::signal::ctrl_c())?;
    eprintln!("squall dev broker: stopped (its data is gone)");
    Ok(())
}

/// The generator `produce-tweets` draws from, its `now` being `now_ms`.
fn produce_generator(a: &ProduceArgs, now_ms: i64) -> anyhow::Result<TweetGenerator> {
    let event_start = a
        .event_start
        .clone()
        .map(EventStart::try_from)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--{}", e.replace('_', "-")))?;
    let cfg = GeneratorConfig {
        seed: a.seed,
        event_start,
        event_interval: a.event_interval,
        skew: a.skew,
        disorder: a.disorder,
        ..GeneratorConfig::default()
    };
    let mut g = TweetGenerator::new(cfg.clone()).map_err(|e| {
        // The options are flags here.
        let msg = e.to_string().replace("event_start", "--event-start");
        anyhow::anyhow!(msg.replace('_', "-"))
    })?;
    g.set_event_clock(EventClock::of(&cfg, now_ms, a.rate as f64));
    Ok(g)
}

fn produce(a: ProduceArgs) -> anyhow::Result<()> {
    let g = produce_generator(&a, wall_clock_ms())?;
    let mut cc = client_config(&a.brokers, &Default::default());
    cc.set("enable.idempotence", "true").set("linger.ms", "5");
    let p: BaseProducer = cc.create()?;
    check_reachable(p.client(), &a.brokers, None, Duration::from_secs(10))?;
    let start = Instant::now();
    for i in 0..a.count {
        let n = a.first + i;
        if a.rate > 0 {
            let due = Duration::from_secs_f64(i as f64 / a.rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let t = g.tweet_at(n);
        let json = to_v2_json(&t);
        let mut record = BaseRecord::to(&a.topic).key(&t.id).payload(&json);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((e, r))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                {
                    p.poll(Duration::from_millis(10));
                    record = r;
                }
                Err((e, _)) => anyhow::bail!("producing tweet {n} to `{}`: {e}", a.topic),
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60))
        .map_err(|e| anyhow::anyhow!("not every tweet was delivered to {}: {e}", a.brokers))?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "produced {} tweets to `{}` on {} in {secs:.2}s ({:.0}/s)",
        a.count,
        a.topic,
        a.brokers,
        a.count as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// One row of `squall kafka offsets`.
#[derive(Debug, PartialEq, Eq)]
pub struct OffsetRow {
    pub partition: i32,
    pub committed: Option<i64>,
    pub low: i64,
    pub high: i64,
}

impl OffsetRow {
    /// Records not yet consumed by the group (from the log start when nothing is committed).
    pub fn lag(&self) -> i64 {
        self.high - self.committed.unwrap_or(self.low).max(self.low)
    }
}

/// Committed and log offsets of every partition of `topic` for `group`.
pub fn offset_rows(brokers: &str, topic: &str, group: &str) -> anyhow::Result<Vec<OffsetRow>> {
    let mut cc = client_config(brokers, &Default::default());
    cc.set("group.id", group);
    let c: BaseConsumer = cc.create()?;
    let timeout = Duration::from_secs(10);
    let partitions = check_reachable(c.client(), brokers, Some(topic), timeout)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition(topic, p);
    }
    let committed = c.committed_offsets(tpl, timeout)?;
    let mut rows = Vec::new();
    for e in committed.elements() {
        let (low, high) = c.fetch_watermarks(topic, e.partition(), timeout)?;
        let committed = match e.offset() {
            Offset::Offset(o) if o >= 0 => Some(o),
            _ => None,
        };
        rows.push(OffsetRow {
            partition: e.partition(),
            committed,
            low,
            high,
        });
    }
    rows.sort_by_key(|r| r.partition);
    Ok(rows)
}

fn offsets(a: OffsetsArgs) -> anyhow::Result<()> {
    let rows = offset_rows(&a.brokers, &a.topic, &a.group)?;
    println!("topic `{}`, group `{}` on {}", a.topic, a.group, a.brokers);
    println!(
        "{:>9} {:>12} {:>12} {:>12} {:>10}",
        "partition", "committed", "log start", "log end", "lag"
    );
    let mut total = 0;
    for r in &rows {
        let committed = r.committed.map_or("-".to_string(), |o| o.to_string());
        println!(
            "{:>9} {:>12} {:>12} {:>12} {:>10}",
            r.partition,
            committed,
            r.low,
            r.high,
            r.lag()
        );
        total += r.lag();
    }
    println!(
        "{:>9} {:>12} {:>12} {:>12} {:>10}",
        "total", "", "", "", total
    );
    Ok(())
}

/// The `--set` overrides that point the topology's `source` at the replay range.
pub fn replay_sets(a: &ReplayArgs) -> anyhow::Result<Vec<String>> {
    let start = if let Some(o) = &a.from_offsets {
        format!("offsets:{o}")
    } else if let Some(t) = &a.from_timestamp {
        format!("timestamp:{t}")
    } else {
        "earliest".to_string()
    };
    let start: StartPosition = start.parse()?;
    let end: EndPosition = match (&a.to_offsets, &a.to_timestamp) {
        (Some(o), _) => format!("offsets:{o}").parse()?,
        (_, Some(t)) => format!("timestamp:{t}").parse()?,
        _ => EndPosition::Latest,
    };
    let quote = |s: String| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut sets = vec![
        format!("spouts.source.topics=[{}]", quote(a.topic.clone())),
        format!("spouts.source.start={}", quote(start.to_string())),
        format!("spouts.source.end={}", quote(end.to_string())),
        "spouts.source.ignore_committed=true".to_string(),
    ];
    if let Some(b) = &a.brokers {
        sets.push(format!("spouts.source.brokers={}", quote(b.clone())));
    }
    if !a.commit {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        sets.push(format!(
            "spouts.source.group={}",
            quote(format!("squall-replay-{}-{nonce}", std::process::id()))
        ));
    }
    sets.extend(a.set.iter().cloned());
    Ok(sets)
}

fn replay(a: ReplayArgs, registry: &Registry) -> ExitCode {
    let sets = match replay_sets(&a) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    run::run(
        RunArgs {
            file: a.file,
            duration: None,
            warmup: None,
            report: a.report,
            set: sets,
            brokers: a.brokers,
            quiet: a.quiet,
            mode: None,
            batch_interval: None,
            max_batch: None,
            state_dir: None,
            http: None,
            instance_id: None,
        },
        registry,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ReplayArgs,
    }

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        a: ProduceArgs,
    }

    fn produce_args(args: &[&str]) -> ProduceArgs {
        let base = ["x", "--topic", "t", "--count", "10"];
        P::try_parse_from(base.iter().chain(args).copied())
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .a
    }

    fn created_at(g: &TweetGenerator, n: u64) -> String {
        g.tweet_at(n).created_at.unwrap_or_default()
    }

    #[test]
    fn produce_tweets_has_the_generators_event_time_mode() {
        let plain = produce_generator(&produce_args(&[]), 0).unwrap();
        assert_eq!(created_at(&plain, 1), "2024-01-01T00:00:00.001Z");
        let a = produce_args(&[
            "--event-start",
            "2026-01-01T00:00:00Z",
            "--event-interval",
            "1s",
            "--skew",
            "1m",
        ]);
        let g = produce_generator(&a, 0).unwrap();
        assert_eq!(created_at(&g, 1), "2025-12-31T23:59:00.000Z");
        assert_eq!(created_at(&g, 3), "2025-12-31T23:59:02.000Z");
        // `now` is the given time; the interval defaults to 1/rate.
        let a = produce_args(&["--event-start", "now", "--rate", "100"]);
        let g = produce_generator(&a, 1_767_225_600_000).unwrap();
        assert_eq!(created_at(&g, 2), "2026-01-01T00:00:00.010Z");
        let disordered = produce_args(&["--event-start", "now", "--disorder", "1s"]);
        let g = produce_generator(&disordered, 1_767_225_600_000).unwrap();
        let times: Vec<String> = (1..=100).map(|n| created_at(&g, n)).collect();
        assert!(times.windows(2).any(|w| w[1] < w[0]), "{times:?}");
        // Errors name the flags.
        let err = |args: &[&str]| {
            produce_generator(&produce_args(args), 0)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let e = err(&["--skew", "5s"]);
        assert!(e.contains("`skew`") && e.contains("--event-start"), "{e}");
        let e = err(&["--event-start", "soon"]);
        assert!(e.contains("--event-start") && e.contains("RFC 3339"), "{e}");
        assert!(P::try_parse_from(["x", "--topic", "t", "--count", "1", "--skew", "x"]).is_err());
    }

    fn sets(args: &[&str]) -> Vec<String> {
        let t = T::try_parse_from(std::iter::once("x").chain(args.iter().copied())).unwrap();
        replay_sets(&t.a).unwrap()
    }

    #[test]
    fn replay_points_the_source_at_the_range_with_a_throwaway_group() {
        let s = sets(&[
            "f.toml",
            "--topic",
            "tw",
            "--from-offsets",
            "0:5,1:7",
            "--to-offsets",
            "0:9",
        ]);
        assert!(
            s.contains(&"spouts.source.start=\"offsets:0:5,1:7\"".to_string()),
            "{s:?}"
        );
        assert!(
            s.contains(&"spouts.source.end=\"offsets:0:9\"".to_string()),
            "{s:?}"
        );
        assert!(s.contains(&"spouts.source.ignore_committed=true".to_string()));
        assert!(
            s.iter()
                .any(|x| x.starts_with("spouts.source.group=\"squall-replay-"))
        );
        let s = sets(&["f.toml", "--topic", "tw", "--from-beginning", "--commit"]);
        assert!(s.contains(&"spouts.source.end=\"latest\"".to_string()));
        assert!(!s.iter().any(|x| x.starts_with("spouts.source.group")));
    }

    #[test]
    fn replay_needs_a_start_and_checks_it() {
        assert!(T::try_parse_from(["x", "f.toml", "--topic", "t"]).is_err());
        let t = T::try_parse_from([
            "x",
            "f.toml",
            "--topic",
            "t",
            "--from-timestamp",
            "yesterday",
        ])
        .unwrap();
        assert!(replay_sets(&t.a).is_err());
    }

    #[test]
    fn lag_counts_from_the_log_start_without_a_commit() {
        let r = OffsetRow {
            partition: 0,
            committed: None,
            low: 10,
            high: 25,
        };
        assert_eq!(r.lag(), 15);
        let r = OffsetRow {
            partition: 0,
            committed: Some(20),
            low: 10,
            high: 25,
        };
        assert_eq!(r.lag(), 5);
    }
}
