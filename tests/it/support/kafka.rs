//! Helpers of the tests that run `squall` processes against the in-process mock cluster:
//! numbered records (record `n` has a known partition, offset, key and value), producing
//! them, a group's offsets, a `squall topology run` child, the `jsonl` output of raw
//! records, and the TOML of a job reading them.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use squall::cli::kafka::{OffsetRow, offset_rows};
use squall::kafka::mock::DevBroker;

use super::cli::{TempDir, root, tail};

/// Partitions of every input topic.
pub const PARTITIONS: i32 = 4;
/// Distinct record keys.
pub const KEYS: u64 = 40;

/// A (partition, offset) of an input topic.
pub type Position = (i32, i64);

/// Record `n`: partition `n % PARTITIONS`, key [`key_of`]`(n)`, value [`value_of`]`(n)`.
/// One producer writes them in order, so offset `o` of partition `p` holds record
/// `o * PARTITIONS + p` (when the topic was empty before record 0).
pub fn record_at(partition: i32, offset: i64) -> u64 {
    (offset * i64::from(PARTITIONS) + i64::from(partition)) as u64
}

pub fn key_of(n: u64) -> String {
    format!("k{}", n % KEYS)
}

pub fn value_of(n: u64) -> String {
    format!("rec-{n}")
}

/// The true count of each key over records `0..n`.
pub fn truth(n: u64) -> BTreeMap<String, u64> {
    let mut t = BTreeMap::new();
    for i in 0..n {
        *t.entry(key_of(i)).or_default() += 1;
    }
    t
}

/// Positions of records `0..n`.
pub fn all_positions(n: u64) -> BTreeSet<Position> {
    (0..n)
        .map(|i| {
            (
                (i % PARTITIONS as u64) as i32,
                (i / PARTITIONS as u64) as i64,
            )
        })
        .collect()
}

/// A mock cluster of one broker with a `PARTITIONS`-partition topic.
pub fn broker_with_topic(topic: &str) -> DevBroker {
    let broker = DevBroker::start(1).unwrap_or_else(|e| panic!("start the mock cluster: {e}"));
    broker
        .create_topic(topic, PARTITIONS)
        .unwrap_or_else(|e| panic!("create topic `{topic}`: {e}"));
    broker
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
        let (key, value) = (key_of(n), value_of(n));
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

/// Committed, log start and log end offsets of every partition of `topic`, for `group`.
pub fn offsets(bootstrap: &str, topic: &str, group: &str) -> Vec<OffsetRow> {
    let rows = offset_rows(bootstrap, topic, group)
        .unwrap_or_else(|e| panic!("read the offsets of `{topic}` for `{group}`: {e}"));
    assert_eq!(
        rows.len(),
        PARTITIONS as usize,
        "offset rows of `{topic}`: {rows:?}"
    );
    rows
}

/// The group's committed offset of each partition of `topic` (absent: none), and the log
/// end of each.
pub fn committed(
    bootstrap: &str,
    topic: &str,
    group: &str,
) -> (BTreeMap<i32, i64>, BTreeMap<i32, i64>) {
    let rows = offsets(bootstrap, topic, group);
    let c = rows
        .iter()
        .filter_map(|r| Some((r.partition, r.committed?)))
        .collect();
    let h = rows.iter().map(|r| (r.partition, r.high)).collect();
    (c, h)
}

/// Every position in the logs of `rows`.
pub fn logged_positions(rows: &[OffsetRow]) -> BTreeSet<Position> {
    rows.iter()
        .flat_map(|r| (r.low..r.high).map(move |o| (r.partition, o)))
        .collect()
}

/// Positions below each committed offset that are not in `seen` (up to 10).
pub fn ahead_of(committed: &BTreeMap<i32, i64>, seen: &BTreeSet<Position>) -> Vec<Position> {
    committed
        .iter()
        .flat_map(|(p, c)| (0..*c).map(move |o| (*p, o)))
        .filter(|pos| !seen.contains(pos))
        .take(10)
        .collect()
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

/// One line of a `jsonl` output of raw records.
#[derive(Debug, Clone)]
pub struct Line {
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

/// The complete lines of a `jsonl` output of raw records (a SIGKILL may leave the last one
/// cut short: it is ignored; any other bad line fails the test). Each line must carry the
/// record produced at its position. A missing file has no lines.
pub fn read_lines(path: &Path) -> Vec<Line> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("read {}: {e}", path.display()),
    };
    let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
    complete
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let bad =
                |what: &str| -> ! { panic!("{} line {}: {what}: {line}", path.display(), i + 1) };
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| bad(&format!("not JSON ({e})")));
            let (partition, offset) = position_of(&v)
                .unwrap_or_else(|| bad("not the record produced at its partition and offset"));
            Line {
                partition,
                offset,
                value: value_of(record_at(partition, offset)),
            }
        })
        .collect()
}

