//! The kafka spout across real processes, against a Kafka-protocol peer (the in-process
//! mock cluster): a `squall topology run` child killed with SIGKILL mid-stream and
//! restarted in the same group loses no offset (and never committed an offset whose line
//! was not written), and two children of one group split the partitions and the survivor
//! takes over those of one stopped with SIGTERM.
//!
//! The children write every tuple (topic, partition, offset, key, value, timestamp) to a
//! `jsonl` file, which acks a tuple only once its line is flushed; so a committed offset
//! implies that every line below it is in the file, even after a SIGKILL.

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

use crate::support::cli::{TempDir, root, tail};

/// Partitions of every test topic.
const PARTITIONS: i32 = 4;

/// A (partition, offset) of the test topic.
type Position = (i32, i64);

/// Record `n` goes to partition `n % PARTITIONS` with key `n` and value `rec-n`; one
/// idempotent producer writes them in order, so offset `o` of partition `p` holds record
/// `o * PARTITIONS + p`.
fn record_at(partition: i32, offset: i64) -> u64 {
    (offset * i64::from(PARTITIONS) + i64::from(partition)) as u64
}

/// A mock cluster with a `PARTITIONS`-partition topic.
fn broker_with_topic(topic: &str) -> DevBroker {
    let broker = DevBroker::start(1).unwrap_or_else(|e| panic!("start the mock cluster: {e}"));
    broker
        .create_topic(topic, PARTITIONS)
        .unwrap_or_else(|e| panic!("create topic `{topic}`: {e}"));
    broker
}

/// Produces records `range` (see [`record_at`]) and waits until all are delivered.
fn produce(bootstrap: &str, topic: &str, range: std::ops::Range<u64>) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("log_level", "3")
        .create()
        .unwrap_or_else(|e| panic!("create a producer: {e}"));
    for n in range.clone() {
        let key = n.to_string();
        let value = format!("rec-{n}");
        let partition = (n % PARTITIONS as u64) as i32;
        let mut record = BaseRecord::to(topic)
            .key(&key)
            .payload(&value)
            .partition(partition);
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
    p.flush(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("records {range:?} not all delivered to `{topic}`: {e}"));
}

/// Committed, log start and log end offsets of every partition, for `group`.
fn offsets(bootstrap: &str, topic: &str, group: &str) -> Vec<OffsetRow> {
    let rows = offset_rows(bootstrap, topic, group)
        .unwrap_or_else(|e| panic!("read the offsets of `{topic}` for `{group}`: {e}"));
    assert_eq!(
        rows.len(),
        PARTITIONS as usize,
        "offset rows of `{topic}`: {rows:?}"
    );
    rows
}

/// Every (partition, offset) in the topic's logs.
fn all_positions(rows: &[OffsetRow]) -> BTreeSet<Position> {
    rows.iter()
        .flat_map(|r| (r.low..r.high).map(move |o| (r.partition, o)))
        .collect()
}

/// A topology file: the kafka spout `source` (raw records of `topic`, group `group`, from
/// the earliest offset, with short session timeouts so group changes take ~2 s against
/// the mock) into the `jsonl` sink `sink` writing `out`. `spout_extra` is more TOML for
/// the spout; `config` the `[config]` section's body.
fn topology(
    bootstrap: &str,
    topic: &str,
    group: &str,
    out: &Path,
    spout_extra: &str,
    config: &str,
) -> String {
    format!(
        r#"name = "kafka-processes"

[config]
workers = 2
{config}

[spouts.source]
type = "kafka"
parallelism = 1
brokers = "{bootstrap}"
topics = ["{topic}"]
group = "{group}"
start = "earliest"
format = "raw"
properties = {{ "session.timeout.ms" = "3000", "heartbeat.interval.ms" = "300" }}
{spout_extra}

[bolts.sink]
type = "jsonl"
path = {out:?}
inputs = [{{ from = "source", grouping = "shuffle" }}]
"#,
        out = out.display().to_string(),
    )
}

