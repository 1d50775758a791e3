//! The `twitter` spout end to end against the mock X API (`support::twitter_mock`): tweets
//! arrive with their fields; the request carries the field parameters and the bearer
//! token; keep-alives hold a connection open and a stall or an operational disconnect
//! reconnects; 503s, 429s and empty connections back off per the documented policy
//! (with scaled durations, checked on the mock's request times); 401/403/409 and a
//! missing token variable stop the run with a clear error and no retry; every tweet
//! served is emitted exactly once unless failed (then re-emitted); the token never
//! shows in logs, errors, metrics, the report or the output. Also checks the mock's
//! rules endpoints against the documented examples.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use squall::component::registry::SpoutConfig;
use squall::runtime::RuntimeError;
use squall::twitter::policy::{Endpoint, PolicyConfig};
use squall::twitter::spout::TwitterSpoutConfig;
use squall::{
    Bolt, BoltCollector, ComponentError, ComponentResult, LocalCluster, MetricsSnapshot,
    RunningTopology, TopologyBuilder, Tuple, Value,
};

use crate::support::cli;
use crate::support::twitter_mock::{
    self, End, MockX, Request, Script, Step, TOKEN, TOKEN_ENV, set_token_env, tweet, tweet_line,
};
use crate::support::{lock, summary_line, test_config, wait_until};

const WAIT: Duration = Duration::from_secs(10);

/// Everything logged in this process (every thread; squall's logs at debug level, other
/// crates' at warn): the process-wide subscriber is installed by [`init`].
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&LOGS).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured logs (`TWITTER_TEST_SHOW_LOGS=1` also prints them).
fn logs() -> String {
    let text = String::from_utf8_lossy(&lock(&LOGS)).into_owned();
    if std::env::var_os("TWITTER_TEST_SHOW_LOGS").is_some() {
        eprintln!("--- captured logs ---\n{text}");
    }
    text
}

/// Sets the token variable and captures the logs; every test of this module calls it
/// first.
///
/// The subscriber is the process's global one, the only one the integration tests
/// install: the other areas' logs land in [`LOGS`] too (the assertions here only look for
/// lines that must be there, and for the token, which must be nowhere). Other crates are
/// kept at warn so that their debug logs, e.g. of every HTTP request the web UI tests
/// make, do not pile up in memory.
fn init() {
    set_token_env();
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn,squall=debug"))
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .try_init();
    });
}

/// What the sink received of one tweet.
#[derive(Clone, Debug, PartialEq)]
struct Got {
    id: String,
    text: String,
    author: Option<String>,
    created_at: Option<String>,
    lang: Option<String>,
    hashtags: Vec<String>,
    rule_tags: Vec<String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_list)
        .unwrap_or_default()
        .iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

fn opt(t: &Tuple, f: &str) -> Option<String> {
    t.get_str(f).map(str::to_string)
}

/// Records the tweets it acks; fails the first delivery of the ids in `fail_first`.
#[derive(Clone, Default)]
struct TweetSink {
    got: Arc<Mutex<Vec<Got>>>,
    deliveries: Arc<Mutex<HashMap<String, u32>>>,
    fail_first: Arc<HashSet<String>>,
}

impl TweetSink {
    fn failing_first(ids: HashSet<String>) -> Self {
        TweetSink {
            fail_first: Arc::new(ids),
            ..TweetSink::default()
        }
    }

    fn got(&self) -> Vec<Got> {
        lock(&self.got).clone()
    }

    fn ids(&self) -> Vec<String> {
        lock(&self.got).iter().map(|g| g.id.clone()).collect()
    }

    fn count(&self) -> usize {
        lock(&self.got).len()
    }
}

