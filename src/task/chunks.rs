//! Rows emitted as columns (`crate::data::columns`), in both modes: which task gets which
//! rows, and event mode's chunks (rows sent as one anchored input). Micro-batch mode's
//! buffering of them is in `delivery`.

use crate::data::columns::Columns;
use crate::data::tuple::NO_TIME;
use crate::task::outbox::{EmitError, LOCAL, Outbox, Parent, Route, direct_mismatch};
use crate::task::transport::{Chunk, Envelope};

impl Outbox {
    /// `cols` as rows of stream `sid` (their fields checked against its schema); a
    /// mismatch is a refused emit.
    fn attach(&self, sid: usize, cols: Columns) -> Result<Columns, EmitError> {
        cols.attach(self.streams[sid].meta.clone(), self.task_id)
            .map_err(|e| self.refuse(e.into()))
    }

    /// The rows of `cols` for each target of stream `sid` (`LOCAL`: the chained bolt),
    /// grouped as tuples would be: a fields grouping sends a key to the same task either
    /// way; a shuffle sends whole chunks to each task in turn (no row is copied, and
    /// chunks of about the same size spread the load as evenly as single tuples would).
    /// Counts the rows as emitted; returns their number and the non-empty parts.
    pub(super) fn column_sends(
        &mut self,
        sid: usize,
        cols: Columns,
    ) -> Result<(usize, Vec<(usize, Columns)>), EmitError> {
        if let Some(e) = direct_mismatch(&self.streams[sid], false) {
            return Err(self.refuse(e));
        }
        let cols = self.attach(sid, cols)?;
        let out = &mut self.streams[sid];
        let rows = cols.rows();
        if rows == 0 {
            return Ok((0, Vec::new()));
        }
        self.emitted += rows as u64;
        // Targets that get all the rows, and targets that get a part of them.
        let mut whole: Vec<usize> = Vec::new();
        let mut sends: Vec<(usize, Columns)> = Vec::new();
        for route in out.routes.iter_mut() {
            match route {
                Route::Shuffle { targets, .. } if targets.len() == 1 => whole.push(targets[0]),
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
        sends.retain(|(_, part)| !part.is_empty());
        Ok((rows, sends))
    }

    /// Event mode: emits rows on stream `sid` as chunks, one per target task, each
    /// anchored to `parents` as one tuple would be (a chunk is acked or failed whole).
    /// Rows with an event time (`self.event_time`) go as tuples: a chunk carries none.
    /// Returns the rows emitted.
    pub(crate) fn emit_chunk(
        &mut self,
        sid: usize,
        cols: Columns,
        parents: &[Parent<'_>],
    ) -> Result<usize, EmitError> {
        if self.event_time != NO_TIME {
            let cols = self.attach(sid, cols)?;
            for i in 0..cols.rows() {
                self.emit(sid, cols.row(i), parents, None)?;
            }
            return Ok(cols.rows());
        }
        let (rows, sends) = self.column_sends(sid, cols)?;
        for (ti, part) in sends {
            let chunk = Chunk {
                rows: part,
                anchors: self.anchor(parents),
            };
            if ti == LOCAL {
                self.local_chunks.push(chunk);
            } else {
                // After the tuples already buffered for that task: order is kept.
                self.flush_target(ti);
                self.send(ti, Envelope::Chunk(chunk));
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use tokio::sync::mpsc;

    use super::*;
    use crate::data::columns::{Column, StrColumn};
    use crate::data::tuple::{Anchor, Fields, MetaRef, StreamMeta};
    use crate::task::outbox::{StreamOut, Target};

    /// An outbox with acking on, to 3 tasks by `routes`, and the receivers of their inboxes.
    fn outbox(routes: Vec<Route>) -> (Outbox, Vec<mpsc::Receiver<Envelope>>) {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| mpsc::channel(64)).unzip();
        let targets = txs
            .into_iter()
            .enumerate()
            .map(|(i, tx)| Target::new(10 + i as u32, tx))
            .collect();
        let meta = MetaRef::Shared(Arc::new(StreamMeta {
            component: "words".into(),
            stream: crate::data::tuple::DEFAULT_STREAM.into(),
            fields: Fields::new(["word"]),
        }));
        let o = Outbox::new(1, targets, vec![StreamOut { meta, routes }], 1024, true);
        (o, rxs)
    }

    fn words(n: usize) -> Columns {
        let mut col = StrColumn::default();
        (0..n).for_each(|i| col.push(&format!("w{}", i % 37)));
        Columns::single(Column::Str(col))
    }

    /// What each task received, in order: `t:word` for a tuple, `c:word` for a chunk's
    /// row; and the anchors of every tuple and chunk.
    fn received(
        rxs: &mut [mpsc::Receiver<Envelope>],
    ) -> (BTreeMap<usize, Vec<String>>, Vec<Anchor>) {
        let mut got: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        let mut anchors = Vec::new();
        for (i, rx) in rxs.iter_mut().enumerate() {
            while let Ok(env) = rx.try_recv() {
                let e = got.entry(i).or_default();
                match env {
                    Envelope::Tuples(ts) => {
                        for t in ts {
                            e.push(format!("t:{}", t.values()[0]));
                            anchors.extend(t.anchors.iter().copied());
                        }
                    }
                    Envelope::Chunk(c) => {
                        e.extend((0..c.rows.rows()).map(|r| format!("c:{}", c.rows.row(r)[0])));
                        anchors.extend(c.anchors.iter().copied());
                    }
                    Envelope::Watermark { .. } | Envelope::End => {}
                }
            }
        }
        (got, anchors)
    }

    /// A chunk goes to the tasks a tuple of each row would go to (a fields grouping splits
    /// it by key), after the tuples already buffered for them; each part is anchored
    /// once, and the edges add up in the parent's ack val (its tree waits for them).
    #[test]
    fn a_chunk_is_split_as_its_rows_would_be_and_anchored_once_per_task() {
        let fields = || {
            vec![Route::Fields {
                fields: vec![0],
                targets: vec![0, 1, 2],
            }]
        };
        let root = [Anchor { root: 77, edge: 5 }];
        let (mut by_tuple, mut rx_t) = outbox(fields());
        let cols = words(300);
        for i in 0..cols.rows() {
            let acc = Cell::new(0);
            assert!(
                by_tuple
                    .emit(0, cols.row(i), &[(&root, &acc)], None)
                    .is_ok()
            );
        }
        by_tuple.flush();
        let (mut by_chunk, mut rx_c) = outbox(fields());
        let acc = Cell::new(0);
        assert!(
            by_chunk
                .emit(0, crate::values!["first"], &[(&root, &acc)], None)
                .is_ok()
        );
        assert_eq!(by_chunk.emit_chunk(0, cols, &[(&root, &acc)]), Ok(300));
        by_chunk.flush();
        let (want, _) = received(&mut rx_t);
        let (got, anchors) = received(&mut rx_c);
        let strip = |m: &BTreeMap<usize, Vec<String>>| -> BTreeMap<usize, Vec<String>> {
            m.iter()
                .map(|(k, v)| {
                    let rows = v.iter().filter(|w| w.as_str() != "t:first");
                    (*k, rows.map(|w| w[2..].to_string()).collect())
                })
                .collect()
        };
        assert_eq!(strip(&got), strip(&want));
        let first = got.values().find(|v| v.iter().any(|w| w == "t:first"));
        assert_eq!(first.map(|v| v[0].as_str()), Some("t:first"), "order kept");
        assert_eq!(anchors.len(), 4, "the tuple and one chunk per task");
        assert!(anchors.iter().all(|a| a.root == 77));
        let xor = anchors.iter().fold(0, |x, a| x ^ a.edge);
        assert_eq!(xor, acc.get());
        assert_eq!(by_chunk.emitted, 301);
    }

    /// Rows with an event time go as tuples (a chunk carries none).
    #[test]
    fn rows_with_an_event_time_go_as_tuples() {
        let (mut o, mut rxs) = outbox(vec![Route::Shuffle {
            targets: vec![0, 1, 2],
            next: 0,
        }]);
        o.event_time = 1_000;
        assert_eq!(o.emit_chunk(0, words(6), &[]), Ok(6));
        o.flush();
        let (got, _) = received(&mut rxs);
        let all: Vec<&String> = got.values().flatten().collect();
        assert_eq!(all.len(), 6);
        assert!(all.iter().all(|w| w.starts_with("t:")), "{all:?}");
    }
}
