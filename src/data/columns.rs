//! Columns: a micro-batch's tuples stored field by field, the fast path of batch-aware
//! components (as in vectorized engines). A column of strings is one byte arena and the
//! end of each value, so a batch of words costs a copy of their bytes, not one tuple each.
//!
//! A component opts in (`Bolt::execute_columns`, `TransactionalSpout::emit_columns`);
//! wherever the next component does not, the runtime turns the rows into tuples, so the
//! same topology runs either way with the same result.

use std::sync::Arc;

use compact_str::CompactString;

use crate::data::due::DueTimes;
use crate::data::tuple::{Anchors, Fields, MetaRef, Tuple, Value, Values};

/// Rows per chunk a columnar spout emits: small enough to stay in cache and to reuse
/// allocator pages batch after batch, large enough to amortize the per-chunk work.
pub const CHUNK_ROWS: usize = 1024;

/// Strings, one per row, in one arena.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StrColumn {
    arena: String,
    ends: Vec<usize>,
}

impl StrColumn {
    /// No rows (allocates nothing).
    pub const fn new() -> Self {
        StrColumn {
            arena: String::new(),
            ends: Vec::new(),
        }
    }

    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        StrColumn {
            arena: String::with_capacity(bytes),
            ends: Vec::with_capacity(rows),
        }
    }

    pub fn push(&mut self, s: &str) {
        self.arena.push_str(s);
        self.ends.push(self.arena.len());
    }

    /// Appends one value written by `f` into the arena (it must only append).
    pub fn push_with(&mut self, f: impl FnOnce(&mut String)) {
        let start = self.arena.len();
        f(&mut self.arena);
        if self.arena.len() < start {
            self.arena.truncate(start);
        }
        self.ends.push(self.arena.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.ends[i - 1] }
    }

    /// The value of row `i` (rows are `0..len()`).
    pub fn get(&self, i: usize) -> &str {
        &self.arena[self.start(i)..self.ends[i]]
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let s = self.arena.get(start..end).unwrap_or_default();
            start = end;
            s
        })
    }

    /// All values one after another, and where each ends in that text (so a search can
    /// run over all of them at once).
    pub fn joined(&self) -> (&str, &[usize]) {
        (&self.arena, &self.ends)
    }

    /// Bytes of all values together.
    pub fn bytes(&self) -> usize {
        self.arena.len()
    }

    /// Removes every row, keeping the allocations (to fill the column again).
    pub fn clear(&mut self) {
        self.arena.clear();
        self.ends.clear();
    }

    /// A copy of rows `from..to` (clamped to the rows there are).
    pub fn slice(&self, from: usize, to: usize) -> StrColumn {
        let to = to.min(self.len());
        let from = from.min(to);
        let (start, end) = (self.start(from), self.start(to));
        StrColumn {
            arena: self.arena[start..end].to_string(),
            ends: self.ends[from..to].iter().map(|e| e - start).collect(),
        }
    }
}

/// A list of strings per row (a tweet's hashtags).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StrListColumn {
    items: StrColumn,
    ends: Vec<usize>,
}

impl StrListColumn {
    pub fn with_capacity(rows: usize) -> Self {
        StrListColumn {
            items: StrColumn::default(),
            ends: Vec::with_capacity(rows),
        }
    }

    /// Adds an item to the row being built (closed by `end_row`).
    pub fn push_item(&mut self, s: &str) {
        self.items.push(s);
    }

