//! The socket spout against a real TCP server on 127.0.0.1: it reads every line the
//! server sends, reconnects with back-off when the server goes away and comes back,
//! counts (and survives) oversized and invalid UTF-8 lines, and ends cleanly when
//! reconnecting is off.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use squall::bolts::chaos::ChaosConfig;
use squall::bolts::count::CountConfig;
use squall::component::registry::{BoltConfig, SpoutConfig};
use squall::component::transactional::BatchInfo;
use squall::config::Mode;
use squall::data::columns::Columns;
use squall::data::tuple::Fields;
use squall::io::backoff::BackoffConfig;
use squall::spouts::socket::SocketSpoutConfig;
use squall::{
    Bolt, BoltCollector, ComponentError, ComponentResult, Config, LocalCluster, MetricsSnapshot,
    OutputDeclarer, RunningTopology, RuntimeError, TopologyBuilder, Tuple,
};

use crate::support::cli;
use crate::support::state::committed_counts;
use crate::support::{lock, summary_line, test_config, wait_until};

const MAX_LINE: usize = 64;
const WAIT: Duration = Duration::from_secs(10);

/// Records the `(key, count)` updates of the count bolt: key → the counts seen.
#[derive(Clone, Default)]
struct CountsSink {
    seen: Arc<Mutex<BTreeMap<String, Vec<i64>>>>,
}

impl CountsSink {
    fn keys(&self) -> Vec<String> {
        lock(&self.seen).keys().cloned().collect()
    }

    fn has_all(&self, lines: &[String]) -> bool {
        let seen = lock(&self.seen);
        lines.iter().all(|l| seen.contains_key(l))
    }
}

impl Bolt for CountsSink {
    fn execute(&mut self, input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        let key = input.get_str("key").unwrap_or("<no key>").to_string();
        let count = input.get_int("count").unwrap_or(-1);
        lock(&self.seen).entry(key).or_default().push(count);
        Ok(())
    }
}

fn socket_config(port: u16, reconnect: bool) -> SocketSpoutConfig {
    SocketSpoutConfig {
        host: "127.0.0.1".into(),
        port,
        reconnect,
        max_line_bytes: MAX_LINE,
        backoff: BackoffConfig {
            initial_ms: 20,
            multiplier: 2.0,
            max_ms: 200,
        },
        ..SocketSpoutConfig::default()
    }
}

/// socket → count (fields-grouped on `text`, 2 tasks) → recording sink.
fn submit(cfg: &SocketSpoutConfig, sink: &CountsSink) -> RunningTopology {
    let mut b = TopologyBuilder::new("socket-test");
    b.spout_factory("source", cfg.build().expect("socket spout"), 1);
    let count = CountConfig {
        field: Some("text".into()),
    };
    b.bolt_factory("count", count.build().expect("count bolt"), 2)
        .fields("source", ["text"]);
    b.bolt("sink", sink.clone(), 1).global("count");
    LocalCluster::submit(b.build().expect("topology"), test_config()).expect("submit")
}

fn counter(m: &MetricsSnapshot, name: &str) -> u64 {
    m.component("source")
        .and_then(|c| c.counters.get(name).copied())
        .unwrap_or(0)
}

fn lines(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix} line {i:03} #tag{}", i % 7))
        .collect()
}

fn send(stream: &mut TcpStream, lines: &[String]) {
    for l in lines {
        assert!(l.len() <= MAX_LINE, "test line too long: {l}");
        stream.write_all(l.as_bytes()).expect("server write");
        stream.write_all(b"\n").expect("server write");
    }
}

/// Accepts one connection, or panics after `WAIT` (a test never blocks forever).
fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let end = Instant::now() + WAIT;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).expect("blocking stream");
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("the spout did not connect within {WAIT:?}: {e}"),
        }
    }
}

