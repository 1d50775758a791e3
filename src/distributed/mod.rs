//! Distributed mode: one topology over several processes ("instances") with Kafka as the
//! only distributed system, as in Kafka Streams.
//!
//! - [`names`]: internal topics, hidden components, fields and streams.
//! - [`wire`]: what repartition records hold (tuples, end markers).
//! - [`partitioned`]: the per-partition wrapper of the bolts behind a distributed input.
//! - [`status`]: the status topic through which instances say what they hold.
//! - [`instance`]: what the components of one process share.
//! - [`changelog`]: per-partition state snapshots, restored by the partition's next holder.

pub mod changelog;
pub mod instance;
pub mod names;
pub mod partitioned;
pub mod reader;
pub mod rewrite;
pub mod status;
pub mod wire;
