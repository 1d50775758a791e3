//! `file`: replays a text or JSONL file (v1.1 or v2 tweet JSON, one object a line).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::pacer::Pacer;
use super::replay::ReplayBuffer;
use crate::component::SpoutFactory;
use crate::component::collector::SpoutCollector;
use crate::component::registry::{BuildError, ComponentConfig, SpoutConfig};
use crate::component::{
    ComponentError, ComponentResult, FatalHandle, OutputDeclarer, Spout, SpoutStatus, TaskContext,
};
use crate::data::tuple::{Fields, Values};
use crate::io::lines::{BlockingLineReader, RawLine};
use crate::log_throttle::LogThrottle;
use crate::tweet::fields::{tweet_fields, tweet_values};
use crate::tweet::wire::{StreamMessage, parse_line};

/// How the file's lines are read.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Each line is a tweet as JSON (v2 stream message or v1.1 status); emits tweet fields.
    #[default]
    Tweets,
    /// Each line is text; emits field `text`.
    Text,
}

/// Options of the `file` spout.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FileSpoutConfig {
    pub path: PathBuf,
    pub format: FileFormat,
    /// Lines per second (0: as fast as possible).
    pub rate: f64,
    /// Lines longer than this (bytes, without the terminator) are counted
    /// (`oversized_lines`) and skipped as they are read: memory stays bounded whatever
    /// the file holds.
    pub max_line_bytes: usize,
    /// Retries of a failed line before it is given up (counted in `given_up`).
    pub max_retries: u32,
}

impl Default for FileSpoutConfig {
    fn default() -> Self {
        FileSpoutConfig {
            path: PathBuf::new(),
            format: FileFormat::Tweets,
            rate: 0.0,
            max_line_bytes: 1 << 20,
            max_retries: 3,
        }
    }
}

impl ComponentConfig for FileSpoutConfig {
    const NAME: &'static str = "file";
    const DESCRIPTION: &'static str = "replays a JSONL tweet file (v2 or v1.1) or a text file; ends when the file is done and acked";
}

impl SpoutConfig for FileSpoutConfig {
    fn build(&self) -> Result<SpoutFactory, BuildError> {
        if self.path.as_os_str().is_empty() {
            return Err(BuildError::Invalid("`path` is required".into()));
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err(BuildError::Invalid(format!(
                "rate must be ≥ 0, got {}",
                self.rate
            )));
        }
        let cfg = self.clone();
        Ok(Arc::new(move || Box::new(FileSpout::new(cfg.clone()))))
    }
}

struct FileCounters {
    malformed: Arc<AtomicU64>,
    oversized: Arc<AtomicU64>,
    invalid_utf8: Arc<AtomicU64>,
    notices: Arc<AtomicU64>,
    malformed_log: LogThrottle,
    oversized_log: LogThrottle,
}

pub struct FileSpout {
    cfg: FileSpoutConfig,
    reader: Option<BlockingLineReader<File>>,
    line_no: u64,
    eof: bool,
    buffer: ReplayBuffer<Values>,
    pacer: Option<Pacer>,
    counters: Option<FileCounters>,
    /// Stops the run when the file cannot be read to its end.
    fatal: Option<FatalHandle>,
}

impl FileSpout {
    pub fn new(cfg: FileSpoutConfig) -> Self {
        let r = cfg.max_retries;
        FileSpout {
            cfg,
            reader: None,
            line_no: 0,
            eof: false,
            buffer: ReplayBuffer::new(r),
            pacer: None,
            counters: None,
            fatal: None,
        }
    }

