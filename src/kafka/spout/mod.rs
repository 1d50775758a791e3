//! `kafka`: an at-least-once Kafka consumer spout (storm-kafka-client's semantics).
//!
//! - Message id = (topic, partition, offset). Records in flight are kept in memory (their
//!   number per partition is capped: `max_uncommitted`), so a failed record is replayed
//!   from memory after an exponential back-off, without seeking.
//! - Commits per partition only the contiguous acked prefix, every `commit_interval`, when
//!   a partition waits at its cap, on revocation and on shutdown.
//! - Rebalances: revoked partitions commit what is acked and forget their in-flight
//!   records; assigned ones start at the group's committed offset, else at `start`.
//! - Bounded runs: with `end`, the spout finishes when every assigned partition reached
//!   its end and everything is acked.

mod assign;
pub mod batch;
pub mod config;
mod consumer;
pub mod hooks;
pub mod offsets;
pub mod record;
pub mod retry;
pub mod state;

pub use config::{Guarantee, KafkaSpoutConfig};
pub use consumer::{HooksExtension, KafkaSpout};
pub use record::{RecordFormat, ValueEncoding};
