//! Every built-in spout in both modes. The shipped topology of each spout (generator,
//! socket, file, kafka, twitter) runs on the same generated tweets, in event mode and in
//! micro-batch mode, against real sources: a TCP line server on 127.0.0.1, a JSONL file,
//! the Kafka mock cluster, the mock X API. Both modes must give the exact final top-k
//! of those tweets. The spouts are taken from the registry, so a new built-in spout
//! fails this test until it has a case here. Also: micro-batch mode waits for a polled
//! spout that has nothing for a moment, for the batch's interval.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use squall::config::Mode;
use squall::kafka::mock::DevBroker;
use squall::topology::file::load;
use squall::tweet::generator::{GeneratorConfig, TweetGenerator};
use squall::tweet::wire::{Tweet, to_v2_json};
use squall::{
    Config, Fields, LocalCluster, MetricsSnapshot, OutputDeclarer, Spout, SpoutCollector,
    SpoutStatus, TopologyBuilder,
};

use crate::support::cli;
use crate::support::cli::{TempDir, generator_hashtag_counts, squall, tail, top_k};
use crate::support::twitter_mock::{MockX, Script, TOKEN_ENV, set_token_env};
use crate::support::{NullBolt, summary_line, wait_until};

/// Tweets every source serves: the generator's `1..=TWEETS` with `SEED`.
const TWEETS: u64 = 3000;
const SEED: u64 = 42;
/// The longest any run, or any wait of it, may take.
const WAIT: Duration = Duration::from_secs(120);

fn tweets() -> Vec<Tweet> {
    let g = TweetGenerator::new(GeneratorConfig {
        seed: SEED,
        ..GeneratorConfig::default()
    })
    .unwrap_or_else(|e| panic!("generator: {e}"));
    (1..=TWEETS).map(|n| g.tweet_at(n)).collect()
}

/// Lines, newline-terminated, as one buffer.
fn text_of(lines: impl Iterator<Item = String>) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    out
}

/// A line server for one client (like `squall tweets serve --clients 1`): listens on an
/// ephemeral port, sends `bytes` to the first client within `WAIT`, closes.
fn serve_once(bytes: Arc<Vec<u8>>) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local addr: {e}"))
        .port();
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|e| panic!("nonblocking: {e}"));
    let server = std::thread::spawn(move || {
        let end = Instant::now() + WAIT;
        loop {
            match listener.accept() {
                Ok((mut s, _)) => {
                    let sent = s
                        .set_nonblocking(false)
                        .and_then(|()| s.write_all(&bytes))
                        .and_then(|()| s.flush());
                    if let Err(e) = sent {
                        eprintln!("line server: {e}");
                    }
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    eprintln!("line server: no client within {WAIT:?}: {e}");
                    return;
                }
            }
        }
    });
    (port, server)
}

/// The sources, started once and shared by both modes' runs.
struct Sources {
    tweets: Vec<Tweet>,
    dir: TempDir,
    broker: DevBroker,
    mock: MockX,
}

impl Sources {
    fn start() -> Sources {
        let tweets = tweets();
        let dir = TempDir::new("spout-modes");
        std::fs::write(
            dir.join("tweets.jsonl"),
            text_of(tweets.iter().map(to_v2_json)),
        )
        .unwrap_or_else(|e| panic!("write the tweet file: {e}"));
        let broker = DevBroker::start(1).unwrap_or_else(|e| panic!("mock cluster: {e}"));
        broker
            .create_topic("tweets", 2)
            .unwrap_or_else(|e| panic!("create topic: {e}"));
        let produced = squall(
            [
                "kafka",
                "produce-tweets",
                "--brokers",
                broker.bootstrap_servers(),
                "--topic",
                "tweets",
                "--count",
                &TWEETS.to_string(),
                "--seed",
                &SEED.to_string(),
            ],
            WAIT,
        );
        assert!(
            produced.status.success(),
            "produce-tweets: {}",
            tail(&produced.stderr)
        );
        let mock = MockX::start();
        mock.add_rule("#rustlang", "rust");
        Sources {
            tweets,
            dir,
            broker,
            mock,
        }
    }
}

/// How a run ends.
enum Ends {
    /// The source is bounded: the run finishes by itself.
    ByItself,
    /// The source never ends (a stream API): stopped once its spout has acked every tweet.
    StopWhenAcked,
}

/// One spout's run in one mode: the shipped topology, `--set` overrides, and what has to
/// live while it runs.
struct Case {
    file: &'static str,
    sets: Vec<String>,
    ends: Ends,
    server: Option<JoinHandle<()>>,
}

