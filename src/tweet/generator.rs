//! Deterministic synthetic tweets for benchmarks, tests and replay.
//!
//! Tweet `n` is a pure function of `(config, n)`: its random numbers come from
//! a Xoshiro256++ stream seeded from `(seed, n)`, so a generator can be
//! positioned anywhere ([`TweetGenerator::at`], [`TweetGenerator::skip_to`])
//! and reproduce exactly what a fresh one would emit there. Sequence numbers
//! start at 1 and double as tweet ids.
//!
//! Words and hashtags are Zipf-distributed over tables of pronounceable
//! pseudo-words built from syllables; sampling uses Walker/Vose alias tables
//! (one random draw and one table lookup per word).

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::io::time as dates;
use crate::text::short_text::{self, ShortText};
use crate::tweet::wire::Tweet;

/// Largest accepted `vocabulary` / `hashtags` table size.
pub const MAX_TABLE_SIZE: usize = 10_000_000;
/// Largest accepted `max_words`.
pub const MAX_WORDS_PER_TWEET: usize = 1_000;
/// Largest accepted `max_hashtags_per_tweet`.
pub const MAX_HASHTAGS_PER_TWEET: usize = 16;
/// Number of distinct synthetic users (`user1` ..= `user1000`).
pub const USERS: u64 = 1_000;
/// `created_at` of sequence number 0: 2024-01-01T00:00:00.000Z, in Unix ms.
pub const EPOCH_MS: u64 = 1_704_067_200_000;

/// Calls `$then! { $(#[attribute])* name: type = default,)* }` with the tweet generator's options,
/// declared once here: [`GeneratorConfig`] is made of them, and the `generator` spout's
/// options have them after its own.
macro_rules! generator_options {
    ($then:ident) => {
        $then! {
            /// Seed of the tweet stream: the same seed gives the same tweets.
            seed: u64 = 42,
            /// Number of distinct words.
            vocabulary: usize = 10_000,
            /// Number of distinct hashtags.
            hashtags: usize = 1_000,
            /// Zipf exponent of word frequencies.
            zipf_s: f64 = 1.1,
            /// Zipf exponent of hashtag frequencies.
            hashtag_zipf_s: f64 = 1.2,
            min_words: usize = 6,
            max_words: usize = 14,
            /// Each tweet has `0..=max_hashtags_per_tweet` hashtags, uniformly.
            max_hashtags_per_tweet: usize = 3,
            /// `lang` of every tweet (empty: none).
            lang: String = "en".to_owned(),
            /// Event-time mode: the `created_at` of tweet 1, `"now"` (when the spout opens,
            /// the same for all its tasks) or an RFC 3339 time. Absent: tweet `n` is
            /// written at 2024-01-01T00:00:00Z plus `n` ms.
            #[serde(skip_serializing_if = "Option::is_none")]
            event_start: Option<$crate::tweet::generator::EventStart> = None,
            /// Event-time mode: the time between consecutive tweets' `created_at`
            /// (absent: 1/`rate` when paced, else 1 ms).
            #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
            event_interval: Option<::std::time::Duration> = None,
            /// Event-time mode: every tweet's `created_at` is this much in the past.
            #[serde(with = "humantime_serde", skip_serializing_if = "::std::time::Duration::is_zero")]
            skew: ::std::time::Duration = ::std::time::Duration::ZERO,
            /// Event-time mode: each tweet's `created_at` is moved back by a pseudo-random
            /// amount in [0, `disorder`), the same for the same tweet (milliseconds).
            #[serde(with = "humantime_serde", skip_serializing_if = "::std::time::Duration::is_zero")]
            disorder: ::std::time::Duration = ::std::time::Duration::ZERO,
        }
    };
}
pub(crate) use generator_options;

macro_rules! generator_config {
    ($($(#[$meta:meta])* $field:ident: $ty:ty = $default:expr,)*) => {
        /// Configuration of a [`TweetGenerator`].
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct GeneratorConfig {
            $($(#[$meta])* pub $field: $ty,)*
        }

        impl Default for GeneratorConfig {
            fn default() -> Self {
                Self {
                    $($field: $default,)*
                }
            }
        }
    };
}
generator_options!(generator_config);

/// Invalid [`GeneratorConfig`].
#[derive(Debug, Clone, PartialEq, Error)]
pub enum GenError {
    #[error("`{field}` must be between 1 and {max}, got {value}")]
    TableSize {
        field: &'static str,
        value: usize,
        max: usize,
    },
    #[error("`{field}` must be a finite number > 0, got {value}")]
    Exponent { field: &'static str, value: f64 },
    #[error("word range invalid: need 1 <= max_words <= {max} and min_words <= max_words, got {min}..={max_words}", max = MAX_WORDS_PER_TWEET)]
    WordRange { min: usize, max_words: usize },
    #[error("`max_hashtags_per_tweet` must be at most {max}, got {value}", max = MAX_HASHTAGS_PER_TWEET)]
    TooManyHashtags { value: usize },
    #[error(
        "the word table ({bytes} bytes) is too large for the sampler (4 GiB, 65 535 bytes a word)"
    )]
    WordTableTooLarge { bytes: usize },
    #[error(
        "`{field}` is an option of the event-time mode: set `event_start` too (\"now\" or an RFC 3339 time)"
    )]
    EventOptionWithoutStart { field: &'static str },
    #[error("`{field}` = {value} is too long")]
    EventDurationTooLong { field: &'static str, value: String },
}

impl GeneratorConfig {
    /// Checks every constraint [`TweetGenerator::new`] relies on.
    pub fn validate(&self) -> Result<(), GenError> {
        for (field, value) in [("vocabulary", self.vocabulary), ("hashtags", self.hashtags)] {
            if value == 0 || value > MAX_TABLE_SIZE {
                return Err(GenError::TableSize {
                    field,
                    value,
                    max: MAX_TABLE_SIZE,
                });
            }
        }
        for (field, value) in [
            ("zipf_s", self.zipf_s),
            ("hashtag_zipf_s", self.hashtag_zipf_s),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(GenError::Exponent { field, value });
            }
        }
        if self.max_words == 0
            || self.max_words > MAX_WORDS_PER_TWEET
            || self.min_words > self.max_words
        {
            return Err(GenError::WordRange {
                min: self.min_words,
                max_words: self.max_words,
            });
        }
        if self.max_hashtags_per_tweet > MAX_HASHTAGS_PER_TWEET {
            return Err(GenError::TooManyHashtags {
                value: self.max_hashtags_per_tweet,
            });
        }
        let durations = [
            ("event_interval", self.event_interval),
            ("skew", Some(self.skew).filter(|d| !d.is_zero())),
            ("disorder", Some(self.disorder).filter(|d| !d.is_zero())),
        ];
        for (field, d) in durations {
            let Some(d) = d else { continue };
            if self.event_start.is_none() {
                return Err(GenError::EventOptionWithoutStart { field });
            }
            if d > MAX_EVENT_DURATION {
                return Err(GenError::EventDurationTooLong {
                    field,
                    value: humantime::format_duration(d).to_string(),
                });
            }
        }
        Ok(())
    }
}

/// Longest accepted `event_interval`, `skew` and `disorder`: 100 years (365-day).
pub const MAX_EVENT_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The `event_start` option: the `created_at` of tweet 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum EventStart {
    /// When the spout opens (shared by all its tasks).
    Now,
    /// This time, in epoch milliseconds.
    At(i64),
}

impl TryFrom<String> for EventStart {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("now") {
            return Ok(EventStart::Now);
        }
        dates::parse_rfc3339_ms(&s)
            .map(EventStart::At)
            .map_err(|e| format!("event_start {s:?}: \"now\" or an RFC 3339 time, {e}"))
    }
}

impl From<EventStart> for String {
    fn from(s: EventStart) -> String {
        match s {
            EventStart::Now => "now".into(),
            EventStart::At(ms) => {
                dates::rfc3339(ms, dates::Precision::Millis).unwrap_or_else(|_| ms.to_string())
            }
        }
    }
}

/// How the event-time mode stamps tweets, its `"now"` and default interval resolved:
/// tweet `n` is written at `first_ms + (n − 1) × interval − skew − jitter(n)`, with
/// `jitter(n)` a pseudo-random function of `(seed, n)` in `[0, disorder)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventClock {
    /// The time of tweet 1 before skew and disorder (epoch ms).
    pub first_ms: i64,
    /// Between consecutive tweets, in nanoseconds.
    pub interval_ns: u64,
    pub skew_ms: i64,
    pub disorder_ms: u64,
    pub seed: u64,
}

