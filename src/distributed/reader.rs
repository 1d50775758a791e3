//! The two sides of a distributed hop that read Kafka: the hooks of a repartition
//! topic's reader (a Kafka spout in the application's group for that topic), and those of
//! the application's Kafka inputs.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::component::OutputDeclarer;
use crate::data::tuple::{DEFAULT_STREAM, Fields, Value, Values};
use crate::distributed::changelog::restore;
use crate::distributed::instance::Instance;
use crate::distributed::names::CONTROL_FIELDS;
use crate::distributed::names::CONTROL_STREAM;
use crate::distributed::partitioned::{event, marker_value};
use crate::distributed::status::Role;
use crate::distributed::wire::{WireRecord, decode};
use crate::kafka::TopicPartition;
use crate::kafka::spout::hooks::{Decoded, SpoutHooks};
use crate::kafka::spout::record::Record;
use crate::sync::lock;

/// How long restoring one partition from its changelog may take.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a reader reads and where its partitions' state lives.
#[derive(Clone, Debug)]
pub struct ReaderSpec {
    pub topic: String,
    pub partitions: i32,
    pub group: String,
    /// The fields of the tuples (without the two the reader appends).
    pub fields: Vec<String>,
    /// The topics whose end markers complete a partition.
    pub upstream: Vec<String>,
    pub changelog: String,
}

#[derive(Default)]
struct ReaderState {
    control: VecDeque<(String, Values)>,
    /// End markers seen per partition (restored ones included).
    ends: HashMap<i32, BTreeSet<(String, i32, i32)>>,
    /// The offset of the marker that completed a partition (its ENDED event).
    ending: HashMap<i32, i64>,
}

pub struct ReaderHooks {
    spec: ReaderSpec,
    instance: Arc<Instance>,
    st: Mutex<ReaderState>,
}

impl ReaderHooks {
    pub fn new(spec: ReaderSpec, instance: Arc<Instance>) -> Self {
        ReaderHooks {
            spec,
            instance,
            st: Mutex::new(ReaderState::default()),
        }
    }

    /// Every upstream topic has sent the end markers of all its partitions.
    fn complete(&self, ends: Option<&BTreeSet<(String, i32, i32)>>) -> bool {
        let Some(ends) = ends else { return false };
        self.spec.upstream.iter().all(|u| {
            let seen: Vec<&(String, i32, i32)> = ends.iter().filter(|(t, _, _)| t == u).collect();
            let Some(of) = seen.iter().map(|(_, _, of)| *of).max() else {
                return false;
            };
            (0..of).all(|p| seen.iter().any(|(_, q, _)| *q == p))
        })
    }

    /// The ENDED event of record `r` emitted again (see `decode`).
    fn end_again(r: &Record, data: Value) -> Decoded {
        tracing::info!(
            topic = %r.tp.topic,
            partition = r.tp.partition,
            offset = r.offset,
            "distributed: ending the partition again"
        );
        let (stream, values) = Self::control(r.tp.partition, event::ENDED, r.offset, data);
        Decoded::Emit { stream, values }
    }

    fn control(p: i32, ev: &str, offset: i64, data: Value) -> (String, Values) {
        let v: Values = [
            Value::from(ev),
            Value::Int(i64::from(p)),
            Value::Int(offset),
            data,
        ]
        .into_iter()
        .collect();
        (CONTROL_STREAM.to_string(), v)
    }
}

impl SpoutHooks for ReaderHooks {
    fn declare(&self, out: &mut OutputDeclarer) {
        let mut names: Vec<&str> = self.spec.fields.iter().map(String::as_str).collect();
        names.push(crate::distributed::names::IN_PARTITION);
        names.push(crate::distributed::names::IN_OFFSET);
        out.declare(Fields::new(names));
        out.declare_stream(CONTROL_STREAM, Fields::new(CONTROL_FIELDS));
    }

