//! Helpers for testing components: drive one bolt by hand and collect what it emits.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::component::collector::BoltCollector;
use crate::component::registry::BoltConfig;
use crate::component::transactional::BatchInfo;
use crate::component::{Bolt, ComponentResult, OutputDeclarer, TaskContext};
use crate::data::columns::Columns;
use crate::data::tuple::{Fields, MetaRef, StreamMeta, Tuple, Values};
use crate::metrics::{CustomCounters, TopkBoard};
use crate::task::outbox::{Outbox, Route, StreamOut, Target};
use crate::task::transport::Envelope;

mod batch;
pub use batch::BatchHarness;

/// A tuple a bolt under test emitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub stream: String,
    pub values: Values,
    pub event_time: Option<i64>,
}

/// A step of an event-time script ([`BoltHarness::run_events`]).
#[derive(Debug, Clone)]
pub enum EventStep {
    /// A tuple with these values, at this event time.
    At(Values, i64),
    /// The input's watermark advances to this.
    Watermark(i64),
}

/// One bolt task outside any topology: feed it tuples and ticks, read its output.
pub struct BoltHarness {
    bolt: Box<dyn Bolt>,
    outbox: Outbox,
    rx: mpsc::Receiver<Envelope>,
    input: Fields,
    ctx: TaskContext,
}

impl BoltHarness {
    /// A harness for `bolt`, whose input tuples have `input` fields. Everything the bolt
    /// emits on its default stream is collected.
    pub fn new(bolt: Box<dyn Bolt>, input: Fields) -> Self {
        Self::with_output_filter(bolt, input, None)
    }

    /// As [`new`](Self::new), the bolt told that every subscriber applies `filter` to
    /// its output ([`TaskContext::output_filter`], filter push-down).
    pub fn with_output_filter(
        bolt: Box<dyn Bolt>,
        input: Fields,
        filter: Option<crate::component::InputFilter>,
    ) -> Self {
        Self::build(bolt, input, filter, None, None)
    }

    /// As [`new`](Self::new), the bolt told to wait for `expected` partials (or
    /// punctuations) per window ([`TaskContext::expected_partials`]), as the runtime does
    /// in distributed mode.
    pub fn with_expected_partials(bolt: Box<dyn Bolt>, input: Fields, expected: usize) -> Self {
        Self::build(bolt, input, None, Some(expected), None)
    }

    fn build(
        bolt: Box<dyn Bolt>,
        input: Fields,
        filter: Option<crate::component::InputFilter>,
        expected_partials: Option<usize>,
        state: Option<Arc<crate::state::TaskState>>,
    ) -> Self {
        match Self::try_build(bolt, input, filter, expected_partials, state) {
            Ok(h) => h,
            Err(e) => panic!("prepare failed: {e}"),
        }
    }

    fn try_build(
        mut bolt: Box<dyn Bolt>,
        input: Fields,
        filter: Option<crate::component::InputFilter>,
        expected_partials: Option<usize>,
        state: Option<Arc<crate::state::TaskState>>,
    ) -> Result<Self, crate::component::ComponentError> {
        let mut decl = OutputDeclarer::default();
        bolt.declare_outputs(&mut decl);
        let (tx, rx) = mpsc::channel(1 << 20);
        let streams = decl
            .streams
            .iter()
            .map(|(name, fields)| StreamOut {
                meta: MetaRef::Shared(Arc::new(StreamMeta {
                    component: "bolt".into(),
                    stream: name.as_str().into(),
                    fields: fields.clone(),
                })),
                routes: vec![Route::Global { target: 0 }],
            })
            .collect();
        let outbox = Outbox::new(2, vec![Target::new(2, tx)], streams, 1, false);
        let ctx = TaskContext {
            component: "bolt".into(),
            task_id: 2,
            task_index: 0,
            parallelism: 1,
            worker: 0,
            component_tasks: Arc::new(BTreeMap::new()),
            upstream_tasks: 1,
            expected_partials,
            counters: CustomCounters::default(),
            pulse: None,
            topk: TopkBoard::default(),
            control: None,
            state,
            io: None,
            read_fields: None,
            output_filter: filter,
            extension: None,
        };
        bolt.prepare(&ctx)?;
        Ok(BoltHarness {
            bolt,
            outbox,
            rx,
            input,
            ctx,
        })
    }

    /// The context given to the bolt (its counters, its top-k board).
    pub fn context(&self) -> &TaskContext {
        &self.ctx
    }

