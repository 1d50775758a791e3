//! What every Kafka client of squall shares: the client configuration (brokers plus any
//! librdkafka property), a bounded check that the brokers answer, and errors that say
//! which brokers and what to check. Property values are never logged or printed: they may
//! hold passwords.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::{Client, ClientContext};

/// The default `brokers` of every Kafka option and `--brokers` flag.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// Errors talking to Kafka, with the brokers they concern.
#[derive(Debug, thiserror::Error)]
pub enum KafkaClientError {
    #[error("cannot create a Kafka client for {brokers}: {reason}")]
    Create { brokers: String, reason: String },
    #[error(
        "no Kafka broker answered at {brokers} within {timeout:?} ({reason}); check that the \
         brokers run and the address is right (option `brokers`, flag `--brokers`)"
    )]
    Unreachable {
        brokers: String,
        timeout: Duration,
        reason: String,
    },
    #[error("topic `{topic}` does not exist on {brokers}")]
    NoTopic { topic: String, brokers: String },
}

/// A client configuration for `brokers`, with `properties` (any librdkafka setting,
/// e.g. `security.protocol`) applied last so users can override ours.
pub fn client_config(brokers: &str, properties: &BTreeMap<String, String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    // librdkafka logs through the `log` crate; keep only real problems.
    c.set("log_level", "3");
    for (k, v) in properties {
        c.set(k, v);
    }
    c
}

/// Asks the brokers for metadata (of `topic`, or of the cluster), waiting at most
/// `timeout`: a clear error rather than a hang when nothing answers. With a topic, also
/// checks that it exists and returns its partition count.
pub fn check_reachable<C: ClientContext>(
    client: &Client<C>,
    brokers: &str,
    topic: Option<&str>,
    timeout: Duration,
) -> Result<usize, KafkaClientError> {
    let md = client
        .fetch_metadata(topic, timeout)
        .map_err(|e| KafkaClientError::Unreachable {
            brokers: brokers.to_string(),
            timeout,
            reason: e.to_string(),
        })?;
    let Some(topic) = topic else {
        return Ok(0);
    };
    match md.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len()),
        _ => Err(KafkaClientError::NoTopic {
            topic: topic.to_string(),
            brokers: brokers.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::mock::DevBroker;
    use rdkafka::producer::{BaseProducer, Producer};

    #[test]
    fn unreachable_brokers_give_a_clear_error_in_bounded_time() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let brokers = format!("127.0.0.1:{port}");
        let p: BaseProducer = client_config(&brokers, &BTreeMap::new()).create().unwrap();
        let start = std::time::Instant::now();
        let err = check_reachable(p.client(), &brokers, None, Duration::from_millis(500))
            .unwrap_err()
            .to_string();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(err.contains(&brokers) && err.contains("--brokers"), "{err}");
    }

    #[test]
    fn a_missing_topic_is_named() {
        let b = DevBroker::start(1).unwrap();
        b.create_topic("there", 3).unwrap();
        let mut props = BTreeMap::new();
        props.insert("allow.auto.create.topics".to_string(), "false".to_string());
        let p: BaseProducer = client_config(b.bootstrap_servers(), &props)
            .create()
            .unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(
            check_reachable(p.client(), b.bootstrap_servers(), Some("there"), t).unwrap(),
            3
        );
        let err = check_reachable(p.client(), b.bootstrap_servers(), Some("absent"), t)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`absent` does not exist"), "{err}");
    }
}
