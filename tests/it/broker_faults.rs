//! Broker faults under a running job (child processes against the in-process mock
//! cluster of 3 brokers): every broker down for 5 s mid-run, injected errors on produce
//! (the `kafka` sink's requests) and on offset commits, and partition leader changes. The
//! job carries on; at the end the counts in the state store are exact in micro-batch mode,
//! every record is in the outputs (at least once) in event mode, and no offset committed
//! to the group at any time was ahead of what had been processed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use squall::kafka::mock::{DevBroker, RDKafkaApiKey, RDKafkaRespErr};

use crate::support::cli::TempDir;
use crate::support::kafka::{
    KEY_COUNTS, PARTITIONS, Squall, ahead_of, all_positions, committed, count_errors, jsonl_bolt,
    jsonl_positions, position_of, produce, raw_source, truth,
};
use crate::support::state::{committed_counts, committed_read_to};

const RECORDS_PER_PHASE: u64 = 800;
const OUT: &str = "out";

/// Offsets committed at one moment, and the positions written to the file just after.
type Sample = (BTreeMap<i32, i64>, BTreeSet<(i32, i64)>);

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Event,
    Microbatch,
}

fn topology(bootstrap: &str, mode: Mode, jsonl: &Path) -> String {
    let counts = match mode {
        // The state of micro-batch mode: exact counts per key.
        Mode::Microbatch => KEY_COUNTS.to_string(),
        // Event mode: every record in a file (acked once flushed).
        Mode::Event => jsonl_bolt("file", "source", jsonl),
    };
    let source = raw_source(
        bootstrap,
        "in",
        "faults",
        "parallelism = 2\ncommit_interval = \"200ms\"",
    );
    format!(
        r#"name = "broker-faults"
{source}
[bolts.out]
type = "kafka"
brokers = "{bootstrap}"
topic = "{OUT}"
delivery_timeout = "10s"
inputs = [{{ from = "source", grouping = "shuffle" }}]
{counts}"#
    )
}

