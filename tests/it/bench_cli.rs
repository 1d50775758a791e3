//! `squall bench` through the real binary, in a short smoke form (tiny rates, 1 s): the
//! outputs exist and hold every field; the real figures come from running it by hand.

use std::time::Duration;

use crate::support::cli::*;

const TIMEOUT: Duration = Duration::from_secs(240);

fn num(v: &serde_json::Value, path: &str) -> f64 {
    field_f64(v, path)
}

#[test]
fn bench_both_modes_write_json_markdown_and_chart() {
    let dir = TempDir::new("bench");
    let out = dir.join("out");
    let file = topology("trending-hashtags.toml");
    let run = squall(
        [
            "bench",
            &file.display().to_string(),
            "--modes",
            "event,microbatch",
            "--rates",
            "2000,max",
            "--duration",
            "1s",
            "--out",
            &out.display().to_string(),
            "--set",
            "spouts.source.limit=0",
            "--max-batch",
            "20000",
            "--stall-probe",
            "200ms",
            "--warmup",
            "300ms",
        ],
        TIMEOUT,
    );
    run.assert_success();
    // The modes take turns at each rate (their runs at one rate are back to back).
    assert!(
        run.stderr.contains("[1/4] event at 2000")
            && run.stderr.contains("[2/4] microbatch at 2000")
            && run.stderr.contains("[3/4] event at max")
            && run.stderr.contains("[4/4] microbatch at max"),
        "no progress lines: {}",
        run.stderr
    );

    let bench = read_report(&out.join("bench.json"));
    assert_eq!(field(&bench, "topology"), "trending-hashtags");
    assert!(
        field(&bench, "file")
            .as_str()
            .is_some_and(|f| f.ends_with("trending-hashtags.toml"))
    );
    assert_eq!(num(&bench, "duration_s"), 1.0);
    assert_eq!(num(&bench, "warmup_s"), 0.3);
    assert!(field_u64(&bench, "machine.cores") >= 1);
    assert!(field(&bench, "machine.cpu_model").is_string());
    assert!(field(&bench, "machine.os").is_string());
    let command: Vec<&str> = field(&bench, "command")
        .as_array()
        .expect("command is an array")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(command.get(1), Some(&"bench"), "{command:?}");
    assert!(command.contains(&"2000,max"), "{command:?}");
    // The machine's stalls, probed before and after the points.
    for when in ["stalls_before", "stalls_after"] {
        assert_eq!(
            field_u64(&bench, &format!("{when}.threads")),
            field_u64(&bench, "machine.cores")
        );
        assert!(num(&bench, &format!("{when}.seconds")) >= 0.2, "{bench}");
        let (over1, over5) = (
            field_u64(&bench, &format!("{when}.stalls_over_1ms")),
            field_u64(&bench, &format!("{when}.stalls_over_5ms")),
        );
        assert!(over5 <= over1, "{bench}");
        assert!(num(&bench, &format!("{when}.lost_ms_per_s")) >= 0.0);
        assert!(num(&bench, &format!("{when}.longest_ms")) > 0.0, "{bench}");
        // The kernel's count of the spinners' wait while other tasks ran, and those tasks.
        assert!(
            num(&bench, &format!("{when}.run_queue_ms_per_s")) >= 0.0,
            "{bench}"
        );
        assert!(
            field(&bench, &format!("{when}.other_tasks")).is_array(),
            "{bench}"
        );
    }
    assert!(
        run.stderr.contains("machine stalls before the points"),
        "{}",
        run.stderr
    );

    let points = field(&bench, "points").as_array().expect("points array");
    assert_eq!(points.len(), 4, "{bench}");
    let expected = [
        ("event", Some(2000)),
        ("event", None),
        ("microbatch", Some(2000)),
        ("microbatch", None),
    ];
    for (p, (mode, offered)) in points.iter().zip(expected) {
        assert_eq!(field(p, "mode"), mode);
        assert_eq!(field(p, "offered_tps").as_u64(), offered, "{p}");
        assert_eq!(field(p, "ok"), true, "{p}");
        assert!(num(p, "achieved_tps") > 0.0, "{p}");
        let (p50, p90, p99, p999, max) = (
            num(p, "latency_us.p50"),
            num(p, "latency_us.p90"),
            num(p, "latency_us.p99"),
            num(p, "latency_us.p999"),
            num(p, "latency_us.max"),
        );
        assert!(
            p50 > 0.0 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
            "{p}"
        );
        assert!(num(p, "cpu_percent") > 0.0, "{p}");
        assert!(num(p, "peak_rss_mib") > 1.0, "{p}");
        assert!(field_u64(p, "acked") > 0, "{p}");
        assert_eq!(field_u64(p, "failed"), 0, "{p}");
    }

    // Each point's own run report carries the process's CPU time and peak RSS.
    for name in [
        "event-2000.json",
        "event-max.json",
        "microbatch-2000.json",
        "microbatch-max.json",
    ] {
        let r = read_report(&out.join("runs").join(name));
        assert!(field_f64(&r, "cpu_seconds") > 0.0, "{name}: {r}");
        // Measured after the warm-up: about the requested second, not the whole run.
        assert_eq!(field_f64(&r, "warmup_s"), 0.3, "{name}: {r}");
        let d = field_f64(&r, "duration_s");
        // (Wide: on a starved machine the published metrics lag the clock.)
        assert!((0.5..1.6).contains(&d), "{name}: {r}");
        assert!(field_u64(&r, "peak_rss_bytes") > 1024 * 1024, "{name}: {r}");
    }

    let md = std::fs::read_to_string(out.join("bench.md")).expect("bench.md");
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| event |") || l.starts_with("| microbatch |"))
        .collect();
    assert_eq!(rows.len(), 4, "{md}");
    assert!(rows[0].starts_with("| event | 2000 |"), "{md}");
    assert!(rows[1].starts_with("| event | max |"), "{md}");
    assert!(rows[2].starts_with("| microbatch | 2000 |"), "{md}");
    assert!(rows[3].starts_with("| microbatch | max |"), "{md}");
    assert!(
        md.contains("| p50 | p90 | p99 | p99.9 | max | CPU % | RSS MiB |"),
        "{md}"
    );
    assert!(md.contains("bench") && md.contains("cores"), "{md}");
    assert!(md.contains("Machine stalls after the points"), "{md}");

    let svg = std::fs::read_to_string(out.join("latency.svg")).expect("latency.svg");
    assert!(svg.starts_with("<svg"), "not an SVG");
    assert!(svg.trim_end().ends_with("</svg>"), "unterminated SVG");
    assert!(
        svg.contains("event p99") && svg.contains("event p50"),
        "no legend"
    );
    assert!(
        svg.contains("microbatch p99") && svg.contains("microbatch p50"),
        "no micro-batch legend"
    );
    assert!(svg.contains("<polyline"), "no line drawn");
}

