//! From the topology a user declared to the one an instance runs: each distributed input
//! becomes a writer (a Kafka sink into the input's repartition topic, on the sending
//! side) and a reader (a Kafka spout of the application's group for that topic, on the
//! receiving side); the bolts behind a reader are wrapped per partition; Kafka inputs
//! learn when their partitions end.
//!
//! The *owner* of a component is the bolt whose distributed input it is behind (none:
//! ahead of every distributed input). Every input of a component must come from
//! components of one owner (a bolt cannot mix tuples from both sides of a hop).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::component::{BoltFactory, Extension, SourceLog};
use crate::config::Config;
use crate::data::hash::hash_fields;
use crate::data::tuple::{DEFAULT_STREAM, Tuple};
use crate::distributed::instance::{Identity, Instance, Topics};
use crate::distributed::names::{
    CONTROL_STREAM, IN_PARTITION, ORIGIN_PARTITION, changelog_topic, reader_component,
    reader_group, repartition_topic, writer_component,
};
use crate::distributed::partitioned::{Changelog, PartitionedBolt, Wrapping};
use crate::distributed::reader::{InputHooks, ReaderHooks, ReaderSpec};
use crate::distributed::status::status_topic;
use crate::distributed::wire::encode_values;
use crate::kafka::admin::{TopicSpec, ensure_topics, partition_count};
use crate::kafka::sink::{EncodedRecord, Encoder, KafkaSinkConfig};
use crate::kafka::spout::{HooksExtension, KafkaSpoutConfig};
use crate::topology::Topology;
use crate::topology::{ComponentDef, ComponentKind, Grouping, Input, StreamRef, TopologyBuilder};

/// How long creating or looking up topics may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    #[error("{0}")]
    Topology(String),
    #[error(
        "distributed inputs run in event mode only (micro-batch mode across instances is not supported yet)"
    )]
    Mode,
    #[error(
        "spout `{0}` assigns event time, which distributed inputs do not carry across processes yet (see docs/event-time.md)"
    )]
    EventTime(String),
    #[error("{0}")]
    Kafka(String),
}

/// Who runs the application and where its Kafka is.
#[derive(Clone, Debug)]
pub struct Distribution {
    pub application: String,
    pub instance_id: String,
    pub brokers: String,
    pub properties: BTreeMap<String, String>,
    pub partitions: i32,
    pub session_timeout: Duration,
}

impl Distribution {
    /// From the run's config, the command line (`--instance-id`, `--brokers`) and the
    /// topology: the application id defaults to the topology's name, the instance id to
    /// `hostname-pid`, the brokers to those of the first Kafka spout.
    pub fn of(
        topology: &Topology,
        config: &Config,
        instance_id: Option<&str>,
        brokers: Option<&str>,
    ) -> Distribution {
        let first_log = topology.components().iter().find_map(|c| match &c.kind {
            ComponentKind::Spout(f) => f().source_log(),
            ComponentKind::Bolt(_) => None,
        });
        let brokers = brokers
            .map(str::to_string)
            .or(first_log.map(|l| l.brokers))
            .unwrap_or_else(|| crate::kafka::client::DEFAULT_BROKERS.to_string());
        Distribution {
            application: config
                .application_id
                .clone()
                .unwrap_or_else(|| topology.name().to_string()),
            instance_id: instance_id.map_or_else(default_instance_id, str::to_string),
            brokers,
            properties: BTreeMap::new(),
            partitions: config.repartition_partitions.max(1) as i32,
            session_timeout: config.session_timeout,
        }
    }
}

/// `hostname-pid`.
pub fn default_instance_id() -> String {
    format!(
        "{}-{}",
        crate::distributed::status::hostname(),
        std::process::id()
    )
}

/// The topology has an input that crosses processes.
pub fn is_distributed(t: &Topology) -> bool {
    t.components()
        .iter()
        .any(|c| c.inputs.iter().any(|i| i.distributed))
}

/// A bolt with a distributed input.
#[derive(Clone, Debug)]
struct Head {
    bolt: String,
    input: Input,
    topic: String,
    partitions: i32,
}