impl Bolt for TweetSink {
    fn execute(&mut self, input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
        let got = Got {
            id: opt(&input, "id").unwrap_or_default(),
            text: opt(&input, "text").unwrap_or_default(),
            author: opt(&input, "author"),
            created_at: opt(&input, "created_at"),
            lang: opt(&input, "lang"),
            hashtags: strings(input.get("hashtags")),
            rule_tags: strings(input.get("rule_tags")),
        };
        let n = {
            let mut d = lock(&self.deliveries);
            let n = d.entry(got.id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if n == 1 && self.fail_first.contains(&got.id) {
            return Err(ComponentError::new("INJECTED first-delivery failure"));
        }
        lock(&self.got).push(got);
        Ok(())
    }
}

/// Spout options against `mock`, with the policy scaled by `scale`.
fn config(mock: &MockX, scale: f64) -> TwitterSpoutConfig {
    TwitterSpoutConfig {
        base_url: mock.base_url(),
        token_env: TOKEN_ENV.into(),
        stall_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        reconnect: PolicyConfig::documented().scaled(scale),
        ..TwitterSpoutConfig::default()
    }
}

/// twitter → sink.
fn submit(cfg: &TwitterSpoutConfig, sink: &TweetSink) -> RunningTopology {
    let mut b = TopologyBuilder::new("twitter-test");
    b.spout_factory("twitter", cfg.build().expect("twitter spout"), 1);
    b.bolt("sink", sink.clone(), 1).shuffle("twitter");
    LocalCluster::submit(b.build().expect("topology"), test_config()).expect("submit")
}

fn counters(m: &MetricsSnapshot) -> BTreeMap<String, u64> {
    m.component("twitter")
        .map(|c| c.counters.clone().into_iter().collect())
        .unwrap_or_default()
}

fn counter(m: &MetricsSnapshot, name: &str) -> u64 {
    counters(m).get(name).copied().unwrap_or(0)
}

fn lines(ids: std::ops::RangeInclusive<u64>, tags: &[&str]) -> Vec<String> {
    ids.map(|i| tweet_line(i, tags)).collect()
}

fn id_of(i: u64) -> String {
    tweet(i, &[]).id
}

/// Waits for `n` tweets at the sink, or panics with the state.
fn wait_for_tweets(run: &RunningTopology, sink: &TweetSink, n: usize) {
    assert!(
        wait_until(WAIT, || sink.count() >= n),
        "{} of {n} tweets arrived; {}; counters {:?}",
        sink.count(),
        summary_line(&run.metrics()),
        counters(&run.metrics())
    );
}

/// The gaps between consecutive requests.
fn gaps(reqs: &[Request]) -> Vec<Duration> {
    reqs.windows(2).map(|w| w[1].at - w[0].at).collect()
}

/// Each gap is at least the wait, and less than the wait plus a tolerance (the wait, at
/// least 1 s, for a loaded machine): a sequence that doubles too often still fails within
/// a few gaps. The policy's arithmetic is unit-tested exactly (`twitter::policy`); this
/// checks that the stream applies it.
fn assert_waits(reqs: &[Request], want: &[Duration]) {
    let got = gaps(reqs);
    assert!(got.len() >= want.len(), "gaps {got:?}, want {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let slack = (*w).max(Duration::from_secs(1));
        assert!(
            *g >= *w && *g < *w + slack,
            "gap {i}: {g:?}, want {w:?} (+ < {slack:?}); all gaps {got:?}"
        );
    }
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// The fatal error of a run that must stop by itself.
fn fatal_error(run: RunningTopology) -> String {
    assert!(
        run.wait_finished(WAIT),
        "the run did not stop: {}",
        summary_line(&run.metrics())
    );
    match run.join() {
        Err(RuntimeError::Fatal(msgs)) => msgs.join("; "),
        Err(e) => panic!("unexpected error kind: {e}"),
        Ok(_) => panic!("the run ended without an error"),
    }
}

const EXPANDED: &str = r##"{"data":{"id":"1900000000000000002","text":"RT @ferris_dev: Zero-copy parsing of #json with #rustlang is fun https://t.co/AbCdEf1234","edit_history_tweet_ids":["1900000000000000002"],"author_id":"1000000000000000011","created_at":"2024-05-01T12:00:03.000Z","lang":"en","entities":{"hashtags":[{"start":37,"end":42,"tag":"json"},{"start":48,"end":57,"tag":"rustlang"}]}},"includes":{"users":[{"id":"1000000000000000011","name":"Stream Tester","username":"stream_tester"},{"id":"1000000000000000012","name":"Ferris Dev","username":"ferris_dev"}]},"matching_rules":[{"id":"1800000000000000001","tag":"rust posts"},{"id":"1800000000000000002","tag":"json posts"}]}"##;

#[test]
fn tweets_arrive_with_their_fields_and_the_request_is_as_documented() {
    init();
    let mock = MockX::start();
    mock.add_rule("#rustlang", "rust posts");
    let mut served = vec![EXPANDED.to_string()];
    served.extend(lines(1..=4, &["rust posts"]));
    mock.push(Script::Stream {
        steps: vec![
            Step::KeepAlive,
            Step::Line(served[0].clone()),
            Step::KeepAlive,
            Step::Raw(served[1].as_bytes()[..10].to_vec()),
            Step::Pause(ms(30)),
            Step::Raw(format!("{}\r\n", &served[1][10..]).into_bytes()),
            Step::Line(served[2].clone()),
            Step::Line(served[3].clone()),
            Step::Line(served[4].clone()),
        ],
        end: End::KeepAlives(ms(100)),
    });
    let sink = TweetSink::default();
    let run = submit(&config(&mock, 1.0), &sink);
    wait_for_tweets(&run, &sink, 5);

    let got = sink.got();
    assert_eq!(
        got[0],
        Got {
            id: "1900000000000000002".into(),
            text: "RT @ferris_dev: Zero-copy parsing of #json with #rustlang is fun https://t.co/AbCdEf1234".into(),
            author: Some("stream_tester".into()),
            created_at: Some("2024-05-01T12:00:03.000Z".into()),
            lang: Some("en".into()),
            hashtags: vec!["json".into(), "rustlang".into()],
            rule_tags: vec!["rust posts".into(), "json posts".into()],
        }
    );
    let t1 = tweet(1, &["rust posts"]);
    assert_eq!(got[1].id, t1.id, "a line split across chunks");
    assert_eq!(got[1].author, t1.author);
    assert_eq!(got[1].hashtags, t1.hashtags);
    assert_eq!(got[1].rule_tags, ["rust posts"]);

    let reqs = mock.stream_requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("GET", "/2/tweets/search/stream")
    );
    assert_eq!(
        r.param("tweet.fields"),
        Some("created_at,lang,entities,author_id")
    );
    assert_eq!(r.param("expansions"), Some("author_id"));
    assert_eq!(r.param("user.fields"), Some("username"));
    assert_eq!(
        r.param("backfill_minutes"),
        None,
        "no backfill on the first connection"
    );
    assert_eq!(r.auth, twitter_mock::Auth::Ok);
    assert_eq!(r.header("authorization"), Some("<redacted>"));
    assert!(
        r.header("user-agent")
            .is_some_and(|ua| ua.starts_with("squall/")),
        "{:?}",
        r.header("user-agent")
    );

    let summary = run.stop().expect("stop");
    let m = &summary.metrics;
    assert_eq!(counter(m, "connects"), 1);
    assert!(counter(m, "keepalives") >= 2, "{:?}", counters(m));
    assert_eq!(counter(m, "malformed"), 0);
    let spout = m.component("twitter").expect("spout metrics");
    assert_eq!((spout.emitted, spout.acked, spout.failed), (5, 5, 0));
}

#[test]
fn the_sample_stream_needs_no_rules_and_passes_duplicates_through() {
    init();
    let mock = MockX::start();
    let sample = r#"{"data":{"id":"1900000000000000003","text":"Morning coffee and a 1% sample of the world #MondayMotivation","edit_history_tweet_ids":["1900000000000000003"],"author_id":"1000000000000000013","created_at":"2024-05-01T12:00:04.000Z","entities":{"hashtags":[{"start":44,"end":61,"tag":"MondayMotivation"}]}},"includes":{"users":[{"id":"1000000000000000013","name":"Sample Person","username":"sample_person"}]}}"#;
    mock.push(Script::Stream {
        steps: vec![
            Step::Line(sample.into()),
            Step::KeepAlive,
            Step::Line(sample.into()),
            Step::Line("{\"data\":{\"id\":\"x\"}}".into()),
            Step::Line("{\"scrub_geo\":{}}".into()),
        ],
        end: End::KeepAlives(ms(100)),
    });
    let sink = TweetSink::default();
    let cfg = TwitterSpoutConfig {
        endpoint: Endpoint::Sample,
        ..config(&mock, 1.0)
    };
    let run = submit(&cfg, &sink);
    wait_for_tweets(&run, &sink, 2);
    assert!(wait_until(WAIT, || counter(
        &run.metrics(),
        "unknown_messages"
    ) == 1));
    let got = sink.got();
    assert_eq!(
        got[0], got[1],
        "the API may repeat a tweet; the spout does not hide it"
    );
    assert_eq!(got[0].author.as_deref(), Some("sample_person"));
    assert_eq!(got[0].hashtags, ["mondaymotivation"]);
    assert!(got[0].rule_tags.is_empty());
    assert_eq!(got[0].lang, None);
    let r = &mock.stream_requests()[0];
    assert_eq!(r.path, "/2/tweets/sample/stream");
    assert_eq!(r.param("expansions"), Some("author_id"));
    let summary = run.stop().expect("stop");
    assert_eq!(
        counter(&summary.metrics, "malformed"),
        1,
        "a tweet without text"
    );
}

#[test]
fn only_tweets_of_the_chosen_rule_tags_are_emitted() {
    init();
    let mock = MockX::start();
    mock.add_rule("#rustlang", "rust posts");
    mock.add_rule("#json", "json posts");
    let served: Vec<String> = (1..=20)
        .map(|i| match i % 3 {
            0 => tweet_line(i, &["json posts"]),
            1 => tweet_line(i, &["rust posts"]),
            _ => tweet_line(i, &["json posts", "rust posts"]),
        })
        .collect();
    mock.push(Script::serve_then_hold(served, ms(100)));
    let sink = TweetSink::default();
    let cfg = TwitterSpoutConfig {
        rule_tags: Some(vec!["rust posts".into()]),
        ..config(&mock, 1.0)
    };
    let run = submit(&cfg, &sink);
    let want: Vec<String> = (1..=20).filter(|i| i % 3 != 0).map(id_of).collect();
    wait_for_tweets(&run, &sink, want.len());
    assert!(wait_until(WAIT, || counter(&run.metrics(), "filtered_out") == 6));
    let summary = run.stop().expect("stop");
    assert_eq!(sink.ids(), want);
    assert_eq!(counter(&summary.metrics, "filtered_out"), 6);
}

#[test]
fn keepalives_hold_the_connection_and_a_stall_reconnects_with_backfill() {
    init();
    let mock = MockX::start();
    mock.add_rule("#rustlang", "rust posts");
    // 5 × 150 ms of silence broken by keep-alives: longer than the 300 ms stall timeout
    // in total, never in one piece. Then silence.
    let mut steps = vec![Step::Line(tweet_line(1, &[]))];
    for _ in 0..5 {
        steps.push(Step::Pause(ms(150)));
        steps.push(Step::KeepAlive);
    }
    steps.push(Step::Line(tweet_line(2, &[])));
    mock.push(Script::Stream {
        steps,
        end: End::Stall,
    });
    mock.push(Script::serve_then_hold(vec![tweet_line(3, &[])], ms(100)));
    let sink = TweetSink::default();
    let cfg = TwitterSpoutConfig {
        stall_timeout: ms(300),
        backfill_minutes: 2,
        ..config(&mock, 1.0)
    };
    let run = submit(&cfg, &sink);
    wait_for_tweets(&run, &sink, 3);
    let reqs = mock.wait_for_stream_requests(2, WAIT);
    let summary = run.stop().expect("stop");

    assert_eq!(sink.ids(), [1, 2, 3].map(id_of));
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= ms(750 + 300) && gap < ms(750 + 300 + 400),
        "the stall is detected 300 ms after the last byte, then an immediate reconnect: {gap:?}"
    );
    assert_eq!(reqs[0].param("backfill_minutes"), None);
    assert_eq!(
        reqs[1].param("backfill_minutes"),
        Some("2"),
        "backfill on the reconnect"
    );
    let m = &summary.metrics;
    assert_eq!(counter(m, "stalls"), 1, "{:?}", counters(m));
    assert_eq!(counter(m, "connects"), 2);
    assert_eq!(counter(m, "disconnects"), 1);
    assert_eq!(
        counter(m, "reconnect_waits_ms"),
        0,
        "a drop after data waits nothing"
    );
    assert!(counter(m, "keepalives") >= 5);
    assert!(logs().contains("stream stalled"), "the stall is logged");
}

#[test]
fn an_operational_disconnect_reconnects_at_once() {
    init();
    let mock = MockX::start();
    mock.add_rule("#rustlang", "rust posts");
    mock.push(Script::serve_then_disconnect(lines(1..=3, &[])));
    mock.push(Script::serve_then_hold(lines(4..=6, &[]), ms(100)));
    let sink = TweetSink::default();
    let run = submit(&config(&mock, 1.0), &sink);
    wait_for_tweets(&run, &sink, 6);
    let reqs = mock.wait_for_stream_requests(2, WAIT);
    let summary = run.stop().expect("stop");
    assert_eq!(sink.ids(), (1..=6).map(id_of).collect::<Vec<_>>());
    assert_waits(&reqs, &[Duration::ZERO]);
    let m = &summary.metrics;
    assert_eq!(counter(m, "stream_errors"), 1);
    assert_eq!(counter(m, "disconnects"), 1);
    assert_eq!(counter(m, "connects"), 2);
    assert_eq!(counter(m, "reconnect_waits_ms"), 0);
    let log = logs();
    assert!(
        log.contains("operational-disconnect") && log.contains("UpstreamOperationalDisconnect"),
        "the error's title and type are logged"
    );
}

#[test]
fn http_503s_back_off_exponentially_and_data_resets_the_back_off() {
    init();
    let mock = MockX::start();
    mock.add_rule("#rustlang", "rust posts");
    for _ in 0..3 {
        mock.push(Script::status(503));
    }
    mock.push(Script::serve_then_close(lines(1..=2, &[])));
    mock.push(Script::status(503));
    mock.push(Script::serve_then_hold(lines(3..=4, &[]), ms(100)));
    let sink = TweetSink::default();
    // 5 s × 0.08 = 400 ms, doubling.
    let run = submit(&config(&mock, 0.08), &sink);
    wait_for_tweets(&run, &sink, 4);
    let reqs = mock.wait_for_stream_requests(6, WAIT);
    let summary = run.stop().expect("stop");
    assert_eq!(
        reqs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 503, 503, 200, 503, 200]
    );
    // 400, 800, 1600; the close after data: at once; then 400 again (reset).
    assert_waits(&reqs, &[ms(400), ms(800), ms(1600), ms(0), ms(400)]);
    let m = &summary.metrics;
    assert_eq!(counter(m, "reconnect_waits_ms"), 400 + 800 + 1600 + 400);
    assert_eq!(counter(m, "connect_errors"), 4);
    assert_eq!(counter(m, "connects"), 2);
    assert_eq!(sink.ids(), (1..=4).map(id_of).collect::<Vec<_>>());
}