/// Binds `port` again after the previous listener was dropped (the spout is retrying
/// meanwhile); retries briefly in case the port is not free yet.
fn rebind(port: u16) -> TcpListener {
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return l,
            Err(e) if Instant::now() >= end => panic!("cannot bind port {port} again: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[test]
fn reconnects_after_the_server_restarts_and_loses_no_line() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let a = lines("A", 40);
    let b = lines("B", 40);
    let b_after = lines("C", 5);

    // Phase 1: the server accepts, sends A, closes the connection and goes away.
    let server_a = {
        let a = a.clone();
        std::thread::spawn(move || {
            let mut s = accept(&listener);
            send(&mut s, &a);
            s.flush().ok();
            drop(s);
            drop(listener);
        })
    };
    let sink = CountsSink::default();
    let run = submit(&socket_config(port, true), &sink);
    assert!(
        wait_until(WAIT, || server_a.is_finished()),
        "server phase 1 did not finish"
    );
    server_a.join().expect("server phase 1");
    assert!(
        wait_until(WAIT, || sink.has_all(&a)),
        "lines of phase 1 missing; sink has {} keys; {}",
        sink.keys().len(),
        summary_line(&run.metrics())
    );
    // The server is down: the spout retries (connect errors) and the run stays up.
    assert!(
        wait_until(WAIT, || counter(&run.metrics(), "connect_errors") >= 2),
        "no reconnect attempts; counters {:?}",
        run.metrics()
            .component("source")
            .map(|c| c.counters.clone())
    );
    assert!(
        !run.is_finished(),
        "the run ended when the server went away"
    );
    assert!(run.errors().is_empty(), "errors: {:?}", run.errors());

    // Phase 2: the server is back; it sends B, an oversized line, a line with invalid
    // UTF-8, and more lines after them, then closes.
    let listener = rebind(port);
    let server_b = {
        let (b, b_after) = (b.clone(), b_after.clone());
        std::thread::spawn(move || {
            let mut s = accept(&listener);
            send(&mut s, &b);
            s.write_all(&[b'x'; 10 * MAX_LINE]).expect("write");
            s.write_all(b"\n").expect("write");
            s.write_all(b"bad \xff\xfe utf8 line\n").expect("write");
            send(&mut s, &b_after);
            s.flush().ok();
            drop(s);
            // The server goes away again: the spout retries until the stop.
            drop(listener);
        })
    };
    let all: Vec<String> = a.iter().chain(&b).chain(&b_after).cloned().collect();
    let done = wait_until(WAIT, || {
        let m = run.metrics();
        sink.has_all(&all)
            && counter(&m, "oversized_lines") >= 1
            && counter(&m, "invalid_utf8_lines") >= 1
            && sink.keys().iter().any(|k| k.starts_with("bad "))
    });
    assert!(
        done,
        "phase 2 incomplete: missing {:?}; counters {:?}",
        all.iter()
            .filter(|l| !sink.keys().contains(l))
            .take(5)
            .collect::<Vec<_>>(),
        run.metrics()
            .component("source")
            .map(|c| c.counters.clone())
    );
    assert!(!run.is_finished(), "the run ended when the server closed");

    let summary = run.stop().expect("stop");
    server_b.join().expect("server phase 2");
    assert!(summary.completed, "the stop did not drain in time");
    let m = &summary.metrics;
    assert_eq!(counter(m, "oversized_lines"), 1, "oversized_lines");
    assert_eq!(counter(m, "invalid_utf8_lines"), 1, "invalid_utf8_lines");
    assert!(
        counter(m, "connects") >= 2,
        "connects: {:?}",
        m.component("source")
    );
    // Every line exactly once (the invalid one with U+FFFD), nothing else.
    let seen = lock(&sink.seen).clone();
    let bad: Vec<&String> = seen.keys().filter(|k| k.starts_with("bad ")).collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].contains('\u{FFFD}'), "{:?}", bad[0]);
    assert!(bad[0].ends_with(" utf8 line"), "{:?}", bad[0]);
    assert_eq!(seen.len(), all.len() + 1, "keys: {:?}", seen.keys());
    for l in &all {
        assert_eq!(seen.get(l), Some(&vec![1]), "counts of {l}");
    }
    let source = m.component("source").expect("source metrics");
    assert_eq!(source.emitted, all.len() as u64 + 1);
    assert_eq!(source.acked, all.len() as u64 + 1);
    assert_eq!(source.failed, 0);
}

