//! The declared graph as the UI shows it: names, kinds, parallelism and groupings only.
//! Component options are never copied here (they may hold broker passwords or tokens).

use serde::Serialize;

use crate::topology::{Grouping, Topology};

/// `GET /api/topology`.
#[derive(Clone, Debug, Serialize)]
pub struct TopologyInfo {
    pub name: String,
    pub components: Vec<ComponentInfo>,
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
        }
    }
}
