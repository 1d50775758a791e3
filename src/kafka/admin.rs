//! Topics squall creates for itself (repartition and changelog topics): made to exist with
//! exactly their partition count, on a real Kafka cluster and on `squall kafka dev-broker`.
//!
//! - On a real cluster, missing topics are created with the CreateTopics admin request
//!   (replication factor: 3, or the number of brokers when fewer). A topic that another
//!   instance creates at the same moment counts as created.
//! - librdkafka's mock cluster (the dev broker) has no CreateTopics. The dev broker is
//!   recognised by its topic `__squall_admin`: a request `{"create_topic": NAME,
//!   "partitions": N}` is written there, the dev broker creates the topic, and this side
//!   waits until the metadata shows it.
//!
//! Metadata is always read for all topics by a consumer with `allow.auto.create.topics =
//! false`, so a lookup never creates a topic (the mock would create it with 4 partitions).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

use crate::kafka::client::client_config;

/// The topic by which the dev broker is recognised and through which it is asked to create
/// topics.
pub const ADMIN_TOPIC: &str = "__squall_admin";

/// The largest replication factor given to a topic squall creates.
const MAX_REPLICATION: usize = 3;

/// A topic that must exist with exactly `partitions` partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
}

/// A request to the dev broker, one JSON record of [`ADMIN_TOPIC`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CreateTopicRequest {
    pub create_topic: String,
    pub partitions: i32,
}

/// Errors making sure topics exist.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot create a Kafka client for {brokers}: {reason}")]
    Client { brokers: String, reason: String },
    #[error(
        "no Kafka broker at {brokers} answered a metadata request within {timeout:?} \
         ({reason}); check that the brokers run and the address is right (option `brokers`, \
         flag `--brokers`)"
    )]
    Unreachable {
        brokers: String,
        timeout: Duration,
        reason: String,
    },
    #[error("topic `{topic}`: {reason}")]
    BadSpec { topic: String, reason: String },
    #[error("cannot read the metadata of topic `{topic}` on {brokers}: {reason}")]
    TopicMetadata {
        topic: String,
        brokers: String,
        reason: String,
    },
    #[error(
        "topic `{topic}` on {brokers} has {existing} partitions but squall needs {wanted}: \
         configure squall with {existing} partitions for it, or delete the topic (its \
         records are lost) so that squall creates it with {wanted} (a topic a client touched \
         before squall created it gets the broker's default partition count)"
    )]
    PartitionMismatch {
        topic: String,
        brokers: String,
        existing: i32,
        wanted: i32,
    },
    #[error(
        "cannot create topic `{topic}` ({partitions} partitions, replication factor \
         {replication}) on {brokers}: {reason}; squall creates its internal topics itself and \
         needs permission to (ACL operation CREATE on the cluster or the topic), or create \
         the topic beforehand with {partitions} partitions"
    )]
    Create {
        topic: String,
        partitions: i32,
        replication: i32,
        brokers: String,
        reason: String,
    },
    #[error("cannot ask the squall dev broker at {brokers} to create topic `{topic}`: {reason}")]
    Request {
        topic: String,
        brokers: String,
        reason: String,
    },
    #[error(
        "topic(s) {topics} did not appear on {brokers} within {timeout:?} of asking for \
         them{hint}"
    )]
    Timeout {
        topics: String,
        brokers: String,
        timeout: Duration,
        hint: &'static str,
    },
}

