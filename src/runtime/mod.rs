//! Execution: tasks as actors on worker threads, the transport between them, the ack
//! ledger, metrics.

pub(crate) mod alarm;
pub(crate) mod bolt_task;
pub mod cluster;
pub mod collector;
pub mod config;
pub(crate) mod control;
pub(crate) mod ids;
pub(crate) mod io_thread;
pub(crate) mod ledger;
pub(crate) mod load;
pub mod metrics;
pub(crate) mod microbatch;
pub(crate) mod outbox;
pub mod priority;
pub(crate) mod spout_task;
pub(crate) mod stage;
pub(crate) mod transport;

pub use cluster::{LocalCluster, RunSummary, RunningTopology, RuntimeError};
pub use collector::{BoltCollector, SpoutCollector};
pub use config::{Config, ConfigError, Mode};
pub use metrics::{
    ComponentSnapshot, MetricsRegistry, MetricsSnapshot, Percentiles, TaskSample, TaskStats,
};
pub(crate) use microbatch::describe_state as microbatch_state;
pub use priority::{PriorityError, WorkerPriority};

/// The text of a caught panic.
pub(crate) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}
