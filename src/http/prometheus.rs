//! `/metrics`: the Prometheus text exposition format (version 0.0.4), one series per task
//! with the labels `component` and `task` (sum by `component` for per-component values).

use std::collections::HashMap;
use std::fmt::Write;

use hdrhistogram::Histogram;

use crate::metrics::COUNTERS;
use crate::metrics::TaskSample;

/// Upper bounds (seconds) of the latency histogram buckets, besides `+Inf`.
pub const BUCKETS_S: [f64; 18] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Escapes a label value (backslash, double quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(t: &TaskSample) -> String {
    format!(
        "component=\"{}\",task=\"{}\"",
        escape(&t.component),
        t.index
    )
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter(
    out: &mut String,
    tasks: &[TaskSample],
    name: &str,
    help: &str,
    keep: impl Fn(&TaskSample) -> bool,
    value: impl Fn(&TaskSample) -> f64,
) {
    header(
        out,
        name,
        if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        },
        help,
    );
    for t in tasks.iter().filter(|t| keep(t)) {
        let _ = writeln!(out, "{name}{{{}}} {}", labels(t), value(t));
    }
}

fn histogram(
    out: &mut String,
    tasks: &[TaskSample],
    name: &str,
    help: &str,
    kind: &str,
    h: impl Fn(&TaskSample) -> &Histogram<u64>,
) {
    header(out, name, "histogram", help);
    for t in tasks.iter().filter(|t| t.kind == kind) {
        let h = h(t);
        let l = labels(t);
        for le in BUCKETS_S {
            let upto = (le * 1e9) as u64;
            let n = if h.is_empty() {
                0
            } else {
                h.count_between(0, upto)
            };
            let _ = writeln!(out, "{name}_bucket{{{l},le=\"{le}\"}} {n}");
        }
        let count = h.len();
        let _ = writeln!(out, "{name}_bucket{{{l},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{l}}} {}", h.mean() * count as f64 / 1e9);
        let _ = writeln!(out, "{name}_count{{{l}}} {count}");
    }
}

/// Appends the count of requests the dashboard could not parse.
pub fn bad_requests(out: &mut String, n: u64) {
    header(
        out,
        "squall_http_bad_requests_total",
        "counter",
        "Requests to this server that were not HTTP/1.1 (answered 400, logged at debug).",
    );
    let _ = writeln!(out, "squall_http_bad_requests_total {n}");
}

/// The exposition text of `tasks`, with the last sampled `capacity` per (component, task).
pub fn render(
    topology: &str,
    uptime_s: f64,
    tasks: &[TaskSample],
    capacity: &HashMap<(String, usize), f64>,
) -> String {
    let mut out = String::with_capacity(4096 + tasks.len() * 2048);
    header(
        &mut out,
        "squall_info",
        "gauge",
        "The running topology (value 1).",
    );
    let _ = writeln!(out, "squall_info{{topology=\"{}\"}} 1", escape(topology));
    header(
        &mut out,
        "squall_uptime_seconds",
        "gauge",
        "Seconds since the run started.",
    );
    let _ = writeln!(out, "squall_uptime_seconds {uptime_s}");
    for (i, c) in COUNTERS.iter().enumerate() {
        let Some(series) = c.prometheus else {
            continue;
        };
        counter(
            &mut out,
            tasks,
            series.name,
            series.help,
            |t| series.tasks.cover(t.kind),
            |t| *t.stats.values()[i] as f64 / series.divisor,
        );
    }
    counter(
        &mut out,
        tasks,
        "squall_capacity",
        "Busy fraction of the task over the last sample interval (0..1).",
        |_| true,
        |t| {
            capacity
                .get(&(t.component.clone(), t.index))
                .copied()
                .unwrap_or(0.0)
        },
    );
    histogram(
        &mut out,
        tasks,
        "squall_execute_latency_seconds",
        "Bolt execute time (one tuple in latency_sample is timed).",
        "bolt",
        |t| &t.stats.execute_ns,
    );
    histogram(
        &mut out,
        tasks,
        "squall_complete_latency_seconds",
        "Spout emit to tuple-tree completion.",
        "spout",
        |t| &t.stats.complete_ns,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::TaskStats;

    fn task(component: &str, kind: &'static str, index: usize) -> TaskSample {
        TaskSample {
            component: component.to_string(),
            kind,
            index,
            stats: TaskStats::default(),
        }
    }

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let mut spout = task("sp\"out\\1", "spout", 0);
        for ns in [1_000u64, 2_000_000, 3_000_000_000] {
            spout.stats.complete_ns.record(ns).ok();
        }
        spout.stats.acked = 3;
        let mut cap = HashMap::new();
        cap.insert(("sp\"out\\1".to_string(), 0), 0.25);
        let text = render("t", 1.0, &[spout, task("bolt", "bolt", 1)], &cap);
        let l = r#"component="sp\"out\\1",task="0""#;
        assert!(
            text.contains(&format!("squall_tuples_acked_total{{{l}}} 3\n")),
            "{text}"
        );
        assert!(text.contains(&format!("squall_capacity{{{l}}} 0.25\n")));
        let bucket =
            |le: &str| format!("squall_complete_latency_seconds_bucket{{{l},le=\"{le}\"}}");
        assert!(
            text.contains(&format!("{} 1\n", bucket("0.000005"))),
            "{text}"
        );
        assert!(text.contains(&format!("{} 1\n", bucket("0.001"))));
        assert!(text.contains(&format!("{} 2\n", bucket("0.0025"))));
        assert!(text.contains(&format!("{} 2\n", bucket("1"))));
        assert!(text.contains(&format!("{} 3\n", bucket("5"))));
        assert!(text.contains(&format!("{} 3\n", bucket("+Inf"))));
        assert!(text.contains(&format!("squall_complete_latency_seconds_count{{{l}}} 3\n")));
        // Spout-only series skip bolts; bolts get the execute histogram.
        assert!(!text.contains("squall_pending_trees{component=\"bolt\""));
        assert!(
            text.contains("squall_execute_latency_seconds_count{component=\"bolt\",task=\"1\"} 0")
        );
        assert!(!text.contains("squall_complete_latency_seconds_count{component=\"bolt\""));
    }
}
