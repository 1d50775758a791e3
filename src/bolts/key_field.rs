//! Picking the key of a tuple by field name (or the first field).

use std::collections::HashMap;

use compact_str::CompactString;

use crate::columns::{Column, Columns, StrColumn};
use crate::tuple::{Tuple, Value};

/// The value of `field`, or of the first field when no name is given.
pub fn key_of<'a>(t: &'a Tuple, field: Option<&str>) -> Option<&'a Value> {
    match field {
        Some(f) => t.get(f),
        None => t.value(0),
    }
}

/// A key as text (strings as they are, other values formatted).
pub fn key_text(v: &Value) -> compact_str::CompactString {
    match v {
        Value::Str(s) => s.clone(),
        other => compact_str::format_compact!("{other}"),
    }
}

/// The key column of a chunk of rows (`field`, or the first), when it holds strings:
/// the columnar form of [`key_of`] and [`key_text`]. `None` for other columns (the rows
/// then come as tuples).
pub fn key_column<'a>(input: &'a Columns, field: Option<&str>) -> Option<&'a StrColumn> {
    match field {
        Some(f) => input.column(f),
        None => input.column_at(0),
    }
    .and_then(Column::as_str)
}

/// A batch's counts per key in the counting bolts (a fast hasher, seeded per map).
pub type BatchCounts = HashMap<CompactString, u64, foldhash::fast::RandomState>;

/// Adds one to each key's count in `counts` (the per-batch combiner of the counting
/// bolts).
pub fn add_counts(counts: &mut BatchCounts, keys: &StrColumn) {
    for k in keys.iter() {
        match counts.get_mut(k) {
            Some(n) => *n += 1,
            None => {
                counts.insert(CompactString::from(k), 1);
            }
        }
    }
}
