//! Execution: a topology's plan, its tasks as actors on worker threads (`event`) or as
//! transactional batch cells (`microbatch`), and the handle of a running topology.

pub mod cluster;
pub mod config;
mod error;
pub(crate) mod event;
pub(crate) mod load;
pub(crate) mod microbatch;
pub(crate) mod plan;
pub mod priority;
mod running;

pub use cluster::LocalCluster;
pub use config::{Config, ConfigError, Mode};
pub use error::RuntimeError;
pub(crate) use microbatch::describe_state as microbatch_state;
pub use priority::{PriorityError, WorkerPriority};
pub use running::{RunSummary, RunningTopology};
