//! Micro-batch mode's `batch_timeout`: generator → count by tweet id (one key per tweet,
//! state in a `--state-dir`), with a `chaos` sink on the counts that stalls once, a
//! moment into the run. A stall longer than the timeout, but shorter than twice it, times
//! the batch out: it is replayed once the sink gives it back, and every tweet is counted
//! exactly once. A sink stuck (practically) for ever stops the run with an error that
//! names the batch, the stuck task and the state directory; a restart on that directory
//! with a sink that does not stall resumes, and every tweet is counted exactly once.

use std::path::Path;
use std::time::Duration;

use crate::support::cli::{Output, TempDir, field_u64, read_report, squall, tail};
use crate::support::state::committed_counts;

const TWEETS: u64 = 30_000;
/// Tweets per second: the input lasts 3 s, the stall starts half a second in.
const RATE: u64 = 10_000;

/// The job with a sink that stalls for `stall_for` (`"0s"`: never) and `batch_timeout`.
fn topology(dir: &TempDir, stall_for: &str, batch_timeout: &str) -> String {
    let text = format!(
        r#"name = "batch-timeout"

[config]
batch_timeout = "{batch_timeout}"

[spouts.source]
type = "generator"
seed = 9
rate = {RATE}
limit = {TWEETS}

[bolts.counts]
type = "count"
parallelism = 2
field = "id"
inputs = [{{ from = "source", grouping = "fields", fields = ["id"] }}]

[bolts.stuck]
type = "chaos"
stall_after = "500ms"
stall_for = "{stall_for}"
inputs = [{{ from = "counts", grouping = "shuffle" }}]
"#
    );
    dir.write(&format!("stall-{stall_for}.toml"), &text)
        .display()
        .to_string()
}

fn run(file: &str, state: &Path, report: Option<&Path>) -> Output {
    let state = state.display().to_string();
    let mut args = vec![
        "topology".to_string(),
        "run".into(),
        file.into(),
        "--quiet".into(),
        "--mode".into(),
        "microbatch".into(),
        "--state-dir".into(),
        state,
        "--batch-interval".into(),
        "20ms".into(),
        "--max-batch".into(),
        "500".into(),
    ];
    if let Some(r) = report {
        args.extend(["--report".into(), r.display().to_string()]);
    }
    squall(args, Duration::from_secs(90))
}

/// Every tweet counted exactly once.
fn assert_exact(state: &Path, what: &str) {
    let (_, counts) = committed_counts(state, "counts", 2);
    let wrong: Vec<(&String, &u64)> = counts.iter().filter(|(_, n)| **n != 1).take(10).collect();
    assert!(
        wrong.is_empty(),
        "{what}: ids counted other than once: {wrong:?}"
    );
    assert_eq!(counts.len() as u64, TWEETS, "{what}: ids counted");
}

#[test]
fn a_sink_stalled_past_the_batch_timeout_has_its_batch_replayed_and_counts_stay_exact() {
    let dir = TempDir::new("batch-timeout");
    let state = dir.join("state");
    let report = dir.join("report.json");
    // Timed out 3 s after its start; the sink gives it back at about 4 s, before the
    // 6 s after which the run would stop.
    let file = topology(&dir, "4s", "3s");
    let out = run(&file, &state, Some(&report));
    out.assert_success();
    let r = read_report(&report);
    assert_eq!(field_u64(&r, "counters.stuck.stalls"), 1, "{r}");
    let timed_out = field_u64(&r, "counters.source.timed_out_batches");
    assert!(timed_out >= 1, "no batch timed out: {r}");
    assert!(
        field_u64(&r, "counters.source.batches_replayed") >= timed_out,
        "a timed-out batch is a replayed batch: {r}"
    );
    assert_eq!(field_u64(&r, "spouts.source.acked"), TWEETS, "{r}");
    let warning = out
        .stderr
        .lines()
        .find(|l| l.contains("timed out"))
        .unwrap_or_else(|| panic!("no timeout logged\n{}", tail(&out.stderr)));
    assert!(
        warning.contains("still running it: bolt stuck["),
        "the warning does not name the stuck task: {warning}"
    );
    eprintln!(
        "a 4 s stall, batch_timeout 3 s: {timed_out} batch(es) timed out, {} s",
        out.elapsed.as_secs_f64()
    );
    assert_exact(&state, "after the timeout and its replay");
}

#[test]
fn a_sink_stuck_for_ever_stops_the_run_with_a_clear_error_and_a_restart_resumes_exactly() {
    let dir = TempDir::new("batch-stuck");
    let state = dir.join("state");
    let file = topology(&dir, "1h", "1s");
    let out = run(&file, &state, None);
    out.assert_failure();
    assert_eq!(out.code(), Some(1), "{}", tail(&out.stderr));
    assert!(!out.stderr.contains("panicked"), "{}", tail(&out.stderr));
    // Timed out after 1 s, given up 1 s later, the other threads given 1 s: well within
    // the time the test allows, whatever the load.
    assert!(
        out.elapsed < Duration::from_secs(30),
        "the run took {:?} to stop",
        out.elapsed
    );
    let last = out
        .stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line\n{}", tail(&out.stderr)));
    let (txid, counts) = committed_counts(&state, "counts", 2);
    for want in [
        "is stuck",
        "batch_timeout 1s",
        "still running it: bolt stuck[",
        &state.display().to_string(),
        &format!("resumes after batch {txid}"),
    ] {
        assert!(
            last.contains(want),
            "the error does not say {want:?}: {last}"
        );
    }
    assert!(
        out.stderr.contains("timed out"),
        "the timeout before it was not logged\n{}",
        tail(&out.stderr)
    );
    assert!(txid > 0, "nothing was committed before the stall");
    let twice: Vec<(&String, &u64)> = counts.iter().filter(|(_, n)| **n != 1).take(10).collect();
    assert!(twice.is_empty(), "ids counted more than once: {twice:?}");
    assert!(
        (counts.len() as u64) < TWEETS,
        "the run stopped after the input ended ({} ids)",
        counts.len()
    );

    // The same job with a sink that does not stall, on the same state directory.
    let file = topology(&dir, "0s", "1s");
    let again = run(&file, &state, None);
    again.assert_success();
    assert_exact(&state, "after the restart");
}
