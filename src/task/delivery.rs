//! Micro-batch mode's side of a task's outbox: what a task emits in a batch is buffered per
//! target task (tuples, and rows as column chunks grouped as tuples would be) and handed
//! over whole when the task's share of the batch is done; nothing goes through channels.

use crate::data::columns::Columns;
use crate::data::tuple::Tuple;
use crate::task::outbox::{EmitError, LOCAL, Outbox};

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
        let (rows, sends) = self.column_sends(sid, cols)?;
        for (ti, part) in sends {
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
