//! The README's main command, shortened: the trending-hashtags job on the generator at
//! its default rate prints a live top-10 table every slide and a status line every
//! second, stops at `--duration`, and exits 0.

use std::time::Duration;

use crate::support::cli::*;

const ARGS: [&str; 9] = [
    "topology",
    "run",
    "topologies/trending-hashtags.toml",
    "--duration",
    "4s",
    "--set",
    "bolts.counts.window=2s",
    "--set",
    "bolts.counts.slide=1s",
];

/// `"  1. #tag      123"` → `("#tag", 123)`.
fn row(line: &str) -> Option<(&str, u64)> {
    let mut w = line.split_whitespace();
    let _rank = w.next()?.strip_suffix('.')?;
    let tag = w.next().filter(|t| t.starts_with('#'))?;
    let count = w.next()?.parse().ok()?;
    Some((tag, count))
}

/// The tables of a console sink's output: each a list of `(tag, count)` rows.
fn tables(stdout: &str) -> Vec<Vec<(String, u64)>> {
    let mut out: Vec<Vec<(String, u64)>> = Vec::new();
    for l in stdout.lines() {
        if l.starts_with("Time:") {
            out.push(Vec::new());
        } else if let (Some(t), Some((tag, c))) = (out.last_mut(), row(l)) {
            t.push((tag.to_string(), c));
        }
    }
    out
}

#[test]
fn readme_main_command_prints_tables_and_status_lines() {
    let out = squall(ARGS, Duration::from_secs(15));
    out.assert_success();
    assert!(
        out.elapsed >= Duration::from_secs(4),
        "ended before --duration: {:?}",
        out.elapsed
    );
    let stdout = &out.stdout;
    let tables = stdout.lines().filter(|l| l.starts_with("Time:")).count();
    assert!(
        tables >= 2,
        "{tables} top-10 tables, expected at least 2:\n{}",
        tail(stdout)
    );
    for l in stdout.lines().filter(|l| l.starts_with("Time:")) {
        assert!(
            l.ends_with("top-10 hashtags (sliding window)"),
            "table header: {l}"
        );
    }
    let firsts: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  1. #")).collect();
    assert!(firsts.len() >= 2, "rows `  1. #`:\n{}", tail(stdout));
    // A full table has ten numbered rows: " 10. #..." closes the last one.
    assert!(
        stdout.lines().any(|l| l.starts_with(" 10. #")),
        "no 10th row:\n{}",
        tail(stdout)
    );
    for l in &firsts {
        let (tag, count) = row(l).unwrap_or_else(|| panic!("bad row {l:?}"));
        assert!(tag.len() > 1 && count > 0, "row {l:?}");
    }

    let stderr = &out.stderr;
    assert!(
        stderr.starts_with("squall: running `trending-hashtags` in event mode"),
        "{}",
        tail(stderr)
    );
    let status = stderr
        .lines()
        .filter(|l| l.contains("tuples/s  acked"))
        .count();
    assert!(status >= 2, "{status} status lines:\n{}", tail(stderr));
    assert!(
        stderr.lines().any(|l| l.starts_with("squall: done in")),
        "{}",
        tail(stderr)
    );
    assert!(!stderr.contains("error"), "{}", tail(stderr));
}

/// Every table is the top-10 of one window. The generator's hashtags are Zipf
/// distributed (s = 1.2, seed 42): in any window of ~20 000+ tweets `#cucu` leads and
/// `#natux` follows with about half its count (ratio 2.0 ± 0.1 in every observed window).
/// A table that lacks `#cucu`, or whose two counts come from windows of different
/// lengths (ratio ≈ 1), merges partial rankings of different slides.
#[test]
fn every_table_is_the_top10_of_one_window() {
    let out = squall(ARGS, Duration::from_secs(15));
    out.assert_success();
    let tables = tables(&out.stdout);
    assert!(tables.len() >= 2, "{}", tail(&out.stdout));
    for (i, t) in tables.iter().enumerate() {
        assert_eq!(t.len(), 10, "table {i} has {} rows: {t:?}", t.len());
        assert_eq!(t[0].0, "#cucu", "table {i}: {t:?}");
        assert_eq!(t[1].0, "#natux", "table {i}: {t:?}");
        // With few tweets in a window (a starved machine) the ratio is noise, not a sign
        // of mixed windows: judge it only on windows with enough samples.
        if t[1].1 < 1000 {
            continue;
        }
        let ratio = t[0].1 as f64 / t[1].1 as f64;
        assert!(
            (1.7..=2.4).contains(&ratio),
            "table {i}: #cucu/#natux = {ratio:.2}, the rows come from different windows: {t:?}"
        );
    }
}

/// A short bounded run says how long it took precisely enough that the rate it prints
/// follows from it (not `done in 0.00s: 80966 tuples/s`).
#[test]
fn a_short_run_prints_its_duration_with_enough_precision() {
    let n = 2_000.0;
    let out = squall(
        [
            "topology",
            "run",
            "topologies/trending-hashtags.toml",
            "--set",
            "spouts.source.rate=0",
            "--set",
            "spouts.source.limit=2000",
            "--set",
            "bolts.sink.quiet=true",
        ],
        Duration::from_secs(30),
    );
    out.assert_success();
    let line = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("squall: done in "))
        .unwrap_or_else(|| panic!("no done line:\n{}", tail(&out.stderr)));
    // "12.3 ms: 162602 tuples/s ..." or "1.23s: ..."
    let (took, rest) = line
        .split_once(": ")
        .unwrap_or_else(|| panic!("done line: {line}"));
    let secs: f64 = match took.strip_suffix(" ms") {
        Some(ms) => ms.parse::<f64>().map(|m| m / 1e3),
        None => took.trim_end_matches('s').parse::<f64>(),
    }
    .unwrap_or_else(|e| panic!("duration {took:?} in {line:?}: {e}"));
    let tps: f64 = rest
        .split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("rate in {line:?}"));
    // The printed figure is precise to 2 % at least: half a unit of its last digit is at
    // most 2 % of it (`0.18s` is not: ±0.005 s is 2.8 %; `0.00s` says nothing).
    let figure = took.trim_end_matches(" ms").trim_end_matches('s');
    let decimals = figure.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let value: f64 = figure.parse().unwrap_or(0.0);
    assert!(
        value > 0.0 && 0.5 * 10f64.powi(-decimals) <= 0.02 * value,
        "the duration {took:?} is not precise to 2 %: {line}"
    );
    let implied = n / secs;
    assert!(
        (implied - tps).abs() <= tps * 0.05,
        "{n} tuples in {took} is {implied:.0} tuples/s, but the line says {tps}: {line}"
    );
}