/// A `squall topology run` child; killed (SIGKILL) if still running when dropped.
struct Squall {
    name: &'static str,
    /// In a cell so that waits can check it while messages borrow the rest.
    child: RefCell<Child>,
    out: PathBuf,
    log: PathBuf,
}

impl Squall {
    /// Runs topology file `file` (writing `out`) with its stderr (at info level for the
    /// kafka spout) in `log`.
    fn start(name: &'static str, dir: &TempDir, file: &Path, out: &Path) -> Squall {
        let log = dir.join(&format!("{name}.log"));
        let stderr = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let child = Command::new(env!("CARGO_BIN_EXE_squall"))
            .current_dir(root())
            .args(["topology", "run", "--quiet"])
            .arg(file)
            .env("SQUALL_LOG", "warn,squall::kafka::spout=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn squall ({name}): {e}"));
        Squall {
            name,
            child: RefCell::new(child),
            out: out.to_path_buf(),
            log,
        }
    }

    fn log_text(&self) -> String {
        let raw = std::fs::read_to_string(&self.log).unwrap_or_default();
        strip_ansi(&raw)
    }

    /// The child's jsonl output so far.
    fn lines(&self) -> Vec<Line> {
        read_lines(&self.out)
    }

    /// Its stderr's tail, for failure messages.
    fn describe(&self) -> String {
        format!(
            "--- {} stderr ({}) ---\n{}",
            self.name,
            self.log.display(),
            tail(&self.log_text())
        )
    }

    /// SIGKILL, and reap it.
    fn kill(&self) {
        let mut child = self.child.borrow_mut();
        child
            .kill()
            .unwrap_or_else(|e| panic!("kill {}: {e}", self.name));
        let _ = child.wait();
    }

    /// SIGTERM (a graceful stop: drain, commit, exit 0).
    fn terminate(&self) {
        let pid = self.child.borrow().id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -TERM {pid} ({}) failed", self.name);
    }

    /// Waits for it to exit by itself.
    fn wait(&self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.child.borrow_mut().try_wait();
            match exited {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
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

    /// Panics (with its stderr) if it has exited.
    fn assert_running(&self) {
        let exited = self.child.borrow_mut().try_wait();
        if let Ok(Some(status)) = exited {
            panic!(
                "{} exited early with {status:?}\n{}",
                self.name,
                self.describe()
            );
        }
    }

    /// The partitions it owns now, per its log (its last assignment, unless revoked
    /// since): `None` before the first assignment or while revoked.
    fn assignment(&self) -> Option<BTreeSet<i32>> {
        let text = self.log_text();
        let line = text.lines().rev().find(|l| {
            l.contains("kafka: partitions assigned") || l.contains("kafka: partitions revoked")
        })?;
        if line.contains("revoked") {
            return None;
        }
        Some(partitions_in_log_line(line))
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

/// Removes ANSI escape sequences (in case the log is colored anyway).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The partition numbers in a `partitions=["topic/0", "topic/1"]` log field.
fn partitions_in_log_line(line: &str) -> BTreeSet<i32> {
    let list = line
        .split_once("partitions=[")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .unwrap_or_else(|| panic!("no partitions=[...] in log line: {line}"));
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let s = s.trim().trim_matches('"');
            s.rsplit_once('/')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or_else(|| panic!("bad partition `{s}` in log line: {line}"))
        })
        .collect()
}

/// One line of a child's jsonl output.
#[derive(Debug, Clone)]
struct Line {
    partition: i32,
    offset: i64,
    value: String,
}

/// The complete lines of a jsonl output (a SIGKILL may leave the last one cut short: it is
/// ignored; any other bad line fails the test). Each line must carry the record produced
/// at its position.
fn read_lines(path: &Path) -> Vec<Line> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("read {}: {e}", path.display()),
    };
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let bad =
                |what: &str| -> ! { panic!("{} line {}: {what}: {line}", path.display(), i + 1) };
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| bad(&format!("not JSON ({e})")));
            let partition = v["partition"]
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or_else(|| bad("no integer `partition`"));
            let offset = v["offset"]
                .as_i64()
                .unwrap_or_else(|| bad("no integer `offset`"));
            let value = v["value"]
                .as_str()
                .unwrap_or_else(|| bad("no string `value`"))
                .to_string();
            let n = record_at(partition, offset);
            if value != format!("rec-{n}") || v["key"].as_str() != Some(n.to_string().as_str()) {
                bad(&format!(
                    "expected key {n} and value rec-{n} at {partition}/{offset}"
                ));
            }
            Line {
                partition,
                offset,
                value,
            }
        })
        .collect()
}