/// Overrides every case gets: a window longer than any run (so the final window holds
/// every tweet however long the run takes) and a quiet console sink.
fn common_sets() -> Vec<String> {
    vec![
        "bolts.counts.window=\"1h\"".into(),
        "bolts.sink.quiet=true".into(),
    ]
}

/// The shipped topology that runs built-in spout `spout`; `None` for a spout without a
/// case here.
fn topology_of(spout: &str) -> Option<&'static str> {
    Some(match spout {
        "generator" => "trending-hashtags.toml",
        "socket" => "socket-hashtags.toml",
        "file" => "file-hashtags.toml",
        "kafka" => "kafka-hashtags.toml",
        "twitter" => "twitter-hashtags.toml",
        _ => return None,
    })
}

/// Sets up the run of built-in spout `spout` in `mode` (a spout `topology_of` knows).
fn prepare(spout: &str, mode: Mode, src: &Sources) -> Result<Case, String> {
    let file = topology_of(spout).ok_or_else(|| format!("{spout}: no case"))?;
    let mut sets = common_sets();
    let mut server = None;
    let mut ends = Ends::ByItself;
    match spout {
        "generator" => {
            sets.push(format!("spouts.source.limit={TWEETS}"));
            sets.push(format!("spouts.source.seed={SEED}"));
            sets.push("spouts.source.rate=0".into());
        }
        "socket" => {
            let text = text_of(src.tweets.iter().map(|t| t.text.clone()));
            let (port, s) = serve_once(Arc::new(text));
            server = Some(s);
            sets.push(format!("spouts.source.port={port}"));
            sets.push("spouts.source.reconnect=false".into());
        }
        "file" => {
            let path = src.dir.join("tweets.jsonl");
            sets.push(format!(
                "spouts.source.path={:?}",
                path.display().to_string()
            ));
        }
        "kafka" => {
            let b = src.broker.bootstrap_servers();
            sets.push(format!("spouts.source.brokers=\"{b}\""));
            sets.push(format!("bolts.rankings_out.brokers=\"{b}\""));
            sets.push("spouts.source.end=\"latest\"".into());
            // Each mode reads the topic from the start, as its own consumer group.
            sets.push(format!("spouts.source.group=\"spout-modes-{mode:?}\""));
        }
        "twitter" => {
            // This run's connection gets every tweet, then keep-alives until it leaves.
            src.mock.push(Script::serve_then_hold(
                src.tweets.iter().map(to_v2_json).collect(),
                Duration::from_millis(100),
            ));
            sets.push(format!(
                "spouts.source.base_url=\"{}\"",
                src.mock.base_url()
            ));
            sets.push(format!("spouts.source.token_env=\"{TOKEN_ENV}\""));
            ends = Ends::StopWhenAcked;
        }
        _ => return Err(format!("{spout}: a topology but no set-up")),
    }
    Ok(Case {
        file,
        sets,
        ends,
        server,
    })
}

/// The text of a caught panic.
fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without text".into())
}

fn source_acked(m: &MetricsSnapshot) -> u64 {
    m.component("source").map_or(0, |c| c.acked)
}

/// Runs `case` in `mode` to its end; returns the final top-k the run published.
fn final_topk(spout: &str, mode: Mode, case: Case) -> Result<Vec<(String, u64)>, String> {
    let path = cli::topology(case.file);
    let loaded = load(&path, &case.sets, &squall::builtin::registry())
        .map_err(|e| format!("{spout}: cannot load {}: {e}", path.display()))?;
    let mut config = loaded.config;
    config.mode = mode;
    // Several batches per run in micro-batch mode.
    config.max_batch = 500;
    let run = LocalCluster::submit(loaded.topology, config)
        .map_err(|e| format!("{spout} {mode:?}: submit: {e}"))?;
    let board = run.registry().topk;
    let progress = |run: &squall::RunningTopology| {
        format!(
            "errors {:?}; metrics: {}",
            run.errors(),
            summary_line(&run.metrics())
        )
    };
    if let Ends::StopWhenAcked = case.ends {
        let acked = wait_until(WAIT, || {
            source_acked(&run.metrics()) >= TWEETS || run.is_finished()
        });
        if !acked || run.is_finished() {
            let when = if acked {
                "before the run ended"
            } else {
                "in time"
            };
            return Err(format!(
                "{spout} {mode:?}: the spout did not ack {TWEETS} tweets {when} ({WAIT:?}): {}",
                progress(&run)
            ));
        }
        run.request_stop();
    }
    if !run.wait_finished(WAIT) {
        return Err(format!(
            "{spout} {mode:?}: the run did not finish within {WAIT:?}: {}",
            progress(&run)
        ));
    }
    let acked = source_acked(&run.metrics());
    run.join()
        .map_err(|e| format!("{spout} {mode:?}: the run failed: {e}"))?;
    if let Some(s) = case.server
        && s.join().is_err()
    {
        return Err(format!("{spout} {mode:?}: the line server panicked"));
    }
    if acked != TWEETS {
        return Err(format!(
            "{spout} {mode:?}: the spout acked {acked} tweets, expected {TWEETS}"
        ));
    }
    Ok(board.get().unwrap_or_default())
}

