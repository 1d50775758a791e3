//! The declared graph as the UI shows it: names, kinds, parallelism and groupings only.
//! Component options are never copied here (they may hold broker passwords or tokens).

use serde::Serialize;

use crate::topology::{Grouping, Topology};

/// `GET /api/topology`.
#[derive(Clone, Debug, Serialize)]
pub struct TopologyInfo {
    pub name: String,
    pub components: Vec<ComponentInfo>,
    /// Distributed mode: this process's place in its application (`instance`: its
    /// application, id and the partitions it holds now), asked at each request.
    #[serde(skip)]
    pub instance: Option<InstanceSource>,
}

/// Distributed mode: who this process is in its application, described at each request
/// (the partitions it holds change).
pub trait DescribeInstance: Send + Sync {
    fn describe(&self) -> serde_json::Value;
}

/// A [`DescribeInstance`] shared with the server.
#[derive(Clone)]
pub struct InstanceSource(pub std::sync::Arc<dyn DescribeInstance>);

impl std::fmt::Debug for InstanceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InstanceSource")
    }
}

impl TopologyInfo {
    /// The JSON of `GET /api/topology`: the graph, and the instance when there is one.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let (Some(i), Some(m)) = (&self.instance, v.as_object_mut()) {
            m.insert("instance".into(), i.0.describe());
        }
        v
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ComponentInfo {
    pub name: String,
    /// `spout` or `bolt`.
    pub kind: &'static str,
    pub parallelism: usize,
    pub inputs: Vec<InputInfo>,
}

/// One edge into a bolt.
#[derive(Clone, Debug, Serialize)]
pub struct InputInfo {
    pub from: String,
    pub stream: String,
    /// `shuffle`, `fields`, `all`, `global`, `direct` or `local_or_shuffle`.
    pub grouping: &'static str,
    /// The grouping fields (`fields` grouping), else empty.
    pub fields: Vec<String>,
}

impl TopologyInfo {
    pub fn of(t: &Topology) -> TopologyInfo {
        TopologyInfo {
            name: t.name().to_string(),
            components: t
                .components()
                .iter()
                .map(|c| ComponentInfo {
                    name: c.name.clone(),
                    kind: if c.is_spout() { "spout" } else { "bolt" },
                    parallelism: c.parallelism,
                    inputs: c
                        .inputs
                        .iter()
                        .map(|i| InputInfo {
                            from: i.source.component.clone(),
                            stream: i.source.stream.clone(),
                            grouping: i.grouping.name(),
                            fields: match &i.grouping {
                                Grouping::Fields(f) => f.clone(),
                                _ => Vec::new(),
                            },
                        })
                        .collect(),
                })
                .collect(),
            instance: None,
        }
    }
}