#[test]
fn http_429s_back_off_from_the_rate_limit_base() {
    init();
    let mock = MockX::start();
    mock.add_rule("#rustlang", "rust posts");
    mock.push(Script::status(429));
    mock.push(Script::status_with(
        429,
        twitter_mock::BODY_429_USAGE_CAPPED,
    ));
    mock.push(Script::serve_then_hold(lines(1..=1, &[]), ms(100)));
    let sink = TweetSink::default();
    // 60 s × 0.01 = 600 ms, doubling.
    let run = submit(&config(&mock, 0.01), &sink);
    wait_for_tweets(&run, &sink, 1);
    let reqs = mock.wait_for_stream_requests(3, WAIT);
    let summary = run.stop().expect("stop");
    assert_waits(&reqs, &[ms(600), ms(1200)]);
    assert_eq!(counter(&summary.metrics, "reconnect_waits_ms"), 1800);
    let log = logs();
    assert!(
        log.contains("TooManyConnections"),
        "the 429's reason is logged"
    );
    assert!(log.contains("UsageCapExceeded"));
    assert!(
        log.contains("x-rate-limit-remaining=0"),
        "rate-limit headers are logged"
    );
}

#[test]
fn connections_that_deliver_nothing_back_off_linearly() {
    init();
    let mock = MockX::start();
    mock.add_rule("#rustlang", "rust posts");
    for _ in 0..4 {
        mock.push(Script::serve_then_close(Vec::new()));
    }
    mock.push(Script::serve_then_hold(lines(1..=1, &[]), ms(100)));
    let sink = TweetSink::default();
    let mut cfg = config(&mock, 1.0);
    cfg.reconnect.network_step = ms(200);
    cfg.reconnect.network_max = ms(500);
    let run = submit(&cfg, &sink);
    wait_for_tweets(&run, &sink, 1);
    let reqs = mock.wait_for_stream_requests(5, WAIT);
    let summary = run.stop().expect("stop");
    // +200 ms per attempt, capped at 500 ms.
    assert_waits(&reqs, &[ms(200), ms(400), ms(500), ms(500)]);
    assert_eq!(counter(&summary.metrics, "reconnect_waits_ms"), 1600);
}

