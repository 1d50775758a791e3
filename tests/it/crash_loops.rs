//! Crash loops: a job reading Kafka (the in-process mock cluster) is started and SIGKILLed
//! at a random moment, 20 times in a row, with new records produced before each start;
//! then a last run reads to the log end. Micro-batch mode: the counts in the state store
//! are exact. Event mode: every record is in some output (at least once), every key
//! present. After every kill, no offset committed to the group is ahead of what was
//! processed (the committed state in micro-batch mode, the output files in event mode).
//!
//! Knobs (for `benches/crash-loop.sh`): `SQUALL_CRASH_CYCLES` (20), `SQUALL_CRASH_RECORDS`
//! (records produced per cycle, 150), `SQUALL_CRASH_MAX_DELAY_MS` (the kill comes
//! 50 ms + up to this after the start, 1500), `SQUALL_CRASH_SEED` (random by default; the
//! seed is in every failure message).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use squall::kafka::mock::DevBroker;

use crate::support::cli::TempDir;
use crate::support::kafka::{
    KEY_COUNTS, PARTITIONS, Squall, ahead_of, all_positions, committed, count_errors, jsonl_bolt,
    jsonl_positions, key_of, produce, raw_source, record_at, truth,
};
use crate::support::state::{committed_counts, committed_read_to};

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Event,
    Microbatch,
}

const GROUP: &str = "crash-loop";

fn topology(mode: Mode, bootstrap: &str, out: &Path, bounded: bool) -> String {
    let end = if bounded { "end = \"latest\"" } else { "" };
    let (spout, bolt) = match mode {
        Mode::Microbatch => ("parallelism = 2", KEY_COUNTS.to_string()),
        // Assigned partitions: a restart does not wait for the killed member's session
        // to time out; commits still go to the group.
        Mode::Event => (
            "partitions = [0, 1, 2, 3]\ncommit_interval = \"100ms\"",
            jsonl_bolt("file", "source", out),
        ),
    };
    let source = raw_source(bootstrap, "in", GROUP, &format!("{spout}\n{end}"));
    format!("name = \"crash-loop\"\n{source}{bolt}")
}

