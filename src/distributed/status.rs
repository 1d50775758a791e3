//! Who holds what in a distributed application, published by the instances themselves.
//!
//! Every instance of an application (the `squall topology run` processes that share one
//! `application_id`) writes its status to the topic `<application_id>-status` (one
//! partition): which partitions it holds, in which role (input, repartition, changelog),
//! how far it got in each, and whether it runs, finishes or stopped. The same topic
//! carries "partition done" records, by which the instances learn that a bounded run is
//! over everywhere, "left" records, written by an instance that stops gracefully, and
//! "handoff" records: how far an instance processed an input partition it gave up in a
//! rebalance, so that the next holder starts there even where the group refused the
//! commit (librdkafka's mock cluster refuses commits while a group rebalances).
//! Kafka's group APIs would tell some of this, but not every broker (librdkafka's mock
//! cluster among them) answers them, and they know nothing of roles or positions.
//!
//! Each record is one JSON object tagged by `kind` ([`StatusRecord`]). Readers fold the
//! topic into a [`StatusView`] (the latest record per instance): once, with [`read_view`]
//! (what `squall cluster status` does), or continuously, with a [`StatusFollower`]. A
//! record that is not one of these is skipped, counted ([`StatusView::bad_records`]) and
//! warned about (rate-limited).
//!
//! Record keys: the instance id for `instance` and `left` records, `done:<topic>:<partition>`
//! for `done` records, `handoff:<topic>:<partition>` for `handoff` records, so that a compacted status topic keeps what readers need.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::kafka::client::{KafkaClientError, check_reachable, client_config};
use crate::log_throttle::LogThrottle;

/// How long a status record may wait for the broker before it is given up.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection to the brokers may take before a clear error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The status topic of `application`: `<application>-status`.
pub fn status_topic(application: &str) -> String {
    format!("{application}-status")
}

/// Milliseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// This machine's host name (`localhost` if it cannot be read).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is valid for `buf.len()` bytes; gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(s) if !s.is_empty() => s.to_string(),
        _ => "localhost".to_string(),
    }
}

/// What an instance does with a partition.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A partition of a topic the topology's Kafka spouts read.
    Input,
    /// A partition of an internal repartition topic this instance consumes.
    Repartition,
    /// A partition of a changelog topic backing state this instance holds.
    Changelog,
}

impl Role {
    /// Every role, in display order.
    pub const ALL: [Role; 3] = [Role::Input, Role::Repartition, Role::Changelog];

    /// The name used in records and output (`input`, `repartition`, `changelog`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::Repartition => "repartition",
            Role::Changelog => "changelog",
        }
    }
}

/// One partition an instance holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    pub role: Role,
    /// The next offset this instance will process (or the committed offset); -1 if not
    /// known yet.
    pub position: i64,
    /// The partition's high watermark when the status was sampled; -1 if not known.
    pub end: i64,
}

/// The lifecycle state an instance reports.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Processing.
    Running,
    /// Its bounded input is done; flushing and waiting for the others.
    Finishing,
    /// Stopped (its last record).
    Stopped,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Running => "running",
            InstanceState::Finishing => "finishing",
            InstanceState::Stopped => "stopped",
        }
    }
}

/// What one instance publishes about itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstanceStatus {
    pub application: String,
    pub instance_id: String,
    pub host: String,
    pub pid: u32,
    /// When the instance started (ms since the Unix epoch).
    pub started_ms: u64,
    /// When this status was sampled (ms since the Unix epoch).
    pub updated_ms: u64,
    pub state: InstanceState,
    /// The address of its web UI and API (`--http`), if it serves one.
    #[serde(default)]
    pub http: Option<String>,
    #[serde(default)]
    pub partitions: Vec<PartitionStatus>,
}

impl InstanceStatus {
    /// A running instance of this process (host, pid, start and update time: now) that
    /// holds no partition yet.
    pub fn new(application: &str, instance_id: &str) -> InstanceStatus {
        let now = now_ms();
        InstanceStatus {
            application: application.to_string(),
            instance_id: instance_id.to_string(),
            host: hostname(),
            pid: std::process::id(),
            started_ms: now,
            updated_ms: now,
            state: InstanceState::Running,
            http: None,
            partitions: Vec::new(),
        }
    }
}

