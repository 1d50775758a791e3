//! The JSON report written at the end of a run (`--report PATH`). Its field names are
//! fixed: other tools read them.

use std::collections::BTreeMap;

use serde::Serialize;

use super::resources;
use crate::metrics::{COUNTERS, Topk};
use crate::metrics::{MetricsSnapshot, Percentiles};
use crate::runtime::RunSummary;

/// The part of a run a report covers when the run had a warm-up (`--warmup`): what the
/// metrics and the process's CPU counted from the end of the warm-up to the end.
#[derive(Debug)]
pub struct Window {
    pub warmup: std::time::Duration,
    pub metrics: MetricsSnapshot,
    pub duration: std::time::Duration,
    pub cpu_seconds: f64,
}

#[derive(Serialize, Debug)]
pub struct SpoutReport {
    pub emitted: u64,
    pub acked: u64,
    pub failed: u64,
    pub complete_latency_us: Percentiles,
}

#[derive(Serialize, Debug)]
pub struct BoltReport {
    pub executed: u64,
    pub emitted: u64,
    pub acked: u64,
    pub failed: u64,
    pub execute_latency_us: Percentiles,
}

#[derive(Serialize, Debug)]
pub struct Report {
    pub topology: String,
    pub mode: String,
    /// The time the figures cover: the run, or what followed its warm-up.
    pub duration_s: f64,
    /// The warm-up before `duration_s` that the figures leave out (`--warmup`; 0: none).
    pub warmup_s: f64,
    /// Spout tuples emitted per second over `duration_s`.
    pub throughput_tps: f64,
    pub spouts: BTreeMap<String, SpoutReport>,
    pub bolts: BTreeMap<String, BoltReport>,
    /// The last ranking the total_rank bolt produced, if any.
    pub topk: Vec<(String, u64)>,
    /// The start of the window `topk` covers (ms since the Unix epoch); null for a running
    /// ranking (or none).
    pub topk_window_start: Option<i64>,
    /// The end of the window `topk` covers (ms since the Unix epoch); null for a running
    /// ranking (or none).
    pub topk_window_end: Option<i64>,
    /// `topk` is the final ranking: the flush at the end of the run.
    pub topk_final: bool,
    /// Named counters per component (oversized lines, malformed JSON, restarts...).
    pub counters: BTreeMap<String, BTreeMap<String, u64>>,
    /// User + system CPU seconds the process used over `duration_s` (without a warm-up:
    /// the whole process, startup and drain included).
    pub cpu_seconds: f64,
    /// Peak resident set size of the process (`VmHWM`), 0 where it cannot be read.
    pub peak_rss_bytes: u64,
}

impl Report {
    /// The report of a run: the whole of it, or with `window` what followed its warm-up.
    pub fn new(s: &RunSummary, topk: Option<Topk>, window: Option<&Window>) -> Report {
        let (metrics, duration, warmup, cpu_seconds) = match window {
            Some(w) => (&w.metrics, w.duration, w.warmup, w.cpu_seconds),
            None => (
                &s.metrics,
                s.duration,
                std::time::Duration::ZERO,
                resources::cpu_seconds(),
            ),
        };
        let mut spouts = BTreeMap::new();
        let mut bolts = BTreeMap::new();
        let mut counters = BTreeMap::new();
        let mut emitted = 0;
        for (name, c) in &metrics.components {
            let mut cs = c.counters.clone();
            for (counter, &v) in COUNTERS.iter().zip(c.counts.values()) {
                if counter.report && v > 0 {
                    cs.insert(counter.name.to_string(), v);
                }
            }
            if !cs.is_empty() {
                counters.insert(name.clone(), cs);
            }
            if c.kind == "spout" {
                emitted += c.emitted;
                spouts.insert(
                    name.clone(),
                    SpoutReport {
                        emitted: c.emitted,
                        acked: c.acked,
                        failed: c.failed,
                        complete_latency_us: c.complete_latency_us.clone(),
                    },
                );
            } else {
                bolts.insert(
                    name.clone(),
                    BoltReport {
                        executed: c.executed,
                        emitted: c.emitted,
                        acked: c.acked,
                        failed: c.failed,
                        execute_latency_us: c.execute_latency_us.clone(),
                    },
                );
            }
        }
        let secs = duration.as_secs_f64();
        let ms = |secs: f64| (secs * 1000.0).round() / 1000.0;
        Report {
            topology: s.topology.clone(),
            mode: s.mode.to_string(),
            // To the microsecond: a short run's throughput follows from it.
            duration_s: (secs * 1e6).round() / 1e6,
            warmup_s: ms(warmup.as_secs_f64()),
            throughput_tps: if secs > 0.0 {
                (emitted as f64 / secs).round()
            } else {
                0.0
            },
            spouts,
            bolts,
            topk_window_start: topk.as_ref().and_then(|t| t.window_start),
            topk_window_end: topk.as_ref().and_then(|t| t.window_end),
            topk_final: topk.as_ref().is_some_and(|t| t.is_final),
            topk: topk.map(|t| t.ranking).unwrap_or_default(),
            counters,
            cpu_seconds: ms(cpu_seconds),
            peak_rss_bytes: resources::peak_rss_bytes(),
        }
    }
}

/// A run's duration for people: milliseconds under a second (a short run must not read
/// `0.00s`), with enough decimals that half of the last digit stays within 2 % of the
/// figure (`1.9 ms` would be ±2.6 %: it reads `1.93 ms`), else seconds with two decimals.
pub(crate) fn duration_text(secs: f64) -> String {
    if secs < 1.0 {
        let ms = secs * 1e3;
        let decimals = if ms >= 2.5 {
            1
        } else if ms >= 0.25 {
            2
        } else {
            3
        };
        format!("{ms:.decimals$} ms")
    } else {
        format!("{secs:.2}s")
    }
}

#[cfg(test)]
mod duration_tests {
    use super::duration_text;

    #[test]
    fn short_runs_read_in_milliseconds() {
        assert_eq!(duration_text(0.003_712), "3.7 ms");
        assert_eq!(duration_text(0.999_94), "999.9 ms");
        assert_eq!(duration_text(0.001_934), "1.93 ms");
        assert_eq!(duration_text(0.000_2), "0.200 ms");
        assert_eq!(duration_text(1.0), "1.00s");
        assert_eq!(duration_text(12.054), "12.05s");
    }
}