impl EventClock {
    /// The clock of `cfg`'s event-time mode (`None`: no `event_start`, the default times),
    /// with `"now"` being `now_ms` and the default interval 1/`rate` (`rate` tweets per
    /// second, 0: unpaced, 1 ms). `cfg` is assumed valid ([`GeneratorConfig::validate`]).
    pub fn of(cfg: &GeneratorConfig, now_ms: i64, rate: f64) -> Option<EventClock> {
        let first_ms = match cfg.event_start? {
            EventStart::Now => now_ms,
            EventStart::At(ms) => ms,
        };
        let interval_ns = match cfg.event_interval {
            Some(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            None if rate > 0.0 && rate.is_finite() => ((1e9 / rate).round() as u64).max(1),
            None => 1_000_000,
        };
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Some(EventClock {
            first_ms,
            interval_ns,
            skew_ms: ms(cfg.skew),
            disorder_ms: ms(cfg.disorder).unsigned_abs(),
            seed: cfg.seed,
        })
    }

    /// The time of tweet `n` before skew and disorder.
    pub fn base_ms(&self, n: u64) -> i64 {
        let steps = i128::from(n) - 1;
        let offset = (steps * i128::from(self.interval_ns)).div_euclid(1_000_000);
        clamp_i64(i128::from(self.first_ms) + offset)
    }

    /// How far tweet `n` is moved back by disorder: in `[0, disorder)`.
    pub fn jitter_ms(&self, n: u64) -> u64 {
        if self.disorder_ms == 0 {
            return 0;
        }
        let h = mix64(self.seed ^ mix64(n.wrapping_mul(GOLDEN) ^ DISORDER_SALT));
        ((u128::from(h) * u128::from(self.disorder_ms)) >> 64) as u64
    }

    /// The `created_at` of tweet `n` (epoch ms).
    pub fn created_at_ms(&self, n: u64) -> i64 {
        clamp_i64(
            i128::from(self.base_ms(n)) - i128::from(self.skew_ms) - i128::from(self.jitter_ms(n)),
        )
    }
}

/// Keeps the disorder's draws apart from the tweet's own random stream.
const DISORDER_SALT: u64 = 0xD15_0DE2_7153_0DE2;

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

// ---------------------------------------------------------------------------
// Pseudo-words.

const ONSETS: [&str; 24] = [
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br",
    "ch", "dr", "st", "tr", "sh",
];
const NUCLEI: [&str; 7] = ["a", "e", "i", "o", "u", "ou", "ea"];
const CODAS: [&str; 6] = ["", "n", "r", "s", "l", "x"];
const SYLLABLES: usize = ONSETS.len() * NUCLEI.len();

/// Appends the pseudo-word for `index`: syllables (onset + nucleus) then a
/// coda. Onsets are non-empty consonant clusters and nuclei are vowel runs,
/// so a word splits back into its syllables unambiguously; `index` is
/// decomposed bijectively into (first syllable, coda, bijective base-N
/// further syllables), hence distinct indexes give distinct words and low
/// indexes give short words. `(mult, offset)` permutes the syllable table
/// (`mult` coprime with its size) so consecutive indexes look unrelated.
fn push_pseudo_word(out: &mut String, index: usize, mult: usize, offset: usize) {
    let syllable = |d: usize| (d * mult + offset) % SYLLABLES;
    let push_syllable = |out: &mut String, s: usize| {
        out.push_str(ONSETS[s / NUCLEI.len()]);
        out.push_str(NUCLEI[s % NUCLEI.len()]);
    };
    push_syllable(out, syllable(index % SYLLABLES));
    let rest = index / SYLLABLES;
    let coda = CODAS[rest % CODAS.len()];
    let mut rest = rest / CODAS.len();
    while rest > 0 {
        rest -= 1;
        push_syllable(out, syllable(rest % SYLLABLES));
        rest /= SYLLABLES;
    }
    out.push_str(coda);
}

/// Bijection on pseudo-word indexes that scatters the two-syllable block
/// (otherwise long runs would share their second syllable) and keeps every
/// other index in place.
fn scatter(index: usize) -> usize {
    const ONE: usize = SYLLABLES * CODAS.len();
    const TWO: usize = ONE * SYLLABLES;
    // 7919 is prime and does not divide TWO = 2^7 * 3^3 * 7^2.
    if (ONE..ONE + TWO).contains(&index) {
        ONE + (index - ONE) * 7_919 % TWO
    } else {
        index
    }
}

/// `count` pseudo-words stored in one arena, each after a space (so a word and the space
/// before it are appended to a text in one copy).
#[derive(Debug, Clone)]
struct WordTable {
    arena: String,
    /// `ends[i]` is the end of word `i` in `arena`; ` word i` starts at `ends[i-1]`.
    ends: Vec<u32>,
}

impl WordTable {
    fn new(count: usize, first_index: usize, mult: usize, offset: usize) -> Self {
        let mut arena = String::with_capacity(count * 9);
        let mut ends = Vec::with_capacity(count);
        for i in 0..count {
            arena.push(' ');
            push_pseudo_word(&mut arena, scatter(first_index + i), mult, offset);
            ends.push(u32::try_from(arena.len()).unwrap_or(u32::MAX));
        }
        // Spare bytes after the last word, for fixed-size copies.
        arena.push_str(&" ".repeat(short_text::PAD));
        Self { arena, ends }
    }

