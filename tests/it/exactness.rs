//! The trending-hashtags job gives the exact top-10: the shipped topology run through the
//! CLI over a bounded generator stream (acking on and off), and the file spout over X API
//! v2 / v1.1 stream messages, compared with the top-10 computed directly in the test.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use squall::tweet::generator::{GeneratorConfig, TweetGenerator};
use squall::tweet::wire::{StreamMessage, parse_line, to_v2_json};

use crate::support::cli::*;

const TWEETS: u64 = 50_000;
const TIMEOUT: Duration = Duration::from_secs(15);
const BOLTS: [&str; 6] = [
    "tokenize",
    "hashtags",
    "counts",
    "rank",
    "total_rank",
    "sink",
];
const PERCENTILES: [&str; 5] = ["p50", "p90", "p99", "p999", "max"];

/// Runs the shipped trending-hashtags topology over tweets 1..=TWEETS with a 1 h window
/// (so the final window holds every tweet) and returns the report.
fn run_trending(extra: &[&str]) -> serde_json::Value {
    run_trending_with(&[], extra).0
}

/// `run_trending` with extra command-line flags; the report and the run's stderr.
fn run_trending_with(flags: &[&str], extra: &[&str]) -> (serde_json::Value, String) {
    let dir = TempDir::new("exactness");
    let report = dir.join("r.json");
    let mut args: Vec<String> = vec![
        "topology".into(),
        "run".into(),
        topology("trending-hashtags.toml").display().to_string(),
        "--set".into(),
        format!("spouts.source.limit={TWEETS}"),
        "--set".into(),
        "spouts.source.rate=0".into(),
        "--set".into(),
        "bolts.counts.window=1h".into(),
        "--set".into(),
        "bolts.counts.slide=10s".into(),
        "--report".into(),
        report.display().to_string(),
        "--quiet".into(),
    ];
    for e in extra {
        args.push("--set".into());
        args.push(e.to_string());
    }
    args.extend(flags.iter().map(|f| f.to_string()));
    let out = squall(&args, TIMEOUT);
    out.assert_success();
    assert!(
        !out.stderr.contains("tuples/s  acked"),
        "--quiet still printed status lines:\n{}",
        tail(&out.stderr)
    );
    (read_report(&report), out.stderr)
}

/// The report has every documented field, with sane values.
fn check_schema(r: &serde_json::Value) {
    assert_eq!(field(r, "topology"), "trending-hashtags");
    assert_eq!(field(r, "mode"), "event");
    let duration = field_f64(r, "duration_s");
    assert!(
        duration > 0.0 && duration < TIMEOUT.as_secs_f64(),
        "duration_s {duration}"
    );
    let tps = field_f64(r, "throughput_tps");
    assert!(tps > 0.0, "throughput_tps {tps}");
    assert_eq!(field_f64(r, "warmup_s"), 0.0, "no warm-up was asked for");
    for k in ["emitted", "acked", "failed"] {
        field_u64(r, &format!("spouts.source.{k}"));
    }
    for p in PERCENTILES {
        field_f64(r, &format!("spouts.source.complete_latency_us.{p}"));
    }
    let bolts = field(r, "bolts")
        .as_object()
        .unwrap_or_else(|| panic!("`bolts` is not an object: {r}"));
    let mut names: Vec<&str> = bolts.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut want = BOLTS.to_vec();
    want.sort_unstable();
    assert_eq!(names, want, "the report's bolts");
    for b in BOLTS {
        for k in ["executed", "emitted", "acked", "failed"] {
            field_u64(r, &format!("bolts.{b}.{k}"));
        }
        for p in PERCENTILES {
            field_f64(r, &format!("bolts.{b}.execute_latency_us.{p}"));
        }
    }
    assert!(field(r, "counters").is_object(), "`counters`: {r}");
    assert!(field(r, "topk").is_array(), "`topk`: {r}");
}