fn positions(lines: &[Line]) -> BTreeSet<Position> {
    lines.iter().map(|l| (l.partition, l.offset)).collect()
}

fn partitions_of(lines: &[Line]) -> BTreeSet<i32> {
    lines.iter().map(|l| l.partition).collect()
}

/// Up to 10 of `missing`, for messages.
fn sample(missing: &BTreeSet<Position>) -> Vec<Position> {
    missing.iter().take(10).copied().collect()
}

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what()` after
/// `timeout`.
fn wait_for<T>(
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    what: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "not within {timeout:?}: {}",
            what()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Records of the crash test: 4 partitions x 500.
const CRASH_RECORDS: u64 = 2000;

#[test]
fn crash_and_restart_counts_every_offset_at_least_once() {
    let topic = "crash";
    let group = "crash-group";
    let broker = broker_with_topic(topic);
    let bootstrap = broker.bootstrap_servers().to_string();
    produce(&bootstrap, topic, 0..CRASH_RECORDS);
    let truth = all_positions(&offsets(&bootstrap, topic, group));
    assert_eq!(truth.len() as u64, CRASH_RECORDS, "records in the topic");

    let dir = TempDir::new("kafka-crash");
    // The first child is slowed down: at most 4 uncommitted records per partition, and
    // the sink acks (so the spout may commit) only at its 100 ms flushes; it commits as
    // soon as it can (every cap is a commit), so commits race the kill.
    let first_out = dir.join("first.jsonl");
    let first_file = dir.write(
        "first.toml",
        &topology(
            &bootstrap,
            topic,
            group,
            &first_out,
            "max_uncommitted = 4\ncommit_interval = \"100ms\"",
            "",
        ),
    );
    let first = Squall::start("first", &dir, &first_file, &first_out);
    // Mid-stream: some lines written and some offsets committed, far from all.
    let committed_before_kill = wait_for(
        Duration::from_secs(15),
        || {
            first.assert_running();
            if first.lines().len() < 150 {
                return None;
            }
            let rows = offsets(&bootstrap, topic, group);
            let committed: i64 = rows.iter().filter_map(|r| r.committed).sum();
            (committed > 0).then_some(committed)
        },
        || {
            format!(
                "the first child wrote {} lines and committed nothing or little\n{}",
                first.lines().len(),
                first.describe()
            )
        },
    );
    first.kill();
    let first_lines = first.lines();
    let first_seen = positions(&first_lines);
    assert!(
        (first_seen.len() as u64) < CRASH_RECORDS,
        "the first child processed all {} records before the kill: not a mid-stream crash",
        first_seen.len()
    );

    // Committed offsets were never ahead of acked ones: every offset below a partition's
    // committed offset is in the first child's file (flushed before acked before
    // committed).
    let after_kill = offsets(&bootstrap, topic, group);
    let committed: BTreeMap<i32, i64> = after_kill
        .iter()
        .map(|r| (r.partition, r.committed.unwrap_or(r.low)))
        .collect();
    assert!(
        committed.values().sum::<i64>() >= committed_before_kill,
        "committed offsets went back: {committed_before_kill} before the kill, {after_kill:?} after"
    );
    for r in &after_kill {
        let c = committed[&r.partition];
        let missing: BTreeSet<Position> = (r.low..c)
            .map(|o| (r.partition, o))
            .filter(|p| !first_seen.contains(p))
            .collect();
        assert!(
            missing.is_empty(),
            "partition {} has offset {c} committed, but {} offsets below it are not in the \
             killed child's output (first: {:?}): a commit got ahead of the acks\n{}",
            r.partition,
            missing.len(),
            sample(&missing),
            first.describe()
        );
    }

    // The restart, in the same group, up to the log end: starts at the committed offsets.
    let second_out = dir.join("second.jsonl");
    let second_file = dir.write(
        "second.toml",
        &topology(
            &bootstrap,
            topic,
            group,
            &second_out,
            "end = \"latest\"",
            "",
        ),
    );
    let second = Squall::start("second", &dir, &second_file, &second_out);
    let status = second.wait(Duration::from_secs(25));
    assert!(
        status.success(),
        "the restarted child (bounded by end = latest) exited with {status:?}\n{}",
        second.describe()
    );
    let second_lines = second.lines();
    let second_seen = positions(&second_lines);
    for l in &second_lines {
        assert!(
            l.offset >= committed[&l.partition],
            "the restart read {}/{} ({}), below the committed offset {}: it did not resume \
             from the group's commit",
            l.partition,
            l.offset,
            l.value,
            committed[&l.partition]
        );
    }

    // At least once: the two outputs cover every offset of the topic.
    let union: BTreeSet<Position> = first_seen.union(&second_seen).copied().collect();
    let missing: BTreeSet<Position> = truth.difference(&union).copied().collect();
    assert!(
        missing.is_empty(),
        "{} of {CRASH_RECORDS} offsets are in neither output (first: {:?}); first child \
         wrote {}, the restart {}\n{}",
        missing.len(),
        sample(&missing),
        first_seen.len(),
        second_seen.len(),
        second.describe()
    );
    // And the restart committed up to the log end.
    let end = offsets(&bootstrap, topic, group);
    for r in &end {
        assert_eq!(
            r.committed,
            Some(r.high),
            "partition {}: the finished restart should have committed the log end: {end:?}",
            r.partition
        );
    }
}

/// Records of each batch of the two-process test: 4 partitions x 150.
const BATCH: u64 = 600;

#[test]
fn two_processes_in_one_group_split_partitions_and_take_over() {
    let topic = "split";
    let group = "split-group";
    let broker = broker_with_topic(topic);
    let bootstrap = broker.bootstrap_servers().to_string();
    let dir = TempDir::new("kafka-split");
    let all: BTreeSet<i32> = (0..PARTITIONS).collect();

    let a_out = dir.join("a.jsonl");
    let a_file = dir.write(
        "a.toml",
        &topology(&bootstrap, topic, group, &a_out, "", ""),
    );
    let b_out = dir.join("b.jsonl");
    let b_file = dir.write(
        "b.toml",
        &topology(&bootstrap, topic, group, &b_out, "", ""),
    );
    let a = Squall::start("a", &dir, &a_file, &a_out);
    wait_for(
        Duration::from_secs(15),
        || {
            a.assert_running();
            a.assignment().filter(|p| *p == all)
        },
        || {
            format!(
                "the first child never owned every partition\n{}",
                a.describe()
            )
        },
    );
    let b = Squall::start("b", &dir, &b_file, &b_out);
    // The group settles: the two own disjoint, complementary partition sets.
    let (a_parts, b_parts) = wait_for(
        Duration::from_secs(15),
        || {
            a.assert_running();
            b.assert_running();
            let (pa, pb) = (a.assignment()?, b.assignment()?);
            let settled = !pa.is_empty()
                && !pb.is_empty()
                && pa.is_disjoint(&pb)
                && pa.union(&pb).copied().collect::<BTreeSet<_>>() == all;
            settled.then_some((pa, pb))
        },
        || {
            format!(
                "the group did not split the partitions: a owns {:?}, b owns {:?}\n{}\n{}",
                a.assignment(),
                b.assignment(),
                a.describe(),
                b.describe()
            )
        },
    );

    // The first batch is read by both, each from its own partitions.
    produce(&bootstrap, topic, 0..BATCH);
    let first_batch = all_positions(&offsets(&bootstrap, topic, group));
    wait_for(
        Duration::from_secs(15),
        || {
            a.assert_running();
            b.assert_running();
            let seen: BTreeSet<Position> = positions(&a.lines())
                .union(&positions(&b.lines()))
                .copied()
                .collect();
            first_batch.is_subset(&seen).then_some(())
        },
        || {
            format!(
                "the first batch was not read by the two: a wrote {}, b wrote {} of {BATCH}\n{}\n{}",
                a.lines().len(),
                b.lines().len(),
                a.describe(),
                b.describe()
            )
        },
    );
    let (a_lines, b_lines) = (a.lines(), b.lines());
    let (a_read, b_read) = (partitions_of(&a_lines), partitions_of(&b_lines));
    assert!(
        !a_read.is_empty() && !b_read.is_empty() && a_read.is_disjoint(&b_read),
        "each child should read its own partitions: a read {a_read:?} (owns {a_parts:?}), \
         b read {b_read:?} (owns {b_parts:?})"
    );
    assert_eq!(a_read, a_parts, "a read exactly the partitions it owns");
    assert_eq!(b_read, b_parts, "b read exactly the partitions it owns");

    // Stop `a` gracefully: it drains, commits what it wrote, leaves the group, exits 0.
    a.terminate();
    let status = a.wait(Duration::from_secs(20));
    assert!(
        status.success(),
        "a exited with {status:?} after SIGTERM\n{}",
        a.describe()
    );
    let a_lines = a.lines();
    let a_seen = positions(&a_lines);
    let rows = offsets(&bootstrap, topic, group);
    for r in rows.iter().filter(|r| a_parts.contains(&r.partition)) {
        assert_eq!(
            r.committed,
            Some(r.high),
            "partition {} of the stopped child: it wrote every record of it and should have \
             committed them on close: {rows:?}\n{}",
            r.partition,
            a.describe()
        );
    }

    // `b` takes over: it reads the second batch of every partition, and nothing that `a`
    // had committed.
    produce(&bootstrap, topic, BATCH..2 * BATCH);
    let truth = all_positions(&offsets(&bootstrap, topic, group));
    assert_eq!(truth.len() as u64, 2 * BATCH, "records in the topic");
    let not_by_a: BTreeSet<Position> = truth.difference(&a_seen).copied().collect();
    wait_for(
        Duration::from_secs(20),
        || {
            b.assert_running();
            not_by_a.is_subset(&positions(&b.lines())).then_some(())
        },
        || {
            let missing: BTreeSet<Position> = not_by_a
                .difference(&positions(&b.lines()))
                .copied()
                .collect();
            format!(
                "the survivor did not take over: {} offsets not read by a are not in b's \
                 output (first: {:?}); b owns {:?}\n{}",
                missing.len(),
                sample(&missing),
                b.assignment(),
                b.describe()
            )
        },
    );
    assert_eq!(
        b.assignment(),
        Some(all.clone()),
        "the survivor owns every partition\n{}",
        b.describe()
    );
    b.terminate();
    let status = b.wait(Duration::from_secs(20));
    assert!(
        status.success(),
        "b exited with {status:?} after SIGTERM\n{}",
        b.describe()
    );
    let b_seen = positions(&b.lines());
    let reread: BTreeSet<Position> = a_seen.intersection(&b_seen).copied().collect();
    assert!(
        reread.is_empty(),
        "b re-read {} offsets that a had committed on close (first: {:?})",
        reread.len(),
        sample(&reread)
    );
    let union: BTreeSet<Position> = a_seen.union(&b_seen).copied().collect();
    let missing: BTreeSet<Position> = truth.difference(&union).copied().collect();
    assert!(
        missing.is_empty(),
        "{} offsets are in neither output (first: {:?})",
        missing.len(),
        sample(&missing)
    );
    let end = offsets(&bootstrap, topic, group);
    for r in &end {
        assert_eq!(
            r.committed,
            Some(r.high),
            "partition {}: everything was read, and the group should have committed the log \
             end: {end:?}\n{}",
            r.partition,
            b.describe()
        );
    }
}

/// Records of the pause test: 4 partitions x 300.
const CAPPED_RECORDS: u64 = 1200;

/// A partition the spout paused (at its cap of uncommitted records) and that a rebalance
/// revokes and assigns back must be read on: librdkafka keeps a partition's pause across
/// unassign/assign, while the spout's new bookkeeping of the partition starts unpaused
/// and so never resumes it.
#[test]
fn a_rebalance_does_not_strand_partitions_paused_at_their_cap() {
    let topic = "capped";
    let group = "capped-group";
    let broker = broker_with_topic(topic);
    let bootstrap = broker.bootstrap_servers().to_string();
    produce(&bootstrap, topic, 0..CAPPED_RECORDS);
    let dir = TempDir::new("kafka-capped");
    // `slow` pauses each partition after 4 uncommitted records, i.e. most of the time
    // (the sink acks every 100 ms).
    let slow_out = dir.join("slow.jsonl");
    let slow_file = dir.write(
        "slow.toml",
        &topology(
            &bootstrap,
            topic,
            group,
            &slow_out,
            "max_uncommitted = 4\ncommit_interval = \"100ms\"",
            "",
        ),
    );
    let other_out = dir.join("other.jsonl");
    let other_file = dir.write(
        "other.toml",
        &topology(&bootstrap, topic, group, &other_out, "", ""),
    );
    let all: BTreeSet<i32> = (0..PARTITIONS).collect();
    let slow = Squall::start("slow", &dir, &slow_file, &slow_out);
    wait_for(
        Duration::from_secs(15),
        || {
            slow.assert_running();
            let read = partitions_of(&slow.lines());
            (read == all).then_some(())
        },
        || {
            format!(
                "the slow child did not read every partition\n{}",
                slow.describe()
            )
        },
    );
    // A second member joins: the slow child's (mostly paused) partitions are revoked,
    // and half of them assigned back to it.
    let other = Squall::start("other", &dir, &other_file, &other_out);
    let kept = wait_for(
        Duration::from_secs(15),
        || {
            slow.assert_running();
            other.assert_running();
            let (ps, po) = (slow.assignment()?, other.assignment()?);
            let settled = !ps.is_empty() && !po.is_empty() && ps.is_disjoint(&po);
            settled.then_some(ps)
        },
        || {
            format!(
                "the group did not split the partitions: slow owns {:?}, other owns {:?}\n{}\n{}",
                slow.assignment(),
                other.assignment(),
                slow.describe(),
                other.describe()
            )
        },
    );
    // Each partition the slow child kept goes on: new lines beyond those it had written
    // at the rebalance.
    let high_at_rebalance = |lines: &[Line]| -> BTreeMap<i32, i64> {
        let mut m = BTreeMap::new();
        for l in lines {
            let e = m.entry(l.partition).or_insert(l.offset);
            *e = (*e).max(l.offset);
        }
        m
    };
    let before = high_at_rebalance(&slow.lines());
    let rows = offsets(&bootstrap, topic, group);
    wait_for(
        Duration::from_secs(10),
        || {
            slow.assert_running();
            let now = high_at_rebalance(&slow.lines());
            kept.iter()
                .all(|p| now.get(p) > before.get(p))
                .then_some(())
        },
        || {
            let now = high_at_rebalance(&slow.lines());
            let stuck: Vec<i32> = kept
                .iter()
                .copied()
                .filter(|p| now.get(p) <= before.get(p))
                .collect();
            format!(
                "partitions {stuck:?} of the {kept:?} assigned back to the slow child make no \
                 progress (highest offset written per partition: {now:?}; offsets at the \
                 rebalance: {rows:?})\n{}",
                slow.describe()
            )
        },
    );
}