/// Every record of the whole run must be processed; faults are injected between phases
/// of produced input, while the child runs.
fn broker_faults(mode: Mode) {
    let broker = DevBroker::start(3).unwrap_or_else(|e| panic!("mock cluster: {e}"));
    broker
        .create_topic("in", PARTITIONS)
        .unwrap_or_else(|e| panic!("{e}"));
    broker
        .create_topic(OUT, 1)
        .unwrap_or_else(|e| panic!("{e}"));
    // Inputs led by brokers 1 and 2, the output by broker 3: errors aimed at broker 3's
    // produce requests hit the sink only.
    for p in 0..PARTITIONS {
        broker
            .set_partition_leader("in", p, p % 2 + 1)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    broker
        .set_partition_leader(OUT, 0, 3)
        .unwrap_or_else(|e| panic!("{e}"));
    let bootstrap = broker.bootstrap_servers().to_string();
    let dir = TempDir::new("broker-faults");
    let jsonl = dir.join("out.jsonl");
    let state = dir.join("state");
    let file = dir.write("t.toml", &topology(&bootstrap, mode, &jsonl));
    let file_arg = file.display().to_string();
    let state_arg = state.display().to_string();
    let mut args = vec!["topology", "run", &file_arg, "--quiet"];
    if mode == Mode::Microbatch {
        args.extend([
            "--mode",
            "microbatch",
            "--state-dir",
            &state_arg,
            "--batch-interval",
            "20ms",
            "--max-batch",
            "100",
        ]);
    }

    produce(&bootstrap, "in", 0..RECORDS_PER_PHASE);
    let child = Squall::start("faults", &dir, &args);
    // Commits sampled while the job runs, with what was processed right after each.
    let mut samples: Vec<Sample> = Vec::new();
    let mut wait_all_committed = |child: &Squall, n: u64, phase: &str| {
        let want = all_positions(n);
        let ends: BTreeMap<i32, i64> = (0..PARTITIONS)
            .map(|p| (p, want.iter().filter(|(q, _)| *q == p).count() as i64))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            child.assert_running();
            let (c, _) = committed(&bootstrap, "in", "faults");
            samples.push((c.clone(), jsonl_positions(&jsonl).into_iter().collect()));
            if c == ends {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{phase}: the group did not commit all {n} records ({c:?}, want {ends:?})\n{}",
                child.describe()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_all_committed(&child, RECORDS_PER_PHASE, "start");

    // 1. Every broker down for 5 s (`SQUALL_BROKER_DOWN_SECS`: benches/crash-loop.sh
    // takes them down for 20 s).
    let down = std::env::var("SQUALL_BROKER_DOWN_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    broker.broker_down(-1);
    std::thread::sleep(Duration::from_secs(down));
    broker.broker_up(-1);
    produce(&bootstrap, "in", RECORDS_PER_PHASE..2 * RECORDS_PER_PHASE);
    wait_all_committed(&child, 2 * RECORDS_PER_PHASE, "after the brokers were down");

    // 2. Errors on offset commits (any broker: the coordinator) and on the sink's
    // produce requests (broker 3 leads the output).
    use RDKafkaRespErr as E;
    broker.push_request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[
            E::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            E::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            E::RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
            E::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
            E::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
            E::RD_KAFKA_RESP_ERR__TRANSPORT,
        ],
    );
    let produce_errors: Vec<(RDKafkaRespErr, Duration)> = [
        E::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        E::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        E::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        E::RD_KAFKA_RESP_ERR__TRANSPORT,
        E::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        E::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
    ]
    .iter()
    .map(|e| (*e, Duration::from_millis(50)))
    .collect();
    broker
        .push_broker_request_errors(3, RDKafkaApiKey::Produce, &produce_errors)
        .unwrap_or_else(|e| panic!("{e}"));
    produce(
        &bootstrap,
        "in",
        2 * RECORDS_PER_PHASE..3 * RECORDS_PER_PHASE,
    );
    wait_all_committed(&child, 3 * RECORDS_PER_PHASE, "after request errors");
    assert_eq!(
        broker.broker_request_errors_left(3, RDKafkaApiKey::Produce),
        0,
        "the sink should have met every injected produce error"
    );

    // 3. Leader changes: the inputs move to broker 3, the output to broker 1.
    for p in 0..PARTITIONS {
        broker
            .set_partition_leader("in", p, 3)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    broker
        .set_partition_leader(OUT, 0, 1)
        .unwrap_or_else(|e| panic!("{e}"));
    produce(
        &bootstrap,
        "in",
        3 * RECORDS_PER_PHASE..4 * RECORDS_PER_PHASE,
    );
    let total = 4 * RECORDS_PER_PHASE;
    wait_all_committed(&child, total, "after the leader changes");

    child.terminate();
    let status = child.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "exit after SIGTERM: {status:?}\n{}",
        child.describe()
    );

    // Every record reached the output topic, at least once.
    let out: BTreeSet<(i32, i64)> = crate::support::read_topic(&broker, OUT)
        .iter()
        .map(|v| {
            position_of(v).unwrap_or_else(|| panic!("a record of `{OUT}` is not an input: {v}"))
        })
        .collect();
    let truth_positions = all_positions(total);
    let missing: Vec<_> = truth_positions.difference(&out).take(10).collect();
    assert!(
        missing.is_empty(),
        "not in `{OUT}`: {missing:?}\n{}",
        child.describe()
    );
    // No commit was ever ahead of the output (records only accumulate there).
    for (c, _) in &samples {
        let ahead = ahead_of(c, &out);
        assert!(
            ahead.is_empty(),
            "committed {c:?} before {ahead:?} reached `{OUT}`"
        );
    }
    match mode {
        Mode::Microbatch => {
            let (_, counts) = committed_counts(&state, "counts", 2);
            let wrong = count_errors(&counts, &truth(total));
            assert!(
                wrong.is_empty(),
                "counts differ from the truth:\n{}",
                wrong.join("\n")
            );
            let (c, _) = committed(&bootstrap, "in", "faults");
            assert_eq!(
                c,
                committed_read_to(&state),
                "group commits and the state's ranges"
            );
        }
        Mode::Event => {
            let lines: BTreeSet<(i32, i64)> = jsonl_positions(&jsonl).into_iter().collect();
            let missing: Vec<_> = truth_positions.difference(&lines).take(10).collect();
            assert!(missing.is_empty(), "not in the file: {missing:?}");
            for (c, seen) in &samples {
                let ahead = ahead_of(c, seen);
                assert!(
                    ahead.is_empty(),
                    "committed {c:?} before {ahead:?} were in the file"
                );
            }
        }
    }
    eprintln!(
        "broker faults ({mode:?}): {total} records, brokers down {down} s, 6 commit and 6 produce errors, 5 leader changes; {} commit samples checked",
        samples.len()
    );
}

#[test]
fn microbatch_counts_stay_exact_through_broker_faults() {
    broker_faults(Mode::Microbatch);
}

#[test]
fn event_mode_processes_every_record_through_broker_faults() {
    broker_faults(Mode::Event);
}
