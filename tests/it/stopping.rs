//! Stopping, failing and reporting as a user expects, with the real binary: a second
//! signal stops at once; a sink blocked on its output does not hold the stop past its
//! timeout; a file source that could not do its job fails the run (the socket's refused
//! connection: the `socket` module); a report path that cannot
//! be written is refused before the run; task counts beyond the limit are refused;
//! per-line warnings are rate-limited.

use std::process::Stdio;
use std::time::Duration;

use crate::support::cli::*;

/// Generator → console, printing every tuple: with stdout a pipe nobody reads, the
/// console sink blocks once the pipe is full, and its tuples' trees stay in flight.
fn blocked_sink_topology(dir: &TempDir, drain: &str) -> std::path::PathBuf {
    dir.write(
        "t.toml",
        &format!(
            r#"name = "blocked"

[config]
workers = 2
drain_timeout = "{drain}"

[spouts.source]
type = "generator"
limit = 0

[bolts.sink]
type = "console"
inputs = [{{ from = "source" }}]
"#
        ),
    )
}

/// Starts the blocked-sink topology with stdout piped and never read, and waits for a
/// status line (the run is going).
fn start_blocked(dir: &TempDir, drain: &str, mode: &str) -> (Running, std::path::PathBuf) {
    let file = blocked_sink_topology(dir, drain);
    let report = dir.join("r.json");
    let mut run = Running::start(
        [
            "topology",
            "run",
            &file.display().to_string(),
            "--mode",
            mode,
            "--report",
            &report.display().to_string(),
        ],
        Stdio::piped(),
    );
    run.wait_line("status line", Duration::from_secs(20), |l| {
        l.contains("tuples/s") && l.contains("pending")
    });
    (run, report)
}

fn second_signal_stops_at_once(mode: &str, signal: &str, code: i32) {
    let dir = TempDir::new("second-signal");
    // A drain that would last 60 s: the sink never acks.
    let (mut run, report) = start_blocked(&dir, "60s", mode);
    run.signal(signal);
    run.wait_line("drain notice", Duration::from_secs(10), |l| {
        l.contains("stopping (signal)")
    });
    run.signal(signal);
    let status = run.wait_exit(Duration::from_secs(10));
    let err = run.stderr_text();
    assert_eq!(status.code(), Some(code), "exit status {status:?}:\n{err}");
    let line = run
        .stderr
        .seen
        .iter()
        .find(|l| l.contains("signal during the drain: stopped at once"))
        .unwrap_or_else(|| panic!("no stop-at-once line:\n{err}"));
    let abandoned: u64 = line
        .split("abandoned ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no abandoned count in: {line}"));
    assert!(abandoned > 0, "what was in flight is said: {line}");
    let r = read_report(&report);
    assert_eq!(
        field_u64(&r, "counters.source.abandoned"),
        abandoned,
        "the report counts what was abandoned"
    );
}

#[test]
fn a_second_sigint_during_the_drain_stops_at_once() {
    second_signal_stops_at_once("event", "-INT", 130);
}

#[test]
fn a_second_sigterm_during_the_drain_stops_at_once_in_microbatch_mode() {
    second_signal_stops_at_once("microbatch", "-TERM", 143);
}

fn blocked_sink_does_not_hold_the_stop(mode: &str) {
    let dir = TempDir::new("blocked-sink");
    let (mut run, report) = start_blocked(&dir, "1s", mode);
    run.signal("-TERM");
    // drain_timeout 1 s, then 5 s for the tasks, then 2 s for the threads.
    let status = run.wait_exit(Duration::from_secs(20));
    let err = run.stderr_text();
    assert!(status.success(), "exit status {status:?}:\n{err}");
    assert!(err.contains("drain timed out"), "{err}");
    let r = read_report(&report);
    assert!(field_u64(&r, "spouts.source.emitted") > 0, "{r}");
}