#[test]
fn without_reconnect_the_run_ends_when_the_server_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let a = lines("A", 100);
    let server = {
        let a = a.clone();
        std::thread::spawn(move || {
            let mut s = accept(&listener);
            send(&mut s, &a);
        })
    };
    let sink = CountsSink::default();
    let run = submit(&socket_config(port, false), &sink);
    assert!(
        run.wait_finished(WAIT),
        "the run did not end after the server closed: {}",
        summary_line(&run.metrics())
    );
    server.join().expect("server");
    let summary = run.join().expect("join");
    assert!(summary.completed);
    assert!(
        sink.has_all(&a),
        "lines lost: sink has {}",
        sink.keys().len()
    );
    assert_eq!(sink.keys().len(), a.len());
    let m = &summary.metrics;
    assert_eq!(counter(m, "connects"), 1);
    assert_eq!(counter(m, "connect_errors"), 0);
    assert_eq!(m.component("source").map(|c| c.acked), Some(a.len() as u64));
}

/// A port nothing listens on.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn without_reconnect_and_no_server_the_run_fails_with_the_connect_error() {
    let sink = CountsSink::default();
    let port = free_port();
    let run = submit(&socket_config(port, false), &sink);
    assert!(
        run.wait_finished(WAIT),
        "the run did not end: {}",
        summary_line(&run.metrics())
    );
    let m = run.metrics();
    assert_eq!(counter(&m, "connect_errors"), 1);
    assert_eq!(counter(&m, "connects"), 0);
    assert_eq!(m.component("source").map(|c| c.emitted), Some(0));
    // The source could not do its job: the run fails, as with a file that cannot be opened.
    match run.join() {
        Err(RuntimeError::Fatal(msgs)) => assert!(
            msgs.iter()
                .any(|m| m.contains(&format!("cannot connect to 127.0.0.1:{port}"))),
            "{msgs:?}"
        ),
        Err(e) => panic!("another error: {e}"),
        Ok(s) => panic!(
            "a refused connection without reconnect ended as a success: {}",
            summary_line(&s.metrics)
        ),
    }
    assert!(sink.keys().is_empty());
}

#[test]
fn cli_without_reconnect_and_no_server_exits_1_with_the_connect_error() {
    let dir = cli::TempDir::new("socket-cli");
    let report = dir.join("r.json");
    let port = free_port();
    let out = cli::squall(
        [
            "topology".to_string(),
            "run".into(),
            cli::topology("socket-wordcount.toml").display().to_string(),
            "--set".into(),
            format!("spouts.source.port={port}"),
            "--set".into(),
            "spouts.source.reconnect=false".into(),
            "--report".into(),
            report.display().to_string(),
            "--quiet".into(),
        ],
        WAIT,
    );
    out.assert_failure();
    assert!(
        out.stderr.contains(&format!(
            "error: source: cannot connect to 127.0.0.1:{port}"
        )),
        "{}",
        cli::tail(&out.stderr)
    );
    assert!(
        !out.stderr.contains("every task finished"),
        "{}",
        cli::tail(&out.stderr)
    );
    assert!(
        !report.exists(),
        "no report (nor a stray file) for a failed run"
    );
}

