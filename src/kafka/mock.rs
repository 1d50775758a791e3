//! A Kafka-protocol broker in this process: librdkafka's mock cluster.
//!
//! It speaks the real Kafka protocol on loopback (produce, fetch, consumer groups, offset
//! commits, watermarks), keeps everything in memory, and is gone when dropped. `squall
//! kafka dev-broker` runs one for trying squall without installing Kafka; the tests run
//! one in-process and point topologies (in-process or child processes) at it.
//!
//! The mock binds its brokers to random loopback ports. [`DevBroker::start_on`] gives one
//! broker a fixed address by listening there and relaying every connection to the mock,
//! and makes the broker advertise that address, so every client connection (bootstrap
//! and afterwards) goes through the fixed port.

use std::ffi::{CStr, CString};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, Producer};
pub use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use rdkafka_sys as rdsys;

use crate::kafka::admin::{ADMIN_TOPIC, CreateTopicRequest};

/// Errors of the dev broker.
#[derive(Debug, thiserror::Error)]
pub enum DevBrokerError {
    #[error("cannot start librdkafka's mock cluster: {0}")]
    Start(#[from] rdkafka::error::KafkaError),
    #[error("the mock cluster did not start")]
    NoCluster,
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: io::Error },
    #[error("cannot create topic `{topic}`: {source}")]
    CreateTopic {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("bad topic name `{0}`")]
    TopicName(String),
    #[error("cannot make broker {broker} the leader of `{topic}` partition {partition}: {source}")]
    Leader {
        topic: String,
        partition: i32,
        broker: i32,
        source: rdkafka::error::KafkaError,
    },
    #[error("mock broker {broker}: {source}")]
    Broker {
        broker: i32,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot start the dev broker's topic-request watcher: {0}")]
    Watcher(String),
}

/// The mock cluster handle. Valid while `owner` (the client that created it) lives.
#[derive(Clone, Copy)]
struct ClusterPtr(*mut rdsys::rd_kafka_mock_cluster_t);

// SAFETY: librdkafka's mock cluster API is thread-safe: every call is either read-only
// under the cluster's lock or posted as an op to the cluster's own thread.
unsafe impl Send for ClusterPtr {}
unsafe impl Sync for ClusterPtr {}

/// An in-memory Kafka-protocol broker (cluster) on loopback.
///
/// It also serves squall's requests to create topics (the mock has no CreateTopics API):
/// it creates the topic `__squall_admin` (1 partition) and a thread consumes it and creates
/// every topic asked for there (a JSON record `{"create_topic": NAME, "partitions": N}`,
/// as [`crate::kafka::admin::ensure_topics`] writes it).
pub struct DevBroker {
    cluster: ClusterPtr,
    /// Owns the mock cluster: dropping it destroys the cluster.
    owner: BaseProducer,
    bootstrap: String,
    relay: Option<Relay>,
    watcher: Option<AdminWatcher>,
}

impl DevBroker {
    /// Starts a mock cluster of `brokers` brokers on random loopback ports.
    pub fn start(brokers: u16) -> Result<DevBroker, DevBrokerError> {
        let mut broker = DevBroker::start_plain(brokers)?;
        broker.start_watcher()?;
        Ok(broker)
    }

    /// A mock cluster without the topic-request watcher (as a bare librdkafka mock).
    pub(crate) fn start_plain(brokers: u16) -> Result<DevBroker, DevBrokerError> {
        let owner: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", brokers.max(1).to_string())
            .set("log_level", "3")
            .create()?;
        // SAFETY: `owner` is a live client; the returned pointer lives as long as it does.
        let ptr = unsafe { rdsys::rd_kafka_handle_mock_cluster(owner.client().native_ptr()) };
        if ptr.is_null() {
            return Err(DevBrokerError::NoCluster);
        }
        // SAFETY: `ptr` is a live mock cluster; the string is owned by it and copied here.
        let bootstrap = unsafe {
            let s = rdsys::rd_kafka_mock_cluster_bootstraps(ptr);
            if s.is_null() {
                return Err(DevBrokerError::NoCluster);
            }
            CStr::from_ptr(s).to_string_lossy().into_owned()
        };
        let broker = DevBroker {
            cluster: ClusterPtr(ptr),
            owner,
            bootstrap,
            relay: None,
            watcher: None,
        };
        // A first consumer-group join would wait the broker's 3 s initial rebalance delay.
        broker.set_initial_rebalance_delay_ms(0);
        Ok(broker)
    }

