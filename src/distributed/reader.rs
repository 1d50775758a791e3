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
        tracing::info!(
            topic = %tp.topic,
            partition = p,
            records = restored.records,
            offset,
            epoch = restored.next_epoch,
            "distributed: partition restored from its changelog"
        );
        let mut st = lock(&self.st);
        let set: BTreeSet<(String, i32, i32)> = ends
            .iter()
            .map(|m| (m.topic.clone(), m.partition, m.of))
            .collect();
        let complete = self.complete(Some(&set));
        st.ends.insert(p, set);
        st.ending.remove(&p);
        let done = complete && self.instance.is_done(&tp.topic, p);
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
        // A partition whose input ended but whose end did not get through: read its last
        // marker again, so it ends again.
        let start = if complete && !done {
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
                // Ended and its end got through already (this holder restored a state
                // from before it): nothing to end again.
                let through = complete
                    && !st.ending.contains_key(&p)
                    && self.instance.is_done(&self.spec.topic, p);
                let ev = if through {
                    event::MARKED
                } else if complete && !st.ending.contains_key(&p) {
                    st.ending.insert(p, r.offset);
                    event::ENDED
                } else if complete {
                    return Some(Decoded::Skip);
                } else {
                    event::MARKED
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
