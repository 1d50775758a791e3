//! Micro-batch mode's side of a stage: one task's share of a batch run through its chain of
//! stages, column chunks first, with a collector that tracks no trees.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use crate::component::Bolt;
use crate::component::ComponentResult;
use crate::component::collector::BoltCollector;
use crate::data::columns::Columns;
use crate::data::tuple::{NO_TIME, Tuple};
use crate::runtime::stage::{Outcome, Stage};
use crate::task::delivery::Delivery;
use crate::task::ledger::Outcomes;
use crate::task::outbox::Outbox;
use crate::task::panic_message;

/// A collector for micro-batch mode (no ack tracking).
fn batch_collector<'a>(outbox: &'a mut Outbox, outcomes: &'a mut Outcomes) -> BoltCollector<'a> {
    BoltCollector {
        outbox,
        ledger: None,
        outcomes,
        current: None,
        acked: 0,
        failed: 0,
        scope: Default::default(),
        late: 0,
    }
}

/// Micro-batch mode: runs one task's share of a batch through its stages. Column chunks
/// go first, to `execute_columns` (as tuples when a stage takes none); then the tuples:
/// the first stage gets them at once (`execute_batch`); a chained stage gets what the
/// first emits as it is emitted (so the batch's intermediate tuples are never all in
/// memory); then every stage's `finish_batch` (and `finish` on the last pass), in chain
/// order. An error, a panic or a failed input fails the batch.
pub(crate) fn run_batch(
    stages: &mut [Stage],
    info: &crate::component::transactional::BatchInfo,
    input: Delivery,
    last: bool,
) -> Outcome {
    let n = input.len() as u64;
    let Delivery {
        mut tuples,
        mut columns,
    } = input;
    // Event time: the batch's watermark; tuples carry their times, which columns do not.
    let watermark = info.watermark;
    // Tuples reaching a bolt with a columnar path take it too.
    if watermark.is_none()
        && !tuples.is_empty()
        && stages.first().is_some_and(|s| s.bolt.takes_columns())
    {
        columns.extend(crate::data::columns::from_tuples(std::mem::take(
            &mut tuples,
        )));
    }
    let started = Instant::now();
    let mut outcomes = Outcomes::default();
    let mut fed = vec![0u64; stages.len()];
    let mut failed_inputs = 0u64;
    let res = catch_unwind(AssertUnwindSafe(|| -> ComponentResult {
        let Some((head, rest)) = stages.split_first_mut() else {
            return Ok(());
        };
        let mut oc = Outcomes::default();
        let mut feed = |head: &mut Stage,
                        rest: &mut [Stage],
                        fed: &mut [u64],
                        failed: &mut u64|
         -> ComponentResult {
            let Some(next) = rest.first_mut() else {
                return Ok(());
            };
            fed[1] += head.outbox.local.len() as u64;
            let mut col = batch_collector(&mut next.outbox, &mut outcomes);
            // Drained, not taken: the buffer keeps its capacity for the next tuple.
            for u in head.outbox.local.drain(..) {
                execute(next.bolt.as_mut(), u, &mut col)?;
            }
            *failed += col.failed;
            next.metrics.local.late += col.late;
            Ok(())
        };
        for chunk in columns {
            if !run_columns(head, info, chunk, &mut tuples)? {
                continue;
            }
            if let Some(next) = rest.first_mut() {
                // Rows the chained stage takes no columns for become its tuples (`feed`).
                for chunk in std::mem::take(&mut head.outbox.local_cols) {
                    let rows = chunk.rows() as u64;
                    if run_columns(next, info, chunk, &mut head.outbox.local)? {
                        fed[1] += rows;
                    }
                }
            }
            feed(head, rest, &mut fed, &mut failed_inputs)?;
        }
        if rest.is_empty() {
            let mut col = batch_collector(&mut head.outbox, &mut oc);
            if watermark.is_some() {
                // Event time: each tuple's emits inherit its time.
                for t in tuples {
                    execute(head.bolt.as_mut(), t, &mut col)?;
                }
            } else if !tuples.is_empty() {
                head.bolt.execute_batch(info, tuples, &mut col)?;
            }
            end_batch(head.bolt.as_mut(), info, last, &mut col)?;
            failed_inputs += col.failed;
            head.metrics.local.late += col.late;
            return Ok(());
        }
        for t in tuples {
            let mut col = batch_collector(&mut head.outbox, &mut oc);
            execute(head.bolt.as_mut(), t, &mut col)?;
            failed_inputs += col.failed;
            head.metrics.local.late += col.late;
            feed(head, rest, &mut fed, &mut failed_inputs)?;
        }
        let mut col = batch_collector(&mut head.outbox, &mut oc);
        end_batch(head.bolt.as_mut(), info, last, &mut col)?;
        failed_inputs += col.failed;
        head.metrics.local.late += col.late;
        feed(head, rest, &mut fed, &mut failed_inputs)?;
        for s in rest.iter_mut() {
            let mut col = batch_collector(&mut s.outbox, &mut oc);
            end_batch(s.bolt.as_mut(), info, last, &mut col)?;
            failed_inputs += col.failed;
            s.metrics.local.late += col.late;
        }
        Ok(())
    }));
    fed[0] = n;
    let elapsed = started.elapsed().as_nanos() as u64;
    // Chained stages share their task's busy time, as in event mode.
    for s in stages.iter_mut() {
        s.metrics.local.busy_ns += elapsed;
    }
    let lag = crate::time::watermark::lag_behind_now(watermark);
    for (s, k) in stages.iter_mut().zip(&fed) {
        let m = &mut s.metrics.local;
        m.watermark_lag_ms = lag;
        m.executed += k;
        if *k > 0 {
            m.execute_ns.record_n((elapsed / k).max(1), *k).ok();
        }
    }
    let outcome = match res {
        Ok(Ok(())) if failed_inputs > 0 => {
            Outcome::Failed(format!("{failed_inputs} inputs failed"))
        }
        Ok(Ok(())) => Outcome::Ok,
        Ok(Err(e)) => Outcome::Failed(e.to_string()),
        Err(p) => Outcome::Panicked(panic_message(&p)),
    };
    for (s, k) in stages.iter_mut().zip(&fed) {
        let m = &mut s.metrics.local;
        match outcome {
            Outcome::Ok => m.acked += k,
            Outcome::Failed(_) => m.failed += k,
            Outcome::Panicked(_) => {
                m.failed += k;
                m.restarts += 1;
            }
        }
    }
    outcome
}