/// One record of the status topic: a JSON object tagged by `kind`
/// (`instance`, `done`, `left`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StatusRecord {
    /// The latest status of one instance.
    Instance(InstanceStatus),
    /// Instance `by` processed partition `partition` of `topic` to its end.
    Done {
        topic: String,
        partition: i32,
        by: String,
        at_ms: u64,
    },
    /// The instance stopped gracefully and holds nothing any more.
    Left { instance_id: String, at_ms: u64 },
    /// Instance `by` gave up partition `partition` of the input `topic` with every
    /// record before `offset` processed (acked).
    Handoff {
        topic: String,
        partition: i32,
        offset: i64,
        by: String,
        at_ms: u64,
    },
}

impl StatusRecord {
    /// The record key: the instance id, or `done:<topic>:<partition>`.
    pub fn key(&self) -> String {
        match self {
            StatusRecord::Instance(s) => s.instance_id.clone(),
            StatusRecord::Left { instance_id, .. } => instance_id.clone(),
            StatusRecord::Done {
                topic, partition, ..
            } => format!("done:{topic}:{partition}"),
            StatusRecord::Handoff {
                topic, partition, ..
            } => format!("handoff:{topic}:{partition}"),
        }
    }
}

/// Errors of the status topic.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Client(#[from] KafkaClientError),
    #[error("cannot create a Kafka {what} for the status topic `{topic}` on {brokers}: {reason}")]
    Create {
        what: &'static str,
        topic: String,
        brokers: String,
        reason: String,
    },
    #[error("cannot encode a status record: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("cannot send a status record to `{topic}`: {reason}")]
    Send { topic: String, reason: String },
    #[error("the broker did not confirm the status record to `{topic}` within {timeout:?}")]
    NotConfirmed { topic: String, timeout: Duration },
    #[error("cannot read the status topic `{topic}` on {brokers}: {reason}")]
    Read {
        topic: String,
        brokers: String,
        reason: String,
    },
    #[error(
        "the status topic `{topic}` was not read to its end within {timeout:?} \
         ({missing} partitions short)"
    )]
    ReadTimeout {
        topic: String,
        timeout: Duration,
        missing: usize,
    },
    #[error("cannot start the status follower thread: {0}")]
    Thread(std::io::Error),
}

/// The applications' state as the status topic tells it: the latest record per instance.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct StatusView {
    /// The latest status of every instance that published one (left ones included).
    pub instances: BTreeMap<String, InstanceStatus>,
    /// Instances whose latest record is a `left` record.
    pub left: BTreeSet<String>,
    /// The partitions reported done, as (topic, partition).
    pub done: BTreeSet<(String, i32)>,
    /// Per input partition, the furthest offset an instance handed it over at.
    pub handoffs: BTreeMap<(String, i32), i64>,
    /// Records that were not status records (skipped).
    pub bad_records: u64,
}

impl StatusView {
    /// Folds one record in: an instance's record replaces its previous one.
    pub fn apply(&mut self, r: StatusRecord) {
        match r {
            StatusRecord::Instance(s) => {
                self.left.remove(&s.instance_id);
                self.instances.insert(s.instance_id.clone(), s);
            }
            StatusRecord::Done {
                topic, partition, ..
            } => {
                self.done.insert((topic, partition));
            }
            StatusRecord::Left { instance_id, .. } => {
                self.left.insert(instance_id);
            }
            StatusRecord::Handoff {
                topic,
                partition,
                offset,
                ..
            } => {
                let o = self.handoffs.entry((topic, partition)).or_insert(offset);
                *o = (*o).max(offset);
            }
        }
    }

    /// Folds in one record's payload; a payload that is not a status record is counted
    /// in `bad_records` and returned as an error (the reason).
    pub fn apply_payload(&mut self, payload: Option<&[u8]>) -> Result<(), String> {
        let Some(bytes) = payload else {
            self.bad_records += 1;
            return Err("a record without a value".to_string());
        };
        match serde_json::from_slice::<StatusRecord>(bytes) {
            Ok(r) => {
                self.apply(r);
                Ok(())
            }
            Err(e) => {
                self.bad_records += 1;
                Err(e.to_string())
            }
        }
    }

    /// Whether every partition `0..partitions` of `topic` was reported done.
    pub fn all_done(&self, topic: &str, partitions: i32) -> bool {
        (0..partitions).all(|p| self.done.contains(&(topic.to_string(), p)))
    }

    /// Whether this instance is live: not left, not stopped, updated within
    /// `stale_after` of `now_ms`.
    pub fn is_live(&self, s: &InstanceStatus, now_ms: u64, stale_after: Duration) -> bool {
        !self.left.contains(&s.instance_id)
            && s.state != InstanceState::Stopped
            && !is_stale(s, now_ms, stale_after)
    }

