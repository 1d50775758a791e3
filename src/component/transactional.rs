//! Micro-batch mode's vocabulary (Storm's Trident): batches with transaction ids, and the
//! transactional spouts whose batches can be re-emitted exactly from their metadata.

use serde_json::Value as Json;

use crate::component::collector::SpoutCollector;
use crate::component::{ComponentError, ComponentResult};
use crate::data::columns::ColumnChunks;

/// The batch a task is working on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    /// The transaction id: batches are numbered 1, 2, ... and commit in this order.
    pub txid: u64,
    /// When the batch was first cut (ms since the Unix epoch). A replay keeps it, so
    /// time-based bolts (windows) give the same result on every attempt.
    pub time_ms: u64,
    /// This attempt re-emits a batch that was emitted before (after a failure or a
    /// restart).
    pub replay: bool,
    /// Event time: the watermark at the batch's cut (ms since the Unix epoch; `i64::MAX`
    /// once every source ended): the minimum over the spout tasks that assign event time
    /// of the largest time each has seen minus its `lag`, never lower than an earlier
    /// batch's. Recorded with the batch, so a replay carries the same. `None` when no
    /// spout assigns event time.
    pub watermark: Option<i64>,
}

impl BatchInfo {
    /// What event mode passes to [`Bolt::execute_columns`](crate::component::Bolt::execute_columns)
    /// with a chunk of rows that arrived as one input (there is no batch): txid 0, the
    /// time now, no watermark.
    pub fn event_mode() -> BatchInfo {
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        BatchInfo {
            txid: 0,
            time_ms,
            replay: false,
            watermark: None,
        }
    }
}

/// What a transactional spout cut.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchCut {
    /// Re-emits exactly this batch with [`TransactionalSpout::replay_batch`].
    pub meta: Json,
    /// The source is finished: nothing after this batch (a bounded run).
    pub exhausted: bool,
}

/// A spout whose batches can be re-emitted exactly (Trident's transactional spout): the
/// same txid always holds the same tuples, across failures and restarts. The runtime
/// stores each batch's metadata before the batch is processed.
pub trait TransactionalSpout {
    /// Emits the batch after the one `prev` describes (`None`: the first batch of the
    /// source) with at most `max` tuples, and returns its metadata. Emits carry no message
    /// id: the batch is the unit of success and replay.
    fn emit_batch(
        &mut self,
        batch: &BatchInfo,
        prev: Option<&Json>,
        max: usize,
        out: &mut SpoutCollector<'_>,
    ) -> Result<BatchCut, ComponentError>;

    /// Re-emits exactly the tuples of the batch `meta` describes.
    fn replay_batch(
        &mut self,
        batch: &BatchInfo,
        meta: &Json,
        out: &mut SpoutCollector<'_>,
    ) -> ComponentResult;

    /// The columnar form of `emit_batch` (see `crate::data::columns`): the rows of the next
    /// batch in chunks, with when each was due. `None` (the default): the spout emits
    /// tuples through `emit_batch`. Both forms must give the same rows for the same batch.
    fn emit_columns(
        &mut self,
        _batch: &BatchInfo,
        _prev: Option<&Json>,
        _max: usize,
    ) -> Option<Result<(ColumnChunks, BatchCut), ComponentError>> {
        None
    }

    /// The columnar form of `replay_batch`; `None` when `emit_columns` is `None`.
    fn replay_columns(
        &mut self,
        _batch: &BatchInfo,
        _meta: &Json,
    ) -> Option<Result<ColumnChunks, ComponentError>> {
        None
    }

    /// The batch `meta` describes is committed (e.g. commit its offsets to the group).
    fn commit_batch(&mut self, _txid: u64, _meta: &Json) {}
}
