//! The graph: components, groupings, validation.

mod brokers;
mod builder;
mod error;
pub mod file;
mod filter_pushdown;
mod grouping;
mod projection;

pub use brokers::BrokersFilled;
pub use builder::{
    BoltDeclarer, BoltFactory, ComponentDef, ComponentKind, MAX_CONNECTIONS, MAX_PARALLELISM,
    MAX_TASKS, SpoutFactory, Topology, TopologyBuilder,
};
pub use error::TopologyError;
pub use grouping::{Grouping, Input, StreamRef};