/// 100 MB without a newline on the socket, with the default `max_line_bytes` (1 MiB):
/// the line is skipped while it arrives and counted once, and the lines around it get
/// through. The framing never holds more than `max_line_bytes + 1` bytes of a line (the
/// property tests of `io::lines` check that bound at every read); before the limit, a
/// line without end grew a buffer without end.
#[test]
fn a_hundred_megabytes_without_a_newline_is_skipped_and_counted() {
    const HUGE: usize = 100 << 20;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let mut s = accept(&listener);
        s.write_all(b"before\n").expect("write");
        let block = vec![b'x'; 1 << 20];
        for _ in 0..HUGE / block.len() {
            s.write_all(&block).expect("write");
        }
        s.write_all(b"\r\nafter\n").expect("write");
    });
    let sink = CountsSink::default();
    let cfg = SocketSpoutConfig {
        max_line_bytes: SocketSpoutConfig::default().max_line_bytes,
        ..socket_config(port, false)
    };
    assert_eq!(cfg.max_line_bytes, 1 << 20, "the documented default");
    let run = submit(&cfg, &sink);
    assert!(
        run.wait_finished(Duration::from_secs(60)),
        "the run did not end after the server closed: {}",
        summary_line(&run.metrics())
    );
    server.join().expect("server");
    let summary = run.join().expect("join");
    let m = &summary.metrics;
    assert_eq!(counter(m, "oversized_lines"), 1);
    assert_eq!(sink.keys(), ["after", "before"]);
    assert_eq!(m.component("source").map(|c| c.acked), Some(2));
}

/// Micro-batch mode: the spout hands its lines to the cut as column chunks (split where a
/// batch reaches `max_batch`, kept until the batch commits); a chaos bolt fails a share of
/// the batches, which are replayed from those chunks. Every line sent is counted exactly
/// once in the committed state.
#[test]
fn in_microbatch_mode_every_line_is_counted_once_with_failed_batches_replayed() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let all = lines("M", 20_000);
    let server = {
        let all = all.clone();
        std::thread::spawn(move || {
            let mut s = accept(&listener);
            // In bursts, so that reads end mid-stream and chunks come in many sizes.
            for (i, part) in all.chunks(1_500).enumerate() {
                send(&mut s, part);
                if i % 3 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
    };
    let dir = cli::TempDir::new("socket-mb");
    let state = dir.path().join("state");
    let mut b = TopologyBuilder::new("socket-mb");
    b.spout_factory(
        "source",
        socket_config(port, false).build().expect("socket spout"),
        1,
    );
    let count = CountConfig {
        field: Some("text".into()),
    };
    b.bolt_factory("count", count.build().expect("count bolt"), 2)
        .fields("source", ["text"]);
    let chaos = ChaosConfig {
        fail_batches: 0.2,
        ..Default::default()
    };
    b.bolt_factory("chaos", chaos.build().expect("chaos bolt"), 1)
        .shuffle("source");
    let config = Config {
        workers: 2,
        mode: Mode::Microbatch,
        batch_interval: Duration::from_millis(5),
        // Below the reader's chunks of up to 1,024 lines: chunks are split at the limit.
        max_batch: 300,
        batches_in_flight: 3,
        state_dir: Some(state.clone()),
        drain_timeout: Duration::from_secs(10),
        ..Config::default()
    };
    let run = LocalCluster::submit(b.build().expect("topology"), config).expect("submit");
    assert!(
        run.wait_finished(Duration::from_secs(60)),
        "the run did not end after the server closed: {}",
        summary_line(&run.metrics())
    );
    server.join().expect("server");
    let summary = run.join().expect("join");
    let src = summary.metrics.component("source").expect("source metrics");
    assert_eq!(
        src.acked,
        all.len() as u64,
        "{}",
        summary_line(&summary.metrics)
    );
    assert!(
        src.counters.get("batches_replayed").copied().unwrap_or(0) > 0,
        "the chaos bolt should have failed some batches"
    );
    let (_, counts) = committed_counts(&state, "count", 2);
    let want: BTreeMap<String, u64> = all.iter().map(|l| (l.clone(), 1)).collect();
    assert_eq!(counts.len(), want.len(), "lines counted");
    let wrong: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).take(5).collect();
    assert!(wrong.is_empty(), "counted more than once: {wrong:?}");
    assert_eq!(counts, want);
}

/// A server on a free port that sends `lines` to its first client, then closes.
fn serve_once(lines: Vec<String>) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let mut s = accept(&listener);
        send(&mut s, &lines);
    });
    (port, server)
}

