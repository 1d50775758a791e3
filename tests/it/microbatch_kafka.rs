//! Micro-batch mode's exactly-once counts with a Kafka source, across failures and
//! crashes: a topic (librdkafka's mock cluster, in this process) holds N generated
//! tweets; `squall topology run --mode microbatch --state-dir D` counts their hashtags
//! while a `chaos` bolt fails 10 % of the batches; the process is SIGKILLed twice mid-run
//! and restarted; the counts persisted in D must equal the truth exactly (not ≥).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use squall::kafka::mock::DevBroker;

use crate::support::cli::{
    HASHTAG_BOLTS, TempDir, generator_hashtag_counts, read_report, squall, tail,
};
use crate::support::http::{get, serve_args, wait_for};
use crate::support::kafka::count_errors;
use crate::support::state::committed_counts;

const TWEETS: u64 = 20_000;
const SEED: u64 = 7;

fn topology(bootstrap: &str) -> String {
    format!(
        r#"
name = "exactly-once"

[spouts.source]
type = "kafka"
parallelism = 2
brokers = "{bootstrap}"
topics = ["tweets"]
group = "exactly-once"
format = "tweet"
end = "latest"
{HASHTAG_BOLTS}
[bolts.counts]
type = "count"
parallelism = 2
inputs = [{{ from = "hashtags", grouping = "fields", fields = ["hashtag"] }}]

[bolts.chaos]
type = "chaos"
fail_batches = 0.1
inputs = [{{ from = "hashtags", grouping = "shuffle" }}]
"#
    )
}

/// The run's arguments: small batches, so the run lasts long enough to be killed twice.
fn run_args(file: &Path, state: &Path, report: &Path) -> Vec<String> {
    [
        "topology",
        "run",
        &file.display().to_string(),
        "--mode",
        "microbatch",
        "--state-dir",
        &state.display().to_string(),
        "--batch-interval",
        "20ms",
        "--max-batch",
        "60",
        "--quiet",
        "--report",
        &report.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn produce_tweets(bootstrap: &str) {
    let out = squall(
        [
            "kafka",
            "produce-tweets",
            "--brokers",
            bootstrap,
            "--topic",
            "tweets",
            "--count",
            &TWEETS.to_string(),
            "--seed",
            &SEED.to_string(),
        ],
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "produce-tweets: {}",
        tail(&out.stderr)
    );
}

#[test]
fn counts_are_exactly_once_across_failed_batches_and_two_sigkills() {
    let broker = DevBroker::start(1).unwrap_or_else(|e| panic!("mock cluster: {e}"));
    broker
        .create_topic("tweets", 4)
        .unwrap_or_else(|e| panic!("create topic: {e}"));
    let bootstrap = broker.bootstrap_servers().to_string();
    produce_tweets(&bootstrap);

    let dir = TempDir::new("mb-exactly-once");
    let file = dir.path().join("t.toml");
    std::fs::write(&file, topology(&bootstrap)).unwrap_or_else(|e| panic!("write: {e}"));
    let state = dir.path().join("state");
    let report = dir.path().join("report.json");
    let args = run_args(&file, &state, &report);

    // Two runs killed mid-stream: each is killed once it has committed a batch (seen on
    // its /api/metrics), and must still be running then.
    let mut last_txid = 0;
    for round in 1..=2 {
        let mut served_args: Vec<&str> = args.iter().map(String::as_str).collect();
        served_args.extend(["--http", "127.0.0.1:0"]);
        let mut served = serve_args(&served_args);
        let started = Instant::now();
        wait_for(
            &format!("run {round} to commit a batch"),
            Duration::from_secs(60),
            || {
                let m = get(served.addr, "/api/metrics").json();
                let source = m["components"]
                    .as_array()
                    .and_then(|cs| cs.iter().find(|c| c["name"] == "source"))
                    .cloned()
                    .unwrap_or_default();
                (source["acked"].as_u64().unwrap_or(0) > 0).then_some(())
            },
        );
        let still_running = served.child.try_wait().ok().flatten().is_none();
        let _ = served.child.kill();
        let _ = served.child.wait();
        let log_text: String = served
            .first_lines
            .iter()
            .cloned()
            .chain(served.stderr.try_iter())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            still_running,
            "run {round} ended before the kill ({:?}); the run must be mid-stream\n{}",
            started.elapsed(),
            tail(&log_text)
        );
        let (txid, counts) = committed_counts(&state, "counts", 2);
        assert!(
            txid > last_txid,
            "run {round} committed nothing (txid {txid}, before {last_txid})\n{}",
            tail(&log_text)
        );
        let total: u64 = counts.values().sum();
        let truth_total: u64 = generator_hashtag_counts(SEED, TWEETS).values().sum();
        assert!(
            total < truth_total,
            "run {round} was killed after counting everything: not a mid-run kill"
        );
        last_txid = txid;
    }

    // The third run finishes the topic (end = latest).
    let out = squall(&args, Duration::from_secs(120));
    assert!(out.status.success(), "final run: {}", tail(&out.stderr));
    let (_, counts) = committed_counts(&state, "counts", 2);
    let truth = generator_hashtag_counts(SEED, TWEETS);
    let counts: BTreeMap<String, u64> = counts.into_iter().collect();
    let truth: BTreeMap<String, u64> = truth.into_iter().collect();
    let wrong = count_errors(&counts, &truth);
    assert!(
        wrong.is_empty(),
        "persisted counts differ from the truth ({} keys):\n{}",
        truth.len(),
        wrong.join("\n")
    );
    let r = read_report(&report);
    let replayed = r["counters"]["source"]["batches_replayed"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        replayed > 0,
        "the chaos bolt should have failed some batches of the last run: {r}"
    );
}
