//! Micro-batch mode's side of a task's outbox: what a task emits in a batch is buffered per
//! target task (tuples, and rows as column chunks grouped as tuples would be) and handed
//! over whole when the task's share of the batch is done; nothing goes through channels.

use crate::data::columns::Columns;
use crate::data::tuple::Tuple;
use crate::task::outbox::{EmitError, LOCAL, Outbox, Route, direct_mismatch};

impl Outbox {
    /// Micro-batch mode: hands over every tuple and column chunk buffered for each target
    /// task (nothing goes through the channels).
    pub(crate) fn take_outputs(&mut self, mut f: impl FnMut(u32, Delivery)) {
        self.full.clear();
        for t in self.targets.iter_mut() {
            t.last_batch = t.buf.len();
            if !t.buf.is_empty() || !t.cols.is_empty() {
                f(
                    t.task_id,
                    Delivery {
                        tuples: std::mem::take(&mut t.buf),
                        columns: std::mem::take(&mut t.cols),
                    },
                );
            }
        }
    }

    /// Micro-batch mode: emits rows on stream `sid` to every subscriber, as columns,
    /// grouped as tuples would be (a fields grouping sends a key to the same task either
    /// way). Returns the rows emitted.
    pub(crate) fn emit_columns(&mut self, sid: usize, cols: Columns) -> Result<usize, EmitError> {
        let out = &mut self.streams[sid];
        if let Some(e) = direct_mismatch(out, false) {
            return Err(e);
        }
        let cols = cols.attach(out.meta.clone(), self.task_id)?;
        let rows = cols.rows();
        if rows == 0 {
            return Ok(0);
        }
        self.emitted += rows as u64;
        // Targets that get all the rows, and targets that get a part of them.
        let mut whole: Vec<usize> = Vec::new();
        let mut sends: Vec<(usize, Columns)> = Vec::new();
        for route in out.routes.iter_mut() {
            match route {
                Route::Shuffle { targets, .. } if targets.len() == 1 => whole.push(targets[0]),
                // A whole chunk to each task in turn: no row is copied, and chunks of
                // about the same size spread the load as evenly as single tuples would.
                Route::Shuffle { targets, next } => {
                    whole.push(targets[*next % targets.len()]);
                    *next = (*next + 1) % targets.len();
                }
                Route::Fields { fields, targets } => {
                    let n = targets.len() as u64;
                    let parts = cols.partition(targets.len(), |i| {
                        (cols.hash_fields(i, fields) % n) as usize
                    });
                    sends.extend(targets.iter().copied().zip(parts));
                }
                Route::All { targets } => whole.extend(targets.iter().copied()),
                Route::Global { target } => whole.push(*target),
                // Refused by `direct_mismatch` above.
                Route::Direct { .. } => {}
                Route::Local => whole.push(LOCAL),
            }
        }
        if let Some((&last, others)) = whole.split_last() {
            sends.extend(others.iter().map(|&t| (t, cols.clone())));
            sends.push((last, cols));
        }
        for (ti, part) in sends {
            if part.is_empty() {
                continue;
            }
            if ti == LOCAL {
                self.local_cols.push(part);
            } else {
                self.targets[ti].cols.push(part);
            }
        }
        Ok(rows)
    }
}

/// Micro-batch mode: what one task sent another in a batch.
#[derive(Default)]
pub(crate) struct Delivery {
    pub(crate) tuples: Vec<Tuple>,
    pub(crate) columns: Vec<Columns>,
}

impl Delivery {
    /// Tuples and rows.
    pub(crate) fn len(&self) -> usize {
        self.tuples.len() + self.columns.iter().map(Columns::rows).sum::<usize>()
    }

    pub(crate) fn extend(&mut self, more: Delivery) {
        if self.tuples.is_empty() {
            self.tuples = more.tuples;
        } else {
            self.tuples.extend(more.tuples);
        }
        self.columns.extend(more.columns);
    }

    /// A copy outside any tree (kept by spouts that cannot replay).
    pub(crate) fn duplicate(&self) -> Delivery {
        Delivery {
            tuples: self.tuples.iter().map(Tuple::duplicate).collect(),
            columns: self.columns.clone(),
        }
    }
}