    /// Starts a one-broker mock cluster reachable at `listen` (e.g. `127.0.0.1:9092`).
    pub fn start_on(listen: &str) -> Result<DevBroker, DevBrokerError> {
        let mut broker = DevBroker::start_plain(1)?;
        let target = broker.bootstrap.clone();
        let relay = Relay::start(listen, target).map_err(|source| DevBrokerError::Listen {
            addr: listen.to_string(),
            source,
        })?;
        let addr = relay.addr;
        let host = CString::new(addr.ip().to_string()).map_err(|_| DevBrokerError::NoCluster)?;
        // SAFETY: live cluster; broker 1 exists (ids start at 1); `host` outlives the call.
        unsafe {
            rdsys::rd_kafka_mock_broker_set_host_port(
                broker.cluster.0,
                1,
                host.as_ptr(),
                i32::from(addr.port()),
            );
        }
        broker.bootstrap = addr.to_string();
        broker.relay = Some(relay);
        broker.start_watcher()?;
        Ok(broker)
    }

    /// Creates `__squall_admin` and starts the thread that serves the requests written there.
    fn start_watcher(&mut self) -> Result<(), DevBrokerError> {
        self.create_topic(ADMIN_TOPIC, 1)?;
        self.watcher = Some(AdminWatcher::start(self.cluster, &self.bootstrap)?);
        Ok(())
    }

    /// The `bootstrap.servers` list of this cluster.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic (the mock does not implement the CreateTopics admin request).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), DevBrokerError> {
        create_mock_topic(self.cluster, topic, partitions)
    }

    /// How long the group coordinator waits for more members before the first
    /// assignment of a new group (Kafka's `group.initial.rebalance.delay.ms`).
    pub fn set_initial_rebalance_delay_ms(&self, ms: i32) {
        // SAFETY: live cluster.
        unsafe { rdsys::rd_kafka_mock_group_initial_rebalance_delay_ms(self.cluster.0, ms) }
    }

    /// Takes broker `id` down (connections are closed and refused), or -1 for all.
    pub fn broker_down(&self, id: i32) {
        // SAFETY: live cluster.
        unsafe {
            rdsys::rd_kafka_mock_broker_set_down(self.cluster.0, id);
        }
    }

    /// Brings broker `id` back up, or -1 for all.
    pub fn broker_up(&self, id: i32) {
        // SAFETY: live cluster.
        unsafe {
            rdsys::rd_kafka_mock_broker_set_up(self.cluster.0, id);
        }
    }

    /// Makes the next `errors.len()` requests of type `api` (to any broker of the
    /// cluster, from any client) fail with these errors, one each, in order.
    /// `RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT` closes the connection instead.
    pub fn push_request_errors(&self, api: RDKafkaApiKey, errors: &[RDKafkaRespErr]) {
        // SAFETY: live cluster; the array is copied by the call.
        unsafe {
            rdsys::rd_kafka_mock_push_request_errors_array(
                self.cluster.0,
                api as i16,
                errors.len(),
                errors.as_ptr(),
            )
        }
    }

