//! `twitter`: the X/Twitter API v2 filtered stream (or the 1% sample stream) as a spout.
//!
//! A background task started in `open` (on the task's worker thread in event mode, on
//! the run's I/O thread in micro-batch mode) keeps one streaming connection open
//! ([`Streamer`]: keep-alives, stall detection, the documented reconnect policy) and
//! hands tweets over in batches through a bounded channel. The API cannot replay, so
//! emitted tweets are kept in memory until acked (at most `buffer` of them; when that
//! many are pending, reading pauses) and a failed tweet is re-emitted from there up to
//! `max_retries` times, then given up and counted.
//!
//! Errors that retrying cannot fix (HTTP 401, 403, 409 "no rules", other 4xx) stop the
//! whole run with a message saying what to check. The bearer token is read in `open`
//! from the environment variable named by `token_env`, never from a file, and never
//! appears in errors, logs or metrics.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::component::SpoutFactory;
use crate::component::collector::SpoutCollector;
use crate::component::registry::{BuildError, ComponentConfig, SpoutConfig};
use crate::component::{
    ComponentError, ComponentResult, OutputDeclarer, Spout, SpoutStatus, TaskContext,
};
use crate::data::tuple::{Fields, Value, Values};
use crate::spouts::replay::ReplayBuffer;
use crate::tweet::fields::{tweet_fields, tweet_values};
use crate::tweet::wire::Tweet;
use crate::twitter::auth::BearerToken;
use crate::twitter::policy::{Endpoint, PolicyConfig};
use crate::twitter::stream::{
    BATCH, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_LINE_BYTES, DEFAULT_STALL_TIMEOUT, StreamConfig,
    StreamCounters, Streamer,
};

/// Options of the `twitter` spout.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TwitterSpoutConfig {
    /// `filtered` (`/2/tweets/search/stream`, tweets matching the rules) or `sample`.
    pub endpoint: Endpoint,
    /// The API's base URL (a mock server's in tests).
    pub base_url: String,
    /// The environment variable holding the app's bearer token (read in `open`).
    pub token_env: String,
    /// No data and no keep-alive for this long: drop the connection and reconnect.
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
    /// `backfill_minutes` (0–5) asked for on reconnects (after a first established
    /// connection); 0: never. May deliver tweets again (duplicates are passed through).
    pub backfill_minutes: u8,
    /// TCP connect timeout.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Tweets emitted and not yet acked, at most; when reached, reading pauses.
    pub buffer: usize,
    /// Re-emits of a failed tweet before it is given up (counted in `given_up`).
    pub max_retries: u32,
    /// Only tweets that matched one of these rule tags are emitted (others are counted
    /// in `filtered_out`); absent: every tweet.
    pub rule_tags: Option<Vec<String>>,
    /// Tweets read ahead of the topology (bounded channel between reader and spout).
    pub read_ahead: usize,
    /// Longer stream lines are skipped (counted in `malformed`).
    pub max_line_bytes: usize,
    /// The reconnect back-off's base durations (the documented ones by default).
    pub reconnect: PolicyConfig,
}

impl Default for TwitterSpoutConfig {
    fn default() -> Self {
        TwitterSpoutConfig {
            endpoint: Endpoint::Filtered,
            base_url: crate::twitter::DEFAULT_BASE_URL.into(),
            token_env: crate::twitter::DEFAULT_TOKEN_ENV.into(),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            backfill_minutes: 0,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            buffer: 10_000,
            max_retries: 3,
            rule_tags: None,
            read_ahead: 1024,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            reconnect: PolicyConfig::documented(),
        }
    }
}

impl ComponentConfig for TwitterSpoutConfig {
    const NAME: &'static str = "twitter";
    const DESCRIPTION: &'static str = "X/Twitter API v2 filtered or sample stream (bearer token \
         from an environment variable); reconnects per the documented policy";
}

impl TwitterSpoutConfig {
    /// The connection's part of the options.
    pub fn stream_config(&self) -> StreamConfig {
        StreamConfig {
            endpoint: self.endpoint,
            base_url: self.base_url.clone(),
            stall_timeout: self.stall_timeout,
            backfill_minutes: self.backfill_minutes,
            connect_timeout: self.connect_timeout,
            max_line_bytes: self.max_line_bytes,
            reconnect: self.reconnect,
        }
    }

    fn validate(&self) -> Result<(), BuildError> {
        let bad = |m: &str| Err(BuildError::Invalid(m.to_string()));
        if self.buffer == 0 || self.read_ahead == 0 {
            return bad("buffer and read_ahead must be at least 1");
        }
        if self.token_env.trim().is_empty() {
            return bad("token_env must name an environment variable");
        }
        if self.rule_tags.as_ref().is_some_and(Vec::is_empty) {
            return bad(
                "rule_tags is empty: it would filter out every tweet (omit it to keep all)",
            );
        }
        if self.rule_tags.is_some() && self.endpoint == Endpoint::Sample {
            return bad("rule_tags needs endpoint = \"filtered\" (sample tweets match no rules)");
        }
        self.stream_config()
            .validate()
            .map_err(|e| BuildError::Invalid(e.to_string()))
    }
}