    /// Where word `i`, with a space before it, is in the arena.
    #[inline]
    fn spaced_range(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        start..self.ends[i] as usize
    }

    /// Word `i` with a space before it.
    #[inline]
    fn spaced(&self, i: usize) -> &str {
        self.arena.get(self.spaced_range(i)).unwrap_or(" ")
    }

    #[inline]
    fn get(&self, i: usize) -> &str {
        self.spaced(i).get(1..).unwrap_or_default()
    }

    fn max_len(&self) -> usize {
        (0..self.ends.len())
            .map(|i| self.get(i).len())
            .max()
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------
// Zipf sampling with an alias table.

/// 8 bytes, so the table of a 10 000-word vocabulary is 80 KB and stays in cache.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Keep the bucket's own index when the fraction's upper 32 bits are below this.
    threshold: u32,
    alias: u32,
}

/// Walker/Vose alias table for P(rank k) ∝ 1 / (k + 1)^s, k in 0..n.
#[derive(Debug, Clone)]
struct ZipfTable {
    buckets: Vec<Bucket>,
}

impl ZipfTable {
    fn new(n: usize, s: f64) -> Self {
        let weights: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-s)).collect();
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut buckets: Vec<Bucket> = (0..n)
            .map(|i| Bucket {
                threshold: u32::MAX,
                alias: i as u32,
            })
            .collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(&s_i), Some(&l_i)) = (small.last(), large.last()) {
            small.pop();
            buckets[s_i] = Bucket {
                threshold: prob_to_u32(scaled[s_i]),
                alias: l_i as u32,
            };
            scaled[l_i] -= 1.0 - scaled[s_i];
            if scaled[l_i] < 1.0 {
                large.pop();
                small.push(l_i);
            }
        }
        // Leftovers (rounding) keep themselves with probability 1.
        Self { buckets }
    }

    #[inline]
    fn sample(&self, r: u64) -> usize {
        let m = u128::from(r) * self.buckets.len() as u128;
        let i = (m >> 64) as usize;
        // The upper half of the 64-bit fraction: 32 bits of precision per bucket.
        let frac = ((m as u64) >> 32) as u32;
        match self.buckets.get(i) {
            // The comparison is random: a select, not a (mispredicted) branch.
            Some(b) => std::hint::select_unpredictable(frac < b.threshold, i, b.alias as usize),
            None => 0,
        }
    }
}

/// The word sampler of tweet texts: a [`ZipfTable`] whose buckets hold where their two
/// words are in the [`WordTable`] arena, so a draw costs one table load instead of three
/// dependent ones (bucket, word end, previous word end). 16 bytes per word.
#[derive(Debug, Clone, Copy)]
struct WordBucket {
    threshold: u32,
    /// Where ` word` (with its space) starts, for the bucket's own word and its alias.
    own: u32,
    alias: u32,
    /// Their lengths: own in the low 16 bits, alias in the high 16.
    lens: u32,
}

#[derive(Debug, Clone)]
struct WordSampler {
    buckets: Vec<WordBucket>,
}

impl WordSampler {
    /// `None` if a word is longer than 65 535 bytes (never, for pseudo-words).
    fn new(zipf: &ZipfTable, words: &WordTable) -> Option<Self> {
        let span = |i: usize| {
            let r = words.spaced_range(i);
            Some((u32::try_from(r.start).ok()?, u16::try_from(r.len()).ok()?))
        };
        let buckets = zipf
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (own, own_len) = span(i)?;
                let (alias, alias_len) = span(b.alias as usize)?;
                Some(WordBucket {
                    threshold: b.threshold,
                    own,
                    alias,
                    lens: u32::from(own_len) | u32::from(alias_len) << 16,
                })
            })
            .collect::<Option<_>>()?;
        Some(WordSampler { buckets })
    }

    /// The arena range of ` word` (with its space) for a draw `r`: the same word as
    /// [`ZipfTable::sample`] gives.
    #[inline]
    fn sample(&self, r: u64) -> (usize, usize) {
        let m = u128::from(r) * self.buckets.len() as u128;
        let i = (m >> 64) as usize;
        let frac = ((m as u64) >> 32) as u32;
        match self.buckets.get(i) {
            Some(b) => {
                let own = frac < b.threshold;
                let start = std::hint::select_unpredictable(own, b.own, b.alias);
                let len = std::hint::select_unpredictable(own, b.lens & 0xFFFF, b.lens >> 16);
                (start as usize, len as usize)
            }
            None => (0, 0),
        }
    }
}

fn prob_to_u32(p: f64) -> u32 {
    // 2^32 * p, saturating (the cast saturates at u32::MAX).
    (p.clamp(0.0, 1.0) * 4_294_967_296.0) as u32
}

// ---------------------------------------------------------------------------
// Per-tweet randomness and formatting helpers.

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 finalizer.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The stream of tweet `n`: what `Xoshiro256PlusPlus::seed_from_u64` gives for the mixed
/// seed (its four state words are SplitMix64 outputs), built directly, without the
/// byte-filling round trip through an `Rng` (a few percent of a micro-batch tweet).
fn tweet_rng(seed: u64, n: u64) -> Xoshiro256PlusPlus {
    let mut state = mix64(seed ^ mix64(n.wrapping_mul(GOLDEN)));
    let mut bytes = [0u8; 32];
    for word in bytes.chunks_exact_mut(8) {
        state = state.wrapping_add(GOLDEN);
        word.copy_from_slice(&mix64(state).to_le_bytes());
    }
    Xoshiro256PlusPlus::from_seed(bytes)
}

