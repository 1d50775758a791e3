//! Runs the points: one child `squall topology run` per (mode, rate), its report read
//! back into a [`Point`]. A child that fails (exit code, no report, a hang) makes a failed
//! point with the tail of its stderr; the other points still run.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::table::{Point, RunReport};
use super::{Mode, Plan, Rate};

/// Extra time a child gets past `--duration` (startup, drain, report) before it is killed.
const GRACE: Duration = Duration::from_secs(120);

/// How many lines of a failed child's stderr the error keeps.
const TAIL_LINES: usize = 12;

/// The arguments of the child run of one point (after the executable).
pub fn child_args(plan: &Plan, mode: Mode, rate: Rate, report: &Path) -> Vec<String> {
    let mut a = vec![
        "topology".to_string(),
        "run".to_string(),
        plan.file.display().to_string(),
        "--duration".to_string(),
        humantime::format_duration(plan.duration).to_string(),
        "--quiet".to_string(),
        "--report".to_string(),
        report.display().to_string(),
    ];
    for s in &plan.generators {
        a.push("--set".to_string());
        a.push(format!("spouts.{s}.rate={}", rate.generator_rate()));
    }
    for s in &plan.sets {
        a.push("--set".to_string());
        a.push(s.clone());
    }
    if mode == Mode::Microbatch {
        a.push("--mode".to_string());
        a.push("microbatch".to_string());
        if let Some(d) = plan.batch_interval {
            a.push("--batch-interval".to_string());
            a.push(humantime::format_duration(d).to_string());
        }
        if let Some(n) = plan.max_batch {
            a.push("--max-batch".to_string());
            a.push(n.to_string());
        }
    }
    a
}

/// Where the report and the stderr log of a point go.
pub fn point_paths(plan: &Plan, mode: Mode, rate: Rate) -> (PathBuf, PathBuf) {
    let runs = plan.out.join("runs");
    (
        runs.join(format!("{mode}-{rate}.json")),
        runs.join(format!("{mode}-{rate}.log")),
    )
}

/// Runs every point in order (each mode at each rate), with progress on stderr.
pub fn run_all(exe: &Path, plan: &Plan) -> Vec<Point> {
    let total = plan.modes.len() * plan.rates.len();
    let mut points = Vec::with_capacity(total);
    for &mode in &plan.modes {
        for &rate in &plan.rates {
            let n = points.len() + 1;
            let offered = match rate {
                Rate::Tuples(r) => format!("{r} tuples/s"),
                Rate::Max => "max (unpaced)".to_string(),
            };
            eprintln!(
                "squall bench: [{n}/{total}] {mode} at {offered} for {}",
                humantime::format_duration(plan.duration)
            );
            let p = match run_point(exe, plan, mode, rate) {
                Ok(p) => {
                    eprintln!(
                        "squall bench: [{n}/{total}] {mode} at {rate}: {:.0} tuples/s, complete p50 {:.3} ms, p99 {:.3} ms, CPU {:.0}%, RSS {:.1} MiB",
                        p.achieved_tps,
                        p.latency_us.p50 / 1000.0,
                        p.latency_us.p99 / 1000.0,
                        p.cpu_percent,
                        p.peak_rss_mib
                    );
                    p
                }
                Err(e) => {
                    eprintln!("squall bench: [{n}/{total}] {mode} at {rate}: FAILED: {e}");
                    Point::failed(mode, rate, e)
                }
            };
            points.push(p);
        }
    }
    points
}

