//! The API a user implements: the two kinds of component a topology is made of, spouts
//! (sources) and bolts, their context and errors; the collectors they emit through
//! (`collector`), transactional spouts for micro-batch mode (`transactional`), the
//! registry of components by name (`registry`) and a kit to test a bolt alone (`testkit`).

pub mod collector;
pub mod registry;
pub mod snapshot;
pub mod testkit;
pub mod transactional;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::component::collector::{BoltCollector, SpoutCollector};
use crate::component::transactional::{BatchInfo, TransactionalSpout};
use crate::data::columns::Columns;
use crate::data::tuple::{DEFAULT_STREAM, Fields, Tuple};
use crate::metrics::CustomCounters;
use crate::task::transport::Pulse;

/// Something a layer above the runtime hands a component's tasks (distributed mode's
/// hooks); the component downcasts it to the type it knows.
pub type Extension = Arc<dyn std::any::Any + Send + Sync>;

/// Makes a fresh spout instance (one per task, and again when a task restarts).
pub type SpoutFactory = Arc<dyn Fn() -> Box<dyn Spout> + Send + Sync>;
/// Makes a fresh bolt instance (one per task, and again when a task restarts).
pub type BoltFactory = Arc<dyn Fn() -> Box<dyn Bolt> + Send + Sync>;

/// What a component's `execute`, `open` or `prepare` may return as an error. The input is
/// failed (and its spout tuple replayed); the message is logged with the task.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ComponentError(pub String);

impl ComponentError {
    pub fn new(msg: impl Into<String>) -> Self {
        ComponentError(msg.into())
    }
}

impl From<std::io::Error> for ComponentError {
    fn from(e: std::io::Error) -> Self {
        ComponentError(e.to_string())
    }
}

impl From<String> for ComponentError {
    fn from(e: String) -> Self {
        ComponentError(e)
    }
}

impl From<crate::state::StateError> for ComponentError {
    fn from(e: crate::state::StateError) -> Self {
        ComponentError(e.to_string())
    }
}

impl From<crate::task::outbox::EmitError> for ComponentError {
    fn from(e: crate::task::outbox::EmitError) -> Self {
        ComponentError(e.to_string())
    }
}

impl From<&str> for ComponentError {
    fn from(e: &str) -> Self {
        ComponentError(e.to_string())
    }
}

pub type ComponentResult<T = ()> = Result<T, ComponentError>;

/// The output streams a component declares, with their fields.
#[derive(Clone, Debug, Default)]
pub struct OutputDeclarer {
    pub(crate) streams: BTreeMap<String, Fields>,
}

impl OutputDeclarer {
    /// Declares the fields of the default stream.
    pub fn declare(&mut self, fields: Fields) -> &mut Self {
        self.declare_stream(DEFAULT_STREAM, fields)
    }

    /// Declares a named output stream.
    pub fn declare_stream(&mut self, stream: &str, fields: Fields) -> &mut Self {
        self.streams.insert(stream.to_string(), fields);
        self
    }

    pub fn fields_of(&self, stream: &str) -> Option<&Fields> {
        self.streams.get(stream)
    }
}

/// What a task knows about itself and its topology.
#[derive(Clone)]
pub struct TaskContext {
    pub(crate) component: Arc<str>,
    pub(crate) task_id: u32,
    pub(crate) task_index: usize,
    pub(crate) parallelism: usize,
    pub(crate) worker: usize,
    pub(crate) component_tasks: Arc<BTreeMap<String, Vec<u32>>>,
    pub(crate) upstream_tasks: usize,
    /// Distributed mode: how many partials (one per input partition) complete a window
    /// for a merging bolt; `None`: one per upstream task.
    pub(crate) expected_partials: Option<usize>,
    pub(crate) counters: CustomCounters,
    pub(crate) pulse: Option<Pulse>,
    pub(crate) topk: crate::metrics::TopkBoard,
    pub(crate) control: Option<Arc<crate::task::control::RunControl>>,
    pub(crate) state: Option<Arc<crate::state::TaskState>>,
    /// Micro-batch mode: the run's I/O thread, where [`TaskContext::spawn`] runs tasks.
    pub(crate) io: Option<crate::task::io_thread::IoThread>,
    pub(crate) read_fields: Option<Arc<[String]>>,
    pub(crate) output_filter: Option<InputFilter>,
    pub(crate) extension: Option<Extension>,
}

