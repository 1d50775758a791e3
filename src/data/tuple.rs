//! Tuples: lists of values with named fields, on a named stream.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use compact_str::CompactString;
use serde::Serialize;
use smallvec::SmallVec;

/// The name of the stream a component emits on unless it names another.
pub const DEFAULT_STREAM: &str = "default";

/// One value of a tuple.
///
/// Strings are `CompactString`s: words and hashtags up to 24 bytes live inline, so
/// cloning a tuple for a fan-out does not allocate.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(CompactString),
    Bytes(Arc<[u8]>),
    List(Arc<[Value]>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Str(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// Feeds a stable, type-tagged encoding of the value to `h` (fields grouping).
    pub(crate) fn hash_into(&self, h: &mut xxhash_rust::xxh3::Xxh3) {
        match self {
            Value::Null => h.update(&[0]),
            Value::Bool(b) => h.update(&[1, *b as u8]),
            Value::Int(i) => {
                h.update(&[2]);
                h.update(&i.to_le_bytes());
            }
            Value::Float(f) => {
                h.update(&[3]);
                h.update(&f.to_bits().to_le_bytes());
            }
            Value::Str(s) => {
                h.update(&[4]);
                h.update(s.as_bytes());
                h.update(&[0xff]);
            }
            Value::Bytes(b) => {
                h.update(&[5]);
                h.update(&(b.len() as u64).to_le_bytes());
                h.update(b);
            }
            Value::List(l) => {
                h.update(&[6]);
                h.update(&(l.len() as u64).to_le_bytes());
                for v in l.iter() {
                    v.hash_into(h);
                }
            }
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(CompactString::from(s))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(CompactString::from(s))
    }
}
impl From<CompactString> for Value {
    fn from(s: CompactString) -> Self {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i as i64)
    }
}
impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Value::Int(i as i64)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b.into())
    }
}

impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        Value::Bytes(b.into())
    }
}
impl From<Vec<Value>> for Value {
    fn from(l: Vec<Value>) -> Self {
        Value::List(l.into())
    }
}

/// The values of one tuple. Up to two values live inline (words, hashtags, `(key,
/// count)` pairs): such a tuple needs no allocation of its own.
pub type Values = SmallVec<[Value; 2]>;

/// Builds `Values` from anything convertible to `Value`: `values!["word", 1]`.
#[macro_export]
macro_rules! values {
    ($($v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut v = $crate::data::tuple::Values::new();
        $( v.push($crate::data::tuple::Value::from($v)); )*
        v
    }};
}

/// The ordered field names of a stream.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Fields(Arc<[CompactString]>);

impl Fields {
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Fields(
            names
                .into_iter()
                .map(|s| CompactString::from(s.as_ref()))
                .collect(),
        )
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|f| f == name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index_of(name).is_some()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|s| s.as_str())
    }
}

impl fmt::Display for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.names().collect();
        write!(f, "[{}]", names.join(", "))
    }
}

/// Where a tuple comes from: component, stream and that stream's fields (shared by all
/// tuples of the stream).
#[derive(Debug)]
pub struct StreamMeta {
    pub component: Arc<str>,
    pub stream: Arc<str>,
    pub fields: Fields,
}

/// A reference to a stream's metadata. Running topologies use `Static` (made once per
/// stream when the topology starts, never freed: a few hundred bytes per stream), so that
/// sending a tuple touches no shared reference count; tuples made outside a topology
/// (tests) use `Shared`.
#[derive(Clone, Debug)]
pub(crate) enum MetaRef {
    Static(&'static StreamMeta),
    Shared(Arc<StreamMeta>),
}

impl std::ops::Deref for MetaRef {
    type Target = StreamMeta;

    #[inline]
    fn deref(&self) -> &StreamMeta {
        match self {
            MetaRef::Static(m) => m,
            MetaRef::Shared(m) => m,
        }
    }
}

/// One (root id, edge id) pair: this tuple belongs to the tree of `root`, and reached its
/// task over the edge `edge`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub root: u64,
    pub edge: u64,
}

pub(crate) type Anchors = SmallVec<[Anchor; 1]>;