#[test]
fn unauthorized_forbidden_and_no_rules_stop_the_run_without_retrying() {
    init();
    // A token the mock does not accept: its real auth check answers 401.
    let mock = MockX::start_with_token("another-token");
    mock.add_rule("#rustlang", "rust posts");
    let run = submit(&config(&mock, 0.01), &TweetSink::default());
    let err = fatal_error(run);
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(err.contains("bearer token"), "{err}");
    assert!(err.contains(TOKEN_ENV), "names the variable: {err}");
    assert!(
        err.contains("/2/tweets/search/stream"),
        "names the URL: {err}"
    );
    assert!(!err.contains(TOKEN), "{err}");
    assert_eq!(mock.stream_requests().len(), 1, "a 401 is not retried");

    let mock = MockX::start();
    mock.add_rule("#rustlang", "rust posts");
    mock.push(Script::status(403));
    let err = fatal_error(submit(&config(&mock, 0.01), &TweetSink::default()));
    assert!(err.contains("HTTP 403") && err.contains("Project"), "{err}");
    assert!(err.contains("Client Forbidden"), "the API's text: {err}");
    assert_eq!(mock.stream_requests().len(), 1);

    let mock = MockX::start(); // no rules: 409
    let err = fatal_error(submit(&config(&mock, 0.01), &TweetSink::default()));
    assert!(
        err.contains("the stream has no rules: add one with `squall twitter rules add VALUE`"),
        "{err}"
    );
    assert_eq!(mock.stream_requests().len(), 1);
}