/// Runs the topology until it ends (the server closed and every line is done).
fn run_to_end(b: TopologyBuilder, server: std::thread::JoinHandle<()>) -> squall::RunSummary {
    let run = LocalCluster::submit(b.build().expect("topology"), test_config()).expect("submit");
    assert!(
        run.wait_finished(WAIT),
        "the run did not end: {}",
        summary_line(&run.metrics())
    );
    server.join().expect("server");
    run.join().expect("join")
}

/// Fails some lines: `poison` every time, every 250th line (from the 7th) at its first
/// attempt only; records each line it passes.
#[derive(Clone, Default)]
struct Judge {
    attempts: Arc<Mutex<BTreeMap<String, u32>>>,
    passed: Arc<Mutex<BTreeMap<String, u32>>>,
}

impl Bolt for Judge {
    fn execute(&mut self, input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        let line = input.get_str("text").unwrap_or_default().to_string();
        let attempt = {
            let mut a = lock(&self.attempts);
            let n = a.entry(line.clone()).or_default();
            *n += 1;
            *n
        };
        let number: Option<usize> = line.split(' ').nth(2).and_then(|n| n.parse().ok());
        if line.contains("poison") || (attempt == 1 && number.is_some_and(|n| n % 250 == 7)) {
            return Err(format!("judge fails {line:?} (attempt {attempt})").into());
        }
        *lock(&self.passed).entry(line).or_default() += 1;
        Ok(())
    }
}

/// `Judge` with a columnar path: a chunk of lines is judged whole (any line failing
/// fails the chunk, and none of it passes); the lines that pass go on as one column.
/// `A panic line` panics at its first attempt.
#[derive(Clone, Default)]
struct ChunkJudge {
    judge: Judge,
    /// Chunks (of more than one line) that reached the columnar path.
    chunks: Arc<Mutex<u32>>,
}

impl Bolt for ChunkJudge {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["text"]));
    }

    fn takes_columns(&self) -> bool {
        true
    }

    fn execute_columns(
        &mut self,
        _batch: &BatchInfo,
        input: &Columns,
    ) -> Option<Result<Columns, ComponentError>> {
        let texts = input.column("text")?.as_str()?;
        if texts.len() > 1 {
            *lock(&self.chunks) += 1;
        }
        let mut failed = None;
        for line in texts.iter() {
            if let Err(e) = self.judge_line(line) {
                failed = Some(e);
            }
        }
        if let Some(e) = failed {
            return Some(Err(e.into()));
        }
        let mut passed = lock(&self.judge.passed);
        for line in texts.iter() {
            *passed.entry(line.to_string()).or_default() += 1;
        }
        Some(Ok(input.clone()))
    }

    /// A line replayed alone comes as a tuple.
    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        let line = input.get_str("text").unwrap_or_default().to_string();
        self.judge_line(&line)?;
        *lock(&self.judge.passed).entry(line.clone()).or_default() += 1;
        out.emit(squall::values![line])?;
        Ok(())
    }
}

impl ChunkJudge {
    /// Counts an attempt at `line`; fails (or panics) as the doc above says.
    fn judge_line(&self, line: &str) -> Result<(), String> {
        let attempt = {
            let mut a = lock(&self.judge.attempts);
            let n = a.entry(line.to_string()).or_default();
            *n += 1;
            *n
        };
        let number: Option<usize> = line.split(' ').nth(2).and_then(|n| n.parse().ok());
        if line == "A panic line" && attempt == 1 {
            panic!("chunk judge panics on {line:?}");
        }
        if line.contains("poison") || (attempt == 1 && number.is_some_and(|n| n % 250 == 7)) {
            return Err(format!("judge fails {line:?} (attempt {attempt})"));
        }
        Ok(())
    }
}

/// Counts the lines it gets as tuples (chained after `ChunkJudge`: the chunks it emits
/// come to it as rows).
#[derive(Clone, Default)]
struct Tally(Arc<Mutex<BTreeMap<String, u32>>>);

impl Bolt for Tally {
    fn execute(&mut self, input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        let line = input.get_str("text").unwrap_or_default().to_string();
        *lock(&self.0).entry(line).or_default() += 1;
        Ok(())
    }
}

