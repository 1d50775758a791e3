//! Micro-batch mode in this process: the same topology gives the same final top-k in both
//! modes; a restart resumes after the last committed batch with exact counts; commits are
//! in txid order (each once) with batches in flight and failures; a spout that cannot
//! replay gets each message acked once, after its batch commits.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use squall::bolts::chaos::ChaosConfig;
use squall::bolts::count::CountConfig;
use squall::bolts::hashtags::HashtagsConfig;
use squall::bolts::rank::RankConfig;
use squall::bolts::tokenize::TokenizeConfig;
use squall::bolts::total_rank::TotalRankConfig;
use squall::component::registry::{BoltConfig, SpoutConfig};
use squall::component::transactional::{BatchCut, BatchInfo, TransactionalSpout};
use squall::config::Mode;
use squall::spouts::generator::GeneratorSpoutConfig;
use squall::{
    ComponentResult, Config, Fields, LocalCluster, OutputDeclarer, Spout, SpoutCollector,
    SpoutStatus, Topology, TopologyBuilder,
};

use crate::support;
use crate::support::cli::{TempDir, generator_hashtag_counts, top_k};
use crate::support::state::committed_counts;
use crate::support::{CountingSpout, NullBolt, lock};

const SEED: u64 = 11;

/// generator → tokenize → hashtags → count → rank → total_rank (+ chaos beside count).
fn hashtag_topology(limit: u64, rate: f64, fail_batches: f64) -> Topology {
    let source = GeneratorSpoutConfig {
        limit,
        rate,
        seed: SEED,
        ..Default::default()
    };
    let build = |r: Result<
        squall::component::BoltFactory,
        squall::component::registry::BuildError,
    >| { r.unwrap_or_else(|e| panic!("build: {e}")) };
    let mut b = TopologyBuilder::new("mb");
    b.spout_factory(
        "source",
        source.build().unwrap_or_else(|e| panic!("{e}")),
        2,
    );
    b.bolt_factory("tokenize", build(TokenizeConfig::default().build()), 2)
        .local_or_shuffle("source");
    b.bolt_factory("hashtags", build(HashtagsConfig::default().build()), 2)
        .local_or_shuffle("tokenize");
    b.bolt_factory("counts", build(CountConfig::default().build()), 2)
        .fields("hashtags", ["hashtag"]);
    b.bolt_factory("rank", build(RankConfig::default().build()), 2)
        .fields("counts", ["key"]);
    b.bolt_factory("total_rank", build(TotalRankConfig::default().build()), 1)
        .global("rank");
    if fail_batches > 0.0 {
        let chaos = ChaosConfig {
            fail_batches,
            ..Default::default()
        };
        b.bolt_factory("chaos", build(chaos.build()), 1)
            .shuffle("hashtags");
    }
    b.build().unwrap_or_else(|e| panic!("topology: {e}"))
}

fn microbatch(state_dir: Option<&Path>) -> Config {
    Config {
        workers: 2,
        mode: Mode::Microbatch,
        batch_interval: Duration::from_millis(10),
        max_batch: 500,
        batches_in_flight: 3,
        state_dir: state_dir.map(Path::to_path_buf),
        drain_timeout: Duration::from_secs(10),
        ..Config::default()
    }
}

/// Runs to the end; returns the last top-k the total_rank bolt published.
fn final_topk(t: Topology, config: Config) -> Vec<(String, u64)> {
    let run = LocalCluster::submit(t, config).unwrap_or_else(|e| panic!("submit: {e}"));
    let board = run.registry().topk;
    assert!(
        run.wait_finished(Duration::from_secs(120)),
        "the bounded run did not finish: {}",
        support::summary_line(&run.metrics())
    );
    run.join().unwrap_or_else(|e| panic!("join: {e}"));
    board.get().unwrap_or_default()
}

#[test]
fn event_and_microbatch_modes_give_the_same_final_top_k() {
    let n = 20_000;
    let truth = top_k(&generator_hashtag_counts(SEED, n), 10);
    let event = final_topk(
        hashtag_topology(n, 0.0, 0.0),
        Config {
            workers: 2,
            ..Config::default()
        },
    );
    let micro = final_topk(hashtag_topology(n, 0.0, 0.0), microbatch(None));
    assert_eq!(event, truth, "event mode");
    assert_eq!(micro, truth, "micro-batch mode");
}

