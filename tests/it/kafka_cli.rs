//! The README's "With Kafka" quick start, end to end through the real binary:
//! `squall kafka dev-broker` in one process, `produce-tweets`, `offsets`, and
//! `topologies/kafka-hashtags.toml` run to the end of the topic.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::cli::{
    TempDir, field_u64, generator_hashtag_counts, read_report, report_topk, squall, top_k,
};

/// A `squall kafka dev-broker` child, killed on drop.
struct Broker {
    child: Child,
    addr: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dev_broker(partitions: u32) -> Broker {
    dev_broker_logging_to(partitions, None)
}

/// A dev broker whose info-level log goes to `log` (when given).
fn dev_broker_logging_to(partitions: u32, log: Option<&std::path::Path>) -> Broker {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_squall"));
    cmd.args(["kafka", "dev-broker", "--port", &port.to_string()])
        .args(["--partitions", &partitions.to_string()])
        .stdout(Stdio::piped());
    match log {
        Some(path) => cmd
            .env("SQUALL_LOG", "info")
            .stderr(std::fs::File::create(path).unwrap()),
        None => cmd.stderr(Stdio::null()),
    };
    let mut child = cmd.spawn().unwrap();
    // It prints its address once it listens (read_line blocks until then, or EOF).
    let mut first = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut first).unwrap();
    assert!(
        first.contains("in memory only"),
        "dev-broker said: {first:?}"
    );
    assert!(first.contains(&format!("127.0.0.1:{port}")), "{first:?}");
    // Keep draining its stdout so it never blocks.
    std::thread::spawn(move || for _ in out.lines() {});
    Broker {
        child,
        addr: format!("127.0.0.1:{port}"),
    }
}

#[test]
fn quick_start_dev_broker_produce_offsets_and_the_kafka_job() {
    let broker = dev_broker(4);
    let b = broker.addr.as_str();
    let t = Duration::from_secs(60);
    let produced = squall(
        [
            "kafka",
            "produce-tweets",
            "--brokers",
            b,
            "--topic",
            "tweets",
            "--count",
            "5000",
        ],
        t,
    );
    produced.assert_success();
    assert!(
        produced.stdout.contains("produced 5000 tweets"),
        "{}",
        produced.stdout
    );

    // Nothing committed yet: the lag is the whole topic.
    let offsets = squall(
        [
            "kafka",
            "offsets",
            "--brokers",
            b,
            "--topic",
            "tweets",
            "--group",
            "squall-kafka-hashtags",
        ],
        t,
    );
    offsets.assert_success();
    let total = offsets
        .stdout
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        total.trim_start().starts_with("total") && total.trim_end().ends_with("5000"),
        "{}",
        offsets.stdout
    );

    // The job, bounded at the log end, counts exactly the generator's tweets 1..=5000;
    // `--brokers` reaches its spout and its Kafka sink.
    let dir = TempDir::new("kafka-quickstart");
    let report = dir.join("report.json");
    squall(
        [
            "topology",
            "run",
            "topologies/kafka-hashtags.toml",
            "--quiet",
            "--brokers",
            b,
            "--set",
            "spouts.source.end=\"latest\"",
            "--set",
            "bolts.counts.window=\"1h\"",
            "--set",
            "bolts.sink.quiet=true",
            "--report",
            &report.display().to_string(),
        ],
        t,
    )
    .assert_success();
    let r = read_report(&report);
    assert_eq!(field_u64(&r, "spouts.source.acked"), 5000);
    assert_eq!(field_u64(&r, "spouts.source.failed"), 0);
    assert_eq!(
        report_topk(&r),
        top_k(&generator_hashtag_counts(42, 5000), 10)
    );

    // Committed: no lag left; the rankings went to their topic.
    let offsets = squall(
        [
            "kafka",
            "offsets",
            "--brokers",
            b,
            "--topic",
            "tweets",
            "--group",
            "squall-kafka-hashtags",
        ],
        t,
    );
    let total = offsets
        .stdout
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(total.trim_end().ends_with(" 0"), "{}", offsets.stdout);
    let rankings = squall(
        [
            "kafka",
            "offsets",
            "--brokers",
            b,
            "--topic",
            "trending-hashtags",
            "--group",
            "x",
        ],
        t,
    );
    rankings.assert_success();
    let total = rankings
        .stdout
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        !total.trim_end().ends_with(" 0"),
        "rankings were written: {}",
        rankings.stdout
    );
}

#[test]
fn kafka_commands_report_an_unreachable_broker_clearly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let b = format!("127.0.0.1:{port}");
    let out = squall(
        [
            "kafka",
            "offsets",
            "--brokers",
            &b,
            "--topic",
            "t",
            "--group",
            "g",
        ],
        Duration::from_secs(60),
    );
    out.assert_failure();
    assert!(
        out.stderr
            .contains(&format!("no Kafka broker answered at {b}")),
        "{}",
        out.stderr
    );
}

/// `squall kafka dev-broker` creates the topics squall asks for (the mock itself has no
/// CreateTopics API), with the partition count asked for.
#[test]
fn dev_broker_creates_internal_topics_on_request() {
    use squall::kafka::admin::{TopicSpec, ensure_topics, partition_count};
    use std::collections::BTreeMap;

    let dir = TempDir::new("dev-broker-topics");
    let log = dir.join("dev-broker.log");
    let broker = dev_broker_logging_to(1, Some(&log));
    let b = broker.addr.as_str();
    let props = BTreeMap::new();
    let t = Duration::from_secs(30);
    let spec = [TopicSpec {
        name: "app-counts-repartition".into(),
        partitions: 12,
    }];
    assert_eq!(
        partition_count(b, &props, "app-counts-repartition", t).unwrap(),
        None
    );
    assert_eq!(
        ensure_topics(b, &props, &spec, t).unwrap(),
        ["app-counts-repartition"]
    );
    assert_eq!(
        partition_count(b, &props, "app-counts-repartition", t).unwrap(),
        Some(12)
    );
    assert!(ensure_topics(b, &props, &spec, t).unwrap().is_empty());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("created topic `app-counts-repartition` with 12 partitions"),
        "{logged}"
    );
}
