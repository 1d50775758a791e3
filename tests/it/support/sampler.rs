//! Samples a running `squall ... --http` process once a second, as `benches/soak.sh` does:
//! its RSS and open file descriptors from `/proc/PID`, and the totals of `/api/metrics`
//! (with `/metrics` fetched too, so both endpoints serve the whole run).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::http::{Served, try_get};

/// The spouts' and bolts' totals of one `/api/metrics` answer.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub emitted: u64,
    pub acked: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub bolts_failed: u64,
    pub pending: u64,
}

/// One sample: seconds since the sampling started, and what was read then.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub t_s: f64,
    pub rss_kib: u64,
    pub fds: u64,
    /// `None` when the metrics could not be read.
    pub totals: Option<Totals>,
}

/// `VmRSS` of `/proc/PID/status`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Open file descriptors of the process.
pub fn fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

fn sum(v: &serde_json::Value, kind: &str, field: &str) -> u64 {
    v["components"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter(|c| c["kind"] == kind)
                .filter_map(|c| c[field].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

/// The totals of `/api/metrics`, if it answers 200 with JSON (and `/metrics` answers 200).
pub fn totals(addr: SocketAddr) -> Option<Totals> {
    let r = try_get(addr, "/api/metrics")?;
    if r.status != 200 || try_get(addr, "/metrics")?.status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
    Some(Totals {
        emitted: sum(&v, "spout", "emitted"),
        acked: sum(&v, "spout", "acked"),
        failed: sum(&v, "spout", "failed"),
        timed_out: sum(&v, "spout", "timed_out"),
        bolts_failed: sum(&v, "bolt", "failed"),
        pending: sum(&v, "spout", "pending"),
    })
}

/// Samples `served` every `every` until it exits, or panics after `timeout`. Returns the
/// samples and whether the process exited with success.
pub fn sample_until_exit(
    served: &mut Served,
    every: Duration,
    timeout: Duration,
) -> (Vec<Sample>, bool) {
    let pid = served.child.id();
    let t0 = Instant::now();
    let mut out = Vec::new();
    for i in 1u32.. {
        if let Some(status) = served.child.try_wait().expect("wait for squall") {
            return (out, status.success());
        }
        assert!(
            t0.elapsed() < timeout,
            "squall still running after {timeout:?}"
        );
        let (Some(rss_kib), Some(fds)) = (rss_kib(pid), fds(pid)) else {
            std::thread::sleep(Duration::from_millis(20));
            continue; // exiting
        };
        let totals = totals(served.addr);
        out.push(Sample {
            t_s: t0.elapsed().as_secs_f64(),
            rss_kib,
            fds,
            totals,
        });
        let next = t0 + every * i;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    unreachable!()
}

/// Mean RSS (KiB) of the samples with `from <= t_s < to`, and how many there were.
pub fn mean_rss(samples: &[Sample], from: f64, to: f64) -> (f64, usize) {
    let w: Vec<u64> = samples
        .iter()
        .filter(|s| s.t_s >= from && s.t_s < to)
        .map(|s| s.rss_kib)
        .collect();
    if w.is_empty() {
        return (0.0, 0);
    }
    (w.iter().sum::<u64>() as f64 / w.len() as f64, w.len())
}

/// The `q`-quantile (0..=1) of `values` (nearest rank), 0 when empty.
pub fn quantile(values: &mut [u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    values[((values.len() - 1) as f64 * q).round() as usize]
}
