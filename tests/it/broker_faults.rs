//! Broker faults under a running job (child processes against the in-process mock
//! cluster of 3 brokers): every broker down for 5 s mid-run, injected errors on produce
//! (the `kafka` sink's requests) and on offset commits, and partition leader changes. The
//! job carries on; at the end the counts in the state store are exact in micro-batch mode,
//! every record is in the outputs (at least once) in event mode, and no offset committed
//! to the group at any time was ahead of what had been processed.
//!
//! The helpers here (records, children, outputs, stores) also serve `crash_loops`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use squall::cli::kafka::offset_rows;
use squall::kafka::mock::{DevBroker, RDKafkaApiKey, RDKafkaRespErr};
use squall::state::Store;

use crate::support::cli::{TempDir, root, tail};

/// Partitions of every input topic.
pub const PARTITIONS: i32 = 4;
/// Distinct record keys.
pub const KEYS: u64 = 40;

/// Record `n`: partition `n % PARTITIONS`, key `k{n % KEYS}`, value `rec-n`. One producer
/// writes them in order, so offset `o` of partition `p` holds record `o * PARTITIONS + p`
/// (when the topic was empty before record 0).
pub fn record_at(partition: i32, offset: i64) -> u64 {
    (offset * i64::from(PARTITIONS) + i64::from(partition)) as u64
}

pub fn key_of(n: u64) -> String {
    format!("k{}", n % KEYS)
}

/// The true count of each key over records `0..n`.
pub fn truth(n: u64) -> BTreeMap<String, u64> {
    let mut t = BTreeMap::new();
    for i in 0..n {
        *t.entry(key_of(i)).or_default() += 1;
    }
    t
}

/// Produces records `range` to `topic` and waits until every one is delivered.
pub fn produce(bootstrap: &str, topic: &str, range: std::ops::Range<u64>) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("log_level", "3")
        .create()
        .unwrap_or_else(|e| panic!("create a producer: {e}"));
    for n in range.clone() {
        let key = key_of(n);
        let value = format!("rec-{n}");
        let mut record = BaseRecord::to(topic)
            .key(&key)
            .payload(&value)
            .partition((n % PARTITIONS as u64) as i32);
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
                Err((e, _)) => panic!("produce record {n} to `{topic}`: {e}"),
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("records {range:?} not all delivered to `{topic}`: {e}"));
}

/// The group's committed offset of each partition of `topic` (absent: none), and the log
/// end of each.
pub fn committed(
    bootstrap: &str,
    topic: &str,
    group: &str,
) -> (BTreeMap<i32, i64>, BTreeMap<i32, i64>) {
    let rows = offset_rows(bootstrap, topic, group)
        .unwrap_or_else(|e| panic!("read the offsets of `{topic}` for `{group}`: {e}"));
    assert_eq!(rows.len(), PARTITIONS as usize, "offset rows: {rows:?}");
    let c = rows
        .iter()
        .filter_map(|r| Some((r.partition, r.committed?)))
        .collect();
    let h = rows.iter().map(|r| (r.partition, r.high)).collect();
    (c, h)
}

/// A `squall topology run` child with its stderr in a file; SIGKILLed if still running
/// when dropped.
pub struct Squall {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Squall {
    pub fn start(name: &str, dir: &TempDir, args: &[&str]) -> Squall {
        let log = dir.join(&format!("{name}.log"));
        let stderr = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let child = Command::new(env!("CARGO_BIN_EXE_squall"))
            .current_dir(root())
            .args(args)
            .env("SQUALL_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn squall ({name}): {e}"));
        Squall {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// The tail of its stderr, for failure messages.
    pub fn describe(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- {} stderr ---\n{}", self.name, tail(&text))
    }

    /// Panics (with its stderr) if it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early with {status:?}\n{}",
                self.name,
                self.describe()
            );
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM {pid} ({})", self.name);
    }

    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => panic!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.name,
                    self.describe()
                ),
                Err(e) => panic!("wait for {}: {e}", self.name),
            }
        }
    }
}

impl Drop for Squall {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// The (partition, offset) of every complete line of a `jsonl` output of raw records
/// (a SIGKILL may leave the last line cut: it is ignored). Each line must carry the
/// record produced at its position.
pub fn jsonl_positions(path: &Path) -> Vec<(i32, i64)> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("read {}: {e}", path.display()),
    };
    let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
    complete
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", path.display()));
            position_of(&v).unwrap_or_else(|| panic!("{}: bad line {line}", path.display()))
        })
        .collect()
}

/// The (partition, offset) of a raw record's JSON, if its value is the record produced
/// there.
pub fn position_of(v: &serde_json::Value) -> Option<(i32, i64)> {
    let p = i32::try_from(v["partition"].as_i64()?).ok()?;
    let o = v["offset"].as_i64()?;
    let n = record_at(p, o);
    (v["value"].as_str()? == format!("rec-{n}") && v["key"].as_str()? == key_of(n))
        .then_some((p, o))
}