/// Event mode sends the lines of a read as one chunk to a bolt with a columnar path, which
/// judges them at once, and what it emits goes on as a chunk to the bolt chained into it
/// (as rows: that one takes tuples). A chunk that fails, or whose bolt panics, fails the
/// read, whose lines are then replayed one by one: every good line gets through, the bad
/// line is given up alone, and what the chained bolt counted is what passed.
#[test]
fn a_chunk_failed_by_a_columnar_bolt_is_replayed_line_by_line() {
    let mut all = lines("A", 3000);
    all.insert(1234, "A poison line".to_string());
    all.insert(2345, "A panic line".to_string());
    let (port, server) = serve_once(all.clone());
    let judge = ChunkJudge::default();
    let tally = Tally::default();
    let cfg = socket_config(port, false);
    let mut b = TopologyBuilder::new("socket-chunks");
    b.spout_factory("source", cfg.build().expect("socket spout"), 1);
    b.bolt("judge", judge.clone(), 2).shuffle("source");
    b.bolt("tally", tally.clone(), 2).local_or_shuffle("judge");
    let summary = run_to_end(b, server);
    let passed = lock(&judge.judge.passed).clone();
    let attempts = lock(&judge.judge.attempts).clone();
    let tallied = lock(&tally.0).clone();
    assert!(
        *lock(&judge.chunks) > 0,
        "no chunk reached the columnar path"
    );
    for l in all.iter().filter(|l| !l.contains("poison")) {
        let n = passed.get(l).copied().unwrap_or(0);
        // A failed chunk passes none of its lines: a line passes once, or twice if its
        // tree timed out on a loaded machine.
        assert!((1..=2).contains(&n), "{l:?} passed {n} times");
        assert_eq!(
            tallied.get(l),
            Some(&n),
            "{l:?} tallied as often as it passed"
        );
    }
    assert_eq!(passed.get("A poison line"), None);
    assert_eq!(tallied.get("A poison line"), None);
    assert_eq!(
        attempts.get("A poison line"),
        Some(&(cfg.max_retries + 1)),
        "the bad line is tried once with its read, then retried alone"
    );
    let m = &summary.metrics;
    assert_eq!(counter(m, "given_up"), 1);
    let source = m.component("source").expect("source metrics");
    assert_eq!(source.acked, all.len() as u64 - 1, "acked counts lines");
    let judged = m.component("judge").expect("judge metrics");
    assert!(judged.restarts >= 1, "the panic restarted the judge");
}

/// The spout emits the lines of one read as one message (one tuple tree). When one of
/// its lines fails, the read's lines are replayed one by one: every good line gets
/// through, a line that fails every time is given up alone (counted), and the run ends.
#[test]
fn a_failed_read_is_replayed_line_by_line_and_a_bad_line_is_given_up_alone() {
    let mut all = lines("A", 3000);
    all.insert(1234, "A poison line".to_string());
    let (port, server) = serve_once(all.clone());
    let judge = Judge::default();
    let cfg = socket_config(port, false);
    let mut b = TopologyBuilder::new("socket-replay");
    b.spout_factory("source", cfg.build().expect("socket spout"), 1);
    b.bolt("judge", judge.clone(), 2).shuffle("source");
    let summary = run_to_end(b, server);
    let passed = lock(&judge.passed).clone();
    let attempts = lock(&judge.attempts).clone();
    for l in all.iter().filter(|l| !l.contains("poison")) {
        let n = passed.get(l).copied().unwrap_or(0);
        // A line that shared a read with a failed line passes again when replayed.
        assert!((1..=2).contains(&n), "{l:?} passed {n} times");
    }
    assert_eq!(passed.get("A poison line"), None);
    assert_eq!(
        attempts.get("A poison line"),
        Some(&(cfg.max_retries + 1)),
        "the bad line is tried once with its read, then retried alone"
    );
    let m = &summary.metrics;
    assert_eq!(counter(m, "given_up"), 1);
    let source = m.component("source").expect("source metrics");
    assert_eq!(source.acked, all.len() as u64 - 1, "acked counts lines");
    assert!(source.failed > u64::from(cfg.max_retries));
}