impl SpoutConfig for TwitterSpoutConfig {
    fn build(&self) -> Result<SpoutFactory, BuildError> {
        self.validate()?;
        let cfg = self.clone();
        Ok(Arc::new(move || Box::new(TwitterSpout::new(cfg.clone()))))
    }
}

/// The output fields: the standard tweet fields, then `rule_tags` (a list).
pub fn twitter_fields() -> Fields {
    let standard = tweet_fields();
    Fields::new(standard.names().chain(["rule_tags"]))
}

/// A tweet as the spout's values (in [`twitter_fields`] order).
fn values_of(mut t: Tweet) -> Values {
    let rules: Vec<Value> = std::mem::take(&mut t.rule_tags)
        .into_iter()
        .map(Value::from)
        .collect();
    let mut v = tweet_values(t);
    v.push(Value::from(rules));
    v
}

/// The `twitter` spout (see the module docs).
pub struct TwitterSpout {
    cfg: TwitterSpoutConfig,
    tweets: Option<mpsc::Receiver<Vec<Tweet>>>,
    /// The batch being emitted.
    current: std::vec::IntoIter<Tweet>,
    reader: Option<tokio::task::JoinHandle<()>>,
    buffer: ReplayBuffer<Values>,
    rule_tags: Option<HashSet<String>>,
    filtered_out: Arc<AtomicU64>,
}

impl TwitterSpout {
    pub fn new(cfg: TwitterSpoutConfig) -> Self {
        let rule_tags = cfg.rule_tags.as_ref().map(|t| t.iter().cloned().collect());
        TwitterSpout {
            buffer: ReplayBuffer::new(cfg.max_retries),
            cfg,
            tweets: None,
            current: Vec::new().into_iter(),
            reader: None,
            rule_tags,
            filtered_out: Arc::default(),
        }
    }

    /// Whether a tweet passes the `rule_tags` filter.
    fn wanted(&self, t: &Tweet) -> bool {
        match &self.rule_tags {
            None => true,
            Some(tags) => t.rule_tags.iter().any(|r| tags.contains(r)),
        }
    }

    /// The next tweet from the reader that passes the filter; `Err(status)` when there
    /// is none now.
    fn next_tweet(&mut self) -> Result<Tweet, SpoutStatus> {
        loop {
            if let Some(t) = self.current.next() {
                if self.wanted(&t) {
                    return Ok(t);
                }
                self.filtered_out.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let Some(rx) = &mut self.tweets else {
                return Err(SpoutStatus::Exhausted);
            };
            match rx.try_recv() {
                Ok(batch) => self.current = batch.into_iter(),
                Err(mpsc::error::TryRecvError::Empty) => return Err(SpoutStatus::Idle),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    // The reader stopped (a fatal error, already reported).
                    return Err(if self.buffer.has_retries() {
                        SpoutStatus::Idle
                    } else {
                        SpoutStatus::Exhausted
                    });
                }
            }
        }
    }

    /// Re-emits a failed tweet, if any is due; `None` when there is none.
    fn emit_retry(&mut self, out: &mut SpoutCollector<'_>) -> Option<SpoutStatus> {
        self.buffer.emit_retry(out, Values::clone)
    }
}