/// A test a bolt applies to one string field of each input before doing anything else:
/// inputs that fail it are ignored (nothing emitted, no state changed). A bolt declares it
/// with [`Bolt::input_filter`] so that its source can leave such rows out altogether
/// (filter push-down; see [`TaskContext::output_filter`]).
#[derive(Clone, Copy, Debug)]
pub struct InputFilter {
    /// The field tested.
    pub field: &'static str,
    /// Names the test: sources only skip rows when every subscriber names the same test
    /// of the same field.
    pub name: &'static str,
    /// `true` for the values the bolt uses.
    pub keep: fn(&str) -> bool,
    /// Every value `keep` accepts starts with one of these characters (empty: the test
    /// says nothing about the first character). A source may use it to skip, unread, the
    /// parts of its input that cannot hold such a value.
    pub first_chars: &'static [char],
}

impl InputFilter {
    /// Whether `other` is the same test of the same field.
    pub fn same_as(&self, other: &InputFilter) -> bool {
        self.field == other.field && self.name == other.name
    }
}

impl TaskContext {
    pub fn component(&self) -> &str {
        &self.component
    }

    /// This task's id, unique in the topology (ids start at 1, in declaration order).
    pub fn task_id(&self) -> u32 {
        self.task_id
    }

    /// The index of this task among its component's tasks (0-based).
    pub fn task_index(&self) -> usize {
        self.task_index
    }

    pub fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// The worker thread this task runs on.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Task ids of a component (for direct grouping).
    pub fn tasks_of(&self, component: &str) -> &[u32] {
        self.component_tasks
            .get(component)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The fields of this component's default stream that some subscriber reads (the
    /// fields its bolts name in [`Bolt::input_fields`] and its fields groupings), or
    /// `None` when any of them may be read. A source may emit the other fields as null
    /// and skip the work of building them: no one will look at them.
    pub fn read_fields(&self) -> Option<&[String]> {
        self.read_fields.as_deref()
    }

    /// The test every subscriber of this component's default stream applies to one of
    /// its fields ([`Bolt::input_filter`]), or `None`. A source may leave out the rows
    /// that fail it: every subscriber would ignore them.
    pub fn output_filter(&self) -> Option<InputFilter> {
        self.output_filter
    }

    /// What a layer above the runtime gave this component (see [`Extension`]), if it is
    /// a `T`.
    pub fn extension<T: std::any::Any + Send + Sync>(&self) -> Option<&T> {
        self.extension.as_deref()?.downcast_ref::<T>()
    }

    /// How many tasks send to this task (over all its inputs).
    pub fn upstream_tasks(&self) -> usize {
        self.upstream_tasks
    }

    /// How many senders a merging bolt waits for before a window is complete (the
    /// punctuations `rank` counts, the partials `total_rank` merges): the number the
    /// runtime set (distributed mode: one per input partition, whichever process sends
    /// it), else [`upstream_tasks`](Self::upstream_tasks).
    pub fn expected_partials(&self) -> usize {
        self.expected_partials.unwrap_or(self.upstream_tasks)
    }

    /// A named counter reported with this component's metrics (e.g. `oversized_lines`).
    pub fn counter(&self, name: &str) -> Arc<AtomicU64> {
        self.counters.get(name)
    }

    /// Publishes the topology's current top-k ranking (shown in the report and the UI).
    pub fn report_topk(&self, ranking: Vec<(String, u64)>) {
        self.topk.set(ranking);
    }

    /// Publishes the topology's current top-k ranking with the window it covers.
    pub fn report_topk_of(&self, topk: crate::metrics::Topk) {
        self.topk.set_topk(topk);
    }

    /// Micro-batch mode: this task's transactional state (maps and values stored with
    /// the txid of the batch that wrote them, persisted on commit). `None` in event mode.
    pub fn state(&self) -> Option<&crate::state::TaskState> {
        self.state.as_deref()
    }

    /// The task runs in micro-batch mode.
    pub fn is_microbatch(&self) -> bool {
        self.state.is_some()
    }

    /// A handle to stop the whole run with an error that retrying cannot fix (e.g. a
    /// source that refuses the credentials), from any thread or async task.
    pub fn fatal_handle(&self) -> FatalHandle {
        FatalHandle {
            component: self.component.clone(),
            control: self.control.clone(),
        }
    }

    /// A handle that wakes this spout task's poll loop at once (for spouts fed by an
    /// async source). `None` for bolts.
    pub fn waker(&self) -> Option<SpoutWaker> {
        self.pulse.clone().map(SpoutWaker)
    }

    /// Runs an async task for this component (e.g. a spout's reader, which hands what it
    /// reads over through a bounded channel) until it ends or its handle is aborted (do
    /// that in `close`). A spout's tasks run on the run's I/O thread (off the worker
    /// threads, in either mode); a bolt's on its task's worker thread in event mode and
    /// on the I/O thread in micro-batch mode. Call it from `open` or `prepare`.
    pub fn spawn<F>(&self, task: F) -> ComponentResult<tokio::task::JoinHandle<()>>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        if let Some(io) = &self.io {
            return io
                .spawn(task)
                .map_err(|e| ComponentError::new(format!("{}: {e}", self.component)));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ComponentError::new(format!(
                "{}: no async runtime to run a task on (spawn from `open` or `prepare`)",
                self.component
            )));
        }
        Ok(tokio::task::spawn_local(task))
    }
}