/// What every bounded run over the generator must show, acking on or off.
fn check_counts(r: &serde_json::Value, counts: &HashMap<String, u64>) {
    let mentions: u64 = counts.values().sum();
    assert_eq!(field_u64(r, "spouts.source.emitted"), TWEETS);
    assert_eq!(field_u64(r, "spouts.source.acked"), TWEETS);
    assert_eq!(field_u64(r, "spouts.source.failed"), 0);
    assert_eq!(field_u64(r, "bolts.tokenize.executed"), TWEETS);
    assert_eq!(
        field_u64(r, "bolts.hashtags.emitted"),
        mentions,
        "hashtag mentions found by tokenize → hashtags vs the tweets' hashtags"
    );
    assert_eq!(field_u64(r, "bolts.counts.executed"), mentions);
    for b in BOLTS {
        assert_eq!(field_u64(r, &format!("bolts.{b}.failed")), 0, "bolt {b}");
    }
    let truth = top_k(counts, 10);
    assert_eq!(truth.len(), 10);
    assert_eq!(report_topk(r), truth, "report topk vs the exact top-10");
}

#[test]
fn trending_hashtags_top10_is_exact_with_acking() {
    let counts = generator_hashtag_counts(42, TWEETS);
    let r = run_trending(&[]);
    check_schema(&r);
    check_counts(&r, &counts);
    // Acking on: every tree completed, so the complete latency was measured.
    let lat: Vec<f64> = PERCENTILES
        .iter()
        .map(|p| field_f64(&r, &format!("spouts.source.complete_latency_us.{p}")))
        .collect();
    assert!(
        lat[0] > 0.0,
        "complete latency p50 is 0 with acking on: {lat:?}"
    );
    assert!(
        lat.windows(2).all(|w| w[0] <= w[1]),
        "percentiles not ordered: {lat:?}"
    );
    for b in BOLTS {
        let executed = field_u64(&r, &format!("bolts.{b}.executed"));
        assert_eq!(
            field_u64(&r, &format!("bolts.{b}.acked")),
            executed,
            "bolt {b} acked vs executed"
        );
    }
}

#[test]
fn a_run_that_ends_within_its_warmup_reports_all_of_it() {
    let counts = generator_hashtag_counts(42, TWEETS);
    let (r, stderr) = run_trending_with(&["--warmup", "1h"], &[]);
    assert!(
        stderr.contains("the run ended within its warm-up (1h); the report covers all of it"),
        "{}",
        tail(&stderr)
    );
    check_schema(&r);
    check_counts(&r, &counts);
}

#[test]
fn trending_hashtags_top10_is_exact_without_acking() {
    let counts = generator_hashtag_counts(42, TWEETS);
    // Acking off: at-most-once, the spout counts a tuple as acked when it is emitted.
    let r = run_trending(&["config.acking=false"]);
    check_schema(&r);
    check_counts(&r, &counts);
}

// ---------------------------------------------------------------------------
// The file spout over stream messages.

/// The hand-written stream lines: v2 tweets (non-ASCII text, retweet, Japanese), a
/// keep-alive, a v1.1 truncated status whose hashtags live only in `extended_tweet`, a
/// delete notice, and one malformed (cut-off) JSON line.
fn fixture() -> String {
    let p = root().join("tests/fixtures/tweets-v2.jsonl");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Hashtags per parsed tweet line, plus how many lines were notices and malformed.
struct Parsed {
    counts: HashMap<String, u64>,
    tweets: usize,
    notices: u64,
    malformed: u64,
}

fn parse_file(text: &str) -> Parsed {
    let mut p = Parsed {
        counts: HashMap::new(),
        tweets: 0,
        notices: 0,
        malformed: 0,
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line.as_bytes()) {
            Ok(StreamMessage::Tweet(t)) => {
                p.tweets += 1;
                for tag in t.hashtags {
                    *p.counts.entry(tag).or_default() += 1;
                }
            }
            Ok(StreamMessage::KeepAlive) => {}
            Ok(_) => p.notices += 1,
            Err(_) => p.malformed += 1,
        }
    }
    p
}

