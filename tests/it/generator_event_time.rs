//! The generator's event-time mode in running topologies: every task stamps tweet `n` with
//! the same time in event and micro-batch mode (tuples and columns), `"now"` is one time
//! shared by the spout's tasks, times stay within the skew and disorder asked for, and a
//! resumed micro-batch run keeps the times of the run that started the stream.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use squall::bolts::chaos::ChaosConfig;
use squall::component::registry::{BoltConfig, SpoutConfig};
use squall::config::Mode;
use squall::spouts::generator::GeneratorSpoutConfig;
use squall::time::parse_event_time;
use squall::tweet::generator::wall_clock_ms;
use squall::{ComponentResult, Config, OutputDeclarer, TopologyBuilder};

use crate::support;
use crate::support::cli::TempDir;
use crate::support::lock;

/// Keeps each tweet's `created_at` (epoch ms) by id; a tweet seen twice (a replay) must
/// have the same time.
#[derive(Clone, Default)]
struct Times {
    by_id: Arc<Mutex<BTreeMap<u64, i64>>>,
    /// Tweets seen again with another time.
    conflicts: Arc<Mutex<Vec<String>>>,
}

impl squall::Bolt for Times {
    fn declare_outputs(&self, _out: &mut OutputDeclarer) {}

    fn execute(
        &mut self,
        input: squall::Tuple,
        _out: &mut squall::BoltCollector<'_>,
    ) -> ComponentResult {
        let id: u64 = input
            .get_str("id")
            .and_then(|s| s.parse().ok())
            .ok_or("no id")?;
        let at = input
            .get("created_at")
            .ok_or("no created_at")
            .map(parse_event_time)?
            .map_err(|e| e.to_string())?;
        if let Some(before) = lock(&self.by_id).insert(id, at)
            && before != at
        {
            lock(&self.conflicts).push(format!("tweet {id} stamped {before} then {at}"));
        }
        Ok(())
    }
}

fn generator(options: &str) -> GeneratorSpoutConfig {
    toml::from_str(options).unwrap_or_else(|e| panic!("{options}: {e}"))
}

fn event_mode() -> Config {
    Config {
        workers: 2,
        ..Config::default()
    }
}

fn microbatch(state_dir: Option<&std::path::Path>) -> Config {
    Config {
        workers: 2,
        mode: Mode::Microbatch,
        batch_interval: Duration::from_millis(10),
        max_batch: 100,
        batches_in_flight: 3,
        state_dir: state_dir.map(std::path::Path::to_path_buf),
        drain_timeout: Duration::from_secs(10),
        ..Config::default()
    }
}

/// generator (3 tasks) → times (2 tasks), beside a chaos bolt failing some tuples or
/// batches (so some tweets are replayed); the times by id.
fn run(source: &GeneratorSpoutConfig, config: Config) -> BTreeMap<u64, i64> {
    let times = Times::default();
    let (by_id, conflicts) = (times.by_id.clone(), times.conflicts.clone());
    let mut b = TopologyBuilder::new("event-time-generator");
    b.spout_factory(
        "source",
        source.build().unwrap_or_else(|e| panic!("{e}")),
        3,
    );
    b.bolt("times", times, 2).shuffle("source");
    let chaos = ChaosConfig {
        fail_tuples: 0.05,
        fail_batches: 0.1,
        ..Default::default()
    };
    b.bolt_factory("chaos", chaos.build().unwrap_or_else(|e| panic!("{e}")), 1)
        .shuffle("source");
    let t = b.build().unwrap_or_else(|e| panic!("{e}"));
    support::run(t, config, Duration::from_secs(60));
    assert_eq!(
        *lock(&conflicts),
        Vec::<String>::new(),
        "a replay changed times"
    );
    lock(&by_id).clone()
}

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

#[test]
fn both_modes_stamp_each_tweet_alike_within_skew_and_disorder() {
    let source = generator(
        r#"limit = 900
           event_start = "2026-01-01T00:00:00Z"
           event_interval = "10ms"
           skew = "1m"
           disorder = "2s""#,
    );
    let event = run(&source, event_mode());
    let micro = run(&source, microbatch(None));
    assert_eq!(event.len(), 900, "every tweet");
    assert_eq!(
        micro, event,
        "micro-batch (columns) and event mode (tuples) agree"
    );
    let mut out_of_order = 0;
    let mut prev = i64::MIN;
    for (&n, &at) in &event {
        let base = T0 + (n as i64 - 1) * 10;
        assert!(
            (base - 60_000 - 2_000 < at) && (at <= base - 60_000),
            "tweet {n} at {at}, base {base}"
        );
        out_of_order += usize::from(at < prev);
        prev = at;
    }
    assert!(out_of_order > 100, "{out_of_order} tweets out of order");

    // Without disorder, the times are in sequence order.
    let ordered = generator(
        r#"limit = 300
           event_start = "2026-01-01T00:00:00Z"
           skew = "5s""#,
    );
    let times = run(&ordered, event_mode());
    let want: BTreeMap<u64, i64> = (1..=300).map(|n| (n, T0 - 5_000 + n as i64 - 1)).collect();
    assert_eq!(times, want);
}

#[test]
fn now_is_one_time_for_every_task_of_the_spout() {
    let source = generator(
        r#"limit = 600
           event_start = "now""#,
    );
    for config in [event_mode(), microbatch(None)] {
        let before = wall_clock_ms();
        let times = run(&source, config);
        let after = wall_clock_ms();
        assert_eq!(times.len(), 600);
        // Tweet n at start + (n − 1) ms: every task's tweets give the same start.
        let starts: std::collections::BTreeSet<i64> =
            times.iter().map(|(&n, &at)| at - (n as i64 - 1)).collect();
        assert_eq!(starts.len(), 1, "tasks disagree on \"now\": {starts:?}");
        let start = starts.first().copied().unwrap_or_default();
        assert!(
            (before..=after).contains(&start),
            "{before} ≤ {start} ≤ {after}"
        );
    }
}

#[test]
fn a_resumed_microbatch_run_keeps_the_times_of_the_first() {
    let dir = TempDir::new("event-time-generator");
    let state = dir.join("state");
    let first = run(
        &generator("limit = 300\nevent_start = \"now\""),
        microbatch(Some(&state)),
    );
    assert_eq!(first.len(), 300);
    let start = first.get(&1).copied().unwrap_or_default();
    // Let the clock move on, so that a new "now" would differ.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while wall_clock_ms() <= start + 1_000 + 300 {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock does not move"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = run(
        &generator("limit = 600\nevent_start = \"now\""),
        microbatch(Some(&state)),
    );
    assert!(second.keys().all(|&n| n > 300), "resumed after tweet 300");
    assert_eq!(second.len(), 300);
    for (&n, &at) in &second {
        assert_eq!(at, start + n as i64 - 1, "tweet {n}");
    }
}