fn args(mode: Mode, file: &Path, state: &Path) -> Vec<String> {
    let mut a: Vec<String> = ["topology", "run", &file.display().to_string(), "--quiet"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if mode == Mode::Microbatch {
        for s in [
            "--mode",
            "microbatch",
            "--state-dir",
            &state.display().to_string(),
            "--batch-interval",
            "20ms",
            "--max-batch",
            "40",
        ] {
            a.push(s.to_string());
        }
    }
    a
}

fn crash_loop(mode: Mode) {
    let cycles = knob("SQUALL_CRASH_CYCLES", 20);
    let per = knob("SQUALL_CRASH_RECORDS", 150);
    let max_delay = knob("SQUALL_CRASH_MAX_DELAY_MS", 1500);
    let seed = std::env::var("SQUALL_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let ctx = format!("{mode:?} crash loop, seed {seed} (rerun with SQUALL_CRASH_SEED={seed})");
    let mut rng = Rng(seed);

    let broker = DevBroker::start(1).unwrap_or_else(|e| panic!("mock cluster: {e}"));
    broker
        .create_topic("in", PARTITIONS)
        .unwrap_or_else(|e| panic!("{e}"));
    let bootstrap = broker.bootstrap_servers().to_string();
    let dir = TempDir::new("crash-loop");
    let state = dir.join("state");
    let mut outputs: Vec<PathBuf> = Vec::new();
    let seen = |outputs: &[PathBuf]| -> BTreeSet<(i32, i64)> {
        outputs.iter().flat_map(|o| jsonl_positions(o)).collect()
    };
    let started = Instant::now();
    let (mut advanced, mut progress) = (0, 0u64);
    for cycle in 0..cycles {
        let produced = (cycle + 1) * per;
        produce(&bootstrap, "in", cycle * per..produced);
        let out = dir.join(&format!("out-{cycle}.jsonl"));
        let file = dir.write(
            &format!("run-{cycle}.toml"),
            &topology(mode, &bootstrap, &out, false),
        );
        let a = args(mode, &file, &state);
        let child = Squall::start(&format!("run-{cycle}"), &dir, &a);
        // The kill moment: anywhere from its start-up to well into its work.
        std::thread::sleep(Duration::from_millis(50 + rng.below(max_delay)));
        child.assert_running();
        child.kill();

        let (c, _) = committed(&bootstrap, "in", GROUP);
        let now: u64 = match mode {
            Mode::Microbatch => {
                if !state.join("state.redb").exists() {
                    assert!(
                        c.is_empty(),
                        "{ctx}: cycle {cycle}: commits {c:?} without a store"
                    );
                    continue;
                }
                let to = committed_read_to(&state);
                for (p, o) in &c {
                    let stored = to.get(p).copied().unwrap_or(0);
                    assert!(
                        *o <= stored,
                        "{ctx}: cycle {cycle}: partition {p} committed at {o}, ahead of the \
                         committed state ({stored})\n{}",
                        child.describe()
                    );
                }
                let (txid, counts) = committed_counts(&state, "counts", 2);
                let t = truth(produced);
                for (k, n) in &counts {
                    assert!(
                        t.get(k).is_some_and(|x| n <= x),
                        "{ctx}: cycle {cycle}: {k} counted {n}, more than its {:?} records so far",
                        t.get(k)
                    );
                }
                txid
            }
            Mode::Event => {
                outputs.push(out);
                let ahead = ahead_of(&c, &seen(&outputs));
                assert!(
                    ahead.is_empty(),
                    "{ctx}: cycle {cycle}: committed {c:?} before {ahead:?} were written\n{}",
                    child.describe()
                );
                c.values().map(|o| *o as u64).sum()
            }
        };
        if now > progress {
            advanced += 1;
            progress = now;
        }
    }
    assert!(
        advanced >= cycles / 4,
        "{ctx}: only {advanced} of {cycles} runs made progress before their kill: the kills \
         do not land mid-work"
    );

    // The last run reads to the log end and stops by itself.
    let out = dir.join("out-last.jsonl");
    let file = dir.write("last.toml", &topology(mode, &bootstrap, &out, true));
    let a = args(mode, &file, &state);
    let last = Squall::start("last", &dir, &a);
    let status = last.wait(Duration::from_secs(120));
    assert!(
        status.success(),
        "{ctx}: the last run exited with {status:?}\n{}",
        last.describe()
    );
    let total = cycles * per;
    let (c, high) = committed(&bootstrap, "in", GROUP);
    assert_eq!(
        c, high,
        "{ctx}: the last run should have committed the log end"
    );
    match mode {
        Mode::Microbatch => {
            let (_, counts) = committed_counts(&state, "counts", 2);
            let wrong = count_errors(&counts, &truth(total));
            assert!(
                wrong.is_empty(),
                "{ctx}: counts differ from the truth:\n{}",
                wrong.join("\n")
            );
            assert_eq!(
                committed_read_to(&state),
                high,
                "{ctx}: the state read to the log end"
            );
        }
        Mode::Event => {
            outputs.push(out);
            let mut per_key: BTreeMap<String, u64> = BTreeMap::new();
            let mut lines = 0;
            for o in &outputs {
                for (p, off) in jsonl_positions(o) {
                    *per_key.entry(key_of(record_at(p, off))).or_default() += 1;
                    lines += 1;
                }
            }
            let missing: Vec<_> = all_positions(total)
                .difference(&seen(&outputs))
                .take(10)
                .copied()
                .collect();
            assert!(missing.is_empty(), "{ctx}: never written: {missing:?}");
            for (k, n) in truth(total) {
                let got = per_key.get(&k).copied().unwrap_or(0);
                assert!(
                    got >= n,
                    "{ctx}: {k} written {got} times, fewer than its {n} records"
                );
            }
            eprintln!("{ctx}: {lines} lines for {total} records");
        }
    }
    eprintln!(
        "{ctx}: {cycles} SIGKILLs ({advanced} after progress), {total} records, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn microbatch_counts_are_exact_after_twenty_sigkills_in_a_row() {
    crash_loop(Mode::Microbatch);
}

#[test]
fn event_mode_writes_every_record_after_twenty_sigkills_in_a_row() {
    crash_loop(Mode::Event);
}