/// The event time of a tuple that has none (processing-time sources).
pub const NO_TIME: i64 = i64::MIN;

/// A tuple as a bolt receives it.
pub struct Tuple {
    pub(crate) values: Values,
    pub(crate) meta: MetaRef,
    pub(crate) source_task: u32,
    pub(crate) anchors: Anchors,
    /// XOR of the edge ids of every tuple emitted anchored to this one (Storm's "ack val").
    pub(crate) ack_val: Cell<u64>,
    /// When the message it comes from happened (ms since the Unix epoch), assigned at the
    /// source and inherited by every tuple emitted anchored to it; [`NO_TIME`] if none.
    pub(crate) event_time: i64,
}

impl Tuple {
    /// A copy of this tuple outside any tree (micro-batch mode keeps copies of the batches
    /// of sources that cannot replay).
    pub(crate) fn duplicate(&self) -> Tuple {
        Tuple {
            values: self.values.clone(),
            meta: self.meta.clone(),
            source_task: self.source_task,
            anchors: Anchors::new(),
            ack_val: Cell::new(0),
            event_time: self.event_time,
        }
    }

    /// When the message this tuple comes from happened (ms since the Unix epoch), if its
    /// source assigns event time.
    pub fn event_time(&self) -> Option<i64> {
        (self.event_time != NO_TIME).then_some(self.event_time)
    }

    /// This tuple with event time `ms` (tests of a bolt's logic).
    pub fn with_event_time(mut self, ms: i64) -> Tuple {
        self.event_time = ms;
        self
    }

    /// A tuple that belongs to no tree, for tests of a bolt's logic.
    pub fn new_detached(
        component: &str,
        stream: &str,
        fields: Fields,
        values: impl Into<Values>,
    ) -> Tuple {
        Tuple {
            values: values.into(),
            meta: MetaRef::Shared(Arc::new(StreamMeta {
                component: component.into(),
                stream: stream.into(),
                fields,
            })),
            source_task: 0,
            anchors: Anchors::new(),
            ack_val: Cell::new(0),
            event_time: NO_TIME,
        }
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }

    pub fn into_values(self) -> Values {
        self.values
    }

    pub fn value(&self, i: usize) -> Option<&Value> {
        self.values.get(i)
    }

    /// The value of the named field.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.meta
            .fields
            .index_of(field)
            .and_then(|i| self.values.get(i))
    }

    pub fn get_str(&self, field: &str) -> Option<&str> {
        self.get(field).and_then(Value::as_str)
    }

    pub fn get_int(&self, field: &str) -> Option<i64> {
        self.get(field).and_then(Value::as_int)
    }

    pub fn fields(&self) -> &Fields {
        &self.meta.fields
    }

    pub fn source_component(&self) -> &str {
        &self.meta.component
    }

    pub fn source_stream(&self) -> &str {
        &self.meta.stream
    }

    pub fn source_task(&self) -> u32 {
        self.source_task
    }

    /// The roots (spout tuple ids) this tuple belongs to.
    pub fn roots(&self) -> impl Iterator<Item = u64> + '_ {
        self.anchors.iter().map(|a| a.root)
    }
}

impl fmt::Debug for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tuple")
            .field("component", &self.meta.component)
            .field("stream", &self.meta.stream)
            .field("task", &self.source_task)
            .field("values", &self.values)
            .field("anchors", &self.anchors.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_lookup() {
        let t = Tuple::new_detached(
            "c",
            DEFAULT_STREAM,
            Fields::new(["word", "count"]),
            values!["rust", 3],
        );
        assert_eq!(t.get_str("word"), Some("rust"));
        assert_eq!(t.get_int("count"), Some(3));
        assert!(t.get("missing").is_none());
        assert_eq!(t.fields().to_string(), "[word, count]");
    }

    #[test]
    fn hash_encoding_is_type_tagged() {
        use xxhash_rust::xxh3::Xxh3;
        let h = |v: &Value| {
            let mut x = Xxh3::new();
            v.hash_into(&mut x);
            x.digest()
        };
        assert_ne!(h(&Value::from("1")), h(&Value::from(1)));
        assert_eq!(h(&Value::from("a")), h(&Value::from("a".to_string())));
    }
}