/// Runs one point; the error says what went wrong, with the child's stderr tail.
fn run_point(exe: &Path, plan: &Plan, mode: Mode, rate: Rate) -> Result<Point, String> {
    let (report, log) = point_paths(plan, mode, rate);
    // A stale report from an earlier bench must not pass for this run's.
    let _ = std::fs::remove_file(&report);
    let args = child_args(plan, mode, rate, &report);
    let child = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let (status, stderr) = wait(child, plan.duration + GRACE)?;
    let _ = std::fs::write(&log, &stderr);
    let status = match status {
        Some(s) => s,
        None => {
            return Err(format!(
                "the run did not end within {} of its duration and was killed (stderr in {}){}",
                humantime::format_duration(GRACE),
                log.display(),
                tail_block(&stderr)
            ));
        }
    };
    if !status.success() {
        return Err(format!(
            "the run exited with {status} (stderr in {}){}",
            log.display(),
            tail_block(&stderr)
        ));
    }
    let text = std::fs::read_to_string(&report).map_err(|e| {
        format!(
            "the run wrote no report {}: {e}{}",
            report.display(),
            tail_block(&stderr)
        )
    })?;
    let parsed: RunReport = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a run report: {e}", report.display()))?;
    parsed
        .point(mode, rate, &plan.generators, plan.duration.as_secs_f64())
        .map_err(|e| format!("{}: {e}", report.display()))
}

/// Waits for the child up to `limit` (killing it then: `None`), collecting its stderr.
fn wait(mut child: Child, limit: Duration) -> Result<(Option<ExitStatus>, String), String> {
    let reader = child.stderr.take().map(|mut err| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err.read_to_end(&mut b);
            String::from_utf8_lossy(&b).into_owned()
        })
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("cannot wait for the run: {e}"));
            }
        }
    };
    let stderr = reader.and_then(|r| r.join().ok()).unwrap_or_default();
    Ok((status, stderr))
}

/// The last lines of a child's stderr, indented under the error (empty if none).
pub fn tail_block(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(TAIL_LINES);
    let mut s = String::from(":");
    for l in &lines[start..] {
        s.push_str("\n    ");
        s.push_str(l);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(modes: Vec<Mode>) -> Plan {
        Plan {
            file: PathBuf::from("topologies/t.toml"),
            topology: "t".into(),
            generators: vec!["a".into(), "b".into()],
            modes,
            rates: vec![Rate::Tuples(1000), Rate::Max],
            duration: Duration::from_secs(20),
            out: PathBuf::from("out"),
            sets: vec!["config.acking=true".into()],
            batch_interval: Some(Duration::from_millis(100)),
            max_batch: Some(5000),
            stall_probe: Duration::ZERO,
        }
    }

    #[test]
    fn event_children_get_no_mode_flag() {
        let p = plan(vec![Mode::Event]);
        let a = child_args(&p, Mode::Event, Rate::Tuples(1000), Path::new("r.json"));
        assert_eq!(
            a,
            [
                "topology",
                "run",
                "topologies/t.toml",
                "--duration",
                "20s",
                "--quiet",
                "--report",
                "r.json",
                "--set",
                "spouts.a.rate=1000",
                "--set",
                "spouts.b.rate=1000",
                "--set",
                "config.acking=true"
            ]
        );
    }

    #[test]
    fn microbatch_children_get_the_mode_and_batch_flags_and_max_is_rate_zero() {
        let p = plan(vec![Mode::Event, Mode::Microbatch]);
        let a = child_args(&p, Mode::Microbatch, Rate::Max, Path::new("r.json"));
        let s = a.join(" ");
        assert!(
            s.contains("--set spouts.a.rate=0 --set spouts.b.rate=0"),
            "{s}"
        );
        assert!(
            s.ends_with("--mode microbatch --batch-interval 100ms --max-batch 5000"),
            "{s}"
        );
        let (r, l) = point_paths(&p, Mode::Microbatch, Rate::Max);
        assert_eq!(r, PathBuf::from("out/runs/microbatch-max.json"));
        assert_eq!(l, PathBuf::from("out/runs/microbatch-max.log"));
    }

    #[test]
    fn stderr_tail_keeps_the_last_lines() {
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let t = tail_block(&text);
        assert!(t.starts_with(":\n    line 19\n"), "{t}");
        assert!(t.ends_with("line 30"), "{t}");
        assert_eq!(tail_block("\n\n"), "");
    }
}