    /// Makes the next `errors.len()` requests of type `api` that broker `broker`
    /// receives fail with these errors, in order, each answered after its delay (a slow
    /// broker). Unlike [`DevBroker::push_request_errors`], requests to other brokers are
    /// not affected: a test can aim errors at one client's partition leader.
    pub fn push_broker_request_errors(
        &self,
        broker: i32,
        api: RDKafkaApiKey,
        errors: &[(RDKafkaRespErr, Duration)],
    ) -> Result<(), DevBrokerError> {
        for (e, rtt) in errors {
            let rtt_ms = i32::try_from(rtt.as_millis()).unwrap_or(i32::MAX);
            // SAFETY: live cluster; the variadic arguments are `cnt` pairs of
            // (rd_kafka_resp_err_t, int), as the C function reads them.
            let err = unsafe {
                rdsys::rd_kafka_mock_broker_push_request_error_rtts(
                    self.cluster.0,
                    broker,
                    api as i16,
                    1,
                    *e as std::ffi::c_int,
                    rtt_ms as std::ffi::c_int,
                )
            };
            if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(DevBrokerError::Broker {
                    broker,
                    source: rdkafka::error::KafkaError::MockCluster(err.into()),
                });
            }
        }
        Ok(())
    }

    /// How many errors pushed for broker `broker`'s requests of type `api` are still
    /// waiting for a request.
    pub fn broker_request_errors_left(&self, broker: i32, api: RDKafkaApiKey) -> usize {
        let mut n: usize = 0;
        // SAFETY: live cluster; `n` outlives the call.
        unsafe {
            rdsys::rd_kafka_mock_broker_error_stack_cnt(self.cluster.0, broker, api as i16, &mut n);
        }
        n
    }

    /// Drops the errors still queued for requests of type `api`.
    pub fn clear_request_errors(&self, api: RDKafkaApiKey) {
        // SAFETY: live cluster.
        unsafe { rdsys::rd_kafka_mock_clear_request_errors(self.cluster.0, api as i16) }
    }

    /// Makes broker `broker` the leader of `topic`'s `partition` (a leader change:
    /// clients talking to the old leader get `NOT_LEADER_FOR_PARTITION` and move).
    pub fn set_partition_leader(
        &self,
        topic: &str,
        partition: i32,
        broker: i32,
    ) -> Result<(), DevBrokerError> {
        let name = CString::new(topic).map_err(|_| DevBrokerError::TopicName(topic.into()))?;
        // SAFETY: live cluster; `name` outlives the call (it waits for the cluster thread).
        let err = unsafe {
            rdsys::rd_kafka_mock_partition_set_leader(
                self.cluster.0,
                name.as_ptr(),
                partition,
                broker,
            )
        };
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            Ok(())
        } else {
            Err(DevBrokerError::Leader {
                topic: topic.into(),
                partition,
                broker,
                source: rdkafka::error::KafkaError::MockCluster(err.into()),
            })
        }
    }
}

/// Creates `topic` in the mock cluster `cluster`, which must be live for the call.
fn create_mock_topic(
    cluster: ClusterPtr,
    topic: &str,
    partitions: i32,
) -> Result<(), DevBrokerError> {
    let name = CString::new(topic).map_err(|_| DevBrokerError::TopicName(topic.into()))?;
    // SAFETY: the caller keeps the cluster live; `name` outlives the call. The call posts
    // an op to the cluster's thread and waits for its reply (thread-safe).
    let err = unsafe { rdsys::rd_kafka_mock_topic_create(cluster.0, name.as_ptr(), partitions, 1) };
    if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        Err(DevBrokerError::CreateTopic {
            topic: topic.into(),
            source: rdkafka::error::KafkaError::MockCluster(err.into()),
        })
    }
}