/// Executes one tuple; what the bolt emits meanwhile inherits the tuple's event time.
fn execute(bolt: &mut dyn Bolt, t: Tuple, col: &mut BoltCollector<'_>) -> ComponentResult {
    col.outbox.event_time = t.event_time;
    let r = bolt.execute(t, col);
    col.outbox.event_time = NO_TIME;
    r
}

/// The end of a task's share of a batch: event time's windows the batch's watermark
/// passed fire (`on_watermark`), then `finish_batch` (stateful bolts store their state);
/// on the last pass, the end of time (`i64::MAX`) fires every window left, then `finish`.
fn end_batch(
    bolt: &mut dyn Bolt,
    info: &crate::component::transactional::BatchInfo,
    last: bool,
    col: &mut BoltCollector<'_>,
) -> ComponentResult {
    if let Some(w) = info.watermark.filter(|w| *w != NO_TIME) {
        bolt.on_watermark(w, col)?;
    }
    bolt.finish_batch(info, col)?;
    if last {
        if info.watermark.is_some() {
            bolt.on_watermark(i64::MAX, col)?;
        }
        bolt.finish(col)?;
    }
    Ok(())
}

/// Runs one chunk of rows through `stage`'s columnar path and emits what it returns on
/// its default stream. Returns `false` when the stage takes no columns: the rows were
/// added to `tuples` instead.
fn run_columns(
    stage: &mut Stage,
    info: &crate::component::transactional::BatchInfo,
    chunk: Columns,
    tuples: &mut Vec<Tuple>,
) -> Result<bool, crate::component::ComponentError> {
    match stage.bolt.execute_columns(info, &chunk) {
        None => {
            tuples.extend(chunk.to_tuples());
            Ok(false)
        }
        Some(Err(e)) => Err(e),
        Some(Ok(out)) => {
            if !out.is_empty() {
                let sid = stage.outbox.stream_id(None)?;
                stage
                    .outbox
                    .emit_columns(sid, out)
                    .map_err(|e| format!("{}: {e}", stage.label()))?;
            }
            Ok(true)
        }
    }
}