#[test]
fn bench_repeat_runs_each_point_and_reports_the_median_run() {
    let dir = TempDir::new("bench-repeat");
    let out = dir.join("out");
    let run = squall(
        [
            "bench",
            &topology("trending-hashtags.toml").display().to_string(),
            "--modes",
            "event",
            "--rates",
            "max",
            "--duration",
            "1s",
            "--repeat",
            "3",
            "--out",
            &out.display().to_string(),
            "--stall-probe",
            "0s",
            "--warmup",
            "0s",
        ],
        TIMEOUT,
    );
    run.assert_success();
    assert!(run.stderr.contains("[3/3] event at max"), "{}", run.stderr);
    let bench = read_report(&out.join("bench.json"));
    let points = field(&bench, "points").as_array().expect("points array");
    assert_eq!(points.len(), 1, "{bench}");
    let p = &points[0];
    let runs = field(p, "runs").as_array().expect("runs array");
    assert_eq!(runs.len(), 3, "{p}");
    let mut tps: Vec<f64> = runs.iter().map(|r| num(r, "achieved_tps")).collect();
    assert!(runs.iter().all(|r| field(r, "ok") == true), "{p}");
    tps.sort_by(f64::total_cmp);
    assert_eq!(num(p, "achieved_tps"), tps[1], "the median run: {p}");
    for k in 1..=3 {
        let r = read_report(&out.join("runs").join(format!("event-max-{k}.json")));
        assert!(field_f64(&r, "throughput_tps") > 0.0, "run {k}: {r}");
    }
    let md = std::fs::read_to_string(out.join("bench.md")).expect("bench.md");
    assert!(md.contains("Each point ran 3 times"), "{md}");
    assert!(md.contains("- event at max: "), "{md}");
}

#[test]
fn bench_needs_a_generator_spout() {
    let dir = TempDir::new("bench-nogen");
    let out = dir.join("out");
    let run = squall(
        [
            "bench",
            &topology("socket-hashtags.toml").display().to_string(),
            "--modes",
            "event",
            "--rates",
            "1000",
            "--duration",
            "1s",
            "--out",
            &out.display().to_string(),
        ],
        Duration::from_secs(30),
    );
    run.assert_failure();
    assert!(
        run.stderr
            .contains("squall bench needs a generator spout to offer load"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("socket-hashtags.toml"),
        "{}",
        run.stderr
    );
    assert!(!out.join("bench.json").exists());
}

#[test]
fn bench_rejects_bad_modes_and_rates() {
    let dir = TempDir::new("bench-bad");
    let out = dir.join("out").display().to_string();
    let file = topology("trending-hashtags.toml").display().to_string();
    for (flag, value, message) in [
        ("--modes", "event,trident", "unknown mode `trident`"),
        ("--rates", "1000,0", "`0` is not a rate"),
        ("--rates", "fast", "`fast` is not a rate"),
    ] {
        let run = squall(
            [
                "bench",
                &file,
                flag,
                value,
                "--duration",
                "1s",
                "--out",
                &out,
            ],
            Duration::from_secs(30),
        );
        run.assert_failure();
        assert!(
            run.stderr.contains(message),
            "{flag} {value}: {}",
            run.stderr
        );
    }
}