/// What the topology's shape says about its distribution.
struct Layout {
    /// Owner of each component (see the module documentation).
    owner: HashMap<String, Option<String>>,
    heads: Vec<Head>,
    /// Kafka spouts ahead of every distributed input.
    inputs: Vec<(String, SourceLog)>,
}

impl Layout {
    fn of(t: &Topology, d: &Distribution) -> Result<Layout, DistributedError> {
        let bad = |m: String| Err(DistributedError::Topology(m));
        let mut heads = Vec::new();
        for c in t.components() {
            let dist: Vec<&Input> = c.inputs.iter().filter(|i| i.distributed).collect();
            match dist.as_slice() {
                [] => {}
                [i] if c.inputs.len() == 1 => heads.push(Head {
                    bolt: c.name.clone(),
                    input: (*i).clone(),
                    topic: repartition_topic(&d.application, &c.name),
                    partitions: if i.grouping == Grouping::Global {
                        1
                    } else {
                        d.partitions
                    },
                }),
                _ => {
                    return bad(format!(
                        "bolt `{}`: a bolt with a distributed input takes no other input",
                        c.name
                    ));
                }
            }
        }
        // Owners, in an order where sources come first (the topology is acyclic).
        let mut owner: HashMap<String, Option<String>> = HashMap::new();
        let mut left: Vec<&ComponentDef> = t.components().iter().collect();
        while !left.is_empty() {
            let before = left.len();
            let mut i = 0;
            while i < left.len() {
                let c = left[i];
                let o = if c.is_spout() {
                    Some(None)
                } else if heads.iter().any(|h| h.bolt == c.name) {
                    Some(Some(c.name.clone()))
                } else if c
                    .inputs
                    .iter()
                    .all(|i| owner.contains_key(&i.source.component))
                {
                    let owners: Vec<&Option<String>> = c
                        .inputs
                        .iter()
                        .map(|i| &owner[&i.source.component])
                        .collect();
                    if owners.windows(2).any(|w| w[0] != w[1]) {
                        return bad(format!(
                            "bolt `{}` takes inputs from both sides of a distributed input",
                            c.name
                        ));
                    }
                    Some(owners.first().copied().cloned().flatten())
                } else {
                    None
                };
                match o {
                    Some(o) => {
                        owner.insert(c.name.clone(), o);
                        left.remove(i);
                    }
                    None => i += 1,
                }
            }
            if left.len() == before {
                return bad("the topology has a cycle".into());
            }
        }
        for c in t.components().iter().filter(|c| !c.is_spout()) {
            if owner[&c.name].is_none() {
                continue;
            }
            for i in c.inputs.iter().filter(|i| !i.distributed) {
                if matches!(i.grouping, Grouping::All | Grouping::Direct) {
                    return bad(format!(
                        "bolt `{}`: a `{}` grouping cannot be used behind a distributed input",
                        c.name,
                        i.grouping.name()
                    ));
                }
            }
        }
        let inputs = t
            .components()
            .iter()
            .filter(|c| owner[&c.name].is_none())
            .filter_map(|c| match &c.kind {
                ComponentKind::Spout(f) => Some((c.name.clone(), f().source_log()?)),
                ComponentKind::Bolt(_) => None,
            })
            .collect();
        Ok(Layout {
            owner,
            heads,
            inputs,
        })
    }

    fn head(&self, bolt: &str) -> Option<&Head> {
        self.heads.iter().find(|h| h.bolt == bolt)
    }

    /// The topics written by the components of `owner` (the end markers of what they
    /// read go there).
    fn written_by(&self, owner: &Option<String>) -> Vec<(String, i32)> {
        self.heads
            .iter()
            .filter(|h| &self.owner[&h.input.source.component] == owner)
            .map(|h| (h.topic.clone(), h.partitions))
            .collect()
    }

    /// The topics whose end markers complete a partition of `head`'s topic.
    fn upstream_of(&self, head: &Head) -> Vec<String> {
        match &self.owner[&head.input.source.component] {
            Some(o) => self
                .head(o)
                .map(|h| vec![h.topic.clone()])
                .unwrap_or_default(),
            None => self
                .inputs
                .iter()
                .flat_map(|(_, l)| l.topics.clone())
                .collect(),
        }
    }
}