    fn assigned(&self, tp: &TopicPartition) -> Option<i64> {
        let p = tp.partition;
        self.instance
            .hold(&tp.topic, p, Role::Repartition, Some(&self.spec.group));
        self.instance
            .hold(&self.spec.changelog, p, Role::Changelog, None);
        let id = &self.instance.id;
        let restored = match restore(
            &id.brokers,
            &id.properties,
            &self.spec.changelog,
            p,
            RESTORE_TIMEOUT,
        ) {
            Ok(r) => r,
            Err(e) => {
                self.instance
                    .set_fatal(format!("cannot take partition {p} of {}: {e}", tp.topic));
                return None;
            }
        };
        let (offset, state, ends) = match restored.snapshot {
            Some(s) => (s.offset, Some(s.state), s.ends),
            None => (-1, None, Vec::new()),
        };
        let mut st = lock(&self.st);
        let set: BTreeSet<(String, i32, i32)> = ends
            .iter()
            .map(|m| (m.topic.clone(), m.partition, m.of))
            .collect();
        let complete = self.complete(Some(&set));
        st.ends.insert(p, set);
        st.ending.remove(&p);
        let done = complete && self.instance.is_done(&tp.topic, p);
        tracing::info!(
            topic = %tp.topic,
            partition = p,
            records = restored.records,
            offset,
            epoch = restored.next_epoch,
            end_markers = ends.len(),
            complete,
            done,
            "distributed: partition restored from its changelog"
        );
        let ends_value = Value::List(ends.iter().map(marker_value).collect::<Vec<_>>().into());
        let data = Value::List(
            vec![
                Value::Int(restored.next_epoch as i64),
                state.map_or(Value::Null, |s| Value::Bytes(s.into())),
                ends_value,
                Value::Bool(done),
            ]
            .into(),
        );
        st.control
            .push_back(Self::control(p, event::ASSIGNED, offset, data));
        // A partition whose input ended but whose end did not get through: it is read
        // again from the snapshot's last record, which ends it again whatever it is (the
        // marker that completed it, or a record that came after that marker: a partial
        // written late by an upstream partition's holder).
        let start = if complete && !done {
            st.ending.insert(p, offset);
            offset
        } else {
            offset + 1
        };
        Some(start.max(0))
    }

    fn revoked(&self, tp: &TopicPartition) {
        self.instance.release(&tp.topic, tp.partition);
        self.instance.release(&self.spec.changelog, tp.partition);
        let mut st = lock(&self.st);
        st.ends.remove(&tp.partition);
        st.ending.remove(&tp.partition);
        st.control
            .push_back(Self::control(tp.partition, event::REVOKED, -1, Value::Null));
    }

    fn decode(&self, r: &Record) -> Option<Decoded> {
        let p = r.tp.partition;
        let payload = r.payload.as_deref().unwrap_or_default();
        Some(match decode(payload, self.spec.fields.len()) {
            // The record a restored partition restarts at (see `assigned`): its effect
            // is in the restored state; it ends the partition.
            Ok(WireRecord::Tuple(_)) if lock(&self.st).ending.get(&p) == Some(&r.offset) => {
                Self::end_again(r, Value::Null)
            }
            Ok(WireRecord::Tuple(mut v)) => {
                v.push(Value::Int(i64::from(p)));
                v.push(Value::Int(r.offset));
                Decoded::Emit {
                    stream: DEFAULT_STREAM.to_string(),
                    values: v,
                }
            }
            Ok(WireRecord::End(m)) => {
                let mut st = lock(&self.st);
                let set = st.ends.entry(p).or_default();
                set.insert((m.topic.clone(), m.partition, m.of));
                let complete = self.complete(st.ends.get(&p));
                let ending = st.ending.get(&p).copied();
                let ev = if !complete {
                    event::MARKED
                } else if let Some(o) = ending {
                    if o != r.offset {
                        // A marker after the one that completed the partition (a repeat).
                        return Some(Decoded::Skip);
                    }
                    // The record that completed the partition, emitted again: its tree
                    // failed (a timeout, an error downstream: what the end emitted may be
                    // lost), or the partition restarts there after a restore. It ends the
                    // partition again, and its ack records it done; skipped, nothing would
                    // (the run would never end).
                    drop(st);
                    return Some(Self::end_again(r, marker_value(&m)));
                } else if self.instance.is_done(&self.spec.topic, p) {
                    // Ended and its end got through already (this holder restored a state
                    // from before it): nothing to end again.
                    event::MARKED
                } else {
                    st.ending.insert(p, r.offset);
                    tracing::info!(
                        topic = %r.tp.topic,
                        partition = p,
                        offset = r.offset,
                        "distributed: every end marker read, ending the partition"
                    );
                    event::ENDED
                };
                let (stream, values) = Self::control(p, ev, r.offset, marker_value(&m));
                Decoded::Emit { stream, values }
            }
            Err(e) => Decoded::Bad(format!("{}[{p}] offset {}: {e}", r.tp.topic, r.offset)),
        })
    }