    /// The live instances (see [`StatusView::is_live`]), by instance id.
    pub fn live(&self, now_ms: u64, stale_after: Duration) -> Vec<&InstanceStatus> {
        self.instances
            .values()
            .filter(|s| self.is_live(s, now_ms, stale_after))
            .collect()
    }
}

/// Whether `s` was last updated more than `stale_after` before `now_ms`.
pub fn is_stale(s: &InstanceStatus, now_ms: u64, stale_after: Duration) -> bool {
    let limit = u64::try_from(stale_after.as_millis()).unwrap_or(u64::MAX);
    now_ms.saturating_sub(s.updated_ms) > limit
}

/// Warnings about records of the status topic that are not status records.
fn warn_bad_record(log: &LogThrottle, topic: &str, offset: i64, reason: &str) {
    if let Some(n) = log.hit() {
        tracing::warn!("status topic `{topic}`: record at offset {offset} skipped: {reason}{n}");
    }
}

/// Someone waiting for the broker's confirmation of one record.
type Waiter = Option<SyncSender<Result<(), String>>>;

/// The publisher's producer context: counts failed deliveries, tells waiters.
struct Deliveries {
    topic: String,
    errors: AtomicU64,
    error_log: LogThrottle,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Waiter>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiter: Box<Waiter>) {
        let r = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = self.error_log.hit() {
                    tracing::warn!(
                        "status topic `{}`: a status record was not delivered: {e}{n}",
                        self.topic
                    );
                }
                Err(e.to_string())
            }
        };
        if let Some(tx) = *waiter {
            // The waiter may have timed out and gone: nobody to tell then.
            let _ = tx.try_send(r);
        }
    }
}

/// A producer of one instance's records to its application's status topic.
pub struct StatusPublisher {
    producer: ThreadedProducer<Deliveries>,
    brokers: String,
    topic: String,
    instance_id: String,
}

impl StatusPublisher {
    /// A publisher for `instance_id` of `application` (checks that the brokers answer).
    pub fn new(
        brokers: &str,
        properties: &BTreeMap<String, String>,
        application: &str,
        instance_id: &str,
    ) -> Result<StatusPublisher, StatusError> {
        let topic = status_topic(application);
        let mut props = BTreeMap::from([
            (
                "message.timeout.ms".to_string(),
                DELIVERY_TIMEOUT.as_millis().to_string(),
            ),
            ("linger.ms".to_string(), "5".to_string()),
        ]);
        props.extend(properties.clone());
        let context = Deliveries {
            topic: topic.clone(),
            errors: AtomicU64::new(0),
            error_log: LogThrottle::default(),
        };
        let producer: ThreadedProducer<Deliveries> = client_config(brokers, &props)
            .create_with_context(context)
            .map_err(|source| StatusError::Create {
                what: "producer",
                topic: topic.clone(),
                brokers: brokers.to_string(),
                reason: source.to_string(),
            })?;
        check_reachable(producer.client(), brokers, None, CONNECT_TIMEOUT)?;
        Ok(StatusPublisher {
            producer,
            brokers: brokers.to_string(),
            topic,
            instance_id: instance_id.to_string(),
        })
    }

    /// The status topic written to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Status records that could not be sent or were not delivered so far.
    pub fn errors(&self) -> u64 {
        self.producer.context().errors.load(Ordering::Relaxed)
    }

    /// Sends `record`; `waiter` (if any) is told the broker's answer.
    fn send(&self, record: &StatusRecord, waiter: Waiter) -> Result<(), StatusError> {
        let payload = serde_json::to_vec(record)?;
        let key = record.key();
        let r = BaseRecord::with_opaque_to(&self.topic, Box::new(waiter))
            .key(&key)
            .payload(&payload);
        self.producer.send(r).map_err(|(e, _)| {
            let ctx = self.producer.context();
            ctx.errors.fetch_add(1, Ordering::Relaxed);
            StatusError::Send {
                topic: self.topic.clone(),
                reason: e.to_string(),
            }
        })
    }

