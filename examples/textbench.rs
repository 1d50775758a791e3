#[global_allocator]
static A: mimalloc::MiMalloc = mimalloc::MiMalloc;
use squall::columns::StrColumn;
use squall::spouts::tweet_fields::TweetColumns;
use squall::text::generator::{GeneratorConfig, TweetGenerator};
use squall::text::tokenize::tokenize_reusing;
use std::time::Instant;

fn main() {
    let g = TweetGenerator::new(GeneratorConfig::default()).unwrap();
    let n = 1024u64;
    let rounds = 1000u64;
    let mut gen_ns = 0u128;
    let mut tok_ns = 0u128;
    let mut words_total = 0usize;
    let mut text_only_ns = 0u128;
    for r in 0..rounds {
        let t0 = Instant::now();
        let mut cols = TweetColumns::with_capacity(n as usize, &g);
        for j in 0..n {
            cols.push(&g, r * n + j);
        }
        let c = cols.finish().unwrap();
        gen_ns += t0.elapsed().as_nanos();
        let t2 = Instant::now();
        let mut text = StrColumn::with_capacity(n as usize, n as usize * 96);
        for j in 0..n {
            text.push_with(|s| {
                g.write_tweet(r * n + j, s, |_| {});
            });
        }
        text_only_ns += t2.elapsed().as_nanos();
        let texts = c.column_at(1).unwrap().as_str().unwrap();
        let t1 = Instant::now();
        let mut words = StrColumn::with_capacity(texts.bytes() / 8 + 1, texts.bytes());
        let mut buf = String::new();
        for t in texts.iter() {
            tokenize_reusing(t, true, &mut buf, |w| words.push(w));
        }
        tok_ns += t1.elapsed().as_nanos();
        words_total += words.len();
    }
    let tw = (n * rounds) as f64;
    println!(
        "gen {:.1} ns/tweet, text-only {:.1}, tokenize {:.1} ns/tweet, {:.1} words/tweet",
        gen_ns as f64 / tw,
        text_only_ns as f64 / tw,
        tok_ns as f64 / tw,
        words_total as f64 / tw
    );
}
