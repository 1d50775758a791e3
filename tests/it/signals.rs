//! Ctrl-C / SIGTERM: the run stops its spouts, drains in-flight trees, flushes the
//! windows, writes the report and exits 0.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cli::*;

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
    // Every wait below has a deadline: a child that never prints or never exits fails
    // the test (and is killed) instead of hanging it.
    let mut lines = Lines::new(stderr);
    // Wait for the first status line: the topology is running and tuples flow.
    let status_line = |l: &str| l.contains("tuples/s") && l.contains("acked");
    if lines
        .wait_for(Duration::from_secs(15), status_line)
        .is_none()
    {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no status line within 15 s:\n{}", lines.text());
    }
    let pid = child.id().to_string();
    let killed = Command::new("kill").args([signal, &pid]).status();
    assert!(
        killed.map(|s| s.success()).unwrap_or(false),
        "kill {signal} {pid}"
    );
    let exit_within = Duration::from_secs(20);
    let deadline = Instant::now() + exit_within;
    let ended = lines.until_eof(exit_within);
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if !ended || Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "squall did not exit within {exit_within:?} of {signal}:\n{}",
            lines.text()
        );
    };
    let rest = &lines.seen;
    assert!(status.success(), "exit {status:?}:\n{}", lines.text());
    assert!(
        rest.iter().any(|l| l.contains("stopping (signal)")),
        "{}",
        lines.text()
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