/// The positions of a `jsonl` output's complete lines (see [`read_lines`]).
pub fn jsonl_positions(path: &Path) -> Vec<Position> {
    read_lines(path)
        .iter()
        .map(|l| (l.partition, l.offset))
        .collect()
}

pub fn positions(lines: &[Line]) -> BTreeSet<Position> {
    lines.iter().map(|l| (l.partition, l.offset)).collect()
}

/// The position of a raw record's JSON, if its key and value are those of the record
/// produced there.
pub fn position_of(v: &serde_json::Value) -> Option<Position> {
    let p = i32::try_from(v["partition"].as_i64()?).ok()?;
    let o = v["offset"].as_i64()?;
    let n = record_at(p, o);
    (v["value"].as_str()? == value_of(n) && v["key"].as_str()? == key_of(n)).then_some((p, o))
}

/// The `[spouts.source]` section of a job reading the raw records of `topic` in group
/// `group` from the earliest offset (short session timeouts: group changes take about 2 s
/// against the mock), with `extra` TOML lines for the spout.
pub fn raw_source(bootstrap: &str, topic: &str, group: &str, extra: &str) -> String {
    format!(
        r#"
[spouts.source]
type = "kafka"
brokers = "{bootstrap}"
topics = ["{topic}"]
group = "{group}"
start = "earliest"
format = "raw"
properties = {{ "session.timeout.ms" = "3000", "heartbeat.interval.ms" = "300" }}
{extra}
"#
    )
}

/// A `jsonl` sink `name` writing every tuple of `from` to `path`.
pub fn jsonl_bolt(name: &str, from: &str, path: &Path) -> String {
    format!(
        r#"
[bolts.{name}]
type = "jsonl"
path = {path}
inputs = [{{ from = "{from}", grouping = "shuffle" }}]
"#,
        path = toml_string(&path.display().to_string())
    )
}

/// The `count` bolt `counts` (parallelism 2) counting the records of `source` by key: the
/// state [`super::state::committed_counts`] reads.
pub const KEY_COUNTS: &str = r#"
[bolts.counts]
type = "count"
parallelism = 2
field = "key"
inputs = [{ from = "source", grouping = "fields", fields = ["key"] }]
"#;

/// `s` as a TOML basic string.
pub fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|e| panic!("quote {s}: {e}"))
}

/// A `squall` child with its stderr (the kafka spout at info level) in a file; SIGKILLed if
/// still running when dropped.
pub struct Squall {
    pub name: String,
    /// In a cell so that waits can check it while messages borrow the rest.
    child: RefCell<Child>,
    log: PathBuf,
}

impl Squall {
    pub fn start<S: AsRef<std::ffi::OsStr>>(name: &str, dir: &TempDir, args: &[S]) -> Squall {
        let log = dir.join(&format!("{name}.log"));
        let stderr = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let child = Command::new(env!("CARGO_BIN_EXE_squall"))
            .current_dir(root())
            .args(args)
            .env("SQUALL_LOG", "warn,squall::kafka::spout=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn squall ({name}): {e}"));
        Squall {
            name: name.to_string(),
            child: RefCell::new(child),
            log,
        }
    }

    /// Its stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The tail of its stderr, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "--- {} stderr ({}) ---\n{}",
            self.name,
            self.log.display(),
            tail(&self.log_text())
        )
    }

    /// Panics (with its stderr) if it has exited.
    pub fn assert_running(&self) {
        let exited = self.child.borrow_mut().try_wait();
        if let Ok(Some(status)) = exited {
            panic!(
                "{} exited early with {status:?}\n{}",
                self.name,
                self.describe()
            );
        }
    }

    /// SIGKILL, and reap it.
    pub fn kill(&self) {
        let mut child = self.child.borrow_mut();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM (a graceful stop).
    pub fn terminate(&self) {
        let pid = self.child.borrow().id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM {pid} ({})", self.name);
    }

    /// Waits for it to exit by itself; panics (with its stderr) after `timeout`.
    pub fn wait(&self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.child.borrow_mut().try_wait();
            match exited {
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
        let child = self.child.get_mut();
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
