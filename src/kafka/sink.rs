//! `kafka`: produces every tuple to a Kafka topic, as a JSON object of its fields
//! (`{"hashtag":"#rust","count":3}`), keyed by one field if `key_field` is set.
//!
//! At-least-once: an input is acked only when the broker confirmed its record and failed
//! (so its spout replays it) when delivery fails. The producer is idempotent by default,
//! so librdkafka's own retries do not duplicate records; a replay after a failure may.
//!
//! JSON encoding of values: null → `null`, lists → arrays, bytes → arrays of numbers,
//! non-finite floats → `null`. The key is a string field's bytes, a bytes field as is,
//! any other value as its text (`42`, `true`); a null key means a record without a key.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use crate::component::BoltFactory;
use crate::component::collector::BoltCollector;
use crate::component::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::component::{AckMode, Bolt, ComponentResult, TaskContext, incr};
use crate::data::tuple::{Tuple, Value};
use crate::kafka::client::{DEFAULT_BROKERS, KafkaClientError, check_reachable, client_config};
use crate::log_throttle::LogThrottle;

/// How long a full sink waits for delivery reports at a time.
const WAIT: Duration = Duration::from_millis(100);

/// Options of the `kafka` sink.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// `bootstrap.servers`: HOST:PORT[,HOST:PORT...].
    pub brokers: String,
    /// The topic records go to (required).
    pub topic: String,
    /// The field whose value is the record key; none: records have no key.
    pub key_field: Option<String>,
    /// Idempotent producer (`enable.idempotence`): no duplicates from internal retries.
    pub idempotent: bool,
    /// How long a record may wait for the broker's confirmation before its input fails
    /// (`message.timeout.ms`); also how long `finish` waits for the last ones.
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// Inputs awaiting delivery, at most; when reached, the sink waits (backpressure).
    pub max_in_flight: usize,
    /// How long to wait for the brokers at start.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Any librdkafka producer property (e.g. `compression.type`); overrides the above.
    /// Never printed.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSinkConfig {
    fn default() -> Self {
        KafkaSinkConfig {
            brokers: DEFAULT_BROKERS.into(),
            topic: String::new(),
            key_field: None,
            idempotent: true,
            delivery_timeout: Duration::from_secs(30),
            max_in_flight: 10_000,
            connect_timeout: Duration::from_secs(10),
            properties: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for KafkaSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSinkConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("key_field", &self.key_field)
            .field("idempotent", &self.idempotent)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("connect_timeout", &self.connect_timeout)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ComponentConfig for KafkaSinkConfig {
    const NAME: &'static str = "kafka";
    const DESCRIPTION: &'static str =
        "produces each tuple as a JSON record to a Kafka topic; acks once the broker confirms";
}

impl BoltConfig for KafkaSinkConfig {
    fn build(&self) -> Result<BoltFactory, BuildError> {
        self.factory(None)
    }
}

impl KafkaSinkConfig {
    /// A sink whose records `encoder` makes (`key_field` is not used).
    pub fn build_with_encoder(&self, encoder: Encoder) -> Result<BoltFactory, BuildError> {
        self.factory(Some(encoder))
    }

    /// The options checked; a sink making its records with `encoder`, else as JSON.
    fn factory(&self, encoder: Option<Encoder>) -> Result<BoltFactory, BuildError> {
        let bad = |m: &str| Err(BuildError::Invalid(m.into()));
        if self.topic.is_empty() {
            return bad("`topic` is required");
        }
        if self.brokers.trim().is_empty() {
            return bad("`brokers` must not be empty");
        }
        if self.key_field.as_deref() == Some("") {
            return bad("`key_field` must not be empty (leave it out for records without keys)");
        }
        if self.max_in_flight == 0 {
            return bad("`max_in_flight` must be at least 1");
        }
        if self.delivery_timeout.is_zero() || self.connect_timeout.is_zero() {
            return bad("`delivery_timeout` and `connect_timeout` must be more than 0");
        }
        let cfg = self.clone();
        Ok(Arc::new(move || {
            Box::new(KafkaSink {
                cfg: cfg.clone(),
                conn: None,
                pending: HashMap::new(),
                next_id: 0,
                encoder: encoder.clone(),
            })
        }))
    }
}

/// A record as an [`Encoder`] makes it.
pub struct EncodedRecord {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// The partition to write to (`None`: the producer's partitioner, by key).
    pub partition: Option<i32>,
}

/// Makes the record of a tuple, instead of the sink's JSON object (distributed mode's
/// repartition writer). An error fails the input.
pub type Encoder = Arc<dyn Fn(&Tuple) -> Result<EncodedRecord, String> + Send + Sync>;

/// (delivery id, outcome) of one record.
type Report = (usize, Result<(), KafkaError>);

/// Producer context: delivery reports go to the bolt's thread through a channel.
struct Reports(Mutex<Sender<Report>>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let r = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.clone()),
        };
        // The receiver is gone only when the sink is: nobody to tell then.
        let _ = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((id, r));
    }
}