impl Spout for TwitterSpout {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(twitter_fields());
    }

    fn open(&mut self, ctx: &TaskContext) -> ComponentResult {
        let token = BearerToken::from_env(&self.cfg.token_env)
            .map_err(|e| ComponentError::new(e.to_string()))?;
        let waker = ctx.waker();
        let streamer = Streamer::new(self.cfg.stream_config(), token)
            .map_err(|e| ComponentError::new(e.to_string()))?
            .with_counters(StreamCounters::with(|n| ctx.counter(n)))
            .with_wake(move || {
                if let Some(w) = &waker {
                    w.wake();
                }
            });
        self.buffer.count_given_up_in(ctx.counter("given_up"));
        self.filtered_out = ctx.counter("filtered_out");
        let (tx, rx) = mpsc::channel(self.cfg.read_ahead.div_ceil(BATCH));
        let fatal = ctx.fatal_handle();
        let waker = ctx.waker();
        self.reader = Some(ctx.spawn(async move {
            if let Err(e) = streamer.run(tx).await {
                fatal.fail(e);
            }
            if let Some(w) = &waker {
                w.wake();
            }
        })?);
        self.tweets = Some(rx);
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> SpoutStatus {
        if let Some(status) = self.emit_retry(out) {
            return status;
        }
        if self.buffer.in_flight() >= self.cfg.buffer {
            // Full: stop taking tweets (the reader then pauses) until acks come back.
            return SpoutStatus::Idle;
        }
        let tweet = match self.next_tweet() {
            Ok(t) => t,
            Err(status) => return status,
        };
        self.buffer.emit_new(values_of(tweet), out, Values::clone);
        SpoutStatus::Emitted
    }

    fn ack(&mut self, msg_id: u64) {
        self.buffer.ack(msg_id);
    }

    fn fail(&mut self, msg_id: u64) {
        self.buffer.fail(msg_id);
    }

    fn close(&mut self) {
        if let Some(r) = self.reader.take() {
            r.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_values_line_up() {
        let f = twitter_fields();
        let names: Vec<&str> = f.names().collect();
        assert_eq!(
            names,
            [
                "id",
                "text",
                "author",
                "created_at",
                "lang",
                "hashtags",
                "author_id",
                "rule_tags"
            ]
        );
        let t = Tweet {
            id: "1".into(),
            text: "hi #x".into(),
            author: Some("ann".into()),
            hashtags: vec!["x".into()],
            rule_tags: vec!["a".into(), "b".into()],
            ..Tweet::default()
        };
        let v = values_of(t);
        assert_eq!(v.len(), names.len());
        assert_eq!(v[0].as_str(), Some("1"));
        assert_eq!(v[2].as_str(), Some("ann"));
        assert_eq!(v[3], Value::Null);
        let rules: Vec<&str> = v[7]
            .as_list()
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(rules, ["a", "b"]);
    }

    #[test]
    fn options_parse_with_defaults_and_validate() {
        let c: TwitterSpoutConfig = toml::from_str(
            "endpoint = \"sample\"\nstall_timeout = \"3s\"\nreconnect = { http_initial = \"50ms\" }",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.endpoint, Endpoint::Sample);
        assert_eq!(c.stall_timeout, Duration::from_secs(3));
        assert_eq!(c.reconnect.http_initial, Duration::from_millis(50));
        assert_eq!(c.token_env, "TWITTER_BEARER_TOKEN");
        assert_eq!(c.buffer, 10_000);
        assert!(c.build().is_ok());
        assert!(toml::from_str::<TwitterSpoutConfig>("token = \"x\"").is_err());
        for (toml_text, why) in [
            ("backfill_minutes = 6", "0 to 5"),
            ("buffer = 0", "buffer"),
            ("rule_tags = []", "rule_tags is empty"),
            ("endpoint = \"sample\"\nrule_tags = [\"a\"]", "filtered"),
            ("base_url = \"ftp://x\"", "http or https"),
            ("token_env = \"\"", "token_env"),
            ("stall_timeout = \"0s\"", "positive"),
        ] {
            let c: TwitterSpoutConfig =
                toml::from_str(toml_text).unwrap_or_else(|e| panic!("{toml_text}: {e}"));
            match c.build() {
                Ok(_) => panic!("{toml_text} should be refused"),
                Err(e) => assert!(e.to_string().contains(why), "{toml_text}: {e}"),
            }
        }
    }

    #[test]
    fn defaults_serialize_for_the_component_list() {
        let t =
            toml::Table::try_from(TwitterSpoutConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t["stall_timeout"].as_str(), Some("21s"));
        assert_eq!(t["endpoint"].as_str(), Some("filtered"));
        assert!(!t.contains_key("rule_tags"));
    }

    #[test]
    fn the_rule_tag_filter() {
        let mut s = TwitterSpout::new(TwitterSpoutConfig {
            rule_tags: Some(vec!["rust posts".into()]),
            ..TwitterSpoutConfig::default()
        });
        let t = |tags: &[&str]| Tweet {
            rule_tags: tags.iter().map(|s| s.to_string()).collect(),
            ..Tweet::default()
        };
        assert!(s.wanted(&t(&["json posts", "rust posts"])));
        assert!(!s.wanted(&t(&["json posts"])));
        assert!(!s.wanted(&t(&[])));
        let (tx, rx) = mpsc::channel(4);
        s.tweets = Some(rx);
        let mut a = t(&["rust posts"]);
        a.id = "a".into();
        tx.try_send(vec![t(&["x"]), a, t(&[])])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.next_tweet().map(|t| t.id).ok().as_deref(), Some("a"));
        assert!(matches!(s.next_tweet(), Err(SpoutStatus::Idle)));
        assert_eq!(s.filtered_out.load(Ordering::Relaxed), 2);
        drop(tx);
        assert!(matches!(s.next_tweet(), Err(SpoutStatus::Exhausted)));
    }
}