/// Stops the run with an error (see [`TaskContext::fatal_handle`]): the topology drains
/// and `join`/`stop` return the error; the CLI prints it and exits non-zero.
#[derive(Clone)]
pub struct FatalHandle {
    component: Arc<str>,
    control: Option<Arc<crate::task::control::RunControl>>,
}

impl FatalHandle {
    pub fn fail(&self, msg: impl std::fmt::Display) {
        match &self.control {
            Some(c) => c.fatal(format!("{}: {msg}", self.component)),
            None => tracing::error!(component = %self.component, "{msg}"),
        }
    }
}

/// Wakes a spout task so that `next_tuple` is called without waiting for the idle back-off.
#[derive(Clone)]
pub struct SpoutWaker(pub(crate) Pulse);

impl SpoutWaker {
    pub fn wake(&self) {
        self.0.arm();
    }
}

/// What one call to `Spout::next_tuple` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpoutStatus {
    /// Emitted one or more tuples; call again soon.
    Emitted,
    /// Nothing to emit now; the runtime backs off briefly (or until woken).
    Idle,
    /// Nothing to emit before this time (a paced source knows when its next tuple is
    /// due): the runtime calls again then, precisely (to the tens of microseconds), or
    /// earlier when woken or when a tuple fails and may be replayed.
    IdleUntil(std::time::Instant),
    /// The source is finished. The runtime keeps calling `ack`/`fail` until every tuple
    /// tree is complete, and calls `next_tuple` again after a `fail` (to replay).
    Exhausted,
}