struct Conn {
    producer: ThreadedProducer<Reports>,
    reports: Receiver<Report>,
    delivered: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    error_log: LogThrottle,
}

impl Conn {
    /// Acks or fails the input of one delivery report.
    fn settle(
        &self,
        (id, r): Report,
        pending: &mut HashMap<usize, Tuple>,
        out: &mut BoltCollector<'_>,
    ) {
        let Some(t) = pending.remove(&id) else { return };
        match r {
            Ok(()) => {
                incr(&self.delivered);
                out.ack(&t);
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = self.error_log.hit() {
                    tracing::warn!("kafka sink: delivery failed: {e} (input failed){n}");
                }
                out.fail(&t);
            }
        }
    }

    /// Settles every report received so far.
    fn settle_ready(&self, pending: &mut HashMap<usize, Tuple>, out: &mut BoltCollector<'_>) {
        while let Ok(r) = self.reports.try_recv() {
            self.settle(r, pending, out);
        }
    }

    /// Waits up to `wait` for a report, then settles all that arrived; `false` if none did.
    fn settle_wait(
        &self,
        wait: Duration,
        pending: &mut HashMap<usize, Tuple>,
        out: &mut BoltCollector<'_>,
    ) -> ComponentResult<bool> {
        match self.reports.recv_timeout(wait) {
            Ok(r) => self.settle(r, pending, out),
            Err(RecvTimeoutError::Timeout) => return Ok(false),
            Err(RecvTimeoutError::Disconnected) => {
                return Err("kafka sink: the producer is gone".into());
            }
        }
        self.settle_ready(pending, out);
        Ok(true)
    }
}

/// The `kafka` sink bolt (manual acking: inputs are acked on delivery).
pub struct KafkaSink {
    cfg: KafkaSinkConfig,
    conn: Option<Conn>,
    /// Inputs whose records await the broker's confirmation, by delivery id.
    pending: HashMap<usize, Tuple>,
    next_id: usize,
    encoder: Option<Encoder>,
}

/// The tuple's fields as a JSON object, serialized without an intermediate map.
struct JsonFields<'a>(&'a Tuple);

impl Serialize for JsonFields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.values().len()))?;
        for (k, v) in self.0.fields().names().zip(self.0.values()) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The record key made of a field's value; `None` for null.
fn key_bytes(v: &Value) -> Option<Cow<'_, [u8]>> {
    match v {
        Value::Null => None,
        Value::Str(s) => Some(Cow::Borrowed(s.as_bytes())),
        Value::Bytes(b) => Some(Cow::Borrowed(b)),
        other => Some(Cow::Owned(other.to_string().into_bytes())),
    }
}

impl Bolt for KafkaSink {
    fn prepare(&mut self, ctx: &TaskContext) -> ComponentResult {
        let mut props = BTreeMap::from([
            (
                "enable.idempotence".to_string(),
                self.cfg.idempotent.to_string(),
            ),
            (
                "message.timeout.ms".to_string(),
                self.cfg.delivery_timeout.as_millis().to_string(),
            ),
        ]);
        props.extend(self.cfg.properties.clone());
        let brokers = &self.cfg.brokers;
        let (tx, reports) = channel();
        let producer: ThreadedProducer<Reports> = client_config(brokers, &props)
            .create_with_context(Reports(Mutex::new(tx)))
            .map_err(|e| {
                KafkaClientError::Create {
                    brokers: brokers.clone(),
                    reason: e.to_string(),
                }
                .to_string()
            })?;
        check_reachable(producer.client(), brokers, None, self.cfg.connect_timeout)
            .map_err(|e| e.to_string())?;
        self.conn = Some(Conn {
            producer,
            reports,
            delivered: ctx.counter("delivered"),
            errors: ctx.counter("delivery_errors"),
            error_log: LogThrottle::default(),
        });
        Ok(())
    }

