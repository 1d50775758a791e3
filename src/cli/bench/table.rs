//! The bench model: what `bench.json` holds, how a point is read from a run report, and
//! the Markdown table of `bench.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::stalls::Stalls;
use super::{Mode, Rate};

/// Complete-latency percentiles in microseconds (as in the run report).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// The element-wise maximum (several generator spouts: the worst of each percentile).
    pub fn max_with(self, o: Latency) -> Latency {
        Latency {
            p50: self.p50.max(o.p50),
            p90: self.p90.max(o.p90),
            p99: self.p99.max(o.p99),
            p999: self.p999.max(o.p999),
            max: self.max.max(o.max),
        }
    }
}

/// The machine the bench ran on.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub os: String,
}

impl Machine {
    /// This machine: cores, the first `model name` of /proc/cpuinfo, OS and kernel release.
    pub fn detect() -> Machine {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| cpu_model_of(&s))
            .unwrap_or_else(|| "unknown".to_string());
        let os = match std::fs::read_to_string("/proc/sys/kernel/osrelease") {
            Ok(r) if !r.trim().is_empty() => format!("{} {}", std::env::consts::OS, r.trim()),
            _ => std::env::consts::OS.to_string(),
        };
        Machine {
            cores,
            cpu_model,
            os,
        }
    }
}

/// The CPU model named in a /proc/cpuinfo text (`model name`, or `Model`/`cpu model` on
/// some ARM and MIPS kernels).
pub fn cpu_model_of(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        let k = k.trim();
        let v = v.trim();
        (matches!(k, "model name" | "Model" | "cpu model") && !v.is_empty()).then(|| v.to_string())
    })
}

/// One (mode, offered rate) run.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Point {
    pub mode: String,
    /// Offered tuples per second; `null` for `max` (unpaced).
    pub offered_tps: Option<u64>,
    /// Spout tuples emitted per second (the report's `throughput_tps`).
    pub achieved_tps: f64,
    /// Complete latency of the generator spout(s), µs.
    pub latency_us: Latency,
    /// Process CPU time over the run's duration, in percent of one core.
    pub cpu_percent: f64,
    pub peak_rss_mib: f64,
    pub acked: u64,
    pub failed: u64,
    pub ok: bool,
    /// Why the point failed (absent when it did not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With `--repeat N` (N > 1): every run of the point, in the order they ran; the
    /// fields above are the median run's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunSummary>,
}

/// One run of a repeated point.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub achieved_tps: f64,
    pub p99_us: f64,
    pub ok: bool,
}

impl RunSummary {
    pub fn of(p: &Point) -> RunSummary {
        RunSummary {
            achieved_tps: p.achieved_tps,
            p99_us: p.latency_us.p99,
            ok: p.ok,
        }
    }
}

impl Point {
    /// A point whose run did not give a report.
    pub fn failed(mode: Mode, rate: Rate, error: String) -> Point {
        Point {
            mode: mode.as_str().to_string(),
            offered_tps: rate.offered(),
            achieved_tps: 0.0,
            latency_us: Latency::default(),
            cpu_percent: 0.0,
            peak_rss_mib: 0.0,
            acked: 0,
            failed: 0,
            ok: false,
            error: Some(error),
            runs: Vec::new(),
        }
    }
}

/// The part of a run report (`squall topology run --report`) the bench reads.
#[derive(Deserialize, Debug)]
pub struct RunReport {
    pub duration_s: f64,
    pub throughput_tps: f64,
    pub spouts: BTreeMap<String, SpoutPart>,
    #[serde(default)]
    pub cpu_seconds: f64,
    #[serde(default)]
    pub peak_rss_bytes: u64,
}

#[derive(Deserialize, Debug)]
pub struct SpoutPart {
    pub acked: u64,
    pub failed: u64,
    pub complete_latency_us: Latency,
}

/// Why a report does not make a point.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PointError {
    #[error("the report has no spout `{0}`")]
    MissingSpout(String),
}

