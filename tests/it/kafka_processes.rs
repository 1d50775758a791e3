//! The kafka spout across real processes, against a Kafka-protocol peer (the in-process
//! mock cluster): a `squall topology run` child killed with SIGKILL mid-stream and
//! restarted in the same group loses no offset (and never committed an offset whose line
//! was not written), and two children of one group split the partitions and the survivor
//! takes over those of one stopped with SIGTERM.
//!
//! The children write every tuple (topic, partition, offset, key, value, timestamp) to a
//! `jsonl` file, which acks a tuple only once its line is flushed; so a committed offset
//! implies that every line below it is in the file, even after a SIGKILL.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::cli::TempDir;
use crate::support::kafka::{
    Line, PARTITIONS, Position, Squall, broker_with_topic, jsonl_bolt,
    logged_positions as all_positions, offsets, positions, produce, raw_source, read_lines,
};

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
    let source = raw_source(
        bootstrap,
        topic,
        group,
        &format!("parallelism = 1\n{spout_extra}"),
    );
    let sink = jsonl_bolt("sink", "source", out);
    format!("name = \"kafka-processes\"\n\n[config]\nworkers = 2\n{config}\n{source}{sink}")
}

/// A `squall topology run` child writing a `jsonl` output.
struct Member {
    child: Squall,
    out: PathBuf,
}

impl std::ops::Deref for Member {
    type Target = Squall;
    fn deref(&self) -> &Squall {
        &self.child
    }
}

impl Member {
    /// Runs topology file `file` (writing `out`).
    fn start(name: &str, dir: &TempDir, file: &Path, out: &Path) -> Member {
        let file = file.display().to_string();
        Member {
            child: Squall::start(name, dir, &["topology", "run", "--quiet", &file]),
            out: out.to_path_buf(),
        }
    }

    /// The child's jsonl output so far.
    fn lines(&self) -> Vec<Line> {
        read_lines(&self.out)
    }

    /// The partitions it owns now, per its log (its last assignment, unless revoked
    /// since): `None` before the first assignment or while revoked.
    fn assignment(&self) -> Option<BTreeSet<i32>> {
        let text = strip_ansi(&self.log_text());
        let line = text.lines().rev().find(|l| {
            l.contains("kafka: partitions assigned") || l.contains("kafka: partitions revoked")
        })?;
        if line.contains("revoked") {
            return None;
        }
        Some(partitions_in_log_line(line))
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
    let first = Member::start("first", &dir, &first_file, &first_out);
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
    let second = Member::start("second", &dir, &second_file, &second_out);
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
    let a = Member::start("a", &dir, &a_file, &a_out);
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
    let b = Member::start("b", &dir, &b_file, &b_out);
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
    let slow = Member::start("slow", &dir, &slow_file, &slow_out);
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
    let other = Member::start("other", &dir, &other_file, &other_out);
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
