//! Which batch runs next, when each task may take it, and when it may commit.
//!
//! Batches get increasing txids. Every task takes batches in txid order (a task's state
//! sees batch `t` only after `t - 1`), several batches are in flight at once (pipelining),
//! and commits happen strictly in txid order. When batch `n` fails, every batch from `n`
//! on is abandoned; once the batches before `n` have committed, the tasks are reset to
//! their committed state and the batches from `n` are emitted again (Trident does the
//! same).
//!
//! A batch not committed `timeout` after its start times out: the watchdog
//! ([`Coordinator::check_timeouts`]) fails it like any failed batch. A task still inside
//! it cannot be interrupted, so the reset waits for the task to give the batch back; if it
//! has not `2 × timeout` after the batch's start, or batches time out
//! [`MAX_TIMEOUTS_IN_A_ROW`] times without a commit between, the run must stop.

use std::collections::{BTreeMap, BTreeSet};
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

/// Timeouts without a commit between them that stop the run: a task that always takes
/// longer than the timeout would otherwise have its batch replayed for ever.
pub(super) const MAX_TIMEOUTS_IN_A_ROW: u32 = 3;

/// A batch that took too long, as the watchdog found it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Overdue {
    pub(super) txid: u64,
    /// The tasks (cells) running it at that moment.
    pub(super) running: Vec<usize>,
    /// The tasks that had not taken it yet.
    pub(super) waiting: Vec<usize>,
    /// Its commit to the store had begun and not returned.
    pub(super) committing: bool,
    pub(super) verdict: Verdict,
}

/// What becomes of an overdue batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It failed (with every later batch): replayed once its tasks have given it back.
    /// `in_a_row`: timeouts since the last commit, this one included.
    Failed { in_a_row: u32 },
    /// Still not given back `2 × timeout` after its start: the run must stop.
    Stuck,
    /// The [`MAX_TIMEOUTS_IN_A_ROW`]th timeout without a commit: the run must stop.
    TooMany,
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
    /// Batches issued and not committed or given up yet, with when each started.
    in_flight: BTreeMap<u64, Instant>,
    abort_from: Option<u64>,
    turns: Vec<u64>,
    /// The batch each task is running (between its turn and passing it on).
    busy: Vec<Option<u64>>,
    /// The batch whose commit has begun.
    committing: Option<u64>,
    /// Batches that timed out and are still in flight (their tasks have not given them
    /// back yet).
    timed_out: BTreeSet<u64>,
    /// Timeouts since the last commit.
    timeouts_in_a_row: u32,
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
    /// A batch not committed this long after its start fails (`batch_timeout`).
    timeout: Duration,
}

