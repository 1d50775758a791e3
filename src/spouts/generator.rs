//! `generator`: deterministic synthetic tweets, the embedded default source.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::pacer::Pacer;
use crate::component::SpoutFactory;
use crate::component::collector::SpoutCollector;
use crate::component::registry::{BuildError, ComponentConfig, SpoutConfig};
use crate::component::transactional::{BatchCut, BatchInfo, TransactionalSpout};
use crate::component::{
    ComponentError, ComponentResult, OutputDeclarer, Spout, SpoutStatus, TaskContext,
};
use crate::data::columns::{CHUNK_ROWS, ColumnChunks};
use crate::tweet::fields::{TweetColumns, TweetProjection, generated_values, tweet_fields};
use crate::tweet::generator::{
    EventClock, EventStart, GeneratorConfig, TweetGenerator, generator_options, wall_clock_ms,
};

macro_rules! spout_config {
    ($($(#[$meta:meta])* $field:ident: $ty:ty = $default:expr,)*) => {
        /// Options of the `generator` spout: its own, then the tweet generator's.
        #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
        #[serde(default, deny_unknown_fields)]
        pub struct GeneratorSpoutConfig {
            /// Total tweets over all tasks (0: unbounded).
            pub limit: u64,
            /// Tweets per second over all tasks (0: as fast as possible).
            pub rate: f64,
            $($(#[$meta])* pub $field: $ty,)*
        }

        impl GeneratorSpoutConfig {
            pub fn from_tweets(limit: u64, rate: f64, t: GeneratorConfig) -> Self {
                let GeneratorConfig { $($field,)* } = t;
                GeneratorSpoutConfig { limit, rate, $($field,)* }
            }

            /// The tweet generator's own options.
            pub fn tweets(&self) -> GeneratorConfig {
                let GeneratorSpoutConfig { $($field,)* .. } = self.clone();
                GeneratorConfig { $($field,)* }
            }
        }
    };
}
generator_options!(spout_config);

impl Default for GeneratorSpoutConfig {
    fn default() -> Self {
        GeneratorSpoutConfig::from_tweets(0, 0.0, GeneratorConfig::default())
    }
}

impl ComponentConfig for GeneratorSpoutConfig {
    const NAME: &'static str = "generator";
    const DESCRIPTION: &'static str = "deterministic synthetic tweets (seeded, Zipf words and hashtags); replays failed tweets exactly";
}

impl SpoutConfig for GeneratorSpoutConfig {
    fn build(&self) -> Result<SpoutFactory, BuildError> {
        self.tweets()
            .validate()
            .map_err(|e| BuildError::Invalid(e.to_string()))?;
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err(BuildError::Invalid(format!(
                "rate must be a number ≥ 0, got {}",
                self.rate
            )));
        }
        let cfg = self.clone();
        // `event_start = "now"`: the first task to open takes the time, the others share it.
        let start = Arc::new(OnceLock::new());
        Ok(std::sync::Arc::new(move || {
            Box::new(GeneratorSpout::sharing_start(cfg.clone(), start.clone()))
        }))
    }
}

/// Task `i` of `p` emits sequence numbers `i+1, i+1+p, ...` up to `limit`; the message id
/// is the sequence number, so a failed tweet is regenerated exactly.
///
/// In the event-time mode (`event_start`), a micro-batch's metadata also records the
/// clock its tweets were stamped with (the time `"now"` stood for, the interval), so a
/// batch replayed by a later run, and the batches after it, have the same times.
pub struct GeneratorSpout {
    cfg: GeneratorSpoutConfig,
    /// The time `event_start = "now"` stands for, taken by the first task of the spout
    /// that opens.
    start: Arc<OnceLock<i64>>,
    generator: Option<Arc<TweetGenerator>>,
    next_seq: u64,
    step: u64,
    replay: VecDeque<u64>,
    pacer: Option<Pacer>,
    /// The fields built (those the consumers read).
    keep: TweetProjection,
    /// Event mode, unpaced: the runs of tweets in flight (one message each), by message
    /// id: first sequence number and count.
    runs: HashMap<u64, (u64, u64)>,
    next_run: u64,
}

/// Event mode, unpaced: the most tweets emitted together as one message (one tuple tree,
/// one chunk to each task downstream). A failed run is replayed tweet by tweet.
const RUN_TWEETS: u64 = 256;
/// Paced: the most tweets a run takes, and how long the first of them may wait for the
/// others to fall due (at 400 000 tweets/s per task: 20 tweets a run).
const PACED_RUN_TWEETS: u64 = 64;
const RUN_WAIT: std::time::Duration = std::time::Duration::from_micros(50);
/// The bit that marks a run's message id (a single tweet's id is its sequence number).
const RUN_ID: u64 = 1 << 63;

impl GeneratorSpout {
    pub fn new(cfg: GeneratorSpoutConfig) -> Self {
        Self::sharing_start(cfg, Arc::new(OnceLock::new()))
    }

    /// A task whose `event_start = "now"` is the time in `start`, set by the first task
    /// that opens (the tasks of one spout share it, so they agree on the times).
    pub fn sharing_start(cfg: GeneratorSpoutConfig, start: Arc<OnceLock<i64>>) -> Self {
        GeneratorSpout {
            cfg,
            start,
            generator: None,
            next_seq: 1,
            step: 1,
            replay: VecDeque::new(),
            pacer: None,
            keep: TweetProjection::ALL,
            runs: HashMap::new(),
            next_run: 0,
        }
    }

    /// Emits the `n` tweets of this task from `from` as one message (paced: the first
    /// was due at `due`).
    fn emit_run(
        &mut self,
        from: u64,
        n: u64,
        due: Option<Instant>,
        out: &mut SpoutCollector<'_>,
    ) -> SpoutStatus {
        let Some(g) = &self.generator else {
            return SpoutStatus::Idle;
        };
        let mut cols = TweetColumns::with_capacity(n as usize, g, self.keep);
        for k in 0..n {
            cols.push(g, from + k * self.step);
        }
        let id = RUN_ID | self.next_run;
        let rows = match cols.finish() {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("generator: cannot make the columns of tweets {from}..: {e}");
                return SpoutStatus::Idle;
            }
        };
        let emitted = match due {
            Some(at) => out.emit_rows_at(rows, Some(id), at),
            None => out.emit_rows(rows, Some(id)),
        };
        // A refused emit stops the run (the spout task reports why).
        if emitted.is_err() {
            return SpoutStatus::Idle;
        }
        self.next_run += 1;
        self.runs.insert(id, (from, n));
        self.next_seq += n * self.step;
        SpoutStatus::Emitted
    }

    fn emit(&mut self, seq: u64, out: &mut SpoutCollector<'_>) -> bool {
        let Some(g) = &self.generator else {
            return false;
        };
        out.emit(generated_values(g, seq, self.keep), Some(seq))
            .is_ok()
    }

    /// Emits `seq`, due at `due` (paced): latency counts from when it should have left.
    fn emit_due(&mut self, seq: u64, due: Option<Instant>, out: &mut SpoutCollector<'_>) -> bool {
        let Some(g) = &self.generator else {
            return false;
        };
        let values = generated_values(g, seq, self.keep);
        match due {
            Some(at) => out.emit_at(values, Some(seq), at).is_ok(),
            None => out.emit(values, Some(seq)).is_ok(),
        }
    }

    /// The last sequence number this task emits (`u64::MAX`: unbounded).
    fn last_seq(&self) -> u64 {
        if self.cfg.limit == 0 {
            u64::MAX
        } else {
            self.cfg.limit
        }
    }
}

/// A generator batch: `n` sequence numbers of this task from `from` (micro-batch mode).
#[derive(Serialize, Deserialize)]
struct SeqRange {
    from: u64,
    n: u64,
    /// The event-time mode's clock the batch was stamped with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clock: Option<EventClock>,
}

impl GeneratorSpout {
    /// Stamps tweets with `clock` from now on, if it is one (a recorded batch's).
    fn adopt_clock(&mut self, clock: Option<EventClock>) {
        let Some(clock) = clock else { return };
        if let Some(g) = &mut self.generator
            && g.event_clock() != Some(&clock)
        {
            Arc::make_mut(g).set_event_clock(Some(clock));
        }
    }

    /// The batch after `prev`: its first sequence number, its size (at most `max`, and
    /// only what is due when paced) and how many sequence numbers were left.
    fn next_range(
        &mut self,
        prev: Option<&serde_json::Value>,
        max: usize,
    ) -> Result<(u64, u64, u64), ComponentError> {
        let from = match prev {
            Some(p) => {
                let r: SeqRange = serde_json::from_value(p.clone())
                    .map_err(|e| format!("generator batch metadata {p}: {e}"))?;
                // The stream goes on with the times it had (a resumed run).
                self.adopt_clock(r.clock);
                r.from + r.n * self.step
            }
            None => self.next_seq,
        };
        let last = self.last_seq();
        let left = if from > last {
            0
        } else {
            (last - from) / self.step + 1
        };
        let due = match &self.pacer {
            Some(p) => p.due(max as u64),
            None => max as u64,
        };
        Ok((from, due.min(left).min(max as u64), left))
    }

    /// Records that a batch of `n` was cut and returns its metadata.
    fn cut(&mut self, from: u64, n: u64, left: u64) -> Result<BatchCut, ComponentError> {
        if let Some(p) = &mut self.pacer {
            p.sent(n);
        }
        let clock = self
            .generator
            .as_ref()
            .and_then(|g| g.event_clock().copied());
        let meta = serde_json::to_value(SeqRange { from, n, clock })
            .map_err(|e| format!("generator batch metadata: {e}"))?;
        Ok(BatchCut {
            meta,
            exhausted: n == left,
        })
    }

    /// The tweets `from, from+step, ...` (`n` of them) as column chunks, each made when
    /// it is sent; `due(k)` is when the k-th was due.
    fn chunks(
        &self,
        from: u64,
        n: u64,
        due: impl Fn(u64) -> Option<Instant>,
    ) -> Result<ColumnChunks, ComponentError> {
        let Some(g) = self.generator.clone() else {
            return Err("generator: not open".into());
        };
        let now = Instant::now();
        let due = (0..n).map(|k| due(k).unwrap_or(now)).collect();
        let (step, keep) = (self.step, self.keep);
        let chunks = (0..n).step_by(CHUNK_ROWS).map(move |k| {
            let rows = (n - k).min(CHUNK_ROWS as u64);
            let mut cols = TweetColumns::with_capacity(rows as usize, &g, keep);
            for j in k..k + rows {
                cols.push(&g, from + j * step);
            }
            cols.finish()
        });
        Ok(ColumnChunks {
            chunks: Box::new(chunks),
            due,
        })
    }
}

impl TransactionalSpout for GeneratorSpout {
    fn emit_batch(
        &mut self,
        _batch: &BatchInfo,
        prev: Option<&serde_json::Value>,
        max: usize,
        out: &mut SpoutCollector<'_>,
    ) -> Result<BatchCut, ComponentError> {
        let (from, n, left) = self.next_range(prev, max)?;
        let mut sent = 0;
        while sent < n {
            let at = self
                .pacer
                .as_ref()
                .map(|p| p.intended(p.sent_count() + sent));
            if !self.emit_due(from + sent * self.step, at, out) {
                return Err(format!(
                    "generator: cannot emit sequence {}",
                    from + sent * self.step
                )
                .into());
            }
            sent += 1;
        }
        self.cut(from, n, left)
    }

    fn replay_batch(
        &mut self,
        _batch: &BatchInfo,
        meta: &serde_json::Value,
        out: &mut SpoutCollector<'_>,
    ) -> ComponentResult {
        let r: SeqRange = serde_json::from_value(meta.clone())
            .map_err(|e| format!("generator batch metadata {meta}: {e}"))?;
        self.adopt_clock(r.clock);
        for k in 0..r.n {
            let seq = r.from + k * self.step;
            if !self.emit_due(seq, None, out) {
                return Err(format!("generator: cannot emit sequence {seq}").into());
            }
        }
        Ok(())
    }

    fn emit_columns(
        &mut self,
        _batch: &BatchInfo,
        prev: Option<&serde_json::Value>,
        max: usize,
    ) -> Option<Result<(ColumnChunks, BatchCut), ComponentError>> {
        let res = self.next_range(prev, max).and_then(|(from, n, left)| {
            let pacer = self.pacer.as_ref();
            let chunks = self.chunks(from, n, |k| pacer.map(|p| p.intended(p.sent_count() + k)))?;
            Ok((chunks, self.cut(from, n, left)?))
        });
        Some(res)
    }

    fn replay_columns(
        &mut self,
        _batch: &BatchInfo,
        meta: &serde_json::Value,
    ) -> Option<Result<ColumnChunks, ComponentError>> {
        let res = serde_json::from_value::<SeqRange>(meta.clone())
            .map_err(|e| ComponentError::from(format!("generator batch metadata {meta}: {e}")))
            .and_then(|r| {
                self.adopt_clock(r.clock);
                self.chunks(r.from, r.n, |_| None)
            });
        Some(res)
    }
}

impl Spout for GeneratorSpout {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(tweet_fields());
    }

    fn open(&mut self, ctx: &TaskContext) -> ComponentResult {
        let tweets = self.cfg.tweets();
        let mut g = TweetGenerator::new(tweets.clone()).map_err(|e| e.to_string())?;
        let now = match tweets.event_start {
            Some(EventStart::Now) => *self.start.get_or_init(wall_clock_ms),
            _ => 0,
        };
        g.set_event_clock(EventClock::of(&tweets, now, self.cfg.rate));
        self.generator = Some(Arc::new(g));
        self.next_seq = ctx.task_index() as u64 + 1;
        self.step = ctx.parallelism() as u64;
        self.pacer = Pacer::new(self.cfg.rate / ctx.parallelism() as f64);
        // Fields no consumer reads are emitted as null, and not built.
        self.keep = TweetProjection::of(ctx.read_fields());
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> SpoutStatus {
        if let Some(seq) = self.replay.pop_front() {
            return if self.emit(seq, out) {
                SpoutStatus::Emitted
            } else {
                self.replay.push_front(seq);
                SpoutStatus::Idle
            };
        }
        if self.cfg.limit > 0 && self.next_seq > self.cfg.limit {
            return SpoutStatus::Exhausted;
        }
        let due = match &self.pacer {
            Some(p) => {
                // At high rates the tweets due within `RUN_WAIT` go as one run: the
                // first waits at most that long for the last (counted in its latency).
                let want = p.sends_in(RUN_WAIT).clamp(1, PACED_RUN_TWEETS);
                match p.due(PACED_RUN_TWEETS) {
                    0 => return SpoutStatus::IdleUntil(p.next_due()),
                    n if n < want => {
                        return SpoutStatus::IdleUntil(p.intended(p.sent_count() + want - 1));
                    }
                    n => n,
                }
            }
            None => {
                // As fast as possible: a run of tweets as one message.
                let left = (self.last_seq() - self.next_seq) / self.step + 1;
                let n = RUN_TWEETS
                    .min(u64::try_from(out.room()).unwrap_or(u64::MAX))
                    .min(left);
                if n == 0 {
                    return SpoutStatus::Idle;
                }
                return self.emit_run(self.next_seq, n, None, out);
            }
        };
        // A paced task that fell behind catches up several tweets a call, but never past
        // `max_spout_pending` trees in flight.
        let due = due
            .min(u64::try_from(out.room()).unwrap_or(u64::MAX))
            .min((self.last_seq() - self.next_seq) / self.step + 1);
        if due == 0 {
            return SpoutStatus::Idle;
        }
        if due > 1
            && let Some(p) = &mut self.pacer
        {
            // Behind: the tweets due now as one run, its latency counted from the first.
            let at = p.intended(p.sent_count());
            let status = self.emit_run(self.next_seq, due, Some(at), out);
            if status == SpoutStatus::Emitted
                && let Some(p) = &mut self.pacer
            {
                p.sent(due);
            }
            return status;
        }
        let mut n = 0;
        while n < due && (self.cfg.limit == 0 || self.next_seq <= self.cfg.limit) {
            let seq = self.next_seq;
            let at = self.pacer.as_ref().map(|p| p.intended(p.sent_count() + n));
            if !self.emit_due(seq, at, out) {
                break;
            }
            self.next_seq += self.step;
            n += 1;
        }
        if let Some(p) = &mut self.pacer {
            p.sent(n);
        }
        SpoutStatus::Emitted
    }

    fn ack(&mut self, msg_id: u64) {
        if msg_id & RUN_ID != 0 {
            self.runs.remove(&msg_id);
        }
    }

    fn fail(&mut self, msg_id: u64) {
        if msg_id & RUN_ID == 0 {
            self.replay.push_back(msg_id);
            return;
        }
        if let Some((from, n)) = self.runs.remove(&msg_id) {
            self.replay.extend((0..n).map(|k| from + k * self.step));
        }
    }

    fn transactional(&mut self) -> Option<&mut dyn TransactionalSpout> {
        Some(self)
    }

    /// A batch is a range of sequence numbers; which tweets they are depends on every
    /// option but `limit` (where the stream ends: a resumed run may go further) and `rate`
    /// (pacing).
    fn state_options(&self) -> crate::state::StateOptions {
        crate::state::options::all_but(&self.cfg, &["limit", "rate"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_options() {
        let c = GeneratorSpoutConfig {
            rate: -1.0,
            ..Default::default()
        };
        assert!(c.build().is_err());
        let c = GeneratorSpoutConfig {
            vocabulary: 0,
            ..Default::default()
        };
        assert!(c.build().is_err());
    }

    #[test]
    fn options_parse_from_toml() {
        let c: GeneratorSpoutConfig =
            toml::from_str("limit = 10\nseed = 7\nrate = 5.0").unwrap_or_default();
        assert_eq!(c.limit, 10);
        assert_eq!(c.seed, 7);
        let bad: Result<GeneratorSpoutConfig, _> = toml::from_str("limt = 10");
        assert!(bad.is_err());
    }

    #[test]
    fn the_spout_has_its_own_options_then_the_generators() {
        let err = toml::from_str::<GeneratorSpoutConfig>("limt = 10")
            .err()
            .map(|e| e.message().to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "unknown field `limt`, expected one of `limit`, `rate`, `seed`, `vocabulary`, \
                 `hashtags`, `zipf_s`, `hashtag_zipf_s`, `min_words`, `max_words`, \
                 `max_hashtags_per_tweet`, `lang`, `event_start`, `event_interval`, `skew`, \
                 `disorder`"
            )
        );
        let c = GeneratorSpoutConfig::from_tweets(
            3,
            1.5,
            GeneratorConfig {
                seed: 9,
                lang: "de".into(),
                ..GeneratorConfig::default()
            },
        );
        assert_eq!(
            (c.limit, c.rate, c.seed, c.lang.as_str()),
            (3, 1.5, 9, "de")
        );
        assert_eq!(c.tweets().seed, 9);
        assert_eq!(
            GeneratorSpoutConfig::default().tweets(),
            GeneratorConfig::default()
        );
    }
}