#[test]
fn every_built_in_spout_gives_the_exact_top_k_in_both_modes() {
    set_token_env();
    let spouts: BTreeSet<&str> = squall::builtin::registry()
        .spout_names()
        .into_iter()
        .collect();
    let missing: Vec<&str> = spouts
        .iter()
        .copied()
        .filter(|s| topology_of(s).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "built-in spouts without a case in tests/it/spout_modes.rs: {missing:?}"
    );
    let src = Sources::start();
    let truth = top_k(&generator_hashtag_counts(SEED, TWEETS), 10);
    let mut failures = Vec::new();
    for spout in &spouts {
        for mode in [Mode::Event, Mode::Microbatch] {
            let started = Instant::now();
            let got = catch_unwind(AssertUnwindSafe(|| {
                prepare(spout, mode, &src).and_then(|c| final_topk(spout, mode, c))
            }))
            .unwrap_or_else(|p| Err(format!("{spout} {mode:?}: panicked: {}", panic_text(&p))));
            eprintln!("{spout} {mode:?}: {:.1}s", started.elapsed().as_secs_f64());
            match got {
                Ok(topk) if topk == truth => {}
                Ok(topk) => failures.push(format!(
                    "{spout} {mode:?}: top-k {topk:?}, expected {truth:?}"
                )),
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Emits `n` tuples (with message ids) but has nothing (`Idle`) on every other call, as a
/// spout whose reader has not caught up with its source for a moment.
#[derive(Clone)]
struct Stuttering {
    n: u64,
    sent: u64,
    idle_next: bool,
}

impl Spout for Stuttering {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(Fields::new(["n"]));
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> SpoutStatus {
        if std::mem::take(&mut self.idle_next) {
            return SpoutStatus::Idle;
        }
        if self.sent == self.n {
            return SpoutStatus::Exhausted;
        }
        self.sent += 1;
        if let Err(e) = out.emit(squall::values![self.sent as i64], Some(self.sent)) {
            panic!("emit: {e}");
        }
        self.idle_next = true;
        SpoutStatus::Emitted
    }
}

/// A polled spout's batch holds what it delivered during the batch interval, not only
/// what it had when the cut began: a spout with a gap after every tuple (a socket spout
/// whose reader is behind, on a busy host) gets many tuples into each batch. The cut
/// used to end at the first `Idle`: one tuple per batch, one batch per interval (the
/// socket job did 0.13 M lines/s in micro-batch mode with its CPU mostly idle).
#[test]
fn a_polled_spout_with_gaps_fills_each_micro_batch_for_its_interval() {
    set_token_env();
    let n = 300;
    let mut b = TopologyBuilder::new("gaps");
    b.spout(
        "source",
        Stuttering {
            n,
            sent: 0,
            idle_next: false,
        },
        1,
    );
    b.bolt("sink", NullBolt, 1).shuffle("source");
    let config = Config {
        mode: Mode::Microbatch,
        batch_interval: Duration::from_millis(100),
        ..Config::default()
    };
    let topology = b.build().unwrap_or_else(|e| panic!("topology: {e}"));
    let run = LocalCluster::submit(topology, config).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        run.wait_finished(WAIT),
        "the run did not finish within {WAIT:?}: {}",
        summary_line(&run.metrics())
    );
    let m = run.metrics();
    run.join().unwrap_or_else(|e| panic!("the run failed: {e}"));
    let source = m
        .component("source")
        .unwrap_or_else(|| panic!("no source metrics"));
    assert_eq!(source.acked, n, "{}", summary_line(&m));
    let batches = source
        .counters
        .get("batches_committed")
        .copied()
        .unwrap_or(0);
    assert!(
        (1..=n / 5).contains(&batches),
        "{n} tuples took {batches} batches: a cut stopped at the spout's first gap"
    );
}
