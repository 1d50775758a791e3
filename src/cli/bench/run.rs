//! Runs the points: one child `squall topology run` per (mode, rate), its report read
//! back into a [`Point`]. A child that fails (exit code, no report, a hang) makes a failed
//! point with the tail of its stderr; the other points still run.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::table::{Point, RunReport, RunSummary};
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
    if !plan.warmup.is_zero() {
        a.push("--warmup".to_string());
        a.push(humantime::format_duration(plan.warmup).to_string());
    }
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

/// Where the report and the stderr log of a point go (of run `round`, counted from 1,
/// when each point runs more than once).
pub fn point_paths(plan: &Plan, mode: Mode, rate: Rate, round: u32) -> (PathBuf, PathBuf) {
    let runs = plan.out.join("runs");
    let name = if plan.repeat > 1 {
        format!("{mode}-{rate}-{round}")
    } else {
        format!("{mode}-{rate}")
    };
    (
        runs.join(format!("{name}.json")),
        runs.join(format!("{name}.log")),
    )
}

/// Runs every point `plan.repeat` times, with progress on stderr. Within a round the
/// modes take turns at each rate, so the modes' runs at one rate are back to back (the
/// machine's slow minutes hit both alike). Returns one point per (mode, rate), mode by
/// mode: the median run ([`median_run`]), with every run listed when there are several.
pub fn run_all(exe: &Path, plan: &Plan) -> Vec<Point> {
    let total = plan.modes.len() * plan.rates.len() * plan.repeat as usize;
    let mut done = 0;
    let mut runs: Vec<Vec<Point>> = vec![Vec::new(); plan.modes.len() * plan.rates.len()];
    for round in 1..=plan.repeat {
        for (ri, &rate) in plan.rates.iter().enumerate() {
            for (mi, &mode) in plan.modes.iter().enumerate() {
                done += 1;
                let p = run_logged(exe, plan, mode, rate, round, (done, total));
                runs[mi * plan.rates.len() + ri].push(p);
            }
        }
    }
    // Every (mode, rate) ran at least once (`repeat` is at least 1).
    runs.into_iter()
        .filter_map(|r| median_run(r, plan.repeat > 1))
        .collect()
}

/// One run of one point, with its progress lines.
fn run_logged(
    exe: &Path,
    plan: &Plan,
    mode: Mode,
    rate: Rate,
    round: u32,
    (n, total): (usize, usize),
) -> Point {
    let offered = match rate {
        Rate::Tuples(r) => format!("{r} tuples/s"),
        Rate::Max => "max (unpaced)".to_string(),
    };
    eprintln!(
        "squall bench: [{n}/{total}] {mode} at {offered} for {}",
        humantime::format_duration(plan.duration)
    );
    match run_point(exe, plan, mode, rate, round) {
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
    }
}

/// The run a repeated point reports: of the runs that worked, the median by throughput
/// when unpaced (`max`) and by p99 latency when paced (the upper one of the two middle
/// runs for an even count); the last run if none worked (`None`: no runs). With `list`,
/// every run's throughput and p99 go with it, in the order they ran.
pub fn median_run(mut runs: Vec<Point>, list: bool) -> Option<Point> {
    let key = |p: &Point| match p.offered_tps {
        None => p.achieved_tps,
        Some(_) => p.latency_us.p99,
    };
    let mut ok: Vec<usize> = (0..runs.len()).filter(|&i| runs[i].ok).collect();
    ok.sort_by(|&a, &b| key(&runs[a]).total_cmp(&key(&runs[b])));
    let pick = ok
        .get(ok.len() / 2)
        .copied()
        .or(runs.len().checked_sub(1))?;
    let all: Vec<RunSummary> = runs.iter().map(RunSummary::of).collect();
    let mut p = runs.swap_remove(pick);
    if list {
        p.runs = all;
    }
    Some(p)
}

/// Runs one point; the error says what went wrong, with the child's stderr tail.
fn run_point(exe: &Path, plan: &Plan, mode: Mode, rate: Rate, round: u32) -> Result<Point, String> {
    let (report, log) = point_paths(plan, mode, rate, round);
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
    let (status, stderr) = wait(child, plan.warmup + plan.duration + GRACE)?;
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
            warmup: Duration::ZERO,
            repeat: 1,
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
        let (r, l) = point_paths(&p, Mode::Microbatch, Rate::Max, 1);
        assert_eq!(r, PathBuf::from("out/runs/microbatch-max.json"));
        assert_eq!(l, PathBuf::from("out/runs/microbatch-max.log"));
        let p = Plan { repeat: 3, ..p };
        let (r, _) = point_paths(&p, Mode::Event, Rate::Tuples(1000), 2);
        assert_eq!(r, PathBuf::from("out/runs/event-1000-2.json"));
    }

    fn run(offered: Option<u64>, tps: f64, p99: f64, ok: bool) -> Point {
        let mut p = Point::failed(Mode::Event, Rate::Max, "x".into());
        p.offered_tps = offered;
        p.achieved_tps = tps;
        p.latency_us.p99 = p99;
        p.ok = ok;
        p
    }

    #[test]
    fn the_median_run_is_by_throughput_unpaced_and_by_p99_paced() {
        let unpaced = vec![
            run(None, 3.0, 900.0, true),
            run(None, 1.0, 100.0, true),
            run(None, 2.0, 500.0, true),
        ];
        let m = median_run(unpaced, true).expect("a run");
        assert_eq!((m.achieved_tps, m.latency_us.p99), (2.0, 500.0));
        let tps: Vec<f64> = m.runs.iter().map(|r| r.achieved_tps).collect();
        assert_eq!(tps, [3.0, 1.0, 2.0], "every run, in the order they ran");
        let paced = vec![
            run(Some(10), 10.0, 700.0, true),
            run(Some(10), 10.0, 300.0, true),
            run(Some(10), 0.0, 0.0, false),
            run(Some(10), 10.0, 200.0, true),
        ];
        let m = median_run(paced, true).expect("a run");
        assert_eq!(m.latency_us.p99, 300.0, "failed runs do not count");
        assert_eq!(m.runs.iter().filter(|r| !r.ok).count(), 1);
        let failed = median_run(vec![run(None, 0.0, 0.0, false)], false).expect("a run");
        assert!(!failed.ok && failed.runs.is_empty());
        assert!(median_run(Vec::new(), true).is_none());
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
