//! Execution: a topology's plan, its tasks as actors on worker threads (`event`) or as
//! transactional batch cells (`microbatch`), and the handle of a running topology.

pub mod cluster;
mod error;
pub(crate) mod event;
pub(crate) mod load;
pub(crate) mod microbatch;
pub(crate) mod plan;
mod running;
pub(crate) mod stage;

pub use cluster::LocalCluster;
pub use error::RuntimeError;
pub(crate) use microbatch::describe_state as microbatch_state;
pub use running::{RunSummary, RunningTopology};
