//! One bolt task in micro-batch mode outside any topology: feed it batches of timestamped
//! tuples with a watermark each, commit its state, fail a batch or restart it.

use std::sync::Arc;

use super::{BoltHarness, Emitted, EventStep};
use crate::component::transactional::BatchInfo;
use crate::component::{Bolt, ComponentError};
use crate::data::tuple::{Fields, NO_TIME, Values};
use crate::state::TaskState;
use crate::state::store::Store;

/// A bolt task as micro-batch mode runs it: its state in an in-memory store, each batch's
/// tuples executed (what a bolt emits while executing a tuple inherits its event time),
/// then the batch's watermark (`on_watermark`) and `finish_batch`, then the commit.
pub struct BatchHarness {
    make: Box<dyn Fn() -> Box<dyn Bolt>>,
    input: Fields,
    store: Arc<Store>,
    state: Arc<TaskState>,
    inner: BoltHarness,
    txid: u64,
    /// The watermark of the last batch.
    watermark: i64,
}

impl BatchHarness {
    /// A harness for the bolts `make` builds (again after a failed batch or a restart),
    /// whose input tuples have `input` fields. Panics (it is a test helper) if the store
    /// cannot be made or `prepare` fails.
    pub fn new(make: impl Fn() -> Box<dyn Bolt> + 'static, input: Fields) -> Self {
        let store = match Store::in_memory() {
            Ok(s) => Arc::new(s),
            Err(e) => panic!("in-memory store: {e}"),
        };
        let state = Arc::new(TaskState::new(store.clone(), "bolt", 0));
        let inner = BoltHarness::build(make(), input.clone(), None, None, Some(state.clone()));
        BatchHarness {
            make: Box::new(make),
            input,
            store,
            state,
            inner,
            txid: 0,
            watermark: NO_TIME,
        }
    }

    fn info(&self) -> BatchInfo {
        BatchInfo {
            txid: self.txid,
            time_ms: 0,
            replay: false,
            watermark: Some(self.watermark),
        }
    }

    /// Runs the next batch, `tuples` (values, event time) with `watermark` (never below
    /// the last batch's), and commits it. Returns what each tuple emitted, then what the
    /// watermark and `finish_batch` emitted.
    pub fn run_batch(
        &mut self,
        tuples: Vec<(Values, i64)>,
        watermark: i64,
    ) -> Result<(Vec<Vec<Emitted>>, Vec<Emitted>), ComponentError> {
        let out = self.execute_batch(tuples, watermark)?;
        let mut writes = Vec::new();
        self.state.commit(self.txid, &mut writes)?;
        self.store.commit(self.txid, &writes)?;
        Ok(out)
    }

    /// Runs the next batch as [`run_batch`](Self::run_batch) does, then fails it: its
    /// state writes are dropped and the bolt is made again from the committed state, as
    /// the runtime does before it replays the batch. Returns what the failed attempt
    /// emitted.
    pub fn fail_batch(
        &mut self,
        tuples: Vec<(Values, i64)>,
        watermark: i64,
    ) -> Result<(Vec<Vec<Emitted>>, Vec<Emitted>), ComponentError> {
        let (before_txid, before_wm) = (self.txid, self.watermark);
        let out = self.execute_batch(tuples, watermark);
        self.txid = before_txid;
        self.watermark = before_wm;
        self.restart()?;
        out
    }

    /// The process restarts: uncommitted writes are lost; a new bolt resumes from the
    /// committed state.
    pub fn restart(&mut self) -> Result<(), ComponentError> {
        self.state.rollback();
        self.inner = BoltHarness::try_build(
            (self.make)(),
            self.input.clone(),
            None,
            None,
            Some(self.state.clone()),
        )?;
        Ok(())
    }

    fn execute_batch(
        &mut self,
        tuples: Vec<(Values, i64)>,
        watermark: i64,
    ) -> Result<(Vec<Vec<Emitted>>, Vec<Emitted>), ComponentError> {
        self.txid += 1;
        self.watermark = self.watermark.max(watermark);
        let mut each = Vec::with_capacity(tuples.len());
        for (values, at) in tuples {
            each.push(self.inner.execute_at(values, at)?);
        }
        let info = self.info();
        self.inner.run(|b, out| {
            if info.watermark != Some(NO_TIME) {
                b.on_watermark(self.watermark, out)?;
            }
            b.finish_batch(&info, out)
        })?;
        Ok((each, self.inner.drain_emitted()))
    }

    /// Runs a script of timestamped tuples and watermarks (the one
    /// [`BoltHarness::run_events`] takes): each watermark ends a batch of the tuples
    /// before it, which commits. Returns what each step emitted (a watermark step: what
    /// the watermark and `finish_batch` emitted), so the same script can be compared in
    /// both modes.
    pub fn run_events(
        &mut self,
        steps: Vec<EventStep>,
    ) -> Result<Vec<Vec<Emitted>>, ComponentError> {
        let mut out = Vec::new();
        let mut batch = Vec::new();
        for s in steps {
            match s {
                EventStep::At(values, at) => batch.push((values, at)),
                EventStep::Watermark(w) => {
                    let (each, end) = self.run_batch(std::mem::take(&mut batch), w)?;
                    out.extend(each);
                    out.push(end);
                }
            }
        }
        if !batch.is_empty() {
            let (each, end) = self.run_batch(batch, self.watermark)?;
            out.extend(each);
            out.extend((!end.is_empty()).then_some(end));
        }
        Ok(out)
    }

    /// The end of the input (micro-batch mode's last pass): the end of time
    /// (`i64::MAX`) fires every window left, then `finish`. Returns what was emitted.
    pub fn finish(&mut self) -> Result<Vec<Emitted>, ComponentError> {
        self.inner.run(|b, out| {
            b.on_watermark(i64::MAX, out)?;
            b.finish(out)
        })?;
        Ok(self.inner.drain_emitted())
    }
}
