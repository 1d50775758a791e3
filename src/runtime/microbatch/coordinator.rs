//! Which batch runs next, when each task may take it, and when it may commit.
//!
//! Batches get increasing txids. Every task takes batches in txid order (a task's state
//! sees batch `t` only after `t - 1`), several batches are in flight at once (pipelining),
//! and commits happen strictly in txid order. When batch `n` fails, every batch from `n`
//! on is abandoned; once the batches before `n` have committed, the tasks are reset to
//! their committed state and the batches from `n` are emitted again (Trident does the
//! same).

use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a driver thread does next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Job {
    /// Run batch `txid`; `replay` when it was cut before (its contents are known).
    Batch {
        txid: u64,
        replay: bool,
    },
    /// Reset every task to its committed state; batches resume at `from`.
    Reset {
        from: u64,
    },
    /// The run is ending: the last pass (bolts flush what they hold).
    Final {
        txid: u64,
    },
    Exit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Resetting,
    Final,
    Done,
}

struct St {
    next: u64,
    committed: u64,
    /// Txids below this were cut before: running them again is a replay.
    cut_until: u64,
    in_flight: BTreeSet<u64>,
    abort_from: Option<u64>,
    turns: Vec<u64>,
    last_start: Option<Instant>,
    /// The last batch cut was full: the sources are behind, the next batch starts without
    /// waiting for the interval.
    backlog: bool,
    exhausted: bool,
    phase: Phase,
    /// Failures since the last commit (paces replays).
    failures: u32,
    /// No batch starts before this (back-off after a failure).
    resume_at: Option<Instant>,
}

pub(super) struct Coordinator {
    st: Mutex<St>,
    cv: Condvar,
    interval: Duration,
    max_in_flight: usize,
}

