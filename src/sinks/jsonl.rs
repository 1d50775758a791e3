//! `jsonl`: writes every tuple as a JSON object (field → value), one per line.
//!
//! A tuple is acked only once its line is flushed to the file (every 100 ms, or every
//! [`ACK_BATCH`] tuples), so a crash never loses a line whose tuple was acked (and, with a
//! Kafka source, whose offset was committed).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::component::BoltFactory;
use crate::component::collector::BoltCollector;
use crate::component::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::component::{AckMode, Bolt, ComponentError, ComponentResult, TaskContext};
use crate::data::tuple::Tuple;
use crate::log_throttle::LogThrottle;

/// Options of the `jsonl` sink.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct JsonlConfig {
    /// Output file; with parallelism > 1 each task writes `PATH.N`.
    pub path: PathBuf,
    /// Append instead of truncating.
    pub append: bool,
}

impl ComponentConfig for JsonlConfig {
    const NAME: &'static str = "jsonl";
    const DESCRIPTION: &'static str = "writes each tuple as a JSON object per line to a file";
}

impl BoltConfig for JsonlConfig {
    fn build(&self) -> Result<BoltFactory, BuildError> {
        if self.path.as_os_str().is_empty() {
            return Err(BuildError::Invalid("`path` is required".into()));
        }
        let cfg = self.clone();
        Ok(Arc::new(move || {
            Box::new(JsonlSink {
                cfg: cfg.clone(),
                out: None,
                unflushed: Vec::new(),
                write_error_log: LogThrottle::default(),
            })
        }))
    }
}

/// Tuples written but not yet flushed (and so not acked), at most.
pub const ACK_BATCH: usize = 1024;

pub struct JsonlSink {
    cfg: JsonlConfig,
    out: Option<BufWriter<File>>,
    /// Written, acked once flushed.
    unflushed: Vec<Tuple>,
    write_error_log: LogThrottle,
}

impl JsonlSink {
    /// Flushes the file, then acks what it holds (or fails it if the flush failed).
    fn flush_and_ack(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        let flushed = match &mut self.out {
            Some(w) => w.flush(),
            None => Ok(()),
        };
        let ok = flushed.is_ok();
        for t in self.unflushed.drain(..) {
            if ok {
                out.ack(&t);
            } else {
                out.fail(&t);
            }
        }
        flushed.map_err(|e| {
            ComponentError::new(format!("cannot write {}: {e}", self.cfg.path.display()))
        })
    }
}

impl Bolt for JsonlSink {
    fn prepare(&mut self, ctx: &TaskContext) -> ComponentResult {
        let mut path = self.cfg.path.clone();
        if ctx.parallelism() > 1 {
            path.as_mut_os_string()
                .push(format!(".{}", ctx.task_index()));
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.cfg.append)
            .truncate(!self.cfg.append)
            .open(&path)
            .map_err(|e| ComponentError::new(format!("cannot open {}: {e}", path.display())))?;
        self.out = Some(BufWriter::new(f));
        Ok(())
    }

    fn ack_mode(&self) -> AckMode {
        AckMode::Manual
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult {
        let Some(w) = &mut self.out else {
            return Err("jsonl sink is not open".into());
        };
        let obj: serde_json::Map<String, serde_json::Value> = input
            .fields()
            .names()
            .zip(input.values())
            .map(|(k, v)| {
                (
                    k.to_string(),
                    serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect();
        let written = serde_json::to_writer(&mut *w, &obj)
            .map_err(|e| ComponentError::new(e.to_string()))
            .and_then(|()| Ok(w.write_all(b"\n")?));
        if let Err(e) = written {
            if let Some(n) = self.write_error_log.hit() {
                tracing::error!(path = %self.cfg.path.display(), "cannot write a tuple: {e}{n}");
            }
            out.fail(&input);
            return Ok(());
        }
        self.unflushed.push(input);
        if self.unflushed.len() >= ACK_BATCH {
            self.flush_and_ack(out)?;
        }
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }

    fn tick(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        self.flush_and_ack(out)
    }

    fn finish(&mut self, out: &mut BoltCollector<'_>) -> ComponentResult {
        self.flush_and_ack(out)
    }

    /// Micro-batch mode: the batch commits only after its lines are flushed.
    fn finish_batch(
        &mut self,
        _batch: &crate::component::transactional::BatchInfo,
        out: &mut BoltCollector<'_>,
    ) -> ComponentResult {
        self.flush_and_ack(out)
    }

    fn cleanup(&mut self) {
        if let Some(w) = &mut self.out
            && let Err(e) = w.flush()
        {
            tracing::error!(path = %self.cfg.path.display(), "flush failed: {e}");
        }
    }
}
