//! Helpers of the CLI-level integration tests: run the real `squall` binary with a hard
//! deadline (killing it on timeout), unique temporary directories that clean up after
//! themselves, the JSON report, and the exact top-k of the generator's tweets.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use squall::tweet::generator::{GeneratorConfig, TweetGenerator};
use squall::window::rankings::top_k_of;

/// The package root (the CLI runs from here, so relative topology paths work).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A shipped topology file.
pub fn topology(name: &str) -> PathBuf {
    root().join("topologies").join(name)
}

/// The `tokenize` and `hashtags` bolts (parallelism 2 each) of the trending-hashtags job,
/// behind a spout `source`; `hashtags` emits field `hashtag`. For topology texts in tests.
pub const HASHTAG_BOLTS: &str = r#"
[bolts.tokenize]
type = "tokenize"
parallelism = 2
inputs = [{ from = "source", grouping = "local_or_shuffle" }]

[bolts.hashtags]
type = "hashtags"
parallelism = 2
inputs = [{ from = "tokenize", grouping = "local_or_shuffle" }]
"#;

/// What one run of the binary left.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics (with both outputs) unless the run exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "squall exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            tail(&self.stdout),
            tail(&self.stderr)
        );
        self
    }

    /// Panics unless the run exited with a non-zero code.
    pub fn assert_failure(&self) -> &Self {
        assert!(
            !self.status.success() && self.status.code().is_some(),
            "squall should have failed, exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            tail(&self.stdout),
            tail(&self.stderr)
        );
        self
    }
}

