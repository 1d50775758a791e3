//! Hooks through which a layer above the Kafka spout (distributed mode) takes part in its
//! life: where assigned partitions start, what a record becomes, tuples to emit on
//! rebalances, and when partitions and the whole spout are done. A spout without hooks
//! behaves as configured.

use crate::component::OutputDeclarer;
use crate::data::tuple::Values;
use crate::kafka::TopicPartition;
use crate::kafka::spout::record::Record;

/// What a record becomes.
pub enum Decoded {
    /// Emit these values on this stream, tracked like any record.
    Emit { stream: String, values: Values },
    /// Nothing to emit: the record is done at once (the commit moves past it).
    Skip,
    /// Not a record the hooks understand: counted as a bad record and skipped.
    Bad(String),
}

/// See the module documentation. Called from the spout's thread (rebalances run inside
/// the consumer's poll, on the same thread).
pub trait SpoutHooks: Send + Sync {
    /// The streams the spout emits on, replacing its format's fields.
    fn declare(&self, out: &mut OutputDeclarer);
    /// A partition was assigned: where to start reading it (`None`: as configured).
    fn assigned(&self, tp: &TopicPartition) -> Option<i64>;
    /// A partition was revoked.
    fn revoked(&self, tp: &TopicPartition);
    /// Whether a revoked partition is handed off: the spout stops reading it, waits
    /// (boundedly) until its records in flight are done, then calls
    /// [`handed_off`](Self::handed_off) with how far it got, before it lets the group
    /// give the partition to another member.
    fn hands_off(&self) -> bool {
        false
    }
    /// A revoked partition was handed off with every record before `offset` done.
    fn handed_off(&self, _tp: &TopicPartition, _offset: i64) {}
    /// Where partitions were handed off (their next holder starts no earlier), by
    /// (topic, partition). Asked once per assignment, for the partitions that have no
    /// start from [`assigned`](Self::assigned).
    fn handoffs(&self) -> std::collections::BTreeMap<(String, i32), i64> {
        Default::default()
    }
    /// What a fetched record becomes (`None`: the spout's own format).
    fn decode(&self, record: &Record) -> Option<Decoded>;
    /// Untracked tuples to emit now, before any record fetched after them: (stream,
    /// values).
    fn take_control(&self) -> Vec<(String, Values)>;
    /// The tree of a record emitted by `decode` completed.
    fn acked(&self, record: &Record);
    /// A partition with an end bound reached it, and everything before it is committed.
    fn partition_ended(&self, tp: &TopicPartition);
    /// The spout may finish (once its own partitions are done, if it has an end bound).
    fn may_finish(&self) -> bool;
    /// An error that must stop the run (e.g. a partition whose state cannot be restored).
    fn fatal(&self) -> Option<String> {
        None
    }
}
