//! squall: a stream processor in the lineage of Apache Storm.
//!
//! Declare a topology of spouts and bolts with [`TopologyBuilder`], run it in-process with
//! [`LocalCluster`]; every tuple tree is ack-tracked (at-least-once).

pub mod component;
pub mod runtime;
pub mod topology;
pub mod tuple;

pub use component::{
    AckMode, Bolt, ComponentError, ComponentResult, OutputDeclarer, Spout, SpoutStatus, TaskContext,
};
pub use runtime::{
    BoltCollector, Config, LocalCluster, MetricsSnapshot, RunSummary, RunningTopology,
    SpoutCollector,
};
pub use topology::{Grouping, Topology, TopologyBuilder, TopologyError};
pub use tuple::{Fields, Tuple, Value, Values, DEFAULT_STREAM};
