//! A task's outgoing side: precomputed routes per stream, one transport buffer per
//! downstream task, and anchoring of emitted tuples.

use std::cell::Cell;
use std::collections::HashMap;

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::data::columns::{Columns, ColumnsError};
use crate::data::hash::hash_fields;
use crate::data::tuple::{Anchor, Anchors, MetaRef, Tuple, Values};
use crate::task::ids::IdGen;
use crate::task::transport::{Chunk, Envelope};

/// Why an emit was refused (nothing of it was sent).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EmitError {
    /// `emit_direct` to a task that takes no direct grouping of the stream.
    #[error(
        "emit_direct to task {task}, which does not subscribe to `{stream}` with a direct grouping"
    )]
    NoSuchDirectTask { task: u32, stream: String },
    /// `emit_direct` on a stream some subscriber takes with another grouping.
    #[error(
        "emit_direct on `{stream}`, which a subscriber takes with a {grouping} grouping (it would miss the tuple); emit_direct needs a stream that every subscriber takes with a direct grouping"
    )]
    NotDirect {
        stream: String,
        grouping: &'static str,
    },
    /// A plain emit on a stream some subscriber takes with a direct grouping.
    #[error(
        "emit on `{stream}`, which a subscriber takes with a direct grouping (it would miss the tuple); use emit_direct to choose its task"
    )]
    NeedsDirect { stream: String },
    #[error("task {task} emitted on the default stream, which its component does not declare")]
    NoDefaultStream { task: u32 },
    #[error("task {task} emitted on undeclared stream `{stream}`")]
    UndeclaredStream { task: u32, stream: String },
    #[error(transparent)]
    Columns(#[from] ColumnsError),
}

/// One downstream task and the batch being filled for it.
pub(crate) struct Target {
    pub(crate) task_id: u32,
    pub(crate) tx: mpsc::Sender<Envelope>,
    pub(super) buf: Vec<Tuple>,
    /// Envelopes for this target waiting for inbox space (kept in order).
    blocked: usize,
    /// Micro-batch mode: tuples the last batch sent here (the next one reserves as many).
    pub(super) last_batch: usize,
    /// Micro-batch mode: rows sent here as columns.
    pub(super) cols: Vec<Columns>,
}

impl Target {
    pub(crate) fn new(task_id: u32, tx: mpsc::Sender<Envelope>) -> Self {
        Target {
            task_id,
            tx,
            buf: Vec::new(),
            blocked: 0,
            last_batch: 0,
            cols: Vec::new(),
        }
    }
}

/// How one subscriber picks its task(s); indices point into `Outbox::targets`.
pub(crate) enum Route {
    Shuffle {
        targets: Vec<usize>,
        next: usize,
    },
    Fields {
        fields: Vec<usize>,
        targets: Vec<usize>,
    },
    All {
        targets: Vec<usize>,
    },
    Global {
        target: usize,
    },
    Direct {
        targets: Vec<(u32, usize)>,
    },
    /// To the bolt chained into this task (same task, no transport).
    Local,
}

/// The pick of a `Route::Local`.
pub(crate) const LOCAL: usize = usize::MAX;

/// The routes of one output stream.
pub(crate) struct StreamOut {
    pub(crate) meta: MetaRef,
    pub(crate) routes: Vec<Route>,
}

/// A parent a new tuple is anchored to: its anchors and its ack-val cell.
pub(crate) type Parent<'a> = (&'a [Anchor], &'a Cell<u64>);

pub(crate) struct Outbox {
    pub(crate) task_id: u32,
    pub(crate) targets: Vec<Target>,
    pub(super) streams: Vec<StreamOut>,
    stream_index: HashMap<String, usize>,
    default_stream: Option<usize>,
    batch_size: usize,
    blocked: Vec<(usize, Envelope)>,
    /// Tuples for the chained bolt of this task, taken by the task after each execute.
    pub(crate) local: Vec<Tuple>,
    /// Micro-batch mode: rows for the chained bolt, as columns.
    pub(crate) local_cols: Vec<Columns>,
    /// Event mode: chunks of rows for the chained bolt, taken like `local`.
    pub(crate) local_chunks: Vec<Chunk>,
    /// Targets whose batch is full, sent by `flush_full` once the emit is complete.
    pub(super) full: Vec<usize>,
    ids: IdGen,
    pub(crate) acking: bool,
    /// Tuples emitted (not counting copies) since the metrics last took them.
    pub(crate) emitted: u64,
    /// The event time of the tuples emitted now (that of the input being executed, or the
    /// one the source assigned); `NO_TIME` outside.
    pub(crate) event_time: i64,
    /// The last watermark sent downstream (`Some(None)`: idle).
    sent_watermark: Option<Option<i64>>,
    /// The first emit refused for a reason no retry can change (an undeclared stream, a
    /// grouping the emit does not fit, rows of the wrong width): a spout task that made
    /// it stops the run with it.
    pub(crate) refused: std::cell::OnceCell<String>,
}

