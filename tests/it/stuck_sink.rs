//! A stuck sink: generator → tokenize → hashtags → count → jsonl, with a `chaos` sink beside
//! the jsonl one that blocks for STALL once, a moment into the run. `message_timeout` is
//! shorter than the stall, so in event mode trees time out and are replayed. Whatever
//! happens meanwhile, the run ends with every count: exact in micro-batch mode, at least
//! the truth (and every key present) in event mode; and while it is stuck, what is queued
//! stays bounded (the spouts' pending trees never pass `max_spout_pending`, RSS stays
//! within a bound). The 30-second version is `benches/stuck-sink.sh`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::support::cli::{
    HASHTAG_BOLTS, TempDir, field, field_u64, generator_hashtag_counts, read_report,
};
use crate::support::http::serve_args;
use crate::support::sampler::{Sample, sample_until_exit};

const SEED: u64 = 7;
const TWEETS: u64 = 60_000;
const RATE: u64 = 10_000;
const MAX_PENDING: u64 = 200;
const SPOUT_TASKS: u64 = 2;
const STALL: Duration = Duration::from_secs(6);
/// Micro-batch mode: the most tuples per spout task in a batch (`--max-batch`), and the
/// default batches in flight.
const MAX_BATCH: &str = "2000";
const BATCHES_IN_FLIGHT: u64 = 2;

fn topology_file(dir: &TempDir, out: &Path) -> String {
    let text = format!(
        r#"name = "stuck-sink"

[config]
max_spout_pending = {MAX_PENDING}
message_timeout = "2s"

[spouts.source]
type = "generator"
parallelism = {SPOUT_TASKS}
seed = {SEED}
rate = {RATE}
limit = {TWEETS}
{HASHTAG_BOLTS}
[bolts.counts]
type = "count"
parallelism = 2
inputs = [{{ from = "hashtags", grouping = "fields", fields = ["hashtag"] }}]

[bolts.out]
type = "jsonl"
path = "{}"
inputs = [{{ from = "counts", grouping = "shuffle" }}]

[bolts.stuck]
type = "chaos"
stall_after = "1500ms"
stall_for = "{}s"
inputs = [{{ from = "counts", grouping = "shuffle" }}]
"#,
        out.display(),
        STALL.as_secs()
    );
    dir.write("stuck-sink.toml", &text).display().to_string()
}

/// The last (largest) count of each key in the jsonl output.
fn final_counts(path: &Path) -> HashMap<String, u64> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no output at {}: {e}", path.display()));
    let mut out: HashMap<String, u64> = HashMap::new();
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let (Some(k), Some(n)) = (v["key"].as_str(), v["count"].as_u64()) else {
            panic!("not a count: {line}");
        };
        let e = out.entry(k.to_string()).or_default();
        *e = (*e).max(n);
    }
    out
}

struct Run {
    report: serde_json::Value,
    counts: HashMap<String, u64>,
    samples: Vec<Sample>,
}

fn run(mode: &str) -> Run {
    let dir = TempDir::new("stuck-sink");
    let out = dir.join("counts.jsonl");
    let report = dir.join("report.json");
    let file = topology_file(&dir, &out);
    let report_arg = report.display().to_string();
    let mut args = vec![
        "topology",
        "run",
        &file,
        "--quiet",
        "--http",
        "127.0.0.1:0",
        "--mode",
        mode,
        "--report",
        &report_arg,
    ];
    if mode == "microbatch" {
        args.extend(["--batch-interval", "100ms", "--max-batch", MAX_BATCH]);
    }
    let mut served = serve_args(&args);
    let (samples, ok) = sample_until_exit(
        &mut served,
        Duration::from_millis(250),
        Duration::from_secs(90),
    );
    assert!(ok, "squall failed ({mode} mode)");
    Run {
        report: read_report(&report),
        counts: final_counts(&out),
        samples,
    }
}

/// What both modes show: the sink stalled once, the queue stayed bounded meanwhile, every
/// tweet was acked in the end.
fn check_bounded(mode: &str, r: &Run) -> (u64, f64) {
    assert_eq!(
        field_u64(&r.report, "counters.stuck.stalls"),
        1,
        "{mode}: the chaos sink should have stalled once: {}",
        r.report
    );
    assert_eq!(
        field_u64(&r.report, "spouts.source.acked"),
        TWEETS,
        "{mode}"
    );
    // Event mode: trees in flight, at most max_spout_pending per spout task; micro-batch
    // mode: tuples of uncommitted batches, at most max_batch per spout task and batch in
    // flight.
    let max_pending = r
        .samples
        .iter()
        .filter_map(|s| s.totals.map(|t| t.pending))
        .max()
        .unwrap_or(0);
    let bound = if mode == "event" {
        MAX_PENDING * SPOUT_TASKS
    } else {
        BATCHES_IN_FLIGHT * MAX_BATCH.parse::<u64>().unwrap_or(0) * SPOUT_TASKS
    };
    assert!(
        max_pending <= bound,
        "{mode}: {max_pending} pending > {bound}"
    );
    let peak_mib = r.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 / 1024.0;
    // What it takes without a stall is ~40–70 MiB; holding the whole input (60 000
    // tweets and their words) would take far more. The stall must not make it grow.
    assert!(peak_mib < 160.0, "{mode}: peak RSS {peak_mib:.0} MiB");
    (max_pending, peak_mib)
}

#[test]
fn a_stuck_sink_in_event_mode_times_trees_out_replays_them_and_loses_no_count() {
    let truth = generator_hashtag_counts(SEED, TWEETS);
    let r = run("event");
    let (pending, peak) = check_bounded("event", &r);
    let timed_out = field_u64(&r.report, "counters.source.timed_out");
    let failed = field_u64(&r.report, "spouts.source.failed");
    eprintln!(
        "stuck sink, event mode: {timed_out} trees timed out, {failed} failed, max pending {pending}, peak RSS {peak:.0} MiB, {} s",
        field(&r.report, "duration_s")
    );
    assert!(
        timed_out > 0,
        "no tree timed out during a {STALL:?} stall with message_timeout 2s"
    );
    let mut missing = Vec::new();
    let mut short = Vec::new();
    for (k, &n) in &truth {
        match r.counts.get(k) {
            None => missing.push(k.clone()),
            Some(&c) if c < n => short.push(format!("{k}: {c} < {n}")),
            Some(_) => {}
        }
    }
    assert!(missing.is_empty(), "keys never counted: {missing:?}");
    assert!(short.is_empty(), "counts below the truth: {short:?}");
}

#[test]
fn a_stuck_sink_in_microbatch_mode_delays_batches_and_every_count_is_exact() {
    let truth = generator_hashtag_counts(SEED, TWEETS);
    let r = run("microbatch");
    let (pending, peak) = check_bounded("microbatch", &r);
    eprintln!(
        "stuck sink, micro-batch mode: max pending {pending}, peak RSS {peak:.0} MiB, {} s",
        field(&r.report, "duration_s")
    );
    assert_eq!(r.counts, truth, "final counts after the stall");
}
