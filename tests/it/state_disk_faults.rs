//! A full disk under micro-batch state: the run's files may not grow past a limit
//! (`RLIMIT_FSIZE` on the child, with `SIGXFSZ` ignored, so a write past it fails with
//! `EFBIG` as a full file system fails with `ENOSPC`). The run stops with an error that
//! names the state directory and says what to do (exit 1, no panic); a restart under the
//! same limit fails the same way without harming the store; once the limit is lifted, a
//! restart resumes and the counts are exact.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::cli::{TempDir, root, tail};
use crate::support::state::committed_counts;

/// Tweets of the run: each one's `id` is counted, so the state holds one key per tweet
/// (about 9 MB for all of them).
const TWEETS: u64 = 150_000;
/// The file-size limit: the state stops growing about a third of the way.
const LIMIT: u64 = 4 << 20;

fn topology() -> String {
    format!(
        r#"name = "disk-full"

[spouts.source]
type = "generator"
seed = 5
rate = 0
limit = {TWEETS}

[bolts.counts]
type = "count"
parallelism = 2
field = "id"
inputs = [{{ from = "source", grouping = "fields", fields = ["id"] }}]
"#
    )
}

/// Runs the job on `state` with files limited to `limit` bytes; its exit and stderr.
fn run(file: &Path, state: &Path, limit: Option<u64>) -> (ExitStatus, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_squall"));
    cmd.current_dir(root())
        .args(["topology", "run", "--quiet", "--mode", "microbatch"])
        .arg(file)
        .arg("--state-dir")
        .arg(state)
        .args(["--batch-interval", "20ms", "--max-batch", "500"])
        .env_remove("SQUALL_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A pipe: the limit applies to files only.
        .stderr(Stdio::piped());
    if let Some(limit) = limit {
        // SAFETY: between fork and exec only async-signal-safe calls (signal, setrlimit).
        unsafe {
            cmd.pre_exec(move || {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let r = libc::rlimit {
                    rlim_cur: limit as libc::rlim_t,
                    rlim_max: limit as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &r) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn squall: {e}"));
    let mut err = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("squall did not exit within 120 s");
            }
        }
    };
    (status, reader.join().unwrap_or_default())
}

fn assert_clear_error(status: ExitStatus, stderr: &str, state: &Path, what: &str) {
    assert_eq!(
        status.code(),
        Some(1),
        "{what}: exit {status:?}\n{}",
        tail(stderr)
    );
    assert!(
        !stderr.contains("panicked"),
        "{what}: a panic\n{}",
        tail(stderr)
    );
    let last = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{what}: no error line\n{}", tail(stderr)));
    for want in ["no space left", &state.display().to_string(), "run again"] {
        assert!(
            last.contains(want),
            "{what}: the error does not say {want:?}: {last}"
        );
    }
}

#[test]
fn a_full_state_directory_stops_the_run_clearly_and_a_restart_resumes_exactly() {
    let dir = TempDir::new("disk-full");
    let file = dir.write("t.toml", &topology());
    let state = dir.join("state");

    let (status, stderr) = run(&file, &state, Some(LIMIT));
    assert_clear_error(status, &stderr, &state, "the run that filled its limit");
    let (txid, counts) = committed_counts(&state, "counts", 2);
    assert!(txid > 0, "nothing was committed before the limit");
    assert!(
        (counts.len() as u64) < TWEETS,
        "the limit was not reached mid-run ({} keys)",
        counts.len()
    );

    // Still no space: the same clear error, and the store is unharmed.
    let (status, stderr) = run(&file, &state, Some(LIMIT));
    assert_clear_error(status, &stderr, &state, "a restart without space");
    let (again, _) = committed_counts(&state, "counts", 2);
    assert!(
        again >= txid,
        "the committed txid went back: {txid} then {again}"
    );

    // Space freed: the run resumes and finishes; every tweet counted exactly once.
    let (status, stderr) = run(&file, &state, None);
    assert!(
        status.success(),
        "the restart with space: {status:?}\n{}",
        tail(&stderr)
    );
    let (_, counts) = committed_counts(&state, "counts", 2);
    let wrong: Vec<(&String, &u64)> = counts.iter().filter(|(_, n)| **n != 1).take(10).collect();
    assert!(wrong.is_empty(), "ids counted other than once: {wrong:?}");
    assert_eq!(counts.len() as u64, TWEETS, "ids counted");
}
