//! One batch's way through the topology: spout tasks cut (or re-emit) it, bolt tasks run
//! it in topological order, then it commits — state, batch record, spout acks — in txid
//! order.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::cells::{BoltCell, Routed, TaskWatermark};
use super::coordinator::{Coordinator, Job, MAX_TIMEOUTS_IN_A_ROW, Overdue, Verdict};
use super::spout_slot::SpoutSlot;
use crate::component::transactional::BatchInfo;
use crate::io::clock::{Clock, WallClock};
use crate::state::{Store, TaskState};
use crate::sync::lock;
use crate::task::control::RunControl;
use crate::task::delivery::Delivery;

/// What the store keeps of a batch until a later one commits.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) time_ms: u64,
    /// `component/index` → the transactional spout task's metadata.
    pub(super) spouts: BTreeMap<String, Json>,
    /// Event time: the batch's watermark (see [`BatchInfo::watermark`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) watermark: Option<i64>,
}

/// Batch times are wall-clock ms, so windows line up with event mode's.
fn now_ms() -> u64 {
    WallClock.now_ms()
}

/// Called with the store just before batch `txid`'s record is stored (tests check the
/// order of records with it).
pub(super) type RecordHook = Arc<dyn Fn(&Store, u64) + Send + Sync>;

/// Everything the driver threads share.
pub(super) struct Run {
    pub(super) coord: Coordinator,
    pub(super) spouts: Vec<SpoutSlot>,
    /// In topological order.
    pub(super) bolts: Vec<Mutex<BoltCell>>,
    pub(super) states: Vec<Arc<TaskState>>,
    /// Bolt task id → index in `bolts`.
    pub(super) slot_of: HashMap<u32, usize>,
    pub(super) store: Arc<Store>,
    pub(super) records: Mutex<BTreeMap<u64, Record>>,
    pub(super) control: Arc<RunControl>,
    pub(super) max_batch: usize,
    pub(super) interval: Duration,
    pub(super) committed: Vec<Arc<AtomicU64>>,
    pub(super) replayed: Vec<Arc<AtomicU64>>,
    /// `timed_out_batches` of each spout component.
    pub(super) timed_out: Vec<Arc<AtomicU64>>,
    /// What each task (cell: the spout tasks, then the bolt tasks) is called in logs and
    /// errors: `spout source[1]`, `bolt counts[4]`.
    pub(super) labels: Vec<String>,
    /// The state directory (`None`: in memory), for the error that stops a stuck run.
    pub(super) state_dir: Option<std::path::PathBuf>,
    pub(super) before_record: Option<RecordHook>,
    /// Event time: the watermark of the last batch cut (`None`: no spout assigns event
    /// time). Batches are cut in txid order, so each new one starts from its
    /// predecessor's.
    pub(super) watermark: Mutex<Option<i64>>,
}

/// A batch's watermark from its spout tasks' after the cut: the minimum over the tasks that
/// are not idle, never below `prev` (all idle: `prev`). `None` when no task assigns event
/// time.
pub(super) fn batch_watermark(prev: Option<i64>, tasks: &[TaskWatermark]) -> Option<i64> {
    if tasks.iter().all(|t| *t == TaskWatermark::Untimed) {
        return None;
    }
    let min = tasks
        .iter()
        .filter_map(|t| match t {
            TaskWatermark::At(w) => Some(*w),
            _ => None,
        })
        .min();
    let floor = prev.unwrap_or(i64::MIN);
    Some(min.map_or(floor, |m| m.max(floor)))
}

impl Run {
    fn route(&self, routed: Routed, inputs: &mut [Delivery]) {
        for (task, d) in routed {
            if let Some(&j) = self.slot_of.get(&task) {
                inputs[j].extend(d);
            }
        }
    }

    /// A driver thread: runs jobs until the run ends.
    pub(super) fn drive(&self) {
        let stopping = || self.control.stop_requested();
        loop {
            match self.coord.next_job(&stopping) {
                Job::Batch { txid, replay } => self.run_batch(txid, replay),
                Job::Reset { from } => {
                    for b in &self.bolts {
                        lock(b).reset(&self.control);
                    }
                    let backoff = self.coord.reset_done(from);
                    tracing::debug!("tasks reset; replaying from batch {from} in {backoff:?}");
                }
                Job::Final { txid } => {
                    self.run_final(txid);
                    self.coord.finish();
                }
                Job::Exit => return,
            }
        }
    }

