//! Picking the key of a tuple by field name (or the first field).

use std::collections::HashMap;

use compact_str::CompactString;

use crate::data::columns::{Column, Columns, StrColumn};
use crate::data::tuple::{Tuple, Value};

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

/// A batch's counts per key in the counting bolts (a fast hasher, seeded per map).
pub type BatchCounts = HashMap<CompactString, u64, foldhash::fast::RandomState>;

/// Adds one to each key's count in `counts` (the per-batch combiner of the counting
/// bolts), from the key column of a chunk of rows (`field`, or the first): the columnar
/// form of [`key_of`] and [`key_text`]. `None` when that column does not hold strings
/// (the rows then come as tuples).
/// The key column of `input` (`field`, or the first), if it holds strings.
pub fn key_column<'a>(input: &'a Columns, field: Option<&str>) -> Option<&'a StrColumn> {
    match field {
        Some(f) => input.column(f),
        None => input.column_at(0),
    }
    .and_then(Column::as_str)
}

pub fn add_key_counts(
    counts: &mut BatchCounts,
    input: &Columns,
    field: Option<&str>,
) -> Option<()> {
    let keys = key_column(input, field)?;
    for k in keys.iter() {
        match counts.get_mut(k) {
            Some(n) => *n += 1,
            None => {
                counts.insert(CompactString::from(k), 1);
            }
        }
    }
    Some(())
}