/// Every v2 line's hashtag entities point at `#tag` in the text, in characters.
fn check_v2_offsets(line: &str) {
    let v: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(_) => return, // the malformed line
    };
    let Some(data) = v.get("data") else { return };
    let text: Vec<char> = data["text"].as_str().unwrap_or_default().chars().collect();
    let tags = data["entities"]["hashtags"].as_array().cloned();
    for h in tags.unwrap_or_default() {
        let (s, e) = (
            h["start"].as_u64().unwrap_or(u64::MAX) as usize,
            h["end"].as_u64().unwrap_or(u64::MAX) as usize,
        );
        let tag = h["tag"].as_str().unwrap_or_default();
        assert!(
            s < e && e <= text.len(),
            "entity {h} out of range in {line}"
        );
        let span: String = text[s..e].iter().collect();
        assert_eq!(span, format!("#{tag}"), "entity {h} in {line}");
    }
}

/// Runs file-hashtags.toml over `path`; returns the report.
fn run_file(path: &Path, dir: &TempDir) -> serde_json::Value {
    let report = dir.join("r.json");
    let out = squall(
        [
            "topology".to_string(),
            "run".into(),
            topology("file-hashtags.toml").display().to_string(),
            "--set".into(),
            format!("spouts.source.path={}", path.display()),
            "--report".into(),
            report.display().to_string(),
            "--quiet".into(),
        ],
        TIMEOUT,
    );
    out.assert_success();
    read_report(&report)
}

#[test]
fn fixture_lines_are_real_looking_stream_messages() {
    let text = fixture();
    for line in text.lines() {
        check_v2_offsets(line);
    }
    let p = parse_file(&text);
    assert_eq!((p.tweets, p.notices, p.malformed), (4, 1, 1));
    assert!(text.lines().any(|l| l.trim().is_empty()), "no keep-alive");
    assert!(
        text.contains("\"extended_tweet\""),
        "no v1.1 extended tweet"
    );
}

#[test]
fn file_spout_fixture_alone_gives_its_hashtags() {
    let dir = TempDir::new("file-fixture");
    let path = dir.write("tweets.jsonl", &fixture());
    let r = run_file(&path, &dir);
    // Counted by hand from the fixture: #RustLang in the three v2 tweets and in the
    // v1.1 extended_tweet (its truncated `text` has no hashtag at all).
    let want: Vec<(String, u64)> = [
        ("rustlang", 4),
        ("dataengineering", 1),
        ("hashtags", 1),
        ("squall", 1),
        ("streamprocessing", 1),
        ("ストリーム処理", 1),
    ]
    .iter()
    .map(|(k, c)| (k.to_string(), *c))
    .collect();
    assert_eq!(report_topk(&r), want);
    assert_eq!(field_u64(&r, "counters.source.malformed_lines"), 1);
    assert_eq!(field_u64(&r, "counters.source.notices"), 1, "the delete");
    assert_eq!(field_u64(&r, "spouts.source.emitted"), 4);
    assert_eq!(field_u64(&r, "spouts.source.acked"), 4);
    assert_eq!(field_u64(&r, "spouts.source.failed"), 0);
}

