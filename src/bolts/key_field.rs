//! Picking the key of a tuple by field name (or the first field).

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
