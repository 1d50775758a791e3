//! Options of the `kafka` spout.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::component::registry::BuildError;
use crate::io::backoff::BackoffConfig;
use crate::kafka::client::DEFAULT_BROKERS;
use crate::kafka::position::{EndPosition, StartPosition};
use crate::kafka::spout::record::{RecordFormat, ValueEncoding};

/// Processing guarantee, as in storm-kafka-client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Every record is processed at least once: commits follow acks.
    #[default]
    AtLeastOnce,
    /// Commits before emitting: a record is never processed twice, and may be lost.
    AtMostOnce,
    /// No tracking: records are emitted untracked and offsets committed periodically.
    None,
}

/// Options of the `kafka` spout.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSpoutConfig {
    /// `bootstrap.servers`: HOST:PORT[,HOST:PORT...].
    pub brokers: String,
    /// Topics to subscribe to (or, with `partitions`, to assign).
    pub topics: Vec<String>,
    /// A topic regex to subscribe to (librdkafka syntax, starting with `^`).
    pub pattern: Option<String>,
    /// Explicit partitions of each topic to read (no group rebalancing; commits still
    /// go to `group`).
    pub partitions: Vec<i32>,
    /// Consumer group.
    pub group: String,
    /// Where a partition without a committed offset starts: `earliest`, `latest`,
    /// `committed` (= latest when nothing is committed), `offsets:P:O,...`,
    /// `timestamp:RFC3339|EPOCH_MS`.
    pub start: StartPosition,
    /// Apply `start` even where the group has committed offsets.
    pub ignore_committed: bool,
    /// Where to stop (a bounded run): `latest` (the log end at start), `offsets:P:O,...`,
    /// `timestamp:...`.
    pub end: Option<EndPosition>,
    /// `raw` (topic, partition, offset, key, value, timestamp) or `tweet`.
    pub format: RecordFormat,
    /// `string` or `bytes`: how `key` and `value` are emitted in the raw format.
    pub value: ValueEncoding,
    /// `at_least_once`, `at_most_once` or `none`.
    pub guarantee: Guarantee,
    /// How often acked offsets are committed.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Back-off of failed records.
    pub retry: BackoffConfig,
    /// Replays of a failed record before it is given up (counted); none: forever.
    pub max_retries: Option<u32>,
    /// Records emitted and not committed, per partition, before the partition pauses.
    pub max_uncommitted: usize,
    /// How long to wait for the brokers at start (and for each metadata request).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest record read, key and value together: a longer one is skipped (counted
    /// in `oversized_records`, its offset committed as done) without being copied.
    pub max_record_bytes: usize,
    /// Any librdkafka consumer property (e.g. `security.protocol`); never printed.
    pub properties: BTreeMap<String, String>,
}

/// Default `max_record_bytes`: 1 MiB, more than any record a broker with the default
/// `message.max.bytes` (1 MiB a batch) accepts.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

impl Default for KafkaSpoutConfig {
    fn default() -> Self {
        KafkaSpoutConfig {
            brokers: DEFAULT_BROKERS.into(),
            topics: vec!["tweets".into()],
            pattern: None,
            partitions: Vec::new(),
            group: "squall".into(),
            start: StartPosition::Earliest,
            ignore_committed: false,
            end: None,
            format: RecordFormat::Raw,
            value: ValueEncoding::String,
            guarantee: Guarantee::AtLeastOnce,
            commit_interval: Duration::from_secs(1),
            retry: BackoffConfig {
                initial_ms: 100,
                multiplier: 2.0,
                max_ms: 10_000,
            },
            max_retries: None,
            max_uncommitted: 100_000,
            connect_timeout: Duration::from_secs(10),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaSpoutConfig {
    /// librdkafka's `auto.offset.reset` matching `start` (used only when start offsets
    /// could not be resolved).
    pub fn auto_offset_reset(&self) -> &'static str {
        match self.start {
            StartPosition::Latest | StartPosition::Committed => "latest",
            _ => "earliest",
        }
    }

    pub(crate) fn validate(&self) -> Result<(), BuildError> {
        let bad = |m: String| Err(BuildError::Invalid(m));
        if self.brokers.trim().is_empty() {
            return bad("brokers must not be empty".into());
        }
        if self.topics.is_empty() && self.pattern.is_none() {
            return bad("give `topics` or a `pattern`".into());
        }
        if !self.partitions.is_empty() && self.pattern.is_some() {
            return bad(
                "`partitions` assigns partitions of `topics`; it cannot go with `pattern`".into(),
            );
        }
        if let Some(p) = &self.pattern
            && !p.starts_with('^')
        {
            return bad(format!("pattern `{p}` must start with `^` (a regex)"));
        }
        if self.max_uncommitted == 0 {
            return bad("max_uncommitted must be at least 1".into());
        }
        if self.max_record_bytes == 0 {
            return bad("max_record_bytes must be at least 1".into());
        }
        if self.group.is_empty() {
            return bad("group must not be empty".into());
        }
        if let Some(s) = self.properties.get("partition.assignment.strategy")
            && s.contains("cooperative")
        {
            return bad("cooperative rebalancing is not supported: use range or roundrobin".into());
        }
        if self.guarantee != Guarantee::AtLeastOnce && self.max_retries.is_some() {
            return bad(format!(
                "max_retries applies to at_least_once only (guarantee is {:?})",
                self.guarantee
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::registry::SpoutConfig;

    #[test]
    fn options_parse_from_toml() {
        let c: KafkaSpoutConfig = toml::from_str(
            r#"
            brokers = "k1:9092,k2:9092"
            topics = ["tweets"]
            start = "timestamp:2026-11-21T10:00:00Z"
            end = "offsets:0:100,1:200"
            format = "tweet"
            guarantee = "at_least_once"
            commit_interval = "500ms"
            max_retries = 5
            properties = { "session.timeout.ms" = "6000" }
            "#,
        )
        .unwrap();
        assert_eq!(c.end, Some(EndPosition::Offsets(vec![(0, 100), (1, 200)])));
        assert_eq!(c.commit_interval, Duration::from_millis(500));
        assert!(c.build().is_ok());
    }

    #[test]
    fn bad_combinations_are_refused_with_the_reason() {
        let err = |c: KafkaSpoutConfig| match c.build() {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        };
        let c = KafkaSpoutConfig {
            topics: vec![],
            ..Default::default()
        };
        assert!(err(c).contains("topics"));
        let c = KafkaSpoutConfig {
            pattern: Some("tweets.*".into()),
            ..Default::default()
        };
        assert!(err(c).contains("must start with `^`"));
        let c = KafkaSpoutConfig {
            guarantee: Guarantee::None,
            max_retries: Some(1),
            ..Default::default()
        };
        assert!(err(c).contains("at_least_once only"));
        let mut c = KafkaSpoutConfig::default();
        c.properties.insert(
            "partition.assignment.strategy".into(),
            "cooperative-sticky".into(),
        );
        assert!(err(c).contains("cooperative"));
    }
}
