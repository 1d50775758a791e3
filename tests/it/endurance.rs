//! The soak in small: the shipped trending-hashtags job runs for about two minutes at a
//! modest fixed rate with `--http` on, sampled every second (RSS and open descriptors from
//! `/proc`, the totals of `/api/metrics`), and must pass the criteria of `benches/soak.sh`
//! with tolerances for a loaded machine: RSS flat, no failed tuples, no growth in pending
//! trees, file descriptors flat. (The 30-minute run at half of the maximum rate is
//! `benches/soak.sh`; its figures are in docs/reliability.md.)

use std::time::Duration;

use crate::support::cli::{TempDir, field_f64, field_u64, read_report, topology};
use crate::support::http::serve_topology;
use crate::support::sampler::{Sample, mean_rss, quantile, sample_until_exit};

/// Tweets per second: a fraction of one core (the suite runs beside it).
const RATE: u64 = 5_000;
/// The run, in seconds; the windows below are those of a 30-minute soak scaled to it.
const DURATION: f64 = 110.0;

#[test]
fn two_minutes_at_a_steady_rate_leave_memory_descriptors_and_pending_trees_flat() {
    let dir = TempDir::new("soak");
    let report = dir.join("report.json");
    let file = topology("trending-hashtags.toml");
    // A 10 s window (slide 2 s): the window is full, so its memory steady, long before
    // the first window of the comparison starts (at D/6 ≈ 18 s).
    let mut served = serve_topology(
        &file.display().to_string(),
        &[
            "--duration",
            &format!("{DURATION}s"),
            "--report",
            &report.display().to_string(),
            "--set",
            &format!("spouts.source.rate={RATE}"),
            "--set",
            "spouts.source.limit=0",
            "--set",
            "bolts.counts.window=10s",
            "--set",
            "bolts.counts.slide=2s",
            "--set",
            "bolts.sink.quiet=true",
        ],
    );
    let (samples, ok) = sample_until_exit(
        &mut served,
        Duration::from_secs(1),
        Duration::from_secs_f64(DURATION + 60.0),
    );
    assert!(ok, "squall failed");
    let r = read_report(&report);
    let with_metrics: Vec<&Sample> = samples.iter().filter(|s| s.totals.is_some()).collect();
    assert!(
        with_metrics.len() as f64 >= 0.8 * DURATION,
        "{} of {} samples had metrics over {DURATION} s",
        with_metrics.len(),
        samples.len()
    );

    // RSS: the mean of the last third against that of [D/6, D/3).
    let (base, nb) = mean_rss(&samples, DURATION / 6.0, DURATION / 3.0);
    let (last, nl) = mean_rss(&samples, 2.0 * DURATION / 3.0, f64::MAX);
    assert!(nb >= 10 && nl >= 20, "samples in the windows: {nb}, {nl}");
    let change = (last - base) / base * 100.0;

    // No failed tuples: the last sample and the report.
    let end = with_metrics
        .last()
        .and_then(|s| s.totals)
        .unwrap_or_default();
    assert_eq!(
        (end.failed, end.timed_out, end.bolts_failed),
        (0, 0, 0),
        "failed, timed out, bolts failed"
    );
    assert_eq!(field_u64(&r, "spouts.source.failed"), 0);
    let emitted = field_u64(&r, "spouts.source.emitted");
    assert_eq!(field_u64(&r, "spouts.source.acked"), emitted);

    // Pending trees: the last third's 95th percentile against the first third's maximum.
    let third = |s: &&Sample, last: bool| {
        if last {
            s.t_s >= 2.0 * DURATION / 3.0
        } else {
            s.t_s < DURATION / 3.0
        }
    };
    let pending = |last: bool| -> Vec<u64> {
        with_metrics
            .iter()
            .filter(|s| third(s, last))
            .filter_map(|s| s.totals.map(|t| t.pending))
            .collect()
    };
    let first_max = pending(false).into_iter().max().unwrap_or(0);
    let mut last_third = pending(true);
    let last_p95 = quantile(&mut last_third, 0.95);
    // Pending is `rate × latency`: a machine busy with other tests stalls the job for
    // tens of ms now and then, so the margin is generous; a leak of trees would still
    // grow past it (or time out as failures, checked above).
    let allowed = first_max + (first_max / 2).max(256);

    // Descriptors: flat.
    let fds = |last: bool| {
        samples
            .iter()
            .filter(|s| third(s, last))
            .map(|s| s.fds)
            .max()
            .unwrap_or(0)
    };
    let (fd_first, fd_last) = (fds(false), fds(true));

    // Throughput: the job kept up with the offered rate.
    let last_two: Vec<_> = with_metrics
        .iter()
        .filter(|s| third(s, true))
        .filter_map(|s| s.totals.map(|t| (s.t_s, t.acked)))
        .collect();
    let acked_rate = match (last_two.first(), last_two.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / (b.0 - a.0),
        _ => 0.0,
    };
    let cpu = field_f64(&r, "cpu_seconds") / field_f64(&r, "duration_s") * 100.0;
    eprintln!(
        "soak: RSS {:.1} MiB → {:.1} MiB ({change:+.1} %), pending first third max {first_max}, \
         last third p95 {last_p95} (allowed {allowed}), fds {fd_first} → {fd_last}, \
         acked {acked_rate:.0}/s in the last third, {emitted} tweets, CPU {cpu:.0} % of a core",
        base / 1024.0,
        last / 1024.0
    );
    assert!(
        change.abs() <= 20.0,
        "RSS not flat: mean {:.1} MiB over [D/6, D/3), {:.1} MiB over the last third ({change:+.1} %)",
        base / 1024.0,
        last / 1024.0
    );
    assert!(
        last_p95 <= allowed,
        "pending trees grew: first third max {first_max}, last third p95 {last_p95}"
    );
    assert!(
        fd_last <= fd_first + 4,
        "file descriptors grew: {fd_first} → {fd_last}"
    );
    assert!(
        acked_rate >= RATE as f64 * 0.5,
        "acked {acked_rate:.0} tweets/s in the last third, offered {RATE}"
    );
}