/// The last few KB of an output, for failure messages.
pub fn tail(s: &str) -> &str {
    let max = 4000;
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Runs `squall ARGS` from the package root; kills it and panics if it has not exited
/// within `timeout`.
pub fn squall<I, S>(args: I, timeout: Duration) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(&args)
        .current_dir(root())
        .env_remove("SQUALL_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the squall binary");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    });
    let deadline = started + timeout;
    let status = loop {
        match child.try_wait().expect("wait for squall") {
            Some(s) => break s,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = out_t.join().unwrap_or_default();
                let stderr = err_t.join().unwrap_or_default();
                panic!(
                    "squall {args:?} did not exit within {timeout:?}; killed it\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    tail(&stdout),
                    tail(&stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let elapsed = started.elapsed();
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
        elapsed,
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "squall-test-{label}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `text` to `name` in this directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, text).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads and parses a JSON report.
pub fn read_report(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON ({e}):\n{text}"))
}

/// The report's `topk` as `(key, count)` pairs.
pub fn report_topk(report: &serde_json::Value) -> Vec<(String, u64)> {
    let topk = report["topk"]
        .as_array()
        .unwrap_or_else(|| panic!("report has no `topk` array: {report}"));
    topk.iter()
        .map(|e| {
            let pair = e
                .as_array()
                .filter(|p| p.len() == 2)
                .unwrap_or_else(|| panic!("topk entry is not [key, count]: {e}"));
            let key = pair[0]
                .as_str()
                .unwrap_or_else(|| panic!("topk key is not a string: {e}"));
            let count = pair[1]
                .as_u64()
                .unwrap_or_else(|| panic!("topk count is not an integer: {e}"));
            (key.to_string(), count)
        })
        .collect()
}

/// The value at `path` (dot-separated object keys), or a panic naming what is missing.
pub fn field<'a>(report: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    let mut v = report;
    for part in path.split('.') {
        v = v
            .get(part)
            .unwrap_or_else(|| panic!("report has no `{path}` (missing `{part}`): {report}"));
    }
    v
}

/// `field` as an unsigned integer.
pub fn field_u64(report: &serde_json::Value, path: &str) -> u64 {
    field(report, path)
        .as_u64()
        .unwrap_or_else(|| panic!("report `{path}` is not an unsigned integer: {report}"))
}

/// `field` as a number.
pub fn field_f64(report: &serde_json::Value, path: &str) -> f64 {
    field(report, path)
        .as_f64()
        .unwrap_or_else(|| panic!("report `{path}` is not a number: {report}"))
}

/// Hashtag counts of the generator's tweets `1..=n` (default config with `seed`).
pub fn generator_hashtag_counts(seed: u64, n: u64) -> HashMap<String, u64> {
    let g = TweetGenerator::new(GeneratorConfig {
        seed,
        ..GeneratorConfig::default()
    })
    .expect("generator");
    let mut counts: HashMap<String, u64> = HashMap::new();
    for i in 1..=n {
        for tag in g.tweet_at(i).hashtags {
            *counts.entry(tag).or_default() += 1;
        }
    }
    counts
}

/// Exact top-`k` of `counts` (count descending, key ascending).
pub fn top_k(counts: &HashMap<String, u64>, k: usize) -> Vec<(String, u64)> {
    top_k_of(counts.iter().map(|(k, c)| (k.clone(), *c)), k)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A ranking record's `rankings` as `(key, count)` pairs.
pub fn record_ranking(record: &serde_json::Value) -> Vec<(String, u64)> {
    let report = serde_json::json!({ "topk": record["rankings"] });
    report_topk(&report)
}

/// Checks the ranking records (`{"rankings", "window_start", "window_end", "final"}`, in
/// the order written) of a run that took place within `run` (ms since the Unix epoch),
/// with windows of `window_ms` sliding by `slide_ms`: each record has exactly these
/// fields, every window end is a real slide boundary of the run (the final one at most a
/// slide after it ended) and its start a window before it, the ends increase, and only
/// the last record is final. Returns the last record.
pub fn check_rankings(
    records: &[serde_json::Value],
    window_ms: i64,
    slide_ms: i64,
    run: std::ops::Range<i64>,
) -> &serde_json::Value {
    let last = records
        .last()
        .unwrap_or_else(|| panic!("no ranking was written"));
    let mut previous = i64::MIN;
    for (i, r) in records.iter().enumerate() {
        let is_last = i + 1 == records.len();
        let fields: Vec<&str> = r
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut want = vec!["final", "rankings", "update", "window_end", "window_start"];
        want.sort_unstable();
        let mut got = fields.clone();
        got.sort_unstable();
        assert_eq!(got, want, "record {i}: its fields: {r}");
        let end = r["window_end"]
            .as_i64()
            .unwrap_or_else(|| panic!("record {i} has no integer window_end: {r}"));
        let start = r["window_start"]
            .as_i64()
            .unwrap_or_else(|| panic!("record {i} has no integer window_start: {r}"));
        let fin = r["final"]
            .as_bool()
            .unwrap_or_else(|| panic!("record {i} has no boolean `final`: {r}"));
        assert_eq!(fin, is_last, "record {i} of {}: {r}", records.len());
        assert_eq!(end % slide_ms, 0, "record {i}: not a slide boundary: {r}");
        assert_eq!(
            start,
            end - window_ms,
            "record {i}: the window does not start a window ({window_ms} ms) before its end: {r}"
        );
        let latest = if is_last { run.end + slide_ms } else { run.end };
        assert!(
            (run.start..=latest).contains(&end),
            "record {i}: window_end {end} is not within the run {run:?}: {r}"
        );
        assert!(end > previous, "record {i}: window_end went back: {r}");
        previous = end;
        assert!(r["rankings"].is_array(), "record {i}: {r}");
    }
    last
}

/// A `squall` process left running, for tests that act on it while it runs (signals).
/// Its stderr is read on a thread, line by line, so every wait has a deadline; its
/// stdout is left as the caller set it up (a pipe nobody reads stays full). Killed on
/// drop if still running.
pub struct Running {
    child: std::process::Child,
    /// The stderr lines, read on a thread.
    pub stderr: Lines,
}

impl Running {
    /// Starts `squall ARGS` from the package root with stderr piped.
    pub fn start<I, S>(args: I, stdout: Stdio) -> Running
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Running::start_logging(args, stdout, None)
    }

    /// [`start`](Self::start) with `SQUALL_LOG` set to `log` (`None`: unset).
    pub fn start_logging<I, S>(args: I, stdout: Stdio, log: Option<&str>) -> Running
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_squall"));
        match log {
            Some(l) => cmd.env("SQUALL_LOG", l),
            None => cmd.env_remove("SQUALL_LOG"),
        };
        let mut child = cmd
            .args(args)
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the squall binary");
        let err = child.stderr.take().expect("stderr");
        Running {
            child,
            stderr: Lines::new(err),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a stderr line satisfies `pred`; panics with the stderr so far if none
    /// does within `timeout` (or if stderr ends first).
    pub fn wait_line(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        if self.stderr.wait_for(timeout, pred).is_none() {
            panic!(
                "no {what} on stderr within {timeout:?}:\n{}",
                tail(&self.stderr.text())
            );
        }
    }

    /// Sends `signal` (`-INT`, `-TERM`) with `kill`.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let ok = Command::new("kill")
            .args([signal, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {signal} {pid}");
    }

    /// Waits for the process to exit and for the rest of its stderr; kills it and panics
    /// with its stderr if it has not exited within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait().expect("wait for squall") {
                Some(s) => break s,
                None if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    self.stderr.until_eof(Duration::from_secs(5));
                    panic!(
                        "squall did not exit within {timeout:?}; killed it\n--- stderr ---\n{}",
                        tail(&self.stderr.text())
                    );
                }
                None => {
                    // Keep reading meanwhile (a full stderr pipe would hold the child).
                    self.stderr.wait_for(Duration::from_millis(10), |_| false);
                    std::thread::sleep(Duration::from_millis(2)); // stderr may have ended
                }
            }
        };
        // The rest of stderr: the reader thread ends at EOF (the process is gone).
        self.stderr.until_eof(Duration::from_secs(5));
        status
    }

    /// Every stderr line read, joined.
    pub fn stderr_text(&self) -> String {
        self.stderr.text()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The lines of a child's output, read on a thread so that every wait has a deadline
/// (a child that never writes or never exits fails the test instead of hanging it).
pub struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
    /// Every line received so far.
    pub seen: Vec<String>,
}

impl Lines {
    pub fn new(from: impl Read + Send + 'static) -> Lines {
        use std::io::BufRead;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(from).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The first line (from now) for which `want` holds, or `None` if none came within
    /// `timeout` or the output ended first.
    pub fn wait_for(&mut self, timeout: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.rx.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if want(&line) {
                return Some(line);
            }
        }
    }

    /// Reads to the end of the output; `false` if it had not ended within `timeout`.
    pub fn until_eof(&mut self, timeout: Duration) -> bool {
        use std::sync::mpsc::RecvTimeoutError;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => return true,
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    }

    /// The lines seen so far, one per line (for failure messages).
    pub fn text(&self) -> String {
        self.seen.join("\n")
    }
}