#[test]
fn file_spout_top10_is_exact_over_v2_stream_lines() {
    let g = TweetGenerator::new(GeneratorConfig {
        seed: 7,
        ..GeneratorConfig::default()
    })
    .expect("generator");
    let hand: Vec<String> = fixture().lines().map(str::to_string).collect();
    let mut lines = Vec::new();
    let mut generated: HashMap<String, u64> = HashMap::new();
    for n in 1..=300u64 {
        let mut t = g.tweet_at(n);
        t.rule_tags = vec!["trending".into()];
        for tag in &t.hashtags {
            *generated.entry(tag.clone()).or_default() += 1;
        }
        let line = to_v2_json(&t);
        check_v2_offsets(&line);
        match parse_line(line.as_bytes()) {
            Ok(StreamMessage::Tweet(back)) => assert_eq!(back, t, "round trip of {line}"),
            other => panic!("{line} parsed as {other:?}"),
        }
        lines.push(line);
        // Spread the hand-written lines through the file.
        if n % 50 == 0
            && let Some(h) = hand.get((n / 50 - 1) as usize)
        {
            lines.push(h.clone());
        }
    }
    for h in hand.iter().skip(6) {
        lines.push(h.clone());
    }
    let text = lines.join("\n") + "\n";
    let parsed = parse_file(&text);
    assert_eq!(parsed.tweets, 304);
    assert_eq!(parsed.malformed, 1);
    // The parse agrees with the generator for the 300 generated tweets.
    let mut hand_only = parsed.counts.clone();
    for (k, c) in &generated {
        let e = hand_only.entry(k.clone()).or_default();
        assert!(*e >= *c, "{k}: parsed {e}, generated {c}");
        *e -= c;
    }
    hand_only.retain(|_, c| *c > 0);
    assert_eq!(hand_only.values().sum::<u64>(), 9, "hand-written mentions");

    let dir = TempDir::new("file-v2");
    let path = dir.write("tweets-v2.jsonl", &text);
    let r = run_file(&path, &dir);
    let truth = top_k(&parsed.counts, 10);
    assert_eq!(truth.len(), 10);
    assert_eq!(report_topk(&r), truth, "report topk vs the exact top-10");
    assert_eq!(field_u64(&r, "counters.source.malformed_lines"), 1);
    assert_eq!(field_u64(&r, "spouts.source.emitted"), 304);
    assert_eq!(field_u64(&r, "spouts.source.acked"), 304);
    assert_eq!(field_u64(&r, "spouts.source.failed"), 0);
    assert_eq!(
        field_u64(&r, "bolts.counts.executed"),
        parsed.counts.values().sum::<u64>()
    );
}

/// A line longer than `max_line_bytes` is skipped while it is read: a 64 MB line and a
/// 64 MB last line without newline are counted, the lines after them are used, and the
/// run's peak memory is that of the same file without them (it held each huge line whole
/// before: 64 MB more at least).
#[test]
fn file_spout_skips_huge_lines_without_reading_them_into_memory() {
    use std::io::Write;
    let text = fixture();
    let dir = TempDir::new("file-huge");
    let plain = dir.write("plain.jsonl", &format!("{text}{text}"));
    let huge_path = dir.join("huge.jsonl");
    let huge = 64usize << 20;
    {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&huge_path).unwrap_or_else(|e| panic!("create: {e}")),
        );
        let chunk = vec![b'x'; 1 << 20];
        let mut write = |b: &[u8]| f.write_all(b).unwrap_or_else(|e| panic!("write: {e}"));
        write(text.as_bytes());
        for _ in 0..huge >> 20 {
            write(&chunk);
        }
        write(b"\n");
        write(text.as_bytes());
        for _ in 0..huge >> 20 {
            write(&chunk);
        }
        f.flush().unwrap_or_else(|e| panic!("flush: {e}"));
    }
    let base = run_file(&plain, &dir);
    let r = run_file(&huge_path, &dir);
    assert_eq!(field_u64(&r, "counters.source.oversized_lines"), 2);
    assert_eq!(
        report_topk(&r),
        report_topk(&base),
        "the same tweets were used"
    );
    assert_eq!(field_u64(&r, "spouts.source.emitted"), 8);
    let (peak, base_peak) = (
        field_u64(&r, "peak_rss_bytes"),
        field_u64(&base, "peak_rss_bytes"),
    );
    assert!(
        peak < base_peak + (huge as u64) / 2,
        "peak RSS {} MB with the huge lines, {} MB without",
        peak >> 20,
        base_peak >> 20
    );
}

/// The shipped file-hashtags.toml reads `topologies/data/sample-tweets.jsonl` by default.
#[test]
fn shipped_file_topology_runs_with_its_default_path() {
    let out = squall(
        [
            "topology",
            "run",
            "topologies/file-hashtags.toml",
            "--quiet",
        ],
        TIMEOUT,
    );
    out.assert_success();
}
