//! The `jsonl` sink writes one JSON object per tuple: generator (1000 tweets) →
//! hashtags → jsonl gives exactly one `{"hashtag": ...}` line per hashtag mention.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use squall::bolts::hashtags::HashtagsConfig;
use squall::component::registry::{BoltConfig, SpoutConfig};
use squall::sinks::jsonl::JsonlConfig;
use squall::spouts::generator::GeneratorSpoutConfig;
use squall::{LocalCluster, TopologyBuilder};

use crate::support::cli::*;
use crate::support::test_config;

const TWEETS: u64 = 1000;

/// Hashtag → occurrences in the JSON lines of `path`; every line must be an object with
/// exactly a string field `hashtag`.
fn read_hashtags(path: &Path) -> (usize, HashMap<String, u64>) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no output at {}: {e}", path.display()));
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "last line not terminated"
    );
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {} is not JSON ({e}): {line}", i + 1));
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("line {} is not an object: {line}", i + 1));
        assert_eq!(obj.len(), 1, "line {}: {line}", i + 1);
        let tag = obj["hashtag"]
            .as_str()
            .unwrap_or_else(|| panic!("line {} has no string `hashtag`: {line}", i + 1));
        *counts.entry(tag.to_string()).or_default() += 1;
        n += 1;
    }
    (n, counts)
}

#[test]
fn one_json_line_per_hashtag() {
    let truth = generator_hashtag_counts(42, TWEETS);
    let mentions: u64 = truth.values().sum();
    assert!(mentions > TWEETS / 2, "the generator makes hashtags");

    let dir = TempDir::new("jsonl");
    let out = dir.join("hashtags.jsonl");
    let source = GeneratorSpoutConfig {
        limit: TWEETS,
        rate: 0.0,
        seed: 42,
        ..GeneratorSpoutConfig::default()
    };
    let sink = JsonlConfig {
        path: out.clone(),
        append: false,
    };
    let mut b = TopologyBuilder::new("jsonl-test");
    b.spout_factory("source", source.build().expect("generator"), 1);
    b.bolt_factory(
        "hashtags",
        HashtagsConfig::default().build().expect("bolt"),
        2,
    )
    .shuffle("source");
    b.bolt_factory("sink", sink.build().expect("jsonl"), 1)
        .shuffle("hashtags");
    // A stale file is truncated, not appended to.
    std::fs::write(&out, "{\"hashtag\":\"stale\"}\n").expect("write");
    let run = LocalCluster::submit(b.build().expect("topology"), test_config()).expect("submit");
    assert!(
        run.wait_finished(Duration::from_secs(10)),
        "the bounded run did not finish"
    );
    let summary = run.join().expect("join");
    assert!(summary.completed);
    let sink_m = summary.metrics.component("sink").expect("sink metrics");
    assert_eq!(sink_m.executed, mentions);
    assert_eq!(sink_m.failed, 0);

    let (lines, counts) = read_hashtags(&out);
    assert_eq!(lines as u64, mentions, "JSON lines vs hashtag mentions");
    assert_eq!(counts, truth, "hashtags written vs the tweets' hashtags");
}

