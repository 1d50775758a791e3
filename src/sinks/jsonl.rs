//! `jsonl`: writes every tuple as a JSON object (field → value), one per line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::component::{Bolt, ComponentError, ComponentResult, TaskContext};
use crate::registry::{BoltConfig, BuildError, ComponentConfig};
use crate::runtime::BoltCollector;
use crate::topology::BoltFactory;
use crate::tuple::Tuple;

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
            })
        }))
    }
}

pub struct JsonlSink {
    cfg: JsonlConfig,
    out: Option<BufWriter<File>>,
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

    fn execute(&mut self, input: Tuple, _out: &mut BoltCollector<'_>) -> ComponentResult {
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
        serde_json::to_writer(&mut *w, &obj).map_err(|e| ComponentError::new(e.to_string()))?;
        w.write_all(b"\n")?;
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }

    fn tick(&mut self, _out: &mut BoltCollector<'_>) -> ComponentResult {
        if let Some(w) = &mut self.out {
            w.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut BoltCollector<'_>) -> ComponentResult {
        if let Some(w) = &mut self.out {
            w.flush()?;
        }
        Ok(())
    }

    fn cleanup(&mut self) {
        if let Some(w) = &mut self.out
            && let Err(e) = w.flush()
        {
            tracing::error!(path = %self.cfg.path.display(), "flush failed: {e}");
        }
    }
}