#[test]
fn a_restart_resumes_after_the_last_committed_batch_with_exact_counts() {
    let n = 30_000;
    let dir = TempDir::new("mb-restart");
    let state = dir.path().join("state");
    // First run: paced, stopped part-way (a graceful stop: in-flight batches commit).
    let run = LocalCluster::submit(hashtag_topology(n, 20_000.0, 0.2), microbatch(Some(&state)))
        .unwrap_or_else(|e| panic!("submit: {e}"));
    assert!(
        support::wait_until(Duration::from_secs(30), || {
            run.metrics().spout_totals().1 >= 5_000
        }),
        "no progress: {}",
        support::summary_line(&run.metrics())
    );
    run.stop().unwrap_or_else(|e| panic!("stop: {e}"));
    let partial: u64 = committed_counts(&state, "counts", 2).1.values().sum();
    let all: u64 = generator_hashtag_counts(SEED, n).values().sum();
    assert!(partial > 0 && partial < all, "partial {partial} of {all}");
    // Second run: finishes the input; counts continue from the committed state.
    let mut t = microbatch(Some(&state));
    t.batch_interval = Duration::from_millis(5);
    final_topk(hashtag_topology(n, 0.0, 0.2), t);
    let got: BTreeMap<String, u64> = committed_counts(&state, "counts", 2)
        .1
        .into_iter()
        .collect();
    let want: BTreeMap<String, u64> = generator_hashtag_counts(SEED, n).into_iter().collect();
    assert_eq!(
        got, want,
        "persisted counts after a restart and 20% failed batches"
    );
}

#[test]
fn a_state_dir_of_another_layout_is_refused_with_a_clear_error() {
    let dir = TempDir::new("mb-layout");
    let state = dir.path().join("state");
    final_topk(hashtag_topology(100, 0.0, 0.0), microbatch(Some(&state)));
    let mut b = TopologyBuilder::new("other");
    b.spout_factory(
        "source",
        GeneratorSpoutConfig::default()
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
        1,
    );
    let t = b.build().unwrap_or_else(|e| panic!("{e}"));
    let err = LocalCluster::submit(t, microbatch(Some(&state)))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("layout") && err.contains("--state-dir"),
        "expected a layout error, got: {err:?}"
    );
}

/// A transactional spout of numbers that records the order of its commits.
#[derive(Clone, Default)]
struct Numbers {
    limit: u64,
    commits: Arc<Mutex<Vec<u64>>>,
}

impl Spout for Numbers {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["n"]));
    }

    fn next_tuple(&mut self, _out: &mut SpoutCollector<'_>) -> SpoutStatus {
        SpoutStatus::Exhausted
    }

    fn transactional(&mut self) -> Option<&mut dyn TransactionalSpout> {
        Some(self)
    }
}

impl TransactionalSpout for Numbers {
    fn emit_batch(
        &mut self,
        _batch: &BatchInfo,
        prev: Option<&serde_json::Value>,
        max: usize,
        out: &mut SpoutCollector<'_>,
    ) -> Result<BatchCut, squall::ComponentError> {
        let from = prev.and_then(|p| p["to"].as_u64()).unwrap_or(1);
        let to = (from + max.min(7) as u64).min(self.limit + 1);
        for n in from..to {
            out.emit(squall::values![n as i64], None)?;
        }
        Ok(BatchCut {
            meta: serde_json::json!({ "from": from, "to": to }),
            exhausted: to > self.limit,
        })
    }

    fn replay_batch(
        &mut self,
        _batch: &BatchInfo,
        meta: &serde_json::Value,
        out: &mut SpoutCollector<'_>,
    ) -> ComponentResult {
        let (from, to) = (
            meta["from"].as_u64().unwrap_or(0),
            meta["to"].as_u64().unwrap_or(0),
        );
        for n in from..to {
            out.emit(squall::values![n as i64], None)?;
        }
        Ok(())
    }

    fn commit_batch(&mut self, txid: u64, _meta: &serde_json::Value) {
        lock(&self.commits).push(txid);
    }
}