#[test]
fn a_missing_token_variable_fails_the_open() {
    init();
    let mock = MockX::start();
    let cfg = TwitterSpoutConfig {
        token_env: "SQUALL_TEST_TWITTER_SURELY_UNSET".into(),
        ..config(&mock, 1.0)
    };
    let err = fatal_error(submit(&cfg, &TweetSink::default()));
    assert!(
        err.contains("SQUALL_TEST_TWITTER_SURELY_UNSET is not set"),
        "{err}"
    );
    assert!(mock.requests().is_empty(), "nothing sent without a token");
}

#[test]
fn every_tweet_served_is_emitted_exactly_once_across_drops_and_failures() {
    init();
    let mock = MockX::start();
    mock.add_rule("#rustlang", "rust posts");
    mock.push(Script::serve_then_abort(lines(1..=50, &[])));
    mock.push(Script::serve_then_close(lines(51..=100, &[])));
    mock.push(Script::serve_then_disconnect(lines(101..=150, &[])));
    mock.push(Script::status(503));
    mock.push(Script::serve_then_stall(lines(151..=200, &[])));
    mock.push(Script::serve_then_hold(lines(201..=250, &[]), ms(100)));
    let all: Vec<String> = (1..=250).map(id_of).collect();
    let failing: HashSet<String> = (1..=250).filter(|i| i % 7 == 0).map(id_of).collect();
    let sink = TweetSink::failing_first(failing.clone());
    let cfg = TwitterSpoutConfig {
        stall_timeout: ms(300),
        ..config(&mock, 0.01)
    };
    let run = submit(&cfg, &sink);
    wait_for_tweets(&run, &sink, all.len());
    assert!(wait_until(WAIT, || run
        .metrics()
        .component("twitter")
        .is_some_and(|c| c.pending == 0)));
    let summary = run.stop().expect("stop");

    let served = mock.served_ids();
    assert_eq!(served, all, "the mock served each tweet once, in order");
    let mut got = sink.ids();
    got.sort();
    let mut want = all.clone();
    want.sort();
    assert_eq!(got, want, "each tweet acked exactly once");
    let deliveries = lock(&sink.deliveries).clone();
    for id in &all {
        let want = if failing.contains(id) { 2 } else { 1 };
        assert_eq!(deliveries.get(id), Some(&want), "deliveries of {id}");
    }
    let m = &summary.metrics;
    let spout = m.component("twitter").expect("spout metrics");
    let failed = failing.len() as u64;
    assert_eq!(spout.emitted, 250 + failed);
    assert_eq!(spout.acked, 250);
    assert_eq!(spout.failed, failed);
    assert_eq!(counter(m, "given_up"), 0);
    assert_eq!(counter(m, "connects"), 5, "{:?}", counters(m));
    assert_eq!(counter(m, "stalls"), 1);
    assert_eq!(counter(m, "stream_errors"), 1);
}

