//! Kafka: the components squall reads and writes it with, and what they share.
//!
//! - [`admin`]: the topics squall creates for itself, on a real cluster and on the dev
//!   broker (which has no CreateTopics API).
//! - [`client`]: client configuration, reachability check, errors naming the brokers.
//! - [`mock`]: an in-memory Kafka-protocol broker (librdkafka's mock cluster).
//! - [`position`]: where consumption starts and ends (`earliest`, `offsets:0:100`,
//!   `timestamp:2026-11-21T10:00:00Z`, ...), and how a start timestamp is resolved when
//!   the broker does not answer a lookup by time.
//! - [`spout`]: the `kafka` spout (with its offset bookkeeping, `spout::offsets`, and its
//!   replay schedule, `spout::retry`); [`sink`]: the `kafka` sink.
//!
//! `position`, `spout::offsets` and `spout::retry` are deterministic and driven by
//! caller-provided offsets and clock values, so they are unit-testable.

use std::fmt;
use std::sync::Arc;

pub mod admin;
pub mod client;
pub mod mock;
pub mod position;
pub mod sink;
pub mod spout;

/// One partition of one topic: Kafka's unit of ordering and of offset numbering.
///
/// Ordered by topic name, then partition number; displayed as `topic/partition`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name (shared: many keys refer to the same topic).
    pub topic: Arc<str>,
    /// Partition number within the topic.
    pub partition: i32,
}

impl TopicPartition {
    /// The partition `partition` of `topic`.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn displays_as_topic_slash_partition() {
        assert_eq!(TopicPartition::new("tweets", 3).to_string(), "tweets/3");
        assert_eq!(format!("{}", TopicPartition::new("a.b-c", -1)), "a.b-c/-1");
    }

    #[test]
    fn orders_by_topic_then_partition() {
        let mut v = [
            TopicPartition::new("b", 0),
            TopicPartition::new("a", 10),
            TopicPartition::new("a", 2),
        ];
        v.sort();
        let shown: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["a/2", "a/10", "b/0"]);
    }

    #[test]
    fn topic_is_part_of_identity() {
        let a = TopicPartition::new("a", 0);
        let b = TopicPartition::new("b", 0);
        assert_ne!(a, b);
        let shared: Arc<str> = Arc::from("a");
        let a2 = TopicPartition::new(shared, 0);
        assert_eq!(a, a2);
        let set: HashSet<_> = [a.clone(), b, a2].into_iter().collect();
        assert_eq!(set.len(), 2);
        assert!(set.contains(&a));
    }
}