/// The thread that consumes `__squall_admin` and creates the topics requested there.
struct AdminWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl AdminWatcher {
    /// Starts consuming `__squall_admin` (from its beginning) at `bootstrap`, creating
    /// topics in `cluster`. The cluster must stay live until [`AdminWatcher::stop`] returns.
    fn start(cluster: ClusterPtr, bootstrap: &str) -> Result<AdminWatcher, DevBrokerError> {
        let watcher_err = |e: rdkafka::error::KafkaError| DevBrokerError::Watcher(e.to_string());
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "__squall_admin_watcher")
            .set("enable.auto.commit", "false")
            .set("allow.auto.create.topics", "false")
            .set("log_level", "3")
            .create()
            .map_err(watcher_err)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(ADMIN_TOPIC, 0, Offset::Beginning)
            .map_err(watcher_err)?;
        consumer.assign(&tpl).map_err(watcher_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = thread::Builder::new()
            .name("dev-broker-admin".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    match consumer.poll(Duration::from_millis(100)) {
                        None => {}
                        Some(Ok(m)) => serve_request(cluster, m.payload().unwrap_or_default()),
                        Some(Err(e)) => {
                            tracing::debug!("dev broker: reading {ADMIN_TOPIC}: {e}")
                        }
                    }
                }
            })
            .map_err(|e| DevBrokerError::Watcher(e.to_string()))?;
        Ok(AdminWatcher {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it (at most one poll interval).
    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one `__squall_admin` record: creates the topic it asks for, unless it exists.
fn serve_request(cluster: ClusterPtr, payload: &[u8]) {
    let req: CreateTopicRequest = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(
                "dev broker: ignoring a record of {ADMIN_TOPIC} that is not \
                 {{\"create_topic\": NAME, \"partitions\": N}}: {e}"
            );
            return;
        }
    };
    match create_mock_topic(cluster, &req.create_topic, req.partitions) {
        Ok(()) => tracing::info!(
            "dev broker: created topic `{}` with {} partitions (requested through {ADMIN_TOPIC})",
            req.create_topic,
            req.partitions
        ),
        Err(DevBrokerError::CreateTopic { source, .. })
            if source.rdkafka_error_code()
                == Some(rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists) =>
        {
            tracing::debug!("dev broker: topic `{}` exists already", req.create_topic)
        }
        Err(e) => tracing::warn!("dev broker: {e}"),
    }
}

impl Drop for DevBroker {
    fn drop(&mut self) {
        // The watcher uses the cluster: stop it while the cluster (`owner`) lives.
        if let Some(watcher) = self.watcher.take() {
            watcher.stop();
        }
        if let Some(relay) = self.relay.take() {
            relay.stop();
        }
        let _ = self.owner.flush(std::time::Duration::from_millis(0));
    }
}

/// Listens on a fixed address and relays each connection to `target`.
struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(listen: &str, target: String) -> io::Result<Relay> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::Builder::new()
            .name("dev-broker-relay".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stopped.load(Ordering::Relaxed) {
                        break;
                    }
                    match conn {
                        Ok(client) => relay_connection(client, &target),
                        Err(e) => tracing::warn!("dev broker: accept failed: {e}"),
                    }
                }
            })?;
        Ok(Relay { addr, stop })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies bytes both ways between `client` and a new connection to `target`.
fn relay_connection(client: TcpStream, target: &str) {
    let server = match TcpStream::connect(target) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("dev broker: cannot reach the mock broker at {target}: {e}");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
            let _ = from.shutdown(Shutdown::Read);
        }
    };
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let spawned = thread::Builder::new()
        .name("dev-broker-up".into())
        .spawn(pipe(client, server))
        .and_then(|_| {
            thread::Builder::new()
                .name("dev-broker-down".into())
                .spawn(pipe(s2, c2))
        });
    if let Err(e) = spawned {
        tracing::warn!("dev broker: cannot start a relay thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::producer::BaseRecord;

    fn produce_and_count(bootstrap: &str, topic: &str) -> (i64, i64) {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .unwrap();
        for i in 0..10 {
            let v = format!("m{i}");
            p.send(BaseRecord::<(), _>::to(topic).payload(&v)).unwrap();
        }
        p.flush(Duration::from_secs(10)).unwrap();
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "t")
            .create()
            .unwrap();
        c.fetch_watermarks(topic, 0, Duration::from_secs(10))
            .unwrap()
    }

    #[test]
    fn random_ports_cluster_takes_topics_and_records() {
        let b = DevBroker::start(1).unwrap();
        b.create_topic("t", 1).unwrap();
        assert_eq!(produce_and_count(b.bootstrap_servers(), "t"), (0, 10));
    }

    #[test]
    fn fixed_address_relays_every_connection() {
        let b = DevBroker::start_on("127.0.0.1:0").unwrap();
        assert!(b.bootstrap_servers().starts_with("127.0.0.1:"));
        b.create_topic("t", 2).unwrap();
        assert_eq!(produce_and_count(b.bootstrap_servers(), "t").0, 0);
    }
}
