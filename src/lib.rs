//! squall: a stream processor in the lineage of Apache Storm.
//!
//! Declare a topology of spouts and bolts with [`TopologyBuilder`], run it in-process with
//! [`LocalCluster`]; every tuple tree is ack-tracked (at-least-once).
//!
//! ```
//! use squall::bolts::{count::CountConfig, tokenize::TokenizeConfig};
//! use squall::registry::{BoltConfig, SpoutConfig};
//! use squall::spouts::generator::GeneratorSpoutConfig;
//! use squall::{Config, LocalCluster, TopologyBuilder};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let source = GeneratorSpoutConfig { limit: 1_000, ..Default::default() };
//! let mut b = TopologyBuilder::new("word-count");
//! b.spout_factory("source", source.build()?, 1);
//! b.bolt_factory("split", TokenizeConfig::default().build()?, 2).shuffle("source");
//! b.bolt_factory("count", CountConfig::default().build()?, 2).fields("split", ["word"]);
//! let summary = LocalCluster::submit(b.build()?, Config::default())?.join()?;
//! assert_eq!(summary.metrics.components["source"].acked, 1_000);
//! assert_eq!(summary.metrics.components["source"].failed, 0);
//! # Ok(())
//! # }
//! ```

pub mod batch;
pub mod bolts;
pub mod cli;
pub mod clock;
pub mod columns;
pub mod component;
pub mod due;
pub mod http;
pub mod io;
pub mod kafka;
pub mod log_throttle;
pub mod registry;
pub mod runtime;
pub mod sinks;
pub mod spouts;
pub mod state;
pub mod testkit;
pub mod text;
pub mod topology;
pub mod tuple;
pub mod twitter;
pub mod window;

pub use component::{
    AckMode, Bolt, ComponentError, ComponentResult, FatalHandle, OutputDeclarer, Spout,
    SpoutStatus, TaskContext,
};
pub use runtime::{
    BoltCollector, Config, LocalCluster, MetricsSnapshot, RunSummary, RunningTopology,
    RuntimeError, SpoutCollector, WorkerPriority,
};
pub use topology::{Grouping, Topology, TopologyBuilder, TopologyError};
pub use tuple::{DEFAULT_STREAM, Fields, Tuple, Value, Values};
