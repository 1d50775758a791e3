//! The trending-hashtags job's benchmarks (issue 3).
//!
//! `cargo bench --bench pipeline`:
//! - `tokenize_hashtags`: tokenize + hashtag filter of one generated tweet (ns/tweet);
//! - `reference_loop`: the physical reference, a hand-written single-threaded loop doing
//!   the same tokenize / filter / count over pre-generated tweet texts (lines/s);
//! - `trending_topology`: the shipped topologies/trending-hashtags.toml on the generator,
//!   run to completion over a bounded number of tweets, acking on and off (tweets/s).
//!
//! The 5,000,000-tweet runs through the CLI (generator and TCP socket) are in
//! `benches/trending.sh`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use squall::LocalCluster;
use squall::text::hashtags::{is_hashtag_token, normalize_hashtag};
use squall::text::tokenize::tokenize;
use squall::tweet::generator::{GeneratorConfig, TweetGenerator};

fn texts(n: u64) -> Vec<String> {
    let g = match TweetGenerator::new(GeneratorConfig::default()) {
        Ok(g) => g,
        Err(e) => panic!("generator: {e}"),
    };
    (1..=n).map(|i| g.tweet_at(i).text).collect()
}

/// Tokenize, keep hashtags, count them: what the topology does, in one loop.
fn reference_count(lines: &[String]) -> HashMap<String, u64> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for l in lines {
        tokenize(l, true, |w| {
            if is_hashtag_token(w)
                && let Some(tag) = normalize_hashtag(w)
            {
                *counts.entry(tag).or_insert(0) += 1;
            }
        });
    }
    counts
}

fn bench_tokenize(c: &mut Criterion) {
    let lines = texts(10_000);
    let mut g = c.benchmark_group("tokenize_hashtags");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("per_tweet", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for l in &lines {
                tokenize(l, true, |w| {
                    if is_hashtag_token(w) && normalize_hashtag(w).is_some() {
                        n += 1;
                    }
                });
            }
            n
        })
    });
    g.finish();
}

fn bench_reference(c: &mut Criterion) {
    let lines = texts(200_000);
    let mut g = c.benchmark_group("reference_loop");
    g.sample_size(10);
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("tokenize_filter_count", |b| {
        b.iter(|| reference_count(&lines).len())
    });
    g.finish();
}

/// Runs the shipped trending topology over `tweets` generated tweets; returns tweets/s.
fn run_trending(tweets: u64, acking: bool) -> f64 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/trending-hashtags.toml");
    let sets = vec![
        format!("spouts.source.limit={tweets}"),
        "spouts.source.rate=0".to_string(),
        "bolts.sink.quiet=true".to_string(),
        format!("config.acking={acking}"),
    ];
    let file = match squall::topology::file::load(&path, &sets, &squall::builtin::registry()) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    let t = Instant::now();
    let run = match LocalCluster::submit(file.topology, file.config) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    if !run.wait_finished(Duration::from_secs(300)) {
        panic!("trending run did not finish");
    }
    let secs = t.elapsed().as_secs_f64();
    if let Err(e) = run.join() {
        panic!("{e}");
    }
    tweets as f64 / secs
}

fn bench_topology(c: &mut Criterion) {
    let tweets = 500_000;
    let mut g = c.benchmark_group("trending_topology");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(tweets));
    for acking in [true, false] {
        let name = if acking { "acking_on" } else { "acking_off" };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let tps = run_trending(tweets, acking);
                    total += Duration::from_secs_f64(tweets as f64 / tps);
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_tokenize, bench_reference, bench_topology);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // A plain summary line per measurement, for docs/benchmarks.md.
    let lines = texts(1_000_000);
    let t = Instant::now();
    let n = reference_count(&lines).len();
    let ref_lps = lines.len() as f64 / t.elapsed().as_secs_f64();
    println!("\nsummary: reference loop {ref_lps:.0} lines/s ({n} distinct hashtags)");
    for acking in [true, false] {
        let tps = run_trending(1_000_000, acking);
        println!(
            "summary: trending topology, acking {}: {tps:.0} tweets/s = {:.1}% of the reference loop",
            if acking { "on" } else { "off" },
            100.0 * tps / ref_lps
        );
    }
}