#[test]
fn a_sink_blocked_on_stdout_does_not_hold_the_stop_and_the_report_is_written() {
    blocked_sink_does_not_hold_the_stop("event");
}

#[test]
fn a_sink_blocked_on_stdout_does_not_hold_a_microbatch_stop() {
    blocked_sink_does_not_hold_the_stop("microbatch");
}

fn file_spout(dir: &TempDir, path: &std::path::Path, format: &str) -> std::path::PathBuf {
    dir.write(
        "t.toml",
        &format!(
            r#"name = "file"

[spouts.source]
type = "file"
path = "{}"
format = "{format}"

[bolts.sink]
type = "null"
inputs = [{{ from = "source" }}]
"#,
            path.display()
        ),
    )
}

#[test]
fn a_file_spout_given_a_directory_fails_the_run() {
    let dir = TempDir::new("file-dir");
    let file = file_spout(&dir, dir.path(), "text");
    let report = dir.join("r.json");
    for mode in ["event", "microbatch"] {
        let out = squall(
            [
                "topology",
                "run",
                &file.display().to_string(),
                "--mode",
                mode,
                "--report",
                &report.display().to_string(),
            ],
            Duration::from_secs(30),
        );
        out.assert_failure();
        assert!(
            out.stderr.contains("error: ") && out.stderr.contains("Is a directory"),
            "{mode}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("every task finished"),
            "{mode}: {}",
            out.stderr
        );
        assert!(
            !report.exists(),
            "{mode}: the report path's probe left no file behind"
        );
    }
}

#[test]
fn an_unwritable_report_path_is_refused_before_the_run() {
    let dir = TempDir::new("report-path");
    let missing = dir.join("no-such-dir").join("r.json");
    for report in [missing.as_path(), dir.path()] {
        let out = squall(
            [
                "topology",
                "run",
                "topologies/trending-hashtags.toml",
                "--duration",
                "60s",
                "--report",
                &report.display().to_string(),
            ],
            Duration::from_secs(20),
        );
        out.assert_failure();
        assert!(
            out.stderr.starts_with(&format!(
                "error: cannot write the report to {}:",
                report.display()
            )),
            "{}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("squall: running"),
            "refused before the run started: {}",
            out.stderr
        );
    }
}

#[test]
fn run_refuses_a_parallelism_beyond_the_limit_before_starting() {
    let out = squall(
        [
            "topology",
            "run",
            "topologies/trending-hashtags.toml",
            "--set",
            "bolts.counts.parallelism=100000",
            "--duration",
            "60s",
        ],
        Duration::from_secs(20),
    );
    out.assert_failure();
    assert!(
        out.stderr.contains(
            "`bolts.counts.parallelism`: component `counts` has parallelism 100000; a component may have at most 1024 tasks"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn malformed_lines_are_counted_each_but_warned_about_at_a_limited_rate() {
    let dir = TempDir::new("malformed");
    let n = 200_000;
    let data = dir.write("bad.jsonl", &"{not json\n".repeat(n));
    let file = file_spout(&dir, &data, "tweets");
    let report = dir.join("r.json");
    let out = squall(
        [
            "topology",
            "run",
            &file.display().to_string(),
            "--quiet",
            "--report",
            &report.display().to_string(),
        ],
        Duration::from_secs(60),
    );
    out.assert_success();
    let warnings = out
        .stderr
        .lines()
        .filter(|l| l.contains("malformed tweet skipped"))
        .count();
    // The first at once, then at most one every 5 s.
    let most = 1 + out.elapsed.as_secs() as usize / 5 + 1;
    assert!(
        (1..=most).contains(&warnings),
        "{warnings} warnings in {:?}:\n{}",
        out.elapsed,
        tail(&out.stderr)
    );
    let r = read_report(&report);
    assert_eq!(
        field_u64(&r, "counters.source.malformed_lines"),
        n as u64,
        "every malformed line is counted"
    );
}