/// A source of tuples. One instance per task, cloned from the instance given to the
/// builder (or built by its factory).
pub trait Spout: Send + 'static {
    /// The streams this spout emits on, with their fields.
    fn declare_outputs(&self, out: &mut OutputDeclarer);

    fn open(&mut self, _ctx: &TaskContext) -> ComponentResult {
        Ok(())
    }

    /// Emits zero or more tuples through `out`. Never blocks: a spout with nothing to emit
    /// returns `Idle`.
    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> SpoutStatus;

    /// The tuple tree of `msg_id` completed.
    fn ack(&mut self, _msg_id: u64) {}

    /// The tuple tree of `msg_id` failed or timed out; replay it if the source can.
    fn fail(&mut self, _msg_id: u64) {}

    /// Called once when the task stops.
    fn close(&mut self) {}

    /// Micro-batch mode: this spout's batches can be re-emitted exactly from their
    /// metadata (Kafka offset ranges, generator sequence ranges). A spout without it is
    /// cut by calling `next_tuple`, and its batches are kept in memory until they commit.
    fn transactional(&mut self) -> Option<&mut dyn TransactionalSpout> {
        None
    }

    /// Micro-batch mode: the columnar form of `next_tuple`, for a spout whose batches are
    /// cut by polling (not [`transactional`](Self::transactional)). Appends to `out` at
    /// most `max` rows of the default stream, as column chunks (`crate::data::columns`;
    /// up to `columns::CHUNK_ROWS` rows each is best), the rows `next_tuple` would have
    /// emitted, in the same order, and returns what `next_tuple` would (`Emitted` when it
    /// appended rows). Rows handed this way carry no message id: `ack` is not called for
    /// them, and the runtime keeps the chunks until the batch commits (a failed batch is
    /// emitted again from them). `None` (the default): the spout has no columnar path and
    /// is polled with `next_tuple`. Not called for a spout that assigns event time
    /// (columns carry none).
    fn next_columns(&mut self, _max: usize, _out: &mut Vec<Columns>) -> Option<SpoutStatus> {
        None
    }

    /// Distributed mode: the partitioned logs (Kafka topics) this spout reads, if it reads
    /// such logs.
    fn source_log(&self) -> Option<SourceLog> {
        None
    }

    /// Micro-batch mode: the options that decide which tuples this spout's recorded batch
    /// metadata stands for (e.g. the generator's seed, a Kafka spout's topics), by name.
    /// They are stored with the state, and a later run on the same state directory with
    /// other values is refused: its replays and its next batches would not continue the
    /// stored ones. Leave out options that change neither (e.g. a pacing rate). Empty (the
    /// default): nothing is checked.
    fn state_options(&self) -> crate::state::StateOptions {
        crate::state::StateOptions::new()
    }
}

/// What a spout that reads partitioned logs (Kafka topics) tells distributed mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLog {
    pub brokers: String,
    pub topics: Vec<String>,
    pub group: String,
    /// Each partition ends (a bounded run): the application ends when they all have.
    pub bounded: bool,
}

/// How a bolt acknowledges its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AckMode {
    /// Storm's "basic bolt": emits are anchored to the input, which is acked when
    /// `execute` returns `Ok` and failed when it returns `Err` or panics.
    #[default]
    Auto,
    /// Full control: the bolt anchors (`emit_anchored`) and acks/fails its inputs itself.
    Manual,
}