    fn run(
        &mut self,
        f: impl FnOnce(&mut dyn Bolt, &mut BoltCollector<'_>) -> ComponentResult,
    ) -> ComponentResult {
        let mut outcomes = crate::task::ledger::Outcomes::default();
        let mut col = BoltCollector {
            outbox: &mut self.outbox,
            ledger: None,
            outcomes: &mut outcomes,
            current: None,
            acked: 0,
            failed: 0,
            scope: Default::default(),
            late: 0,
        };
        let r = f(self.bolt.as_mut(), &mut col);
        self.outbox.flush();
        r
    }

    fn drain(&mut self) -> Vec<Values> {
        let mut out = Vec::new();
        while let Ok(env) = self.rx.try_recv() {
            if let Envelope::Tuples(ts) = env {
                out.extend(ts.into_iter().map(Tuple::into_values));
            }
        }
        out
    }

    /// Executes one input tuple; returns what was emitted (or the bolt's error).
    pub fn execute(
        &mut self,
        values: impl Into<Values>,
    ) -> Result<Vec<Values>, crate::component::ComponentError> {
        let t = Tuple::new_detached(
            "upstream",
            crate::data::tuple::DEFAULT_STREAM,
            self.input.clone(),
            values,
        );
        self.run(|b, out| b.execute(t, out))?;
        Ok(self.drain())
    }

    /// Gives the bolt `inputs` as one chunk of columns (micro-batch mode's
    /// `execute_columns`) and returns the rows it emits, or `None` when it takes no
    /// columns. Panics (it is a test helper) if the rows do not fit the input fields.
    pub fn execute_columns(
        &mut self,
        inputs: &[Values],
    ) -> Option<Result<Vec<Values>, crate::component::ComponentError>> {
        let chunk = match Columns::from_rows(self.input.len(), inputs)
            .for_test("upstream", self.input.clone())
        {
            Ok(c) => c,
            Err(e) => panic!("bad input rows: {e}"),
        };
        let batch = BatchInfo {
            txid: 1,
            time_ms: 0,
            replay: false,
            watermark: None,
        };
        Some(
            self.bolt
                .execute_columns(&batch, &chunk)?
                .map(|out| (0..out.rows()).map(|i| out.row(i)).collect()),
        )
    }

    /// Event time: executes one input tuple that happened at `event_ms` (as a source with
    /// an `event_time` option would stamp it); returns everything emitted, with streams and
    /// event times (what the bolt emits while executing it inherits its time).
    pub fn execute_at(
        &mut self,
        values: impl Into<Values>,
        event_ms: i64,
    ) -> Result<Vec<Emitted>, crate::component::ComponentError> {
        let t = Tuple::new_detached(
            "upstream",
            crate::data::tuple::DEFAULT_STREAM,
            self.input.clone(),
            values,
        )
        .with_event_time(event_ms);
        self.outbox.event_time = event_ms;
        let r = self.run(|b, out| b.execute(t, out));
        self.outbox.event_time = crate::data::tuple::NO_TIME;
        r?;
        Ok(self.drain_emitted())
    }

    /// Event time: the input's watermark advances to `watermark` (`i64::MAX`: the input
    /// ended); returns everything emitted, with streams.
    pub fn watermark(
        &mut self,
        watermark: i64,
    ) -> Result<Vec<Emitted>, crate::component::ComponentError> {
        self.run(|b, out| b.on_watermark(watermark, out))?;
        Ok(self.drain_emitted())
    }

    /// Runs a script of timestamped tuples and watermarks (as Beam's TestStream does) and
    /// returns what each step emitted.
    pub fn run_events(
        &mut self,
        steps: Vec<EventStep>,
    ) -> Result<Vec<Vec<Emitted>>, crate::component::ComponentError> {
        steps
            .into_iter()
            .map(|s| match s {
                EventStep::At(values, at) => self.execute_at(values, at),
                EventStep::Watermark(w) => self.watermark(w),
            })
            .collect()
    }

    fn drain_emitted(&mut self) -> Vec<Emitted> {
        let mut out = Vec::new();
        while let Ok(env) = self.rx.try_recv() {
            if let Envelope::Tuples(ts) = env {
                out.extend(ts.into_iter().map(|t| Emitted {
                    stream: t.source_stream().to_string(),
                    event_time: t.event_time(),
                    values: t.into_values(),
                }));
            }
        }
        out
    }

    /// Delivers a tick tuple.
    pub fn tick(&mut self) -> Result<Vec<Values>, crate::component::ComponentError> {
        self.run(|b, out| b.tick(out))?;
        Ok(self.drain())
    }

    /// Ends the input (as at the end of a bounded run).
    pub fn finish(&mut self) -> Result<Vec<Values>, crate::component::ComponentError> {
        self.run(|b, out| b.finish(out))?;
        Ok(self.drain())
    }

    /// The bolt's [`Bolt::snapshot`].
    pub fn snapshot(&self) -> Option<Result<Vec<u8>, crate::component::ComponentError>> {
        self.bolt.snapshot()
    }

    /// The bolt's [`Bolt::restore`].
    pub fn restore(&mut self, snapshot: &[u8]) -> ComponentResult {
        self.bolt.restore(snapshot)
    }

    /// Runs one [`Step`]; returns what the bolt emitted. Panics (it is a test helper) if
    /// the bolt fails.
    pub fn step(&mut self, step: &Step) -> Vec<Values> {
        let out = match step {
            Step::Execute(v) => self.execute(v.clone()),
            Step::Tick => self.tick(),
            Step::Finish => self.finish(),
            Step::Clock(clock, ms) => {
                clock.set(*ms);
                Ok(Vec::new())
            }
        };
        out.unwrap_or_else(|e| panic!("{step:?} failed: {e}"))
    }
}

/// One thing done to a bolt in [`assert_snapshot_resumes`].
#[derive(Clone, Debug)]
pub enum Step {
    Execute(Values),
    Tick,
    Finish,
    /// Sets a manual clock (the one the bolt reads) to this time.
    Clock(crate::io::clock::ManualClock, u64),
}

/// Checks that a bolt's [`Bolt::snapshot`] holds everything its output depends on: for
/// every cut of `steps`, a bolt run up to the cut, snapshot, and a fresh bolt (from
/// `make`) restored from the snapshot and run on from there emit together exactly what one
/// bolt emits run through all of `steps`. The fresh bolt is made after the clock steps
/// that follow the cut (a process that takes over later). Clock steps should start
/// `steps`, so that every run starts at the same time. Returns what the single bolt
/// emitted. Panics (it is a test helper) on any difference or failure.
pub fn assert_snapshot_resumes(make: &dyn Fn() -> BoltHarness, steps: &[Step]) -> Vec<Values> {
    let clock_steps = |steps: &[Step]| {
        let n = steps
            .iter()
            .take_while(|s| matches!(s, Step::Clock(..)))
            .count();
        for s in &steps[..n] {
            if let Step::Clock(clock, ms) = s {
                clock.set(*ms);
            }
        }
        n
    };
    let run = |h: &mut BoltHarness, steps: &[Step], out: &mut Vec<Values>| {
        for s in steps {
            out.extend(h.step(s));
        }
    };
    let start = clock_steps(steps);
    let mut whole = Vec::new();
    run(&mut make(), &steps[start..], &mut whole);
    for cut in start..=steps.len() {
        let mut out = Vec::new();
        clock_steps(steps);
        let mut first = make();
        run(&mut first, &steps[start..cut], &mut out);
        let bytes = match first.snapshot() {
            Some(Ok(b)) => b,
            Some(Err(e)) => panic!("snapshot after {cut} steps failed: {e}"),
            None => panic!("the bolt takes no snapshot"),
        };
        drop(first);
        let later = cut + clock_steps(&steps[cut..]);
        let mut second = make();
        if let Err(e) = second.restore(&bytes) {
            panic!("restoring the snapshot taken after {cut} steps failed: {e}");
        }
        run(&mut second, &steps[later..], &mut out);
        assert_eq!(
            whole,
            out,
            "a bolt restored from a snapshot taken after {cut} steps ({:?}) emits otherwise",
            &steps[..cut]
        );
    }
    whole
}

/// Builds the bolt from its config, executes `inputs` then `finish`, returns all output.
/// Panics (it is a test helper) if the bolt cannot be built or fails.
pub fn run_bolt<C: BoltConfig>(cfg: &C, input: Fields, inputs: Vec<Values>) -> Vec<Values> {
    let factory = match cfg.build() {
        Ok(f) => f,
        Err(e) => panic!("build failed: {e}"),
    };
    let mut h = BoltHarness::new(factory(), input);
    let mut out = Vec::new();
    for v in inputs {
        match h.execute(v) {
            Ok(o) => out.extend(o),
            Err(e) => panic!("execute failed: {e}"),
        }
    }
    match h.finish() {
        Ok(o) => out.extend(o),
        Err(e) => panic!("finish failed: {e}"),
    }
    out
}

/// Micro-batch mode's columnar path of a bolt: builds it, gives it `inputs` as one chunk
/// of columns (`execute_columns`) and returns the rows it emits, or `None` when it takes
/// no columns. Panics (it is a test helper) if the bolt cannot be built or fails.
pub fn run_bolt_columns<C: BoltConfig>(
    cfg: &C,
    input: Fields,
    inputs: &[Values],
) -> Option<Vec<Values>> {
    let factory = match cfg.build() {
        Ok(f) => f,
        Err(e) => panic!("build failed: {e}"),
    };
    match BoltHarness::new(factory(), input).execute_columns(inputs)? {
        Ok(out) => Some(out),
        Err(e) => panic!("execute_columns failed: {e}"),
    }
}

/// Checks that a bolt's columnar path emits exactly what its tuple path emits for the
/// same inputs (without `finish`), and that it has one.
pub fn assert_columns_match_tuples<C: BoltConfig>(cfg: &C, input: Fields, inputs: Vec<Values>) {
    let Some(columnar) = run_bolt_columns(cfg, input.clone(), &inputs) else {
        panic!("the bolt takes no columns");
    };
    let factory = match cfg.build() {
        Ok(f) => f,
        Err(e) => panic!("build failed: {e}"),
    };
    let mut h = BoltHarness::new(factory(), input);
    let mut tuples = Vec::new();
    for v in inputs {
        match h.execute(v) {
            Ok(o) => tuples.extend(o),
            Err(e) => panic!("execute failed: {e}"),
        }
    }
    assert_eq!(columnar, tuples, "columnar and tuple paths differ");
}