impl Coordinator {
    /// `committed`: the last committed txid; `cut_until`: one past the last txid cut
    /// before (a restart replays the ones in between); `cells`: tasks that take turns.
    pub(super) fn new(
        committed: u64,
        cut_until: u64,
        cells: usize,
        interval: Duration,
        max_in_flight: usize,
    ) -> Self {
        Coordinator {
            st: Mutex::new(St {
                next: committed + 1,
                committed,
                cut_until: cut_until.max(committed + 1),
                in_flight: BTreeSet::new(),
                abort_from: None,
                turns: vec![committed + 1; cells],
                last_start: None,
                backlog: false,
                exhausted: false,
                phase: Phase::Running,
                failures: 0,
                resume_at: None,
            }),
            cv: Condvar::new(),
            interval,
            max_in_flight: max_in_flight.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, St> {
        crate::sync::lock(&self.st)
    }

    fn wait<'a>(&self, g: MutexGuard<'a, St>, d: Duration) -> MutexGuard<'a, St> {
        self.cv
            .wait_timeout(g, d)
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0)
    }

    /// Blocks until there is something to do. `stopping` is polled (Ctrl-C, --duration).
    pub(super) fn next_job(&self, stopping: &dyn Fn() -> bool) -> Job {
        let mut g = self.lock();
        loop {
            match g.phase {
                Phase::Done => return Job::Exit,
                Phase::Resetting | Phase::Final => {
                    g = self.wait(g, Duration::from_millis(50));
                    continue;
                }
                Phase::Running => {}
            }
            if let Some(n) = g.abort_from {
                if g.in_flight.is_empty() {
                    g.phase = Phase::Resetting;
                    return Job::Reset { from: n };
                }
                g = self.wait(g, Duration::from_millis(50));
                continue;
            }
            let replay = g.next < g.cut_until;
            if stopping() || (g.exhausted && !replay) {
                if g.in_flight.is_empty() {
                    g.phase = Phase::Final;
                    return Job::Final { txid: g.next };
                }
                g = self.wait(g, Duration::from_millis(50));
                continue;
            }
            if let Some(at) = g.resume_at {
                let wait = at.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    g = self.wait(g, wait.min(Duration::from_millis(50)));
                    continue;
                }
                g.resume_at = None;
            }
            if g.in_flight.len() >= self.max_in_flight {
                g = self.wait(g, Duration::from_millis(50));
                continue;
            }
            let due = match g.last_start {
                Some(t) if !replay && !g.backlog => {
                    (t + self.interval).saturating_duration_since(Instant::now())
                }
                _ => Duration::ZERO,
            };
            if !due.is_zero() {
                g = self.wait(g, due.min(Duration::from_millis(50)));
                continue;
            }
            let txid = g.next;
            g.next += 1;
            g.cut_until = g.cut_until.max(txid + 1);
            g.in_flight.insert(txid);
            if !replay {
                // Replays do not use up the interval: they only redo what was cut.
                g.last_start = Some(Instant::now());
            }
            return Job::Batch { txid, replay };
        }
    }

    fn aborted(g: &St, txid: u64) -> bool {
        g.abort_from.is_some_and(|n| txid >= n)
    }

    /// Waits until task `cell` may take batch `txid`; false if the batch was abandoned.
    pub(super) fn wait_turn(&self, cell: usize, txid: u64) -> bool {
        let mut g = self.lock();
        loop {
            if Self::aborted(&g, txid) {
                return false;
            }
            if g.turns[cell] == txid {
                return true;
            }
            g = self.wait(g, Duration::from_millis(50));
        }
    }

    /// Task `cell` is done with batch `txid`.
    pub(super) fn pass_turn(&self, cell: usize, txid: u64) {
        let mut g = self.lock();
        if g.turns[cell] == txid {
            g.turns[cell] = txid + 1;
        }
        drop(g);
        self.cv.notify_all();
    }

    /// Batch `txid` failed: it and every later batch will be emitted again.
    pub(super) fn fail(&self, txid: u64) {
        let mut g = self.lock();
        g.abort_from = Some(g.abort_from.map_or(txid, |n| n.min(txid)));
        g.failures = g.failures.saturating_add(1);
        drop(g);
        self.cv.notify_all();
    }

    /// A driver gives up batch `txid` (it failed or was abandoned).
    pub(super) fn abandon(&self, txid: u64) {
        self.lock().in_flight.remove(&txid);
        self.cv.notify_all();
    }

    /// Waits until every batch before `txid` has committed; false if `txid` was
    /// abandoned meanwhile.
    pub(super) fn wait_commit_turn(&self, txid: u64) -> bool {
        let mut g = self.lock();
        loop {
            if Self::aborted(&g, txid) {
                return false;
            }
            if g.committed + 1 == txid {
                return true;
            }
            g = self.wait(g, Duration::from_millis(50));
        }
    }

    /// Batch `txid` has committed.
    pub(super) fn committed(&self, txid: u64) {
        let mut g = self.lock();
        g.committed = txid;
        g.in_flight.remove(&txid);
        g.failures = 0;
        drop(g);
        self.cv.notify_all();
    }

    /// Every task has been reset: batches resume at `from`, after a back-off that grows
    /// with repeated failures (10 ms, 20 ms, ... up to 640 ms). Returns the back-off.
    pub(super) fn reset_done(&self, from: u64) -> Duration {
        let mut g = self.lock();
        g.next = from;
        for t in g.turns.iter_mut() {
            *t = from;
        }
        g.abort_from = None;
        g.phase = Phase::Running;
        let backoff = Duration::from_millis(10u64 << g.failures.min(7).saturating_sub(1));
        g.resume_at = Some(Instant::now() + backoff);
        drop(g);
        self.cv.notify_all();
        backoff
    }

    /// Whether the batch just cut was full (some spout task reached `max_batch`).
    pub(super) fn set_backlog(&self, full: bool) {
        let mut g = self.lock();
        if g.backlog != full {
            g.backlog = full;
            drop(g);
            self.cv.notify_all();
        }
    }

    /// Every spout is finished: no new batches (replays still run).
    pub(super) fn set_exhausted(&self) {
        self.lock().exhausted = true;
        self.cv.notify_all();
    }

    /// The final pass is over: every driver exits.
    pub(super) fn finish(&self) {
        self.lock().phase = Phase::Done;
        self.cv.notify_all();
    }

    /// Batches issued and not yet committed.
    pub(super) fn in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }

    pub(super) fn last_committed(&self) -> u64 {
        self.lock().committed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn never() -> bool {
        false
    }

    #[test]
    fn commits_wait_for_earlier_batches_even_when_a_later_one_finishes_first() {
        let c = Arc::new(Coordinator::new(0, 0, 1, Duration::ZERO, 3));
        assert_eq!(
            c.next_job(&never),
            Job::Batch {
                txid: 1,
                replay: false
            }
        );
        assert_eq!(
            c.next_job(&never),
            Job::Batch {
                txid: 2,
                replay: false
            }
        );
        // Batch 2 is processed first: its commit turn must wait for batch 1.
        let c2 = c.clone();
        let waiter = std::thread::spawn(move || {
            let ok = c2.wait_commit_turn(2);
            (ok, c2.last_committed())
        });
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            !waiter.is_finished(),
            "batch 2 must not commit before batch 1"
        );
        assert!(c.wait_commit_turn(1));
        c.committed(1);
        let (ok, seen) = waiter.join().unwrap_or((false, 0));
        assert!(ok);
        assert_eq!(seen, 1, "batch 2's turn came right after batch 1 committed");
    }

    #[test]
    fn a_failure_abandons_later_batches_and_replays_from_the_failed_one() {
        let c = Coordinator::new(0, 0, 2, Duration::ZERO, 3);
        for t in 1..=3 {
            assert_eq!(
                c.next_job(&never),
                Job::Batch {
                    txid: t,
                    replay: false
                }
            );
        }
        c.fail(2);
        assert!(!c.wait_turn(0, 3), "batch 3 is abandoned");
        assert!(!c.wait_commit_turn(2));
        c.abandon(2);
        c.abandon(3);
        // Batch 1 is before the failure: it still runs and commits.
        assert!(c.wait_turn(0, 1));
        assert!(c.wait_commit_turn(1));
        c.committed(1);
        assert_eq!(c.next_job(&never), Job::Reset { from: 2 });
        c.reset_done(2);
        assert_eq!(
            c.next_job(&never),
            Job::Batch {
                txid: 2,
                replay: true
            }
        );
        assert_eq!(
            c.next_job(&never),
            Job::Batch {
                txid: 3,
                replay: true
            }
        );
        assert_eq!(
            c.next_job(&never),
            Job::Batch {
                txid: 4,
                replay: false
            }
        );
    }

    #[test]
    fn tasks_take_batches_in_txid_order() {
        let c = Arc::new(Coordinator::new(0, 0, 1, Duration::ZERO, 2));
        c.next_job(&never);
        c.next_job(&never);
        let c2 = c.clone();
        let second = std::thread::spawn(move || c2.wait_turn(0, 2));
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            !second.is_finished(),
            "batch 2 waits for batch 1 at the task"
        );
        assert!(c.wait_turn(0, 1));
        c.pass_turn(0, 1);
        assert!(second.join().unwrap_or(false));
    }

    #[test]
    fn a_restart_replays_the_batches_cut_before_the_crash() {
        let c = Coordinator::new(5, 8, 1, Duration::from_secs(3600), 4);
        assert_eq!(
            c.next_job(&never),
            Job::Batch {
                txid: 6,
                replay: true
            }
        );
        assert_eq!(
            c.next_job(&never),
            Job::Batch {
                txid: 7,
                replay: true
            }
        );
        // txid 8 is new: the first new batch does not wait for the interval either.
        assert_eq!(
            c.next_job(&never),
            Job::Batch {
                txid: 8,
                replay: false
            }
        );
    }

    #[test]
    fn exhausted_or_stopping_ends_with_a_final_pass() {
        let c = Coordinator::new(0, 0, 1, Duration::ZERO, 2);
        assert_eq!(
            c.next_job(&never),
            Job::Batch {
                txid: 1,
                replay: false
            }
        );
        c.set_exhausted();
        c.committed(1);
        assert_eq!(c.next_job(&never), Job::Final { txid: 2 });
        c.finish();
        assert_eq!(c.next_job(&|| true), Job::Exit);
    }
}