    /// Sends `record` and waits up to `timeout` for the broker's confirmation.
    fn send_confirmed(&self, record: &StatusRecord, timeout: Duration) -> Result<(), StatusError> {
        let (tx, rx) = sync_channel(1);
        self.send(record, Some(tx))?;
        match rx.recv_timeout(timeout) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(StatusError::Send {
                topic: self.topic.clone(),
                reason,
            }),
            Err(_) => Err(StatusError::NotConfirmed {
                topic: self.topic.clone(),
                timeout,
            }),
        }
    }

    /// Publishes an instance status without waiting for the broker. A record that
    /// cannot be delivered later is counted ([`StatusPublisher::errors`]) and logged
    /// (rate-limited); an error here means it could not even be queued.
    pub fn publish(&self, s: &InstanceStatus) -> Result<(), StatusError> {
        let record = StatusRecord::Instance(s.clone());
        match self.send(&record, None) {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Some(n) = self.producer.context().error_log.hit() {
                    tracing::warn!("{e}{n}");
                }
                Err(e)
            }
        }
    }

    /// Reports partition `partition` of `topic` done by this instance, and waits up to
    /// `timeout` for the broker's confirmation.
    pub fn mark_done(
        &self,
        topic: &str,
        partition: i32,
        timeout: Duration,
    ) -> Result<(), StatusError> {
        let record = StatusRecord::Done {
            topic: topic.to_string(),
            partition,
            by: self.instance_id.clone(),
            at_ms: now_ms(),
        };
        self.send_confirmed(&record, timeout)
    }

    /// Reports that this instance gave up input partition `partition` of `topic` with
    /// everything before `offset` processed, and waits up to `timeout` for the broker's
    /// confirmation.
    pub fn hand_off(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        timeout: Duration,
    ) -> Result<(), StatusError> {
        let record = StatusRecord::Handoff {
            topic: topic.to_string(),
            partition,
            offset,
            by: self.instance_id.clone(),
            at_ms: now_ms(),
        };
        self.send_confirmed(&record, timeout)
    }

    /// Where each partition of the status topic ends now (its high watermark).
    pub fn ends(&self, timeout: Duration) -> Result<BTreeMap<i32, i64>, StatusError> {
        let deadline = Instant::now() + timeout;
        let err = |e: KafkaError| read_error(&self.topic, &self.brokers, &e);
        let client = self.producer.client();
        let md = client
            .fetch_metadata(Some(&self.topic), timeout)
            .map_err(err)?;
        let partitions = md
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .map_or(0, |t| t.partitions().len() as i32);
        let mut ends = BTreeMap::new();
        for p in 0..partitions {
            let left = deadline.saturating_duration_since(Instant::now());
            let (_, high) = client.fetch_watermarks(&self.topic, p, left).map_err(err)?;
            ends.insert(p, high);
        }
        Ok(ends)
    }

    /// Reports that this instance left (holds nothing any more), and waits up to
    /// `timeout` for the broker's confirmation.
    pub fn leave(&self, timeout: Duration) -> Result<(), StatusError> {
        let record = StatusRecord::Left {
            instance_id: self.instance_id.clone(),
            at_ms: now_ms(),
        };
        self.send_confirmed(&record, timeout)
    }

    /// Waits up to `timeout` for every record sent so far to be delivered (or given up).
    pub fn flush(&self, timeout: Duration) -> Result<(), StatusError> {
        self.producer.flush(timeout).map_err(|e| StatusError::Send {
            topic: self.topic.clone(),
            reason: e.to_string(),
        })
    }
}

impl Drop for StatusPublisher {
    fn drop(&mut self) {
        // Dropping the producer purges what is still queued: give the last status a chance.
        let _ = self.producer.flush(Duration::from_secs(1));
    }
}

/// A consumer assigned every partition of the status topic from its beginning (assigned,
/// not subscribed: it takes no part in a consumer group). Returns it with the partition
/// count.
fn status_consumer(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    topic: &str,
    timeout: Duration,
    eof: bool,
) -> Result<(BaseConsumer<QuietEof>, i32), StatusError> {
    let mut props = BTreeMap::from([
        // Reading must not create the topic (a wrong application name would).
        ("allow.auto.create.topics".to_string(), "false".to_string()),
        ("enable.auto.commit".to_string(), "false".to_string()),
        ("enable.auto.offset.store".to_string(), "false".to_string()),
    ]);
    props.extend(properties.clone());
    // Ours to decide: they define how reading works. librdkafka assigns partitions only
    // to a consumer with a group id; this one never joins the group nor commits to it.
    props.insert("enable.partition.eof".to_string(), eof.to_string());
    props.insert("group.id".to_string(), format!("{topic}-reader"));
    let consumer: BaseConsumer<QuietEof> = client_config(brokers, &props)
        .create_with_context(QuietEof)
        .map_err(|source| StatusError::Create {
            what: "consumer",
            topic: topic.to_string(),
            brokers: brokers.to_string(),
            reason: source.to_string(),
        })?;
    let partitions = check_reachable(consumer.client(), brokers, Some(topic), timeout)?;
    let partitions = i32::try_from(partitions).unwrap_or(i32::MAX);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| read_error(topic, brokers, &e))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| read_error(topic, brokers, &e))?;
    Ok((consumer, partitions))
}

