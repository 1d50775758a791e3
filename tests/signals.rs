//! Ctrl-C / SIGTERM: the run stops its spouts, drains in-flight trees, flushes the
//! windows, writes the report and exits 0.

mod cli_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::*;

fn stop_with(signal: &str) {
    let dir = TempDir::new("signal");
    let report = dir.join("r.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_squall"))
        .current_dir(root())
        .args([
            "topology",
            "run",
            "topologies/trending-hashtags.toml",
            "--report",
        ])
        .arg(&report)
        .args(["--set", "bolts.sink.quiet=true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn squall: {e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    // Wait for the first status line: the topology is running and tuples flow.
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut saw_status = false;
    for line in lines.by_ref() {
        let line = line.unwrap_or_default();
        if line.contains("tuples/s") && line.contains("acked") {
            saw_status = true;
            break;
        }
        if Instant::now() > deadline {
            break;
        }
    }
    assert!(saw_status, "no status line before the deadline");
    let pid = child.id().to_string();
    let killed = Command::new("kill").args([signal, &pid]).status();
    assert!(
        killed.map(|s| s.success()).unwrap_or(false),
        "kill {signal} {pid}"
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("squall did not exit after {signal}:\n{}", rest.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit {status:?}:\n{}", rest.join("\n"));
    assert!(
        rest.iter().any(|l| l.contains("stopping (signal)")),
        "{}",
        rest.join("\n")
    );
    let r = read_report(&report);
    let emitted = field_u64(&r, "spouts.source.emitted");
    let acked = field_u64(&r, "spouts.source.acked");
    assert!(emitted > 0);
    assert_eq!(acked, emitted, "every emitted tree drained before exit");
    assert_eq!(field_u64(&r, "spouts.source.failed"), 0);
    assert_eq!(
        report_topk(&r).len(),
        10,
        "the final window is in the report"
    );
}

#[test]
fn sigterm_drains_and_reports() {
    stop_with("-TERM");
}

#[test]
fn sigint_drains_and_reports() {
    stop_with("-INT");
}
