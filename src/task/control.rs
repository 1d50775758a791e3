//! Shared run state: how many tasks are still running, the first fatal error, and the
//! signals between the tasks, the system thread and the handle.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::sync::lock;

pub(crate) struct RunControl {
    remaining: AtomicUsize,
    done: Mutex<bool>,
    done_cv: Condvar,
    pub(crate) done_notify: Notify,
    pub(crate) stop_notify: Notify,
    stop_requested: AtomicBool,
    errors: Mutex<Vec<String>>,
}

impl RunControl {
    pub(crate) fn new(tasks: usize) -> Self {
        RunControl {
            remaining: AtomicUsize::new(tasks),
            done: Mutex::new(tasks == 0),
            done_cv: Condvar::new(),
            done_notify: Notify::new(),
            stop_notify: Notify::new(),
            stop_requested: AtomicBool::new(false),
            errors: Mutex::new(Vec::new()),
        }
    }

    /// A task has finished (every downstream task got its end marker).
    pub(crate) fn task_finished(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.mark_done();
        }
    }

    pub(crate) fn mark_done(&self) {
        let mut d = lock(&self.done);
        *d = true;
        self.done_cv.notify_all();
        self.done_notify.notify_one();
    }

    pub(crate) fn is_done(&self) -> bool {
        *lock(&self.done)
    }

    /// Waits until every task has finished; `false` on timeout.
    pub(crate) fn wait_done(&self, timeout: Duration) -> bool {
        let guard = lock(&self.done);
        let (guard, _) = self
            .done_cv
            .wait_timeout_while(guard, timeout, |done| !*done)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }

    pub(crate) fn request_stop(&self) {
        if !self.stop_requested.swap(true, Ordering::AcqRel) {
            self.stop_notify.notify_one();
        }
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire)
    }

    /// Something that cannot be retried (a spout that cannot open): the run stops.
    pub(crate) fn fatal(&self, msg: String) {
        tracing::error!("{msg}");
        lock(&self.errors).push(msg);
        self.request_stop();
    }

    pub(crate) fn errors(&self) -> Vec<String> {
        lock(&self.errors).clone()
    }
}