    pub fn end_row(&mut self) {
        self.ends.push(self.items.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The items of row `i`.
    pub fn get(&self, i: usize) -> impl ExactSizeIterator<Item = &str> + '_ {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        (start..self.ends[i]).map(|k| self.items.get(k))
    }
}

/// One field of every row.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    Int(Vec<i64>),
    Str(StrColumn),
    StrList(StrListColumn),
    /// Any values (the general case).
    Any(Vec<Value>),
    /// This many rows, every one null: a field no consumer reads, which the source left
    /// out (projection, see [`TaskContext::read_fields`](crate::component::TaskContext::read_fields)).
    Null(usize),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Int(v) => v.len(),
            Column::Str(c) => c.len(),
            Column::StrList(c) => c.len(),
            Column::Any(v) => v.len(),
            Column::Null(n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_str(&self) -> Option<&StrColumn> {
        match self {
            Column::Str(c) => Some(c),
            _ => None,
        }
    }

    /// Row `i` as a tuple value.
    pub fn value(&self, i: usize) -> Value {
        match self {
            Column::Int(v) => Value::Int(v[i]),
            Column::Str(c) => Value::Str(CompactString::from(c.get(i))),
            Column::StrList(c) => Value::List(
                c.get(i)
                    .map(|s| Value::Str(CompactString::from(s)))
                    .collect::<Vec<_>>()
                    .into(),
            ),
            Column::Any(v) => v[i].clone(),
            Column::Null(_) => Value::Null,
        }
    }

    /// An empty column of the same kind.
    fn empty_like(&self, rows: usize) -> Column {
        match self {
            Column::Int(_) => Column::Int(Vec::with_capacity(rows)),
            Column::Str(c) => {
                let per_row = c.bytes() / c.len().max(1) + 1;
                Column::Str(StrColumn::with_capacity(rows, rows * per_row))
            }
            Column::StrList(_) => Column::StrList(StrListColumn::with_capacity(rows)),
            Column::Any(_) => Column::Any(Vec::with_capacity(rows)),
            Column::Null(_) => Column::Null(0),
        }
    }

    /// Appends row `i` of `from`, a column of the same kind.
    fn push_row(&mut self, from: &Column, i: usize) {
        match (self, from) {
            (Column::Int(a), Column::Int(b)) => a.push(b[i]),
            (Column::Str(a), Column::Str(b)) => a.push(b.get(i)),
            (Column::StrList(a), Column::StrList(b)) => {
                for s in b.get(i) {
                    a.push_item(s);
                }
                a.end_row();
            }
            (Column::Any(a), Column::Any(b)) => a.push(b[i].clone()),
            (Column::Null(a), Column::Null(_)) => *a += 1,
            // Same kinds by construction (`empty_like`).
            (a, b) => {
                let v = b.value(i);
                if let Column::Any(a) = a {
                    a.push(v);
                }
            }
        }
    }
}

/// Why columns cannot be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ColumnsError {
    #[error("columns of different lengths: {0:?}")]
    Lengths(Vec<usize>),
    #[error("{got} columns for the {want} fields {fields}")]
    Fields {
        got: usize,
        want: usize,
        fields: String,
    },
}

/// Rows of one stream, column by column. The runtime attaches the stream (and its
/// fields) when the rows are emitted. The columns are shared: a clone (rows sent whole
/// to several tasks, or kept until a batch commits) copies no data.
#[derive(Clone, Debug)]
pub struct Columns {
    cols: Arc<Vec<Column>>,
    rows: usize,
    meta: Option<MetaRef>,
    /// The task that emitted the rows.
    source_task: u32,
}

impl Columns {
    /// Rows made of `cols`, in the order of the stream's fields.
    pub fn new(cols: Vec<Column>) -> Result<Columns, ColumnsError> {
        let rows = cols.first().map_or(0, Column::len);
        if cols.iter().any(|c| c.len() != rows) {
            return Err(ColumnsError::Lengths(
                cols.iter().map(Column::len).collect(),
            ));
        }
        Ok(Columns {
            cols: Arc::new(cols),
            rows,
            meta: None,
            source_task: 0,
        })
    }

    /// Rows given as values, `width` fields each (a missing value is null): a field
    /// whose values are all strings becomes a string column, all integers an integer
    /// column, all lists of strings a list column, anything else general values.
    pub fn from_rows(width: usize, rows: &[Values]) -> Columns {
        let field = |f: usize| rows.iter().map(move |r| r.get(f).unwrap_or(&Value::Null));
        let cols = (0..width)
            .map(|f| {
                if field(f).all(|v| matches!(v, Value::Str(_))) {
                    let mut c = StrColumn::default();
                    field(f).for_each(|v| c.push(v.as_str().unwrap_or_default()));
                    Column::Str(c)
                } else if field(f).all(|v| matches!(v, Value::Int(_))) {
                    Column::Int(field(f).map(|v| v.as_int().unwrap_or_default()).collect())
                } else if field(f).all(|v| {
                    v.as_list()
                        .is_some_and(|l| l.iter().all(|x| matches!(x, Value::Str(_))))
                }) {
                    let mut c = StrListColumn::default();
                    for v in field(f) {
                        for x in v.as_list().unwrap_or_default() {
                            c.push_item(x.as_str().unwrap_or_default());
                        }
                        c.end_row();
                    }
                    Column::StrList(c)
                } else {
                    Column::Any(field(f).cloned().collect())
                }
            })
            .collect();
        Columns {
            cols: Arc::new(cols),
            rows: rows.len(),
            meta: None,
            source_task: 0,
        }
    }