    /// Reads the next line that yields a tuple; `None` at the end of the file. A line
    /// longer than `max_line_bytes` is skipped as it is read (never held whole).
    fn next_values(&mut self) -> Option<Values> {
        let reader = self.reader.as_mut()?;
        let c = self.counters.as_ref()?;
        loop {
            let line = match reader.next_line() {
                Ok(None) => return None,
                Ok(Some(line)) => line,
                Err(e) => {
                    // The source could not do its job: the run fails, as when the file
                    // cannot be opened.
                    let msg = format!(
                        "cannot read {} at line {}: {e}",
                        self.cfg.path.display(),
                        self.line_no + 1
                    );
                    match &self.fatal {
                        Some(f) => f.fail(msg),
                        None => tracing::error!("{msg}"),
                    }
                    return None;
                }
            };
            self.line_no += 1;
            let mut buf = match line {
                RawLine::Line(b) => b,
                RawLine::Oversized(bytes) => {
                    c.oversized.fetch_add(1, Ordering::Relaxed);
                    if let Some(n) = c.oversized_log.hit() {
                        tracing::warn!(path = %self.cfg.path.display(), line = self.line_no, bytes, "oversized line skipped{n}");
                    }
                    continue;
                }
            };
            while let [rest @ .., b'\r'] = buf {
                buf = rest;
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match self.cfg.format {
                FileFormat::Text => {
                    let text = match std::str::from_utf8(buf) {
                        Ok(s) => s.to_string(),
                        Err(_) => {
                            c.invalid_utf8.fetch_add(1, Ordering::Relaxed);
                            String::from_utf8_lossy(buf).into_owned()
                        }
                    };
                    return Some(crate::values![text]);
                }
                FileFormat::Tweets => match parse_line(buf) {
                    Ok(StreamMessage::Tweet(t)) => return Some(tweet_values(t)),
                    Ok(StreamMessage::KeepAlive) => {}
                    Ok(_) => {
                        c.notices.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        c.malformed.fetch_add(1, Ordering::Relaxed);
                        if let Some(n) = c.malformed_log.hit() {
                            tracing::warn!(path = %self.cfg.path.display(), line = self.line_no, "malformed tweet skipped: {e}{n}");
                        }
                    }
                },
            }
        }
    }
}

impl Spout for FileSpout {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        match self.cfg.format {
            FileFormat::Tweets => out.declare(tweet_fields()),
            FileFormat::Text => out.declare(Fields::new(["text"])),
        };
    }

    fn open(&mut self, ctx: &TaskContext) -> ComponentResult {
        let f = File::open(&self.cfg.path).map_err(|e| {
            ComponentError::new(format!("cannot open {}: {e}", self.cfg.path.display()))
        })?;
        self.fatal = Some(ctx.fatal_handle());
        if ctx.parallelism() > 1 && ctx.task_index() > 0 {
            // One reader per file: extra tasks have nothing to read.
            self.eof = true;
        } else {
            self.reader = Some(BlockingLineReader::new(f, self.cfg.max_line_bytes));
        }
        self.counters = Some(FileCounters {
            malformed: ctx.counter("malformed_lines"),
            oversized: ctx.counter("oversized_lines"),
            invalid_utf8: ctx.counter("invalid_utf8_lines"),
            notices: ctx.counter("notices"),
            malformed_log: LogThrottle::default(),
            oversized_log: LogThrottle::default(),
        });
        self.buffer.count_given_up_in(ctx.counter("given_up"));
        self.pacer = Pacer::new(self.cfg.rate);
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> SpoutStatus {
        if let Some(status) = self.buffer.emit_retry(out, Values::clone) {
            return status;
        }
        if self.eof {
            return SpoutStatus::Exhausted;
        }
        if let Some(p) = &self.pacer
            && p.due(1) == 0
        {
            return SpoutStatus::IdleUntil(p.next_due());
        }
        match self.next_values() {
            Some(values) => {
                self.buffer.emit_new(values, out, Values::clone);
                if let Some(p) = &mut self.pacer {
                    p.sent(1);
                }
                SpoutStatus::Emitted
            }
            None => {
                self.eof = true;
                self.reader = None;
                SpoutStatus::Exhausted
            }
        }
    }

    fn ack(&mut self, msg_id: u64) {
        self.buffer.ack(msg_id);
    }

    fn fail(&mut self, msg_id: u64) {
        self.buffer.fail(msg_id);
    }
}