#[test]
fn commits_are_in_txid_order_each_once_with_batches_in_flight_and_failures() {
    let spout = Numbers {
        limit: 2_000,
        ..Default::default()
    };
    let commits = spout.commits.clone();
    let mut b = TopologyBuilder::new("order");
    b.spout("source", spout, 1);
    b.bolt("sink", NullBolt, 3).shuffle("source");
    let chaos = ChaosConfig {
        fail_batches: 0.3,
        ..Default::default()
    };
    b.bolt_factory("chaos", chaos.build().unwrap_or_else(|e| panic!("{e}")), 2)
        .shuffle("source");
    let t = b.build().unwrap_or_else(|e| panic!("{e}"));
    let mut config = microbatch(None);
    config.batch_interval = Duration::from_millis(1);
    config.batches_in_flight = 4;
    let summary = support::run(t, config, Duration::from_secs(60));
    let commits = lock(&commits).clone();
    let expected: Vec<u64> = (1..=commits.len() as u64).collect();
    assert_eq!(commits, expected, "commits must be 1, 2, 3, ... each once");
    assert!(commits.len() >= 2_000 / 7, "{} commits", commits.len());
    let src = &summary.metrics.components["source"];
    assert_eq!(src.acked, 2_000, "every number committed once");
    assert!(
        src.counters.get("batches_replayed").copied().unwrap_or(0) > 0,
        "the chaos bolt should have failed some batches"
    );
}

#[test]
fn a_spout_that_cannot_replay_gets_each_message_acked_once_after_its_batch_commits() {
    let mut spout = CountingSpout::new(3_000);
    spout.burst = 10;
    let log = spout.log.clone();
    let mut b = TopologyBuilder::new("buffered");
    b.spout("source", spout, 2);
    b.bolt("sink", NullBolt, 2).shuffle("source");
    let chaos = ChaosConfig {
        fail_batches: 0.25,
        ..Default::default()
    };
    b.bolt_factory("chaos", chaos.build().unwrap_or_else(|e| panic!("{e}")), 1)
        .shuffle("source");
    let t = b.build().unwrap_or_else(|e| panic!("{e}"));
    support::run(t, microbatch(None), Duration::from_secs(60));
    let log = lock(&log);
    log.assert_each_acked_once(3_000);
    assert!(
        log.failed.is_empty(),
        "a failed batch is replayed from memory, not failed back to the spout"
    );
}

/// Keeps every tuple it gets (a bolt without a columnar path).
#[derive(Clone, Default)]
struct Keep {
    rows: Arc<Mutex<Vec<String>>>,
}

impl squall::Bolt for Keep {
    fn declare_outputs(&self, _out: &mut OutputDeclarer) {}

    fn execute(
        &mut self,
        input: squall::Tuple,
        _out: &mut squall::BoltCollector<'_>,
    ) -> ComponentResult {
        let fields: Vec<&str> = input.fields().names().collect();
        let row = format!(
            "{fields:?} {:?} from {}",
            input.values(),
            input.source_component()
        );
        lock(&self.rows).push(row);
        Ok(())
    }
}

/// What `Keep` got from a generator → (tokenize, keep_tweets) topology, sorted.
fn kept(config: Config) -> (Vec<String>, Vec<String>) {
    let (tweets, words) = (Keep::default(), Keep::default());
    let (t_rows, w_rows) = (tweets.rows.clone(), words.rows.clone());
    let source = GeneratorSpoutConfig {
        limit: 500,
        seed: SEED,
        ..Default::default()
    };
    let mut b = TopologyBuilder::new("keep");
    b.spout_factory(
        "source",
        source.build().unwrap_or_else(|e| panic!("{e}")),
        2,
    );
    b.bolt("keep_tweets", tweets, 1).shuffle("source");
    b.bolt_factory(
        "tokenize",
        TokenizeConfig::default()
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
        2,
    )
    .local_or_shuffle("source");
    b.bolt("keep_words", words, 2).fields("tokenize", ["word"]);
    let t = b.build().unwrap_or_else(|e| panic!("{e}"));
    support::run(t, config, Duration::from_secs(60));
    let mut t_rows = lock(&t_rows).clone();
    let mut w_rows = lock(&w_rows).clone();
    t_rows.sort();
    w_rows.sort();
    (t_rows, w_rows)
}

#[test]
fn bolts_without_a_columnar_path_get_the_same_tuples_as_in_event_mode() {
    // The generator and tokenize run columnar in micro-batch mode; `keep_*` do not, so
    // the rows reach them as tuples: they must be exactly event mode's tuples.
    let event = kept(Config {
        workers: 2,
        ..Config::default()
    });
    let micro = kept(microbatch(None));
    assert_eq!(event.0.len(), 500, "every tweet once");
    assert!(event.1.len() > 500 * 5, "{} words", event.1.len());
    assert_eq!(micro.0, event.0, "tweets");
    assert_eq!(micro.1, event.1, "words");
}
