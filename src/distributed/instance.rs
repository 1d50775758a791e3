//! One instance of a distributed application: what the components of this process share
//! — its identity, the status it publishes (partitions held, with positions and ends), the
//! application-wide view of which partitions are done, and the end markers it writes when
//! a partition it holds is finished.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::distributed::status::{
    InstanceState, InstanceStatus, PartitionStatus, Role, StatusFollower, StatusPublisher, now_ms,
};
use crate::distributed::wire::{EndMarker, encode_marker};
use crate::kafka::client::client_config;
use crate::sync::lock;

/// How long a status, marker or metadata request may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How often the instance publishes its status.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);
/// How often an instance waiting for the end of the application logs what it waits for.
pub const WAITING_LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("instance {instance}: {what}: {why}")]
    Start {
        instance: String,
        what: &'static str,
        why: String,
    },
    #[error("end marker for {topic}[{partition}] to {to}: {why}")]
    Marker {
        topic: String,
        partition: i32,
        to: String,
        why: String,
    },
}

/// Who this instance is and how it reaches Kafka.
#[derive(Clone, Debug)]
pub struct Identity {
    pub application: String,
    pub instance_id: String,
    pub brokers: String,
    pub properties: BTreeMap<String, String>,
}

/// The topics of the application, as the topology file says (the same on every instance).
#[derive(Clone, Debug, Default)]
pub struct Topics {
    /// Input topics (of Kafka spouts ahead of the first distributed input) with their
    /// partition counts: the application is done when all their partitions are.
    pub inputs: Vec<(String, i32)>,
    /// Repartition topics with their partition counts.
    pub repartition: Vec<(String, i32)>,
    /// Where the end markers of a topic's partitions go: the repartition topics written
    /// by the components that read that topic (without crossing another distributed
    /// input).
    pub downstream: HashMap<String, Vec<(String, i32)>>,
}

/// A partition this instance holds, for its status.
#[derive(Clone, Debug)]
struct Held {
    role: Role,
    /// The consumer group whose committed offset is its position (none: changelog).
    group: Option<String>,
}

pub struct Instance {
    pub id: Identity,
    pub topics: Topics,
    publisher: StatusPublisher,
    follower: StatusFollower,
    markers: ThreadedProducer<DefaultProducerContext>,
    held: Mutex<BTreeMap<(String, i32), Held>>,
    fatal: Mutex<Option<String>>,
    state: Mutex<InstanceState>,
    http: Mutex<Option<String>>,
    stop: Arc<AtomicBool>,
    heartbeat: Mutex<Option<JoinHandle<()>>>,
    /// When [`Instance::application_done`] last logged what it waits for.
    waiting_logged: Mutex<Option<std::time::Instant>>,
}

