//! Why a topology is rejected.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopologyError {
    #[error("component name `{0}` is used twice")]
    DuplicateName(String),
    #[error("component `{0}` has parallelism 0; it must be at least 1")]
    ZeroParallelism(String),
    #[error(
        "component `{component}` has parallelism {parallelism}; a component may have at most {max} tasks",
        max = super::limits::MAX_PARALLELISM
    )]
    TooManyTasks {
        component: String,
        parallelism: usize,
    },
    #[error(
        "the topology has {total} tasks; at most {max} are allowed (the largest component is `{largest}`, {parallelism} tasks)",
        max = super::limits::MAX_TASKS
    )]
    TooManyTasksInAll {
        total: usize,
        largest: String,
        parallelism: usize,
    },
    #[error(
        "the topology has {total} connections between tasks; at most {max} are allowed (a subscription connects every task of its source to every task of the subscriber; the most: `{source_name}` → `{bolt}`, {source_tasks} × {bolt_tasks})",
        max = super::limits::MAX_CONNECTIONS
    )]
    TooManyConnections {
        total: usize,
        source_name: String,
        source_tasks: usize,
        bolt: String,
        bolt_tasks: usize,
    },
    #[error("bolt `{bolt}` subscribes to unknown component `{source_name}`")]
    UnknownSource { bolt: String, source_name: String },
    #[error(
        "bolt `{bolt}` subscribes to stream `{stream}` of `{source_name}`, which declares only {declared:?}"
    )]
    UnknownStream {
        bolt: String,
        source_name: String,
        stream: String,
        declared: Vec<String>,
    },
    #[error(
        "bolt `{bolt}` groups `{source_name}:{stream}` by field `{field}`, which that stream does not declare (it has {declared})"
    )]
    UnknownField {
        bolt: String,
        source_name: String,
        stream: String,
        field: String,
        declared: String,
    },
    #[error("bolt `{bolt}` has a fields grouping on `{source_name}` with no fields")]
    EmptyFields { bolt: String, source_name: String },
    #[error("bolt `{0}` has no input; add a grouping such as .shuffle(\"source\")")]
    NoInputs(String),
    #[error("the topology has a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("the topology has no spout")]
    NoSpouts,
    #[error(
        "spout `{spout}` takes its event time from field `{field}`, which its tuples do not have (they have {declared}; `timestamp` means the record's own time where the spout has one)"
    )]
    UnknownTimeField {
        spout: String,
        field: String,
        declared: String,
    },
}