#[test]
fn the_token_never_shows_in_logs_errors_or_metrics() {
    init();
    let mock = MockX::start();
    mock.add_rule("#rustlang", "rust posts");
    mock.push(Script::status(503));
    mock.push(Script::serve_then_abort(lines(1..=3, &[])));
    mock.push(Script::Stream {
        steps: vec![
            Step::Line("{not json".into()),
            Step::Line(tweet_line(4, &[])),
        ],
        end: End::Close,
    });
    mock.push(Script::status(429));
    mock.push(Script::serve_then_disconnect(lines(5..=5, &[])));
    mock.push(Script::status(401));
    let sink = TweetSink::default();
    let run = submit(&config(&mock, 0.01), &sink);
    let registry = run.registry();
    let err = fatal_error(run);
    let metrics = format!("{:?}", registry.snapshot());
    assert!(err.contains("HTTP 401"), "{err}");
    // Tweet 5 comes just before the 401 and may be dropped by the stop.
    assert!(sink.count() >= 4, "{}", sink.count());
    assert_eq!(mock.stream_requests().len(), 6);
    let log = logs();
    assert!(log.contains("stream connected"), "logs are captured");
    for (what, text) in [("error", &err), ("metrics", &metrics), ("logs", &log)] {
        assert!(!text.contains(TOKEN), "the token is in the {what}");
    }
}