/// A processing step. One instance per task.
pub trait Bolt: Send + 'static {
    /// The streams this bolt emits on, with their fields (none for sinks).
    fn declare_outputs(&self, _out: &mut OutputDeclarer) {}

    fn prepare(&mut self, _ctx: &TaskContext) -> ComponentResult {
        Ok(())
    }

    /// Handles one input tuple.
    fn execute(&mut self, input: Tuple, out: &mut BoltCollector<'_>) -> ComponentResult;

    fn ack_mode(&self) -> AckMode {
        AckMode::Auto
    }

    /// The input fields this bolt reads, by name; `None` (the default) when it may read
    /// any. When every subscriber of a stream names what it reads, the source may leave
    /// the other fields null and skip building them (projection, as in Flink's projection
    /// push-down; see [`TaskContext::read_fields`]).
    fn input_fields(&self) -> Option<Vec<String>> {
        None
    }

    /// The test this bolt applies to a field of its input before any work (inputs that
    /// fail it are ignored), given the fields of the stream it subscribes to; `None` (the
    /// default) when it uses every input. When every subscriber of a stream declares the
    /// same test, the source may leave failing rows out (filter push-down; see
    /// [`TaskContext::output_filter`]).
    fn input_filter(&self, _input: &Fields) -> Option<InputFilter> {
        None
    }

    /// Asks for a tick every this long (windows, periodic flushes).
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// A tick tuple arrived. Emits from here are unanchored.
    fn tick(&mut self, _out: &mut BoltCollector<'_>) -> ComponentResult {
        Ok(())
    }

    /// The watermark of this task's input advanced to `watermark` (event time, ms since
    /// the Unix epoch; `i64::MAX` once every input has ended): no more input with an
    /// earlier event time is expected, except late tuples. Event-time windows fire here.
    /// Emits are unanchored. Called only in topologies whose sources assign event time.
    /// In micro-batch mode it is called with the batch's watermark after the batch's
    /// tuples and before `finish_batch` (so state written there includes what fired).
    fn on_watermark(&mut self, _watermark: i64, _out: &mut BoltCollector<'_>) -> ComponentResult {
        Ok(())
    }

    /// Every upstream task has finished (a bounded run is ending, or the topology is
    /// stopping): emit what is still held (e.g. the final window). Emits are unanchored.
    fn finish(&mut self, _out: &mut BoltCollector<'_>) -> ComponentResult {
        Ok(())
    }

    /// Called once when the task stops.
    fn cleanup(&mut self) {}

    /// Micro-batch mode: this task's tuples of one batch. The default executes them one
    /// at a time; an error fails the whole batch (it is replayed).
    fn execute_batch(
        &mut self,
        _batch: &BatchInfo,
        tuples: Vec<Tuple>,
        out: &mut BoltCollector<'_>,
    ) -> ComponentResult {
        for t in tuples {
            self.execute(t, out)?;
        }
        Ok(())
    }

    /// This bolt has a columnar path for its usual input (`execute_columns`). Micro-batch
    /// mode turns the tuples that reach it (from spouts or bolts without one) into columns
    /// for it; event mode hands it the chunks of rows that arrive as one input (the lines
    /// of one socket read, a run of generated tweets). Return `true` when
    /// `execute_columns` is implemented.
    fn takes_columns(&self) -> bool {
        false
    }

    /// The columnar path: rows field by field (see `crate::data::columns`), with the
    /// same effect as `execute` on each row in turn. Returns the rows it emits on the
    /// default stream, or `None` when it takes no columns (the default, or these columns
    /// are not its usual input): the rows then come as tuples.
    ///
    /// Micro-batch mode: this task's rows of one batch; an error fails the whole batch
    /// (`execute_batch` gets the tuples instead). Event mode (auto acking only): one
    /// chunk, acked or failed whole as one input, with `batch` from
    /// [`BatchInfo::event_mode`](crate::component::transactional::BatchInfo::event_mode);
    /// what it returns goes on as chunks anchored to it.
    fn execute_columns(
        &mut self,
        _batch: &BatchInfo,
        _input: &Columns,
    ) -> Option<Result<Columns, ComponentError>> {
        None
    }

    /// Micro-batch mode: every tuple of the batch has reached this task (batches finish
    /// in txid order). Stateful bolts update their state here and emit the result.
    fn finish_batch(
        &mut self,
        _batch: &BatchInfo,
        _out: &mut BoltCollector<'_>,
    ) -> ComponentResult {
        Ok(())
    }

    /// Micro-batch mode: the options the state this bolt stores depends on (e.g. a
    /// window's length and slide), by name. They are stored with the state, and a later
    /// run on the same state directory with other values is refused: it would carry on
    /// from state kept under the old values. Leave out options that do not shape the state
    /// (e.g. how often a result is emitted). Empty (the default): nothing is checked.
    fn state_options(&self) -> crate::state::StateOptions {
        crate::state::StateOptions::new()
    }

    /// Distributed mode: the bolt's whole event-mode state as bytes, to write to a changelog
    /// topic; `None` (the default): the bolt keeps no state worth restoring. See
    /// [`snapshot`] for a versioned encoding that also records the options the state
    /// depends on.
    fn snapshot(&self) -> Option<Result<Vec<u8>, ComponentError>> {
        None
    }

    /// Distributed mode: replaces the bolt's state with what `snapshot` returned (maybe in
    /// another process running the same options). An error: the bytes are not such a snapshot.
    fn restore(&mut self, _snapshot: &[u8]) -> ComponentResult {
        Err(ComponentError::new("this bolt keeps no state to restore"))
    }
}

/// Counts events without a lock, for custom counters shared with the metrics.
pub fn incr(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