impl Coordinator {
    /// `committed`: the last committed txid; `cut_until`: one past the last txid cut
    /// before (a restart replays the ones in between); `cells`: tasks that take turns;
    /// `timeout`: `batch_timeout`.
    pub(super) fn new(
        committed: u64,
        cut_until: u64,
        cells: usize,
        interval: Duration,
        max_in_flight: usize,
        timeout: Duration,
    ) -> Self {
        Coordinator {
            st: Mutex::new(St {
                next: committed + 1,
                committed,
                cut_until: cut_until.max(committed + 1),
                in_flight: BTreeMap::new(),
                abort_from: None,
                turns: vec![committed + 1; cells],
                busy: vec![None; cells],
                committing: None,
                timed_out: BTreeSet::new(),
                timeouts_in_a_row: 0,
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
            timeout,
        }
    }

    pub(super) fn timeout(&self) -> Duration {
        self.timeout
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
            g.in_flight.insert(txid, Instant::now());
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
                g.busy[cell] = Some(txid);
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
        if g.busy[cell] == Some(txid) {
            g.busy[cell] = None;
        }
        drop(g);
        self.cv.notify_all();
    }

    /// Batch `txid` failed: it and every later batch will be emitted again.
    pub(super) fn fail(&self, txid: u64) {
        let mut g = self.lock();
        g.abort_from = Some(g.abort_from.map_or(txid, |n| n.min(txid)));
        g.failures = g.failures.saturating_add(1);
        if g.committing == Some(txid) {
            g.committing = None;
        }
        drop(g);
        self.cv.notify_all();
    }

    /// A driver gives up batch `txid` (it failed or was abandoned). Returns whether it
    /// had timed out (its tuples were not counted as failed yet).
    pub(super) fn abandon(&self, txid: u64) -> bool {
        let mut g = self.lock();
        g.in_flight.remove(&txid);
        let timed_out = g.timed_out.remove(&txid);
        drop(g);
        self.cv.notify_all();
        timed_out
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
                g.committing = Some(txid);
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
        g.timeouts_in_a_row = 0;
        if g.committing == Some(txid) {
            g.committing = None;
        }
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
        g.busy.iter_mut().for_each(|b| *b = None);
        g.committing = None;
        g.abort_from = None;
        g.phase = Phase::Running;
        let backoff = Duration::from_millis(10u64 << g.failures.min(7).saturating_sub(1));
        g.resume_at = Some(Instant::now() + backoff);
        drop(g);
        self.cv.notify_all();
        backoff
    }

    /// The watchdog's check, at `now`: the oldest batch in flight that is overdue, if
    /// any. A batch not committed `timeout` after its start fails here (unless its commit
    /// has begun: a commit cannot be taken back); one still in flight `2 × timeout` after
    /// its start (its tasks have not given it back), or the
    /// [`MAX_TIMEOUTS_IN_A_ROW`]th timeout without a commit, means the run must stop
    /// ([`Self::give_up`]). Each timeout is reported once.
    pub(super) fn check_timeouts(&self, now: Instant) -> Option<Overdue> {
        let mut g = self.lock();
        if g.phase == Phase::Done {
            return None;
        }
        let (txid, mut verdict) = g.in_flight.iter().find_map(|(&txid, &start)| {
            let age = now.saturating_duration_since(start);
            if age >= self.timeout.saturating_mul(2) {
                Some((txid, Verdict::Stuck))
            } else if age >= self.timeout && !Self::aborted(&g, txid) && g.committing != Some(txid)
            {
                Some((txid, Verdict::Failed { in_a_row: 0 }))
            } else {
                None
            }
        })?;
        if let Verdict::Failed { .. } = verdict {
            g.abort_from = Some(g.abort_from.map_or(txid, |n| n.min(txid)));
            g.failures = g.failures.saturating_add(1);
            g.timed_out.insert(txid);
            g.timeouts_in_a_row = g.timeouts_in_a_row.saturating_add(1);
            verdict = if g.timeouts_in_a_row >= MAX_TIMEOUTS_IN_A_ROW {
                Verdict::TooMany
            } else {
                Verdict::Failed {
                    in_a_row: g.timeouts_in_a_row,
                }
            };
        }
        let running: Vec<usize> = (0..g.busy.len())
            .filter(|&c| g.busy[c] == Some(txid))
            .collect();
        let waiting = (0..g.turns.len())
            .filter(|&c| g.turns[c] <= txid && !running.contains(&c))
            .collect();
        let committing = g.committing == Some(txid);
        drop(g);
        self.cv.notify_all();
        Some(Overdue {
            txid,
            running,
            waiting,
            committing,
            verdict,
        })
    }

    /// The run stops without waiting for the batches in flight (a task is stuck in one):
    /// every batch not committing yet is abandoned, and drivers exit instead of taking
    /// another job.
    pub(super) fn give_up(&self) {
        let mut g = self.lock();
        let from = g.committed + 1;
        g.abort_from = Some(g.abort_from.map_or(from, |n| n.min(from)));
        g.phase = Phase::Done;
        drop(g);
        self.cv.notify_all();
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

    const HOUR: Duration = Duration::from_secs(3600);

    fn never() -> bool {
        false
    }

    #[test]
    fn commits_wait_for_earlier_batches_even_when_a_later_one_finishes_first() {
        let c = Arc::new(Coordinator::new(0, 0, 1, Duration::ZERO, 3, HOUR));
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
        let c = Coordinator::new(0, 0, 2, Duration::ZERO, 3, HOUR);
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
        let c = Arc::new(Coordinator::new(0, 0, 1, Duration::ZERO, 2, HOUR));
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
        let c = Coordinator::new(5, 8, 1, HOUR, 4, HOUR);
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
        let c = Coordinator::new(0, 0, 1, Duration::ZERO, 2, HOUR);
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

    fn batch(txid: u64, replay: bool) -> Job {
        Job::Batch { txid, replay }
    }

    /// Two cells (a spout task, 0, and a bolt task, 1); a timeout of 10 s.
    fn two_batches_in_flight() -> (Coordinator, Instant) {
        let c = Coordinator::new(0, 0, 2, Duration::ZERO, 2, Duration::from_secs(10));
        assert_eq!(c.next_job(&never), batch(1, false));
        assert_eq!(c.next_job(&never), batch(2, false));
        // After both started: a check at t0 + d sees them at least d old.
        (c, Instant::now())
    }

    #[test]
    fn a_batch_not_committed_within_the_timeout_fails_and_is_replayed_once_given_back() {
        let (c, t0) = two_batches_in_flight();
        // Batch 1 passes the spout task and is stuck in the bolt task; batch 2 is cut.
        assert!(c.wait_turn(0, 1));
        c.pass_turn(0, 1);
        assert!(c.wait_turn(1, 1));
        assert!(c.wait_turn(0, 2));
        c.pass_turn(0, 2);
        assert_eq!(c.check_timeouts(t0 + Duration::from_secs(9)), None);
        let o = c.check_timeouts(t0 + Duration::from_secs(11));
        assert_eq!(
            o,
            Some(Overdue {
                txid: 1,
                running: vec![1],
                waiting: vec![],
                committing: false,
                verdict: Verdict::Failed { in_a_row: 1 },
            })
        );
        assert_eq!(
            c.check_timeouts(t0 + Duration::from_secs(12)),
            None,
            "reported once"
        );
        // Batch 2 is abandoned; batch 1 cannot commit when its task comes back.
        assert!(!c.wait_turn(1, 2));
        assert!(!c.abandon(2), "batch 2 did not time out itself");
        c.pass_turn(1, 1);
        assert!(!c.wait_commit_turn(1));
        // No reset while the stuck task had batch 1: the reset comes once it is given back.
        assert!(c.abandon(1), "batch 1 timed out");
        assert_eq!(c.next_job(&never), Job::Reset { from: 1 });
        c.reset_done(1);
        assert_eq!(c.next_job(&never), batch(1, true));
    }

    #[test]
    fn a_batch_whose_commit_has_begun_does_not_time_out() {
        let (c, t0) = two_batches_in_flight();
        for cell in 0..2 {
            assert!(c.wait_turn(cell, 1));
            c.pass_turn(cell, 1);
        }
        assert!(c.wait_commit_turn(1));
        // Batch 1 is committing (not failed); batch 2, not committing, times out.
        let o = c.check_timeouts(t0 + Duration::from_secs(11));
        assert_eq!(
            o.map(|o| (o.txid, o.verdict)),
            Some((2, Verdict::Failed { in_a_row: 1 }))
        );
        c.committed(1);
        assert_eq!(c.last_committed(), 1);
    }

    #[test]
    fn a_task_that_does_not_give_a_timed_out_batch_back_stops_the_run() {
        let (c, t0) = two_batches_in_flight();
        assert!(c.wait_turn(0, 1));
        c.pass_turn(0, 1);
        assert!(c.wait_turn(1, 1));
        let o = c.check_timeouts(t0 + Duration::from_secs(10));
        assert_eq!(o.map(|o| o.verdict), Some(Verdict::Failed { in_a_row: 1 }));
        assert_eq!(c.check_timeouts(t0 + Duration::from_secs(19)), None);
        let o = c.check_timeouts(t0 + Duration::from_secs(20));
        assert_eq!(
            o,
            Some(Overdue {
                txid: 1,
                running: vec![1],
                waiting: vec![],
                committing: false,
                verdict: Verdict::Stuck,
            })
        );
        // Giving up: the other drivers exit, nothing more commits, nothing more is
        // reported.
        c.give_up();
        assert!(!c.wait_turn(0, 2));
        assert!(!c.wait_commit_turn(2));
        assert_eq!(c.next_job(&never), Job::Exit);
        assert_eq!(c.check_timeouts(t0 + Duration::from_secs(60)), None);
    }

    /// Issues batch `txid` (a replay after the first time), times it out, gives it back
    /// and resets; the verdict.
    fn time_out(c: &Coordinator, txid: u64) -> Option<Verdict> {
        let job = c.next_job(&never);
        let t0 = Instant::now();
        assert!(
            matches!(job, Job::Batch { txid: t, .. } if t == txid),
            "{job:?}"
        );
        let v = c
            .check_timeouts(t0 + Duration::from_secs(10))
            .map(|o| o.verdict);
        assert!(c.abandon(txid));
        assert_eq!(c.next_job(&never), Job::Reset { from: txid });
        c.reset_done(txid);
        v
    }

    #[test]
    fn timeouts_in_a_row_stop_the_run_and_a_commit_between_them_starts_the_count_again() {
        let c = Coordinator::new(0, 0, 1, Duration::ZERO, 1, Duration::from_secs(10));
        assert_eq!(time_out(&c, 1), Some(Verdict::Failed { in_a_row: 1 }));
        assert_eq!(time_out(&c, 1), Some(Verdict::Failed { in_a_row: 2 }));
        // Batch 1 commits at last: the count starts again.
        assert_eq!(c.next_job(&never), batch(1, true));
        let t0 = Instant::now();
        assert!(c.wait_turn(0, 1));
        c.pass_turn(0, 1);
        assert!(c.wait_commit_turn(1));
        c.committed(1);
        assert_eq!(c.check_timeouts(t0 + Duration::from_secs(60)), None);
        assert_eq!(time_out(&c, 2), Some(Verdict::Failed { in_a_row: 1 }));
        assert_eq!(time_out(&c, 2), Some(Verdict::Failed { in_a_row: 2 }));
        assert_eq!(time_out(&c, 2), Some(Verdict::TooMany));
    }
}