impl Outbox {
    pub(crate) fn new(
        task_id: u32,
        targets: Vec<Target>,
        streams: Vec<StreamOut>,
        batch_size: usize,
        acking: bool,
    ) -> Self {
        let stream_index: HashMap<String, usize> = streams
            .iter()
            .enumerate()
            .map(|(i, s)| (s.meta.stream.to_string(), i))
            .collect();
        let default_stream = stream_index
            .get(crate::data::tuple::DEFAULT_STREAM)
            .copied();
        Outbox {
            task_id,
            targets,
            streams,
            stream_index,
            default_stream,
            batch_size,
            blocked: Vec::new(),
            local: Vec::new(),
            local_cols: Vec::new(),
            local_chunks: Vec::new(),
            full: Vec::new(),
            ids: IdGen::new(),
            acking,
            emitted: 0,
            event_time: crate::data::tuple::NO_TIME,
            sent_watermark: None,
            refused: std::cell::OnceCell::new(),
        }
    }

    /// The fields of output stream `sid`.
    pub(crate) fn stream_fields(&self, sid: usize) -> &crate::data::tuple::Fields {
        &self.streams[sid].meta.fields
    }

    pub(crate) fn stream_id(&self, stream: Option<&str>) -> Result<usize, EmitError> {
        self.stream_index_of(stream).map_err(|e| self.refuse(e))
    }

    /// Records `e` as the first refused emit (see `refused`); returns it.
    pub(crate) fn refuse(&self, e: EmitError) -> EmitError {
        let _ = self.refused.set(e.to_string());
        e
    }

    fn stream_index_of(&self, stream: Option<&str>) -> Result<usize, EmitError> {
        match stream {
            None => self
                .default_stream
                .ok_or(EmitError::NoDefaultStream { task: self.task_id }),
            Some(s) => {
                self.stream_index
                    .get(s)
                    .copied()
                    .ok_or_else(|| EmitError::UndeclaredStream {
                        task: self.task_id,
                        stream: s.to_string(),
                    })
            }
        }
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.ids.next_id()
    }