/// A topology file: twitter → jsonl, against `mock`.
fn topology_file(dir: &cli::TempDir, mock: &MockX, out: &str) -> std::path::PathBuf {
    let text = format!(
        r#"name = "twitter-cli-test"

[spouts.source]
type = "twitter"
base_url = "{base}"
token_env = "{TOKEN_ENV}"
stall_timeout = "2s"
reconnect = {{ http_initial = "50ms", http_max = "200ms" }}

[bolts.out]
type = "jsonl"
path = "{out}"
inputs = [{{ from = "source" }}]
"#,
        base = mock.base_url(),
        out = dir.join(out).display()
    );
    dir.write("twitter.toml", &text)
}

#[test]
fn cli_run_streams_to_a_file_and_a_401_exits_non_zero_without_the_token() {
    init();
    let dir = cli::TempDir::new("twitter-cli");
    let mock = MockX::start();
    mock.add_rule("#rustlang", "rust posts");
    mock.push(Script::serve_then_close(lines(1..=3, &["rust posts"])));
    mock.push(Script::status(503));
    mock.push(Script::serve_then_hold(
        lines(4..=5, &["rust posts"]),
        ms(100),
    ));
    let file = topology_file(&dir, &mock, "out.jsonl");
    let report = dir.join("r.json");
    let out = cli::squall(
        [
            "topology".to_string(),
            "run".into(),
            file.display().to_string(),
            "--duration".into(),
            "2s".into(),
            "--report".into(),
            report.display().to_string(),
            "--quiet".into(),
        ],
        Duration::from_secs(20),
    );
    out.assert_success();
    let written = std::fs::read_to_string(dir.join("out.jsonl")).expect("output file");
    let ids: Vec<String> = written
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            assert_eq!(v["rule_tags"], serde_json::json!(["rust posts"]), "{l}");
            v["id"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(ids, (1..=5).map(id_of).collect::<Vec<_>>());
    let r = cli::read_report(&report);
    assert_eq!(cli::field_u64(&r, "counters.source.connects"), 2);
    assert_eq!(cli::field_u64(&r, "counters.source.connect_errors"), 1);
    let report_text = std::fs::read_to_string(&report).unwrap_or_default();
    for (what, text) in [
        ("stderr", &out.stderr),
        ("stdout", &out.stdout),
        ("report", &report_text),
        ("output", &written),
    ] {
        assert!(!text.contains(TOKEN), "the token is in the {what}");
    }

    let refusing = MockX::start_with_token("another-token");
    refusing.add_rule("#rustlang", "rust posts");
    let file = topology_file(&dir, &refusing, "out2.jsonl");
    let out = cli::squall(
        ["topology", "run", &file.display().to_string(), "--quiet"],
        Duration::from_secs(20),
    );
    out.assert_failure();
    assert!(
        out.stderr.contains("HTTP 401"),
        "{}",
        cli::tail(&out.stderr)
    );
    assert!(out.stderr.contains(TOKEN_ENV), "{}", cli::tail(&out.stderr));
    assert!(!out.stderr.contains(TOKEN) && !out.stdout.contains(TOKEN));
    assert_eq!(refusing.stream_requests().len(), 1);
}

/// GET/POST on the mock's rules endpoint, answering (status, JSON body).
fn rules_call(
    mock: &MockX,
    post: Option<(&str, serde_json::Value)>,
    token: &str,
) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = squall::twitter::auth::http_client(Duration::from_secs(2)).expect("client");
        let url = format!("{}/2/tweets/search/stream/rules", mock.base_url());
        let req = match post {
            None => client.get(url),
            Some((query, body)) => client.post(format!("{url}{query}")).json(&body),
        };
        let resp = req.bearer_auth(token).send().await.expect("send");
        let status = resp.status().as_u16();
        let body = resp.json().await.expect("a JSON body");
        (status, body)
    })
}

