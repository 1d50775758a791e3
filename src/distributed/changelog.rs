//! Changelog topics: the state of each partition behind a distributed input, as
//! snapshots, so that the instance that takes a partition over restores it.
//!
//! A record of partition `p` of `<application>-<bolt>-changelog` is the whole state of
//! the bolt for partition `p` of its repartition topic (its value: what
//! [`Bolt::snapshot`](crate::component::Bolt::snapshot) returned), with two headers: the
//! `squall-offset` of the last input record of partition `p` the state contains, and the
//! `squall-epoch` of the instance that wrote it. An instance that is given `p` reads the
//! partition to its end, keeps the record of the highest epoch (the latest one of that
//! epoch), writes a claim with the next epoch, and then reads the input from just after
//! that record's offset. So a snapshot written late by the partition's previous holder
//! (lower epoch) never wins over its new holder's, and the state and the input position
//! always move together: no input record is counted twice or lost by a move.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use crate::distributed::wire::EndMarker;
use crate::kafka::client::client_config;

const EPOCH: &str = "squall-epoch";
const OFFSET: &str = "squall-offset";
const ENDS: &str = "squall-ends";

#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    #[error("changelog {topic}[{partition}]: {why}")]
    Read {
        topic: String,
        partition: i32,
        why: String,
    },
    #[error("changelog {topic}: cannot create a producer for {brokers}: {why}")]
    Producer {
        topic: String,
        brokers: String,
        why: String,
    },
    #[error("changelog {topic}[{partition}]: write failed: {why}")]
    Write {
        topic: String,
        partition: i32,
        why: String,
    },
}

/// The state of one partition at one input offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub epoch: u64,
    /// The last input offset whose record the state contains (-1: none).
    pub offset: i64,
    /// The end markers read from the input partition up to `offset`.
    pub ends: Vec<EndMarker>,
    /// What the bolt's `snapshot` returned (empty: a bolt that keeps no state).
    pub state: Vec<u8>,
}

/// What a restore found.
#[derive(Debug, Default)]
pub struct Restored {
    pub snapshot: Option<Snapshot>,
    /// The epoch the new holder writes with.
    pub next_epoch: u64,
    /// Records read.
    pub records: u64,
}

fn header<'a>(h: Option<&'a rdkafka::message::BorrowedHeaders>, name: &str) -> Option<&'a [u8]> {
    h?.iter().find(|x| x.key == name).and_then(|x| x.value)
}

fn header_i64(h: Option<&rdkafka::message::BorrowedHeaders>, name: &str) -> Option<i64> {
    std::str::from_utf8(header(h, name)?).ok()?.parse().ok()
}