    /// Emits `values` on stream `sid` to every subscriber (or, with `direct`, to that task
    /// of the direct subscribers), anchored to `parents`. Returns the number of copies.
    pub(crate) fn emit(
        &mut self,
        sid: usize,
        values: Values,
        parents: &[Parent<'_>],
        direct: Option<u32>,
    ) -> Result<usize, EmitError> {
        let mut picks: smallvec::SmallVec<[usize; 4]> = smallvec::SmallVec::new();
        {
            let out = &mut self.streams[sid];
            if let Some(e) = direct_mismatch(out, direct.is_some()) {
                return Err(self.refuse(e));
            }
            for route in out.routes.iter_mut() {
                match (route, direct) {
                    (Route::Direct { targets }, Some(task)) => {
                        if let Some((_, i)) = targets.iter().find(|(t, _)| *t == task) {
                            picks.push(*i);
                        }
                    }
                    // Refused by `direct_mismatch` above.
                    (Route::Direct { .. }, None) | (_, Some(_)) => {}
                    (Route::Shuffle { targets, next }, None) => {
                        picks.push(targets[*next]);
                        *next += 1;
                        if *next == targets.len() {
                            *next = 0;
                        }
                    }
                    (Route::Fields { fields, targets }, None) => {
                        let h = hash_fields(&values, fields);
                        picks.push(targets[(h % targets.len() as u64) as usize]);
                    }
                    (Route::All { targets }, None) => picks.extend(targets.iter().copied()),
                    (Route::Global { target }, None) => picks.push(*target),
                    (Route::Local, None) => picks.push(LOCAL),
                }
            }
        }
        let n = picks.len();
        if let (0, Some(task)) = (n, direct) {
            return Err(EmitError::NoSuchDirectTask {
                task,
                stream: self.streams[sid].meta.stream.to_string(),
            });
        }
        self.emitted += 1;
        if n == 0 {
            return Ok(0);
        }
        let meta = self.streams[sid].meta.clone();
        let mut values = Some(values);
        for (k, &ti) in picks.iter().enumerate() {
            let vals = if k + 1 == n {
                values.take().unwrap_or_default()
            } else {
                values.as_ref().cloned().unwrap_or_default()
            };
            let anchors = self.anchor(parents);
            let tuple = Tuple {
                values: vals,
                meta: meta.clone(),
                source_task: self.task_id,
                anchors,
                ack_val: Cell::new(0),
                event_time: self.event_time,
            };
            if ti == LOCAL {
                self.local.push(tuple);
            } else {
                self.push(ti, tuple);
            }
        }
        Ok(n)
    }

    /// Sends an unanchored copy of `values` to every task of every subscriber of stream
    /// `sid` (whatever its grouping; a global grouping still means its lowest task).
    /// For punctuation such as "window W is complete from this task".
    pub(crate) fn broadcast(&mut self, sid: usize, values: Values) -> usize {
        let mut picks: Vec<usize> = Vec::new();
        for route in &self.streams[sid].routes {
            match route {
                Route::Shuffle { targets, .. }
                | Route::Fields { targets, .. }
                | Route::All { targets } => picks.extend(targets.iter().copied()),
                Route::Global { target } => picks.push(*target),
                Route::Direct { targets } => picks.extend(targets.iter().map(|(_, i)| *i)),
                Route::Local => picks.push(LOCAL),
            }
        }
        self.emitted += 1;
        let meta = self.streams[sid].meta.clone();
        for &ti in &picks {
            let tuple = Tuple {
                values: values.clone(),
                meta: meta.clone(),
                source_task: self.task_id,
                anchors: Anchors::new(),
                ack_val: Cell::new(0),
                event_time: self.event_time,
            };
            if ti == LOCAL {
                self.local.push(tuple);
            } else {
                self.push(ti, tuple);
            }
        }
        picks.len()
    }

    /// Makes the anchors of one new tuple: one fresh edge per parent, XOR-ed into each
    /// of the parent's roots and into the parent's ack val.
    pub(crate) fn anchor(&mut self, parents: &[Parent<'_>]) -> Anchors {
        let mut anchors = Anchors::new();
        if !self.acking {
            return anchors;
        }
        for (p_anchors, ack_val) in parents {
            if p_anchors.is_empty() {
                continue;
            }
            let edge = self.ids.next_id();
            ack_val.set(ack_val.get() ^ edge);
            for a in p_anchors.iter() {
                match anchors.iter_mut().find(|x: &&mut Anchor| x.root == a.root) {
                    Some(x) => x.edge ^= edge,
                    None => anchors.push(Anchor { root: a.root, edge }),
                }
            }
        }
        anchors
    }

    fn push(&mut self, ti: usize, tuple: Tuple) {
        let t = &mut self.targets[ti];
        if t.buf.capacity() == 0 {
            t.buf.reserve(self.batch_size.min(1024).max(t.last_batch));
        }
        t.buf.push(tuple);
        if t.buf.len() == self.batch_size {
            self.full.push(ti);
        }
    }

    /// Sends the batches that are full. Called after an emit is complete: a spout
    /// registers a new tree in the ledger before any of its tuples can leave.
    pub(crate) fn flush_full(&mut self) {
        while let Some(ti) = self.full.pop() {
            if self.targets[ti].buf.len() >= self.batch_size {
                self.flush_target(ti);
            }
        }
    }

    pub(super) fn flush_target(&mut self, ti: usize) {
        let t = &mut self.targets[ti];
        if t.buf.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut t.buf, Vec::with_capacity(self.batch_size.min(1024)));
        self.send(ti, Envelope::Tuples(batch));
    }

    pub(super) fn send(&mut self, ti: usize, env: Envelope) {
        let t = &mut self.targets[ti];
        if t.blocked > 0 {
            t.blocked += 1;
            self.blocked.push((ti, env));
            return;
        }
        match t.tx.try_send(env) {
            Ok(()) => {}
            Err(TrySendError::Full(env)) => {
                t.blocked += 1;
                self.blocked.push((ti, env));
            }
            Err(TrySendError::Closed(_)) => {
                // The receiving task is gone (the topology is being torn down). Its
                // tuples' trees time out and are replayed; count nothing as delivered.
                tracing::warn!(
                    from = self.task_id,
                    to = t.task_id,
                    "inbox closed; dropping a batch (its trees will time out)"
                );
            }
        }
    }

    /// Sends every partly filled batch.
    pub(crate) fn flush(&mut self) {
        self.full.clear();
        for ti in 0..self.targets.len() {
            self.flush_target(ti);
        }
    }

    /// Tells every downstream task this task's watermark (`None`: idle), after the tuples
    /// emitted so far; nothing if it did not change.
    pub(crate) fn send_watermark(&mut self, at: Option<i64>) {
        if self.sent_watermark == Some(at) {
            return;
        }
        self.sent_watermark = Some(at);
        self.flush();
        for ti in 0..self.targets.len() {
            let from = self.task_id;
            self.send(ti, Envelope::Watermark { from, at });
        }
    }

    /// The last watermark sent (`Some(None)`: idle; `None`: none yet).
    pub(crate) fn sent_watermark(&self) -> Option<Option<i64>> {
        self.sent_watermark
    }

    /// Tells every downstream task that this task has finished (its watermark goes to the
    /// end of time).
    pub(crate) fn send_end(&mut self) {
        self.send_watermark(Some(i64::MAX));
        self.flush();
        for ti in 0..self.targets.len() {
            self.send(ti, Envelope::End);
        }
    }

    pub(crate) fn is_blocked(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// Hands over the envelopes that found a full inbox, with their senders, for an
    /// awaiting send (the actor stops processing until they are delivered).
    pub(crate) fn take_blocked(&mut self) -> Vec<(mpsc::Sender<Envelope>, Envelope)> {
        let blocked = std::mem::take(&mut self.blocked);
        for t in self.targets.iter_mut() {
            t.blocked = 0;
        }
        blocked
            .into_iter()
            .map(|(ti, env)| (self.targets[ti].tx.clone(), env))
            .collect()
    }
}

/// The error of an emit whose kind (direct or not) does not fit a subscriber of the
/// stream: every subscriber must be able to take the tuple.
pub(crate) fn direct_mismatch(out: &StreamOut, direct: bool) -> Option<EmitError> {
    let stream = || out.meta.stream.to_string();
    out.routes.iter().find_map(|r| match (r, direct) {
        (Route::Direct { .. }, true) => None,
        (Route::Direct { .. }, false) => Some(EmitError::NeedsDirect { stream: stream() }),
        (r, true) => Some(EmitError::NotDirect {
            stream: stream(),
            grouping: r.grouping(),
        }),
        (_, false) => None,
    })
}

impl Route {
    /// The name of the grouping, for errors.
    fn grouping(&self) -> &'static str {
        match self {
            Route::Shuffle { .. } => "shuffle",
            Route::Fields { .. } => "fields",
            Route::All { .. } => "all",
            Route::Global { .. } => "global",
            Route::Direct { .. } => "direct",
            Route::Local => "local_or_shuffle",
        }
    }
}

/// Sends blocked envelopes, waiting for inbox space (backpressure).
pub(crate) async fn send_blocked(blocked: Vec<(mpsc::Sender<Envelope>, Envelope)>) {
    for (tx, env) in blocked {
        if tx.send(env).await.is_err() {
            tracing::warn!("inbox closed while waiting for space; dropping a batch");
        }
    }
}

#[cfg(test)]
mod columns_tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::data::columns::{Column, Columns, StrColumn};
    use crate::data::tuple::{Fields, StreamMeta};

