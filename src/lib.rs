//! squall: a stream processor in the lineage of Apache Storm.
//!
//! Declare a topology of spouts and bolts with [`TopologyBuilder`], run it in-process with
//! [`LocalCluster`]; every tuple tree is ack-tracked (at-least-once).

pub mod bolts;
pub mod cli;
pub mod clock;
pub mod component;
pub mod io;
pub mod registry;
pub mod runtime;
pub mod sinks;
pub mod spouts;
pub mod testkit;
pub mod text;
pub mod topology;
pub mod tuple;
pub mod window;

pub use component::{
    AckMode, Bolt, ComponentError, ComponentResult, OutputDeclarer, Spout, SpoutStatus, TaskContext,
};
pub use runtime::{
    BoltCollector, Config, LocalCluster, MetricsSnapshot, RunSummary, RunningTopology,
    SpoutCollector,
};
pub use topology::{Grouping, Topology, TopologyBuilder, TopologyError};
pub use tuple::{DEFAULT_STREAM, Fields, Tuple, Value, Values};