/// Makes sure every topic exists with exactly its partition count; creates the missing ones.
///
/// Returns the names it created: on a real cluster, those this call's CreateTopics created
/// (not those another client created meanwhile); on the dev broker, those that were missing
/// when this call looked (two concurrent calls may both name a topic). A topic that exists
/// with another partition count is an error. Bounded by `timeout` overall.
pub fn ensure_topics(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    topics: &[TopicSpec],
    timeout: Duration,
) -> Result<Vec<String>, AdminError> {
    let deadline = Instant::now() + timeout;
    let wanted = wanted_counts(topics)?;
    let lookup = MetadataClient::new(brokers, properties)?;
    let md = lookup.snapshot(timeout)?;
    let missing = plan(&md, &wanted, brokers)?;
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let (created, hint) = if md.topics.contains_key(ADMIN_TOPIC) {
        request_from_dev_broker(brokers, properties, &missing, deadline)?;
        let names = missing.iter().map(|t| t.name.clone()).collect();
        (names, "; the squall dev broker creates them (see its log)")
    } else {
        let replication = replication_factor(md.brokers);
        let created = create_topics(brokers, properties, &missing, replication, deadline)?;
        (created, "")
    };
    // Wait until every missing topic shows in the metadata, then check its count (another
    // client may have created it meanwhile with another count).
    let mut backoff = Duration::from_millis(20);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let md = lookup.snapshot(remaining.max(Duration::from_millis(100)))?;
        let absent: Vec<&TopicSpec> = missing
            .iter()
            .filter(|t| !md.topics.contains_key(&t.name))
            .collect();
        if absent.is_empty() {
            plan(&md, &wanted, brokers)?;
            return Ok(created);
        }
        if remaining.is_zero() {
            let names: Vec<String> = absent.iter().map(|t| format!("`{}`", t.name)).collect();
            return Err(AdminError::Timeout {
                topics: names.join(", "),
                brokers: brokers.to_string(),
                timeout,
                hint,
            });
        }
        std::thread::sleep(backoff.min(remaining));
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

/// The partition count of a topic, None when it does not exist (never auto-creates it).
pub fn partition_count(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<i32>, AdminError> {
    let md = MetadataClient::new(brokers, properties)?.snapshot(timeout)?;
    match md.topics.get(topic) {
        None => Ok(None),
        Some(TopicState::Partitions(n)) => Ok(Some(*n)),
        Some(TopicState::Error(reason)) => Err(AdminError::TopicMetadata {
            topic: topic.to_string(),
            brokers: brokers.to_string(),
            reason: reason.clone(),
        }),
    }
}

/// What the metadata says of one topic.
#[derive(Debug, Clone, PartialEq)]
enum TopicState {
    Partitions(i32),
    /// Listed with an error and no partitions (e.g. not authorised).
    Error(String),
}

/// The cluster's topics (those that exist) and its number of brokers.
#[derive(Debug, Default)]
struct Snapshot {
    topics: HashMap<String, TopicState>,
    brokers: usize,
}

/// Reads metadata without ever creating a topic.
struct MetadataClient {
    consumer: BaseConsumer,
    brokers: String,
}

impl MetadataClient {
    fn new(brokers: &str, properties: &BTreeMap<String, String>) -> Result<Self, AdminError> {
        let mut cc = client_config(brokers, properties);
        // After the user's properties: a lookup must never create a topic.
        cc.set("allow.auto.create.topics", "false");
        let consumer = cc.create().map_err(|e| client_error(brokers, e))?;
        Ok(MetadataClient {
            consumer,
            brokers: brokers.to_string(),
        })
    }

    /// Metadata of all topics (asking for one topic by name could create it).
    fn snapshot(&self, timeout: Duration) -> Result<Snapshot, AdminError> {
        use rdkafka::consumer::Consumer;
        let md =
            self.consumer
                .fetch_metadata(None, timeout)
                .map_err(|e| AdminError::Unreachable {
                    brokers: self.brokers.clone(),
                    timeout,
                    reason: e.to_string(),
                })?;
        let mut topics = HashMap::new();
        for t in md.topics() {
            let partitions = t.partitions().len();
            let state = match t.error() {
                _ if partitions > 0 => {
                    TopicState::Partitions(i32::try_from(partitions).unwrap_or(i32::MAX))
                }
                None => continue,
                Some(e) => match RDKafkaErrorCode::from(e) {
                    RDKafkaErrorCode::UnknownTopicOrPartition => continue,
                    code => TopicState::Error(code.to_string()),
                },
            };
            topics.insert(t.name().to_string(), state);
        }
        Ok(Snapshot {
            topics,
            brokers: md.brokers().len(),
        })
    }
}

fn client_error(brokers: &str, e: KafkaError) -> AdminError {
    AdminError::Client {
        brokers: brokers.to_string(),
        reason: e.to_string(),
    }
}

/// The wanted count of each topic, checked: at least one partition, one count per name.
fn wanted_counts(topics: &[TopicSpec]) -> Result<BTreeMap<&str, i32>, AdminError> {
    let mut wanted = BTreeMap::new();
    for t in topics {
        if t.name.is_empty() {
            return Err(AdminError::BadSpec {
                topic: String::new(),
                reason: "empty topic name".into(),
            });
        }
        if t.partitions < 1 {
            return Err(AdminError::BadSpec {
                topic: t.name.clone(),
                reason: format!("{} partitions (at least 1 is needed)", t.partitions),
            });
        }
        if let Some(other) = wanted.insert(t.name.as_str(), t.partitions)
            && other != t.partitions
        {
            return Err(AdminError::BadSpec {
                topic: t.name.clone(),
                reason: format!(
                    "asked for with {other} and with {} partitions",
                    t.partitions
                ),
            });
        }
    }
    Ok(wanted)
}

/// The topics missing from `md`, or the first mismatch or unreadable topic.
fn plan(
    md: &Snapshot,
    wanted: &BTreeMap<&str, i32>,
    brokers: &str,
) -> Result<Vec<TopicSpec>, AdminError> {
    let mut missing = Vec::new();
    for (&name, &partitions) in wanted {
        match md.topics.get(name) {
            None => missing.push(TopicSpec {
                name: name.to_string(),
                partitions,
            }),
            Some(TopicState::Partitions(n)) if *n == partitions => {}
            Some(TopicState::Partitions(n)) => {
                return Err(AdminError::PartitionMismatch {
                    topic: name.to_string(),
                    brokers: brokers.to_string(),
                    existing: *n,
                    wanted: partitions,
                });
            }
            Some(TopicState::Error(reason)) => {
                return Err(AdminError::TopicMetadata {
                    topic: name.to_string(),
                    brokers: brokers.to_string(),
                    reason: reason.clone(),
                });
            }
        }
    }
    Ok(missing)
}

/// 3, or the number of brokers when there are fewer (at least 1).
fn replication_factor(brokers: usize) -> i32 {
    brokers.clamp(1, MAX_REPLICATION) as i32
}

/// Creates `topics` with the CreateTopics admin request; returns those this call created
/// (a topic that exists already, e.g. created by another instance meanwhile, is fine).
fn create_topics(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    topics: &[TopicSpec],
    replication: i32,
    deadline: Instant,
) -> Result<Vec<String>, AdminError> {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers, properties)
        .create()
        .map_err(|e| client_error(brokers, e))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(replication)))
        .collect();
    let remaining = deadline.saturating_duration_since(Instant::now());
    let opts = AdminOptions::new()
        .request_timeout(Some(remaining))
        .operation_timeout(Some(remaining));
    let create_error = |topic: &str, reason: String| AdminError::Create {
        topic: topic.to_string(),
        partitions: topics
            .iter()
            .find(|t| t.name == topic)
            .map_or(0, |t| t.partitions),
        replication,
        brokers: brokers.to_string(),
        reason,
    };
    // The admin client polls on its own thread; librdkafka ends the request at
    // `request_timeout`, so this wait is bounded.
    let results =
        futures::executor::block_on(admin.create_topics(new.iter(), &opts)).map_err(|e| {
            let code = match &e {
                KafkaError::AdminOp(code) => Some(*code),
                other => other.rdkafka_error_code(),
            };
            create_error(&topics[0].name, with_timeout_hint(e.to_string(), code))
        })?;
    let mut created = Vec::new();
    for r in results {
        match r {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(create_error(
                    &name,
                    with_timeout_hint(code.to_string(), Some(code)),
                ));
            }
        }
    }
    Ok(created)
}