/// Uniform in `0..n` (multiply-shift; bias below 2^-32 for small `n`).
#[inline]
fn below(rng: &mut Xoshiro256PlusPlus, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

/// Appends `v` in decimal.
pub fn push_u64(out: &mut String, v: u64) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// RFC 3339 UTC timestamp with milliseconds, e.g. `2024-01-01T00:00:00.001Z` (a
/// generated tweet's `created_at`); after 9999-12-31T23:59:59.999Z, the last millisecond
/// RFC 3339 can write, it stays there.
pub fn rfc3339_from_unix_ms(ms: u64) -> String {
    let mut out = String::with_capacity(24);
    push_rfc3339(&mut out, ms);
    out
}

/// Appends the RFC 3339 form of `ms` (see [`rfc3339_from_unix_ms`]).
pub fn push_rfc3339(out: &mut String, ms: u64) {
    push_rfc3339_clamped(out, i64::try_from(ms).unwrap_or(i64::MAX));
}

/// Appends the RFC 3339 form of `ms` (epoch ms, negative before 1970), held within the
/// years 0000 to 9999 (what RFC 3339 can write).
pub fn push_rfc3339_clamped(out: &mut String, ms: i64) {
    let ms = ms.clamp(dates::MIN_RFC3339_MS, dates::MAX_RFC3339_MS);
    // In range by construction: nothing to report.
    let _ = dates::push_rfc3339_millis(out, ms);
}

/// The system clock in epoch ms (0 if it is before 1970).
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

// ---------------------------------------------------------------------------
// The generator.

/// Deterministic synthetic tweet stream; see the module docs.
#[derive(Debug, Clone)]
pub struct TweetGenerator {
    cfg: GeneratorConfig,
    words: WordTable,
    tags: WordTable,
    word_sampler: WordSampler,
    tag_zipf: ZipfTable,
    /// Upper bound of a tweet's text length, for one exact allocation.
    text_capacity: usize,
    lang: Option<String>,
    /// The event-time mode's clock (`None`: the default times).
    clock: Option<EventClock>,
    next_seq: u64,
}

impl TweetGenerator {
    /// Builds the word/tag tables and samplers; the first tweet has sequence 1.
    pub fn new(cfg: GeneratorConfig) -> Result<Self, GenError> {
        Self::at(cfg, 1)
    }

    /// Like [`new`](Self::new), but the first tweet returned has sequence `start_seq`.
    pub fn at(cfg: GeneratorConfig, start_seq: u64) -> Result<Self, GenError> {
        cfg.validate()?;
        let words = WordTable::new(cfg.vocabulary, 0, 97, 37);
        // Tags start at two syllables and use another syllable permutation.
        let tags = WordTable::new(cfg.hashtags, SYLLABLES * CODAS.len(), 61, 11);
        let text_capacity = cfg.max_words * (words.max_len() + 1)
            + cfg.max_hashtags_per_tweet * (tags.max_len() + 2);
        let word_sampler = WordSampler::new(&ZipfTable::new(cfg.vocabulary, cfg.zipf_s), &words)
            .ok_or(GenError::WordTableTooLarge {
                bytes: words.arena.len(),
            })?;
        Ok(Self {
            word_sampler,
            tag_zipf: ZipfTable::new(cfg.hashtags, cfg.hashtag_zipf_s),
            lang: (!cfg.lang.is_empty()).then(|| cfg.lang.clone()),
            words,
            tags,
            text_capacity,
            clock: EventClock::of(&cfg, wall_clock_ms(), 0.0),
            next_seq: start_seq,
            cfg,
        })
    }

    /// The event-time mode's clock (`None`: the default times). [`new`](Self::new) takes
    /// `"now"` as the time of its call and 1 ms as the default interval; a spout sets
    /// its own (shared by its tasks, and its rate's interval).
    pub fn event_clock(&self) -> Option<&EventClock> {
        self.clock.as_ref()
    }

    /// Sets the event-time clock (see [`event_clock`](Self::event_clock)).
    pub fn set_event_clock(&mut self, clock: Option<EventClock>) {
        self.clock = clock;
    }

    /// The `created_at` of tweet `n` in epoch ms: 2024-01-01T00:00:00Z plus `n` ms (then
    /// held at 9999-12-31T23:59:59.999Z), or the event-time clock's.
    pub fn created_at_ms(&self, n: u64) -> i64 {
        match &self.clock {
            Some(c) => c.created_at_ms(n),
            None => i64::try_from(EPOCH_MS.wrapping_add(n)).unwrap_or(i64::MAX),
        }
    }

    /// Appends the `created_at` of tweet `n` as RFC 3339 (see [`created_at_ms`](Self::created_at_ms)).
    pub fn push_created_at(&self, out: &mut String, n: u64) {
        push_rfc3339_clamped(out, self.created_at_ms(n));
    }

    pub fn config(&self) -> &GeneratorConfig {
        &self.cfg
    }

    /// Sequence number of the tweet the next [`next_tweet`](Self::next_tweet) returns.
    pub fn position(&self) -> u64 {
        self.next_seq
    }

    /// Positions the generator so that the next tweet has sequence `n`.
    pub fn skip_to(&mut self, n: u64) {
        self.next_seq = n;
    }

    /// The word of frequency rank `rank` (0 = most frequent).
    pub fn word(&self, rank: usize) -> Option<&str> {
        (rank < self.cfg.vocabulary).then(|| self.words.get(rank))
    }

    /// The normalized hashtag of frequency rank `rank` (0 = most frequent).
    pub fn hashtag(&self, rank: usize) -> Option<&str> {
        (rank < self.cfg.hashtags).then(|| self.tags.get(rank))
    }

    /// Returns the tweet at the current position and advances.
    pub fn next_tweet(&mut self) -> Tweet {
        let t = self.tweet_at(self.next_seq);
        self.next_seq = self.next_seq.wrapping_add(1);
        t
    }

    /// The `lang` of every tweet.
    pub fn lang(&self) -> Option<&str> {
        self.lang.as_deref()
    }

    /// Tweet with sequence number `n`; a pure function of `(config, n)`.
    pub fn tweet_at(&self, n: u64) -> Tweet {
        let mut text = String::with_capacity(self.text_capacity);
        let mut hashtags = Vec::with_capacity(self.cfg.max_hashtags_per_tweet);
        let user = self.write_tweet(n, &mut text, |t| hashtags.push(t.to_owned()));
        let mut id = String::with_capacity(20);
        push_u64(&mut id, n);
        let mut author_id = String::with_capacity(4);
        push_u64(&mut author_id, user);
        let mut author = String::with_capacity(8);
        author.push_str("user");
        author.push_str(&author_id);
        Tweet {
            id,
            text,
            author_id: Some(author_id),
            author: Some(author),
            created_at: Some({
                let mut at = String::with_capacity(24);
                self.push_created_at(&mut at, n);
                at
            }),
            lang: self.lang.clone(),
            hashtags,
            rule_tags: Vec::new(),
        }
    }

    /// Appends the text of tweet `n` to `text` and gives its normalized hashtags to
    /// `tag`, in order; returns the author's number (`user<N>`, author id `N`). What
    /// [`tweet_at`](Self::tweet_at) builds, without allocating (columnar batches).
    pub fn write_tweet(&self, n: u64, text: &mut String, mut tag: impl FnMut(&str)) -> u64 {
        let cfg = &self.cfg;
        let mut rng = tweet_rng(cfg.seed, n);
        let span = (cfg.max_words - cfg.min_words) as u64 + 1;
        let word_count = cfg.min_words + below(&mut rng, span) as usize;
        let tag_count = below(&mut rng, cfg.max_hashtags_per_tweet as u64 + 1) as usize;
        let user = 1 + below(&mut rng, USERS);

        // (position before word i, tag rank, capitalized), sorted by position.
        let mut slots = [(0usize, 0usize, false); MAX_HASHTAGS_PER_TWEET];
        for k in 0..tag_count {
            let mut rank = self.tag_zipf.sample(rng.next_u64());
            // Avoid repeating a tag within one tweet (a few retries suffice).
            for _ in 0..16 {
                if !slots[..k].iter().any(|s| s.1 == rank) {
                    break;
                }
                rank = self.tag_zipf.sample(rng.next_u64());
            }
            let bits = rng.next_u64();
            let pos = ((u128::from(bits >> 1) * (word_count as u128 + 1)) >> 63) as usize;
            slots[k] = (pos, rank, bits & 1 == 1);
        }
        let slots = &mut slots[..tag_count];
        slots.sort_by_key(|s| s.0);

        let mut out = ShortText::new(text);
        let mut first = true;
        let mut next_slot = 0;
        // The words' draws, a block at a time: the random numbers, then the table loads,
        // then the copies, so that none waits on the one before.
        const BLOCK: usize = 16;
        let mut block = [(0usize, 0usize); BLOCK];
        for i in 0..=word_count {
            while let Some(&(pos, rank, capitalized)) = slots.get(next_slot) {
                if pos != i {
                    break;
                }
                next_slot += 1;
                let t = self.tags.get(rank);
                out.push_str(if first { "#" } else { " #" });
                let at = out.push_str(t);
                if capitalized {
                    out.uppercase_ascii_at(at);
                }
                first = false;
                tag(t);
            }
            if i < word_count {
                if i % BLOCK == 0 {
                    let n = (word_count - i).min(BLOCK);
                    let mut draws = [0u64; BLOCK];
                    for d in &mut draws[..n] {
                        *d = rng.next_u64();
                    }
                    for (w, &d) in block.iter_mut().zip(&draws[..n]) {
                        *w = self.word_sampler.sample(d);
                    }
                }
                let (start, len) = block[i % BLOCK];
                let skip = usize::from(first);
                out.push_padded(&self.words.arena, start + skip, len.saturating_sub(skip));
                first = false;
            }
        }
        user
    }
}

impl Iterator for TweetGenerator {
    type Item = Tweet;

    fn next(&mut self) -> Option<Tweet> {
        Some(self.next_tweet())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::time::Instant;

    use super::*;
    use crate::text::hashtags::{extract_hashtags, normalize_hashtag};
    use crate::text::tokenize::tokenize;
    use crate::tweet::wire::{StreamMessage, parse_line, to_v2_json};

    fn generator() -> TweetGenerator {
        TweetGenerator::new(GeneratorConfig::default()).unwrap()
    }

    #[test]
    fn config_defaults_and_serde() {
        let cfg: GeneratorConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, GeneratorConfig::default());
        assert_eq!(cfg.seed, 42);
        assert_eq!((cfg.vocabulary, cfg.hashtags), (10_000, 1_000));
        assert_eq!(
            (cfg.min_words, cfg.max_words, cfg.max_hashtags_per_tweet),
            (6, 14, 3)
        );
        let cfg: GeneratorConfig = serde_json::from_str(r#"{"seed":7,"lang":"de"}"#).unwrap();
        assert_eq!((cfg.seed, cfg.lang.as_str()), (7, "de"));
        assert!(serde_json::from_str::<GeneratorConfig>(r#"{"sed":7}"#).is_err());
    }

    #[test]
    fn config_validation() {
        let ok = GeneratorConfig::default();
        let cases = [
            GeneratorConfig {
                vocabulary: 0,
                ..ok.clone()
            },
            GeneratorConfig {
                hashtags: 0,
                ..ok.clone()
            },
            GeneratorConfig {
                vocabulary: MAX_TABLE_SIZE + 1,
                ..ok.clone()
            },
            GeneratorConfig {
                min_words: 5,
                max_words: 4,
                ..ok.clone()
            },
            GeneratorConfig {
                min_words: 0,
                max_words: 0,
                ..ok.clone()
            },
            GeneratorConfig {
                zipf_s: 0.0,
                ..ok.clone()
            },
            GeneratorConfig {
                zipf_s: -1.0,
                ..ok.clone()
            },
            GeneratorConfig {
                hashtag_zipf_s: f64::NAN,
                ..ok.clone()
            },
            GeneratorConfig {
                zipf_s: f64::INFINITY,
                ..ok.clone()
            },
            GeneratorConfig {
                max_hashtags_per_tweet: 17,
                ..ok.clone()
            },
        ];
        for cfg in cases {
            assert!(TweetGenerator::new(cfg.clone()).is_err(), "{cfg:?}");
        }
        let err = TweetGenerator::new(GeneratorConfig {
            vocabulary: 0,
            ..ok.clone()
        })
        .unwrap_err();
        assert!(err.to_string().contains("vocabulary"));
        assert!(
            TweetGenerator::new(GeneratorConfig {
                min_words: 3,
                max_words: 3,
                ..ok
            })
            .is_ok()
        );
    }

    #[test]
    fn first_tweet_shape() {
        let mut g = generator();
        assert_eq!(g.position(), 1);
        let t = g.next_tweet();
        assert_eq!(t.id, "1");
        assert_eq!(t.created_at.as_deref(), Some("2024-01-01T00:00:00.001Z"));
        assert_eq!(t.lang.as_deref(), Some("en"));
        let k: u64 = t.author_id.as_deref().unwrap().parse().unwrap();
        assert!((1..=USERS).contains(&k));
        assert_eq!(t.author, Some(format!("user{k}")));
        assert!(t.rule_tags.is_empty());
        assert_eq!(g.next_tweet().id, "2");
        assert_eq!(g.position(), 3);
    }

    #[test]
    fn same_seed_same_sequence_different_seed_differs() {
        let a: Vec<Tweet> = generator().take(300).collect();
        let b: Vec<Tweet> = generator().take(300).collect();
        assert_eq!(a, b);
        let other = GeneratorConfig {
            seed: 43,
            ..GeneratorConfig::default()
        };
        let c: Vec<Tweet> = TweetGenerator::new(other).unwrap().take(300).collect();
        let same_text = a.iter().zip(&c).filter(|(x, y)| x.text == y.text).count();
        assert!(same_text < 3, "{same_text} identical texts across seeds");
    }

    #[test]
    fn positioning_reproduces_the_stream() {
        let fresh: Vec<Tweet> = generator().take(200).collect();
        for n in [1u64, 2, 57, 200] {
            let mut g = TweetGenerator::at(GeneratorConfig::default(), n).unwrap();
            assert_eq!(g.next_tweet(), fresh[(n - 1) as usize]);
            let mut h = generator();
            h.skip_to(n);
            assert_eq!(h.next_tweet(), fresh[(n - 1) as usize]);
            assert_eq!(generator().tweet_at(n), fresh[(n - 1) as usize]);
        }
        let far = TweetGenerator::at(GeneratorConfig::default(), u64::MAX)
            .unwrap()
            .next_tweet();
        assert_eq!(far.id, u64::MAX.to_string());
    }

    #[test]
    fn counts_within_bounds_and_all_hashtag_counts_occur() {
        let cfg = GeneratorConfig::default();
        let mut seen = [0usize; 4];
        for t in generator().take(4_000) {
            let h = t.hashtags.len();
            assert!(h <= 3);
            seen[h] += 1;
            let words = t.text.split(' ').filter(|w| !w.starts_with('#')).count();
            assert!(
                (cfg.min_words..=cfg.max_words).contains(&words),
                "{}",
                t.text
            );
            assert_eq!(t.text.split(' ').count(), words + h);
        }
        // Roughly uniform over 0..=3: each about 1000.
        for (h, &count) in seen.iter().enumerate() {
            assert!((800..1200).contains(&count), "{h} hashtags: {count}");
        }
    }

    #[test]
    fn hashtags_appear_in_text_and_extraction_agrees() {
        for t in generator().take(3_000) {
            assert_eq!(extract_hashtags(&t.text), t.hashtags, "{}", t.text);
            for tag in &t.hashtags {
                assert!(t.text.to_lowercase().contains(&format!("#{tag}")));
                assert_eq!(normalize_hashtag(tag).as_deref(), Some(tag.as_str()));
            }
            let unique: HashSet<_> = t.hashtags.iter().collect();
            assert_eq!(unique.len(), t.hashtags.len(), "repeated tag in {}", t.text);
            let mut tokens = 0;
            tokenize(&t.text, true, |_| tokens += 1);
            assert_eq!(tokens, t.text.split(' ').count());
        }
    }

    #[test]
    fn hashtag_distribution_is_skewed() {
        let g = generator();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for t in g.clone().take(30_000) {
            for tag in t.hashtags {
                *counts.entry(tag).or_default() += 1;
            }
        }
        let top = counts.get(g.hashtag(0).unwrap()).copied().unwrap_or(0);
        let hundredth = counts.get(g.hashtag(99).unwrap()).copied().unwrap_or(0);
        let mut sorted: Vec<usize> = counts.values().copied().collect();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(sorted[0], top, "rank 0 should be the most frequent tag");
        assert!(
            top > 20 * hundredth.max(1),
            "top {top} vs 100th {hundredth}"
        );
    }

    #[test]
    fn word_distribution_is_skewed() {
        let g = generator();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let tweets: Vec<Tweet> = g.clone().take(5_000).collect();
        for t in &tweets {
            for w in t.text.split(' ').filter(|w| !w.starts_with('#')) {
                *counts.entry(w).or_default() += 1;
            }
        }
        let top = counts[g.word(0).unwrap()];
        let tenth = counts.get(g.word(9).unwrap()).copied().unwrap_or(0);
        assert!(top > 5 * tenth, "top {top} vs 10th {tenth}");
    }

    #[test]
    fn alias_table_matches_zipf_probabilities() {
        let n = 50;
        let s = 1.2;
        let table = ZipfTable::new(n, s);
        let norm: f64 = (1..=n).map(|k| (k as f64).powf(-s)).sum();
        let mut rng = tweet_rng(1, 1);
        let draws = 400_000;
        let mut counts = vec![0usize; n];
        for _ in 0..draws {
            counts[table.sample(rng.next_u64())] += 1;
        }
        for k in [0usize, 1, 4, 19, 49] {
            let expected = draws as f64 * ((k + 1) as f64).powf(-s) / norm;
            let got = counts[k] as f64;
            assert!(
                (got - expected).abs() < 5.0 * expected.sqrt() + 5.0,
                "rank {k}: {got} vs {expected}"
            );
        }
        assert_eq!(ZipfTable::new(1, 1.0).sample(u64::MAX), 0);
    }

    #[test]
    fn words_and_tags_are_unique_pronounceable_and_valid() {
        let g = TweetGenerator::new(GeneratorConfig {
            vocabulary: 60_000,
            hashtags: 20_000,
            ..GeneratorConfig::default()
        })
        .unwrap();
        let words: HashSet<&str> = (0..60_000).filter_map(|i| g.word(i)).collect();
        assert_eq!(words.len(), 60_000);
        let tags: HashSet<&str> = (0..20_000).filter_map(|i| g.hashtag(i)).collect();
        assert_eq!(tags.len(), 20_000);
        for w in words.iter().chain(tags.iter()) {
            assert!(
                !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()),
                "{w}"
            );
            assert!(w.bytes().any(|b| b"aeiou".contains(&b)), "{w}");
        }
        for t in &tags {
            assert_eq!(normalize_hashtag(t).as_deref(), Some(*t));
        }
        assert_eq!(g.word(60_000), None);
        assert_eq!(g.hashtag(20_000), None);
    }

    #[test]
    fn scatter_is_a_bijection() {
        const ONE: usize = SYLLABLES * 6;
        let block = ONE..ONE * (SYLLABLES + 1);
        let image: HashSet<usize> = block.clone().map(scatter).collect();
        assert_eq!(image.len(), block.len());
        assert!(image.iter().all(|i| block.contains(i)));
        assert_eq!(scatter(5), 5);
        assert_eq!(scatter(block.end), block.end);
    }

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(rfc3339_from_unix_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_from_unix_ms(EPOCH_MS), "2024-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_from_unix_ms(951_782_400_000 + 86_399_999),
            "2000-02-29T23:59:59.999Z"
        );
        assert_eq!(
            rfc3339_from_unix_ms(1_714_564_803_042),
            "2024-05-01T12:00:03.042Z"
        );
    }

    #[test]
    fn created_at_stays_at_the_last_rfc3339_millisecond() {
        // Written before as a five-digit (then longer) year no reader takes.
        assert_eq!(
            rfc3339_from_unix_ms(253_402_300_800_000),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(rfc3339_from_unix_ms(u64::MAX), "9999-12-31T23:59:59.999Z");
        let far = TweetGenerator::at(GeneratorConfig::default(), u64::MAX - EPOCH_MS)
            .unwrap_or_else(|e| panic!("{e}"))
            .next_tweet();
        assert_eq!(far.created_at.as_deref(), Some("9999-12-31T23:59:59.999Z"));
    }

    #[test]
    fn generated_tweets_round_trip_through_v2_json() {
        for t in generator().take(1_000) {
            match parse_line(to_v2_json(&t).as_bytes()) {
                Ok(StreamMessage::Tweet(back)) => assert_eq!(back, t),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn empty_lang_means_none_and_extreme_configs_work() {
        let cfg = GeneratorConfig {
            lang: String::new(),
            vocabulary: 1,
            hashtags: 1,
            min_words: 0,
            max_words: 1,
            max_hashtags_per_tweet: MAX_HASHTAGS_PER_TWEET,
            ..GeneratorConfig::default()
        };
        for t in TweetGenerator::new(cfg).unwrap().take(200) {
            assert_eq!(t.lang, None);
            assert_eq!(extract_hashtags(&t.text), t.hashtags);
        }
    }

    #[test]
    fn tweet_rng_is_seed_from_u64_of_the_mixed_seed() {
        let check = |seed: u64, n: u64| {
            let expected =
                Xoshiro256PlusPlus::seed_from_u64(mix64(seed ^ mix64(n.wrapping_mul(GOLDEN))));
            assert_eq!(tweet_rng(seed, n), expected, "seed {seed} n {n}");
        };
        let mut sm = 0x1234_5678_9ABC_DEF0_u64;
        for i in 0..10_000u64 {
            sm = mix64(sm.wrapping_add(i));
            check(sm, mix64(sm ^ i));
        }
        for (seed, n) in [(0, 0), (u64::MAX, u64::MAX), (42, 7)] {
            check(seed, n);
        }
    }

    /// A restarted run replays a micro-batch from its seed and sequence range, possibly
    /// with a newer binary: the stream must not change between versions.
    #[test]
    fn the_default_stream_does_not_change() {
        let g = generator();
        let mut text = String::new();
        for n in 1..=10_000 {
            g.write_tweet(n, &mut text, |_| {});
            text.push('\n');
        }
        assert_eq!(
            text.lines().next(),
            Some("ma ches hi #poushoun ni brix rul ki hi sto hi rou du lichis li")
        );
        assert_eq!(
            xxhash_rust::xxh3::xxh3_64(text.as_bytes()),
            16_513_973_103_193_702_979
        );
    }

    fn event_config(toml_text: &str) -> GeneratorConfig {
        toml::from_str(toml_text).unwrap_or_else(|e| panic!("{toml_text}: {e}"))
    }

    #[test]
    fn event_time_options_parse_and_validate() {
        let c = event_config(
            "event_start = \"2026-01-01T01:00:00+01:00\"\nevent_interval = \"10ms\"\nskew = \"1m\"\ndisorder = \"2s\"",
        );
        assert_eq!(c.event_start, Some(EventStart::At(1_767_225_600_000)));
        assert_eq!(c.event_interval, Some(Duration::from_millis(10)));
        assert_eq!(
            (c.skew, c.disorder),
            (Duration::from_secs(60), Duration::from_secs(2))
        );
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            event_config("event_start = \"now\"").event_start,
            Some(EventStart::Now)
        );
        assert_eq!(
            event_config("event_start = \"NOW\"").event_start,
            Some(EventStart::Now)
        );
        let bad = toml::from_str::<GeneratorConfig>("event_start = \"yesterday\"")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(bad.contains("\"now\" or an RFC 3339 time"), "{bad}");
        assert!(toml::from_str::<GeneratorConfig>("skew = \"soon\"").is_err());
        // The event-time options need the mode.
        let without = event_config("disorder = \"1s\"");
        assert_eq!(
            without.validate(),
            Err(GenError::EventOptionWithoutStart { field: "disorder" })
        );
        assert!(TweetGenerator::new(without).is_err());
        let too_long = GeneratorConfig {
            event_start: Some(EventStart::Now),
            skew: MAX_EVENT_DURATION + Duration::from_secs(1),
            ..GeneratorConfig::default()
        };
        assert!(matches!(
            too_long.validate(),
            Err(GenError::EventDurationTooLong { field: "skew", .. })
        ));
        // Written back as given (state options, `topology show`).
        let back: GeneratorConfig =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            serde_json::to_value(&c).unwrap()["event_start"],
            "2026-01-01T00:00:00.000Z"
        );
    }

    /// A run's stored state options are the serialized config: without the event-time
    /// mode it must serialize as before the mode existed (no new keys).
    #[test]
    fn the_default_config_serializes_as_before_event_time() {
        let keys: HashSet<String> = match serde_json::to_value(GeneratorConfig::default()) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            other => panic!("{other:?}"),
        };
        let before = [
            "seed",
            "vocabulary",
            "hashtags",
            "zipf_s",
            "hashtag_zipf_s",
            "min_words",
            "max_words",
            "max_hashtags_per_tweet",
            "lang",
        ];
        assert_eq!(keys, before.iter().map(|k| k.to_string()).collect());
        assert_eq!(generator().event_clock(), None);
    }

    fn clock(interval_ns: u64, skew_ms: i64, disorder_ms: u64) -> EventClock {
        EventClock {
            first_ms: 1_767_225_600_000,
            interval_ns,
            skew_ms,
            disorder_ms,
            seed: 42,
        }
    }

    #[test]
    fn the_clock_of_the_options() {
        let cfg = GeneratorConfig {
            event_start: Some(EventStart::Now),
            skew: Duration::from_secs(5),
            disorder: Duration::from_millis(250),
            ..GeneratorConfig::default()
        };
        let c = EventClock::of(&cfg, 1_000_000, 0.0).unwrap();
        assert_eq!(
            c,
            EventClock {
                first_ms: 1_000_000,
                interval_ns: 1_000_000,
                skew_ms: 5_000,
                disorder_ms: 250,
                seed: 42
            }
        );
        // Paced: 1/rate.
        assert_eq!(
            EventClock::of(&cfg, 0, 10_000.0).unwrap().interval_ns,
            100_000
        );
        assert_eq!(
            EventClock::of(&cfg, 0, 3.0).unwrap().interval_ns,
            333_333_333
        );
        // An explicit interval wins over the rate.
        let fixed = GeneratorConfig {
            event_interval: Some(Duration::from_millis(20)),
            event_start: Some(EventStart::At(7)),
            ..cfg
        };
        let c = EventClock::of(&fixed, 1_000_000, 10_000.0).unwrap();
        assert_eq!((c.first_ms, c.interval_ns), (7, 20_000_000));
        assert_eq!(EventClock::of(&GeneratorConfig::default(), 5, 1.0), None);
        // A sub-millisecond interval: several tweets share a millisecond, in order.
        let c = clock(100_000, 0, 0);
        let times: Vec<i64> = (1..=25).map(|n| c.created_at_ms(n)).collect();
        assert_eq!(times[0], c.first_ms);
        assert_eq!(times[9], c.first_ms);
        assert_eq!(times[10], c.first_ms + 1);
        assert_eq!(times[24], c.first_ms + 2);
    }

    #[test]
    fn event_times_are_in_order_without_disorder_and_shuffled_within_it_with() {
        let ordered = clock(1_000_000, 60_000, 0);
        let times: Vec<i64> = (1..=1_000).map(|n| ordered.created_at_ms(n)).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(times[0], ordered.first_ms - 60_000);
        let shuffled = clock(1_000_000, 60_000, 500);
        let times: Vec<i64> = (1..=10_000).map(|n| shuffled.created_at_ms(n)).collect();
        let out_of_order = times.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(out_of_order > 1_000, "{out_of_order} out of order");
        let jitters: Vec<u64> = (1..=10_000).map(|n| shuffled.jitter_ms(n)).collect();
        assert!(jitters.iter().any(|&j| j < 10) && jitters.iter().any(|&j| j > 490));
        // Another seed, other jitters.
        let other = EventClock {
            seed: 43,
            ..shuffled
        };
        let same = (1..=1_000)
            .filter(|&n| other.jitter_ms(n) == shuffled.jitter_ms(n))
            .count();
        assert!(same < 20, "{same}");
    }

    #[test]
    fn the_generator_stamps_tweets_with_its_clock() {
        let cfg = GeneratorConfig {
            event_start: Some(EventStart::At(1_767_225_600_000)),
            skew: Duration::from_secs(60),
            ..GeneratorConfig::default()
        };
        let mut g = TweetGenerator::new(cfg).unwrap();
        assert_eq!(
            g.next_tweet().created_at.as_deref(),
            Some("2025-12-31T23:59:00.000Z")
        );
        assert_eq!(
            g.next_tweet().created_at.as_deref(),
            Some("2025-12-31T23:59:00.001Z")
        );
        // Only `created_at` differs from the default stream.
        let plain = generator().tweet_at(77);
        let event = g.tweet_at(77);
        assert_eq!(
            Tweet {
                created_at: None,
                ..plain
            },
            Tweet {
                created_at: None,
                ..event
            }
        );
        // Times outside what RFC 3339 writes are held at its ends.
        g.set_event_clock(Some(EventClock {
            first_ms: i64::MIN,
            ..clock(1, 0, 0)
        }));
        assert_eq!(
            g.tweet_at(1).created_at.as_deref(),
            Some("0000-01-01T00:00:00.000Z")
        );
        g.set_event_clock(Some(EventClock {
            first_ms: i64::MAX,
            ..clock(1, 0, 0)
        }));
        assert_eq!(
            g.tweet_at(5).created_at.as_deref(),
            Some("9999-12-31T23:59:59.999Z")
        );
        // "now" in `new` is the time of the call.
        let before = wall_clock_ms();
        let now = TweetGenerator::new(GeneratorConfig {
            event_start: Some(EventStart::Now),
            ..GeneratorConfig::default()
        })
        .unwrap();
        let first = now.created_at_ms(1);
        assert!(
            (before..=wall_clock_ms()).contains(&first),
            "{before} {first}"
        );
    }

    proptest::proptest! {
        #[test]
        fn event_times_are_deterministic_and_within_skew_and_disorder(
            first_ms in -1_000_000_000_000i64..10_000_000_000_000,
            interval_ns in 0u64..10_000_000_000,
            skew_ms in 0i64..1_000_000_000,
            disorder_ms in 0u64..10_000_000,
            seed: u64,
            n in 1u64..u64::MAX,
        ) {
            let c = EventClock { first_ms, interval_ns, skew_ms, disorder_ms, seed };
            let at = c.created_at_ms(n);
            proptest::prop_assert_eq!(at, c.created_at_ms(n));
            let base = c.base_ms(n);
            if base < i64::MAX {
                proptest::prop_assert!(at <= base - skew_ms);
                proptest::prop_assert!(disorder_ms == 0 || at > base - skew_ms - disorder_ms as i64);
                proptest::prop_assert!(disorder_ms > 0 || at == base - skew_ms);
            }
            // Base times never go backwards.
            proptest::prop_assert!(c.base_ms(n.saturating_add(1)) >= base);
        }
    }

    /// `cargo test --release --lib -- --ignored --nocapture generator_speed`
    #[test]
    #[ignore]
    fn generator_speed() {
        let mut g = generator();
        let n = 2_000_000u64;
        let start = Instant::now();
        let mut bytes = 0usize;
        for _ in 0..n {
            bytes += g.next_tweet().text.len();
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "generator: {:.2} M tweets/s, {:.0} ns/tweet (avg text {} bytes)",
            n as f64 / secs / 1e6,
            secs * 1e9 / n as f64,
            bytes / n as usize
        );
        // What the columnar spout does: texts appended to one buffer, tags counted.
        let mut text = String::with_capacity(64 << 10);
        let (mut tags, mut users) = (0usize, 0u64);
        let start = Instant::now();
        for seq in 0..n {
            if text.len() > 60 << 10 {
                text.clear();
            }
            users = users.wrapping_add(g.write_tweet(seq, &mut text, |_| tags += 1));
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "write_tweet: {:.2} M tweets/s, {:.0} ns/tweet ({tags} tags, {users})",
            n as f64 / secs / 1e6,
            secs * 1e9 / n as f64,
        );
    }
}