fn read_error(topic: &str, brokers: &str, e: &KafkaError) -> StatusError {
    StatusError::Read {
        topic: topic.to_string(),
        brokers: brokers.to_string(),
        reason: e.to_string(),
    }
}

/// A status reader's client context: the end of a partition is how a reader knows it has
/// caught up, not an error to log.
pub struct QuietEof;

impl ClientContext for QuietEof {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_))
            && error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF)
        {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for QuietEof {}

/// Reads the whole status topic of `application` once, from its beginning to its end
/// as of now, within `timeout`. A missing topic is
/// [`KafkaClientError::NoTopic`] (no instance of the application ever started there).
pub fn read_view(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    application: &str,
    timeout: Duration,
) -> Result<StatusView, StatusError> {
    let deadline = Instant::now() + timeout;
    let topic = status_topic(application);
    let (consumer, partitions) = status_consumer(brokers, properties, &topic, timeout, true)?;
    let mut ends = current_ends(&consumer, brokers, &topic, partitions, deadline)?;
    let mut view = StatusView::default();
    let bad_log = LogThrottle::default();
    while !ends.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(StatusError::ReadTimeout {
                topic,
                timeout,
                missing: ends.len(),
            });
        }
        match consumer.poll(left.min(Duration::from_millis(200))) {
            None => {}
            Some(Ok(m)) => {
                let p = m.partition();
                if ends.get(&p).is_some_and(|end| m.offset() + 1 >= *end) {
                    ends.remove(&p);
                }
                if let Err(reason) = view.apply_payload(m.payload()) {
                    warn_bad_record(&bad_log, &topic, m.offset(), &reason);
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                ends.remove(&p);
            }
            Some(Err(e)) if is_fatal(&e) => return Err(read_error(&topic, brokers, &e)),
            Some(Err(e)) => {
                tracing::debug!("status topic `{topic}`: {e}");
            }
        }
    }
    Ok(view)
}

/// Where each partition of the status topic ends now (its high watermark), for the
/// partitions that hold records (the empty ones need no reading).
fn current_ends(
    consumer: &BaseConsumer<QuietEof>,
    brokers: &str,
    topic: &str,
    partitions: i32,
    deadline: Instant,
) -> Result<BTreeMap<i32, i64>, StatusError> {
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        let left = deadline.saturating_duration_since(Instant::now());
        let (low, high) = consumer
            .fetch_watermarks(topic, p, left)
            .map_err(|e| read_error(topic, brokers, &e))?;
        if high > low {
            ends.insert(p, high);
        }
    }
    Ok(ends)
}

/// Consumer errors that no retry will fix.
fn is_fatal(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Authentication
        )
    )
}