    fn ack_mode(&self) -> AckMode {
        AckMode::Manual
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        let Some(conn) = &self.conn else {
            return Err("kafka sink is not connected".into());
        };
        conn.settle_ready(&mut self.pending, out);
        let encoded =
            match &self.encoder {
                Some(enc) => Some(enc(&input).map_err(|e| {
                    format!("kafka sink: cannot encode for `{}`: {e}", self.cfg.topic)
                })?),
                None => None,
            };
        let key = match &self.cfg.key_field {
            _ if encoded.is_some() => None,
            None => None,
            Some(f) => match input.get(f) {
                Some(v) => key_bytes(v),
                None => {
                    return Err(format!(
                        "kafka sink: the input has no key field `{f}` (its fields: {})",
                        input.fields()
                    )
                    .into());
                }
            },
        };
        let (payload, key, partition) = match encoded {
            Some(e) => (e.payload, e.key.map(Cow::Owned), e.partition),
            None => (
                serde_json::to_vec(&JsonFields(&input)).map_err(|e| e.to_string())?,
                key,
                None,
            ),
        };
        while self.pending.len() >= self.cfg.max_in_flight {
            conn.settle_wait(WAIT, &mut self.pending, out)?;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut record = BaseRecord::with_opaque_to(&self.cfg.topic, id).payload(&payload);
        if let Some(k) = &key {
            record = record.key(k.as_ref());
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        loop {
            match conn.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    conn.settle_wait(WAIT, &mut self.pending, out)?;
                }
                Err((e, _)) => {
                    return Err(
                        format!("kafka sink: cannot produce to `{}`: {e}", self.cfg.topic).into(),
                    );
                }
            }
        }
        self.pending.insert(id, input);
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(10))
    }

    fn tick(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        if let Some(conn) = &self.conn {
            conn.settle_ready(&mut self.pending, out);
        }
        Ok(())
    }

    /// Micro-batch mode: the batch commits only after the broker confirmed every record
    /// (a delivery failure fails the batch).
    fn finish_batch(
        &mut self,
        _batch: &crate::component::transactional::BatchInfo,
        out: &mut BoltCollector<'_>,
    ) -> ComponentResult {
        self.finish(out)
    }

    fn finish(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        let Some(conn) = &self.conn else {
            return Ok(());
        };
        // Waits for every outstanding record (librdkafka reports each one, success or not).
        let _ = conn.producer.flush(self.cfg.delivery_timeout);
        conn.settle_ready(&mut self.pending, out);
        while !self.pending.is_empty()
            && matches!(conn.settle_wait(WAIT, &mut self.pending, out), Ok(true))
        {}
        if self.pending.is_empty() {
            return Ok(());
        }
        let n = self.pending.len();
        for (_, t) in self.pending.drain() {
            incr(&conn.errors);
            out.fail(&t);
        }
        Err(format!(
            "kafka sink: {n} records to `{}` not confirmed within {:?}; their inputs were failed",
            self.cfg.topic, self.cfg.delivery_timeout
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::collector::SpoutCollector;
    use crate::component::testkit::BoltHarness;
    use crate::component::{OutputDeclarer, Spout, SpoutStatus};
    use crate::config::Config;
    use crate::data::tuple::Fields;
    use crate::kafka::mock::DevBroker;
    use crate::runtime::{LocalCluster, RunningTopology};
    use crate::topology::TopologyBuilder;
    use crate::values;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    /// What the test spout saw.
    #[derive(Default)]
    struct Log {
        acked: Vec<u64>,
        failed: Vec<u64>,
    }

    /// Emits `[#tI, I]` with message id I for I in 1..=n once `gate` opens; replays fails.
    #[derive(Clone)]
    struct Source {
        n: u64,
        next: u64,
        replay: VecDeque<u64>,
        gate: Arc<AtomicBool>,
        log: Arc<Mutex<Log>>,
    }

    impl Spout for Source {
        fn declare_outputs(&self, out: &mut OutputDeclarer) {
            out.declare(Fields::new(["hashtag", "count"]));
        }
        fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> SpoutStatus {
            if !self.gate.load(Ordering::SeqCst) {
                return SpoutStatus::Idle;
            }
            let Some(i) = self.replay.pop_front().or_else(|| {
                self.next += 1;
                (self.next <= self.n).then_some(self.next)
            }) else {
                return SpoutStatus::Exhausted;
            };
            out.emit(values![format!("#t{i}"), i as i64], Some(i))
                .unwrap();
            SpoutStatus::Emitted
        }
        fn ack(&mut self, id: u64) {
            self.log.lock().unwrap().acked.push(id);
        }
        fn fail(&mut self, id: u64) {
            self.log.lock().unwrap().failed.push(id);
            self.replay.push_back(id);
        }
    }

    fn sink(brokers: &str, props: &[(&str, &str)]) -> KafkaSinkConfig {
        KafkaSinkConfig {
            brokers: brokers.into(),
            topic: "out".into(),
            key_field: Some("hashtag".into()),
            connect_timeout: Duration::from_secs(5),
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// source → kafka sink; returns once the sink is prepared, with the spout's gate closed.
    fn start(cfg: &KafkaSinkConfig, n: u64) -> (RunningTopology, Arc<AtomicBool>, Arc<Mutex<Log>>) {
        let (gate, log) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::default()));
        let src = Source {
            n,
            next: 0,
            replay: VecDeque::new(),
            gate: gate.clone(),
            log: log.clone(),
        };
        let mut b = TopologyBuilder::new("kafka-sink");
        b.spout("source", src, 1);
        b.bolt_factory("sink", cfg.build().unwrap(), 1)
            .shuffle("source");
        let run = LocalCluster::submit(
            b.build().unwrap(),
            Config {
                workers: 2,
                ..Default::default()
            },
        )
        .unwrap();
        // The counters are made at the end of `prepare`, once the brokers answered.
        wait_until("prepare", Duration::from_secs(10), || {
            run.metrics()
                .component("sink")
                .is_some_and(|c| c.counters.contains_key("delivered"))
        });
        (run, gate, log)
    }

    /// (key, value) of every record of `topic`/0.
    fn read_back(brokers: &str, topic: &str, n: usize) -> Vec<(String, serde_json::Value)> {
        let c: BaseConsumer =
            client_config(brokers, &BTreeMap::from([("group.id".into(), "t".into())]))
                .create()
                .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .unwrap();
        c.assign(&tpl).unwrap();
        let mut got = Vec::new();
        let start = Instant::now();
        while got.len() < n && start.elapsed() < Duration::from_secs(20) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
                got.push((key, serde_json::from_slice(m.payload().unwrap()).unwrap()));
            }
        }
        got
    }

    fn counter(run: &RunningTopology, name: &str) -> u64 {
        run.metrics()
            .component("sink")
            .map_or(0, |c| c.counters[name])
    }

    #[test]
    fn delivers_keyed_json_records_and_acks_inputs() {
        let broker = DevBroker::start(1).unwrap();
        broker.create_topic("out", 1).unwrap();
        // A tiny `max_in_flight`: `execute` waits for deliveries (the backpressure path).
        let cfg = KafkaSinkConfig {
            max_in_flight: 2,
            ..sink(broker.bootstrap_servers(), &[])
        };
        let (run, gate, log) = start(&cfg, 20);
        gate.store(true, Ordering::SeqCst);
        assert!(
            run.wait_finished(Duration::from_secs(30)),
            "run did not finish"
        );
        let summary = run.join().unwrap();
        let mut acked = std::mem::take(&mut log.lock().unwrap().acked);
        acked.sort_unstable();
        assert_eq!(acked, (1..=20).collect::<Vec<_>>());
        assert!(log.lock().unwrap().failed.is_empty());
        let counters = &summary.metrics.components["sink"].counters;
        assert_eq!(
            (counters["delivered"], counters["delivery_errors"]),
            (20, 0)
        );
        let got = read_back(broker.bootstrap_servers(), "out", 20);
        assert_eq!(got.len(), 20);
        for (key, value) in got {
            let i: i64 = key.trim_start_matches("#t").parse().unwrap();
            assert_eq!(value, serde_json::json!({"hashtag": key, "count": i}));
        }
    }

    #[test]
    fn delivery_failure_fails_the_tuple_and_the_replay_is_delivered() {
        let broker = DevBroker::start(1).unwrap();
        broker.create_topic("out", 1).unwrap();
        let mut cfg = sink(
            broker.bootstrap_servers(),
            &[("reconnect.backoff.max.ms", "200")],
        );
        cfg.delivery_timeout = Duration::from_millis(800);
        let (run, gate, log) = start(&cfg, 5);
        broker.broker_down(-1);
        gate.store(true, Ordering::SeqCst);
        wait_until("a failed delivery", Duration::from_secs(20), || {
            !log.lock().unwrap().failed.is_empty()
        });
        assert!(
            log.lock().unwrap().acked.is_empty(),
            "acked while the broker was down"
        );
        assert!(counter(&run, "delivery_errors") > 0);
        broker.broker_up(-1);
        assert!(
            run.wait_finished(Duration::from_secs(60)),
            "replays were not delivered"
        );
        let summary = run.join().unwrap();
        let mut acked = std::mem::take(&mut log.lock().unwrap().acked);
        acked.sort_unstable();
        assert_eq!(acked, [1, 2, 3, 4, 5]);
        assert_eq!(summary.metrics.components["sink"].counters["delivered"], 5);
        assert_eq!(read_back(broker.bootstrap_servers(), "out", 5).len(), 5);
    }

    #[test]
    fn missing_topic_or_key_field_fails_the_input() {
        let broker = DevBroker::start(1).unwrap();
        let mut cfg = sink(
            broker.bootstrap_servers(),
            &[("allow.auto.create.topics", "false")],
        );
        cfg.delivery_timeout = Duration::from_millis(500);
        let mut h = BoltHarness::new(cfg.build().unwrap()(), Fields::new(["hashtag", "count"]));
        let c = |h: &BoltHarness, name: &str| h.context().counter(name).load(Ordering::Relaxed);
        h.execute(values!["#a", 1]).unwrap();
        wait_until("the delivery error", Duration::from_secs(20), || {
            h.tick().unwrap();
            c(&h, "delivery_errors") == 1
        });
        assert_eq!(c(&h, "delivered"), 0);
        broker.create_topic("out", 1).unwrap();
        // Replays, as the spout would, until one is delivered: the producer learns of the
        // new topic at a metadata refresh, which may come after the first replay timed out.
        wait_until("a replay's delivery", Duration::from_secs(30), || {
            let reported = |h: &BoltHarness| c(h, "delivered") + c(h, "delivery_errors");
            let before = reported(&h);
            h.execute(values!["#a", 1]).unwrap();
            wait_until("the replay's report", Duration::from_secs(10), || {
                h.tick().unwrap();
                reported(&h) > before
            });
            c(&h, "delivered") == 1
        });
        let mut no_key = BoltHarness::new(cfg.build().unwrap()(), Fields::new(["count"]));
        let err = no_key.execute(values![1]).unwrap_err().to_string();
        assert!(
            err.contains("no key field `hashtag`") && err.contains("[count]"),
            "{err}"
        );
    }

    #[test]
    fn unreachable_brokers_fail_prepare_with_a_clear_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let brokers = format!("127.0.0.1:{port}");
        let mut cfg = sink(&brokers, &[]);
        cfg.connect_timeout = Duration::from_millis(500);
        let src = Source {
            n: 1,
            next: 0,
            replay: VecDeque::new(),
            gate: Arc::default(),
            log: Arc::default(),
        };
        let mut b = TopologyBuilder::new("kafka-sink");
        b.spout("source", src, 1);
        b.bolt_factory("sink", cfg.build().unwrap(), 1)
            .shuffle("source");
        let started = Instant::now();
        let err = LocalCluster::submit(b.build().unwrap(), Config::default())
            .unwrap()
            .join()
            .unwrap_err()
            .to_string();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            err.contains(&brokers) && err.contains("no Kafka broker answered"),
            "{err}"
        );
    }

    #[test]
    fn encodes_fields_as_json_and_checks_options() {
        let fields = Fields::new(["s", "n", "x", "b", "l", "z"]);
        let list = Value::List(vec![Value::from(1), Value::Null].into());
        let t = Tuple::new_detached(
            "c",
            "default",
            fields,
            values!["a", 2, f64::NAN, vec![7u8, 8], list, Value::Null],
        );
        let json = serde_json::to_string(&JsonFields(&t)).unwrap();
        assert_eq!(
            json,
            r#"{"s":"a","n":2,"x":null,"b":[7,8],"l":[1,null],"z":null}"#
        );
        assert_eq!(key_bytes(&Value::from(42)).unwrap().as_ref(), b"42");
        assert!(key_bytes(&Value::Null).is_none());
        let err = |c: KafkaSinkConfig| c.build().err().unwrap().to_string();
        assert!(err(KafkaSinkConfig::default()).contains("`topic` is required"));
        let mut c = sink("b:1", &[("sasl.password", "hunter2")]);
        assert!(!format!("{c:?}").contains("hunter2"));
        c.max_in_flight = 0;
        assert!(err(c).contains("max_in_flight"));
    }
}
