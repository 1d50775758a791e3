//! `squall top`: the table rendered from a captured `/api/metrics` answer, `--once`
//! against a live run, and the interactive view under a pseudo-terminal (`script`),
//! quitting on `q`, on Ctrl-C and on SIGTERM.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use squall::cli::top::{Snapshot, render};

use crate::support::http;
use crate::support::http::{serve_topology, wait_for};

const CAPTURED: &str = include_str!("../fixtures/api-metrics.json");

#[test]
fn renders_the_table_of_a_captured_snapshot() {
    let s: Snapshot = serde_json::from_str(CAPTURED).expect("the captured answer parses");
    let lines = render(&s, 200);
    assert!(
        lines[0].starts_with(&format!(
            "squall top: trending-hashtags  up {:.0}s",
            s.uptime_s
        )),
        "{}",
        lines[0]
    );
    let header = &lines[2];
    for col in [
        "COMPONENT",
        "KIND",
        "TASKS",
        "EMITTED/S",
        "EMITTED",
        "EXECUTED",
        "ACKED",
        "FAILED",
        "EXEC P99",
        "COMPL P99",
        "CAP",
        "RESTARTS",
        "PENDING",
    ] {
        assert!(header.contains(col), "{col} in {header}");
    }
    let rows = &lines[3..];
    let names: Vec<&str> = rows
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        [
            "source",
            "tokenize",
            "hashtags",
            "counts",
            "rank",
            "total_rank",
            "sink"
        ]
    );
    // The source row: spout, 2 tasks, thousands grouped, complete p99 in ms, no executed.
    let source: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(&source[..3], ["source", "spout", "2"]);
    let c = &s.components[0];
    let grouped = |n: u64| {
        let d = n.to_string();
        let mut out = String::new();
        for (i, ch) in d.chars().enumerate() {
            if i > 0 && (d.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        out
    };
    assert_eq!(source[4], grouped(c.counts.emitted));
    assert_eq!(source[5], "-");
    assert_eq!(source[6], grouped(c.counts.acked));
    assert!(source[9].ends_with("ms"), "{}", rows[0]);
    // A bolt row has its execute p99 and no pending.
    let tokenize: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(tokenize[5], grouped(s.components[1].counts.executed));
    assert!(tokenize[8].ends_with("µs"), "{}", rows[1]);
    assert_eq!(tokenize.last(), Some(&"-"));
    // Narrow terminals cut lines rather than wrap them.
    assert!(render(&s, 40).iter().all(|l| l.chars().count() <= 40));
}

#[test]
fn once_prints_the_table_of_a_live_run() {
    let s = serve_topology(
        "topologies/trending-hashtags.toml",
        &["--set", "spouts.source.rate=2000", "--duration", "120s"],
    );
    let url = format!("http://{}", s.addr);
    let out = wait_for(
        "squall top --once to show acked trees",
        Duration::from_secs(60),
        || {
            let out = Command::new(env!("CARGO_BIN_EXE_squall"))
                .args(["top", "--once", "--url", &url])
                .output()
                .expect("run squall top");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let acked = text
                .lines()
                .find(|l| l.starts_with("source "))
                .and_then(|l| l.split_whitespace().nth(6))
                .map(|v| v.replace(',', ""))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            (acked > 0).then_some(text)
        },
    );
    for c in [
        "source",
        "tokenize",
        "hashtags",
        "counts",
        "rank",
        "total_rank",
        "sink",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{c} "))),
            "{c} in\n{out}"
        );
    }
    // A dead URL is an error, not a hang.
    let dead = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(["top", "--once", "--url", "http://127.0.0.1:9"])
        .output()
        .expect("run squall top");
    assert!(!dead.status.success());
    assert!(String::from_utf8_lossy(&dead.stderr).contains("cannot reach"));
}

/// `squall top` against a live run, inside `script` (a pseudo-terminal), with its table
/// on the screen.
struct LiveView {
    /// The run it watches (stopped when dropped).
    _run: http::Served,
    /// The `squall top` command line `script` runs.
    cmd: String,
    script: std::process::Child,
    /// What the terminal showed.
    log: std::path::PathBuf,
}

impl LiveView {
    fn start(tag: &str) -> LiveView {
        let run = serve_topology(
            "topologies/trending-hashtags.toml",
            &["--set", "spouts.source.rate=500", "--duration", "120s"],
        );
        let cmd = format!(
            "{} top --url http://{}",
            env!("CARGO_BIN_EXE_squall"),
            run.addr
        );
        let log = std::env::temp_dir().join(format!("squall-top-{}-{tag}.log", std::process::id()));
        let script = Command::new("script")
            .args(["-q", "-f", "-e", "-c", &cmd])
            .arg(&log)
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("`script` (util-linux) runs");
        wait_for("the table on the terminal", Duration::from_secs(30), || {
            let seen = std::fs::read_to_string(&log).unwrap_or_default();
            seen.contains("COMPONENT").then_some(())
        });
        LiveView {
            _run: run,
            cmd,
            script,
            log,
        }
    }

    /// Waits for `squall top` to exit (at most 15 s); its status and what the terminal
    /// showed.
    fn wait_exit(mut self, after: &str) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(st) = self.script.try_wait().expect("wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.script.kill();
                panic!("squall top did not quit on {after} within 15 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let seen = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        (status, seen)
    }
}

/// Sends `key` to the live view and expects a clean exit.
fn quits_on(key: &[u8], tag: &str) {
    let mut view = LiveView::start(tag);
    let mut stdin = view.script.stdin.take().expect("stdin");
    stdin.write_all(key).expect("send key");
    stdin.flush().ok();
    let (status, _) = view.wait_exit(&format!("{key:?}"));
    assert!(status.success(), "squall top exited with {status:?}");
}

#[test]
fn the_live_view_quits_on_q() {
    quits_on(b"q", "q");
}

#[test]
fn the_live_view_quits_on_ctrl_c() {
    quits_on(b"\x03", "ctrl-c");
}

/// SIGTERM (as `kill` or a service manager sends) ends the live view with the terminal
/// restored: the alternate screen is left and the cursor shown again.
#[test]
fn the_live_view_restores_the_terminal_on_sigterm() {
    let view = LiveView::start("term");
    // `squall top` runs under `script`: find it by its command line.
    let top_pid = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            let line = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let line = String::from_utf8_lossy(&line).replace('\0', " ");
            line.trim_end() == view.cmd
        })
        .expect("the squall top process");
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -TERM {top_pid}")])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let (status, seen) = view.wait_exit("SIGTERM");
    assert!(status.success(), "squall top exited with {status:?}");
    let table = seen.rfind("COMPONENT").unwrap_or(0);
    let rest = &seen[table..];
    assert!(
        rest.contains("\x1b[?1049l"),
        "the alternate screen was not left"
    );
    assert!(rest.contains("\x1b[?25h"), "the cursor was not shown again");
}