    fn outbox(routes: Vec<Route>) -> Outbox {
        let targets = (0..3)
            .map(|i| Target::new(10 + i, mpsc::channel(1).0))
            .collect();
        let meta = MetaRef::Shared(Arc::new(StreamMeta {
            component: "words".into(),
            stream: crate::data::tuple::DEFAULT_STREAM.into(),
            fields: Fields::new(["word"]),
        }));
        Outbox::new(
            1,
            targets,
            vec![StreamOut { meta, routes }],
            usize::MAX,
            false,
        )
    }

    /// Which words each target task got.
    fn received(o: &mut Outbox) -> BTreeMap<u32, Vec<String>> {
        let mut got: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        o.take_outputs(|task, d| {
            let e = got.entry(task).or_default();
            e.extend(d.tuples.iter().map(|t| t.values()[0].to_string()));
            for c in &d.columns {
                e.extend((0..c.rows()).map(|i| c.row(i)[0].to_string()));
            }
        });
        got
    }

    #[test]
    fn columns_are_grouped_as_tuples_are() {
        let words: Vec<String> = (0..200).map(|i| format!("w{}", i % 37)).collect();
        let fields: fn() -> Vec<Route> = || {
            vec![Route::Fields {
                fields: vec![0],
                targets: vec![0, 1, 2],
            }]
        };
        let shuffle: fn() -> Vec<Route> = || {
            vec![Route::Shuffle {
                targets: vec![0, 1, 2],
                next: 0,
            }]
        };
        let global_and_all: fn() -> Vec<Route> = || {
            vec![
                Route::Global { target: 1 },
                Route::All {
                    targets: vec![0, 2],
                },
            ]
        };
        for (shuffled, routes) in [(false, fields), (true, shuffle), (false, global_and_all)] {
            let mut by_tuple = outbox(routes());
            for w in &words {
                let r = by_tuple.emit(0, crate::values![w.as_str()], &[], None);
                assert!(r.is_ok());
            }
            let mut by_column = outbox(routes());
            let mut col = StrColumn::default();
            words.iter().for_each(|w| col.push(w));
            let r = by_column.emit_columns(0, Columns::single(Column::Str(col)));
            assert_eq!(r, Ok(200));
            let (got, want) = (received(&mut by_column), received(&mut by_tuple));
            if shuffled {
                // A shuffle sends whole chunks in turn: the same rows, in order, to one task.
                let all = |m: &BTreeMap<u32, Vec<String>>| {
                    let mut v: Vec<String> = m.values().flatten().cloned().collect();
                    v.sort();
                    v
                };
                assert_eq!(all(&got), all(&want));
                assert_eq!(got.values().next(), Some(&words));
            } else {
                assert_eq!(got, want);
            }
            assert_eq!(by_column.emitted, by_tuple.emitted);
        }
    }

