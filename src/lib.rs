//! squall: a stream processor in the lineage of Apache Storm.
//!
//! Declare a topology of spouts and bolts with [`TopologyBuilder`], run it in-process with
//! [`LocalCluster`]; every tuple tree is ack-tracked (at-least-once).
//!
//! ```
//! use squall::bolts::{count::CountConfig, tokenize::TokenizeConfig};
//! use squall::component::registry::{BoltConfig, SpoutConfig};
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

// The layers, from the ground up (a module imports only from the layers below it):
// data, io, text, time, window, state, metrics, config, sync, log_throttle — plain building
// blocks;
// task — what a running task talks to (outbox, transport, tree ledger, run control);
// component — the API a user implements (Spout, Bolt, TransactionalSpout, TaskContext,
//   collectors, the registry type, the test kit);
// topology — the graph and its file format; runtime — plans and runs a topology;
// spouts, bolts, sinks, tweet, kafka, twitter — the built-in components and their systems;
// builtin — the registry of built-in components; http, cli — the product's edges.
pub mod bolts;
pub mod builtin;
pub mod cli;
pub mod component;
pub mod config;
pub mod data;
pub mod distributed;
#[cfg(test)]
pub(crate) mod fuzz_support;
pub mod http;
pub mod io;
pub mod kafka;
pub mod log_throttle;
pub mod metrics;
pub mod runtime;
pub mod sinks;
pub mod spouts;
pub mod state;
pub(crate) mod sync;
pub(crate) mod task;
pub mod text;
pub mod time;
pub mod topology;
pub mod tweet;
pub mod twitter;
pub mod window;

pub use component::collector::{BoltCollector, SpoutCollector};
pub use component::{
    AckMode, Bolt, ComponentError, ComponentResult, FatalHandle, OutputDeclarer, Spout,
    SpoutStatus, TaskContext,
};
pub use config::priority::WorkerPriority;
pub use config::{Config, Mode};
pub use data::tuple::{DEFAULT_STREAM, Fields, Tuple, Value, Values};
pub use metrics::{
    ComponentSnapshot, MetricsRegistry, MetricsSnapshot, Percentiles, TaskSample, TaskStats,
};
pub use runtime::{LocalCluster, RunSummary, RunningTopology, RuntimeError};
pub use topology::{Grouping, Topology, TopologyBuilder, TopologyError};