impl RunReport {
    /// The point of this report: `spouts` are the generator spouts (latency element-wise
    /// max, acked/failed summed); CPU % is over the report's own duration (the requested
    /// one if the report has none).
    pub fn point(
        &self,
        mode: Mode,
        rate: Rate,
        spouts: &[String],
        requested_s: f64,
    ) -> Result<Point, PointError> {
        let mut latency = Latency::default();
        let (mut acked, mut failed) = (0, 0);
        for name in spouts {
            let s = self
                .spouts
                .get(name)
                .ok_or_else(|| PointError::MissingSpout(name.clone()))?;
            latency = latency.max_with(s.complete_latency_us);
            acked += s.acked;
            failed += s.failed;
        }
        let secs = if self.duration_s > 0.0 {
            self.duration_s
        } else {
            requested_s
        };
        let cpu_percent = if secs > 0.0 {
            round1(self.cpu_seconds / secs * 100.0)
        } else {
            0.0
        };
        Ok(Point {
            mode: mode.as_str().to_string(),
            offered_tps: rate.offered(),
            achieved_tps: self.throughput_tps,
            latency_us: latency,
            cpu_percent,
            peak_rss_mib: round1(self.peak_rss_bytes as f64 / (1024.0 * 1024.0)),
            acked,
            failed,
            ok: true,
            error: None,
            runs: Vec::new(),
        })
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `bench.json`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Bench {
    pub topology: String,
    pub file: String,
    /// The requested duration of each point, seconds (measured, after the warm-up).
    pub duration_s: f64,
    /// The warm-up each run had before it, seconds (not measured).
    #[serde(default)]
    pub warmup_s: f64,
    pub machine: Machine,
    /// The exact argv of the `squall bench` command.
    pub command: Vec<String>,
    pub points: Vec<Point>,
    /// What the stall probe saw before the first point and after the last (`null` with
    /// `--stall-probe 0s`).
    #[serde(default)]
    pub stalls_before: Option<Stalls>,
    #[serde(default)]
    pub stalls_after: Option<Stalls>,
}

/// Quotes one argument for a shell command line when it needs it.
fn shell_word(a: &str) -> String {
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@%+".contains(c));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// The command as one shell line.
pub fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_word(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Microseconds as milliseconds for the table (3 significant decimals below 10 ms).
fn ms(us: f64) -> String {
    let ms = us / 1000.0;
    if ms < 10.0 {
        format!("{ms:.3}")
    } else if ms < 100.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}

/// One line for a failed point: the error's first line and, from the child's stderr
/// tail below it, the first line that reports an error.
fn failure_summary(error: &str) -> String {
    let mut lines = error.lines().map(str::trim).filter(|l| !l.is_empty());
    let head = lines
        .next()
        .unwrap_or("unknown error")
        .trim_end_matches(':');
    match lines.find(|l| l.contains("error")) {
        Some(e) => format!("{head}: {e}"),
        None => head.to_string(),
    }
}

/// A point's offered rate as the table writes it (`max` when unpaced).
fn offered_label(p: &Point) -> String {
    p.offered_tps
        .map_or_else(|| "max".to_string(), |r| r.to_string())
}

/// `bench.md`: the command and the machine, then one table row per point.
pub fn markdown(b: &Bench) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# squall bench: `{}`\n", b.topology);
    let _ = writeln!(s, "Command:\n\n```\n{}\n```\n", command_line(&b.command));
    let _ = writeln!(
        s,
        "Machine: {} cores, {}, {}. File: `{}`; {} s per point, after a {} s warm-up that is not measured.\n",
        b.machine.cores, b.machine.cpu_model, b.machine.os, b.file, b.duration_s, b.warmup_s
    );
    for (when, st) in [("before", &b.stalls_before), ("after", &b.stalls_after)] {
        if let Some(st) = st {
            let _ = writeln!(
                s,
                "Machine stalls {when} the points ({} threads spinning {} s): {}.\n",
                st.threads,
                st.seconds.round(),
                st.summary()
            );
        }
    }
    let _ = writeln!(
        s,
        "Complete latency (from each tuple's intended send time to its ack) in ms; \
         CPU % of one core; peak RSS of the run's process.\n"
    );
    s.push_str(
        "| mode | offered (tuples/s) | achieved (tuples/s) | p50 | p90 | p99 | p99.9 | max | CPU % | RSS MiB |\n",
    );
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for p in &b.points {
        let offered = offered_label(p);
        if p.ok {
            let l = &p.latency_us;
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.1} | {:.1} |",
                p.mode,
                offered,
                p.achieved_tps,
                ms(l.p50),
                ms(l.p90),
                ms(l.p99),
                ms(l.p999),
                ms(l.max),
                p.cpu_percent,
                p.peak_rss_mib
            );
        } else {
            let _ = writeln!(
                s,
                "| {} | {} | failed | – | – | – | – | – | – | – |",
                p.mode, offered
            );
        }
    }
    let repeated: Vec<&Point> = b.points.iter().filter(|p| !p.runs.is_empty()).collect();
    if let Some(first) = repeated.first() {
        let _ = writeln!(
            s,
            "\nEach point ran {} times, the modes taking turns at each rate; a row is the \
             median run (by throughput at `max`, by p99 at an offered rate). Every run, in \
             the order they ran (tuples/s, p99 ms):\n",
            first.runs.len()
        );
        for p in repeated {
            let offered = offered_label(p);
            let runs: Vec<String> = p
                .runs
                .iter()
                .map(|r| {
                    if r.ok {
                        format!("{:.0} ({})", r.achieved_tps, ms(r.p99_us))
                    } else {
                        "failed".to_string()
                    }
                })
                .collect();
            let _ = writeln!(s, "- {} at {}: {}", p.mode, offered, runs.join(", "));
        }
    }
    let failed: Vec<&Point> = b.points.iter().filter(|p| !p.ok).collect();
    if !failed.is_empty() {
        s.push_str("\nFailed points:\n\n");
        for p in failed {
            let offered = offered_label(p);
            let _ = writeln!(
                s,
                "- {} at {}: {}",
                p.mode,
                offered,
                failure_summary(p.error.as_deref().unwrap_or("unknown error"))
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lat(p50: f64, p99: f64) -> Latency {
        Latency {
            p50,
            p90: (p50 + p99) / 2.0,
            p99,
            p999: p99 * 2.0,
            max: p99 * 4.0,
        }
    }

    fn bench(points: Vec<Point>) -> Bench {
        Bench {
            topology: "trending-hashtags".into(),
            file: "topologies/trending-hashtags.toml".into(),
            duration_s: 20.0,
            warmup_s: 0.0,
            machine: Machine {
                cores: 2,
                cpu_model: "Test CPU".into(),
                os: "linux 6.1".into(),
            },
            command: vec![
                "squall".into(),
                "bench".into(),
                "topologies/trending-hashtags.toml".into(),
                "--set".into(),
                "config.name=a b".into(),
            ],
            points,
            stalls_before: Some(Stalls {
                threads: 2,
                seconds: 3.0,
                stalls_over_1ms: 7,
                stalls_over_5ms: 2,
                lost_ms_per_s: 4.25,
                longest_ms: 9.43,
                run_queue_ms_per_s: Some(3.12),
                other_tasks: vec![super::super::others::OtherTask {
                    name: "kdamond.0".into(),
                    cpu_ms: 18.5,
                }],
            }),
            stalls_after: None,
        }
    }

    fn ok_point(mode: Mode, rate: Rate, tps: f64, l: Latency) -> Point {
        Point {
            mode: mode.as_str().into(),
            offered_tps: rate.offered(),
            achieved_tps: tps,
            latency_us: l,
            cpu_percent: 87.5,
            peak_rss_mib: 21.3,
            acked: 1000,
            failed: 0,
            ok: true,
            error: None,
            runs: Vec::new(),
        }
    }

    #[test]
    fn table_has_a_row_per_point_in_ms() {
        let b = bench(vec![
            ok_point(Mode::Event, Rate::Tuples(10_000), 9_998.0, lat(120.0, 850.0)),
            ok_point(Mode::Event, Rate::Max, 151_234.0, lat(15_000.0, 250_000.0)),
            Point::failed(
                Mode::Microbatch,
                Rate::Tuples(10_000),
                "the run exited with exit status: 2 (stderr in x.log):\n    error: unexpected argument '--mode'\n    For more information, try '--help'.".into(),
            ),
        ]);
        let md = markdown(&b);
        let rows: Vec<&str> = md
            .lines()
            .filter(|l| l.starts_with("| event") || l.starts_with("| microbatch"))
            .collect();
        assert_eq!(rows.len(), 3, "{md}");
        assert_eq!(
            rows[0],
            "| event | 10000 | 9998 | 0.120 | 0.485 | 0.850 | 1.700 | 3.400 | 87.5 | 21.3 |"
        );
        assert_eq!(
            rows[1],
            "| event | max | 151234 | 15.00 | 132.5 | 250.0 | 500.0 | 1000.0 | 87.5 | 21.3 |"
        );
        assert!(
            rows[2].starts_with("| microbatch | 10000 | failed |"),
            "{md}"
        );
        assert!(
            md.contains("squall bench topologies/trending-hashtags.toml --set 'config.name=a b'")
        );
        assert!(md.contains("2 cores, Test CPU, linux 6.1"));
        assert!(
            md.contains(
                "Machine stalls before the points (2 threads spinning 3 s): 7 stalls over 1 ms (2 over 5 ms), 4.2 ms lost per second, longest 9.4 ms; the kernel ran other tasks 3.1 ms per second (kdamond.0 18.5 ms).\n"
            ),
            "{md}"
        );
        assert!(!md.contains("stalls after"), "{md}");
        assert!(
            md.contains(
                "- microbatch at 10000: the run exited with exit status: 2 (stderr in x.log): error: unexpected argument '--mode'\n"
            ),
            "{md}"
        );
    }

    #[test]
    fn point_takes_the_worst_generator_and_sums_counts() {
        let report: RunReport = serde_json::from_str(
            r#"{"topology":"t","mode":"event","duration_s":2.0,"throughput_tps":5000.0,
                "spouts":{
                  "a":{"emitted":1,"acked":10,"failed":1,"complete_latency_us":{"p50":1.0,"p90":9.0,"p99":10.0,"p999":11.0,"max":12.0}},
                  "b":{"emitted":1,"acked":20,"failed":2,"complete_latency_us":{"p50":2.0,"p90":3.0,"p99":20.0,"p999":5.0,"max":30.0}},
                  "other":{"emitted":1,"acked":99,"failed":99,"complete_latency_us":{"p50":999.0,"p90":999.0,"p99":999.0,"p999":999.0,"max":999.0}}},
                "bolts":{},"topk":[],"counters":{},"cpu_seconds":3.0,"peak_rss_bytes":10485760}"#,
        )
        .expect("report");
        let p = report
            .point(
                Mode::Event,
                Rate::Tuples(5000),
                &["a".into(), "b".into()],
                1.0,
            )
            .expect("point");
        assert_eq!(
            p.latency_us,
            Latency {
                p50: 2.0,
                p90: 9.0,
                p99: 20.0,
                p999: 11.0,
                max: 30.0
            }
        );
        assert_eq!((p.acked, p.failed), (30, 3));
        assert_eq!(p.cpu_percent, 150.0);
        assert_eq!(p.peak_rss_mib, 10.0);
        assert_eq!(p.offered_tps, Some(5000));
        assert!(p.ok);
        assert_eq!(
            report.point(Mode::Event, Rate::Max, &["nope".into()], 1.0),
            Err(PointError::MissingSpout("nope".into()))
        );
    }

    #[test]
    fn json_has_null_offered_for_max_and_no_error_when_ok() {
        let b = bench(vec![ok_point(Mode::Event, Rate::Max, 1.0, lat(1.0, 2.0))]);
        let v = serde_json::to_value(&b).expect("json");
        assert!(v["points"][0]["offered_tps"].is_null());
        assert!(v["points"][0].get("error").is_none());
        assert!(v["points"][0].get("runs").is_none(), "one run: no list");
        assert_eq!(v["machine"]["cores"], 2);
    }

    #[test]
    fn repeated_points_list_every_run_under_the_table() {
        let mut p = ok_point(Mode::Event, Rate::Max, 2_000.0, lat(1.0, 1_500.0));
        p.runs = vec![
            RunSummary {
                achieved_tps: 1_000.0,
                p99_us: 900.0,
                ok: true,
            },
            RunSummary {
                achieved_tps: 2_000.0,
                p99_us: 1_500.0,
                ok: true,
            },
            RunSummary {
                achieved_tps: 0.0,
                p99_us: 0.0,
                ok: false,
            },
        ];
        let b = bench(vec![
            p,
            ok_point(Mode::Microbatch, Rate::Max, 1.0, lat(1.0, 2.0)),
        ]);
        let md = markdown(&b);
        assert!(md.contains("Each point ran 3 times"), "{md}");
        assert!(
            md.contains("- event at max: 1000 (0.900), 2000 (1.500), failed\n"),
            "{md}"
        );
        assert!(!md.contains("- microbatch at max"), "{md}");
        let v = serde_json::to_value(&b).expect("json");
        assert_eq!(v["points"][0]["runs"][1]["achieved_tps"], 2000.0);
        let back: Bench = serde_json::from_value(v).expect("parses back");
        assert_eq!(back, b);
    }

    #[test]
    fn cpu_model_is_read_from_cpuinfo() {
        let info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            cpu_model_of(info).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(cpu_model_of("processor\t: 0\n"), None);
    }
}