    fn fail(&self, txid: u64, msg: &str) {
        let n = self
            .replayed
            .first()
            .map_or(0, |c| c.load(Ordering::Relaxed));
        if n < 10 || n.is_power_of_two() {
            tracing::warn!("batch {txid} failed: {msg}; replaying it (and later batches)");
        }
        for c in &self.replayed {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.coord.fail(txid);
        for s in &self.spouts {
            s.lock().failed(txid);
        }
        self.coord.abandon(txid);
    }

    /// Gives batch `txid` up (abandoned, or failed elsewhere); when it had timed out, its
    /// tuples count as failed now.
    fn abandon(&self, txid: u64) {
        if self.coord.abandon(txid) {
            for s in &self.spouts {
                s.lock().failed(txid);
            }
        }
    }

    /// The watchdog's check (the supervisor calls it every few ms): fails a batch that
    /// has timed out; returns the error that stops the run when a task does not give a
    /// timed-out batch back, or batches keep timing out.
    pub(super) fn watch(&self, now: Instant) -> Option<String> {
        let o = self.coord.check_timeouts(now)?;
        let t = self.coord.timeout();
        let limit = humantime::format_duration(t);
        let who = self.describe(&o);
        let txid = o.txid;
        if matches!(o.verdict, Verdict::Failed { .. } | Verdict::TooMany) {
            for c in self.replayed.iter().chain(&self.timed_out) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        let why = match o.verdict {
            Verdict::Failed { in_a_row } => {
                tracing::warn!(
                    "batch {txid} timed out: not committed {limit} after its start (batch_timeout; {in_a_row} in a row); {who}. It fails: it and the batches after it are replayed once its tasks are done with it (the run stops if they are not within {limit} more)"
                );
                return None;
            }
            Verdict::Stuck => format!(
                "batch {txid} is stuck: not committed {} after its start (batch_timeout {limit}, then as long again for its tasks to give it back); {who}. A call that does not return (a write to a destination that hangs?) cannot be interrupted, so the run stops",
                humantime::format_duration(t.saturating_mul(2))
            ),
            Verdict::TooMany => format!(
                "batch {txid} timed out {MAX_TIMEOUTS_IN_A_ROW} times in a row (batch_timeout {limit}); {who}. The run stops"
            ),
        };
        let committed = self.coord.last_committed();
        let resume = match &self.state_dir {
            Some(d) => format!(
                "batches after {committed} were not committed; the state directory {} keeps batch {committed} and every one before it: the next run with it resumes after batch {committed} and replays the batches recorded after it",
                d.display()
            ),
            None => format!(
                "batches after {committed} were not committed; the state is in memory and is lost (with --state-dir the next run resumes after the last committed batch)"
            ),
        };
        Some(format!("{why}. {resume}"))
    }

    /// Which tasks an overdue batch was waiting for.
    fn describe(&self, o: &Overdue) -> String {
        let names = |cells: &[usize]| {
            cells
                .iter()
                .map(|&c| {
                    self.labels
                        .get(c)
                        .cloned()
                        .unwrap_or_else(|| format!("task {c}"))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !o.running.is_empty() {
            parts.push(format!("still running it: {}", names(&o.running)));
        }
        if o.committing {
            parts.push("its commit to the state store has not returned".to_string());
        }
        if !o.waiting.is_empty() {
            parts.push(format!("not reached it yet: {}", names(&o.waiting)));
        }
        if parts.is_empty() {
            parts.push("every task was done with it".to_string());
        }
        parts.join("; ")
    }

    fn run_batch(&self, txid: u64, replay: bool) {
        let recorded = lock(&self.records)
            .get(&txid)
            .map(|r| (r.time_ms, r.watermark));
        let mut info = BatchInfo {
            txid,
            time_ms: recorded.map_or_else(now_ms, |r| r.0),
            replay: replay && recorded.is_some(),
            watermark: recorded.and_then(|r| r.1),
        };
        let mut marks = Vec::with_capacity(self.spouts.len());
        let mut inputs: Vec<Delivery> =
            (0..self.bolts.len()).map(|_| Delivery::default()).collect();
        let mut metas = BTreeMap::new();
        let mut exhausted = true;
        let mut full = false;
        for (i, cell) in self.spouts.iter().enumerate() {
            if !self.coord.wait_turn(i, txid) {
                self.abandon(txid);
                return;
            }
            let mut c = cell.lock();
            let res = c.emit(&info, self.max_batch, self.interval);
            c.publish();
            exhausted &= c.exhausted;
            full |= c.full;
            marks.push(c.watermark());
            let key = c.key.clone();
            if recorded.is_none() && i + 1 == self.spouts.len() {
                // Still this batch's turn at the last spout task: no later batch has
                // taken the watermark on yet.
                let mut last = lock(&self.watermark);
                info.watermark = batch_watermark(*last, &marks);
                *last = info.watermark;
            }
            drop(c);
            match res {
                Ok((routed, meta)) => {
                    self.route(routed, &mut inputs);
                    if let Some(m) = meta {
                        metas.insert(key, m);
                    }
                }
                Err(e) => return self.fail(txid, &e),
            }
        }
        if exhausted {
            self.coord.set_exhausted();
        }
        if !info.replay {
            self.coord.set_backlog(full);
        }
        if recorded.is_none() {
            let rec = Record {
                time_ms: info.time_ms,
                spouts: metas,
                watermark: info.watermark,
            };
            if let Some(hook) = &self.before_record {
                hook(&self.store, txid);
            }
            let stored = serde_json::to_vec(&rec)
                .map_err(|e| e.to_string())
                .and_then(|b| self.store.put_batch(txid, &b).map_err(|e| e.to_string()));
            if let Err(e) = stored {
                self.control
                    .fatal(format!("cannot record batch {txid}: {e}"));
                return self.fail(txid, &e);
            }
            lock(&self.records).insert(txid, rec);
        }
        // The spouts cut the next batch only once this one is recorded: records are
        // stored in txid order, so a crash never leaves batch t + 1 recorded without
        // batch t (a restart would cut t again after t + 1's range, then cut t + 2 after
        // t + 1's range again: records lost and counted twice).
        for i in 0..self.spouts.len() {
            self.coord.pass_turn(i, txid);
        }
        let base = self.spouts.len();
        for (j, cell) in self.bolts.iter().enumerate() {
            if !self.coord.wait_turn(base + j, txid) {
                self.abandon(txid);
                return;
            }
            let tuples = std::mem::take(&mut inputs[j]);
            let res = lock(cell).run(&info, tuples, false);
            match res {
                Ok(routed) => self.route(routed, &mut inputs),
                Err(e) => return self.fail(txid, &e),
            }
            self.coord.pass_turn(base + j, txid);
        }
        if !self.coord.wait_commit_turn(txid) {
            self.abandon(txid);
            return;
        }
        self.commit(txid);
    }

    fn commit(&self, txid: u64) {
        let mut writes = Vec::new();
        let encoded: Result<(), String> = self
            .states
            .iter()
            .try_for_each(|s| s.commit(txid, &mut writes).map_err(|e| e.to_string()));
        if let Err(e) =
            encoded.and_then(|_| self.store.commit(txid, &writes).map_err(|e| e.to_string()))
        {
            self.control
                .fatal(format!("cannot commit batch {txid}: {e}"));
            return self.fail(txid, &e);
        }
        let now = Instant::now();
        for s in &self.spouts {
            s.commit(txid, now);
        }
        {
            let mut r = lock(&self.records);
            *r = r.split_off(&txid);
        }
        for c in &self.committed {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.coord.committed(txid);
    }

    /// The end of the run: every bolt flushes what it holds (`finish`), in topological
    /// order. Nothing of this pass is committed.
    fn run_final(&self, txid: u64) {
        let info = BatchInfo {
            txid,
            time_ms: now_ms(),
            replay: false,
            watermark: *lock(&self.watermark),
        };
        let mut inputs: Vec<Delivery> =
            (0..self.bolts.len()).map(|_| Delivery::default()).collect();
        for (j, cell) in self.bolts.iter().enumerate() {
            let tuples = std::mem::take(&mut inputs[j]);
            match lock(cell).run(&info, tuples, true) {
                Ok(routed) => self.route(routed, &mut inputs),
                Err(e) => tracing::warn!("final pass: {e}"),
            }
        }
        for s in &self.states {
            s.rollback();
        }
    }
}
