//! The Twitter pipelines through the real binary, against the mock X API:
//! `squall twitter to-kafka` (mock API → twitter spout → kafka sink → a Kafka-protocol
//! broker) and `topologies/twitter-hashtags.toml` with `--duration`.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use squall::kafka::mock::DevBroker;

use crate::support::cli;
use crate::support::cli::{TempDir, read_report, report_topk, top_k};
use crate::support::twitter_mock::{MockX, Script, TOKEN, tweet, tweet_line};

const TOKEN_ENV: &str = "SQUALL_PIPELINE_TEST_TOKEN";

/// Runs the binary with the mock's token in its environment; kills it after `timeout`.
fn squall_with_token(args: &[String], timeout: Duration) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(args)
        .current_dir(cli::root())
        .env(TOKEN_ENV, TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert!(!err.contains(TOKEN), "the token leaked: {err}");
            return (status.success(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("squall {args:?} did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn serve(mock: &MockX, ids: std::ops::RangeInclusive<u64>) {
    mock.add_rule("#rustlang", "rust");
    // Two connections (a drop between them), then keep-alives.
    let (a, b): (Vec<u64>, Vec<u64>) = ids.partition(|i| i % 2 == 0);
    mock.push(Script::serve_then_close(
        a.iter().map(|i| tweet_line(*i, &["rust"])).collect(),
    ));
    mock.push(Script::serve_then_hold(
        b.iter().map(|i| tweet_line(*i, &["rust"])).collect(),
        Duration::from_millis(100),
    ));
}

#[test]
fn to_kafka_writes_every_served_tweet_to_the_topic() {
    let mock = MockX::start();
    serve(&mock, 1..=40);
    let broker = DevBroker::start(1).unwrap();
    broker.create_topic("tweets", 1).unwrap();
    let args: Vec<String> = [
        "twitter",
        "to-kafka",
        "--topic",
        "tweets",
        "--brokers",
        broker.bootstrap_servers(),
        "--base-url",
        &mock.base_url(),
        "--token-env",
        TOKEN_ENV,
        "--duration",
        "3s",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (ok, err) = squall_with_token(&args, Duration::from_secs(30));
    assert!(ok, "{err}");

    // Read the topic back: one record per served tweet, keyed by its id.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", "check")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("tweets", 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut got: HashMap<String, serde_json::Value> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 40 && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            got.insert(key, v);
        }
    }
    let served = mock.served_ids();
    assert_eq!(served.len(), 40);
    assert_eq!(got.len(), 40, "one record per served tweet");
    for i in 1..=40 {
        let t = tweet(i, &["rust"]);
        let v = &got[&t.id];
        assert_eq!(v["id"], t.id.as_str());
        assert_eq!(v["text"], t.text.as_str());
        assert_eq!(v["author"], "user".to_string() + &(i % 5).to_string());
        assert_eq!(v["hashtags"], serde_json::json!(t.hashtags));
        assert_eq!(v["rule_tags"], serde_json::json!(["rust"]));
    }
    // What the stream parser reads back from the topic is the same tweet.
    let parsed = squall::tweet::wire::parse_line(
        serde_json::to_string(&got[&tweet(7, &[]).id])
            .unwrap()
            .as_bytes(),
    );
    assert!(
        matches!(parsed, Ok(squall::tweet::wire::StreamMessage::Tweet(t)) if t.text == tweet(7, &[]).text)
    );
}

#[test]
fn twitter_hashtags_topology_counts_everything_received() {
    let mock = MockX::start();
    serve(&mock, 1..=30);
    let dir = TempDir::new("twitter-hashtags");
    let report = dir.join("r.json");
    let args: Vec<String> = [
        "topology",
        "run",
        "topologies/twitter-hashtags.toml",
        "--set",
        &format!("spouts.source.base_url=\"{}\"", mock.base_url()),
        "--set",
        &format!("spouts.source.token_env=\"{TOKEN_ENV}\""),
        "--set",
        "bolts.sink.quiet=true",
        "--duration",
        "3s",
        "--quiet",
        "--report",
        &report.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (ok, err) = squall_with_token(&args, Duration::from_secs(30));
    assert!(ok, "{err}");
    let mut counts: HashMap<String, u64> = HashMap::new();
    for i in 1..=30 {
        for h in tweet(i, &[]).hashtags {
            *counts.entry(h).or_default() += 1;
        }
    }
    let r = read_report(&report);
    assert_eq!(report_topk(&r), top_k(&counts, 10));
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(!text.contains(TOKEN));
}
