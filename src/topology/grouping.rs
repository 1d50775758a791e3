//! Groupings: how a tuple picks the receiving task(s) of a bolt.

use std::fmt;

/// One grouping of a bolt input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// Spread evenly over the bolt's tasks (round robin per sending task).
    Shuffle,
    /// Same values of these fields → same task (stable hash).
    Fields(Vec<String>),
    /// Every task gets a copy.
    All,
    /// Everything goes to the task with the lowest id.
    Global,
    /// The emitter chooses the task (`emit_direct`).
    Direct,
    /// Prefer tasks on the sender's own worker thread; shuffle among them.
    LocalOrShuffle,
}

impl Grouping {
    pub fn name(&self) -> &'static str {
        match self {
            Grouping::Shuffle => "shuffle",
            Grouping::Fields(_) => "fields",
            Grouping::All => "all",
            Grouping::Global => "global",
            Grouping::Direct => "direct",
            Grouping::LocalOrShuffle => "local_or_shuffle",
        }
    }
}

impl fmt::Display for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grouping::Fields(fs) => write!(f, "fields({})", fs.join(", ")),
            g => f.write_str(g.name()),
        }
    }
}

/// A source of a bolt input: a component and one of its streams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRef {
    pub component: String,
    pub stream: String,
}

impl From<&str> for StreamRef {
    fn from(c: &str) -> Self {
        StreamRef {
            component: c.to_string(),
            stream: crate::data::tuple::DEFAULT_STREAM.to_string(),
        }
    }
}

impl From<String> for StreamRef {
    fn from(c: String) -> Self {
        StreamRef::from(c.as_str())
    }
}

impl From<(&str, &str)> for StreamRef {
    fn from((c, s): (&str, &str)) -> Self {
        StreamRef {
            component: c.to_string(),
            stream: s.to_string(),
        }
    }
}

impl fmt::Display for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stream == crate::data::tuple::DEFAULT_STREAM {
            f.write_str(&self.component)
        } else {
            write!(f, "{}:{}", self.component, self.stream)
        }
    }
}

/// One input of a bolt.
#[derive(Clone, Debug)]
pub struct Input {
    pub source: StreamRef,
    pub grouping: Grouping,
    /// The input crosses processes: tuples go through a keyed Kafka topic
    /// (`<application_id>-<bolt>-repartition`) and each instance of the application
    /// receives the partitions its consumer group gives it (`fields` and `global` only).
    pub distributed: bool,
}
