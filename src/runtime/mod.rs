//! Execution: a topology's plan, its tasks as actors on worker threads (`event`) or as
//! transactional batch cells (`microbatch`), and the handle of a running topology.

pub mod cluster;
pub mod config;
pub(crate) mod event;
pub(crate) mod load;
pub(crate) mod microbatch;
pub mod priority;

pub use cluster::{LocalCluster, RunSummary, RunningTopology, RuntimeError};
pub use config::{Config, ConfigError, Mode};
pub(crate) use microbatch::describe_state as microbatch_state;
pub use priority::{PriorityError, WorkerPriority};