/// Reads the last record of partition `partition` of `topic` (the state the partition's
/// next holder starts from).
pub fn restore(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<Restored, ChangelogError> {
    let err = |why: String| ChangelogError::Read {
        topic: topic.to_string(),
        partition,
        why,
    };
    let mut cc = client_config(brokers, properties);
    cc.set("group.id", "squall-changelog-restore")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false");
    let c: BaseConsumer = cc.create().map_err(|e| err(e.to_string()))?;
    let (low, high) = c
        .fetch_watermarks(topic, partition, timeout)
        .map_err(|e| err(format!("watermarks: {e}")))?;
    if high <= low {
        return Ok(Restored {
            snapshot: None,
            next_epoch: 1,
            records: 0,
        });
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(high - 1))
        .map_err(|e| err(e.to_string()))?;
    c.assign(&tpl).map_err(|e| err(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    loop {
        if Instant::now() > deadline {
            return Err(err(format!(
                "its last record (offset {}) not read within {timeout:?}",
                high - 1
            )));
        }
        let Some(m) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.map_err(|e| err(e.to_string()))?;
        let h = m.headers();
        let (Some(epoch), Some(offset)) = (header_i64(h, EPOCH), header_i64(h, OFFSET)) else {
            return Err(err(format!(
                "offset {}: not a squall snapshot (no {EPOCH}/{OFFSET} headers)",
                m.offset()
            )));
        };
        let ends = match header(h, ENDS) {
            None => Vec::new(),
            Some(j) => serde_json::from_slice(j)
                .map_err(|e| err(format!("offset {}: bad end markers: {e}", m.offset())))?,
        };
        let epoch = epoch.max(0) as u64;
        return Ok(Restored {
            snapshot: Some(Snapshot {
                epoch,
                offset,
                ends,
                state: m.payload().unwrap_or_default().to_vec(),
            }),
            next_epoch: epoch + 1,
            records: 1,
        });
    }
}

/// (delivery id, outcome).
type Report = (u64, Result<(), String>);

struct Reports(Mutex<Sender<Report>>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, id: Box<u64>) {
        let r = result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string());
        let _ = crate::sync::lock(&self.0).send((*id, r));
    }
}

/// Writes snapshots; their confirmations come back through [`ChangelogWriter::confirmed`].
pub struct ChangelogWriter {
    topic: String,
    producer: ThreadedProducer<Reports>,
    reports: Receiver<Report>,
    next_id: u64,
}

impl ChangelogWriter {
    pub fn new(
        brokers: &str,
        properties: &BTreeMap<String, String>,
        topic: &str,
    ) -> Result<Self, ChangelogError> {
        let (tx, reports) = channel();
        let mut cc = client_config(brokers, properties);
        cc.set("enable.idempotence", "true")
            .set("linger.ms", "1")
            .set("message.timeout.ms", "30000");
        let producer = cc
            .create_with_context(Reports(Mutex::new(tx)))
            .map_err(|e| ChangelogError::Producer {
                topic: topic.into(),
                brokers: brokers.into(),
                why: e.to_string(),
            })?;
        Ok(ChangelogWriter {
            topic: topic.to_string(),
            producer,
            reports,
            next_id: 0,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends a snapshot of `partition`; returns its delivery id.
    pub fn send(&mut self, partition: i32, s: &Snapshot) -> Result<u64, ChangelogError> {
        let id = self.next_id;
        self.next_id += 1;
        let (epoch, offset) = (s.epoch.to_string(), s.offset.to_string());
        let ends = serde_json::to_vec(&s.ends).unwrap_or_else(|_| b"[]".to_vec());
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: ENDS,
                value: Some(ends.as_slice()),
            })
            .insert(Header {
                key: EPOCH,
                value: Some(epoch.as_bytes()),
            })
            .insert(Header {
                key: OFFSET,
                value: Some(offset.as_bytes()),
            });
        let key = partition.to_string();
        let mut record: BaseRecord<'_, str, [u8], Box<u64>> =
            BaseRecord::with_opaque_to(&self.topic, Box::new(id))
                .key(key.as_str())
                .partition(partition)
                .payload(s.state.as_slice())
                .headers(headers);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(id),
                Err((e, r)) if Instant::now() < deadline && is_queue_full(&e) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    return Err(ChangelogError::Write {
                        topic: self.topic.clone(),
                        partition,
                        why: e.to_string(),
                    });
                }
            }
        }
    }

    /// Sends a snapshot and waits for the broker's confirmation.
    pub fn send_and_wait(
        &mut self,
        partition: i32,
        s: &Snapshot,
        timeout: Duration,
    ) -> Result<Vec<Report>, ChangelogError> {
        let id = self.send(partition, s)?;
        let deadline = Instant::now() + timeout;
        let mut others = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .reports
                .recv_timeout(left.max(Duration::from_millis(1)))
            {
                Ok((i, r)) if i == id => {
                    return r.map(|()| others).map_err(|why| ChangelogError::Write {
                        topic: self.topic.clone(),
                        partition,
                        why,
                    });
                }
                Ok(other) => others.push(other),
                Err(_) if Instant::now() < deadline => {}
                Err(_) => {
                    return Err(ChangelogError::Write {
                        topic: self.topic.clone(),
                        partition,
                        why: format!("not confirmed within {timeout:?}"),
                    });
                }
            }
        }
    }

    /// Confirmations received so far.
    pub fn confirmed(&self) -> Vec<Report> {
        self.reports.try_iter().collect()
    }

    /// Waits up to `timeout` for every snapshot sent to be confirmed; returns the reports.
    pub fn flush(&self, timeout: Duration) -> Vec<Report> {
        let _ = self.producer.flush(timeout);
        self.confirmed()
    }
}

fn is_queue_full(e: &rdkafka::error::KafkaError) -> bool {
    matches!(
        e,
        rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::mock::DevBroker;

    fn snap(epoch: u64, offset: i64, state: &str) -> Snapshot {
        Snapshot {
            epoch,
            offset,
            ends: vec![EndMarker {
                topic: "tweets".into(),
                partition: offset as i32,
                of: 6,
            }],
            state: state.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_last_snapshot_is_restored_and_only_it_is_read() {
        let b = DevBroker::start(1).unwrap();
        b.create_topic("cl", 2).unwrap();
        let props = BTreeMap::new();
        let t = Duration::from_secs(10);
        let none = restore(b.bootstrap_servers(), &props, "cl", 0, t).unwrap();
        assert!(none.snapshot.is_none());
        assert_eq!(none.next_epoch, 1);
        let mut w = ChangelogWriter::new(b.bootstrap_servers(), &props, "cl").unwrap();
        for s in [snap(1, 5, "a"), snap(1, 9, "b"), snap(2, 12, "c")] {
            w.send_and_wait(0, &s, t).unwrap();
        }
        let r = restore(b.bootstrap_servers(), &props, "cl", 0, t).unwrap();
        assert_eq!(r.snapshot, Some(snap(2, 12, "c")));
        assert_eq!((r.next_epoch, r.records), (3, 1));
        // Partition 1 is another partition's state.
        assert!(
            restore(b.bootstrap_servers(), &props, "cl", 1, t)
                .unwrap()
                .snapshot
                .is_none()
        );
    }
}