/// Positions of records `0..n`.
pub fn all_positions(n: u64) -> BTreeSet<(i32, i64)> {
    (0..n)
        .map(|i| {
            (
                (i % PARTITIONS as u64) as i32,
                (i / PARTITIONS as u64) as i64,
            )
        })
        .collect()
}

/// Positions below each committed offset that are not in `seen`.
pub fn ahead_of(committed: &BTreeMap<i32, i64>, seen: &BTreeSet<(i32, i64)>) -> Vec<(i32, i64)> {
    committed
        .iter()
        .flat_map(|(p, c)| (0..*c).map(move |o| (*p, o)))
        .filter(|pos| !seen.contains(pos))
        .take(10)
        .collect()
}

/// The committed counts of a `count` bolt named `counts` (parallelism 2) counting `key`,
/// and the committed txid, from a state directory no process holds.
pub fn store_counts(state: &Path) -> (u64, BTreeMap<String, u64>) {
    let store = Store::open(state).unwrap_or_else(|e| panic!("open the state store: {e}"));
    let mut out = BTreeMap::new();
    for task in 0..2 {
        for (key, _txid, bytes) in store
            .load_prefix(&format!("counts/{task}/counts/"))
            .unwrap_or_else(|e| panic!("read the counts: {e}"))
        {
            let n: u64 = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("count of {key} does not decode: {e}"));
            assert!(
                out.insert(key.clone(), n).is_none(),
                "{key} counted by two tasks"
            );
        }
    }
    (store.committed_txid().unwrap_or(0), out)
}

/// The end (`to`) of each partition's range in the last committed batch record of a
/// state directory (the spout is `source`): how far the committed state has read.
pub fn store_read_to(state: &Path) -> BTreeMap<i32, i64> {
    let store = Store::open(state).unwrap_or_else(|e| panic!("open the state store: {e}"));
    let committed = store.committed_txid().unwrap_or(0);
    let mut out = BTreeMap::new();
    if committed == 0 {
        return out;
    }
    let records = store
        .batches_from(committed)
        .unwrap_or_else(|e| panic!("read the batch records: {e}"));
    let Some((_, bytes)) = records.first() else {
        panic!("no record of the committed batch {committed}");
    };
    let rec: serde_json::Value =
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("batch record: {e}"));
    for meta in rec["spouts"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        for r in meta["ranges"].as_array().into_iter().flatten() {
            if let (Some(p), Some(to)) = (r["partition"].as_i64(), r["to"].as_i64()) {
                out.insert(p as i32, to);
            }
        }
    }
    out
}

/// Differences between counts and the truth, for messages (up to 10).
pub fn count_errors(counts: &BTreeMap<String, u64>, truth: &BTreeMap<String, u64>) -> Vec<String> {
    truth
        .iter()
        .filter(|(k, v)| counts.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: counted {:?}, truth {v}", counts.get(k)))
        .chain(
            counts
                .keys()
                .filter(|k| !truth.contains_key(*k))
                .map(|k| format!("{k}: counted, not in the input")),
        )
        .take(10)
        .collect()
}

// ---------------------------------------------------------------------------------------

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
        Mode::Microbatch => r#"
[bolts.counts]
type = "count"
parallelism = 2
field = "key"
inputs = [{ from = "source", grouping = "fields", fields = ["key"] }]
"#
        .to_string(),
        // Event mode: every record in a file (acked once flushed).
        Mode::Event => format!(
            r#"
[bolts.file]
type = "jsonl"
path = {jsonl:?}
inputs = [{{ from = "source", grouping = "shuffle" }}]
"#,
            jsonl = jsonl.display().to_string()
        ),
    };
    format!(
        r#"name = "broker-faults"

[spouts.source]
type = "kafka"
parallelism = 2
brokers = "{bootstrap}"
topics = ["in"]
group = "faults"
start = "earliest"
format = "raw"
commit_interval = "200ms"
properties = {{ "session.timeout.ms" = "3000", "heartbeat.interval.ms" = "300" }}

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
    let mut child = Squall::start("faults", &dir, &args);
    // Commits sampled while the job runs, with what was processed right after each.
    let mut samples: Vec<Sample> = Vec::new();
    let mut wait_all_committed = |child: &mut Squall, n: u64, phase: &str| {
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
    wait_all_committed(&mut child, RECORDS_PER_PHASE, "start");

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
    wait_all_committed(
        &mut child,
        2 * RECORDS_PER_PHASE,
        "after the brokers were down",
    );

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
    wait_all_committed(&mut child, 3 * RECORDS_PER_PHASE, "after request errors");
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
    wait_all_committed(&mut child, total, "after the leader changes");

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
            let (_, counts) = store_counts(&state);
            let wrong = count_errors(&counts, &truth(total));
            assert!(
                wrong.is_empty(),
                "counts differ from the truth:\n{}",
                wrong.join("\n")
            );
            let (c, _) = committed(&bootstrap, "in", "faults");
            assert_eq!(
                c,
                store_read_to(&state),
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