    fn take_control(&self) -> Vec<(String, Values)> {
        lock(&self.st).control.drain(..).collect()
    }

    fn acked(&self, r: &Record) {
        let p = r.tp.partition;
        let ended = lock(&self.st).ending.get(&p) == Some(&r.offset);
        if !ended {
            return;
        }
        self.instance
            .partition_done_in_background(&self.spec.topic, p, self.spec.partitions);
    }

    fn partition_ended(&self, _tp: &TopicPartition) {}

    fn may_finish(&self) -> bool {
        self.instance.application_done()
    }

    fn fatal(&self) -> Option<String> {
        self.instance.fatal()
    }
}

/// The hooks of a Kafka spout ahead of the first distributed input: it keeps its
/// format; when one of its partitions reaches its end (a bounded run), the instance
/// writes the partition's end markers downstream; it finishes when the application is
/// done (until then it stays in its group, to take over a dead instance's partitions).
pub struct InputHooks {
    pub instance: Arc<Instance>,
    /// Its fields (those of its format).
    pub fields: Fields,
    pub group: String,
    /// Partition counts of its topics.
    pub partitions: BTreeMap<String, i32>,
}

impl SpoutHooks for InputHooks {
    fn declare(&self, out: &mut OutputDeclarer) {
        out.declare(self.fields.clone());
    }

    fn assigned(&self, tp: &TopicPartition) -> Option<i64> {
        self.instance
            .hold(&tp.topic, tp.partition, Role::Input, Some(&self.group));
        None
    }

    fn revoked(&self, tp: &TopicPartition) {
        self.instance.release(&tp.topic, tp.partition);
    }

    /// An input partition that moves is drained and handed off: its next holder reads
    /// nothing this instance already processed (a rebalance counts nothing twice).
    fn hands_off(&self) -> bool {
        true
    }

    fn handed_off(&self, tp: &TopicPartition, offset: i64) {
        self.instance.hand_off(&tp.topic, tp.partition, offset);
    }

    fn handoffs(&self) -> BTreeMap<(String, i32), i64> {
        self.instance.handoffs()
    }

    fn decode(&self, _r: &Record) -> Option<Decoded> {
        None
    }

    fn take_control(&self) -> Vec<(String, Values)> {
        Vec::new()
    }

    fn acked(&self, _r: &Record) {}

    /// Off the spout's thread (partitions that end together are reported together).
    fn partition_ended(&self, tp: &TopicPartition) {
        tracing::info!(topic = %tp.topic, partition = tp.partition, "distributed: input partition at its end");
        let of = self.partitions.get(&*tp.topic).copied().unwrap_or(1);
        self.instance
            .partition_done_in_background(&tp.topic, tp.partition, of);
    }

    /// Asked once this spout's own partitions are done: the instance is finishing.
    fn may_finish(&self) -> bool {
        self.instance
            .set_state(crate::distributed::status::InstanceState::Finishing);
        self.instance.application_done()
    }