#[test]
fn the_mock_rules_endpoints_answer_like_the_examples() {
    init();
    let mock = MockX::start();
    let (s, empty) = rules_call(&mock, None, TOKEN);
    assert_eq!(s, 200);
    assert_eq!(empty["meta"]["result_count"], 0);
    assert!(empty.get("data").is_none(), "{empty}");

    let add = serde_json::json!({"add": [
        {"value": "#rustlang -is:retweet", "tag": "rust posts"},
        {"value": "#json lang:en", "tag": "json posts"}]});
    let (_, dry) = rules_call(&mock, Some(("?dry_run=true", add.clone())), TOKEN);
    assert_eq!(dry["meta"]["summary"]["created"], 2, "{dry}");
    assert!(mock.rules().is_empty(), "a dry run stores nothing");
    let (_, added) = rules_call(&mock, Some(("", add.clone())), TOKEN);
    assert_eq!(
        added["meta"]["summary"],
        serde_json::json!({"created": 2, "not_created": 0, "valid": 2, "invalid": 0})
    );
    assert_eq!(added["data"][0]["tag"], "rust posts");
    let first_id = added["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let dup = serde_json::json!({"add": [{"value": "#rustlang -is:retweet"}]});
    let (_, d) = rules_call(&mock, Some(("", dup)), TOKEN);
    assert_eq!(
        d["meta"]["summary"],
        serde_json::json!({"created": 0, "not_created": 1, "valid": 0, "invalid": 1})
    );
    assert_eq!(d["errors"][0]["title"], "DuplicateRule");
    assert_eq!(d["errors"][0]["id"], first_id.as_str());
    let (_, inv) = rules_call(
        &mock,
        Some(("", serde_json::json!({"add": [{"value": "--b"}]}))),
        TOKEN,
    );
    assert_eq!(inv["errors"][0]["title"], "UnprocessableEntity");
    assert_eq!(
        inv["errors"][0]["details"][0],
        "Rules must contain a non-negation term (at position 1)"
    );

    let (_, list) = rules_call(&mock, None, TOKEN);
    assert_eq!(list["meta"]["result_count"], 2);
    let del = serde_json::json!({"delete": {"ids": [first_id, "999"]}});
    let (_, deleted) = rules_call(&mock, Some(("", del)), TOKEN);
    assert_eq!(
        deleted["meta"]["summary"],
        serde_json::json!({"deleted": 1, "not_deleted": 1})
    );
    assert_eq!(mock.rules().len(), 1);

    let (s, body) = rules_call(&mock, None, "wrong");
    assert_eq!((s, body["title"].as_str()), (401, Some("Unauthorized")));
    mock.push_rules_status(Script::status(429));
    let (s, _) = rules_call(&mock, None, TOKEN);
    assert_eq!(s, 429);
    let posts: Vec<Request> = mock
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts[0].param("dry_run"), Some("true"));
    assert!(posts[0].body.contains("#json lang:en"));
    assert!(
        mock.requests()
            .iter()
            .all(|r| r.header("authorization") == Some("<redacted>"))
    );
}
