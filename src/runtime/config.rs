//! Run-time settings of a topology.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a topology runs. Every field has a default; TOML files set them under `[config]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Worker threads the tasks are spread over (default: the number of cores).
    pub workers: usize,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            acking: true,
            max_spout_pending: 1024,
            message_timeout: Duration::from_secs(30),
            batch_size: 256,
            flush_interval: Duration::from_micros(500),
            inbox_capacity: 16 * 1024,
            drain_timeout: Duration::from_secs(30),
            latency_sample: 16,
            chaining: true,
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
        if self.message_timeout.is_zero() {
            return Err(ConfigError {
                key: "message_timeout",
                reason: "must be longer than 0".into(),
            });
        }
        Ok(())
    }

    /// Capacity of a task inbox in transport batches.
    pub(crate) fn inbox_batches(&self) -> usize {
        (self.inbox_capacity / self.batch_size).max(2)
    }
}
