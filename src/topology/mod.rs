//! The graph: components, groupings, validation.

mod brokers;
mod builder;
mod error;
pub mod file;
mod filter_pushdown;
mod grouping;
mod limits;
mod projection;

pub use brokers::BrokersFilled;
pub use builder::{BoltDeclarer, ComponentDef, ComponentKind, Topology, TopologyBuilder};
pub use error::TopologyError;
pub use grouping::{Grouping, Input, StreamRef};
pub use limits::{MAX_CONNECTIONS, MAX_PARALLELISM, MAX_TASKS};