impl Instance {
    /// Connects (status topic publisher and follower, marker producer) and starts
    /// publishing this instance's status every [`STATUS_EVERY`].
    pub fn start(id: Identity, topics: Topics) -> Result<Arc<Instance>, InstanceError> {
        let who = id.instance_id.clone();
        let start_err = |what: &'static str, why: String| InstanceError::Start {
            instance: who.clone(),
            what,
            why,
        };
        let publisher = StatusPublisher::new(
            &id.brokers,
            &id.properties,
            &id.application,
            &id.instance_id,
        )
        .map_err(|e| start_err("status publisher", e.to_string()))?;
        let follower = StatusFollower::start(&id.brokers, &id.properties, &id.application)
            .map_err(|e| start_err("status follower", e.to_string()))?;
        let mut cc = client_config(&id.brokers, &id.properties);
        cc.set("enable.idempotence", "true").set("linger.ms", "0");
        let markers: ThreadedProducer<DefaultProducerContext> = cc
            .create()
            .map_err(|e| start_err("marker producer", e.to_string()))?;
        let inst = Arc::new(Instance {
            id,
            topics,
            publisher,
            follower,
            markers,
            held: Mutex::new(BTreeMap::new()),
            fatal: Mutex::new(None),
            state: Mutex::new(InstanceState::Running),
            http: Mutex::new(None),
            stop: Arc::new(AtomicBool::new(false)),
            heartbeat: Mutex::new(None),
            waiting_logged: Mutex::new(None),
        });
        let weak = Arc::downgrade(&inst);
        let stop = inst.stop.clone();
        let handle = std::thread::Builder::new()
            .name("instance-status".into())
            .spawn(move || heartbeat(weak, stop))
            .map_err(|e| InstanceError::Start {
                instance: inst.id.instance_id.clone(),
                what: "status thread",
                why: e.to_string(),
            })?;
        *lock(&inst.heartbeat) = Some(handle);
        Ok(inst)
    }

    /// The address of this instance's web UI, for its status.
    pub fn set_http(&self, addr: Option<String>) {
        *lock(&self.http) = addr;
    }

    /// A partition is now held here (`group`: the consumer group whose committed offset
    /// is its position).
    pub fn hold(&self, topic: &str, partition: i32, role: Role, group: Option<&str>) {
        lock(&self.held).insert(
            (topic.to_string(), partition),
            Held {
                role,
                group: group.map(str::to_string),
            },
        );
    }

    /// A partition is no longer held here.
    pub fn release(&self, topic: &str, partition: i32) {
        lock(&self.held).remove(&(topic.to_string(), partition));
    }

    /// This instance for the web UI and `/api/topology`: application, id, partitions.
    pub fn describe(&self) -> serde_json::Value {
        let partitions: Vec<serde_json::Value> = self
            .held()
            .into_iter()
            .map(|(topic, partition, role)| {
                serde_json::json!({ "topic": topic, "partition": partition, "role": role })
            })
            .collect();
        serde_json::json!({
            "application": self.id.application,
            "instance_id": self.id.instance_id,
            "partitions": partitions,
        })
    }

    /// The partitions held here, by topic.
    pub fn held(&self) -> Vec<(String, i32, Role)> {
        lock(&self.held)
            .iter()
            .map(|((t, p), h)| (t.clone(), *p, h.role))
            .collect()
    }

    /// Partition `partition` (of `of`) of `topic` was processed to its end here: writes
    /// its end marker to every partition of the repartition topics downstream of `topic`
    /// (after everything that came from it: those writes were confirmed), then records it
    /// done in the status topic.
    pub fn partition_done(
        &self,
        topic: &str,
        partition: i32,
        of: i32,
    ) -> Result<(), InstanceError> {
        let marker = encode_marker(&EndMarker {
            topic: topic.to_string(),
            partition,
            of,
        });
        let merr = |to: &str, why: String| InstanceError::Marker {
            topic: topic.to_string(),
            partition,
            to: to.to_string(),
            why,
        };
        for (to, parts) in self.topics.downstream.get(topic).into_iter().flatten() {
            for p in 0..*parts {
                let rec: BaseRecord<'_, (), [u8]> =
                    BaseRecord::to(to).partition(p).payload(marker.as_slice());
                self.markers
                    .send(rec)
                    .map_err(|(e, _)| merr(to, e.to_string()))?;
            }
            self.markers
                .flush(TIMEOUT)
                .map_err(|e| merr(to, e.to_string()))?;
        }
        tracing::info!(topic, partition, "distributed: partition done");
        self.publisher
            .mark_done(topic, partition, TIMEOUT)
            .map_err(|e| merr("the status topic", e.to_string()))
    }

    /// [`partition_done`](Self::partition_done) on a thread of its own (off a spout's
    /// thread: a marker write and a confirmed status record); an error stops the run.
    pub fn partition_done_in_background(self: &Arc<Self>, topic: &str, partition: i32, of: i32) {
        let (inst, t) = (self.clone(), topic.to_string());
        let spawned = std::thread::Builder::new()
            .name("partition-done".into())
            .spawn(move || {
                if let Err(e) = inst.partition_done(&t, partition, of) {
                    inst.set_fatal(e.to_string());
                }
            });
        if let Err(e) = spawned {
            self.set_fatal(format!(
                "cannot report partition {partition} of {topic} done: {e}"
            ));
        }
    }

    /// This instance gives up input partition `partition` of `topic` with every record
    /// before `offset` processed: recorded (and confirmed) in the status topic, so that
    /// the next holder starts there whether or not the group took the commit.
    pub fn hand_off(&self, topic: &str, partition: i32, offset: i64) {
        match self.publisher.hand_off(topic, partition, offset, TIMEOUT) {
            Ok(()) => tracing::info!(
                topic,
                partition,
                offset,
                "distributed: input partition handed off"
            ),
            // The next holder starts from the group's last commit: it may read again
            // what was processed here (at-least-once), nothing is lost.
            Err(e) => tracing::warn!(
                topic,
                partition,
                offset,
                "distributed: handoff not recorded ({e}); the next holder starts from the last commit"
            ),
        }
    }

    /// The furthest offset each input partition was handed off at, as the status topic
    /// says once read to its current end (waits for that, up to a few seconds).
    pub fn handoffs(&self) -> BTreeMap<(String, i32), i64> {
        const SYNC: Duration = Duration::from_secs(5);
        match self.publisher.ends(SYNC) {
            Ok(ends) => {
                if !self.follower.wait_read_to(&ends, SYNC) {
                    tracing::warn!(
                        "distributed: the status topic was not read to its end within {SYNC:?}; a handoff may be missed (the partition is then read from its last commit)"
                    );
                }
            }
            Err(e) => tracing::warn!("distributed: cannot read where the status topic ends: {e}"),
        }
        self.follower.view().handoffs
    }

    /// Some instance recorded this partition done.
    pub fn is_done(&self, topic: &str, partition: i32) -> bool {
        self.follower
            .view()
            .done
            .contains(&(topic.to_string(), partition))
    }

    /// Every partition of every input and repartition topic is done (a bounded run is
    /// over everywhere).
    ///
    /// While not, says every [`WAITING_LOG_EVERY`] (at info level) which partitions are
    /// not done yet.
    pub fn application_done(&self) -> bool {
        if self.topics.inputs.is_empty() {
            return false;
        }
        let view = self.follower.view();
        let topics = || self.topics.inputs.iter().chain(&self.topics.repartition);
        if topics().all(|(t, n)| view.all_done(t, *n)) {
            return true;
        }
        let mut last = lock(&self.waiting_logged);
        if last.is_none_or(|at| at.elapsed() >= WAITING_LOG_EVERY) {
            *last = Some(std::time::Instant::now());
            let missing: Vec<String> = topics()
                .flat_map(|(t, n)| (0..*n).map(move |p| (t, p)))
                .filter(|(t, p)| !view.done.contains(&(t.to_string(), *p)))
                .map(|(t, p)| format!("{t}[{p}]"))
                .collect();
            tracing::info!(
                not_done = missing.len(),
                "distributed: waiting for the application to end; partitions not done: {}",
                missing.join(" ")
            );
        }
        false
    }

    /// Stops the run with this error (a partition that cannot be restored).
    pub fn set_fatal(&self, msg: String) {
        tracing::error!("{msg}");
        lock(&self.fatal).get_or_insert(msg);
    }

    pub fn fatal(&self) -> Option<String> {
        lock(&self.fatal).clone()
    }

    pub fn set_state(&self, s: InstanceState) {
        *lock(&self.state) = s;
    }

    /// This instance's status now.
    fn status(&self, positions: &mut Positions) -> InstanceStatus {
        let mut s = InstanceStatus::new(&self.id.application, &self.id.instance_id);
        s.state = *lock(&self.state);
        s.http = lock(&self.http).clone();
        let held: Vec<((String, i32), Held)> = lock(&self.held)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((topic, partition), h) in held {
            let (position, end) = positions.sample(self, &topic, partition, h.group.as_deref());
            s.partitions.push(PartitionStatus {
                topic,
                partition,
                role: h.role,
                position,
                end,
            });
        }
        s
    }

    /// Publishes a last status (stopped) and the leave record; stops the status thread.
    pub fn leave(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = lock(&self.heartbeat).take() {
            let _ = h.join();
        }
        self.set_state(InstanceState::Stopped);
        lock(&self.held).clear();
        let mut positions = Positions::default();
        let _ = self.publisher.publish(&self.status(&mut positions));
        if let Err(e) = self.publisher.leave(TIMEOUT) {
            tracing::warn!("distributed: could not publish the leave record: {e}");
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Consumers that read committed offsets and watermarks, one per group.
#[derive(Default)]
struct Positions {
    consumers: HashMap<String, BaseConsumer>,
}

impl Positions {
    fn consumer(&mut self, inst: &Instance, group: &str) -> Option<&BaseConsumer> {
        if !self.consumers.contains_key(group) {
            let mut cc = client_config(&inst.id.brokers, &inst.id.properties);
            cc.set("group.id", group)
                .set("enable.auto.commit", "false")
                .set("allow.auto.create.topics", "false");
            let c: BaseConsumer = cc.create().ok()?;
            self.consumers.insert(group.to_string(), c);
        }
        self.consumers.get(group)
    }

    /// (committed offset of the group or -1, high watermark or -1).
    fn sample(
        &mut self,
        inst: &Instance,
        topic: &str,
        partition: i32,
        group: Option<&str>,
    ) -> (i64, i64) {
        let wait = Duration::from_millis(500);
        let key = group.unwrap_or("squall-status").to_string();
        let Some(c) = self.consumer(inst, &key) else {
            return (-1, -1);
        };
        let end = c
            .fetch_watermarks(topic, partition, wait)
            .map_or(-1, |(_, high)| high);
        let position = match group {
            None => end,
            Some(_) => {
                let mut tpl = TopicPartitionList::new();
                let _ = tpl.add_partition(topic, partition);
                c.committed_offsets(tpl, wait)
                    .ok()
                    .and_then(|t| t.elements().first().map(|e| e.offset()))
                    .and_then(|o| match o {
                        Offset::Offset(n) => Some(n),
                        _ => None,
                    })
                    .unwrap_or(-1)
            }
        };
        (position, end)
    }
}

fn heartbeat(inst: std::sync::Weak<Instance>, stop: Arc<AtomicBool>) {
    let mut positions = Positions::default();
    while !stop.load(Ordering::SeqCst) {
        let Some(i) = inst.upgrade() else { return };
        let started = now_ms();
        let status = i.status(&mut positions);
        let _ = i.publisher.publish(&status);
        drop(i);
        let spent = Duration::from_millis(now_ms().saturating_sub(started));
        let mut left = STATUS_EVERY.saturating_sub(spent);
        while !left.is_zero() && !stop.load(Ordering::SeqCst) {
            let step = left.min(Duration::from_millis(50));
            std::thread::sleep(step);
            left -= step;
        }
    }
}
