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

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka_sys as rdsys;

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
}

/// The mock cluster handle. Valid while `owner` (the client that created it) lives.
struct ClusterPtr(*mut rdsys::rd_kafka_mock_cluster_t);

// SAFETY: librdkafka's mock cluster API is thread-safe: every call is either read-only
// under the cluster's lock or posted as an op to the cluster's own thread.
unsafe impl Send for ClusterPtr {}
unsafe impl Sync for ClusterPtr {}

/// An in-memory Kafka-protocol broker (cluster) on loopback.
pub struct DevBroker {
    cluster: ClusterPtr,
    /// Owns the mock cluster: dropping it destroys the cluster.
    owner: BaseProducer,
    bootstrap: String,
    relay: Option<Relay>,
}

impl DevBroker {
    /// Starts a mock cluster of `brokers` brokers on random loopback ports.
    pub fn start(brokers: u16) -> Result<DevBroker, DevBrokerError> {
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
        };
        // A first consumer-group join would wait the broker's 3 s initial rebalance delay.
        broker.set_initial_rebalance_delay_ms(0);
        Ok(broker)
    }

    /// Starts a one-broker mock cluster reachable at `listen` (e.g. `127.0.0.1:9092`).
    pub fn start_on(listen: &str) -> Result<DevBroker, DevBrokerError> {
        let mut broker = DevBroker::start(1)?;
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
        Ok(broker)
    }

    /// The `bootstrap.servers` list of this cluster.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic (the mock does not implement the CreateTopics admin request).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), DevBrokerError> {
        let name = CString::new(topic).map_err(|_| DevBrokerError::TopicName(topic.into()))?;
        // SAFETY: live cluster; `name` outlives the call.
        let err = unsafe {
            rdsys::rd_kafka_mock_topic_create(self.cluster.0, name.as_ptr(), partitions, 1)
        };
        if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            Ok(())
        } else {
            Err(DevBrokerError::CreateTopic {
                topic: topic.into(),
                source: rdkafka::error::KafkaError::MockCluster(err.into()),
            })
        }
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
}

impl Drop for DevBroker {
    fn drop(&mut self) {
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
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::BaseRecord;
    use std::time::Duration;

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