/// Prepares this process to run its part of a distributed application: creates the
/// internal topics that are missing, starts the instance, and returns the topology it
/// runs.
pub fn prepare(
    t: &Topology,
    config: &Config,
    d: &Distribution,
) -> Result<(Topology, Arc<Instance>), DistributedError> {
    if config.mode != crate::config::Mode::Event {
        return Err(DistributedError::Mode);
    }
    if let Some(c) = t.components().iter().find(|c| c.event_time.is_some()) {
        return Err(DistributedError::EventTime(c.name.clone()));
    }
    let layout = Layout::of(t, d)?;
    let kafka = |e: &dyn std::fmt::Display| DistributedError::Kafka(e.to_string());
    let mut specs: Vec<TopicSpec> = vec![TopicSpec {
        name: status_topic(&d.application),
        partitions: 1,
    }];
    for h in &layout.heads {
        for name in [h.topic.clone(), changelog_topic(&d.application, &h.bolt)] {
            specs.push(TopicSpec {
                name,
                partitions: h.partitions,
            });
        }
    }
    ensure_topics(&d.brokers, &d.properties, &specs, ADMIN_TIMEOUT).map_err(|e| kafka(&e))?;
    let mut input_partitions: BTreeMap<String, i32> = BTreeMap::new();
    for (spout, log) in &layout.inputs {
        for topic in &log.topics {
            let n = partition_count(&log.brokers, &d.properties, topic, ADMIN_TIMEOUT)
                .map_err(|e| kafka(&e))?
                .ok_or_else(|| {
                    DistributedError::Kafka(format!(
                        "spout `{spout}`: topic `{topic}` does not exist at {}",
                        log.brokers
                    ))
                })?;
            input_partitions.insert(topic.clone(), n);
        }
    }
    let mut downstream: HashMap<String, Vec<(String, i32)>> = HashMap::new();
    for topic in input_partitions.keys() {
        downstream.insert(topic.clone(), layout.written_by(&None));
    }
    for h in &layout.heads {
        downstream.insert(h.topic.clone(), layout.written_by(&Some(h.bolt.clone())));
    }
    let bounded = layout.inputs.iter().all(|(_, l)| l.bounded) && !layout.inputs.is_empty();
    let topics = Topics {
        inputs: if bounded {
            input_partitions.clone().into_iter().collect()
        } else {
            Vec::new()
        },
        repartition: layout
            .heads
            .iter()
            .map(|h| (h.topic.clone(), h.partitions))
            .collect(),
        downstream,
    };
    let instance = Instance::start(
        Identity {
            application: d.application.clone(),
            instance_id: d.instance_id.clone(),
            brokers: d.brokers.clone(),
            properties: d.properties.clone(),
        },
        topics,
    )
    .map_err(|e| kafka(&e))?;
    let rewritten = rewrite(t, &layout, d, &instance, &input_partitions)?;
    Ok((rewritten, instance))
}