    #[test]
    fn a_shuffle_sends_whole_chunks_to_each_task_in_turn() {
        let mut o = outbox(vec![Route::Shuffle {
            targets: vec![0, 1, 2],
            next: 0,
        }]);
        for chunk in 0..6 {
            let mut col = StrColumn::default();
            col.push(&format!("c{chunk}"));
            col.push(&format!("c{chunk}"));
            assert_eq!(o.emit_columns(0, Columns::single(Column::Str(col))), Ok(2));
        }
        let got = received(&mut o);
        let want = |a: usize, b: usize| {
            vec![
                format!("c{a}"),
                format!("c{a}"),
                format!("c{b}"),
                format!("c{b}"),
            ]
        };
        assert_eq!(
            got,
            BTreeMap::from([(10, want(0, 3)), (11, want(1, 4)), (12, want(2, 5))])
        );
    }

    #[test]
    fn emits_a_subscriber_cannot_take_are_refused_and_send_nothing() {
        let stream = || crate::data::tuple::DEFAULT_STREAM.to_string();
        let direct = || Route::Direct {
            targets: vec![(10, 0), (11, 1)],
        };
        let shuffle = || Route::Shuffle {
            targets: vec![2],
            next: 0,
        };
        let word = || crate::values!["w"];
        let mut o = outbox(vec![direct()]);
        let r = o.emit(0, word(), &[], Some(12));
        assert_eq!(
            r,
            Err(EmitError::NoSuchDirectTask {
                task: 12,
                stream: stream()
            })
        );
        let r = o.emit(0, word(), &[], None);
        assert_eq!(r, Err(EmitError::NeedsDirect { stream: stream() }));
        let mut col = StrColumn::default();
        col.push("w");
        let r = o.emit_columns(0, Columns::single(Column::Str(col)));
        assert_eq!(r, Err(EmitError::NeedsDirect { stream: stream() }));
        assert_eq!(o.emit(0, word(), &[], Some(11)), Ok(1));
        assert_eq!(received(&mut o), BTreeMap::from([(11, vec!["w".into()])]));

        let mut o = outbox(vec![direct(), shuffle()]);
        let r = o.emit(0, word(), &[], Some(11));
        let not_direct = EmitError::NotDirect {
            stream: stream(),
            grouping: "shuffle",
        };
        assert_eq!(r, Err(not_direct));
        let r = o.emit(0, word(), &[], None);
        assert_eq!(r, Err(EmitError::NeedsDirect { stream: stream() }));
        assert_eq!(o.emitted, 0);
        assert!(received(&mut o).is_empty());
    }

    #[test]
    fn columns_of_the_wrong_width_are_refused() {
        let mut o = outbox(vec![Route::Global { target: 0 }]);
        let two = Columns::new(vec![Column::Int(vec![1]), Column::Int(vec![2])]);
        let r = two.map(|c| o.emit_columns(0, c));
        assert!(
            matches!(r, Ok(Err(EmitError::Columns(ColumnsError::Fields { .. })))),
            "{r:?}"
        );
    }
}