#[test]
fn cli_jsonl_sink_with_two_tasks_writes_one_file_per_task() {
    let truth = generator_hashtag_counts(42, TWEETS);
    let mentions: u64 = truth.values().sum();
    let dir = TempDir::new("jsonl-cli");
    let out = dir.join("tags.jsonl");
    let toml = format!(
        r#"name = "jsonl-cli"

[spouts.source]
type = "generator"
seed = 42
rate = 0
limit = {TWEETS}

[bolts.hashtags]
type = "hashtags"
inputs = [{{ from = "source" }}]

[bolts.sink]
type = "jsonl"
parallelism = 2
path = {path}
inputs = [{{ from = "hashtags", grouping = "fields", fields = ["hashtag"] }}]
"#,
        path = serde_json::to_string(&out.display().to_string()).expect("quote")
    );
    let topo = dir.write("t.toml", &toml);
    let report = dir.join("r.json");
    let run = squall(
        [
            "topology".to_string(),
            "run".into(),
            topo.display().to_string(),
            "--report".into(),
            report.display().to_string(),
            "--quiet".into(),
        ],
        Duration::from_secs(15),
    );
    run.assert_success();
    assert!(
        !out.exists(),
        "with 2 tasks the files are PATH.0 and PATH.1"
    );
    let (n0, c0) = read_hashtags(&dir.join("tags.jsonl.0"));
    let (n1, c1) = read_hashtags(&dir.join("tags.jsonl.1"));
    assert!(n0 > 0 && n1 > 0, "one task got nothing: {n0} / {n1}");
    assert_eq!((n0 + n1) as u64, mentions);
    // Fields grouping: a hashtag lives in one file only.
    for k in c0.keys() {
        assert!(!c1.contains_key(k), "{k} in both files");
    }
    let mut all = c0;
    all.extend(c1);
    assert_eq!(all, truth);
    let r = read_report(&report);
    assert_eq!(field_u64(&r, "bolts.sink.executed"), mentions);
    assert_eq!(field_u64(&r, "spouts.source.acked"), TWEETS);
}

/// The rankings of a bounded windowed run, written by the jsonl sink and in the report:
/// each carries its window, the real end and the start a window before it, and only the
/// last is final (its end the slide the run ended in, never i64::MAX) — in event and in
/// micro-batch mode.
#[test]
fn rankings_carry_their_real_windows_and_only_the_last_is_final() {
    const WINDOW_MS: i64 = 3_600_000;
    const SLIDE_MS: i64 = 250;
    const N: u64 = 6000;
    let truth = top_k(&generator_hashtag_counts(42, N), 10);
    for mode in ["event", "microbatch"] {
        let dir = TempDir::new("rankings");
        let out = dir.join("rankings.jsonl");
        // 1.5 s of tweets: several slides close before the end; a 1 h window keeps all.
        let toml = format!(
            r#"name = "rankings"

[spouts.source]
type = "generator"
seed = 42
rate = 4000
limit = {N}

[bolts.hashtags]
type = "hashtags"
parallelism = 2
inputs = [{{ from = "source" }}]

[bolts.counts]
type = "rolling_count"
parallelism = 2
window = "{WINDOW_MS}ms"
slide = "{SLIDE_MS}ms"
inputs = [{{ from = "hashtags", grouping = "fields", fields = ["hashtag"] }}]

[bolts.rank]
type = "rank"
parallelism = 2
inputs = [{{ from = "counts", grouping = "fields", fields = ["key"] }}]

[bolts.total_rank]
type = "total_rank"
inputs = [{{ from = "rank", grouping = "global" }}]

[bolts.sink]
type = "jsonl"
path = {path}
inputs = [{{ from = "total_rank", grouping = "global" }}]
"#,
            path = serde_json::to_string(&out.display().to_string()).expect("quote")
        );
        let topo = dir.write("t.toml", &toml);
        let report = dir.join("r.json");
        let started = now_ms();
        squall(
            [
                "topology",
                "run",
                &topo.display().to_string(),
                "--mode",
                mode,
                "--report",
                &report.display().to_string(),
                "--quiet",
            ],
            Duration::from_secs(60),
        )
        .assert_success();
        let ended = now_ms();
        let text = std::fs::read_to_string(&out).expect("the rankings file");
        let records: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert!(
            records.len() >= 2,
            "{mode}: windows closed during the run: {text}"
        );
        let last = check_rankings(&records, WINDOW_MS, SLIDE_MS, started..ended);
        assert_eq!(record_ranking(last), truth, "{mode}: the final ranking");
        let r = read_report(&report);
        assert_eq!(report_topk(&r), truth, "{mode}: {r}");
        assert_eq!(r["topk_window_start"], last["window_start"], "{mode}: {r}");
        assert_eq!(r["topk_window_end"], last["window_end"], "{mode}: {r}");
        assert_eq!(r["topk_final"], serde_json::json!(true), "{mode}: {r}");
    }
}
