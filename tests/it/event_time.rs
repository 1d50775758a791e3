//! Event time end to end: a generator whose tweets are written out of order, counted by
//! the windows of when they were written. Every ranking is the top-10 of exactly the
//! tweets written in its window — whatever order they arrived in and however the tasks
//! interleaved — and the last one of the bounded run is final.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use squall::tweet::generator::{GeneratorConfig, TweetGenerator};

use crate::support::cli::{HASHTAG_BOLTS, TempDir, read_report, record_ranking, squall, top_k};

const N: u64 = 30_000;
const WINDOW_MS: i64 = 4_000;
const SLIDE_MS: i64 = 2_000;
/// 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;

/// The generator's options of these runs (shared by the spout and the truth).
const GENERATOR: &str = r#"seed = 42
event_start = "2026-01-01T00:00:00Z"
event_interval = "1ms""#;

/// How far out of order the tweets of the exact run are written.
const DISORDER: &str = "700ms";

/// Per window end, the hashtag counts of the tweets written in `[end − window, end)`.
fn truth() -> BTreeMap<i64, HashMap<String, u64>> {
    let cfg: GeneratorConfig =
        toml::from_str(&format!("{GENERATOR}\ndisorder = \"{DISORDER}\"")).unwrap();
    let g = TweetGenerator::new(cfg).unwrap();
    let mut windows: BTreeMap<i64, HashMap<String, u64>> = BTreeMap::new();
    for n in 1..=N {
        let at = g.created_at_ms(n);
        let text = g.tweet_at(n).text;
        let slot = at.div_euclid(SLIDE_MS) * SLIDE_MS;
        let mut end = slot + SLIDE_MS;
        while end <= slot + WINDOW_MS {
            let w = windows.entry(end).or_default();
            squall::text::hashtags::for_each_hashtag(&text, |h| {
                *w.entry(h.to_string()).or_insert(0) += 1
            });
            end += SLIDE_MS;
        }
    }
    windows
}

fn topology(dir: &TempDir, disorder: &str, lag: &str, extra_counts: &str) -> std::path::PathBuf {
    let out = dir.join("rankings.jsonl");
    let late = dir.join("late.jsonl");
    let toml = format!(
        r#"name = "event-time"

[spouts.source]
type = "generator"
parallelism = 2
limit = {N}
{GENERATOR}
disorder = "{disorder}"
event_time = {{ field = "created_at", lag = "{lag}" }}
{HASHTAG_BOLTS}
[bolts.counts]
type = "rolling_count"
parallelism = 2
window = "{WINDOW_MS}ms"
slide = "{SLIDE_MS}ms"
time = "event"
{extra_counts}
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

[bolts.late]
type = "jsonl"
path = {late_path}
inputs = [{{ from = "counts", stream = "late" }}]
"#,
        path = serde_json::to_string(&out.display().to_string()).unwrap(),
        late_path = serde_json::to_string(&late.display().to_string()).unwrap(),
    );
    dir.write("t.toml", &toml)
}

fn records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Runs `file` in `mode` (`event` or `microbatch`, whose batches hold at most 500
/// tweets per spout task: about half a second of event time each); returns the report.
fn run(dir: &TempDir, file: &std::path::Path, mode: &str) -> serde_json::Value {
    let report = dir.join("r.json");
    let (file, report_arg) = (file.display().to_string(), report.display().to_string());
    let mut args = vec!["topology", "run", &file, "--mode", mode];
    if mode == "microbatch" {
        args.extend(["--max-batch", "500"]);
    }
    args.extend(["--report", &report_arg, "--quiet"]);
    squall(args, Duration::from_secs(120)).assert_success();
    read_report(&report)
}

/// With a lag as large as the disorder nothing is late: every window fires once, in
/// order, with the exact top-10 of the tweets written in it; windows fire during the run
/// (on the watermark), and the last is final.
#[test]
fn every_event_time_window_is_the_top_10_of_the_tweets_written_in_it() {
    exact_windows("event");
}

/// The same in micro-batch mode: each batch carries the watermark at its cut.
#[test]
fn microbatch_event_time_windows_are_the_top_10_of_the_tweets_written_in_them() {
    exact_windows("microbatch");
}

fn exact_windows(mode: &str) {
    let dir = TempDir::new("event-time");
    let file = topology(&dir, DISORDER, DISORDER, "");
    let report = run(&dir, &file, mode);
    let truth = truth();
    let got = records(&dir.join("rankings.jsonl"));
    assert_eq!(
        got.len(),
        truth.len(),
        "one table per window that holds a tweet: {got:?}"
    );
    for (r, (end, counts)) in got.iter().zip(&truth) {
        assert_eq!(r["window_end"].as_i64(), Some(*end), "{r}");
        assert_eq!(r["window_start"].as_i64(), Some(end - WINDOW_MS), "{r}");
        assert_eq!(r["update"], serde_json::json!(false), "{r}");
        assert_eq!(record_ranking(r), top_k(counts, 10), "window ending {end}");
    }
    let finals: Vec<bool> = got.iter().map(|r| r["final"] == true).collect();
    assert_eq!(finals.iter().filter(|f| **f).count(), 1);
    assert_eq!(finals.last(), Some(&true));
    assert!(
        got.first()
            .and_then(|r| r["window_end"].as_i64())
            .is_some_and(|e| e <= START_MS + 2 * SLIDE_MS),
        "the first window is the first of the input"
    );
    assert!(
        records(&dir.join("late.jsonl")).is_empty(),
        "nothing is late"
    );
    assert_eq!(report["counters"]["counts"].get("late"), None, "{report}");
    assert_eq!(report["topk_final"], serde_json::json!(true));
}

/// Tweets up to 20 s out of order with no lag: many are behind the watermark; within
/// `allowed_lateness` they update their windows (tables marked `update`), beyond it they
/// go to the `late` stream, each counted and acked.
#[test]
fn late_tweets_update_their_windows_or_go_to_the_late_stream() {
    late_tweets("event");
}

#[test]
fn microbatch_late_tweets_update_their_windows_or_go_to_the_late_stream() {
    late_tweets("microbatch");
}

fn late_tweets(mode: &str) {
    let dir = TempDir::new("event-time-late");
    let file = topology(&dir, "20s", "0ms", "allowed_lateness = \"3s\"");
    let report = run(&dir, &file, mode);
    let got = records(&dir.join("rankings.jsonl"));
    let updates = got.iter().filter(|r| r["update"] == true).count();
    assert!(updates > 0, "no window was updated: {}", got.len());
    let late = records(&dir.join("late.jsonl"));
    let counted = report["counters"]["counts"]["late"].as_u64().unwrap_or(0);
    assert!(counted > 0, "nothing late: {report}");
    assert_eq!(
        late.len() as u64,
        counted,
        "every late tuple is on the late stream"
    );
    for l in &late {
        assert!(l["event_time"].as_i64().is_some(), "{l}");
    }
    // Tweets were acked, late or not.
    assert_eq!(report["spouts"]["source"]["acked"].as_u64(), Some(N));
}
