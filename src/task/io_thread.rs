//! The I/O thread of a run.
//!
//! A component's async tasks (the reader of a `socket` or `twitter` spout) run here: one
//! thread with a Tokio runtime, started when the first task is spawned (a run whose
//! components spawn nothing has no such thread) and stopped when the run ends. In
//! micro-batch mode batches are cut and processed on driver threads that run no async
//! tasks; in event mode a spout's reader here leaves the spout's worker thread to the
//! spout and the bolts (reading and framing a socket's lines no longer takes that core).
//! A task hands its results to its component through a bounded channel.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// How long stopping waits for the thread's tasks to notice (they are aborted first).
const STOP_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum IoThreadError {
    #[error("cannot start the I/O thread: {0}")]
    Start(#[source] std::io::Error),
    #[error("the run has ended: its I/O thread is stopped")]
    Stopped,
}

enum State {
    NotStarted,
    Running(Runtime),
    Stopped,
}

/// A handle to the run's I/O thread (cheap to clone; every clone is the same thread).
#[derive(Clone)]
pub(crate) struct IoThread {
    name: Arc<str>,
    state: Arc<Mutex<State>>,
}

impl IoThread {
    /// `name`: the topology's (the thread is `squall-io-NAME`).
    pub(crate) fn new(name: &str) -> Self {
        IoThread {
            name: name.into(),
            state: Arc::new(Mutex::new(State::NotStarted)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Runs `task` on the I/O thread (starting it if need be) until it ends, is aborted,
    /// or the run ends.
    pub(crate) fn spawn<F>(&self, task: F) -> Result<JoinHandle<()>, IoThreadError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut st = self.lock();
        if matches!(*st, State::NotStarted) {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(format!("squall-io-{}", self.name))
                .enable_all()
                .build()
                .map_err(IoThreadError::Start)?;
            *st = State::Running(rt);
        }
        match &*st {
            State::Running(rt) => Ok(rt.spawn(task)),
            State::NotStarted | State::Stopped => Err(IoThreadError::Stopped),
        }
    }

    /// Stops the thread: its tasks are dropped at their next await. Call it from outside
    /// the thread (the run's supervisor), after the components are closed.
    pub(crate) fn stop(&self) {
        let old = std::mem::replace(&mut *self.lock(), State::Stopped);
        if let State::Running(rt) = old {
            rt.shutdown_timeout(STOP_WAIT);
        }
    }

    /// Whether the thread was started and not stopped yet.
    #[cfg(test)]
    fn is_running(&self) -> bool {
        matches!(*self.lock(), State::Running(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_the_first_task_runs_tasks_from_any_thread_and_stops() {
        let io = IoThread::new("t");
        assert!(!io.is_running(), "no thread before a task is spawned");
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let io2 = io.clone();
        let tx2 = tx.clone();
        let from_other = std::thread::spawn(move || {
            io2.spawn(async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let _ = tx2.send(std::thread::current().name().map(str::to_string));
            })
            .is_ok()
        });
        assert!(from_other.join().unwrap_or(false));
        let spawned = io.spawn(async move {
            let _ = tx.send(std::thread::current().name().map(str::to_string));
        });
        assert!(spawned.is_ok());
        for _ in 0..2 {
            let name = rx.recv_timeout(Duration::from_secs(10));
            assert_eq!(name, Ok(Some("squall-io-t".to_string())));
        }
        assert!(io.is_running());
        io.stop();
        assert!(!io.is_running());
        assert!(matches!(io.spawn(async {}), Err(IoThreadError::Stopped)));
    }

    #[test]
    fn stopping_ends_tasks_that_never_finish() {
        let io = IoThread::new("t");
        struct Dropped(std::sync::mpsc::SyncSender<()>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let guard = Dropped(tx);
        let spawned = io.spawn(async move {
            let _g = guard;
            std::future::pending::<()>().await;
        });
        assert!(spawned.is_ok());
        io.stop();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(()));
    }
}