    fn fatal(&self) -> Option<String> {
        self.instance.fatal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::changelog::{ChangelogWriter, Snapshot};
    use crate::distributed::instance::{Identity, Topics};
    use crate::distributed::status::status_topic;
    use crate::distributed::wire::{EndMarker, encode_marker, encode_values};
    use crate::kafka::mock::DevBroker;
    use std::time::Instant;

    /// The event of a decoded control record, or what the record became otherwise.
    fn event_of(d: Option<Decoded>) -> String {
        match d {
            Some(Decoded::Emit { stream, values }) if stream == CONTROL_STREAM => values
                .first()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            Some(Decoded::Emit { stream, .. }) => format!("a tuple on {stream}"),
            Some(Decoded::Skip) => "skipped".into(),
            Some(Decoded::Bad(why)) => format!("bad: {why}"),
            None => "nothing".into(),
        }
    }

    const INPUT: &str = "rp-in";

    /// A broker with the topics of a reader of `rp-<x>-repartition` (one partition, fed
    /// by the one partition of `rp-in`), an instance and the reader's hooks.
    fn setup(b: &DevBroker, x: &str) -> (Arc<Instance>, ReaderHooks, TopicPartition) {
        let app = format!("rp{x}");
        let topic = format!("{app}-x-repartition");
        let changelog = format!("{app}-x-changelog");
        for t in [&status_topic(&app), INPUT, &topic, &changelog] {
            b.create_topic(t, 1).unwrap();
        }
        let inst = Instance::start(
            Identity {
                application: app.clone(),
                instance_id: "a".into(),
                brokers: b.bootstrap_servers().to_string(),
                properties: BTreeMap::new(),
            },
            Topics {
                inputs: vec![(INPUT.into(), 1)],
                repartition: vec![(topic.clone(), 1)],
                downstream: HashMap::new(),
            },
        )
        .unwrap();
        let hooks = ReaderHooks::new(
            ReaderSpec {
                topic: topic.clone(),
                partitions: 1,
                group: format!("{app}-x"),
                fields: vec!["word".into()],
                upstream: vec![INPUT.into()],
                changelog,
            },
            inst.clone(),
        );
        (inst, hooks, TopicPartition::new(topic, 0))
    }

    fn marker() -> EndMarker {
        EndMarker {
            topic: INPUT.into(),
            partition: 0,
            of: 1,
        }
    }

    fn record(tp: &TopicPartition, offset: i64, payload: Vec<u8>) -> Record {
        Record {
            tp: tp.clone(),
            offset,
            key: None,
            payload: Some(payload),
            timestamp: None,
            oversized: None,
        }
    }

    fn tuple(tp: &TopicPartition, offset: i64) -> Record {
        record(tp, offset, encode_values([Value::from("#x")].iter()))
    }

    /// Waits until the instance has read the partition's done record.
    fn wait_done(inst: &Instance, tp: &TopicPartition) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !inst.is_done(&tp.topic, tp.partition) {
            assert!(
                Instant::now() < deadline,
                "the partition was not recorded done: {:?}",
                inst.fatal()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The record that completes a partition fails downstream and is replayed: it ends
    /// the partition again, and once acked the partition is recorded done (skipped, it
    /// was never acked: the partition never done, the run never ended).
    #[test]
    fn a_replayed_end_ends_the_partition_again_and_its_ack_records_it_done() {
        let b = DevBroker::start(1).unwrap();
        let (inst, hooks, tp) = setup(&b, "1");
        assert_eq!(hooks.assigned(&tp), Some(0), "{:?}", inst.fatal());
        let end = record(&tp, 5, encode_marker(&marker()));
        assert_eq!(event_of(hooks.decode(&end)), event::ENDED);
        // Its tree failed: the spout emits the record again.
        assert_eq!(
            event_of(hooks.decode(&end)),
            event::ENDED,
            "the replayed end"
        );
        // A repeat of the marker after it is nothing to end.
        assert_eq!(
            event_of(hooks.decode(&record(&tp, 6, encode_marker(&marker())))),
            "skipped"
        );
        assert!(!inst.is_done(&tp.topic, 0));
        hooks.acked(&end);
        wait_done(&inst, &tp);
    }

    /// A partition restored complete but not done, from a snapshot whose last record is
    /// not the marker that completed it (a partial written late, after that marker):
    /// the record it restarts at ends it, and its ack records it done.
    #[test]
    fn a_partition_restored_complete_after_its_last_marker_ends_at_its_last_record() {
        let b = DevBroker::start(1).unwrap();
        let (inst, hooks, tp) = setup(&b, "2");
        let mut w = ChangelogWriter::new(
            b.bootstrap_servers(),
            &BTreeMap::new(),
            &hooks.spec.changelog,
        )
        .unwrap();
        let snap = Snapshot {
            epoch: 1,
            offset: 7,
            ends: vec![marker()],
            state: Vec::new(),
        };
        let reports = w.send_and_wait(0, &snap, Duration::from_secs(20)).unwrap();
        assert!(reports.iter().all(|(_, r)| r.is_ok()), "{reports:?}");
        assert_eq!(hooks.assigned(&tp), Some(7), "{:?}", inst.fatal());
        let last = tuple(&tp, 7);
        assert_eq!(event_of(hooks.decode(&last)), event::ENDED);
        assert_eq!(
            event_of(hooks.decode(&tuple(&tp, 8))),
            format!("a tuple on {DEFAULT_STREAM}")
        );
        hooks.acked(&last);
        wait_done(&inst, &tp);
    }
}