/// The partition a writer sends a tuple to.
fn writer_encoder(head: &Head, fields: &[String]) -> Result<Encoder, DistributedError> {
    let idx: Vec<usize> = match &head.input.grouping {
        Grouping::Fields(names) => names
            .iter()
            .map(|n| {
                fields.iter().position(|f| f == n).ok_or_else(|| {
                    DistributedError::Topology(format!(
                        "bolt `{}`: `{}` has no field `{n}`",
                        head.bolt, head.input.source
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    let keep: Vec<usize> = (0..fields.len())
        .filter(|&i| fields[i] != crate::distributed::names::IN_OFFSET)
        .collect();
    let partitions = head.partitions as u64;
    Ok(Arc::new(move |t: &Tuple| {
        let values = t.values();
        let partition = if idx.is_empty() {
            0
        } else {
            let v: crate::data::tuple::Values = values.iter().cloned().collect();
            (hash_fields(&v, &idx) % partitions) as i32
        };
        Ok(EncodedRecord {
            key: None,
            payload: encode_values(keep.iter().filter_map(|&i| values.get(i))),
            partition: Some(partition),
        })
    }))
}

/// The fields a writer sends (and its reader receives): the upstream's, the partition it
/// came from renamed, the offset left out.
fn wire_fields(fields: &[String]) -> Vec<String> {
    fields
        .iter()
        .filter(|f| f.as_str() != crate::distributed::names::IN_OFFSET)
        .map(|f| {
            if f == IN_PARTITION {
                ORIGIN_PARTITION.to_string()
            } else {
                f.clone()
            }
        })
        .collect()
}

fn rewrite(
    t: &Topology,
    layout: &Layout,
    d: &Distribution,
    instance: &Arc<Instance>,
    input_partitions: &BTreeMap<String, i32>,
) -> Result<Topology, DistributedError> {
    let wrapped = |name: &str| layout.owner.get(name).is_some_and(Option::is_some);
    // Components read by a wrapped bolt or a writer tag what they emit.
    let feeds_partitioned = |name: &str| {
        t.components().iter().any(|c| {
            c.inputs
                .iter()
                .any(|i| i.source.component == name && (i.distributed || wrapped(&c.name)))
        })
    };
    let wrapping = |c: &ComponentDef, f: &BoltFactory| {
        let head = layout.head(&c.name);
        let expected = head.and_then(|h| {
            let up = layout.owner[&h.input.source.component].as_ref()?;
            Some(layout.head(up)?.partitions as usize)
        });
        Wrapping {
            component: c.name.clone(),
            factory: f.clone(),
            changelog: head.map(|_| Changelog {
                brokers: d.brokers.clone(),
                properties: d.properties.clone(),
                topic: changelog_topic(&d.application, &c.name),
            }),
            tag: feeds_partitioned(&c.name),
            expected_partials: expected,
        }
    };
    // The fields of a component's stream as this instance runs it.
    let stream_fields = |src: &StreamRef| -> Vec<String> {
        let Some(c) = t.component(&src.component) else {
            return Vec::new();
        };
        let declared = match &c.kind {
            ComponentKind::Bolt(f) if wrapped(&c.name) => {
                let mut o = crate::component::OutputDeclarer::default();
                crate::component::Bolt::declare_outputs(
                    &PartitionedBolt::new(wrapping(c, f)),
                    &mut o,
                );
                o
            }
            _ => c.outputs.clone(),
        };
        declared
            .fields_of(&src.stream)
            .map(|f| f.names().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let mut b = TopologyBuilder::new(t.name());
    for c in t.components() {
        match &c.kind {
            ComponentKind::Spout(f) => {
                b.spout_factory(&c.name, f.clone(), c.parallelism);
                if let Some(cfg) = &c.event_time {
                    b.set_event_time(&c.name, cfg.clone());
                }
                if let Some((_, log)) = layout.inputs.iter().find(|(n, _)| n == &c.name) {
                    let hooks = InputHooks {
                        instance: instance.clone(),
                        fields: c
                            .outputs
                            .fields_of(DEFAULT_STREAM)
                            .cloned()
                            .unwrap_or_default(),
                        group: log.group.clone(),
                        partitions: input_partitions.clone(),
                    };
                    let ext: Extension = Arc::new(HooksExtension(Arc::new(hooks)));
                    b.set_extension(&c.name, ext);
                }
            }
            ComponentKind::Bolt(f) => {
                let factory: BoltFactory = if wrapped(&c.name) {
                    let w = wrapping(c, f);
                    Arc::new(move || Box::new(PartitionedBolt::new(w.clone())))
                } else {
                    f.clone()
                };
                let mut decl = b.bolt_factory(&c.name, factory, c.parallelism);
                if layout.head(&c.name).is_some() {
                    let reader = reader_component(&c.name);
                    decl = decl
                        .fields(reader.as_str(), [IN_PARTITION])
                        .fields((reader.as_str(), CONTROL_STREAM), [IN_PARTITION]);
                } else if wrapped(&c.name) {
                    for i in &c.inputs {
                        decl = decl.fields(i.source.clone(), [IN_PARTITION]).fields(
                            (i.source.component.as_str(), CONTROL_STREAM),
                            [IN_PARTITION],
                        );
                    }
                } else {
                    for i in &c.inputs {
                        decl = decl.input(i.source.clone(), i.grouping.clone(), false);
                    }
                }
            }
        }
    }
    for h in &layout.heads {
        let up = stream_fields(&h.input.source);
        let upstream = t.component(&h.input.source.component);
        // The writer, on the sending side.
        let sink = KafkaSinkConfig {
            brokers: d.brokers.clone(),
            topic: h.topic.clone(),
            properties: d.properties.clone(),
            ..Default::default()
        };
        let factory = sink
            .build_with_encoder(writer_encoder(h, &up)?)
            .map_err(|e| DistributedError::Topology(format!("{}: {e}", h.topic)))?;
        b.bolt_factory(
            &writer_component(&h.bolt),
            factory,
            upstream.map_or(1, |u| u.parallelism),
        )
        .local_or_shuffle(h.input.source.clone());
        // The reader, on the receiving side.
        let mut props = d.properties.clone();
        let session = d.session_timeout.as_millis().max(100);
        props.insert("session.timeout.ms".into(), session.to_string());
        props.insert(
            "heartbeat.interval.ms".into(),
            (session / 10).max(10).to_string(),
        );
        let spout = KafkaSpoutConfig {
            brokers: d.brokers.clone(),
            topics: vec![h.topic.clone()],
            group: reader_group(&d.application, &h.bolt),
            start: crate::kafka::position::StartPosition::Earliest,
            commit_interval: Duration::from_millis(200),
            properties: props,
            ..Default::default()
        };
        let spec = ReaderSpec {
            topic: h.topic.clone(),
            partitions: h.partitions,
            group: spout.group.clone(),
            fields: wire_fields(&up),
            upstream: layout.upstream_of(h),
            changelog: changelog_topic(&d.application, &h.bolt),
        };
        let hooks = Arc::new(ReaderHooks::new(spec, instance.clone()));
        let factory = spout
            .build_with_hooks(hooks)
            .map_err(|e| DistributedError::Topology(format!("{}: {e}", h.topic)))?;
        b.spout_factory(&reader_component(&h.bolt), factory, 1);
    }
    b.build()
        .map_err(|e| DistributedError::Topology(format!("the distributed topology: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::file::load_str;

    fn load(src: &str) -> Result<Topology, String> {
        load_str(src, "t.toml", &[], &crate::builtin::registry())
            .map(|f| f.topology)
            .map_err(|e| e.to_string())
    }

    const HEAD: &str = r#"
name = "t"
[spouts.source]
type = "generator"
[bolts.hashtags]
type = "hashtags"
inputs = [{ from = "source" }]
"#;

    fn dist() -> Distribution {
        Distribution {
            application: "app".into(),
            instance_id: "a".into(),
            brokers: "127.0.0.1:1".into(),
            properties: BTreeMap::new(),
            partitions: 12,
            session_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn only_fields_and_global_inputs_can_be_distributed() {
        let src = format!(
            "{HEAD}[bolts.counts]\ntype = \"count\"\ninputs = [{{ from = \"hashtags\", grouping = \"shuffle\", distributed = true }}]\n"
        );
        let e = load(&src).err().unwrap_or_default();
        assert!(e.contains("cannot be distributed"), "{e}");
        let src = format!(
            "{HEAD}[bolts.counts]\ntype = \"count\"\ninputs = [{{ from = \"hashtags\", grouping = \"fields\", fields = [\"hashtag\"], distributed = \"yes\" }}]\n"
        );
        let e = load(&src).err().unwrap_or_default();
        assert!(e.contains("true or false"), "{e}");
    }

    #[test]
    fn the_layout_finds_heads_owners_and_what_each_side_writes() {
        let src = format!(
            r#"{HEAD}
[bolts.counts]
type = "rolling_count"
inputs = [{{ from = "hashtags", grouping = "fields", fields = ["hashtag"], distributed = true }}]
[bolts.rank]
type = "rank"
inputs = [{{ from = "counts", grouping = "fields", fields = ["key"] }}]
[bolts.total]
type = "total_rank"
inputs = [{{ from = "rank", grouping = "global", distributed = true }}]
[bolts.sink]
type = "console"
inputs = [{{ from = "total", grouping = "global" }}]
"#
        );
        let t = load(&src).unwrap();
        assert!(is_distributed(&t));
        let l = Layout::of(&t, &dist()).unwrap();
        assert_eq!(l.owner["hashtags"], None);
        assert_eq!(l.owner["rank"], Some("counts".to_string()));
        assert_eq!(l.owner["sink"], Some("total".to_string()));
        assert_eq!(
            l.written_by(&None),
            vec![("app-counts-repartition".to_string(), 12)]
        );
        assert_eq!(
            l.written_by(&Some("counts".into())),
            vec![("app-total-repartition".to_string(), 1)]
        );
        let total = l.head("total").unwrap();
        assert_eq!(l.upstream_of(total), vec!["app-counts-repartition"]);
    }

    #[test]
    fn mixed_sides_and_all_groupings_behind_a_hop_are_refused() {
        let src = format!(
            r#"{HEAD}
[bolts.counts]
type = "count"
inputs = [{{ from = "hashtags", grouping = "fields", fields = ["hashtag"], distributed = true }}]
[bolts.both]
type = "console"
inputs = [{{ from = "counts" }}, {{ from = "hashtags" }}]
"#
        );
        let e = Layout::of(&load(&src).unwrap(), &dist())
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("both sides")),
            "{e:?}"
        );
        let src = format!(
            r#"{HEAD}
[bolts.counts]
type = "count"
inputs = [{{ from = "hashtags", grouping = "fields", fields = ["hashtag"], distributed = true }}]
[bolts.every]
type = "console"
inputs = [{{ from = "counts", grouping = "all" }}]
"#
        );
        let e = Layout::of(&load(&src).unwrap(), &dist())
            .err()
            .map(|e| e.to_string());
        assert!(e.as_deref().is_some_and(|e| e.contains("`all`")), "{e:?}");
        let src = format!(
            r#"{HEAD}
[bolts.counts]
type = "count"
inputs = [{{ from = "hashtags", grouping = "fields", fields = ["hashtag"], distributed = true }}, {{ from = "source" }}]
"#
        );
        let e = Layout::of(&load(&src).unwrap(), &dist())
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("no other input")),
            "{e:?}"
        );
    }

    #[test]
    fn the_writer_sends_a_key_to_one_partition_and_renames_the_hidden_fields() {
        let up = vec![
            "rankings".to_string(),
            "window_start".into(),
            "window_end".into(),
            "final".into(),
            IN_PARTITION.into(),
        ];
        assert_eq!(
            wire_fields(&up),
            vec![
                "rankings",
                "window_start",
                "window_end",
                "final",
                ORIGIN_PARTITION
            ]
        );
        let head = Head {
            bolt: "counts".into(),
            input: Input {
                source: StreamRef::from("hashtags"),
                grouping: Grouping::Fields(vec!["hashtag".into()]),
                distributed: true,
            },
            topic: "t".into(),
            partitions: 12,
        };
        let enc = writer_encoder(&head, &["hashtag".to_string()]).unwrap();
        let t = |tag: &str| {
            Tuple::new_detached(
                "h",
                DEFAULT_STREAM,
                crate::data::tuple::Fields::new(["hashtag"]),
                crate::values![tag],
            )
        };
        let p = |tag: &str| enc(&t(tag)).unwrap().partition.unwrap();
        assert_eq!(p("#rust"), p("#rust"));
        assert!((0..12).contains(&p("#go")));
        let spread: std::collections::BTreeSet<i32> =
            (0..200).map(|i| p(&format!("#t{i}"))).collect();
        assert_eq!(spread.len(), 12, "200 keys over 12 partitions: {spread:?}");
    }
}