/// The follower's view, shared with its thread.
struct Shared {
    view: Mutex<StatusView>,
    /// Per partition, the next offset to read (updated under `view`'s lock).
    read: Mutex<BTreeMap<i32, i64>>,
    changed: Condvar,
    /// Everything the topic held when the follower started has been read.
    caught_up: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, StatusView> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Follows the status topic of an application in a background thread (from its
/// beginning), keeping a view up to date. Stops (and joins its thread) when dropped.
pub struct StatusFollower {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StatusFollower {
    /// Starts following the status topic of `application` (which must exist).
    pub fn start(
        brokers: &str,
        properties: &BTreeMap<String, String>,
        application: &str,
    ) -> Result<StatusFollower, StatusError> {
        let topic = status_topic(application);
        let (consumer, partitions) =
            status_consumer(brokers, properties, &topic, CONNECT_TIMEOUT, true)?;
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let ends = current_ends(&consumer, brokers, &topic, partitions, deadline)?;
        let shared = Arc::new(Shared {
            view: Mutex::new(StatusView::default()),
            read: Mutex::new(BTreeMap::new()),
            changed: Condvar::new(),
            caught_up: AtomicBool::new(ends.is_empty()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let shared = shared.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("status-follower".into())
                .spawn(move || follow(&consumer, &topic, ends, &shared, &stop))
                .map_err(StatusError::Thread)?
        };
        Ok(StatusFollower {
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// A copy of the current view.
    pub fn view(&self) -> StatusView {
        self.shared.lock().clone()
    }

    /// Whether everything the status topic held when the follower started has been
    /// read (the view is at least as complete as [`read_view`]'s would have been then).
    pub fn caught_up(&self) -> bool {
        self.shared.caught_up.load(Ordering::Acquire)
    }

    /// Waits until [`StatusFollower::caught_up`] (`true`), or `timeout` passed (`false`).
    pub fn wait_caught_up(&self, timeout: Duration) -> bool {
        self.wait_until(|_| self.caught_up(), timeout)
    }

    /// Waits until the view holds every record before `ends` (per partition: the next
    /// offset; see [`StatusPublisher::ends`]) (`true`), or `timeout` passed (`false`).
    pub fn wait_read_to(&self, ends: &BTreeMap<i32, i64>, timeout: Duration) -> bool {
        self.wait_until(
            |_| {
                let read = self.shared.read.lock().unwrap_or_else(|p| p.into_inner());
                ends.iter()
                    .all(|(p, e)| *e <= 0 || read.get(p).is_some_and(|r| r >= e))
            },
            timeout,
        )
    }

    /// Waits until `pred` holds for the view (`true`), or `timeout` passed (`false`).
    pub fn wait_until(&self, pred: impl Fn(&StatusView) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut view = self.shared.lock();
        loop {
            if pred(&view) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            view = self
                .shared
                .changed
                .wait_timeout(view, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for StatusFollower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The follower thread: polls until told to stop.
/// `ends`: where each partition ended when the follower started (until caught up).
fn follow(
    consumer: &BaseConsumer<QuietEof>,
    topic: &str,
    mut ends: BTreeMap<i32, i64>,
    shared: &Shared,
    stop: &AtomicBool,
) {
    let bad_log = LogThrottle::default();
    let error_log = LogThrottle::default();
    // Marks a partition read to its starting end; the last one makes the view caught up.
    let reached = |ends: &mut BTreeMap<i32, i64>, p: i32, next: Option<i64>| {
        let at_end = match next {
            None => true,
            Some(n) => ends.get(&p).is_some_and(|e| n >= *e),
        };
        if ends.is_empty() || !at_end {
            return;
        }
        ends.remove(&p);
        if ends.is_empty() {
            // Under the lock, so that no waiter misses the wake-up.
            let _view = shared.lock();
            shared.caught_up.store(true, Ordering::Release);
            shared.changed.notify_all();
        }
    };
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let r = {
                    let mut view = shared.lock();
                    let r = view.apply_payload(m.payload());
                    shared
                        .read
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(m.partition(), m.offset() + 1);
                    drop(view);
                    r
                };
                if let Err(reason) = r {
                    warn_bad_record(&bad_log, topic, m.offset(), &reason);
                }
                shared.changed.notify_all();
                reached(&mut ends, m.partition(), Some(m.offset() + 1));
            }
            Some(Err(KafkaError::PartitionEOF(p))) => reached(&mut ends, p, None),
            Some(Err(e)) => {
                if let Some(n) = error_log.hit() {
                    tracing::warn!("status topic `{topic}`: {e}{n}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, updated_ms: u64) -> InstanceStatus {
        InstanceStatus {
            application: "app".into(),
            instance_id: id.into(),
            host: "h".into(),
            pid: 7,
            started_ms: 1,
            updated_ms,
            state: InstanceState::Running,
            http: None,
            partitions: vec![PartitionStatus {
                topic: "tweets".into(),
                partition: 0,
                role: Role::Input,
                position: 5,
                end: 9,
            }],
        }
    }

    #[test]
    fn records_are_json_tagged_by_kind() {
        let r = StatusRecord::Instance(instance("a", 2));
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["kind"], "instance");
        assert_eq!(v["instance_id"], "a");
        assert_eq!(v["state"], "running");
        assert_eq!(v["partitions"][0]["role"], "input");
        let back: StatusRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        let done: StatusRecord =
            serde_json::from_str(r#"{"kind":"done","topic":"t","partition":3,"by":"a","at_ms":5}"#)
                .unwrap();
        assert_eq!(done.key(), "done:t:3");
        let left: StatusRecord =
            serde_json::from_str(r#"{"kind":"left","instance_id":"a","at_ms":5}"#).unwrap();
        assert_eq!(left.key(), "a");
    }

    #[test]
    fn the_view_keeps_the_latest_record_per_instance() {
        let mut v = StatusView::default();
        v.apply(StatusRecord::Instance(instance("a", 1)));
        v.apply(StatusRecord::Instance(instance("b", 1)));
        v.apply(StatusRecord::Instance(instance("a", 3)));
        assert_eq!(v.instances.len(), 2);
        assert_eq!(v.instances["a"].updated_ms, 3);
        v.apply(StatusRecord::Left {
            instance_id: "a".into(),
            at_ms: 4,
        });
        assert!(v.left.contains("a"));
        let live: Vec<_> = v
            .live(5, Duration::from_secs(10))
            .iter()
            .map(|s| s.instance_id.clone())
            .collect();
        assert_eq!(live, ["b"]);
        // Back after leaving (a restart with the same id).
        v.apply(StatusRecord::Instance(instance("a", 6)));
        assert!(v.left.is_empty());
        assert_eq!(v.live(7, Duration::from_secs(10)).len(), 2);
    }

    #[test]
    fn stale_and_stopped_instances_are_not_live() {
        let mut v = StatusView::default();
        v.apply(StatusRecord::Instance(instance("old", 1_000)));
        let mut stopped = instance("stopped", 20_000);
        stopped.state = InstanceState::Stopped;
        v.apply(StatusRecord::Instance(stopped));
        v.apply(StatusRecord::Instance(instance("fresh", 20_000)));
        let live: Vec<_> = v
            .live(21_000, Duration::from_secs(10))
            .iter()
            .map(|s| s.instance_id.clone())
            .collect();
        assert_eq!(live, ["fresh"]);
        assert!(is_stale(
            &v.instances["old"],
            21_000,
            Duration::from_secs(10)
        ));
        assert!(!is_stale(
            &v.instances["old"],
            11_000,
            Duration::from_secs(10)
        ));
    }

    #[test]
    fn all_done_needs_every_partition() {
        let mut v = StatusView::default();
        let done = |p| StatusRecord::Done {
            topic: "t".into(),
            partition: p,
            by: "a".into(),
            at_ms: 0,
        };
        v.apply(done(0));
        v.apply(done(2));
        assert!(!v.all_done("t", 3));
        assert!(!v.all_done("u", 1));
        v.apply(done(1));
        v.apply(done(1));
        assert!(v.all_done("t", 3));
        assert!(v.all_done("t", 2));
        assert!(v.all_done("t", 0));
    }

    #[test]
    fn the_furthest_handoff_of_a_partition_counts() {
        let mut v = StatusView::default();
        let handoff = |p, offset| StatusRecord::Handoff {
            topic: "t".into(),
            partition: p,
            offset,
            by: "a".into(),
            at_ms: 0,
        };
        assert_eq!(handoff(3, 7).key(), "handoff:t:3");
        v.apply(handoff(0, 100));
        v.apply(handoff(0, 40));
        v.apply(handoff(1, 5));
        assert_eq!(v.handoffs.get(&("t".to_string(), 0)), Some(&100));
        assert_eq!(v.handoffs.get(&("t".to_string(), 1)), Some(&5));
        let json = serde_json::to_string(&handoff(2, 9)).unwrap();
        assert!(json.contains(r#""kind":"handoff""#), "{json}");
    }

    #[test]
    fn payloads_that_are_not_status_records_are_counted() {
        let mut v = StatusView::default();
        assert!(v.apply_payload(Some(b"not json")).is_err());
        assert!(v.apply_payload(Some(br#"{"kind":"nope"}"#)).is_err());
        assert!(v.apply_payload(Some(br#"{"kind":"left"}"#)).is_err());
        assert!(v.apply_payload(None).is_err());
        assert_eq!(v.bad_records, 4);
        let good = serde_json::to_vec(&StatusRecord::Instance(instance("a", 1))).unwrap();
        assert!(v.apply_payload(Some(&good)).is_ok());
        assert_eq!((v.bad_records, v.instances.len()), (4, 1));
    }

    #[test]
    fn the_host_name_is_not_empty() {
        assert!(!hostname().is_empty());
    }

    mod on_a_broker {
        use super::*;
        use crate::kafka::mock::DevBroker;
        use rdkafka::producer::BaseProducer;

        const WAIT: Duration = Duration::from_secs(20);

        fn broker(app: &str) -> DevBroker {
            let b = DevBroker::start(1).unwrap();
            b.create_topic(&status_topic(app), 1).unwrap();
            b
        }

        fn publisher(b: &DevBroker, app: &str, id: &str) -> StatusPublisher {
            StatusPublisher::new(b.bootstrap_servers(), &BTreeMap::new(), app, id).unwrap()
        }

        fn read(b: &DevBroker, app: &str) -> StatusView {
            read_view(b.bootstrap_servers(), &BTreeMap::new(), app, WAIT).unwrap()
        }

        #[test]
        fn published_statuses_are_read_back_latest_per_instance() {
            let b = broker("rt");
            let a = publisher(&b, "rt", "a");
            let c = publisher(&b, "rt", "c");
            let mut sa = InstanceStatus::new("rt", "a");
            sa.http = Some("127.0.0.1:8080".into());
            a.publish(&sa).unwrap();
            c.publish(&InstanceStatus::new("rt", "c")).unwrap();
            sa.updated_ms += 1;
            sa.state = InstanceState::Finishing;
            sa.partitions = instance("a", 0).partitions;
            a.publish(&sa).unwrap();
            a.flush(WAIT).unwrap();
            c.flush(WAIT).unwrap();
            let v = read(&b, "rt");
            assert_eq!(v.instances.len(), 2, "{v:?}");
            assert_eq!(v.instances["a"], sa, "the latest record of `a` wins");
            assert_eq!(v.instances["c"].pid, std::process::id());
            assert_eq!(v.bad_records, 0);
            assert_eq!((a.errors(), c.errors()), (0, 0));
        }

        #[test]
        fn done_and_left_records_are_confirmed_and_read_back() {
            let b = broker("dn");
            let a = publisher(&b, "dn", "a");
            a.publish(&InstanceStatus::new("dn", "a")).unwrap();
            for p in 0..3 {
                a.mark_done("rep", p, WAIT).unwrap();
            }
            let v = read(&b, "dn");
            assert!(v.all_done("rep", 3) && !v.all_done("rep", 4), "{v:?}");
            assert!(v.left.is_empty());
            a.leave(WAIT).unwrap();
            let v = read(&b, "dn");
            assert!(v.left.contains("a"));
            assert!(v.live(now_ms(), Duration::from_secs(10)).is_empty());
        }

        #[test]
        fn a_garbage_record_is_skipped_and_counted() {
            let b = broker("gb");
            let a = publisher(&b, "gb", "a");
            a.publish(&InstanceStatus::new("gb", "a")).unwrap();
            a.flush(WAIT).unwrap();
            let p: BaseProducer = client_config(b.bootstrap_servers(), &BTreeMap::new())
                .create()
                .unwrap();
            for junk in [&b"\xff\xfe not json"[..], br#"{"kind":"instance"}"#] {
                p.send(BaseRecord::<(), _>::to("gb-status").payload(junk))
                    .unwrap();
            }
            p.send(BaseRecord::<(), [u8]>::to("gb-status")).unwrap();
            p.flush(WAIT).unwrap();
            a.publish(&InstanceStatus::new("gb", "b")).unwrap();
            a.flush(WAIT).unwrap();
            let v = read(&b, "gb");
            assert_eq!(v.bad_records, 3, "{v:?}");
            assert_eq!(v.instances.len(), 2, "records after the junk are read");
        }

        #[test]
        fn the_follower_sees_records_published_after_it_started() {
            let b = broker("fw");
            let empty =
                StatusFollower::start(b.bootstrap_servers(), &BTreeMap::new(), "fw").unwrap();
            assert!(
                empty.caught_up(),
                "an empty topic has nothing to catch up with"
            );
            drop(empty);
            let a = publisher(&b, "fw", "a");
            a.publish(&InstanceStatus::new("fw", "a")).unwrap();
            a.flush(WAIT).unwrap();
            let f = StatusFollower::start(b.bootstrap_servers(), &BTreeMap::new(), "fw").unwrap();
            assert!(f.wait_caught_up(WAIT));
            assert!(
                f.view().instances.contains_key("a"),
                "caught up: {:?}",
                f.view()
            );
            let late = publisher(&b, "fw", "late");
            late.publish(&InstanceStatus::new("fw", "late")).unwrap();
            late.mark_done("rep", 0, WAIT).unwrap();
            assert!(
                f.wait_until(
                    |v| v.instances.contains_key("late") && v.all_done("rep", 1),
                    WAIT
                ),
                "{:?}",
                f.view()
            );
            assert!(!f.wait_until(|v| v.instances.len() > 2, Duration::from_millis(300)));
            assert_eq!(f.view().instances.len(), 2);
        }

        #[test]
        fn a_missing_status_topic_and_unreachable_brokers_are_clear_errors() {
            let b = DevBroker::start(1).unwrap();
            let err = read_view(b.bootstrap_servers(), &BTreeMap::new(), "nope", WAIT).unwrap_err();
            assert!(
                matches!(err, StatusError::Client(KafkaClientError::NoTopic { .. })),
                "{err}"
            );
            assert!(err.to_string().contains("nope-status"), "{err}");
            // Reading did not create it.
            assert!(read_view(b.bootstrap_servers(), &BTreeMap::new(), "nope", WAIT).is_err());

            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap();
            let start = Instant::now();
            let brokers = format!("127.0.0.1:{port}");
            let err = read_view(&brokers, &BTreeMap::new(), "x", Duration::from_millis(500))
                .unwrap_err()
                .to_string();
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{:?}",
                start.elapsed()
            );
            assert!(err.contains(&brokers), "{err}");
        }
    }
}