/// `reason`, plus what a timeout of CreateTopics usually means.
fn with_timeout_hint(mut reason: String, code: Option<RDKafkaErrorCode>) -> String {
    if matches!(
        code,
        Some(RDKafkaErrorCode::OperationTimedOut | RDKafkaErrorCode::RequestTimedOut)
    ) {
        reason.push_str(
            " (no answer to CreateTopics: a broker without that API, such as librdkafka's \
             mock cluster other than `squall kafka dev-broker`, never answers)",
        );
    }
    reason
}

/// Collects delivery failures of the requests to the dev broker.
#[derive(Default)]
struct DeliveryErrors(Mutex<Vec<String>>);

impl ClientContext for DeliveryErrors {}

impl ProducerContext for DeliveryErrors {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result
            && let Ok(mut errors) = self.0.lock()
        {
            errors.push(e.to_string());
        }
    }
}

/// Writes one create request per topic to the dev broker's [`ADMIN_TOPIC`] and waits until
/// the dev broker has them.
fn request_from_dev_broker(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    topics: &[TopicSpec],
    deadline: Instant,
) -> Result<(), AdminError> {
    let request_error = |topic: &str, reason: String| AdminError::Request {
        topic: topic.to_string(),
        brokers: brokers.to_string(),
        reason,
    };
    let producer: BaseProducer<DeliveryErrors> = client_config(brokers, properties)
        .create_with_context(DeliveryErrors::default())
        .map_err(|e| client_error(brokers, e))?;
    for t in topics {
        let payload = serde_json::to_vec(&CreateTopicRequest {
            create_topic: t.name.clone(),
            partitions: t.partitions,
        })
        .map_err(|e| request_error(&t.name, e.to_string()))?;
        producer
            .send(
                BaseRecord::<str, [u8]>::to(ADMIN_TOPIC)
                    .partition(0)
                    .key(t.name.as_str())
                    .payload(&payload),
            )
            .map_err(|(e, _)| request_error(&t.name, e.to_string()))?;
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    producer
        .flush(remaining)
        .map_err(|e| request_error(&topics[0].name, e.to_string()))?;
    let errors = producer
        .context()
        .0
        .lock()
        .map(|e| e.join("; "))
        .unwrap_or_default();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(request_error(&topics[0].name, errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, partitions: i32) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions,
        }
    }

    fn snapshot(topics: &[(&str, TopicState)]) -> Snapshot {
        Snapshot {
            topics: topics
                .iter()
                .map(|(n, s)| (n.to_string(), s.clone()))
                .collect(),
            brokers: 1,
        }
    }

    #[test]
    fn replication_is_three_or_the_number_of_brokers() {
        assert_eq!(replication_factor(0), 1);
        assert_eq!(replication_factor(1), 1);
        assert_eq!(replication_factor(2), 2);
        assert_eq!(replication_factor(3), 3);
        assert_eq!(replication_factor(9), 3);
    }

    #[test]
    fn specs_are_checked() {
        let err = wanted_counts(&[spec("a", 0)]).unwrap_err().to_string();
        assert!(err.contains("`a`") && err.contains("0 partitions"), "{err}");
        let err = wanted_counts(&[spec("a", 2), spec("a", 3)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("with 2 and with 3"), "{err}");
        assert!(wanted_counts(&[spec("", 1)]).is_err());
        assert_eq!(
            wanted_counts(&[spec("a", 2), spec("a", 2)]).unwrap().len(),
            1
        );
    }

    #[test]
    fn plan_lists_the_missing_and_rejects_a_mismatch() {
        let md = snapshot(&[
            ("ok", TopicState::Partitions(12)),
            ("four", TopicState::Partitions(4)),
            (
                "denied",
                TopicState::Error("Broker: Topic authorization failed".into()),
            ),
        ]);
        let specs = [spec("ok", 12), spec("new", 6)];
        let w = wanted_counts(&specs).unwrap();
        assert_eq!(plan(&md, &w, "b:1").unwrap(), vec![spec("new", 6)]);
        let specs = [spec("four", 12)];
        let w = wanted_counts(&specs).unwrap();
        let err = plan(&md, &w, "b:1").unwrap_err().to_string();
        assert!(
            err.contains("`four` on b:1 has 4 partitions but squall needs 12")
                && err.contains("delete the topic"),
            "{err}"
        );
        let specs = [spec("denied", 1)];
        let w = wanted_counts(&specs).unwrap();
        let err = plan(&md, &w, "b:1").unwrap_err().to_string();
        assert!(
            err.contains("`denied`") && err.contains("authorization"),
            "{err}"
        );
    }

    #[test]
    fn the_request_is_the_documented_json() {
        let r = CreateTopicRequest {
            create_topic: "app-counts-repartition".into(),
            partitions: 12,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"create_topic":"app-counts-repartition","partitions":12}"#
        );
    }

    use crate::kafka::mock::DevBroker;

    const T: Duration = Duration::from_secs(20);

    fn no_props() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    #[test]
    fn creates_a_missing_topic_once_on_the_dev_broker() {
        let b = DevBroker::start(1).unwrap();
        let s = b.bootstrap_servers();
        let created: Vec<String> =
            ensure_topics(s, &no_props(), &[spec("app-c-repartition", 12)], T).unwrap();
        assert_eq!(created, ["app-c-repartition"]);
        assert_eq!(
            partition_count(s, &no_props(), "app-c-repartition", T).unwrap(),
            Some(12)
        );
        // Again: nothing to create.
        let again = ensure_topics(s, &no_props(), &[spec("app-c-repartition", 12)], T).unwrap();
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn works_through_the_fixed_address_of_start_on() {
        let b = DevBroker::start_on("127.0.0.1:0").unwrap();
        let s = b.bootstrap_servers();
        let topics = [spec("x-changelog", 3), spec("x-repartition", 1)];
        let mut created = ensure_topics(s, &no_props(), &topics, T).unwrap();
        created.sort();
        assert_eq!(created, ["x-changelog", "x-repartition"]);
        assert_eq!(
            partition_count(s, &no_props(), "x-changelog", T).unwrap(),
            Some(3)
        );
        assert_eq!(
            partition_count(s, &no_props(), "x-repartition", T).unwrap(),
            Some(1)
        );
    }

    #[test]
    fn concurrent_callers_both_succeed() {
        let b = DevBroker::start(1).unwrap();
        let s = b.bootstrap_servers().to_string();
        let start = std::sync::Arc::new(std::sync::Barrier::new(2));
        let callers: Vec<_> = (0..2)
            .map(|_| {
                let (s, start) = (s.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    ensure_topics(&s, &BTreeMap::new(), &[spec("shared", 12)], T)
                })
            })
            .collect();
        for c in callers {
            c.join().unwrap().unwrap();
        }
        assert_eq!(
            partition_count(&s, &no_props(), "shared", T).unwrap(),
            Some(12)
        );
    }

    #[test]
    fn a_topic_with_another_count_is_an_error() {
        let b = DevBroker::start(1).unwrap();
        b.create_topic("four", 4).unwrap();
        let err =
            ensure_topics(b.bootstrap_servers(), &no_props(), &[spec("four", 12)], T).unwrap_err();
        assert!(
            matches!(
                err,
                AdminError::PartitionMismatch {
                    existing: 4,
                    wanted: 12,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(b.bootstrap_servers()), "{err}");
    }

    #[test]
    fn looking_up_a_missing_topic_does_not_create_it() {
        let b = DevBroker::start(1).unwrap();
        let s = b.bootstrap_servers();
        assert_eq!(partition_count(s, &no_props(), "absent", T).unwrap(), None);
        assert_eq!(partition_count(s, &no_props(), "absent", T).unwrap(), None);
        // Even when the user's properties ask for auto-creation.
        let mut props = no_props();
        props.insert("allow.auto.create.topics".into(), "true".into());
        assert_eq!(partition_count(s, &props, "absent", T).unwrap(), None);
        // ... and ensure_topics still creates it with the count asked for, not the mock's 4.
        ensure_topics(s, &props, &[spec("absent", 7)], T).unwrap();
        assert_eq!(
            partition_count(s, &no_props(), "absent", T).unwrap(),
            Some(7)
        );
    }

    #[test]
    fn a_cluster_without_create_topics_gives_a_bounded_clear_error() {
        // A bare mock: no `__squall_admin`, and no CreateTopics API.
        let b = DevBroker::start_plain(1).unwrap();
        let start = Instant::now();
        let err = ensure_topics(
            b.bootstrap_servers(),
            &no_props(),
            &[spec("t", 2)],
            Duration::from_secs(2),
        )
        .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "{:?}",
            start.elapsed()
        );
        let msg = err.to_string();
        assert!(
            msg.contains("`t`")
                && msg.contains(b.bootstrap_servers())
                && msg.contains("no answer to CreateTopics"),
            "{msg}"
        );
        assert_eq!(
            partition_count(b.bootstrap_servers(), &no_props(), "t", T).unwrap(),
            None
        );
    }

    #[test]
    fn unreachable_brokers_are_named() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let brokers = format!("127.0.0.1:{port}");
        let err = ensure_topics(
            &brokers,
            &no_props(),
            &[spec("t", 1)],
            Duration::from_millis(500),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(&brokers) && err.contains("--brokers"), "{err}");
    }
}
