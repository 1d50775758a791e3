//! Run-time settings of a topology.

pub mod priority;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use priority::WorkerPriority;

/// How a topology runs. Every field has a default; TOML files set them under `[config]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Worker threads the tasks are spread over (default: the number of cores).
    pub workers: usize,
    /// Event mode: how the worker threads are scheduled (`normal`, or `realtime` for
    /// `SCHED_FIFO`, which keeps other tasks of the machine from holding up a worker).
    pub worker_priority: WorkerPriority,
    /// Track every tuple tree and replay what fails (at-least-once). Off: at-most-once.
    pub acking: bool,
    /// In-flight tuple trees per spout task; the spout waits when it is reached.
    pub max_spout_pending: usize,
    /// A tree not complete after this long is failed and replayed.
    #[serde(with = "humantime_serde")]
    pub message_timeout: Duration,
    /// Tuples per transport batch between two tasks (1 = every tuple travels alone).
    pub batch_size: usize,
    /// Longest a tuple may wait in a sender's buffer before it is flushed.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Capacity of each task's inbox, in tuples.
    pub inbox_capacity: usize,
    /// How long a graceful stop waits for in-flight trees.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Measure execute latency on one tuple in this many (1 = every tuple).
    pub latency_sample: u32,
    /// Run a bolt inside the task that feeds it when it is joined to it by a
    /// `local_or_shuffle` grouping with the same parallelism (operator chaining).
    pub chaining: bool,
    /// `event` (a tuple at a time, ack-tracked) or `microbatch` (transactional batches,
    /// exactly-once state).
    pub mode: Mode,
    /// Micro-batch mode: a new batch starts at most this often.
    #[serde(with = "humantime_serde")]
    pub batch_interval: Duration,
    /// Micro-batch mode: most tuples a spout task puts in one batch.
    pub max_batch: usize,
    /// Micro-batch mode: batches processed at once (pipelining); commits stay in order.
    pub batches_in_flight: usize,
    /// Micro-batch mode: a batch not committed this long after its start fails and is
    /// replayed; a task still busy with it as long again (or a batch timing out
    /// 3 times in a row) stops the run with an error.
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// Micro-batch mode: where state and batch records are kept (none: in memory).
    pub state_dir: Option<PathBuf>,
    /// Distributed mode: the instances running a topology with the same application id
    /// form one application (one consumer group per distributed input, the same internal
    /// topics). Default: the topology's name.
    pub application_id: Option<String>,
    /// Distributed mode: the partition count of the repartition and changelog topics of
    /// a distributed `fields` input, when squall creates them.
    pub repartition_partitions: u32,
    /// Distributed mode: the consumer-group session timeout of the internal consumers (a
    /// vanished instance's partitions move after this long); heartbeats every tenth.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
}

/// How a topology runs.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every tuple is processed as it arrives and its tree is ack-tracked.
    #[default]
    Event,
    /// Transactional micro-batches (Storm's Trident): exactly-once state.
    Microbatch,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Event => "event",
            Mode::Microbatch => "microbatch",
        })
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "event" => Ok(Mode::Event),
            "microbatch" | "micro-batch" => Ok(Mode::Microbatch),
            _ => Err(format!("unknown mode `{s}` (expected event or microbatch)")),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            worker_priority: WorkerPriority::Normal,
            acking: true,
            max_spout_pending: 1024,
            message_timeout: Duration::from_secs(30),
            batch_size: 256,
            flush_interval: Duration::from_micros(500),
            inbox_capacity: 16 * 1024,
            drain_timeout: Duration::from_secs(30),
            latency_sample: 16,
            chaining: true,
            mode: Mode::Event,
            batch_interval: Duration::from_millis(100),
            max_batch: 100_000,
            batches_in_flight: 2,
            batch_timeout: Duration::from_secs(120),
            state_dir: None,
            application_id: None,
            repartition_partitions: 12,
            session_timeout: Duration::from_secs(10),
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("config `{key}`: {reason}")]
pub struct ConfigError {
    pub key: &'static str,
    pub reason: String,
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |key: &'static str, v: usize| {
            if v == 0 {
                Err(ConfigError {
                    key,
                    reason: "must be at least 1".into(),
                })
            } else {
                Ok(())
            }
        };
        positive("workers", self.workers)?;
        positive("max_spout_pending", self.max_spout_pending)?;
        positive("batch_size", self.batch_size)?;
        positive("inbox_capacity", self.inbox_capacity)?;
        positive("latency_sample", self.latency_sample as usize)?;
        positive("max_batch", self.max_batch)?;
        positive("batches_in_flight", self.batches_in_flight)?;
        positive(
            "repartition_partitions",
            self.repartition_partitions as usize,
        )?;
        if self.session_timeout < Duration::from_millis(100) {
            return Err(ConfigError {
                key: "session_timeout",
                reason: "must be at least 100ms".into(),
            });
        }
        if let Some(id) = &self.application_id
            && (id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(ConfigError {
                key: "application_id",
                reason: format!(
                    "`{id}` is not a valid Kafka topic prefix (letters, digits, `-`, `_`, `.`)"
                ),
            });
        }
        if self.message_timeout.is_zero() {
            return Err(ConfigError {
                key: "message_timeout",
                reason: "must be longer than 0".into(),
            });
        }
        if self.batch_timeout.is_zero() {
            return Err(ConfigError {
                key: "batch_timeout",
                reason: "must be longer than 0".into(),
            });
        }
        if self.mode == Mode::Microbatch && self.batch_timeout <= self.batch_interval {
            return Err(ConfigError {
                key: "batch_timeout",
                reason: format!(
                    "must be longer than batch_interval ({}): a batch may take that long to cut",
                    humantime::format_duration(self.batch_interval)
                ),
            });
        }
        Ok(())
    }

    /// Capacity of a task inbox in transport batches.
    pub(crate) fn inbox_batches(&self) -> usize {
        (self.inbox_capacity / self.batch_size).max(2)
    }
}
