//! The stable hash of grouping fields: `fields` groupings route a tuple (event mode) or a
//! row of a column chunk (micro-batch mode) to `hash % tasks`, so both must hash alike.

use super::tuple::{Value, Values};

/// The stable hash of the grouping fields of a tuple (xxh3, seed 0, type-tagged).
pub fn hash_fields(values: &Values, fields: &[usize]) -> u64 {
    if let [i] = fields
        && let Some(Value::Str(s)) = values.get(*i)
    {
        return xxhash_rust::xxh3::xxh3_64(s.as_bytes());
    }
    hash_values(fields.iter().map(|&i| values.get(i)))
}

/// The type-tagged hash of several grouping values (`None`: a field the tuple lacks).
pub fn hash_values<'a>(values: impl Iterator<Item = Option<&'a Value>>) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for v in values {
        match v {
            Some(v) => v.hash_into(&mut h),
            None => h.update(&[0xfe]),
        }
    }
    h.digest()
}

/// The hash map of the data path (counts by key, trees by root): foldhash, seeded per
/// map, several times faster than the standard library's SipHash on short keys and still
/// resistant to keys chosen to collide.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
