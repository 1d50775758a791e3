//! The names distributed mode gives internal topics, hidden components, fields and
//! streams. Other tools (and instances of older builds) depend on them: keep them.

/// The repartition topic of a bolt's distributed input.
pub fn repartition_topic(application: &str, component: &str) -> String {
    format!("{application}-{component}-repartition")
}

/// The changelog topic of the state of a bolt behind a distributed input.
pub fn changelog_topic(application: &str, component: &str) -> String {
    format!("{application}-{component}-changelog")
}

/// The consumer group of the instances reading a bolt's repartition topic.
pub fn reader_group(application: &str, component: &str) -> String {
    format!("{application}-{component}")
}

/// The hidden bolt that writes `component`'s distributed input to its topic.
pub fn writer_component(component: &str) -> String {
    format!("__{component}-repartition-writer")
}

/// The hidden spout that reads `component`'s repartition topic.
pub fn reader_component(component: &str) -> String {
    format!("__{component}-repartition-reader")
}

/// Appended to every tuple behind a distributed input: the partition of the repartition
/// topic the tuple comes from (tuples are routed by it inside an instance).
pub const IN_PARTITION: &str = "__in_partition";
/// Appended by a repartition reader: the offset of the record the tuple comes from.
pub const IN_OFFSET: &str = "__in_offset";
/// What `IN_PARTITION` becomes when a tuple crosses the next distributed hop: the
/// partition whose state produced it (a global merge keys its partials by it).
pub const ORIGIN_PARTITION: &str = "__partition";

/// The stream on which readers and the per-partition wrappers pass partition events
/// (assigned, revoked, ended) down the bolts behind a distributed input.
pub const CONTROL_STREAM: &str = "__partition_control";
/// The fields of [`CONTROL_STREAM`]: the event, the partition, the input offset it
/// stands at, and what goes with it (see `partitioned::event`).
pub const CONTROL_FIELDS: [&str; 4] = ["__event", IN_PARTITION, "__offset", "__data"];
