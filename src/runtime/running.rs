//! A topology running in this process: the handle that watches and stops the run, and
//! what a finished run leaves.

use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::error::RuntimeError;
use crate::config::Mode;

use crate::metrics::{MetricsRegistry, MetricsSnapshot};
use crate::task::control::RunControl;

/// What a finished run leaves.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub topology: String,
    pub duration: Duration,
    pub metrics: MetricsSnapshot,
    /// How it ran (event or micro-batch).
    pub mode: Mode,
    /// Every task finished (bounded run, or a graceful stop that drained in time).
    pub completed: bool,
}

/// How long a stop waits, beyond `drain_timeout`, for the tasks to finish (bolts flush
/// and see their end markers) before it gives up on them.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long the threads of a run that has ended are given to exit.
const THREAD_EXIT: Duration = Duration::from_secs(2);

/// A topology running in this process.
pub struct RunningTopology {
    pub(super) name: String,
    pub(super) control: Arc<RunControl>,
    pub(super) metrics: MetricsRegistry,
    pub(super) thread: Option<JoinHandle<()>>,
    pub(super) started: Instant,
    pub(super) mode: Mode,
    /// `config.drain_timeout`: bounds how long a stop waits.
    pub(super) drain: Duration,
    /// When the stop was first asked for.
    pub(super) stop_at: OnceLock<Instant>,
}

impl RunningTopology {
    /// The handle of a run whose thread has started.
    pub(super) fn new(
        name: String,
        control: Arc<RunControl>,
        metrics: MetricsRegistry,
        thread: JoinHandle<()>,
        mode: Mode,
        drain: Duration,
    ) -> Self {
        RunningTopology {
            name,
            control,
            metrics,
            thread: Some(thread),
            started: Instant::now(),
            mode,
            drain,
            stop_at: OnceLock::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Current metrics, merged from every task (published every 100 ms).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    pub fn registry(&self) -> MetricsRegistry {
        self.metrics.clone()
    }

    /// Every task has finished.
    pub fn is_finished(&self) -> bool {
        self.control.is_done()
    }

    /// Waits for a bounded run to finish; `false` if it has not within `timeout`.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        self.control.wait_done(timeout)
    }

    /// Fatal errors so far (a spout that could not open, ...).
    pub fn errors(&self) -> Vec<String> {
        self.control.errors()
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Asks the spouts to stop and the in-flight trees to drain; returns at once.
    pub fn request_stop(&self) {
        self.stop_at.get_or_init(Instant::now);
        self.control.request_stop();
    }

    /// The time after which a stop gives up on tasks that have not finished.
    fn stop_deadline(&self) -> Instant {
        *self.stop_at.get_or_init(Instant::now) + self.drain + STOP_GRACE + THREAD_EXIT
    }

    /// After [`Self::request_stop`]: waits up to `timeout`; `true` once the run has ended
    /// or the stop has given up on its tasks (then [`Self::stop`] returns at once).
    pub fn wait_stopped(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if self.thread.as_ref().is_none_or(JoinHandle::is_finished)
                || now >= self.stop_deadline()
            {
                return true;
            }
            if now >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10).min(until - now));
        }
    }

    /// Graceful stop: spouts stop emitting, in-flight trees drain (bounded by the drain
    /// timeout), bolts flush, then the threads end. Tasks still busy `drain_timeout` +
    /// 5 s after the stop (a bolt blocked for ever, e.g. a sink writing to a pipe nobody
    /// reads) are given up on: their threads are left behind, the summary says the run
    /// did not complete.
    pub fn stop(mut self) -> Result<RunSummary, RuntimeError> {
        self.request_stop();
        let deadline = self.stop_deadline();
        self.finish(Some(deadline))
    }

    /// Waits for the run to end by itself (every spout finished), then returns.
    pub fn join(mut self) -> Result<RunSummary, RuntimeError> {
        self.finish(None)
    }

    /// Stops at once, without draining: for a process about to exit (a second Ctrl-C).
    /// The run's threads are left behind; the summary counts what was in flight as
    /// `abandoned` (trees in event mode, tuples of uncommitted batches in micro-batch
    /// mode).
    pub fn abandon(mut self) -> RunSummary {
        self.request_stop();
        drop(self.thread.take());
        let mut summary = self.summary();
        for c in summary.metrics.components.values_mut() {
            c.abandoned += std::mem::take(&mut c.pending);
        }
        summary
    }

    /// Waits for the run's thread to end (until `deadline` if given), then sums it up.
    fn finish(&mut self, deadline: Option<Instant>) -> Result<RunSummary, RuntimeError> {
        if let Some(t) = self.thread.take() {
            let exited = match deadline {
                None => true,
                Some(d) => wait_exit(&t, d),
            };
            if exited {
                t.join().map_err(|_| RuntimeError::Panicked)?;
            } else {
                tracing::warn!(
                    "the run's threads did not stop within {:?} of the stop (a component is blocked, e.g. a sink writing to a pipe nobody reads); leaving them",
                    self.drain + STOP_GRACE + THREAD_EXIT
                );
            }
        }
        let errors = self.control.errors();
        if !errors.is_empty() {
            return Err(RuntimeError::Fatal(errors));
        }
        Ok(self.summary())
    }

    fn summary(&self) -> RunSummary {
        RunSummary {
            topology: self.name.clone(),
            duration: self.started.elapsed(),
            metrics: self.metrics.snapshot(),
            mode: self.mode,
            completed: self.control.is_done(),
        }
    }
}

/// Waits until thread `t` has ended or `deadline` has passed; whether it ended.
fn wait_exit(t: &JoinHandle<()>, deadline: Instant) -> bool {
    while !t.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

impl Drop for RunningTopology {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.request_stop();
            if wait_exit(&t, self.stop_deadline()) {
                let _ = t.join();
            }
        }
    }
}