    /// No rows (what a bolt that emits nothing per row returns).
    pub fn empty() -> Columns {
        Columns {
            cols: Arc::new(Vec::new()),
            rows: 0,
            meta: None,
            source_task: 0,
        }
    }

    /// Rows of one field.
    pub fn single(col: Column) -> Columns {
        Columns {
            rows: col.len(),
            cols: Arc::new(vec![col]),
            meta: None,
            source_task: 0,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The stream's fields (set once the rows are emitted).
    pub fn fields(&self) -> Option<&Fields> {
        self.meta.as_ref().map(|m| &m.fields)
    }

    /// The component that emitted the rows.
    pub fn source_component(&self) -> &str {
        self.meta.as_ref().map_or("", |m| &m.component)
    }

    /// The column of the named field.
    pub fn column(&self, field: &str) -> Option<&Column> {
        self.fields()
            .and_then(|f| f.index_of(field))
            .and_then(|i| self.cols.get(i))
    }

    pub fn column_at(&self, i: usize) -> Option<&Column> {
        self.cols.get(i)
    }

    /// Attaches the stream the rows are emitted on, checking they fit its fields.
    pub(crate) fn attach(mut self, meta: MetaRef, task: u32) -> Result<Columns, ColumnsError> {
        if self.cols.len() != meta.fields.len() {
            return Err(ColumnsError::Fields {
                got: self.cols.len(),
                want: meta.fields.len(),
                fields: meta.fields.to_string(),
            });
        }
        self.meta = Some(meta);
        self.source_task = task;
        Ok(self)
    }

    /// The values of row `i`.
    pub fn row(&self, i: usize) -> Values {
        self.cols.iter().map(|c| c.value(i)).collect()
    }

    /// The rows as tuples (for a component without a columnar path).
    pub(crate) fn to_tuples(&self) -> Vec<Tuple> {
        let Some(meta) = &self.meta else {
            return Vec::new();
        };
        (0..self.rows)
            .map(|i| Tuple {
                values: self.row(i),
                meta: meta.clone(),
                source_task: self.source_task,
                anchors: Anchors::new(),
                ack_val: std::cell::Cell::new(0),
                event_time: crate::data::tuple::NO_TIME,
            })
            .collect()
    }

    /// The hash of row `i`'s `fields`, equal to the tuple path's (`data::hash::hash_fields`),
    /// so a key goes to the same task whichever path carried it.
    pub(crate) fn hash_fields(&self, i: usize, fields: &[usize]) -> u64 {
        if let [f] = fields
            && let Some(Column::Str(c)) = self.cols.get(*f)
        {
            return xxhash_rust::xxh3::xxh3_64(c.get(i).as_bytes());
        }
        let values: Vec<Option<Value>> = fields
            .iter()
            .map(|&f| self.cols.get(f).map(|c| c.value(i)))
            .collect();
        crate::data::hash::hash_values(values.iter().map(Option::as_ref))
    }

    /// Splits the rows into `n` parts: row `i` goes to part `pick(i)` (order kept).
    pub(crate) fn partition(&self, n: usize, pick: impl Fn(usize) -> usize) -> Vec<Columns> {
        let per = self.rows / n.max(1) + 1;
        let mut parts: Vec<(Vec<Column>, usize)> = (0..n)
            .map(|_| (self.cols.iter().map(|c| c.empty_like(per)).collect(), 0))
            .collect();
        for i in 0..self.rows {
            let Some((cols, rows)) = parts.get_mut(pick(i)) else {
                continue;
            };
            for (dst, src) in cols.iter_mut().zip(self.cols.iter()) {
                dst.push_row(src, i);
            }
            *rows += 1;
        }
        parts
            .into_iter()
            .map(|(cols, rows)| Columns {
                cols: Arc::new(cols),
                rows,
                meta: self.meta.clone(),
                source_task: self.source_task,
            })
            .collect()
    }
}

/// Tuples as column chunks of at most [`CHUNK_ROWS`] rows: one chunk per run of tuples
/// from the same stream and task (their order kept), so converting a chunk back gives the
/// same tuples.
pub(crate) fn from_tuples(tuples: Vec<Tuple>) -> Vec<Columns> {
    let mut out = Vec::new();
    let mut run: Vec<Values> = Vec::new();
    let mut key: Option<(MetaRef, u32)> = None;
    let mut flush = |run: &mut Vec<Values>, key: &Option<(MetaRef, u32)>| {
        if let Some((meta, task)) = key
            && !run.is_empty()
        {
            let c = Columns::from_rows(meta.fields.len(), run);
            if let Ok(c) = c.attach(meta.clone(), *task) {
                out.push(c);
            }
            run.clear();
        }
    };
    for t in tuples {
        let same = key.as_ref().is_some_and(|(m, task)| {
            std::ptr::eq::<crate::data::tuple::StreamMeta>(&**m, &*t.meta) && *task == t.source_task
        });
        if !same || run.len() == CHUNK_ROWS {
            flush(&mut run, &key);
            key = Some((t.meta.clone(), t.source_task));
        }
        run.push(t.values);
    }
    flush(&mut run, &key);
    out
}

/// Rows made by a columnar spout for one batch: chunks of at most [`CHUNK_ROWS`] rows,
/// made one at a time as they are sent (so a chunk is processed while it is still in the
/// cache, and a batch never sits in memory whole), and when each row was due (complete
/// latency is measured from there).
pub struct ColumnChunks {
    pub chunks: Box<dyn Iterator<Item = Result<Columns, ColumnsError>>>,
    pub due: DueTimes,
}

impl ColumnChunks {
    /// Chunks already made.
    pub fn of(chunks: Vec<Columns>, due: DueTimes) -> Self {
        ColumnChunks {
            chunks: Box::new(chunks.into_iter().map(Ok)),
            due,
        }
    }
}

/// A shared, empty stream description for tests of columnar components.
fn test_meta(component: &str, fields: Fields) -> MetaRef {
    MetaRef::Shared(Arc::new(crate::data::tuple::StreamMeta {
        component: component.into(),
        stream: crate::data::tuple::DEFAULT_STREAM.into(),
        fields,
    }))
}

impl Columns {
    /// Rows with their stream attached, for tests of columnar components.
    pub fn for_test(self, component: &str, fields: Fields) -> Result<Columns, ColumnsError> {
        self.attach(test_meta(component, fields), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tuple::Fields;

    fn words(ws: &[&str]) -> Column {
        let mut c = StrColumn::default();
        for w in ws {
            c.push(w);
        }
        Column::Str(c)
    }

    #[test]
    fn rows_become_the_same_tuples() {
        let mut tags = StrListColumn::default();
        tags.push_item("a");
        tags.push_item("b");
        tags.end_row();
        tags.end_row();
        let cols = Columns::new(vec![
            words(&["x", "yy"]),
            Column::Int(vec![1, 2]),
            Column::StrList(tags),
        ])
        .and_then(|c| c.for_test("src", Fields::new(["w", "n", "tags"])))
        .unwrap_or_else(|e| panic!("{e}"));
        let ts = cols.to_tuples();
        assert_eq!(ts.len(), 2);
        assert_eq!(ts[0].get_str("w"), Some("x"));
        assert_eq!(ts[1].get_int("n"), Some(2));
        assert_eq!(
            ts[0].get("tags"),
            Some(&Value::List(
                vec![Value::from("a"), Value::from("b")].into()
            ))
        );
        assert_eq!(ts[1].get("tags"), Some(&Value::List(Vec::new().into())));
        assert_eq!(ts[0].source_component(), "src");
    }

    #[test]
    fn hash_matches_the_tuple_path() {
        let cols = Columns::new(vec![words(&["rust", "storm"]), Column::Int(vec![7, 8])])
            .and_then(|c| c.for_test("src", Fields::new(["w", "n"])))
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..2 {
            let row = cols.row(i);
            for fields in [vec![0], vec![1], vec![0, 1]] {
                assert_eq!(
                    cols.hash_fields(i, &fields),
                    crate::data::hash::hash_fields(&row, &fields)
                );
            }
        }
    }

    #[test]
    fn partition_keeps_rows_and_order() {
        let cols = Columns::new(vec![words(&["a", "b", "c", "d", "e"])])
            .and_then(|c| c.for_test("src", Fields::new(["w"])))
            .unwrap_or_else(|e| panic!("{e}"));
        let parts = cols.partition(2, |i| i % 2);
        let got: Vec<Vec<String>> = parts
            .iter()
            .map(|p| (0..p.rows()).map(|i| p.row(i)[0].to_string()).collect())
            .collect();
        assert_eq!(got, [vec!["a", "c", "e"], vec!["b", "d"]]);
    }

    #[test]
    fn a_null_column_is_null_in_every_row_and_partitions_like_the_others() {
        let cols = Columns::new(vec![words(&["a", "b", "c"]), Column::Null(3)])
            .and_then(|c| c.for_test("src", Fields::new(["w", "unread"])))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cols.row(1), crate::values!["b", Value::Null]);
        let parts = cols.partition(2, |i| i % 2);
        assert_eq!(parts.iter().map(Columns::rows).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(parts[1].row(0), crate::values!["b", Value::Null]);
        assert!(Columns::new(vec![words(&["a"]), Column::Null(2)]).is_err());
        // Hashed as the tuple path hashes a null.
        let row = cols.row(0);
        assert_eq!(
            cols.hash_fields(0, &[1]),
            crate::data::hash::hash_fields(&row, &[1])
        );
    }

    #[test]
    fn rows_round_trip_through_columns() {
        let rows = vec![
            crate::values!["a", 1, Value::List(vec![Value::from("x")].into()), 1.5],
            crate::values!["b", 2, Value::List(Vec::new().into()), Value::Null],
        ];
        let cols = Columns::from_rows(4, &rows);
        assert!(matches!(cols.column_at(0), Some(Column::Str(_))));
        assert!(matches!(cols.column_at(1), Some(Column::Int(_))));
        assert!(matches!(cols.column_at(2), Some(Column::StrList(_))));
        assert!(matches!(cols.column_at(3), Some(Column::Any(_))));
        assert_eq!((0..2).map(|i| cols.row(i)).collect::<Vec<_>>(), rows);
    }

    #[test]
    fn tuples_become_chunks_per_stream_and_task_and_back() {
        let meta = test_meta("a", Fields::new(["w", "n"]));
        let other = test_meta("b", Fields::new(["w", "n"]));
        let tuple = |m: &MetaRef, task: u32, i: i64| Tuple {
            values: crate::values![format!("w{i}"), i],
            meta: m.clone(),
            source_task: task,
            anchors: Anchors::new(),
            ack_val: std::cell::Cell::new(0),
            event_time: crate::data::tuple::NO_TIME,
        };
        let mut ts: Vec<Tuple> = (0..3000).map(|i| tuple(&meta, 1, i)).collect();
        ts.extend((0..5).map(|i| tuple(&meta, 2, i)));
        ts.extend((0..5).map(|i| tuple(&other, 2, i)));
        let describe = |t: &Tuple| {
            format!(
                "{}/{} {:?}",
                t.source_component(),
                t.source_task(),
                t.values()
            )
        };
        let want: Vec<String> = ts.iter().map(describe).collect();
        let chunks = from_tuples(ts);
        let sizes: Vec<usize> = chunks.iter().map(Columns::rows).collect();
        assert_eq!(sizes, [CHUNK_ROWS, CHUNK_ROWS, 3000 - 2 * CHUNK_ROWS, 5, 5]);
        let back: Vec<String> = chunks
            .iter()
            .flat_map(Columns::to_tuples)
            .map(|t| describe(&t))
            .collect();
        assert_eq!(back, want);
    }

    #[test]
    fn a_slice_is_those_rows() {
        let mut c = StrColumn::default();
        for w in ["a", "", "bcd", "ef"] {
            c.push(w);
        }
        for from in 0..=5 {
            for to in 0..=5usize {
                let want: Vec<&str> = c.iter().skip(from).take(to.saturating_sub(from)).collect();
                let got = c.slice(from, to);
                assert_eq!(got.iter().collect::<Vec<_>>(), want, "{from}..{to}");
                assert_eq!(got.bytes(), want.concat().len());
            }
        }
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert!(matches!(
            Columns::new(vec![words(&["a"]), Column::Int(vec![])]),
            Err(ColumnsError::Lengths(_))
        ));
        let one = Columns::single(words(&["a"]));
        assert!(matches!(
            one.for_test("src", Fields::new(["a", "b"])),
            Err(ColumnsError::Fields { .. })
        ));
    }
}
